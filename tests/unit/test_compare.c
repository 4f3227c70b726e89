/* test_compare.c - scoring detections against truth. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "quantal.h"

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>
#include <math.h>

static void
setup(void)
{
  gsl_set_error_handler_off();
}

TestSuite(compare, .init = setup);

Test(compare, double_detections_and_misses)
{
  /* Event 1 is found twice (the second is a false positive), event 2 is
   * missed, a detection 0.5 s away is a false positive, event 3 missed. */
  double truth[] = {1.0, 2.0, 3.0}, tamp[] = {1.0, 2.0, 3.0};
  double det[] = {1.001, 1.0015, 2.5}, damp[] = {1.1, 5.0, 1.0};
  size_t match[3];
  quantal_match_result r;
  quantal_diag d;
  cr_assert_eq(quantal_compare_events(det, damp, 3, truth, tamp, 3, 0.002,
                                      match, &r, &d),
               QUANTAL_OK);
  cr_assert_eq(r.true_positives, 1);
  cr_assert_eq(r.false_positives, 2);
  cr_assert_eq(r.false_negatives, 2);
  cr_assert_float_eq(r.precision, 1.0 / 3.0, 1e-12);
  cr_assert_float_eq(r.recall, 1.0 / 3.0, 1e-12);
  cr_assert_float_eq(r.f1, 2.0 / 6.0, 1e-12);
  cr_assert_eq(match[0], 0);
  cr_assert_eq(match[1], (size_t)-1);
  cr_assert_eq(match[2], (size_t)-1);
  cr_assert_float_eq(r.onset_error_mean_s, 0.001, 1e-12);
  cr_assert_float_eq(r.amplitude_error_mean, 0.1, 1e-12);
  cr_assert_float_eq(r.amplitude_error_median_rel, 0.1, 1e-12);
}

Test(compare, tie_goes_to_the_earlier_event)
{
  double truth[] = {0.0, 0.004}, det[] = {0.002};
  size_t match[1];
  quantal_match_result r;
  quantal_diag d;
  cr_assert_eq(quantal_compare_events(det, NULL, 1, truth, NULL, 2, 0.002,
                                      match, &r, &d),
               QUANTAL_OK);
  cr_assert_eq(r.true_positives, 1);
  cr_assert_eq(match[0], 0);
  cr_assert_eq(r.n_amplitudes, 0);
  cr_assert(isnan(r.amplitude_error_rms));
}

Test(compare, matching_is_maximal_not_nearest_first)
{
  /* Nearest-first would give d1 (1.2 ms away) to t2 and leave t1 without
   * a match; the maximal matching pairs t1-d1 and t2-d2. Inputs are
   * unsorted on purpose. */
  double truth[] = {0.003, 0.0}, det[] = {0.0049, 0.0018};
  size_t match[2];
  quantal_match_result r;
  quantal_diag d;
  cr_assert_eq(quantal_compare_events(det, NULL, 2, truth, NULL, 2, 0.002,
                                      match, &r, &d),
               QUANTAL_OK);
  cr_assert_eq(r.true_positives, 2);
  cr_assert_eq(match[0], 0); /* 4.9 ms -> the event at 3 ms */
  cr_assert_eq(match[1], 1); /* 1.8 ms -> the event at 0 */
}

Test(compare, empty_and_invalid_inputs)
{
  double t[] = {1.0}, bad[] = {NAN};
  quantal_match_result r;
  quantal_diag d;
  cr_assert_eq(quantal_compare_events(NULL, NULL, 0, t, NULL, 1, 0.002, NULL,
                                      &r, &d),
               QUANTAL_OK);
  cr_assert_eq(r.false_negatives, 1);
  cr_assert(isnan(r.precision));
  cr_assert_float_eq(r.recall, 0.0, 1e-12);
  cr_assert_eq(quantal_compare_events(bad, NULL, 1, t, NULL, 1, 0.002, NULL,
                                      &r, &d),
               QUANTAL_EINVAL);
  cr_assert_eq(quantal_compare_events(t, NULL, 1, t, NULL, 1, -1.0, NULL, &r,
                                      &d),
               QUANTAL_EINVAL);
}

/* ---- the waveform path of recovery ------------------------------------ */

#include "../../src/internal.h" /* qtl_recording_from_memory */

#include <stdlib.h>
#include <string.h>

typedef struct trace_buf {
  double *x;
  size_t n, cap;
} trace_buf;

static quantal_status
keep_channel_1(void *ctx, const double *frames, size_t n, quantal_diag *diag)
{
  trace_buf *b = ctx;
  size_t j;
  (void)diag;
  for (j = 0; j < n && b->n < b->cap; j++)
    b->x[b->n++] = frames[2 * j];
  return QUANTAL_OK;
}

Test(compare, evoked_kinetics_of_a_noise_free_current)
{
  /* Voltage clamp, no noise, no minis, no latency jitter, every site
   * releasing: each response is exactly k q (exp(-t/decay) -
   * exp(-t/rise)) from delay after the stimulus. In the template's form
   * (1 - exp(-t/r)) exp(-t/d) that is d = decay and 1/r = 1/rise -
   * 1/decay, so the fit must return those up to the solver's tolerance
   * (nothing else perturbs it). */
  quantal_sim_options so = quantal_sim_options_default();
  quantal_sim_derived der;
  quantal_recording *rec = NULL;
  quantal_kinetics kin;
  quantal_diag d;
  trace_buf b;
  double stim[10], r_want;
  unsigned i;
  so.seed = 3;
  so.rate_hz = 20000;
  so.duration_s = 5.0;
  so.clamp = QUANTAL_SIM_VOLTAGE_CLAMP;
  so.stim_period_s = 0.5;
  so.stim_start_s = 0.25;
  so.delay_s = 0.001;
  so.latency_s = 0.0;
  so.release.model = QUANTAL_RELEASE_BINOMIAL;
  so.release.n = 5;
  so.release.p = 1.0;
  so.release.q = 20.0;
  so.release.cv_q = 0.0;
  so.release.noise_sd = 0.0;
  so.mini_rate_hz = 0.0;
  so.rise_s = 0.0005;
  so.decay_s = 0.004;
  cr_assert_eq(quantal_sim_prepare(&so, &der, &d), QUANTAL_OK, "%s",
               d.reason);
  b.cap = (size_t)der.frames;
  b.n = 0;
  b.x = malloc(b.cap * sizeof *b.x);
  cr_assert_not_null(b.x);
  cr_assert_eq(quantal_sim_run(&so, keep_channel_1, NULL, &b, &d),
               QUANTAL_OK, "%s", d.reason);
  cr_assert_eq(qtl_recording_from_memory("sim", b.x, b.n, so.rate_hz, "Im",
                                         "pA", &rec, &d),
               QUANTAL_OK);
  for (i = 0; i < 10; i++)
    stim[i] = 0.25 + 0.5 * i;
  cr_assert_eq(quantal_evoked_kinetics(rec, 0, stim, NULL, 10, NULL, &kin,
                                       &d),
               QUANTAL_OK, "%s", d.reason);
  r_want = 1.0 / (1.0 / so.rise_s - 1.0 / so.decay_s);
  cr_expect_float_eq(kin.decay_s, so.decay_s, 1e-3 * so.decay_s, "decay %g",
                     kin.decay_s);
  cr_expect_float_eq(kin.rise_s, r_want, 1e-3 * r_want, "rise %g",
                     kin.rise_s);
  cr_expect_float_eq(kin.onset_s, so.delay_s, 0.05 / so.rate_hz,
                     "onset %g", kin.onset_s);
  quantal_recording_close(rec);
}

/* A small voltage-clamp experiment: 20 stimuli, inward quanta. */
static void
small_shape(quantal_waveform_shape *w, double *stim)
{
  size_t i;
  memset(w, 0, sizeof *w);
  for (i = 0; i < 20; i++)
    stim[i] = 0.25 + 0.5 * (double)i;
  w->rate_hz = 5000;
  w->duration_s = 10.25;
  w->stim_s = stim;
  w->n_stim = 20;
  w->clamp = QUANTAL_SIM_VOLTAGE_CLAMP;
  w->unit = "pA";
  w->resting = -15.0;
  w->noise_sd = 1.0;
  w->rise_s = 0.0005;
  w->decay_s = 0.004;
  w->delay_s = 0.001;
  w->mini_rate_hz = 2.0;
  w->evoked = quantal_evoked_options_default();
  w->detect_minis = 1;
  w->minis_before_s = 0.001;
  w->minis_after_s = w->evoked.window_s;
}

static quantal_recovery_options
small_recovery(const quantal_waveform_shape *w, unsigned threads)
{
  quantal_recovery_options o = quantal_recovery_options_default();
  o.truth.model = QUANTAL_RELEASE_BINOMIAL;
  o.truth.n = 8;
  o.truth.p = 0.4;
  o.truth.q = -20.0;
  o.truth.cv_q = 0.2;
  o.truth.noise_sd = 1.0;
  o.fit.n_max = 30;
  o.replicates = 3;
  o.threads = threads;
  o.seed = 11;
  o.waveform = w;
  return o;
}

Test(compare, waveform_recovery_does_not_depend_on_threads)
{
  quantal_waveform_shape w;
  quantal_recovery_options o;
  quantal_recovery_result *r1 = NULL, *r2 = NULL;
  quantal_diag d;
  double stim[20];
  size_t i;
  small_shape(&w, stim);
  o = small_recovery(&w, 1);
  cr_assert_eq(quantal_compare_recovery(&o, &r1, &d), QUANTAL_OK, "%s",
               d.reason);
  o.threads = 2;
  cr_assert_eq(quantal_compare_recovery(&o, &r2, &d), QUANTAL_OK, "%s",
               d.reason);
  cr_assert_eq(r1->n_ok + r1->n_failed, 3);
  cr_assert_eq(r1->n_failed, 0, "%s", r1->failure.reason);
  cr_assert_not_null(r1->wave);
  cr_assert(memcmp(r1->estimates, r2->estimates,
                   3 * QUANTAL_PAR_COUNT * sizeof(double)) == 0);
  cr_assert(memcmp(r1->wave, r2->wave,
                   3 * QUANTAL_WAVE_COUNT * sizeof(double)) == 0);
  for (i = 0; i < 3; i++) {
    const double *v = r1->wave + i * QUANTAL_WAVE_COUNT;
    cr_expect(v[QUANTAL_WAVE_MISCLASSIFIED] >= 0.0 &&
              v[QUANTAL_WAVE_MISCLASSIFIED] <= 20.0);
    cr_expect(v[QUANTAL_WAVE_MINIS_SIMULATED] >= 0.0);
    cr_expect(v[QUANTAL_WAVE_MINIS_DETECTED] >= 0.0);
  }
  /* The responses are inward: q keeps the data's sign. */
  cr_expect(r1->par[QUANTAL_PAR_Q].mean < 0.0);
  quantal_recovery_result_free(r1);
  quantal_recovery_result_free(r2);
}

Test(compare, waveform_replicate_that_cannot_be_analysed_is_counted)
{
  /* A blanking as long as the response window: every recording is
   * refused by the evoked measurement; the run reports them all. */
  quantal_waveform_shape w;
  quantal_recovery_options o;
  quantal_recovery_result *r = NULL;
  quantal_diag d;
  double stim[20];
  small_shape(&w, stim);
  w.evoked.blank_s = w.evoked.window_s;
  o = small_recovery(&w, 2);
  cr_assert_eq(quantal_compare_recovery(&o, &r, &d), QUANTAL_OK, "%s",
               d.reason);
  cr_expect_eq(r->n_ok, 0);
  cr_expect_eq(r->n_failed, 3);
  cr_expect_eq(r->failed_replicate, 0);
  cr_expect(strstr(r->failure.reason, "blanking") != NULL, "%s",
            r->failure.reason);
  quantal_recovery_result_free(r);
}

Test(compare, waveform_without_kinetics_is_refused)
{
  quantal_waveform_shape w;
  quantal_recovery_options o;
  quantal_recovery_result *r = NULL;
  quantal_diag d;
  double stim[20];
  small_shape(&w, stim);
  w.rise_s = 0.0;
  o = small_recovery(&w, 1);
  cr_assert_eq(quantal_compare_recovery(&o, &r, &d), QUANTAL_EINVAL);
  cr_assert_null(r);
  cr_expect(strstr(d.reason, "kinetics") != NULL, "%s", d.reason);
}
