/* test_robust.c - property tests: fits of random valid experiments. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "quantal.h"

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>

static void
setup(void)
{
  gsl_set_error_handler_off();
}

TestSuite(robust, .init = setup);

/* Random but valid experiments (seeded): whatever the parameters, the fit
 * returns finite estimates, every interval contains its estimate, the
 * log-likelihood is finite, and the scored model's log-likelihood is at
 * least that of the simulated parameters minus a tolerance (the maximum
 * is a maximum). Degenerate draws (all failures) must give a documented
 * status, never NaN. */
Test(robust, fits_of_random_experiments_are_finite_and_consistent)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  int set;
  gsl_rng_set(r, 20261125);
  for (set = 0; set < 12; set++) {
    quantal_release_params t;
    quantal_fit_options o = quantal_fit_options_default();
    quantal_fit_result *fr = NULL;
    quantal_diag d;
    quantal_status st;
    size_t n = 80 + gsl_rng_uniform_int(r, 120), nm = 100, i;
    double *x = malloc(n * sizeof *x), *mi = malloc(nm * sizeof *mi);
    double ll_truth;
    int k, m;
    t.model = set % 3 == 0 ? QUANTAL_RELEASE_POISSON
                           : QUANTAL_RELEASE_BINOMIAL;
    t.n = 2 + (unsigned)gsl_rng_uniform_int(r, 25);
    t.p = 0.05 + 0.9 * gsl_rng_uniform(r);
    t.m = 0.2 + 8.0 * gsl_rng_uniform(r);
    t.cv_p = 0.0;
    t.q = (set % 2 ? -1.0 : 1.0) * (0.2 + 2.0 * gsl_rng_uniform(r));
    t.cv_q = 0.1 + 0.3 * gsl_rng_uniform(r);
    t.shape = QUANTAL_QSHAPE_GAUSSIAN;
    t.noise_sd = fabs(t.q) * (0.05 + 0.3 * gsl_rng_uniform(r));
    cr_assert_eq(quantal_sim_amplitudes(&t, (uint64_t)set, n, x, NULL, &d),
                 QUANTAL_OK, "%s", d.reason);
    {
      quantal_release_params one = t;
      one.model = QUANTAL_RELEASE_BINOMIAL;
      one.n = 1;
      one.p = 1.0;
      cr_assert_eq(quantal_sim_amplitudes(&one, 1000u + (uint64_t)set, nm,
                                          mi, NULL, &d),
                   QUANTAL_OK);
    }
    o.n_max = 40;
    st = quantal_fit_run(x, n, mi, nm, &o, &fr, &d);
    cr_assert(st == QUANTAL_OK || st == QUANTAL_EFAILED ||
                  st == QUANTAL_ENODATA,
              "set %d: status %d (%s)", set, st, d.reason);
    if (st != QUANTAL_OK) {
      cr_assert_neq(d.reason[0], '\0', "set %d: failure without a reason",
                    set);
      free(x);
      free(mi);
      continue;
    }
    for (m = 0; m < QUANTAL_FIT_N_MODELS; m++) {
      const quantal_model_fit *f = &fr->model[m];
      if (!f->fitted)
        continue;
      cr_assert(isfinite(f->loglik), "set %d model %d: loglik", set, m);
      for (k = 0; k < QUANTAL_PAR_COUNT; k++) {
        const quantal_fit_param *p = &f->par[k];
        if (isnan(p->value))
          continue;
        cr_assert(isfinite(p->value), "set %d model %d par %d: %g", set, m,
                  k, p->value);
        if (!isnan(p->lo))
          cr_assert_leq(p->lo, p->value * (1 + 1e-9) + 1e-12,
                        "set %d model %d par %d: lo %g > %g", set, m, k,
                        p->lo, p->value);
        if (!isnan(p->hi))
          cr_assert_geq(p->hi, p->value * (1 - 1e-9) - 1e-12,
                        "set %d model %d par %d: hi %g < %g", set, m, k,
                        p->hi, p->value);
      }
    }
    /* The maximum is at least the likelihood of the truth (binomial
     * truth within n_max; the fitted model of the same family). */
    if (t.model == QUANTAL_RELEASE_BINOMIAL && t.n <= o.n_max &&
        fr->model[QUANTAL_FIT_BINOMIAL].fitted) {
      quantal_release_params tp = t;
      double *xs = malloc(n * sizeof *xs), *ms = malloc(nm * sizeof *ms);
      double s = t.q < 0 ? -1.0 : 1.0;
      for (i = 0; i < n; i++)
        xs[i] = s * x[i];
      for (i = 0; i < nm; i++)
        ms[i] = s * mi[i];
      tp.q = fabs(t.q);
      cr_assert_eq(quantal_fit_loglik(&tp, xs, n, ms, nm, &ll_truth, &d),
                   QUANTAL_OK);
      cr_assert_geq(fr->model[QUANTAL_FIT_BINOMIAL].loglik,
                    ll_truth - 1e-6, "set %d: fitted %g < truth %g", set,
                    fr->model[QUANTAL_FIT_BINOMIAL].loglik, ll_truth);
      free(xs);
      free(ms);
    }
    quantal_fit_result_free(fr);
    free(x);
    free(mi);
  }
  gsl_rng_free(r);
}
