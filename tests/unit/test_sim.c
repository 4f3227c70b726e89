/* test_sim.c - unit tests of the simulator. SPDX-License-Identifier:
 * GPL-3.0-or-later */
#include <config.h>

#include <criterion/criterion.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_odeiv2.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_sf_gamma.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "quantal.h"
#include "sim_internal.h"

static void
suite_init(void)
{
  gsl_set_error_handler_off();
}

TestSuite(sim, .init = suite_init);

/* ---- helpers ------------------------------------------------------------ */

static quantal_release_params
binomial(unsigned n, double p, double q, double cv_q, double noise)
{
  quantal_release_params r;
  memset(&r, 0, sizeof r);
  r.model = QUANTAL_RELEASE_BINOMIAL;
  r.n = n;
  r.p = p;
  r.q = q;
  r.cv_q = cv_q;
  r.shape = QUANTAL_QSHAPE_GAUSSIAN;
  r.noise_sd = noise;
  return r;
}

/* Pearson chi-square of observed counts of k against pmf[k] (kmax + 1
 * values, the last bin holding the upper tail), pooling adjacent bins
 * until each expects at least 5. Returns the p-value. */
static double
chisq_p(const unsigned *k, size_t n, const double *pmf, unsigned kmax)
{
  double *obs = calloc(kmax + 1, sizeof *obs), stat = 0.0, e = 0.0, o = 0.0;
  size_t i;
  int df = -1;
  cr_assert_not_null(obs);
  for (i = 0; i < n; i++)
    obs[k[i] > kmax ? kmax : k[i]] += 1.0;
  for (i = 0; i <= kmax; i++) {
    e += pmf[i] * (double)n;
    o += obs[i];
    if (e >= 5.0) {
      /* Close the bin only when the rest of the tail can still fill one;
       * otherwise the tail joins it. */
      double rest = 0.0;
      size_t j;
      for (j = i + 1; j <= kmax; j++)
        rest += pmf[j] * (double)n;
      if (rest >= 5.0 || i == kmax) {
        stat += (o - e) * (o - e) / e;
        df++;
        e = o = 0.0;
      }
    }
  }
  if (e > 0.0) {
    stat += (o - e) * (o - e) / e;
    df++;
  }
  free(obs);
  cr_assert_gt(df, 0);
  return gsl_cdf_chisq_Q(stat, df);
}

/* Mean, SD and the delta-method standard errors of mean and CV. */
static void
moments(const double *x, size_t n, double *mean, double *cv, double *se_mean,
        double *se_cv)
{
  double s = 0.0, m2 = 0.0, m4 = 0.0, sd, se_sd, d;
  size_t i;
  for (i = 0; i < n; i++)
    s += x[i];
  *mean = s / (double)n;
  for (i = 0; i < n; i++) {
    d = x[i] - *mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m2 /= (double)n;
  m4 /= (double)n;
  sd = sqrt(m2);
  *cv = sd / *mean;
  *se_mean = sd / sqrt((double)n);
  /* Var(s^2) = (mu4 - sigma^4) / n; SE(s) = SE(s^2) / (2 s); the CV
   * error adds that of the mean: (SE_cv/cv)^2 = (SE_s/s)^2 + (SE_m/m)^2
   * to first order (ignoring their covariance, which is small here). */
  se_sd = sqrt((m4 - m2 * m2) / (double)n) / (2.0 * sd);
  *se_cv = fabs(*cv) * sqrt(pow(se_sd / sd, 2) + pow(*se_mean / *mean, 2));
}

/* ---- release counts ------------------------------------------------------
 */

#define NSTIM 100000

Test(sim, binomial_counts_chi_square)
{
  quantal_release_params p = binomial(20, 0.3, 0.5, 0.25, 0.1);
  double *amp = malloc(NSTIM * sizeof *amp), pmf[21];
  unsigned *k = malloc(NSTIM * sizeof *k), i;
  quantal_diag diag;
  cr_assert_eq(quantal_sim_amplitudes(&p, 42, NSTIM, amp, k, &diag),
               QUANTAL_OK, "%s", diag.reason);
  for (i = 0; i <= 20; i++)
    pmf[i] = gsl_ran_binomial_pdf(i, 0.3, 20);
  /* Seeded, so deterministic; a correct sampler fails 1 seed in 1000. */
  cr_assert_gt(chisq_p(k, NSTIM, pmf, 20), 1e-3);
  free(amp);
  free(k);
}

Test(sim, poisson_counts_chi_square)
{
  quantal_release_params p = binomial(1, 0, 0.5, 0.0, 0.0);
  double *amp = malloc(NSTIM * sizeof *amp), pmf[16], tail = 1.0;
  unsigned *k = malloc(NSTIM * sizeof *k), i;
  p.model = QUANTAL_RELEASE_POISSON;
  p.m = 2.5;
  cr_assert_eq(quantal_sim_amplitudes(&p, 7, NSTIM, amp, k, NULL), QUANTAL_OK);
  for (i = 0; i < 15; i++) {
    pmf[i] = gsl_ran_poisson_pdf(i, 2.5);
    tail -= pmf[i];
  }
  pmf[15] = tail;
  cr_assert_gt(chisq_p(k, NSTIM, pmf, 15), 1e-3);
  /* With cv_q = 0 and no noise, each amplitude is exactly k q. */
  for (i = 0; i < 1000; i++)
    cr_assert_float_eq(amp[i], 0.5 * k[i], 1e-12);
  free(amp);
  free(k);
}

Test(sim, betabinomial_counts_chi_square)
{
  quantal_release_params p = binomial(10, 0.4, 1.0, 0.0, 0.0);
  double *amp = malloc(NSTIM * sizeof *amp), pmf[11], a, b;
  unsigned *k = malloc(NSTIM * sizeof *k), i;
  p.model = QUANTAL_RELEASE_BETABINOMIAL;
  p.cv_p = 0.5;
  cr_assert_eq(qtl_sim_beta_ab(0.4, 0.5, &a, &b), 1);
  /* a + b = (1 - p) / (cv^2 p) - 1 = 0.6 / 0.1 - 1 = 5. */
  cr_assert_float_eq(a, 2.0, 1e-12);
  cr_assert_float_eq(b, 3.0, 1e-12);
  cr_assert_eq(quantal_sim_amplitudes(&p, 11, NSTIM, amp, k, NULL),
               QUANTAL_OK);
  /* P(k) = C(n, k) B(k + a, n - k + b) / B(a, b). */
  for (i = 0; i <= 10; i++)
    pmf[i] = exp(gsl_sf_lnchoose(10, i) + gsl_sf_lnbeta(i + a, 10 - i + b)
                 - gsl_sf_lnbeta(a, b));
  cr_assert_gt(chisq_p(k, NSTIM, pmf, 10), 1e-3);
  /* And it is not the binomial: the binomial pmf must be rejected. */
  for (i = 0; i <= 10; i++)
    pmf[i] = gsl_ran_binomial_pdf(i, 0.4, 10);
  cr_assert_lt(chisq_p(k, NSTIM, pmf, 10), 1e-6);
  free(amp);
  free(k);
}

/* ---- quantal sizes -------------------------------------------------------
 */

static void
check_shape(quantal_qshape shape, double q, double cv, double want_mean,
            double want_cv)
{
  /* n = 1, p = 1: every trial is one quantum, so amplitude = its size. */
  quantal_release_params p = binomial(1, 1.0, q, cv, 0.0);
  double *amp = malloc(NSTIM * sizeof *amp), mean, got_cv, se_m, se_cv;
  size_t i;
  p.shape = shape;
  cr_assert_eq(
      quantal_sim_amplitudes(&p, 1234 + shape, NSTIM, amp, NULL, NULL),
      QUANTAL_OK);
  for (i = 0; i < NSTIM; i++)
    cr_assert_gt(amp[i] * (q > 0 ? 1 : -1), 0.0);
  moments(amp, NSTIM, &mean, &got_cv, &se_m, &se_cv);
  cr_assert_lt(fabs(mean - want_mean), 3.0 * se_m,
               "shape %d: mean %g, want %g +- %g", shape, mean, want_mean,
               se_m);
  cr_assert_lt(fabs(fabs(got_cv) - want_cv), 3.0 * se_cv,
               "shape %d: CV %g, want %g +- %g", shape, got_cv, want_cv,
               se_cv);
  free(amp);
}

Test(sim, quantal_size_mean_and_cv)
{
  check_shape(QUANTAL_QSHAPE_GAMMA, 0.5, 0.3, 0.5, 0.3);
  check_shape(QUANTAL_QSHAPE_LOGNORMAL, 0.5, 0.3, 0.5, 0.3);
  /* At CV 0.25 the truncation at 0 is 4 SD away: mean q, CV 0.25. */
  check_shape(QUANTAL_QSHAPE_GAUSSIAN, 0.5, 0.25, 0.5, 0.25);
  /* Negative q (inward currents): same distribution, mirrored. */
  check_shape(QUANTAL_QSHAPE_GAMMA, -20.0, 0.4, -20.0, 0.4);
}

Test(sim, truncated_gaussian_mean_above_q)
{
  /* N(q, q^2) truncated at 0: mean q + q phi(1) / Phi(1), variance
   * q^2 (1 - phi(1)/Phi(1) (1 + phi(1)/Phi(1))) (moments of the
   * truncated normal). */
  double lam = gsl_ran_ugaussian_pdf(1.0) / gsl_cdf_ugaussian_P(1.0);
  double mean = 1.0 + lam, var = 1.0 - lam * (1.0 + lam);
  check_shape(QUANTAL_QSHAPE_GAUSSIAN, 1.0, 1.0, mean, sqrt(var) / mean);
  cr_assert_gt(mean, 1.28); /* 29 % above q */
}

Test(sim, amplitude_mean_and_variance)
{
  /* E A = n p q; Var A = n p q^2 (1 + cv^2) - n p^2 q^2 + sigma^2
   * (the compound binomial). */
  quantal_release_params p = binomial(20, 0.3, 0.5, 0.25, 0.1);
  double *amp = malloc(NSTIM * sizeof *amp), mean, cv, se_m, se_cv;
  double m = 6.0,
         var = 20 * 0.3 * 0.25 * (1 + 0.0625) - 20 * 0.09 * 0.25 + 0.01;
  cr_assert_eq(quantal_sim_amplitudes(&p, 99, NSTIM, amp, NULL, NULL),
               QUANTAL_OK);
  moments(amp, NSTIM, &mean, &cv, &se_m, &se_cv);
  cr_assert_lt(fabs(mean - m * 0.5), 3.0 * se_m, "mean %g", mean);
  cr_assert_lt(fabs(cv - sqrt(var) / 3.0), 3.0 * se_cv, "cv %g", cv);
  free(amp);
}

Test(sim, noise_only)
{
  quantal_release_params p = binomial(5, 0.0, 1.0, 0.3, 0.2);
  double *amp = malloc(NSTIM * sizeof *amp), s = 0, s2 = 0, sd;
  size_t i;
  cr_assert_eq(quantal_sim_amplitudes(&p, 5, NSTIM, amp, NULL, NULL),
               QUANTAL_OK);
  for (i = 0; i < NSTIM; i++) {
    s += amp[i];
    s2 += amp[i] * amp[i];
  }
  sd = sqrt(s2 / NSTIM - (s / NSTIM) * (s / NSTIM));
  /* SE of a Gaussian SD: sigma / sqrt(2 N). */
  cr_assert_lt(fabs(sd - 0.2), 3.0 * 0.2 / sqrt(2.0 * NSTIM));
  cr_assert_lt(fabs(s / NSTIM), 3.0 * 0.2 / sqrt((double)NSTIM));
  free(amp);
}

/* ---- determinism and streams ---------------------------------------------
 */

Test(sim, same_seed_same_amplitudes)
{
  quantal_release_params p = binomial(20, 0.3, 0.5, 0.25, 0.1);
  double a[500], b[500], c[500];
  unsigned ka[500], kc[500];
  cr_assert_eq(quantal_sim_amplitudes(&p, 2024, 500, a, ka, NULL), QUANTAL_OK);
  cr_assert_eq(quantal_sim_amplitudes(&p, 2024, 500, b, NULL, NULL),
               QUANTAL_OK);
  cr_assert_eq(memcmp(a, b, sizeof a), 0);
  /* Seeds that differ only above bit 32 give different streams. */
  cr_assert_eq(quantal_sim_amplitudes(&p, 2024 + (UINT64_C(1) << 40), 500, c,
                                      NULL, NULL),
               QUANTAL_OK);
  cr_assert_neq(memcmp(a, c, sizeof a), 0);
  /* Changing only the noise keeps the released quanta (own stream). */
  p.noise_sd = 0.3;
  cr_assert_eq(quantal_sim_amplitudes(&p, 2024, 500, c, kc, NULL), QUANTAL_OK);
  cr_assert_eq(memcmp(ka, kc, sizeof ka), 0);
}

Test(sim, zero_trials_and_null_output)
{
  quantal_release_params p = binomial(20, 0.3, 0.5, 0.25, 0.1);
  quantal_diag diag;
  cr_assert_eq(quantal_sim_amplitudes(&p, 1, 0, NULL, NULL, &diag),
               QUANTAL_OK);
  cr_assert_eq(quantal_sim_amplitudes(&p, 1, 3, NULL, NULL, &diag),
               QUANTAL_EINVAL);
}

/* ---- parameter checks ----------------------------------------------------
 */

static void
expect_bad(const quantal_release_params *p, const char *word)
{
  quantal_diag diag;
  quantal_diag_clear(&diag);
  cr_assert_eq(quantal_release_params_check(p, &diag), QUANTAL_EINVAL);
  cr_assert_not_null(strstr(diag.reason, word), "reason '%s' lacks '%s'",
                     diag.reason, word);
}

Test(sim, params_check_rejects_impossible)
{
  quantal_release_params p = binomial(20, 0.3, 0.5, 0.25, 0.1), b;
  cr_assert_eq(quantal_release_params_check(&p, NULL), QUANTAL_OK);
  b = p;
  b.p = 1.5;
  expect_bad(&b, "p = 1.5");
  b = p;
  b.p = NAN;
  expect_bad(&b, "release probability");
  b = p;
  b.n = 0;
  expect_bad(&b, "release sites n");
  b = p;
  b.cv_q = -0.1;
  expect_bad(&b, "cv_q");
  b = p;
  b.noise_sd = -1;
  expect_bad(&b, "noise_sd");
  b = p;
  b.q = INFINITY;
  expect_bad(&b, "quantal size q");
  b = p;
  b.model = QUANTAL_RELEASE_POISSON;
  b.m = -1;
  expect_bad(&b, "m = -1");
  b = p;
  b.model = QUANTAL_RELEASE_BETABINOMIAL;
  b.cv_p = 2.0; /* needs cv_p < sqrt(0.7 / 0.3) = 1.53 */
  expect_bad(&b, "cv_p = 2");
  b.cv_p = 1.5;
  cr_assert_eq(quantal_release_params_check(&b, NULL), QUANTAL_OK);
  b.p = 1.0;
  expect_bad(&b, "cv_p");
  b.cv_p = 0.0; /* p = 1 without heterogeneity is just the binomial */
  cr_assert_eq(quantal_release_params_check(&b, NULL), QUANTAL_OK);
  b = p;
  b.shape = (quantal_qshape)7;
  expect_bad(&b, "shape");
  b = p;
  b.model = (quantal_release_model)9;
  expect_bad(&b, "release model");
}

/* ---- fast Gaussian deviates ----------------------------------------------
 */

Test(sim, ziggurat_gaussian_moments_and_tail)
{
  enum { N = 2000000 };
  gsl_rng *r = qtl_rng_alloc(77);
  double *x = malloc(N * sizeof *x), s = 0, s2 = 0, s4 = 0, m, v, tail = 0;
  double p_tail = 2.0 * gsl_cdf_ugaussian_Q(3.5);
  size_t i;
  cr_assert_not_null(r);
  qtl_gauss_fill(r, x, N);
  for (i = 0; i < N; i++) {
    s += x[i];
    s2 += x[i] * x[i];
    s4 += x[i] * x[i] * x[i] * x[i];
    tail += fabs(x[i]) > 3.5;
  }
  m = s / N;
  v = s2 / N;
  /* SE of the mean 1/sqrt(N); of the variance sqrt(2/N); of the fourth
   * moment sqrt((105 - 9) / N). */
  cr_assert_lt(fabs(m), 3.0 / sqrt((double)N));
  cr_assert_lt(fabs(v - 1.0), 3.0 * sqrt(2.0 / N));
  cr_assert_lt(fabs(s4 / N - 3.0), 3.0 * sqrt(96.0 / N));
  /* The tail beyond the ziggurat's base strip (3.44) is sampled
   * separately: its count is binomial. */
  cr_assert_lt(fabs(tail - N * p_tail), 3.0 * sqrt(N * p_tail));
  free(x);
  gsl_rng_free(r);
}

/* ---- whole recordings ------------------------------------------------------
 */

typedef struct capture {
  double *sig, *ttl;
  size_t n, cap;
  quantal_sim_event *ev;
  size_t n_ev, cap_ev;
} capture;

static quantal_status
cap_frames(void *vctx, const double *f, size_t n, quantal_diag *diag)
{
  capture *c = vctx;
  size_t i;
  (void)diag;
  if (c->n + n > c->cap) {
    c->cap = 2 * (c->n + n);
    c->sig = realloc(c->sig, c->cap * sizeof *c->sig);
    c->ttl = realloc(c->ttl, c->cap * sizeof *c->ttl);
    cr_assert_not_null(c->sig);
    cr_assert_not_null(c->ttl);
  }
  for (i = 0; i < n; i++) {
    c->sig[c->n + i] = f[2 * i];
    c->ttl[c->n + i] = f[2 * i + 1];
  }
  c->n += n;
  return QUANTAL_OK;
}

static quantal_status
cap_event(void *vctx, const quantal_sim_event *ev, quantal_diag *diag)
{
  capture *c = vctx;
  (void)diag;
  if (c->n_ev == c->cap_ev) {
    c->cap_ev = c->cap_ev ? 2 * c->cap_ev : 64;
    c->ev = realloc(c->ev, c->cap_ev * sizeof *c->ev);
    cr_assert_not_null(c->ev);
  }
  c->ev[c->n_ev++] = *ev;
  return QUANTAL_OK;
}

static void
capture_free(capture *c)
{
  free(c->sig);
  free(c->ttl);
  free(c->ev);
  memset(c, 0, sizeof *c);
}

/* A quiet recording: no noise, no spontaneous release, no stimuli. */
static quantal_sim_options
quiet(void)
{
  quantal_sim_options o = quantal_sim_options_default();
  o.release.noise_sd = 0.0;
  o.mini_rate_hz = 0.0;
  o.stim_period_s = 0.0;
  o.release.cv_q = 0.0;
  return o;
}

static void
run_capture(const quantal_sim_options *o, capture *c)
{
  quantal_diag diag;
  quantal_status st;
  memset(c, 0, sizeof *c);
  quantal_diag_clear(&diag);
  st = quantal_sim_run(o, cap_frames, cap_event, c, &diag);
  cr_assert_eq(st, QUANTAL_OK, "%s", diag.reason);
}

/* Linear response of tau du/dt = -u + A (exp(-t/td) - exp(-t/tr)):
 * each exponential e^{-t/ts} gives A (e^{-t/ts} - e^{-t/tau}) /
 * (1 - tau/ts) (first-order low-pass of an exponential). */
static double
linear_response(double t, double A, double tau, double tr, double td)
{
  double kd = (exp(-t / td) - exp(-t / tau)) / (1.0 - tau / td);
  double kr = (exp(-t / tr) - exp(-t / tau)) / (1.0 - tau / tr);
  return t <= 0.0 ? 0.0 : A * (kd - kr);
}

Test(sim, small_quantum_matches_linear_response)
{
  quantal_sim_options o = quiet();
  quantal_sim_derived d;
  capture c;
  double t0 = 0.0123456, stim[1], de = 0.08, A, maxerr = 0.0, peak = 0.0;
  double tp_best = 0.0, t;
  size_t i;
  /* 1 uV: the driving force changes by 1e-5 of itself, far below the
   * tolerance, so the membrane is linear. */
  o.release.model = QUANTAL_RELEASE_BINOMIAL;
  o.release.n = 1;
  o.release.p = 1.0;
  o.release.q = 0.001;
  o.delay_s = 0.0;
  o.duration_s = 0.1;
  stim[0] = t0;
  o.stim_times_s = stim;
  o.n_stim_times = 1;
  cr_assert_eq(quantal_sim_prepare(&o, &d, NULL), QUANTAL_OK);
  run_capture(&o, &c);
  cr_assert_eq(c.n, 2000);
  /* tau du/dt = -u + (g / g_L) (E_syn - E_rest), in mV. */
  A = d.q_conductance_s * qtl_sim_biexp_norm(o.rise_s, o.decay_s) * o.r_in_ohm
      * de * 1e3;
  for (t = 0.0; t < 0.05; t += 1e-7) {
    double v = linear_response(t, A, o.tau_m_s, o.rise_s, o.decay_s);
    if (v > peak) {
      peak = v;
      tp_best = t;
    }
  }
  for (i = 0; i < c.n; i++) {
    double want = -80.0
                  + linear_response(i / 20000.0 - t0, A, o.tau_m_s, o.rise_s,
                                    o.decay_s);
    if (fabs(c.sig[i] - want) > maxerr)
      maxerr = fabs(c.sig[i] - want);
  }
  /* The integrator's error: well under 0.1 % of the peak. */
  cr_assert_lt(maxerr, 1e-3 * peak, "max error %g of peak %g", maxerr, peak);
  cr_assert_eq(c.n_ev, 1);
  cr_assert_float_eq(c.ev[0].amplitude, peak, 1e-4 * peak);
  cr_assert_float_eq(c.ev[0].peak_s, t0 + tp_best, 2e-6);
  /* q is the isolated peak of one mean quantum at rest: exact. */
  cr_assert_float_eq(c.ev[0].amplitude, 0.001, 1e-9);
  capture_free(&c);
}

typedef struct ode_par {
  double gl, c, er, es, g0, t0, tr, td;
} ode_par;

static int
ode_f(double t, const double y[], double f[], void *vp)
{
  const ode_par *p = vp;
  double s = t - p->t0,
         g = s > 0.0 ? p->g0 * (exp(-s / p->td) - exp(-s / p->tr)) : 0.0;
  f[0] = (-p->gl * (y[0] - p->er) - g * (y[0] - p->es)) / p->c;
  return GSL_SUCCESS;
}

Test(sim, large_epp_matches_gsl_ode)
{
  quantal_sim_options o = quiet();
  quantal_sim_derived d;
  capture c;
  ode_par par;
  gsl_odeiv2_system sys = { ode_f, NULL, 1, &par };
  gsl_odeiv2_driver *drv;
  double t0 = 0.0123456, stim[1], y[1], t = 0.0, maxerr = 0.0, peak = 0.0;
  size_t i;
  /* 120 quanta of 0.5 mV on an 80 mV driving force: the linear sum would
   * be 60 mV, the real EPP much smaller (Martin 1955). */
  o.release.n = 120;
  o.release.p = 1.0;
  o.release.q = 0.5;
  o.delay_s = 0.0;
  o.duration_s = 0.08;
  stim[0] = t0;
  o.stim_times_s = stim;
  o.n_stim_times = 1;
  cr_assert_eq(quantal_sim_prepare(&o, &d, NULL), QUANTAL_OK);
  run_capture(&o, &c);
  par.gl = 1.0 / o.r_in_ohm;
  par.c = o.tau_m_s * par.gl;
  par.er = o.e_rest_v;
  par.es = o.e_syn_v;
  par.g0 = 120 * d.q_conductance_s * qtl_sim_biexp_norm(o.rise_s, o.decay_s);
  par.t0 = t0;
  par.tr = o.rise_s;
  par.td = o.decay_s;
  drv = gsl_odeiv2_driver_alloc_y_new(&sys, gsl_odeiv2_step_rk8pd, 1e-8, 1e-13,
                                      1e-11);
  cr_assert_not_null(drv);
  y[0] = o.e_rest_v;
  for (i = 0; i < c.n; i++) {
    double ti = i / 20000.0, v;
    if (ti > t0 && t < t0) {
      /* Restart at the release time: the conductance has a kink there. */
      cr_assert_eq(gsl_odeiv2_driver_apply(drv, &t, t0, y), GSL_SUCCESS);
      cr_assert_eq(gsl_odeiv2_driver_reset(drv), GSL_SUCCESS);
    }
    if (ti > t)
      cr_assert_eq(gsl_odeiv2_driver_apply(drv, &t, ti, y), GSL_SUCCESS);
    v = (y[0] - o.e_rest_v) * 1e3;
    if (v > peak)
      peak = v;
    if (fabs(c.sig[i] - y[0] * 1e3) > maxerr)
      maxerr = fabs(c.sig[i] - y[0] * 1e3);
  }
  gsl_odeiv2_driver_free(drv);
  cr_assert_gt(peak, 20.0);
  cr_assert_lt(peak, 50.0);
  cr_assert_lt(maxerr, 5e-3 * peak, "max error %g mV of peak %g mV", maxerr,
               peak);
  /* The truth amplitude (isolated, finely integrated continuous peak)
   * is at least the sampled reference peak and within 0.5 % of it. */
  cr_assert_eq(c.n_ev, 1);
  cr_assert_eq(c.ev[0].quanta, 120);
  cr_assert_lt(fabs(c.ev[0].amplitude - peak), 5e-3 * peak, "%g vs %g",
               c.ev[0].amplitude, peak);
  cr_assert_gt(c.ev[0].linear, 59.0);
  capture_free(&c);
}

/* f of McLachlan & Martin (1981): v_lin = v / (1 - f v / E). */
static double
martin_f(double v, double lin, double E)
{
  return E * (1.0 / v - 1.0 / lin);
}

Test(sim, nonlinear_summation_follows_driving_force)
{
  quantal_sim_options o = quiet();
  capture c;
  double stim[6] = { 0.01, 0.11, 0.21, 0.31, 0.41, 0.51 }, E = 80.0,
         prev = 1.0;
  size_t i;
  o.release.model = QUANTAL_RELEASE_BINOMIAL;
  o.release.n = 150;
  o.release.p = 0.5;
  o.duration_s = 0.6;
  o.stim_times_s = stim;
  o.n_stim_times = 6;
  run_capture(&o, &c);
  cr_assert_eq(c.n_ev, 6);
  for (i = 0; i < c.n_ev; i++) {
    double v = c.ev[i].amplitude, lin = c.ev[i].linear, f;
    cr_assert_gt(c.ev[i].quanta, 40);
    /* Sub-linear, but never beyond Martin's steady-state bound
     * v / (1 - v / E): a brief conductance leaves f < 1. */
    cr_assert_lt(v, lin);
    cr_assert_leq(lin, v / (1.0 - v / E) * (1 + 1e-9));
    f = martin_f(v, lin, E);
    cr_assert_gt(f, 0.3);
    cr_assert_lt(f, 1.0);
    (void)prev;
  }
  capture_free(&c);
  /* A conductance much slower than the membrane is quasi-static: the
   * steady state v = g E / (g_L + g) holds and Martin's correction
   * becomes exact (f -> 1). */
  o.rise_s = 0.05;
  o.decay_s = 0.2;
  o.tau_m_s = 0.002;
  o.duration_s = 1.0;
  o.n_stim_times = 1;
  run_capture(&o, &c);
  cr_assert_eq(c.n_ev, 1);
  cr_assert_lt(fabs(martin_f(c.ev[0].amplitude, c.ev[0].linear, E) - 1.0),
               0.02, "f = %g", martin_f(c.ev[0].amplitude, c.ev[0].linear, E));
  capture_free(&c);
}

Test(sim, voltage_clamp_is_linear)
{
  quantal_sim_options o = quiet();
  quantal_sim_derived d;
  capture c;
  double stim[1] = { 0.05 };
  o.clamp = QUANTAL_SIM_VOLTAGE_CLAMP;
  o.release.q = 1e-9; /* 1 nS */
  o.q_is_conductance = 1;
  o.release.n = 10;
  o.release.p = 1.0;
  o.duration_s = 0.1;
  o.stim_times_s = stim;
  o.n_stim_times = 1;
  cr_assert_eq(quantal_sim_prepare(&o, &d, NULL), QUANTAL_OK);
  /* I = g (V_hold - E_syn) = 1 nS * -80 mV = -80 pA per quantum. */
  cr_assert_float_eq(d.q_amplitude, -80.0, 1e-9);
  cr_assert_str_eq(d.unit, "pA");
  run_capture(&o, &c);
  cr_assert_eq(c.n_ev, 1);
  cr_assert_float_eq(c.ev[0].amplitude, -800.0, 1e-6);
  cr_assert_float_eq(c.ev[0].linear, c.ev[0].amplitude, 1e-12);
  capture_free(&c);
}

Test(sim, same_seed_same_recording_any_block_size)
{
  quantal_sim_options o = quantal_sim_options_default();
  capture a, b;
  o.duration_s = 3.0;
  o.pink_sd = 0.05;
  o.drift_sd = 0.1;
  o.drift_tau_s = 0.5;
  o.latency_s = 0.0003;
  o.kinetics_cv = 0.2;
  o.artefact_amp = 1.0;
  o.mini_rate_hz = 5.0;
  o.seed = 31337;
  run_capture(&o, &a);
  o.block_frames = 999;
  run_capture(&o, &b);
  cr_assert_eq(a.n, b.n);
  cr_assert_eq(memcmp(a.sig, b.sig, a.n * sizeof *a.sig), 0);
  cr_assert_eq(memcmp(a.ttl, b.ttl, a.n * sizeof *a.ttl), 0);
  cr_assert_eq(a.n_ev, b.n_ev);
  cr_assert_eq(memcmp(a.ev, b.ev, a.n_ev * sizeof *a.ev), 0);
  capture_free(&b);
  o.seed = 31338;
  run_capture(&o, &b);
  cr_assert_neq(memcmp(a.sig, b.sig, a.n * sizeof *a.sig), 0);
  capture_free(&a);
  capture_free(&b);
}

/* Kolmogorov distribution: P(D_n > d) (Marsaglia-style asymptotic with
 * the Stephens 1970 small-sample correction). */
static double
ks_p(double d, size_t n)
{
  double sn = sqrt((double)n), lam = (sn + 0.12 + 0.11 / sn) * d, s = 0.0;
  int k;
  for (k = 1; k < 100; k++)
    s += 2.0 * ((k & 1) ? 1.0 : -1.0) * exp(-2.0 * k * k * lam * lam);
  return s < 0.0 ? 0.0 : s > 1.0 ? 1.0 : s;
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static quantal_status
collect(void *vctx, const quantal_sim_event *ev, quantal_diag *diag)
{
  return cap_event(vctx, ev, diag);
}

Test(sim, mepp_intervals_exponential_ks)
{
  quantal_sim_options o = quantal_sim_options_default();
  capture c;
  double *iv, dmax = 0.0, prev = 0.0, rate = 10.0;
  size_t i, n = 0;
  memset(&c, 0, sizeof c);
  o.stim_period_s = 0.0;
  o.mini_rate_hz = rate;
  o.duration_s = 2000.0;
  o.seed = 4;
  cr_assert_eq(quantal_sim_run_amplitudes(&o, collect, &c, NULL), QUANTAL_OK);
  cr_assert_gt(c.n_ev, 19000);
  iv = malloc(c.n_ev * sizeof *iv);
  for (i = 0; i < c.n_ev; i++) {
    cr_assert_eq(c.ev[i].kind, QUANTAL_SIM_SPONTANEOUS);
    iv[n++] = c.ev[i].onset_s - prev;
    prev = c.ev[i].onset_s;
  }
  qsort(iv, n, sizeof *iv, cmp_double);
  for (i = 0; i < n; i++) {
    double F = 1.0 - exp(-rate * iv[i]);
    double d1 = fabs(F - (double)i / n), d2 = fabs((double)(i + 1) / n - F);
    if (d1 > dmax)
      dmax = d1;
    if (d2 > dmax)
      dmax = d2;
  }
  cr_assert_gt(ks_p(dmax, n), 1e-3, "D = %g", dmax);
  /* Counts: Poisson with mean rate * duration. */
  cr_assert_lt(fabs((double)c.n_ev - 20000.0), 3.0 * sqrt(20000.0));
  free(iv);
  capture_free(&c);
}

Test(sim, mini_amplitudes_have_requested_mean_and_cv)
{
  quantal_sim_options o = quiet();
  capture c;
  double *a, mean, cv, se_m, se_cv;
  size_t i;
  o.mini_rate_hz = 20.0;
  o.duration_s = 200.0;
  o.rate_hz = 5000.0;
  o.release.q = 0.5;
  o.release.cv_q = 0.3;
  o.release.shape = QUANTAL_QSHAPE_GAMMA;
  run_capture(&o, &c);
  cr_assert_gt(c.n_ev, 3500);
  a = malloc(c.n_ev * sizeof *a);
  for (i = 0; i < c.n_ev; i++)
    a[i] = c.ev[i].amplitude;
  moments(a, c.n_ev, &mean, &cv, &se_m, &se_cv);
  /* Conductances have mean g_q and CV 0.3; a 0.5 mV response is linear to
   * within q / (E_syn - E_rest) = 0.6 %, whose effect on the mean
   * (curvature times variance, ~0.6 % * 0.09) is far below one SE. */
  cr_assert_lt(fabs(mean - 0.5), 3.0 * se_m, "mean %g +- %g", mean, se_m);
  cr_assert_lt(fabs(cv - 0.3), 3.0 * se_cv, "cv %g +- %g", cv, se_cv);
  free(a);
  capture_free(&c);
}

Test(sim, amplitudes_only_matches_amplitude_simulator)
{
  quantal_sim_options o = quantal_sim_options_default();
  capture c;
  double want[50];
  unsigned k[50];
  size_t i, j = 0;
  memset(&c, 0, sizeof c);
  o.duration_s = 50.0;
  o.stim_start_s = 0.5;
  o.seed = 123;
  cr_assert_eq(quantal_sim_run_amplitudes(&o, collect, &c, NULL), QUANTAL_OK);
  cr_assert_eq(quantal_sim_amplitudes(&o.release, 123, 50, want, k, NULL),
               QUANTAL_OK);
  for (i = 0; i < c.n_ev; i++) {
    if (c.ev[i].kind != QUANTAL_SIM_EVOKED)
      continue;
    cr_assert_lt(j, 50);
    cr_assert_eq(c.ev[i].stimulus, (long)j);
    cr_assert_eq(c.ev[i].quanta, k[j]);
    cr_assert_float_eq(c.ev[i].amplitude, want[j], 1e-12);
    j++;
  }
  cr_assert_eq(j, 50);
  capture_free(&c);
}

static double
mean_k_of_pulse(quantal_sim_options *o, long pulse, double *se)
{
  capture c;
  double s = 0, s2 = 0, n = 0;
  size_t i;
  memset(&c, 0, sizeof c);
  cr_assert_eq(quantal_sim_run_amplitudes(o, collect, &c, NULL), QUANTAL_OK);
  for (i = 0; i < c.n_ev; i++)
    if (c.ev[i].kind == QUANTAL_SIM_EVOKED && c.ev[i].pulse == pulse) {
      s += c.ev[i].quanta;
      s2 += (double)c.ev[i].quanta * c.ev[i].quanta;
      n++;
    }
  capture_free(&c);
  *se = sqrt((s2 / n - (s / n) * (s / n)) / n);
  return s / n;
}

Test(sim, plasticity_depression_and_facilitation)
{
  quantal_sim_options o = quantal_sim_options_default();
  double m2, se, dt = 0.02;
  o.mini_rate_hz = 0.0;
  o.release.n = 50;
  o.release.p = 0.4;
  o.train_pulses = 2;
  o.train_interval_s = dt;
  o.stim_period_s = 1.0; /* sites recover fully between pairs */
  o.stim_start_s = 0.0;
  o.duration_s = 20000.0; /* 20000 pairs */
  /* Depletion: E k2 = n p (1 - p exp(-dt / tau_D)). */
  o.tau_d_s = 0.05;
  m2 = mean_k_of_pulse(&o, 1, &se);
  cr_assert_lt(fabs(m2 - 50 * 0.4 * (1 - 0.4 * exp(-dt / 0.05))), 3 * se,
               "depression: %g", m2);
  /* Facilitation alone: u2 = U + U (1 - U) exp(-dt / tau_F). */
  o.tau_d_s = 0.0;
  o.tau_f_s = 0.1;
  m2 = mean_k_of_pulse(&o, 1, &se);
  cr_assert_lt(fabs(m2 - 50 * (0.4 + 0.4 * 0.6 * exp(-dt / 0.1))), 3 * se,
               "facilitation: %g", m2);
  m2 = mean_k_of_pulse(&o, 0, &se);
  cr_assert_lt(fabs(m2 - 50 * 0.4), 3 * se);
}

Test(sim, episodic_ttl_marks_sweep_starts)
{
  quantal_sim_options o = quiet();
  capture c;
  size_t i, rises = 0;
  o.n_sweeps = 4;
  o.sweep_s = 0.25;
  o.sweep_stim_s = 0.05;
  o.release.p = 0.5;
  o.rate_hz = 10000.0;
  run_capture(&o, &c);
  cr_assert_eq(c.n, 10000);
  for (i = 0; i < c.n; i++)
    if (c.ttl[i] > 2.5 && (i == 0 || c.ttl[i - 1] < 2.5)) {
      cr_assert_eq(i % 2500, 0, "TTL rises at frame %zu", i);
      rises++;
    }
  cr_assert_eq(rises, 4);
  cr_assert_eq(c.n_ev, 4);
  for (i = 0; i < 4; i++) {
    cr_assert_eq(c.ev[i].stimulus, (long)i);
    cr_assert_float_eq(c.ev[i].stim_s, 0.25 * i + 0.05, 1e-12);
  }
  capture_free(&c);
}

Test(sim, pink_noise_has_1_over_f_spectrum)
{
  /* 1/f noise alone; its periodogram, averaged over segments (Welch), in
   * log-log has slope -1 between the corner and Nyquist. */
  enum { SEG = 4096 };
  quantal_sim_options o = quiet();
  capture c;
  double psd[SEG / 2 + 1], sx = 0, sy = 0, sxx = 0, sxy = 0, slope, var = 0;
  size_t i, j, nseg, np = 0;
  memset(psd, 0, sizeof psd);
  o.rate_hz = 1000.0;
  o.duration_s = 400.0;
  o.pink_sd = 1.0;
  o.pink_fmin_hz = 0.1;
  run_capture(&o, &c);
  nseg = c.n / SEG;
  for (j = 0; j < nseg; j++) {
    double *x = c.sig + j * SEG, mean = 0;
    double re, im;
    size_t f;
    for (i = 0; i < SEG; i++)
      mean += x[i] / SEG;
    for (i = 0; i < SEG; i++)
      var += (x[i] + 80.0) * (x[i] + 80.0);
    /* Plain DFT of a few frequencies is enough for the slope. */
    for (f = 4; f <= 1024; f *= 2) {
      re = im = 0;
      for (i = 0; i < SEG; i++) {
        double w = 0.5 - 0.5 * cos(2 * M_PI * i / SEG);
        re += w * (x[i] - mean) * cos(2 * M_PI * f * i / SEG);
        im -= w * (x[i] - mean) * sin(2 * M_PI * f * i / SEG);
      }
      psd[f] += re * re + im * im;
    }
  }
  for (i = 4; i <= 1024; i *= 2) {
    double lx = log((double)i), ly = log(psd[i]);
    sx += lx;
    sy += ly;
    sxx += lx * lx;
    sxy += lx * ly;
    np++;
  }
  slope = (np * sxy - sx * sy) / (np * sxx - sx * sx);
  cr_assert_lt(fabs(slope + 1.0), 0.1, "slope %g", slope);
  /* Its SD, about the resting level: the requested 1.0 (the slowest
   * components make the sample SD of 400 s vary by a few %). */
  cr_assert_lt(fabs(sqrt(var / (nseg * SEG)) - 1.0), 0.1);
  capture_free(&c);
}

Test(sim, hum_has_requested_amplitude)
{
  quantal_sim_options o = quiet();
  capture c;
  double re = 0, im = 0, amp;
  size_t i;
  o.hum_amp = 0.2;
  o.hum_hz = 50.0;
  o.hum_harmonics = 3;
  o.duration_s = 10.0;
  run_capture(&o, &c);
  for (i = 0; i < c.n; i++) {
    double ph = 2 * M_PI * 50.0 * i / 20000.0;
    re += (c.sig[i] + 80.0) * cos(ph);
    im += (c.sig[i] + 80.0) * sin(ph);
  }
  amp = 2.0 * sqrt(re * re + im * im) / c.n;
  cr_assert_float_eq(amp, 0.2, 1e-6);
  capture_free(&c);
}

Test(sim, prepare_rejects_bad_options)
{
  quantal_sim_options o = quantal_sim_options_default(), b;
  quantal_sim_derived d;
  quantal_diag diag;
  cr_assert_eq(quantal_sim_prepare(&o, &d, &diag), QUANTAL_OK);
  cr_assert_float_eq(d.m, 6.0, 1e-12);
  cr_assert_float_eq(d.q_amplitude, 0.5, 1e-9);
  cr_assert_eq(d.frames, 200000);
  cr_assert_eq(d.n_pulses, 10);
  b = o;
  b.decay_s = 0.0002;
  cr_assert_eq(quantal_sim_prepare(&b, &d, &diag), QUANTAL_EINVAL);
  cr_assert_not_null(strstr(diag.reason, "decay"), "%s", diag.reason);
  b = o;
  b.duration_s = 0.0;
  cr_assert_eq(quantal_sim_prepare(&b, &d, &diag), QUANTAL_EINVAL);
  cr_assert_not_null(strstr(diag.reason, "duration"), "%s", diag.reason);
  b = o;
  b.release.q = 85.0; /* beyond the 80 mV driving force */
  cr_assert_eq(quantal_sim_prepare(&b, &d, &diag), QUANTAL_EINVAL);
  cr_assert_not_null(strstr(diag.reason, "driving force"), "%s", diag.reason);
  b = o;
  b.release.model = QUANTAL_RELEASE_POISSON;
  b.tau_d_s = 0.1;
  cr_assert_eq(quantal_sim_prepare(&b, &d, &diag), QUANTAL_EINVAL);
  b = o;
  b.mini_rate_hz = -1.0;
  cr_assert_eq(quantal_sim_prepare(&b, &d, &diag), QUANTAL_EINVAL);
  b = o;
  b.release.p = 2.0;
  cr_assert_eq(quantal_sim_prepare(&b, &d, &diag), QUANTAL_EINVAL);
  cr_assert_not_null(strstr(diag.reason, "p = 2"), "%s", diag.reason);
}
