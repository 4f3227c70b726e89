/* fit_shared.c - one binomial model across conditions: n, q shared, p each. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"
#include "fit_coords.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_sort.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The maximum-likelihood form of multiple-probability fluctuation
 * analysis (Silver 2003): the same synapse recorded in G conditions that
 * change only the release probability (extracellular Ca2+, a modulator),
 * so the number of sites n, the quantal size q, its SD sigma_q and the
 * recording noise sigma_0 are common, and condition g has its own p_g.
 * One likelihood, the sum of the G binomial-Gaussian mixture
 * log-likelihoods (the minis, when given, enter once and share q and
 * sigma_q).
 *
 * Coordinates u = (r_1..r_G, log q, s_q, s_0) with p_g = sin^2 r_g and
 * sigma = sd_ref sqrt(s^2 + 1e-12), the maps of fit.c: every u is a
 * valid point and the edges p = 0, 1 and sigma = 0 are stationary points
 * at finite u. At each n the likelihood is maximised by a damped Newton
 * method on the analytic gradient and Hessian of model.c (the Hessian of
 * a sum of conditions is block-structured: each r_g meets only the shared
 * coordinates). n is profiled over 1..n_max by continuation in both
 * directions (m_g = n p_g kept), with fresh starts from the conditions'
 * separate fits on a grid of n. A Wilks interval of a coordinate is the
 * hull over the n of n's Wilks set of that coordinate's interval at
 * fixed n (the profile set over n and the other coordinates is the union
 * of the sets at each n); m_g = n p_g gets n times p_g's interval at each
 * n, hulled the same way.
 */

#define BIG 1e300
#define MAXG 4096
typedef struct sctx {
  size_t G;                /* conditions */
  const double *const *x;  /* sign-corrected amplitudes of each */
  const size_t *nx;
  const double *y;         /* minis (sign-corrected) or NULL */
  size_t ny;
  double scale;            /* 1 / (sum nx + ny) */
  double sref;             /* pooled SD: unit of s_q, s_0 */
  double fixed_s0;         /* > 0: sigma_0 not estimated */
  unsigned n;              /* sites of the current evaluation */
  int D;                   /* G + 3 */
  qtl_lik_ws *ws;
  double *H, *A, *g, *gn, *Hn, *d, *un; /* D*D or D scratch */
  quantal_status err;
} sctx;

/* Indices of the shared coordinates. */
#define I_LQ(c) ((int)(c)->G)
#define I_SQ(c) ((int)(c)->G + 1)
#define I_S0(c) ((int)(c)->G + 2)

/* Objective -loglik * scale at u, with gradient g and Hessian H (D x D,
 * row-major) when g is not NULL. BIG where not computable. */
static double
objective(sctx *c, const double *u, double *g, double *H)
{
  const int D = c->D;
  double q, sq, s0, r2 = 2.0 * c->sref * c->sref, f = 0.0;
  size_t k;
  int i, j;
  for (i = 0; i < D; i++)
    if (!isfinite(u[i]) || fabs(u[i]) > 700.0)
      return BIG;
  q = exp(u[I_LQ(c)]);
  sq = sd_of(u[I_SQ(c)], c->sref);
  s0 = c->fixed_s0 > 0.0 ? c->fixed_s0 : sd_of(u[I_S0(c)], c->sref);
  if (!(q > 0.0) || !isfinite(q))
    return BIG;
  if (g) {
    memset(g, 0, (size_t)D * sizeof *g);
    memset(H, 0, (size_t)D * D * sizeof *H);
  }
  for (k = 0; k < c->G; k++) {
    qtl_mix mix;
    qtl_lik_out o;
    quantal_status st;
    int ix[QTL_NTH];
    double d1[QTL_NTH], d2[QTL_NTH], rg = u[k];
    memset(&mix, 0, sizeof mix);
    mix.release = QTL_REL_BINOMIAL;
    mix.shape = QUANTAL_QSHAPE_GAUSSIAN;
    mix.n = c->n;
    mix.p = p_of(rg);
    mix.q = q;
    mix.sigma_q = sq;
    mix.sigma0 = s0;
    st = qtl_mix_loglik(&mix, c->x[k], c->nx[k], k == 0 ? c->y : NULL,
                        k == 0 ? c->ny : 0, c->ws, g ? QTL_LIK_HESS : 0, &o);
    if (st == QUANTAL_ENOMEM)
      c->err = st;
    if (st != QUANTAL_OK || !isfinite(o.loglik))
      return BIG;
    f -= o.loglik;
    if (g == NULL)
      continue;
    /* theta = (p, q, sigma_0^2, sigma_q^2) -> u, chain rule as in
     * fit.c's objective_h. */
    ix[QTL_TH_REL] = (int)k;
    d1[QTL_TH_REL] = (1.0 - 2.0 * P_EPS) * sin(2.0 * rg);
    d2[QTL_TH_REL] = 2.0 * (1.0 - 2.0 * P_EPS) * cos(2.0 * rg);
    ix[QTL_TH_Q] = I_LQ(c);
    d1[QTL_TH_Q] = d2[QTL_TH_Q] = q;
    ix[QTL_TH_VQ] = I_SQ(c);
    d1[QTL_TH_VQ] = r2 * u[I_SQ(c)];
    d2[QTL_TH_VQ] = r2;
    ix[QTL_TH_V0] = c->fixed_s0 > 0.0 ? -1 : I_S0(c);
    d1[QTL_TH_V0] = r2 * u[I_S0(c)];
    d2[QTL_TH_V0] = r2;
    for (i = 0; i < QTL_NTH; i++) {
      if (ix[i] < 0)
        continue;
      g[ix[i]] -= d1[i] * o.g_th[i];
      H[ix[i] * D + ix[i]] -= d2[i] * o.g_th[i];
      for (j = 0; j < QTL_NTH; j++)
        if (ix[j] >= 0)
          H[ix[i] * D + ix[j]] -= d1[i] * d1[j] * o.h_th[i][j];
    }
  }
  if (g) {
    for (i = 0; i < D; i++) {
      g[i] *= c->scale;
      if (!isfinite(g[i]))
        return BIG;
    }
    for (i = 0; i < D * D; i++) {
      H[i] *= c->scale;
      if (!isfinite(H[i]))
        return BIG;
    }
  }
  return f * c->scale;
}

static int
is_free(const sctx *c, int i, int hold)
{
  return i != hold && !(i == I_S0(c) && c->fixed_s0 > 0.0);
}

static void
canonical(const sctx *c, double *u)
{
  size_t k;
  for (k = 0; k < c->G; k++)
    u[k] = t_of_p(p_of(u[k]));
  u[I_SQ(c)] = fabs(u[I_SQ(c)]);
  u[I_S0(c)] = fabs(u[I_S0(c)]);
}

/* Damped Newton (Madsen & Nielsen's rule for the damping) from u over
 * the free coordinates (hold: one held fixed, or -1). Returns the
 * objective at the result, left in u. */
static double
newton(sctx *c, double *u, int hold)
{
  const int D = c->D;
  double f, mu = 0.0, nu = 2.0;
  int it, i, j;
  gsl_matrix_view Av = gsl_matrix_view_array(c->A, (size_t)D, (size_t)D);
  gsl_vector_view dv = gsl_vector_view_array(c->d, (size_t)D);
  f = objective(c, u, c->g, c->H);
  if (f >= BIG)
    return BIG;
  for (it = 0; it < 200; it++) {
    double gmax = 0.0, hmax = 0.0, pred, fn;
    int ok;
    for (i = 0; i < D; i++)
      if (is_free(c, i, hold)) {
        gmax = fmax(gmax, fabs(c->g[i]));
        hmax = fmax(hmax, fabs(c->H[i * D + i]));
      }
    if (gmax < 1e-10)
      break;
    if (mu == 0.0)
      mu = 1e-8 * fmax(hmax, 1e-12);
    /* Solve (H + mu I) d = -g on the free block (identity elsewhere). */
    for (;;) {
      for (i = 0; i < D; i++)
        for (j = 0; j < D; j++) {
          double v;
          if (is_free(c, i, hold) && is_free(c, j, hold))
            v = c->H[i * D + j] + (i == j ? mu : 0.0);
          else
            v = i == j ? 1.0 : 0.0;
          c->A[i * D + j] = v;
        }
      for (i = 0; i < D; i++)
        c->d[i] = is_free(c, i, hold) ? -c->g[i] : 0.0;
      if (gsl_linalg_cholesky_decomp1(&Av.matrix) == GSL_SUCCESS &&
          gsl_linalg_cholesky_svx(&Av.matrix, &dv.vector) == GSL_SUCCESS)
        break;
      mu = mu * 4.0 + 1e-12;
      if (!(mu < 1e30))
        return f;
    }
    /* Predicted decrease of the quadratic model. */
    pred = 0.0;
    for (i = 0; i < D; i++) {
      double hd = 0.0;
      for (j = 0; j < D; j++)
        hd += c->H[i * D + j] * c->d[j];
      pred -= c->g[i] * c->d[i] + 0.5 * c->d[i] * hd;
    }
    for (i = 0; i < D; i++)
      c->un[i] = u[i] + c->d[i];
    fn = objective(c, c->un, c->gn, c->Hn);
    ok = fn < f;
    if (ok) {
      double rho = pred > 0.0 ? (f - fn) / pred : 1.0, df = f - fn;
      memcpy(u, c->un, (size_t)D * sizeof *u);
      memcpy(c->g, c->gn, (size_t)D * sizeof *u);
      memcpy(c->H, c->Hn, (size_t)D * D * sizeof *u);
      f = fn;
      mu *= fmax(1.0 / 3.0, 1.0 - pow(2.0 * rho - 1.0, 3.0));
      nu = 2.0;
      if (df < 1e-15 * fmax(1.0, fabs(f)))
        break;
    } else {
      mu = mu * nu + 1e-12;
      nu *= 2.0;
      if (!(mu < 1e30))
        break;
    }
  }
  canonical(c, u);
  return f;
}

/* Newton, then a look off each width's zero edge (the even map makes
 * s = 0 stationary whatever the likelihood does there). */
static double
maximise(sctx *c, double *u, int hold)
{
  double f = newton(c, u, hold), *v = c->un + c->D; /* spare D */
  int w;
  if (f >= BIG)
    return f;
  for (w = I_SQ(c); w <= I_S0(c); w++) {
    double f2;
    if (!is_free(c, w, hold) || u[w] > 1e-4)
      continue;
    memcpy(v, u, (size_t)c->D * sizeof *v);
    v[w] = 0.1;
    f2 = newton(c, v, hold);
    if (f2 < f - 1e-13) {
      memcpy(u, v, (size_t)c->D * sizeof *v);
      f = f2;
    }
  }
  return f;
}

/* A start at n from shared (q, sigma_q, sigma_0) and each condition's
 * mean amplitude (p_g = mean_g / (n q), kept inside (0.02, 0.98)). */
static void
start_at(const sctx *c, const double *mean, double q, double sq, double s0,
         double *u)
{
  size_t k;
  for (k = 0; k < c->G; k++) {
    double p = mean[k] / (c->n * q);
    u[k] = t_of_p(p < 0.02 ? 0.02 : (p > 0.98 ? 0.98 : p));
  }
  u[I_LQ(c)] = log(q);
  u[I_SQ(c)] = fmax(t_of_sd(sq, c->sref), 0.05);
  u[I_S0(c)] = fmax(t_of_sd(s0, c->sref), 0.05);
}

/* Warm start at n from the solution at n_from: m_g = n p_g kept where
 * p_g stays below 1. */
static void
warm_at(const sctx *c, const double *from, unsigned n_from, double *u)
{
  size_t k;
  memcpy(u, from, (size_t)c->D * sizeof *u);
  for (k = 0; k < c->G; k++) {
    double p = p_of(from[k]) * n_from / c->n;
    u[k] = t_of_p(p > 0.995 ? 0.995 : p);
  }
}

typedef struct starts {
  size_t ns;
  double (*qs)[3]; /* q, sigma_q, sigma_0 */
} starts;

/* Profile of n: best u at each n = 1..nmax into U (nmax x D), objective
 * into F. */
static quantal_status
profile(sctx *c, const double *mean, const starts *s, unsigned nmax,
        double *U, double *F)
{
  const int D = c->D;
  double *u = malloc(2 * (size_t)D * sizeof *u), *w = u + D;
  unsigned n, next_grid = 1;
  size_t i;
  int pass;
  if (u == NULL)
    return QUANTAL_ENOMEM;
  for (n = 1; n <= nmax; n++)
    F[n - 1] = BIG;
  /* Upward with fresh starts on a grid, then downward. */
  for (pass = 0; pass < 2; pass++) {
    for (i = 0; i < nmax; i++) {
      double f;
      n = pass == 0 ? (unsigned)i + 1 : nmax - (unsigned)i;
      c->n = n;
      if (pass == 0 && n == next_grid) {
        size_t j;
        for (j = 0; j < s->ns; j++) {
          start_at(c, mean, s->qs[j][0], s->qs[j][1], s->qs[j][2], w);
          f = maximise(c, w, -1);
          if (f < F[n - 1]) {
            F[n - 1] = f;
            memcpy(U + (size_t)(n - 1) * D, w, (size_t)D * sizeof *w);
          }
        }
        next_grid = n < 12 ? n + 1 : (unsigned)fmax(n + 1.0, floor(n * 1.15));
      }
      if ((pass == 0 && n > 1) || (pass == 1 && n < nmax)) {
        unsigned nf = pass == 0 ? n - 1 : n + 1;
        if (F[nf - 1] < BIG) {
          warm_at(c, U + (size_t)(nf - 1) * D, nf, w);
          f = maximise(c, w, -1);
          if (f < F[n - 1] - 1e-14) {
            F[n - 1] = f;
            memcpy(U + (size_t)(n - 1) * D, w, (size_t)D * sizeof *w);
          }
        }
      }
      if (c->err != QUANTAL_OK) {
        free(u);
        return c->err;
      }
    }
  }
  free(u);
  return QUANTAL_OK;
}

/* Objective with coordinate j held at v, maximised over the rest from
 * the warm point w (updated). */
static double
held(sctx *c, double *w, int j, double v)
{
  w[j] = v;
  return maximise(c, w, j);
}

/* One end of coordinate j's Wilks interval at the current n: from the
 * maximum uhat (objective fhat) in direction dir (+1, -1) to where the
 * objective reaches fneed. lo_b/hi_b bound the coordinate (may be
 * infinite). Returns the end (the bound when the set reaches it;
 * +-INFINITY when it runs away). */
static double
wilks_end(sctx *c, const double *uhat, double fhat, double fneed, int j,
          int dir, double se, double lo_b, double hi_b)
{
  const int D = c->D;
  double *win = malloc(2 * (size_t)D * sizeof *win), *wt, vin, vout, fin,
         fout, step, v, end;
  int it, side = 0;
  if (win == NULL) {
    c->err = QUANTAL_ENOMEM;
    return NAN;
  }
  wt = win + D;
  memcpy(win, uhat, (size_t)D * sizeof *win);
  vin = uhat[j];
  fin = fhat;
  step = fmax(se, 1e-3);
  /* Bracket. */
  for (it = 0;; it++) {
    double bound = dir > 0 ? hi_b : lo_b, f;
    v = vin + dir * step;
    if ((dir > 0 && v >= bound) || (dir < 0 && v <= bound))
      v = bound;
    memcpy(wt, win, (size_t)D * sizeof *wt);
    f = held(c, wt, j, v);
    if (f > fneed) {
      vout = v;
      fout = f;
      break;
    }
    memcpy(win, wt, (size_t)D * sizeof *wt);
    vin = v;
    fin = f;
    if (v == bound || it >= 60) {
      free(win);
      return it >= 60 ? dir * INFINITY : v;
    }
    step *= 2.0;
  }
  /* Illinois on f - fneed between vin (<= 0) and vout (> 0). */
  for (it = 0; it < 60 && fabs(vout - vin) > 1e-7 * fmax(1.0, fabs(vin));
       it++) {
    double a = fin - fneed, b = fout - fneed, f;
    v = vin + (vout - vin) * (-a) / (b - a);
    if (!(fabs(v - vin) > 1e-3 * fabs(vout - vin)) ||
        !(fabs(vout - v) > 1e-3 * fabs(vout - vin)))
      v = 0.5 * (vin + vout);
    memcpy(wt, win, (size_t)D * sizeof *wt);
    f = held(c, wt, j, v);
    if (f > fneed) {
      vout = v;
      fout = f;
      if (side == -1)
        fin = fneed + 0.5 * (fin - fneed);
      side = -1;
    } else {
      memcpy(win, wt, (size_t)D * sizeof *wt);
      vin = v;
      fin = f;
      if (side == 1)
        fout = fneed + 0.5 * (fout - fneed);
      side = 1;
    }
    if (fabs(f - fneed) < 1e-12)
      break;
  }
  end = vin;
  free(win);
  return end;
}

/* Standard errors in u at a maximum, from the Hessian (NaN-free: a
 * coordinate whose curvature is not usable gets 0.1). */
static void
u_se(sctx *c, const double *u, double *se)
{
  const int D = c->D;
  int i, j, ok;
  gsl_matrix_view Av = gsl_matrix_view_array(c->A, (size_t)D, (size_t)D);
  objective(c, u, c->g, c->H);
  for (i = 0; i < D; i++)
    for (j = 0; j < D; j++)
      c->A[i * D + j] = is_free(c, i, -1) && is_free(c, j, -1)
                            ? c->H[i * D + j]
                            : (i == j ? 1.0 : 0.0);
  ok = gsl_linalg_cholesky_decomp1(&Av.matrix) == GSL_SUCCESS &&
       gsl_linalg_cholesky_invert(&Av.matrix) == GSL_SUCCESS;
  for (i = 0; i < D; i++) {
    double v = ok ? c->A[i * D + i] * c->scale : NAN;
    se[i] = v > 0.0 && isfinite(v) ? sqrt(v) : 0.1;
  }
}

static void
hull(quantal_fit_param *p, double lo, double hi)
{
  if (isnan(p->lo) || lo < p->lo)
    p->lo = lo;
  if (isnan(p->hi) || hi > p->hi)
    p->hi = hi;
}

static void
par_init(quantal_fit_param *p, double v)
{
  p->value = v;
  p->lo = p->hi = p->boot_lo = p->boot_hi = NAN;
  p->cal_lo = p->cal_hi = p->cal_lr = NAN;
}

/* Parametric bootstrap of the shared fit: replicates simulated at the
 * maximum (each condition its n_g trials, the minis their count), each
 * refitted (profile of n, no intervals) and, without minis, fitted
 * condition by condition too, for the likelihood-ratio statistic. */
typedef struct sboot {
  const quantal_shared_fit *r;
  quantal_fit_options o;      /* of the replicate fits */
  uint64_t seed;
  unsigned B, next, done;
  double *vals; /* B x nv: n, q, sigma_q, sigma_0, cv_q, p_g, m_g */
  double *lrt;                /* B */
  int *ok;
  size_t nv;
  pthread_mutex_t mu;
  void (*on_progress)(size_t done, size_t total, void *user);
  void *user;
} sboot;

static void *
sboot_worker(void *arg)
{
  sboot *job = arg;
  const quantal_shared_fit *r = job->r;
  size_t G = r->n_groups, g, N = 0;
  double **x = malloc((G + 1) * sizeof *x), *buf;
  for (g = 0; g < G; g++)
    N += r->n_amplitudes[g];
  buf = malloc((N + r->n_minis + 1) * sizeof *buf);
  if (x == NULL || buf == NULL)
    goto done;
  for (;;) {
    unsigned b;
    uint64_t sb;
    quantal_release_params rp;
    quantal_shared_fit *rr = NULL;
    quantal_diag d;
    size_t off = 0;
    int bad = 0;
    b = qtl_claim_next(&job->mu, &job->next, job->B, job->on_progress,
                       job->user);
    if (b >= job->B)
      break;
    job->ok[b] = 0;
    sb = quantal_seed_mix(job->seed, b);
    memset(&rp, 0, sizeof rp);
    rp.model = QUANTAL_RELEASE_BINOMIAL;
    rp.n = (unsigned)r->n.value;
    rp.q = fabs(r->q.value);
    rp.cv_q = r->cv_q.value;
    rp.shape = QUANTAL_QSHAPE_GAUSSIAN;
    rp.noise_sd = r->sigma_0.value;
    for (g = 0; g < G && !bad; g++) {
      rp.p = r->p[g].value;
      x[g] = buf + off;
      bad = quantal_sim_amplitudes(&rp, quantal_seed_mix(sb, g),
                                   r->n_amplitudes[g], x[g], NULL,
                                   NULL) != QUANTAL_OK;
      off += r->n_amplitudes[g];
    }
    if (!bad && r->n_minis) {
      rp.n = 1;
      rp.p = 1.0;
      bad = quantal_sim_amplitudes(&rp, quantal_seed_mix(sb, G), r->n_minis,
                                   buf + off, NULL, NULL) != QUANTAL_OK;
    }
    quantal_diag_clear(&d);
    if (bad || quantal_fit_shared((const double *const *)x, r->n_amplitudes,
                                  G, r->n_minis ? buf + off : NULL,
                                  r->n_minis, &job->o, &rr,
                                  &d) != QUANTAL_OK)
      continue;
    {
      double *v = job->vals + (size_t)b * job->nv;
      v[0] = rr->n.value;
      v[1] = rr->q.value;
      v[2] = rr->sigma_q.value;
      v[3] = rr->sigma_0.value;
      v[4] = rr->cv_q.value;
      for (g = 0; g < G; g++) {
        v[5 + g] = rr->p[g].value;
        v[5 + G + g] = rr->m[g].value;
      }
      job->lrt[b] = rr->lrt_stat;
      job->ok[b] = 1;
    }
    quantal_shared_fit_free(rr);
  }
done:
  free(x);
  free(buf);
  return NULL;
}


static quantal_status
shared_bootstrap(quantal_shared_fit *r, const quantal_fit_options *o,
                 quantal_diag *diag)
{
  sboot job;
  size_t G = r->n_groups, nv = 5 + 2 * G, i, k, nok = 0, ge = 0;
  unsigned t, nth = o->threads;
  pthread_t *th;
  double *col;
  memset(&job, 0, sizeof job);
  job.r = r;
  job.o = *o;
  job.o.bootstrap = 0;
  job.o.profile_ci = 0;
  job.o.on_progress = NULL;
  job.seed = o->seed;
  job.B = o->bootstrap;
  job.nv = nv;
  job.on_progress = o->on_progress;
  job.user = o->user;
  job.vals = malloc((size_t)job.B * nv * sizeof *job.vals);
  job.lrt = malloc((size_t)job.B * sizeof *job.lrt);
  job.ok = calloc(job.B, sizeof *job.ok);
  col = malloc(((size_t)job.B + 1) * sizeof *col);
  if (nth == 0) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    nth = ncpu > 0 ? (unsigned)ncpu : 1;
  }
  if (nth > job.B)
    nth = job.B;
  th = malloc(nth * sizeof *th);
  if (!job.vals || !job.lrt || !job.ok || !col || !th) {
    free(job.vals);
    free(job.lrt);
    free(job.ok);
    free(col);
    free(th);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  pthread_mutex_init(&job.mu, NULL);
  for (t = 0; t < nth; t++)
    if (pthread_create(&th[t], NULL, sboot_worker, &job) != 0)
      break;
  if (t == 0)
    sboot_worker(&job);
  while (t > 0)
    pthread_join(th[--t], NULL);
  pthread_mutex_destroy(&job.mu);
  for (i = 0; i < job.B; i++)
    nok += job.ok[i] != 0;
  r->boot_ok = (unsigned)nok;
  if (nok >= 2) {
    double a = 0.5 * (1.0 - o->level);
    for (k = 0; k < nv; k++) {
      quantal_fit_param *p =
          k == 0   ? &r->n
          : k == 1 ? &r->q
          : k == 2 ? &r->sigma_q
          : k == 3 ? &r->sigma_0
          : k == 4 ? &r->cv_q
          : k < 5 + G ? &r->p[k - 5]
                      : &r->m[k - 5 - G];
      size_t m = 0;
      for (i = 0; i < job.B; i++)
        if (job.ok[i])
          col[m++] = job.vals[i * nv + k];
      qsort(col, m, sizeof *col, qtl_cmp_double);
      p->boot_lo = qtl_percentile_sorted(col, m, a);
      p->boot_hi = qtl_percentile_sorted(col, m, 1.0 - a);
      if (k == 0) { /* n is an integer: the order statistics around */
        p->boot_lo = floor(p->boot_lo);
        p->boot_hi = ceil(p->boot_hi);
      }
    }
    if (!isnan(r->lrt_stat)) {
      size_t m = 0;
      for (i = 0; i < job.B; i++)
        if (job.ok[i] && !isnan(job.lrt[i])) {
          m++;
          ge += job.lrt[i] >= r->lrt_stat;
        }
      r->lrt_boot_p = m ? (1.0 + ge) / (1.0 + m) : NAN;
    }
  }
  free(job.vals);
  free(job.lrt);
  free(job.ok);
  free(col);
  free(th);
  return QUANTAL_OK;
}

void
quantal_shared_fit_free(quantal_shared_fit *r)
{
  if (r == NULL)
    return;
  free(r->n_amplitudes);
  free(r->p);
  free(r->m);
  free(r->loglik_group);
  free(r->profile_n);
  free(r->profile_loglik);
  free(r);
}

quantal_status
quantal_fit_shared(const double *const *amplitudes, const size_t *n,
                   size_t n_groups, const double *minis, size_t n_minis,
                   const quantal_fit_options *opt, quantal_shared_fit **out,
                   quantal_diag *diag)
{
  quantal_fit_options o = opt ? *opt : quantal_fit_options_default();
  quantal_shared_fit *r = NULL;
  sctx c;
  double **x = NULL, *y = NULL, *mean = NULL, *U = NULL, *F = NULL,
         *se = NULL, *uh = NULL, sum = 0.0, s1 = 0.0, s2 = 0.0, fbest,
         thr, z2;
  size_t G = n_groups, g, i, N = 0;
  starts st0 = {0, NULL};
  int sign, D, j;
  unsigned nn, nbest = 1;
  quantal_status st = QUANTAL_OK;

  if (out == NULL || amplitudes == NULL || n == NULL ||
      (minis == NULL && n_minis > 0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1, "no input");
  *out = NULL;
  if (G < 2 || G > MAXG)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "a shared-q fit needs 2 to %d conditions, got %zu", MAXG,
                    G);
  if (!(o.level > 0.0 && o.level < 1.0) || o.n_max < 1 || o.n_max > 10000 ||
      !(o.noise_sd >= 0.0) || !isfinite(o.noise_sd))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "invalid fit options");
  if (o.shape != QUANTAL_QSHAPE_GAUSSIAN)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "the shared-q fit has Gaussian quantal sizes only");
  for (g = 0; g < G; g++) {
    if (n[g] < 10)
      return qtl_fail(diag, QUANTAL_ENODATA, NULL, -1, -1,
                      "condition %zu: need at least 10 amplitudes, got %zu",
                      g + 1, n[g]);
    if (amplitudes[g] == NULL)
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "condition %zu: no amplitudes", g + 1);
    for (i = 0; i < n[g]; i++) {
      if (!isfinite(amplitudes[g][i]))
        return qtl_fail(diag, QUANTAL_ENUMERIC, NULL, -1, (long long)i,
                        "condition %zu: amplitude %zu is not a finite "
                        "number",
                        g + 1, i + 1);
      sum += amplitudes[g][i];
    }
    N += n[g];
  }
  for (i = 0; i < n_minis; i++)
    if (!isfinite(minis[i]))
      return qtl_fail(diag, QUANTAL_ENUMERIC, NULL, -1, (long long)i,
                      "mini %zu is not a finite number", i + 1);
  sign = sum < 0.0 ? -1 : 1;

  memset(&c, 0, sizeof c);
  D = (int)G + 3;
  c.G = G;
  c.D = D;
  c.fixed_s0 = o.noise_sd;
  x = calloc(G, sizeof *x);
  mean = calloc(G, sizeof *mean);
  r = calloc(1, sizeof *r);
  c.ws = qtl_lik_ws_alloc();
  c.H = malloc(((size_t)5 * D * D + 6 * (size_t)D) * sizeof *c.H);
  st0.qs = malloc((G + 2) * sizeof *st0.qs);
  if (x == NULL || mean == NULL || r == NULL || c.ws == NULL ||
      c.H == NULL || st0.qs == NULL)
    goto nomem;
  c.A = c.H + D * D;
  c.Hn = c.A + D * D;
  c.g = c.Hn + D * D;
  c.gn = c.g + D;
  c.d = c.gn + D;
  c.un = c.d + D; /* 2 D: un and maximise's spare */
  r->n_groups = G;
  r->sign = sign;
  r->n_minis = n_minis;
  r->n_amplitudes = calloc(G, sizeof *r->n_amplitudes);
  r->p = calloc(G, sizeof *r->p);
  r->m = calloc(G, sizeof *r->m);
  r->loglik_group = calloc(G, sizeof *r->loglik_group);
  if (!r->n_amplitudes || !r->p || !r->m || !r->loglik_group)
    goto nomem;
  for (g = 0; g < G; g++) {
    double s = 0.0;
    x[g] = malloc(n[g] * sizeof *x[g]);
    if (x[g] == NULL)
      goto nomem;
    for (i = 0; i < n[g]; i++) {
      x[g][i] = sign * amplitudes[g][i];
      s += x[g][i];
      s1 += x[g][i];
      s2 += x[g][i] * x[g][i];
    }
    /* model.c's vector kernel is fastest on sorted amplitudes. */
    gsl_sort(x[g], 1, n[g]);
    mean[g] = s / n[g];
    r->n_amplitudes[g] = n[g];
    if (!(mean[g] > 0.0)) {
      st = qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                    "condition %zu: mean amplitude %s 0 against the "
                    "others: the conditions must share one sign",
                    g + 1, mean[g] < 0.0 ? "below" : "at");
      goto out;
    }
  }
  if (n_minis) {
    double sm = 0.0;
    y = malloc(n_minis * sizeof *y);
    if (y == NULL)
      goto nomem;
    for (i = 0; i < n_minis; i++) {
      y[i] = sign * minis[i];
      sm += y[i];
    }
    if (!(sm > 0.0)) {
      st = qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "the minis have the opposite sign to the amplitudes");
      goto out;
    }
  }
  c.x = (const double *const *)x;
  c.nx = n;
  c.y = y;
  c.ny = n_minis;
  c.scale = 1.0 / (double)(N + n_minis);
  c.sref = sqrt(fmax(s2 / N - (s1 / N) * (s1 / N), 0.0));
  if (!(c.sref > 0.0)) {
    st = qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                  "all amplitudes are equal: nothing to fit");
    goto out;
  }

  /* Starts and the separate fits: each condition alone, binomial. */
  {
    quantal_fit_options so = o;
    double ll_sep = 0.0, s0m = 0.0, sqm = 0.0;
    size_t nok = 0;
    so.models = QUANTAL_FIT_BIT(QUANTAL_FIT_BINOMIAL);
    so.profile_ci = 0;
    so.bootstrap = 0;
    so.on_progress = NULL;
    for (g = 0; g < G; g++) {
      quantal_fit_result *fr = NULL;
      quantal_diag d2;
      quantal_diag_clear(&d2);
      if (quantal_fit_run(x[g], n[g], n_minis ? y : NULL, n_minis, &so, &fr,
                          &d2) == QUANTAL_OK &&
          fr->model[QUANTAL_FIT_BINOMIAL].fitted) {
        const quantal_model_fit *mf = &fr->model[QUANTAL_FIT_BINOMIAL];
        st0.qs[st0.ns][0] = fabs(mf->par[QUANTAL_PAR_Q].value);
        st0.qs[st0.ns][1] = mf->par[QUANTAL_PAR_SIGMA_Q].value;
        st0.qs[st0.ns][2] = mf->par[QUANTAL_PAR_SIGMA_0].value;
        s0m += st0.qs[st0.ns][2];
        sqm += st0.qs[st0.ns][1];
        st0.ns++;
        nok++;
        ll_sep += mf->loglik;
      } else
        ll_sep = NAN;
      quantal_fit_result_free(fr);
    }
    r->loglik_separate = n_minis ? NAN : ll_sep;
    /* No separate fit: a crude start (half the first condition's mean
     * as q); the profile's continuation does the rest. */
    if (nok == 0) {
      st0.qs[0][0] = 0.5 * mean[0];
      st0.qs[0][1] = 0.2 * st0.qs[0][0];
      st0.qs[0][2] = 0.2 * c.sref;
      st0.ns = 1;
    } else {
      /* The average of the separate widths with each start's q. */
      for (i = 0; i < st0.ns; i++) {
        st0.qs[i][1] = sqm / nok;
        st0.qs[i][2] = s0m / nok;
      }
    }
  }

  U = malloc((size_t)o.n_max * D * sizeof *U);
  F = malloc((size_t)o.n_max * sizeof *F);
  se = malloc(2 * (size_t)D * sizeof *se);
  r->profile_n = malloc((size_t)o.n_max * sizeof *r->profile_n);
  r->profile_loglik = malloc((size_t)o.n_max * sizeof *r->profile_loglik);
  if (!U || !F || !se || !r->profile_n || !r->profile_loglik)
    goto nomem;
  uh = se + D;
  st = profile(&c, mean, &st0, o.n_max, U, F);
  if (st != QUANTAL_OK)
    goto fail_st;
  fbest = BIG;
  for (nn = 1; nn <= o.n_max; nn++)
    if (F[nn - 1] < fbest) {
      fbest = F[nn - 1];
      nbest = nn;
    }
  if (!(fbest < BIG)) {
    st = qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                  "the shared-q likelihood could not be maximised");
    goto out;
  }
  r->n_profile = o.n_max;
  for (nn = 1; nn <= o.n_max; nn++) {
    r->profile_n[nn - 1] = nn;
    r->profile_loglik[nn - 1] =
        F[nn - 1] < BIG ? -F[nn - 1] / c.scale : -INFINITY;
  }
  r->loglik = -fbest / c.scale;
  r->n_params = (unsigned)G + 3 + (o.noise_sd > 0.0 ? 0 : 1);
  r->aic = 2.0 * r->n_params - 2.0 * r->loglik;
  r->bic = r->n_params * log((double)(N + n_minis)) - 2.0 * r->loglik;
  r->n_params_separate = (unsigned)G * (o.noise_sd > 0.0 ? 4 : 5);
  if (!isnan(r->loglik_separate)) {
    r->lrt_df = (double)(r->n_params_separate - r->n_params);
    r->lrt_stat = fmax(2.0 * (r->loglik_separate - r->loglik), 0.0);
    r->lrt_p = gsl_cdf_chisq_Q(r->lrt_stat, r->lrt_df);
  } else
    r->lrt_stat = r->lrt_df = r->lrt_p = NAN;

  /* Point estimates at the maximum. */
  c.n = nbest;
  memcpy(uh, U + (size_t)(nbest - 1) * D, (size_t)D * sizeof *uh);
  par_init(&r->n, nbest);
  par_init(&r->q, sign * exp(uh[I_LQ(&c)]));
  par_init(&r->sigma_q, sd_of(uh[I_SQ(&c)], c.sref));
  par_init(&r->sigma_0, o.noise_sd > 0.0 ? o.noise_sd
                                         : sd_of(uh[I_S0(&c)], c.sref));
  par_init(&r->cv_q, r->sigma_q.value / exp(uh[I_LQ(&c)]));
  for (g = 0; g < G; g++) {
    qtl_mix mix;
    qtl_lik_out lo;
    par_init(&r->p[g], p_of(uh[g]));
    par_init(&r->m[g], nbest * p_of(uh[g]));
    memset(&mix, 0, sizeof mix);
    mix.release = QTL_REL_BINOMIAL;
    mix.shape = QUANTAL_QSHAPE_GAUSSIAN;
    mix.n = nbest;
    mix.p = r->p[g].value;
    mix.q = exp(uh[I_LQ(&c)]);
    mix.sigma_q = r->sigma_q.value;
    mix.sigma0 = r->sigma_0.value;
    r->loglik_group[g] =
        qtl_mix_loglik(&mix, x[g], n[g], NULL, 0, c.ws, 0, &lo) == QUANTAL_OK
            ? lo.loglik
            : NAN;
  }

  /* n: the Wilks set of the profile. */
  z2 = gsl_cdf_chisq_Pinv(o.level, 1.0);
  thr = fbest + 0.5 * z2 * c.scale;
  {
    unsigned lo = 0, hi = 0;
    for (nn = 1; nn <= o.n_max; nn++)
      if (F[nn - 1] <= thr) {
        if (lo == 0)
          lo = nn;
        hi = nn;
      }
    r->n.lo = lo;
    r->n.hi = hi == o.n_max ? INFINITY : hi;
    r->n_verdict = hi < o.n_max ? QUANTAL_N_IDENTIFIED
                   : lo == 1    ? QUANTAL_N_FLAT
                                : QUANTAL_N_LOWER_BOUND;
  }
  r->lrt_boot_p = NAN;
  if (o.profile_ci) {
    /* Each coordinate's interval at each n of n's set (all of them when
     * few, else a grid with the ends and the maximum), hulled. */
    unsigned last = 0;
    for (nn = 1; nn <= o.n_max; nn++) {
      double *un = U + (size_t)(nn - 1) * D;
      if (!(F[nn - 1] <= thr))
        continue;
      if (!(r->n.hi - r->n.lo <= 40.0 || nn == nbest ||
            nn == (unsigned)r->n.lo ||
            (isinf(r->n.hi) ? nn == o.n_max : nn == (unsigned)r->n.hi) ||
            last == 0 || nn >= last + (last < 20 ? 1 : last / 10)))
        continue;
      last = nn;
      c.n = nn;
      u_se(&c, un, se);
      for (j = 0; j < D; j++) {
        double lo_b, hi_b, e[2];
        int dd;
        if (!is_free(&c, j, -1))
          continue;
        if (j < (int)G) {
          lo_b = 0.0;
          hi_b = M_PI / 2.0;
        } else if (j == I_LQ(&c)) {
          lo_b = -700.0;
          hi_b = 700.0;
        } else {
          lo_b = 0.0;
          hi_b = 700.0;
        }
        for (dd = 0; dd < 2; dd++)
          e[dd] = wilks_end(&c, un, F[nn - 1], thr, j, dd ? 1 : -1, se[j],
                            lo_b, hi_b);
        if (c.err != QUANTAL_OK) {
          st = c.err;
          goto fail_st;
        }
        if (j < (int)G) {
          double plo = p_of(e[0]), phi = p_of(e[1]);
          if (e[0] == 0.0)
            plo = 0.0;
          if (e[1] == M_PI / 2.0)
            phi = 1.0;
          hull(&r->p[j], plo, phi);
          hull(&r->m[j], nn * plo, nn * phi);
        } else if (j == I_LQ(&c)) {
          double qa = e[0] <= -700.0 ? 0.0 : exp(e[0]);
          double qb = e[1] >= 700.0 ? INFINITY : exp(e[1]);
          if (sign > 0)
            hull(&r->q, qa, qb);
          else
            hull(&r->q, -qb, -qa);
        } else {
          quantal_fit_param *pp = j == I_SQ(&c) ? &r->sigma_q : &r->sigma_0;
          double a = e[0] == 0.0 ? 0.0 : sd_of(e[0], c.sref);
          double b = e[1] >= 700.0 ? INFINITY : sd_of(e[1], c.sref);
          hull(pp, a, b);
        }
      }
    }
    /* n unbounded above: p_g goes to 0 as n grows with m_g = n p_g
     * held (the Poisson limit), so p_g has no lower bound but 0; m_g's
     * interval stays finite. */
    if (isinf(r->n.hi))
      for (g = 0; g < G; g++)
        r->p[g].lo = 0.0;
  }
  if (o.bootstrap > 0) {
    st = shared_bootstrap(r, &o, diag);
    if (st != QUANTAL_OK)
      goto out;
  }
  *out = r;
  r = NULL; /* handed out: the clean-up below frees only the work */
  st = QUANTAL_OK;
  goto out;
nomem:
  st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  goto out;
fail_st:
  st = qtl_fail(diag, st, NULL, -1, -1, "shared-q fit failed");
out:
  free(U);
  free(F);
  free(se);
  free(st0.qs);
  free(y);
  if (x)
    for (g = 0; g < G; g++)
      free(x[g]);
  free(x);
  free(mean);
  free(c.H);
  qtl_lik_ws_free(c.ws);
  quantal_shared_fit_free(r);
  return st;
}
