/* sim.c - release and quantal-size sampling; amplitude-level simulation.
 * SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "sim_internal.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>

/* ---- random streams ---------------------------------------------------- */

/* xoshiro256** 1.0 (Blackman & Vigna 2021, "Scrambled linear pseudorandom
 * number generators", ACM TOMS 47:36): period 2^256 - 1, passes BigCrush,
 * and several times faster than MT19937. Wrapped as a gsl_rng_type so the
 * gsl_ran_* samplers can use it. */
typedef struct xoshiro_state {
  uint64_t s[4];
} xoshiro_state;

static inline uint64_t
rotl(uint64_t x, int k)
{
  return (x << k) | (x >> (64 - k));
}

static inline uint64_t
xoshiro_next(xoshiro_state *st)
{
  uint64_t *s = st->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

static uint64_t
splitmix64(uint64_t *x)
{
  /* Steele, Lea & Flood 2014; the seeding the xoshiro authors recommend. */
  uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}

static void
xoshiro_seed64(xoshiro_state *st, uint64_t seed)
{
  uint64_t x = seed;
  int i;
  for (i = 0; i < 4; i++)
    st->s[i] = splitmix64(&x);
  /* SplitMix64 is a bijection of a counter, so four successive outputs
   * are never all zero; the all-zero state is the one fixed point. */
}

static void
xoshiro_set(void *vstate, unsigned long seed)
{
  xoshiro_seed64(vstate, (uint64_t)seed);
}

static unsigned long
xoshiro_get(void *vstate)
{
  /* The upper 32 bits are the best; max below says so to gsl. */
  return (unsigned long)(xoshiro_next(vstate) >> 32);
}

static double
xoshiro_get_double(void *vstate)
{
  /* 53 random bits: a uniform double in [0, 1). */
  return (double)(xoshiro_next(vstate) >> 11) * 0x1.0p-53;
}

static const gsl_rng_type xoshiro_type
    = { "quantal-xoshiro256**", 0xffffffffUL, 0UL,
        sizeof(xoshiro_state),  xoshiro_set,  xoshiro_get,
        xoshiro_get_double };

const gsl_rng_type *qtl_rng_xoshiro = &xoshiro_type;

gsl_rng *
qtl_rng_alloc(uint64_t seed)
{
  gsl_rng *r = gsl_rng_alloc(qtl_rng_xoshiro);
  if (r == NULL)
    return NULL;
  /* Seed from all 64 bits even where unsigned long has 32. */
  xoshiro_seed64(r->state, seed);
  return r;
}

/* ---- fast Gaussian deviates --------------------------------------------- */

/* Ziggurat of Marsaglia & Tsang (2000, J Stat Softw 5(8)) with 128 layers.
 * The layer index and the value come from different bits of one 64-bit
 * draw, which removes the correlation Doornik (2005) found in the
 * original's use of the same 32 bits for both. */
static uint32_t zig_k[128];
static double zig_w[128], zig_f[128];
static pthread_once_t zig_once = PTHREAD_ONCE_INIT;
#define ZIG_R 3.442619855899

static void
zig_init(void)
{
  const double m1 = 2147483648.0, vn = 9.91256303526217e-3;
  double dn = ZIG_R, tn = dn, q = vn / exp(-0.5 * dn * dn);
  int i;
  zig_k[0] = (uint32_t)((dn / q) * m1);
  zig_k[1] = 0;
  zig_w[0] = q / m1;
  zig_w[127] = dn / m1;
  zig_f[0] = 1.0;
  zig_f[127] = exp(-0.5 * dn * dn);
  for (i = 126; i >= 1; i--) {
    dn = sqrt(-2.0 * log(vn / dn + exp(-0.5 * dn * dn)));
    zig_k[i + 1] = (uint32_t)((dn / tn) * m1);
    tn = dn;
    zig_f[i] = exp(-0.5 * dn * dn);
    zig_w[i] = dn / m1;
  }
}

static inline double
zig_uniform(xoshiro_state *st)
{
  /* In (0, 1): never 0, so its logarithm is finite. */
  return ((double)(xoshiro_next(st) >> 11) + 0.5) * 0x1.0p-53;
}

static double
zig_tail(xoshiro_state *st, int32_t hz, unsigned iz)
{
  for (;;) {
    double x = hz * zig_w[iz];
    uint64_t u;
    uint32_t ahz;
    if (iz == 0) {
      /* The base strip's tail beyond R (Marsaglia 1964). */
      double y;
      do {
        x = -log(zig_uniform(st)) / ZIG_R;
        y = -log(zig_uniform(st));
      } while (y + y < x * x);
      return hz > 0 ? ZIG_R + x : -ZIG_R - x;
    }
    if (zig_f[iz] + zig_uniform(st) * (zig_f[iz - 1] - zig_f[iz])
        < exp(-0.5 * x * x))
      return x;
    u = xoshiro_next(st);
    iz = (unsigned)(u & 127u);
    hz = (int32_t)(uint32_t)(u >> 32);
    ahz = hz < 0 ? (uint32_t)(-(int64_t)hz) : (uint32_t)hz;
    if (ahz < zig_k[iz])
      return hz * zig_w[iz];
  }
}

void
qtl_gauss_fill(gsl_rng *r, double *out, size_t n)
{
  xoshiro_state *st = r->state;
  size_t i;
  pthread_once(&zig_once, zig_init);
  for (i = 0; i < n; i++) {
    uint64_t u = xoshiro_next(st);
    unsigned iz = (unsigned)(u & 127u);
    int32_t hz = (int32_t)(uint32_t)(u >> 32);
    uint32_t ahz = hz < 0 ? (uint32_t)(-(int64_t)hz) : (uint32_t)hz;
    out[i] = ahz < zig_k[iz] ? hz * zig_w[iz] : zig_tail(st, hz, iz);
  }
}

/* ---- release ------------------------------------------------------------ */

int
qtl_sim_beta_ab(double p, double cv_p, double *a, double *b)
{
  double sum;
  if (cv_p == 0.0)
    return 0;
  if (!(p > 0.0 && p < 1.0) || !(cv_p > 0.0))
    return -1;
  /* A Beta(a, b) p has mean a / (a + b) and variance
   * p (1 - p) / (a + b + 1), so CV_p^2 = (1 - p) / (p (a + b + 1)):
   * a + b = (1 - p) / (CV_p^2 p) - 1 and a = p (a + b). Both must be
   * positive, hence CV_p^2 < (1 - p) / p. */
  sum = (1.0 - p) / (cv_p * cv_p * p) - 1.0;
  if (!(sum > 0.0) || !isfinite(sum))
    return -1;
  *a = p * sum;
  *b = (1.0 - p) * sum;
  return 1;
}

unsigned
qtl_sim_count(const gsl_rng *r, const quantal_release_params *p)
{
  double a, b;
  switch (p->model) {
  case QUANTAL_RELEASE_POISSON:
    return p->m > 0.0 ? gsl_ran_poisson(r, p->m) : 0u;
  case QUANTAL_RELEASE_BINOMIAL: return gsl_ran_binomial(r, p->p, p->n);
  case QUANTAL_RELEASE_BETABINOMIAL:
    /* Beta-binomial (Bhumbra & Beato 2013, J Neurophysiol 109:603): the
     * release probability of the stimulus is drawn from Beta(a, b), then
     * k ~ Binomial(n, p). Var k = n p (1 - p) (1 + (n - 1) / (a + b + 1)):
     * wider than the binomial, which is the cv_p = 0 limit. */
    if (qtl_sim_beta_ab(p->p, p->cv_p, &a, &b) <= 0)
      return gsl_ran_binomial(r, p->p, p->n);
    return gsl_ran_binomial(r, gsl_ran_beta(r, a, b), p->n);
  }
  return 0u;
}

double
qtl_sim_quantum(const gsl_rng *r, double q_abs, double cv,
                quantal_qshape shape)
{
  double x, s2;
  if (cv == 0.0 || q_abs == 0.0)
    return q_abs;
  switch (shape) {
  case QUANTAL_QSHAPE_GAMMA:
    /* Gamma with shape 1/CV^2 and scale q CV^2: mean q, CV cv
     * (Bhumbra & Beato 2013 use it for quantal variability). */
    return gsl_ran_gamma(r, 1.0 / (cv * cv), q_abs * cv * cv);
  case QUANTAL_QSHAPE_LOGNORMAL:
    /* ln x ~ N(mu, s^2) has mean exp(mu + s^2/2) and CV^2 = exp(s^2) - 1,
     * so s^2 = ln(1 + CV^2) and mu = ln q - s^2/2. */
    s2 = log1p(cv * cv);
    return gsl_ran_lognormal(r, log(q_abs) - 0.5 * s2, sqrt(s2));
  case QUANTAL_QSHAPE_GAUSSIAN:
  default:
    /* N(q, (CV q)^2) truncated at 0 by rejection (a quantum cannot
     * change sign). The realised mean is q + s phi(q/s) / Phi(q/s) with
     * s = CV q, above q: +0.003 % at CV 0.25, +0.7 % at CV 0.4, +2.8 % at
     * CV 0.5, +29 % at CV 1. Acceptance is Phi(1/CV) >= 1/2: a short loop. */
    do
      x = q_abs + gsl_ran_gaussian_ziggurat(r, cv * q_abs);
    while (!(x > 0.0));
    return x;
  }
}

/* ---- parameter checks --------------------------------------------------- */

quantal_status
quantal_release_params_check(const quantal_release_params *p,
                             quantal_diag *diag)
{
  double a, b;
  if (p == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "no release parameters");
  switch (p->model) {
  case QUANTAL_RELEASE_POISSON:
    if (!(p->m >= 0.0) || !isfinite(p->m))
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "quantal content m = %g must be finite and >= 0", p->m);
    if (p->m > 1e7)
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "quantal content m = %g is above 1e7", p->m);
    break;
  case QUANTAL_RELEASE_BINOMIAL:
  case QUANTAL_RELEASE_BETABINOMIAL:
    if (p->n == 0)
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "release sites n must be at least 1");
    if (p->n > 10000000u)
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "release sites n = %u is above 1e7", p->n);
    if (!(p->p >= 0.0 && p->p <= 1.0))
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "release probability p = %g is outside [0, 1]", p->p);
    if (p->model == QUANTAL_RELEASE_BETABINOMIAL) {
      if (!(p->cv_p >= 0.0) || !isfinite(p->cv_p))
        return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                        "CV of p across sites cv_p = %g must be >= 0",
                        p->cv_p);
      if (qtl_sim_beta_ab(p->p, p->cv_p, &a, &b) < 0)
        return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                        "CV of p across sites cv_p = %g is too large for "
                        "p = %g (a beta distribution needs 0 < p < 1 and "
                        "cv_p < sqrt((1 - p) / p))",
                        p->cv_p, p->p);
    }
    break;
  default:
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "unknown release model %d", (int)p->model);
  }
  if (!isfinite(p->q))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "quantal size q must be finite");
  if (!(p->cv_q >= 0.0) || !isfinite(p->cv_q))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "CV of quantal size cv_q = %g must be finite and >= 0",
                    p->cv_q);
  if (p->shape != QUANTAL_QSHAPE_GAUSSIAN && p->shape != QUANTAL_QSHAPE_GAMMA
      && p->shape != QUANTAL_QSHAPE_LOGNORMAL)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "unknown quantal size shape %d", (int)p->shape);
  if (!(p->noise_sd >= 0.0) || !isfinite(p->noise_sd))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "noise SD noise_sd = %g must be finite and >= 0",
                    p->noise_sd);
  return QUANTAL_OK;
}

/* ---- amplitude-level simulation ----------------------------------------- */

quantal_status
quantal_sim_amplitudes(const quantal_release_params *p, uint64_t seed,
                       size_t n_trials, double *amplitudes, unsigned *quanta,
                       quantal_diag *diag)
{
  gsl_rng *rc, *rs, *rn;
  quantal_status st;
  double q_abs, sign;
  size_t t;

  quantal_diag_clear(diag);
  st = quantal_release_params_check(p, diag);
  if (st != QUANTAL_OK)
    return st;
  if (n_trials > 0 && amplitudes == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "no array for the amplitudes");
  /* Counts, sizes and noise come from separate streams: two runs that
   * differ only in cv_q or noise_sd release the same quanta. */
  rc = qtl_rng_alloc(quantal_seed_mix(seed, QTL_STREAM_COUNTS));
  rs = qtl_rng_alloc(quantal_seed_mix(seed, QTL_STREAM_SIZES));
  rn = qtl_rng_alloc(quantal_seed_mix(seed, QTL_STREAM_NOISE));
  if (rc == NULL || rs == NULL || rn == NULL) {
    gsl_rng_free(rc);
    gsl_rng_free(rs);
    gsl_rng_free(rn);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  q_abs = fabs(p->q);
  sign = p->q < 0.0 ? -1.0 : 1.0;
  for (t = 0; t < n_trials; t++) {
    unsigned k = qtl_sim_count(rc, p), j;
    double sum = 0.0;
    /* The EPP is the sum of its k quantal responses (del Castillo & Katz
     * 1954), each of independent size, plus recording noise. */
    for (j = 0; j < k; j++)
      sum += qtl_sim_quantum(rs, q_abs, p->cv_q, p->shape);
    amplitudes[t]
        = sign * sum
          + (p->noise_sd > 0.0 ? gsl_ran_gaussian_ziggurat(rn, p->noise_sd)
                               : 0.0);
    if (quanta != NULL)
      quanta[t] = k;
  }
  gsl_rng_free(rc);
  gsl_rng_free(rs);
  gsl_rng_free(rn);
  return QUANTAL_OK;
}
