/* model.c - quantal mixture densities and their log-likelihood. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_gamma.h>
#include <limits.h>
#include <math.h>
#ifdef __x86_64__
#include <immintrin.h>
#endif
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

/* In the vector sums (model_lanes.h), components at the ends of a
 * point's window whose terms lie more than TRIM_T below the largest are
 * left out as well, and more than TRIM_D below, out of the sums of the
 * derivatives (and responsibilities). The first leaves out at most
 * (K + 1) e^-36 = (K + 1) 2.3e-16 of the sum, at K = 200 5e-14; the
 * second, weights below e^-30 = 9.4e-14 of the largest, whose parts of
 * the gradient (at most some 30 times the largest's) are far below the
 * 1e-8 to which Newton converges it. Of the 19,773 eight-lane terms of
 * an evaluation of fit-speed at its maximum, 16,712 are then summed and
 * 14,981 enter the derivatives (counted in numpy on the same windows). */
#define TRIM_T 36.0
#define TRIM_D 30.0

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
  /* Eight arrays of cap, lbuf and rk4 of 8 cap each (up to eight points
   * per component in the vector loop), bpre and bsuf, kc8 of 8 cap. */
  blk = malloc((34 * cap + 2) * sizeof *blk);
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
  ws->bpre = blk + 16 * cap;
  ws->bsuf = blk + 17 * cap + 1;
  ws->rk4 = blk + 18 * cap + 2;
  ws->kc8 = blk + 26 * cap + 2;
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


/* ---- four or eight points at a time ------------------------------------
 *
 * The sum over points for Gaussian components runs over four points at
 * once, one point per lane of a GCC vector, compiled for AVX2 with FMA
 * (x86-64-v3), or over eight where AVX-512 runs; the width is chosen at
 * run time (__builtin_cpu_supports) and the code, model_lanes.h, is the
 * same for both. Elsewhere the scalar loop below runs. Each component k
 * of the union of the lanes' windows is one step of the loop, so
 * per-point work (window, log, Hessian assembly) is vectorised too and no
 * horizontal sums are needed until the end. Points arrive sorted (fit.c
 * sorts them), so the windows nearly coincide. The log terms are
 * formed first, and each lane's exponentials taken relative to its
 * largest (the sum is then between 1 and K + 1); components at the ends
 * of the window that are negligible in every lane are then left out
 * (TRIM_T). Forming the largest first, rather than taking the terms
 * relative to the one at k = round(x / q) found by scalar code per lane,
 * with a second pass where that was far from the largest, and leaving
 * out the ends made an evaluation of fit-speed's 10,000 amplitudes at the
 * maximum take 143 us instead of 197 (value), 224 instead of 307 (with
 * the Hessian).
 * exp is a degree-12 Taylor series after the ln 2 reduction (Estrin's
 * scheme) with four lanes, without a table and so without gathers; with
 * eight, a degree-7 series after a reduction by ln 2 / 8 whose table of
 * eight fits one AVX-512 register (model_lanes.h). */
#if defined(__x86_64__) && defined(__GNUC__)
#define QTL_V4 1
#endif

#ifdef QTL_V4
#define VN 4
#define VD v4d
#define VL v4l
#define VFN(f) v4_##f
#define VTARGET __attribute__((target("avx2,fma")))
#include "model_lanes.h"
/* Eight points a time where AVX-512 runs: on a Zen 4 core, which splits
 * each 512-bit operation in two, the same work in half the instructions
 * and with twice the registers took 0.71 of the time of the four-lane
 * terms (a microbenchmark of the loop of terms). */
#define VN 8
#define VD v8d
#define VL v8l
#define VFN(f) v8_##f
#define VTARGET __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))
#include "model_lanes.h"

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

static int v8_ok;

/* QUANTAL_NO_AVX512 (any value) keeps the four-lane sums: for the tests
 * that compare the two. */
static void
v8_init(void)
{
  __builtin_cpu_init();
  v8_ok = __builtin_cpu_supports("avx512f") &&
          __builtin_cpu_supports("avx512vl") &&
          __builtin_cpu_supports("avx512dq") && v4_usable() &&
          getenv("QUANTAL_NO_AVX512") == NULL;
}

static int
v8_usable(void)
{
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, v8_init);
  return v8_ok;
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
    ll = (v8_usable() ? v8_points : v4_points)(
        mix, ws, x, nx, K, k0, plo, phi_, GUARD + log((double)K + 1.0), grad,
        hess, em, rel, gg, H, GT, es);
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
  /* Shams: k = 0 known, y ~ N(0, sigma_0^2) whatever the quantal shape;
   * only their count and sum of squares enter. */
  if (mix->sham_n > 0.0) {
    double fn = mix->sham_n, S = mix->sham_ss, iv = 1.0 / s02;
    ll += -0.5 * fn * (LOG_2PI + log(s02)) - 0.5 * S * iv;
    if (grad) {
      double gv = 0.5 * (S * iv * iv - fn * iv);
      g_v0 += gv;
      if (hess) {
        GT[QTL_TH_V0] += gv;
        H[2][2] += 0.5 * fn * iv * iv - S * iv * iv * iv;
      }
    }
    if (em) {
      /* Rows of the least squares of squared residuals on 1 and k. */
      e_r += fn;
      e_e2 += S;
    }
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
