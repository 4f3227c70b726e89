/* model.c - quantal mixture densities and their log-likelihood. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_gamma.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * The amplitude x of one trial is the sum of k quantal responses plus
 * recording noise, k drawn from the release distribution P(k):
 *
 *   f(x) = sum_k P(k) phi(x; k q, sigma_0^2 + k sigma_q^2)
 *
 * (Stricker & Redman 1994, eq. 1-3; del Castillo & Katz 1954). Everything
 * is evaluated in log space: log P(k) from lgamma-based log pmfs (never
 * factorials), and log f by log-sum-exp over k, so that n in the hundreds
 * and amplitudes far in the tails neither overflow nor underflow.
 */

#define LOG_2PI 1.8378770664093453

/* Components whose log P is more than WINDOW_T below its largest, or
 * whose Gaussian exponent at the point is below -WINDOW_T, are dropped:
 * a dropped term is below b_k = log P(k) + c_k (- WINDOW_T for the
 * second kind). A point whose largest kept term is not GUARD + log(K + 1)
 * above the largest b_k of the components it drops (prefix and suffix
 * maxima, per point) is summed over all k instead, so the dropped mass is
 * below exp(-GUARD) of the kept. The bound used to be the largest b_k of
 * all: with sigma_0 at its floor, k = 0's normalising constant made it so
 * high that points fell back to full sums needlessly. */
#define WINDOW_T 40.0
#define GUARD 20.0

/* exp(d) for -700 <= d <= 0, the range of the log-sum-exp terms below
 * (Tang 1989, table-driven): d = (256 n + j) ln 2 / 256 + r with
 * |r| <= ln 2 / 512 (Cody & Waite split of the constant), exp(r) by its
 * Taylor series to r^4 (truncation below 4e-17 relative), 2^(j/256) from
 * a table and 2^n built in the exponent bits. Inlined and free of
 * branches it costs a fraction of libm's exp, which took a third of the
 * time of a fit (perf). */
static double exp2_tab[256];

static void
exp2_tab_init(void)
{
  int j;
  for (j = 0; j < 256; j++)
    exp2_tab[j] = exp2(j / 256.0);
}

static inline double
exp_nonpos(double d)
{
  const double shift = 6755399441055744.0; /* 1.5 * 2^52: round to int */
  const double inv = 256.0 / 0.6931471805599453;
  /* ln 2 = c_hi + c_lo, c_hi with its low 20 bits zero, so kd c_hi is
   * exact (fdlibm's split). */
  const double c_hi = 0x1.62e42feep-1 / 256.0,
               c_lo = 0x1.a39ef35793c76p-33 / 256.0;
  double kd = d * inv + shift, r, r2, p, two_n;
  int64_t k, j, bits;
  kd -= shift;
  k = (int64_t)kd;
  j = k & 255;
  r = (d - kd * c_hi) - kd * c_lo;
  r2 = r * r;
  p = (1.0 + r) + r2 * (0.5 + r * (1.0 / 6.0) + r2 * (1.0 / 24.0));
  bits = ((k - j) / 256 + 1023) << 52;
  memcpy(&two_n, &bits, sizeof two_n);
  return exp2_tab[j] * p * two_n;
}

void
qtl_lik_ws_free(qtl_lik_ws *ws)
{
  if (ws == NULL)
    return;
  free(ws->logp);
  free(ws->lgam);
  free(ws);
}

qtl_lik_ws *
qtl_lik_ws_alloc(void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, exp2_tab_init);
  return calloc(1, sizeof(qtl_lik_ws));
}

/* Make room for components 0..kmax. One block holds the per-k arrays so a
 * fit allocates once and reuses it for every evaluation. */
static quantal_status
ws_reserve(qtl_lik_ws *ws, unsigned kmax)
{
  size_t cap = (size_t)kmax + 1, i;
  double *blk, *lg;
  if (cap <= ws->kcap)
    return QUANTAL_OK;
  cap = cap < 64 ? 64 : cap + cap / 2;
  /* Eight arrays of cap, lbuf and rk4 of 4 cap each (four points per
   * component in the vector loop), bpre and bsuf, kc8 of 8 cap. */
  blk = malloc((26 * cap + 2) * sizeof *blk);
  lg = malloc((cap + 1) * sizeof *lg);
  if (blk == NULL || lg == NULL) {
    free(blk);
    free(lg);
    return QUANTAL_ENOMEM;
  }
  free(ws->logp);
  free(ws->lgam);
  ws->logp = blk;
  ws->c = blk + cap;
  ws->h = blk + 2 * cap;
  ws->mu = blk + 3 * cap;
  ws->v = blk + 4 * cap;
  ws->rk = blk + 5 * cap;
  ws->ga = blk + 6 * cap;
  ws->gc = blk + 7 * cap;
  ws->lbuf = blk + 8 * cap;
  ws->bpre = blk + 12 * cap;
  ws->bsuf = blk + 13 * cap + 1;
  ws->rk4 = blk + 14 * cap + 2;
  ws->kc8 = blk + 18 * cap + 2;
  ws->lgam = lg;
  /* lgam[k] = ln k!, from gsl_sf_lnfact (thread-safe, unlike lgamma's
   * signgam). */
  for (i = 0; i <= cap; i++)
    lg[i] = gsl_sf_lnfact((unsigned)i);
  ws->kcap = cap;
  return QUANTAL_OK;
}

/* The Poisson tail beyond m + 11 sqrt(m) + 30 is below exp(-50) of the
 * mode for every m (Chernoff bound). */
static unsigned
poisson_cover(double m)
{
  if (!(m >= 0.0))
    m = 0.0;
  if (m > 1e6)
    return 2000000u;
  return (unsigned)ceil(m + 11.0 * sqrt(m) + 30.0);
}

unsigned
qtl_mix_kmax(const qtl_mix *mix)
{
  return mix->release == QTL_REL_POISSON ? poisson_cover(mix->m) : mix->n;
}

/* The largest k of the sum over components for the amplitudes x.
 * For a Poisson release that is qtl_mix_kmax's, unless an amplitude lies
 * beyond its K q: the term that dominates there is near k = x / q (both
 * P(k) and the Gaussian fall beyond max(m, x / q)), and truncating at
 * the m-based K made the density of such a point hundreds of log-units
 * too small (m 2, q 0.5, x 50: -554 instead of -297). */
static unsigned
mix_kmax_for(const qtl_mix *mix, const double *x, size_t nx)
{
  unsigned K = qtl_mix_kmax(mix);
  double xmax = -INFINITY;
  size_t i;
  if (mix->release != QTL_REL_POISSON || !(mix->q > 0.0))
    return K;
  for (i = 0; i < nx; i++)
    xmax = x[i] > xmax ? x[i] : xmax;
  if (xmax / mix->q > K) {
    unsigned K2 = poisson_cover(fmax(mix->m, xmax / mix->q));
    K = K2 > K ? K2 : K;
  }
  return K;
}

static quantal_status logpmf_to(const qtl_mix *mix, qtl_lik_ws *ws,
                                unsigned K);

quantal_status
qtl_mix_logpmf(const qtl_mix *mix, qtl_lik_ws *ws, unsigned *kmax_out)
{
  unsigned K = qtl_mix_kmax(mix);
  quantal_status st = logpmf_to(mix, ws, K);
  if (st == QUANTAL_OK)
    *kmax_out = K;
  return st;
}

/* log P(k) for k = 0..K into ws->logp. */
static quantal_status
logpmf_to(const qtl_mix *mix, qtl_lik_ws *ws, unsigned K)
{
  unsigned k;
  quantal_status st;
  double *lp;
  /* Beyond 100000 quanta per trial the parameters are absurd (an
   * optimiser exploring a flat direction): refuse rather than allocate. */
  if (K > 100000)
    return QUANTAL_ERANGE;
  st = ws_reserve(ws, K);
  if (st != QUANTAL_OK)
    return st;
  lp = ws->logp;
  switch (mix->release) {
  case QTL_REL_POISSON: {
    double lm = log(mix->m);
    for (k = 0; k <= K; k++)
      lp[k] = mix->m > 0.0 ? k * lm - mix->m - ws->lgam[k]
                           : (k == 0 ? 0.0 : -INFINITY);
    break;
  }
  case QTL_REL_BINOMIAL: {
    /* log C(n,k) + k log p + (n-k) log(1-p); log1p keeps small p exact. */
    double lp1 = log(mix->p), lq1 = log1p(-mix->p);
    unsigned n = mix->n;
    for (k = 0; k <= K; k++)
      lp[k] = ws->lgam[n] - ws->lgam[k] - ws->lgam[n - k] +
              (k ? k * lp1 : 0.0) + (n - k ? (n - k) * lq1 : 0.0);
    break;
  }
  case QTL_REL_BETABIN: {
    /* Beta-binomial with mean p and intra-class correlation rho
     * (Bhumbra & Beato 2013): p_i ~ Beta(a, b), a = p (1/rho - 1),
     * b = (1 - p)(1/rho - 1); P(k) = C(n,k) B(k+a, n-k+b) / B(a, b). */
    double s = 1.0 / mix->rho - 1.0, a = mix->p * s, b = (1.0 - mix->p) * s;
    unsigned n = mix->n;
    double lb = gsl_sf_lnbeta(a, b);
    for (k = 0; k <= K; k++)
      lp[k] = ws->lgam[n] - ws->lgam[k] - ws->lgam[n - k] +
              gsl_sf_lnbeta(k + a, n - k + b) - lb;
    break;
  }
  case QTL_REL_FREE:
    for (k = 0; k <= K; k++)
      lp[k] = (k < mix->k_first || mix->w[k] <= 0.0) ? -INFINITY
                                                     : log(mix->w[k]);
    break;
  }
  for (k = 0; k <= K; k++)
    if (isnan(lp[k]))
      return QUANTAL_ENUMERIC;
  return QUANTAL_OK;
}

/* Per-component constants: mean, variance and the log normalising
 * constant of the Gaussian (or moment-matched gamma) component. */
static void
component_consts(const qtl_mix *mix, qtl_lik_ws *ws, unsigned K)
{
  unsigned k;
  double s02 = mix->sigma0 * mix->sigma0, sq2 = mix->sigma_q * mix->sigma_q;
  for (k = 0; k <= K; k++) {
    double v = s02 + k * sq2;
    ws->mu[k] = k * mix->q;
    ws->v[k] = v;
    ws->h[k] = 0.5 / v;
    ws->c[k] = -0.5 * (LOG_2PI + log(v));
    {
      /* For the vector loop's weighted sums (Gaussian components): k,
       * iv = 1 / v, iv^2, iv^3, k iv, k iv^2, k^2 iv (also the EM
       * weight k^2 2 h: the factor 2 is exact either way); slot 7 pads
       * the eight to a cache line. */
      double kd = (double)k, iv = 2.0 * ws->h[k], *c8 = ws->kc8 + 8 * k;
      c8[0] = kd;
      c8[1] = iv;
      c8[2] = iv * iv;
      c8[3] = iv * iv * iv;
      c8[4] = kd * iv;
      c8[5] = kd * iv * iv;
      c8[6] = kd * kd * iv;
    }
    if (mix->shape == QUANTAL_QSHAPE_GAMMA && k > 0) {
      /* Gamma with the same mean k q and variance sigma_0^2 + k sigma_q^2
       * as the Gaussian component: shape a = mu^2/v, scale v/mu. This
       * stands in for the (intractable) convolution of a gamma quantal
       * sum with Gaussian noise; the failure component stays Gaussian. */
      double a = ws->mu[k] * ws->mu[k] / v, th = v / ws->mu[k];
      ws->ga[k] = a;
      ws->gc[k] = -a * log(th) - gsl_sf_lngamma(a);
      ws->h[k] = 1.0 / th;
    }
  }
}

static double
comp_log(const qtl_mix *mix, const qtl_lik_ws *ws, unsigned k, double x,
         double logx)
{
  if (mix->shape == QUANTAL_QSHAPE_GAMMA && k > 0) {
    if (!(x > 0.0))
      return -INFINITY;
    return ws->gc[k] + (ws->ga[k] - 1.0) * logx - x * ws->h[k];
  }
  {
    double d = x - ws->mu[k];
    return ws->c[k] - d * d * ws->h[k];
  }
}


/* ---- four points at a time --------------------------------------------
 *
 * The sum over points for Gaussian components without EM sums (what every
 * Newton step asks for) runs over four points at once, one point per lane
 * of a GCC vector, compiled for AVX2 with FMA (x86-64-v3) and chosen at
 * run time (__builtin_cpu_supports); elsewhere the scalar loop below
 * runs. Each component k of the union of the four windows is one step of
 * the loop, so per-point work (window, log, Hessian assembly) is
 * vectorised too and no horizontal sums are needed. Points arrive sorted
 * (fit.c sorts them), so the four windows nearly coincide. Each lane's
 * terms are taken relative to its term at k = round(x / q), a term of the
 * sum (so the sum is at least 1) and, the terms being log-concave in k
 * near there, close to the largest; exp's argument is clamped to
 * [-700, 700]. exp is a degree-12 Taylor series after the ln 2 reduction
 * (Estrin's scheme), without a table and so without gathers. */
#if defined(__x86_64__) && defined(__GNUC__)
#define QTL_V4 1
#endif

#ifdef QTL_V4
typedef double v4d __attribute__((vector_size(32)));
typedef long long v4l __attribute__((vector_size(32)));
#define V4_TARGET __attribute__((target("avx2,fma")))
/* The helpers carry the target too: clang refuses AVX vectors across a
 * call into code without it, even when inlined. */
#define V4_INLINE static inline __attribute__((always_inline)) V4_TARGET

V4_INLINE v4d
v4_set1(double a)
{
  v4d v = {a, a, a, a};
  return v;
}

V4_INLINE v4d
v4_sel(v4l m, v4d a, v4d b)
{
  return (v4d)(((v4l)a & m) | ((v4l)b & ~m));
}

V4_INLINE v4d
v4_clamp(v4d a, double lo, double hi)
{
  a = v4_sel(a < lo, v4_set1(lo), a);
  return v4_sel(a > hi, v4_set1(hi), a);
}

V4_INLINE double
v4_hsum(v4d a)
{
  return (a[0] + a[1]) + (a[2] + a[3]);
}

/* exp(d), -700 <= d <= 700, lane by lane. */
V4_INLINE v4d
v4_exp(v4d d)
{
  const v4d shift = v4_set1(6755399441055744.0); /* 1.5 * 2^52 */
  v4d ks = d * 1.4426950408889634 + shift, kd = ks - shift, r, p;
  /* The integer n sits in the low bits of ks: no conversion instruction
   * (AVX2 has none from double to int64). */
  v4l n = (v4l)ks - (v4l)shift;
  r = (d - kd * 0x1.62e42feep-1) - kd * 0x1.a39ef35793c76p-33;
  {
    v4d r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    v4d q0 = (1.0 + r) + r2 * (0.5 + r * (1.0 / 6.0));
    v4d q1 = (1.0 / 24.0 + r * (1.0 / 120.0)) +
             r2 * (1.0 / 720.0 + r * (1.0 / 5040.0));
    v4d q2 = (1.0 / 40320.0 + r * (1.0 / 362880.0)) +
             r2 * (1.0 / 3628800.0 + r * (1.0 / 39916800.0));
    p = (q0 + r4 * q1) + r8 * (q2 + r4 * (1.0 / 479001600.0));
  }
  n = (n + 1023) << 52;
  return p * (v4d)n;
}

/* Four points x[0..3] (lanes past nlane repeat the last point and are
 * dropped), components lo..hi. Adds the log-likelihood of the real lanes
 * to *ll, their gradient and Hessian sums to g, GT, H (as lanes, summed
 * by the caller), their responsibilities to ws->rk. Returns 0 when a lane
 * has zero density, -1 when a lane's largest term falls below bound and
 * the window was restricted (redo over every component), else 1. */
V4_INLINE int
v4_quad(const qtl_mix *mix, qtl_lik_ws *ws, v4d vx, int nlane, unsigned lo,
        unsigned hi, int restricted, double bound, int grad, int hess,
        int em, const double *rel, v4d *ll, v4d *lp, v4d *g, v4d *GT,
        v4d *H, v4d *EM)
{
  const double *A = ws->ga, *mu = ws->mu, *h = ws->h;
  double *eb = ws->lbuf;
  v4d z = v4_set1(0.0), ref = z, vmax;
  v4d s, aq, a0, av, hk, hk2, hkg0, hkg1, hkg2, hqq, hq0, hqv, h00, h0v, hvv;
  v4d be2, bke2, bb;
  unsigned k;
  int j, pass;
  /* Reference: each lane's term at the component nearest x / q, or the
   * largest over the window when that one is -inf (a free weight of 0).
   * Any term will do (the sum is then at least 1); a largest term more
   * than 600 above it makes a second pass below. */
  for (j = 0; j < 4; j++) {
    double kr = floor(vx[j] / mix->q + 0.5), best, dc;
    long kc = kr <= (double)lo ? (long)lo : (kr >= (double)hi ? (long)hi : (long)kr),
         kk;
    dc = vx[j] - mu[kc];
    best = A[kc] - dc * dc * h[kc];
    if (!(best > -INFINITY))
      for (kk = lo; kk <= (long)hi; kk++) {
        double d = vx[j] - mu[kk], l = A[kk] - d * d * h[kk];
        best = l > best ? l : best;
      }
    ref[j] = best;
  }
  for (pass = 0;; pass++) {
    int redo = 0;
    vmax = v4_set1(-INFINITY);
    s = z;
    /* The terms first, then (below) the sums that weight them: in one
     * loop the fifteen accumulators and the exponential's temporaries
     * did not fit the sixteen registers, and the spills cost more than
     * reading the terms back. */
    /* Two components per step: their exponentials are independent
     * chains of dependent operations, which one alone left waiting. The
     * sum and the largest are still formed in the order of k. */
    for (k = lo; k + 1 <= hi; k += 2) {
      v4d d0 = vx - mu[k], l0 = A[k] - d0 * d0 * h[k], e0;
      v4d d1 = vx - mu[k + 1], l1 = A[k + 1] - d1 * d1 * h[k + 1], e1;
      e0 = v4_exp(v4_clamp(l0 - ref, -700.0, 700.0));
      e1 = v4_exp(v4_clamp(l1 - ref, -700.0, 700.0));
      vmax = v4_sel(l0 > vmax, l0, vmax);
      vmax = v4_sel(l1 > vmax, l1, vmax);
      memcpy(eb + 4 * (size_t)(k - lo), &e0, sizeof e0);
      memcpy(eb + 4 * (size_t)(k + 1 - lo), &e1, sizeof e1);
      s += e0;
      s += e1;
    }
    for (; k <= hi; k++) {
      v4d d = vx - mu[k], l = A[k] - d * d * h[k], e;
      vmax = v4_sel(l > vmax, l, vmax);
      e = v4_exp(v4_clamp(l - ref, -700.0, 700.0));
      memcpy(eb + 4 * (size_t)(k - lo), &e, sizeof e);
      s += e;
    }
    for (j = 0; j < nlane; j++) {
      if (!(vmax[j] > -INFINITY))
        return 0;
      if (restricted && !(vmax[j] >= bound))
        return -1;
      /* A term far above the reference would have been clamped: once
       * more with the largest terms as reference. */
      if (vmax[j] - ref[j] > 600.0)
        redo = 1;
    }
    if (!redo || pass > 0)
      break;
    ref = vmax;
  }
  aq = a0 = av = hk = hk2 = hkg0 = hkg1 = hkg2 = z;
  hqq = hq0 = hqv = h00 = h0v = hvv = z;
  be2 = bke2 = bb = z;
  if (grad || em)
    for (k = lo; k <= hi; k++) {
      /* The component's constants (kc8, component_consts): k,
       * iv = 1 / v_k, iv^2, iv^3, k iv, k iv^2, k^2 iv. */
      const double *c8 = ws->kc8 + 8 * (size_t)k;
      v4d d = vx - mu[k], e;
      memcpy(&e, eb + 4 * (size_t)(k - lo), sizeof e);
      if (grad) {
        double kd = c8[0], iv = c8[1];
        v4d G = 0.5 * (d * d * c8[2] - iv), eG = e * G;
        v4d gq = c8[4] * d;
        aq += e * gq;
        a0 += eG;
        av += eG * kd;
        if (hess) {
          v4d Hv = 0.5 * c8[2] - d * d * c8[3];
          v4d q0 = gq * G - c8[5] * d, v00 = Hv + G * G;
          v4d ek = e * kd;
          hk += ek;
          hk2 += ek * kd;
          hkg0 += ek * gq;
          hkg1 += ek * G;
          hkg2 += (ek * kd) * G;
          hqq += e * (gq * gq - c8[6]);
          hq0 += e * q0;
          hqv += ek * q0;
          h00 += e * v00;
          h0v += ek * v00;
          hvv += (ek * kd) * v00;
        }
      }
      if (em) {
        /* The sums of the generalised EM updates (see the scalar loop of
         * qtl_mix_loglik); hk and hk2 double as e k and e k^2. */
        double kd = c8[0];
        v4d ed2 = e * (d * d);
        if (!hess) {
          hk += e * kd;
          hk2 += e * (kd * kd);
        }
        be2 += ed2;
        bke2 += ed2 * kd;
        bb += e * c8[6];
      }
    }
  {
    v4d inv = 1.0 / s, m = z, one = v4_set1(1.0);
    for (j = 0; j < 4; j++)
      m[j] = j < nlane ? 1.0 : 0.0;
    /* log f = ref + log s. s >= 1 (ref is one of the terms) and mostly
     * below K + 1 (ref is near the largest): such s go into the caller's
     * running products, whose logs it takes every 8 factors; a larger s
     * (up to e^600 (K + 1)) has its log taken here. */
    for (j = 0; j < nlane; j++)
      if (!(s[j] <= 0x1p64)) {
        ref[j] += log(s[j]);
        s[j] = 1.0;
      }
    *ll += ref * m;
    *lp *= v4_sel(m != 0.0, s, one);
    if (!grad && !em)
      return 1;
    inv *= m; /* dropped lanes contribute nothing */
    if (em) {
      EM[0] += m;
      EM[1] += hk * inv;
      EM[2] += hk2 * inv;
      EM[3] += be2 * inv;
      EM[4] += bke2 * inv;
      EM[5] += bb * inv;
    }
    for (k = lo; k <= hi; k++) {
      /* per lane; the lanes are summed once, at the end (v4_points) */
      v4d e, a;
      memcpy(&e, eb + 4 * (size_t)(k - lo), sizeof e);
      memcpy(&a, ws->rk4 + 4 * (size_t)k, sizeof a);
      a += e * inv;
      memcpy(ws->rk4 + 4 * (size_t)k, &a, sizeof a);
    }
    g[0] += aq * inv;
    g[1] += a0 * inv;
    g[2] += av * inv;
    if (hess) {
      /* Per lane: E[d2 L + g g'] - E[g] E[g]' over the softmax weights,
       * the release entry a_k = rel[0] k + rel[1], its derivative
       * rel[2] k + rel[3]. */
      v4d gb[QTL_NTH], E2[10], mk = hk * inv;
      double ra = rel[0], rb = rel[1];
      int u, w, t = 0;
      gb[QTL_TH_REL] = (ra * mk + rb) * m;
      gb[QTL_TH_Q] = aq * inv;
      gb[QTL_TH_V0] = a0 * inv;
      gb[QTL_TH_VQ] = av * inv;
      E2[0] = (ra * ra * hk2 * inv + 2.0 * ra * rb * mk + rb * rb +
               rel[2] * mk + rel[3]) * m;
      E2[1] = ra * hkg0 * inv + rb * gb[QTL_TH_Q];
      E2[2] = ra * hkg1 * inv + rb * gb[QTL_TH_V0];
      E2[3] = ra * hkg2 * inv + rb * gb[QTL_TH_VQ];
      E2[4] = hqq * inv;
      E2[5] = hq0 * inv;
      E2[6] = hqv * inv;
      E2[7] = h00 * inv;
      E2[8] = h0v * inv;
      E2[9] = hvv * inv;
      for (u = 0; u < QTL_NTH; u++) {
        GT[u] += gb[u];
        for (w = u; w < QTL_NTH; w++, t++)
          H[t] += E2[t] - gb[u] * gb[w];
      }
    }
  }
  return 1;
}

/* The k range where (x - k q)^2 <= 2 T v_k, v_k = s0^2 + k sq^2 (see
 * phi_window), as whole numbers clipped to [lo, hi]; empty: lo > hi. */
V4_INLINE void
v4_window(double x, double q, double s02, double sq2, long plo, long phi_,
          long *lo, long *hi)
{
  double a = q * q, b = -(2.0 * x * q + 2.0 * WINDOW_T * sq2),
         c = x * x - 2.0 * WINDOW_T * s02, disc = b * b - 4.0 * a * c;
  long l = plo, u = phi_;
  if (disc < 0.0) {
    *lo = 1;
    *hi = 0;
    return;
  }
  disc = sqrt(disc);
  {
    double ka = (-b - disc) / (2.0 * a), kb = (-b + disc) / (2.0 * a);
    if (ka > (double)l)
      l = ka > (double)u ? u + 1 : (long)ceil(ka);
    if (kb < (double)u)
      u = kb < (double)l ? l - 1 : (long)floor(kb);
  }
  *lo = l;
  *hi = u;
}

/* The sum over points. Returns the log-likelihood (-INFINITY when a point
 * has zero density) and adds to g (d/dq, d/dv0, d/dvq), H and GT;
 * ws->rk receives the responsibilities when grad is set. ws->lbuf must
 * hold 4 (K + 1) values. */
V4_TARGET static double
v4_points(const qtl_mix *mix, qtl_lik_ws *ws, const double *x, size_t nx,
          unsigned K, unsigned k0, unsigned plo, unsigned phi_, double extra,
          int grad, int hess, int em, const double *rel, double *g,
          double H[QTL_NTH][QTL_NTH], double *GT, double *emsum)
{
  double s02 = mix->sigma0 * mix->sigma0, sq2 = mix->sigma_q * mix->sigma_q;
  v4d z = v4_set1(0.0), ll = z, lp = v4_set1(1.0), vg[3] = {z, z, z},
      vGT[QTL_NTH] = {z, z, z, z},
      vH[10] = {z, z, z, z, z, z, z, z, z, z}, vEM[6] = {z, z, z, z, z, z};
  size_t i;
  int u, w, t;
  if (grad || em)
    memset(ws->rk4, 0, 4 * ((size_t)K + 1) * sizeof *ws->rk4);
  for (i = 0; i < nx; i += 4) {
    int nl = nx - i < 4 ? (int)(nx - i) : 4, j, r;
    long lo = LONG_MAX, hi = LONG_MIN;
    v4d vx;
    for (j = 0; j < 4; j++) {
      long a, b;
      vx[j] = x[i + (j < nl ? j : nl - 1)];
      v4_window(vx[j], mix->q, s02, sq2, plo, phi_, &a, &b);
      if (a > b) {
        /* Empty window: the whole range. */
        a = k0;
        b = K;
      }
      lo = a < lo ? a : lo;
      hi = b > hi ? b : hi;
    }
    {
      /* The largest bound on a term the window drops. */
      double bound = ws->bpre[lo] > ws->bsuf[hi] ? ws->bpre[lo] : ws->bsuf[hi];
      r = v4_quad(mix, ws, vx, nl, (unsigned)lo, (unsigned)hi,
                  lo > (long)k0 || hi < (long)K, bound + extra, grad, hess,
                  em, rel, &ll, &lp, vg, vGT, vH, vEM);
    }
    if (r < 0)
      r = v4_quad(mix, ws, vx, nl, k0, K, 0, 0.0, grad, hess, em, rel, &ll,
                  &lp, vg, vGT, vH, vEM);
    if (r == 0)
      return -INFINITY;
    /* Every 32 points (8 factors of at most 2^64 each per lane: no
     * overflow) the products' logs join the sum: one log per lane
     * instead of one per point, which had been 6 % of a fit. */
    if ((i & 31) == 28) {
      for (j = 0; j < 4; j++)
        ll[j] += log(lp[j]);
      lp = v4_set1(1.0);
    }
  }
  for (u = 0; u < 4; u++)
    ll[u] += log(lp[u]);
  if (grad || em) {
    unsigned k;
    for (k = 0; k <= K; k++) {
      v4d a;
      memcpy(&a, ws->rk4 + 4 * (size_t)k, sizeof a);
      ws->rk[k] += v4_hsum(a);
    }
  }
  for (u = 0; u < 3; u++)
    g[u] += v4_hsum(vg[u]);
  for (u = 0; u < 6; u++)
    emsum[u] += v4_hsum(vEM[u]);
  for (u = 0, t = 0; u < QTL_NTH; u++) {
    GT[u] += v4_hsum(vGT[u]);
    for (w = u; w < QTL_NTH; w++, t++)
      H[u][w] += v4_hsum(vH[t]);
  }
  return v4_hsum(ll);
}

static int v4_ok;

static void
v4_init(void)
{
  __builtin_cpu_init();
  v4_ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int
v4_usable(void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, v4_init);
  return v4_ok;
}
#endif /* QTL_V4 */

/* The k range where (x - k q)^2 <= 2 T v_k, v_k = s0^2 + k sq^2: the roots
 * of q^2 k^2 - (2 x q + 2 T sq^2) k + x^2 - 2 T s0^2 = 0. */
static void
phi_window(double x, double q, double s02, double sq2, double *klo,
           double *khi)
{
  double a = q * q, b = -(2.0 * x * q + 2.0 * WINDOW_T * sq2),
         c = x * x - 2.0 * WINDOW_T * s02, disc = b * b - 4.0 * a * c;
  if (disc < 0.0 || a <= 0.0) {
    *klo = 1.0;
    *khi = 0.0;
    return;
  }
  disc = sqrt(disc);
  *klo = (-b - disc) / (2.0 * a);
  *khi = (-b + disc) / (2.0 * a);
}

/* Log terms log P(k) + log phi_k(x) of components lo..hi into ws->lbuf,
 * and their maximum. */
static inline void
terms(const qtl_mix *mix, qtl_lik_ws *ws, unsigned lo, unsigned hi, double x,
      double logx, double *lmax_out)
{
  double lmax = -INFINITY;
  unsigned k;
  if (mix->shape == QUANTAL_QSHAPE_GAMMA) {
    for (k = lo; k <= hi; k++) {
      double l = ws->logp[k] + comp_log(mix, ws, k, x, logx);
      ws->lbuf[k] = l;
      lmax = fmax(lmax, l);
    }
  } else {
    const double *A = ws->ga, *mu = ws->mu, *h = ws->h;
    double *lb = ws->lbuf;
    for (k = lo; k <= hi; k++) {
      double d = x - mu[k], l = A[k] - d * d * h[k];
      lb[k] = l;
      lmax = l > lmax ? l : lmax;
    }
  }
  *lmax_out = lmax;
}

quantal_status
qtl_mix_loglik(const qtl_mix *mix, const double *x, size_t nx,
               const double *minis, size_t nm, qtl_lik_ws *ws, int flags,
               qtl_lik_out *out)
{
  unsigned K, k, plo, phi_, k0;
  quantal_status st;
  double lpmax = -INFINITY, s02, sq2, ll = 0.0;
  double g_q = 0.0, g_v0 = 0.0, g_vq = 0.0;
  double e_r = 0.0, e_rk = 0.0, e_rk2 = 0.0, e_e2 = 0.0, e_ke2 = 0.0;
  double e_b = 0.0;
  int hess = (flags & QTL_LIK_HESS) != 0;
  int grad = hess || (flags & QTL_LIK_GRAD) != 0, em = (flags & QTL_LIK_EM) != 0;
  /* Hessian: the release derivative of log P(k) is linear in k,
   * a_k = ra k + rb, and so is its second derivative, rc k + rd. */
  double ra = 0.0, rb = 0.0, rc = 0.0, rd = 0.0, H[QTL_NTH][QTL_NTH];
  double GT[QTL_NTH];
  int gamma = mix->shape == QUANTAL_QSHAPE_GAMMA;
  size_t i;

  memset(out, 0, sizeof *out);
  if (!(mix->q > 0.0) || !(mix->sigma0 > 0.0) || !(mix->sigma_q >= 0.0))
    return QUANTAL_ENUMERIC;
  K = mix_kmax_for(mix, x, nx);
  st = logpmf_to(mix, ws, K);
  if (st != QUANTAL_OK)
    return st;
  component_consts(mix, ws, K);
  k0 = mix->release == QTL_REL_FREE ? mix->k_first : 0;
  if (hess) {
    if (mix->shape == QUANTAL_QSHAPE_GAMMA || mix->release == QTL_REL_BETABIN)
      return QUANTAL_EINVAL;
    memset(H, 0, sizeof H);
    memset(GT, 0, sizeof GT);
    if (mix->release == QTL_REL_POISSON) {
      /* log P = k log m - m - log k!: a = k / m - 1, a' = -k / m^2. */
      ra = 1.0 / mix->m;
      rb = -1.0;
      rc = -1.0 / (mix->m * mix->m);
    } else if (mix->release == QTL_REL_BINOMIAL) {
      /* a = k / p - (n - k) / (1 - p), a' = -k / p^2 - (n - k) / (1 - p)^2. */
      double p = mix->p, u = 1.0 - p;
      ra = 1.0 / p + 1.0 / u;
      rb = -(double)mix->n / u;
      rc = -1.0 / (p * p) + 1.0 / (u * u);
      rd = -(double)mix->n / (u * u);
    }
  }
  for (k = 0; k <= K; k++) {
    if (ws->logp[k] > lpmax)
      lpmax = ws->logp[k];
    ws->rk[k] = 0.0;
  }
  /* The release window: components with log P(k) within WINDOW_T of the
   * mode. */
  for (plo = k0; plo < K && ws->logp[plo] < lpmax - WINDOW_T; plo++)
    ;
  for (phi_ = K; phi_ > plo && ws->logp[phi_] < lpmax - WINDOW_T; phi_--)
    ;
  s02 = mix->sigma0 * mix->sigma0;
  sq2 = mix->sigma_q * mix->sigma_q;

  if (gamma) {
    /* The gamma density is not bounded by the Gaussian constants: sum
     * over every component. */
    plo = k0;
    phi_ = K;
  }
  /* Gaussian terms: log P(k) + log normalising constant, once per call
   * rather than once per point and component. */
  if (!gamma) {
    double m = -INFINITY, b;
    for (k = 0; k <= K; k++)
      ws->ga[k] = ws->logp[k] + ws->c[k];
    /* b_k and its prefix and suffix maxima over k0..K (see WINDOW_T). */
    for (k = k0; k <= K; k++) {
      ws->bpre[k] = m;
      b = ws->ga[k] - (k >= plo && k <= phi_ ? WINDOW_T : 0.0);
      m = b > m ? b : m;
    }
    ws->bpre[K + 1] = m;
    m = -INFINITY;
    for (k = K + 1; k-- > k0;) {
      ws->bsuf[k] = m;
      b = ws->ga[k] - (k >= plo && k <= phi_ ? WINDOW_T : 0.0);
      m = b > m ? b : m;
    }
  }
#ifdef QTL_V4
  if (!gamma && v4_usable()) {
    double rel[4] = {ra, rb, rc, rd}, gg[3] = {0.0, 0.0, 0.0};
    double es[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
    ll = v4_points(mix, ws, x, nx, K, k0, plo, phi_,
                   GUARD + log((double)K + 1.0), grad, hess, em, rel, gg, H,
                   GT, es);
    if (!(ll > -INFINITY)) {
      out->loglik = -INFINITY;
      return QUANTAL_OK;
    }
    g_q = gg[0];
    g_v0 = gg[1];
    g_vq = gg[2];
    e_r = es[0];
    e_rk = es[1];
    e_rk2 = es[2];
    e_e2 = es[3];
    e_ke2 = es[4];
    e_b = es[5];
    nx = 0; /* done: skip the general loop below */
  }
#endif
  for (i = 0; i < nx; i++) {
    double xi = x[i], logx = gamma && xi > 0.0 ? log(xi) : 0.0;
    double lmax = -INFINITY, sum = 0.0, lf;
    long lo = plo, hi = phi_;
    int full = 0;
    if (!gamma) {
      double a, b;
      phi_window(xi, mix->q, s02, sq2, &a, &b);
      if (a > (double)lo)
        lo = a > (double)hi ? hi + 1 : (long)ceil(a);
      if (b < (double)hi)
        hi = b < (double)lo ? lo - 1 : (long)floor(b);
    }
    if (lo > hi)
      full = 1;
    else {
      terms(mix, ws, (unsigned)lo, (unsigned)hi, xi, logx, &lmax);
      /* Too little mass inside the window for the bound on what was
       * dropped: sum over everything (rare: points in the far tails). */
      if ((lo > (long)k0 || hi < (long)K) &&
          !(lmax >= fmax(ws->bpre[lo], ws->bsuf[hi]) + GUARD +
                        log((double)K + 1.0)))
        full = 1;
    }
    if (full) {
      lo = k0;
      hi = K;
      terms(mix, ws, (unsigned)lo, (unsigned)hi, xi, logx, &lmax);
    }
    if (!(lmax > -INFINITY)) {
      /* The point has zero density under these parameters. */
      out->loglik = -INFINITY;
      return QUANTAL_OK;
    }
    for (k = (unsigned)lo; k <= (unsigned)hi; k++) {
      /* Terms below exp(-700) of the largest are 0 in double precision
       * next to it. */
      double dk = ws->lbuf[k] - lmax,
             e = exp_nonpos(dk > -700.0 ? dk : -700.0);
      ws->lbuf[k] = e;
      sum += e;
    }
    lf = lmax + log(sum);
    ll += lf;
    if (grad || em) {
      /* Sums over k of the unnormalised terms in per-point accumulators,
       * scaled by 1 / sum once: chains of additions across all points
       * made this loop latency-bound. */
      double inv = 1.0 / sum, a_q = 0.0, a_v0 = 0.0, a_vq = 0.0;
      double b_r = 0.0, b_rk = 0.0, b_rk2 = 0.0, b_e2 = 0.0, b_ke2 = 0.0,
             b_b = 0.0;
      /* Hessian sums: e k, e k^2, e k g and e (d2 L + g g') over the
       * three width-and-size coordinates g = (q, v0, vq). */
      double h_k = 0.0, h_k2 = 0.0, h_kg[3] = {0.0, 0.0, 0.0};
      double h_qq = 0.0, h_q0 = 0.0, h_qv = 0.0, h_00 = 0.0, h_0v = 0.0,
             h_vv = 0.0;
      for (k = (unsigned)lo; k <= (unsigned)hi; k++) {
        double e = ws->lbuf[k], kd = (double)k;
        double d = xi - ws->mu[k], iv = 2.0 * ws->h[k];
        ws->rk[k] += e * inv;
        if (grad) {
          double gv = e * 0.5 * (d * d * iv * iv - iv);
          a_q += e * d * kd * iv;
          a_v0 += gv;
          a_vq += gv * kd;
        }
        if (hess) {
          double gq = kd * d * iv, G = 0.5 * (d * d * iv * iv - iv);
          double Hv = 0.5 * iv * iv - d * d * iv * iv * iv;
          double qq = -kd * kd * iv + gq * gq;
          double q0 = -kd * d * iv * iv + gq * G;
          double v00 = Hv + G * G;
          h_k += e * kd;
          h_k2 += e * kd * kd;
          h_kg[0] += e * kd * gq;
          h_kg[1] += e * kd * G;
          h_kg[2] += e * kd * kd * G;
          h_qq += e * qq;
          h_q0 += e * q0;
          h_qv += e * kd * q0;
          h_00 += e * v00;
          h_0v += e * kd * v00;
          h_vv += e * kd * kd * v00;
        }
        if (em) {
          b_r += e;
          b_rk += e * kd;
          b_rk2 += e * kd * kd;
          b_e2 += e * d * d;
          b_ke2 += e * kd * d * d;
          b_b += e * kd * kd * iv;
        }
      }
      g_q += a_q * inv;
      g_v0 += a_v0 * inv;
      g_vq += a_vq * inv;
      if (hess) {
        /* Per point: E[d2 L + g g'] - E[g] E[g]' over the softmax
         * weights, with the release entry a_k = ra k + rb. */
        double gb[QTL_NTH], E2[QTL_NTH][QTL_NTH], mk = h_k * inv;
        int u, w;
        gb[QTL_TH_REL] = ra * mk + rb;
        gb[QTL_TH_Q] = a_q * inv;
        gb[QTL_TH_V0] = a_v0 * inv;
        gb[QTL_TH_VQ] = a_vq * inv;
        E2[0][0] = ra * ra * h_k2 * inv + 2.0 * ra * rb * mk + rb * rb +
                   rc * mk + rd;
        E2[0][1] = ra * h_kg[0] * inv + rb * gb[QTL_TH_Q];
        E2[0][2] = ra * h_kg[1] * inv + rb * gb[QTL_TH_V0];
        E2[0][3] = ra * h_kg[2] * inv + rb * gb[QTL_TH_VQ];
        E2[1][1] = h_qq * inv;
        E2[1][2] = h_q0 * inv;
        E2[1][3] = h_qv * inv;
        E2[2][2] = h_00 * inv;
        E2[2][3] = h_0v * inv;
        E2[3][3] = h_vv * inv;
        for (u = 0; u < QTL_NTH; u++) {
          GT[u] += gb[u];
          for (w = u; w < QTL_NTH; w++)
            H[u][w] += E2[u][w] - gb[u] * gb[w];
        }
      }
      if (em) {
        e_r += b_r * inv;
        e_rk += b_rk * inv;
        e_rk2 += b_rk2 * inv;
        e_e2 += b_e2 * inv;
        e_ke2 += b_ke2 * inv;
        e_b += b_b * inv;
      }
    }
  }
  /* Minis: single quanta, y ~ N(q, sigma_0^2 + sigma_q^2) (or the
   * moment-matched gamma), sharing q and sigma_q with the evoked
   * amplitudes. */
  if (gamma) {
    double v = s02 + sq2, a = mix->q * mix->q / v, th = v / mix->q;
    double c0 = -a * log(th) - gsl_sf_lngamma(a);
    for (i = 0; i < nm; i++) {
      double y = minis[i];
      if (!(y > 0.0)) {
        out->loglik = -INFINITY;
        return QUANTAL_OK;
      }
      ll += c0 + (a - 1.0) * log(y) - y / th;
    }
  } else if (nm > 0) {
    /* Every mini has the same variance: the log-likelihood and its
     * derivatives need only the sums of d = y - q and d^2 (a log per
     * mini was a third of the time of a fit with as many minis as
     * trials). */
    double v = s02 + sq2, iv = 1.0 / v, s1 = 0.0, s2 = 0.0, fn = (double)nm;
    for (i = 0; i < nm; i++) {
      double d = minis[i] - mix->q;
      s1 += d;
      s2 += d * d;
    }
    ll += -0.5 * fn * (LOG_2PI + log(v)) - 0.5 * s2 * iv;
    if (grad) {
      double gv = 0.5 * (s2 * iv * iv - fn * iv);
      g_q += s1 * iv;
      g_v0 += gv;
      g_vq += gv;
      if (hess) {
        /* One component (k = 1), no release term. */
        double Hv = 0.5 * fn * iv * iv - s2 * iv * iv * iv;
        GT[QTL_TH_Q] += s1 * iv;
        GT[QTL_TH_V0] += gv;
        GT[QTL_TH_VQ] += gv;
        H[1][1] += -fn * iv;
        H[1][2] += -s1 * iv * iv;
        H[1][3] += -s1 * iv * iv;
        H[2][2] += Hv;
        H[2][3] += Hv;
        H[3][3] += Hv;
      }
    }
    if (em)
      e_b += fn * iv;
  }
  if (!isfinite(ll) && ll != -INFINITY)
    return QUANTAL_ENUMERIC;
  out->loglik = ll;
  out->kmax = K;
  /* Chain rule to the standard deviations: d/ds = 2 s d/d(s^2). */
  out->d_q = g_q;
  out->d_sigma0 = 2.0 * mix->sigma0 * g_v0;
  out->d_sigma_q = 2.0 * mix->sigma_q * g_vq;
  out->em_r = e_r;
  out->em_rk = e_rk;
  out->em_rk2 = e_rk2;
  out->em_e2 = e_e2;
  out->em_ke2 = e_ke2;
  out->em_b = e_b;
  if (hess) {
    int u, w;
    for (u = 0; u < QTL_NTH; u++) {
      out->g_th[u] = GT[u];
      for (w = u; w < QTL_NTH; w++)
        out->h_th[u][w] = out->h_th[w][u] = H[u][w];
    }
    if (mix->release == QTL_REL_FREE) {
      /* No release coordinate. */
      for (u = 0; u < QTL_NTH; u++)
        out->h_th[0][u] = out->h_th[u][0] = 0.0;
      out->g_th[0] = 0.0;
    }
  }
  return QUANTAL_OK;
}

double
qtl_mix_cdf(const qtl_mix *mix, const qtl_lik_ws *ws, unsigned K, double x)
{
  /* F(x) = sum_k P(k) Phi((x - k q) / sqrt(v_k)); ws holds the log pmf
   * and component constants of the last qtl_mix_loglik call. */
  double f = 0.0;
  unsigned k;
  for (k = 0; k <= K; k++) {
    double pk = exp(ws->logp[k]), c;
    if (pk < 1e-300)
      continue;
    if (mix->shape == QUANTAL_QSHAPE_GAMMA && k > 0)
      c = x > 0.0 ? gsl_cdf_gamma_P(x, ws->ga[k], 1.0 / ws->h[k]) : 0.0;
    else
      c = gsl_cdf_ugaussian_P((x - ws->mu[k]) / sqrt(ws->v[k]));
    f += pk * c;
  }
  return f < 0.0 ? 0.0 : (f > 1.0 ? 1.0 : f);
}

double
qtl_mix_density(const qtl_mix *mix, const qtl_lik_ws *ws, unsigned K,
                double x)
{
  double f = 0.0, logx = x > 0.0 ? log(x) : 0.0;
  unsigned k;
  for (k = 0; k <= K; k++)
    f += exp(ws->logp[k] + comp_log(mix, ws, k, x, logx));
  return f;
}
