/* test_detect.c - unit tests of filter, template, measure and detect. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void
suite_init(void)
{
  gsl_set_error_handler_off();
}

TestSuite(detect, .init = suite_init);

/* A synthetic trace: offset + drift + bi-exponential events + white
 * Gaussian noise from a seeded generator. Event onsets and amplitudes are
 * returned for matching. */
typedef struct synth {
  double *x;
  size_t n;
  double rate;
  double onset[4096], amp[4096];
  size_t ne;
} synth;

static void
synth_make(synth *s, double rate, double dur, double offset, double drift,
           double noise, double amp, double rise, double decay, double ev_hz,
           int sign, unsigned long seed)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  size_t i, k;
  double t = 0.05;
  gsl_rng_set(r, seed);
  s->rate = rate;
  s->n = (size_t)(dur * rate);
  s->x = malloc(s->n * sizeof *s->x);
  cr_assert_not_null(s->x);
  for (i = 0; i < s->n; i++)
    s->x[i] = offset + drift * (double)i / rate +
              gsl_ran_gaussian_ziggurat(r, noise);
  s->ne = 0;
  for (;;) {
    double a;
    size_t i0;
    t += gsl_ran_exponential(r, 1.0 / ev_hz) + 0.002;
    if (t > dur - 0.05 || s->ne == 4096)
      break;
    a = sign * amp * gsl_ran_lognormal(r, -0.5 * log(1.09), sqrt(log(1.09)));
    s->onset[s->ne] = t;
    s->amp[s->ne] = a;
    s->ne++;
    i0 = (size_t)ceil(t * rate);
    for (k = i0; k < s->n && (double)(k - i0) / rate < 12 * decay; k++)
      s->x[k] += a * quantal_template_biexp_value((double)k / rate - t, rise,
                                                  decay);
  }
  gsl_rng_free(r);
}

/* ---- criterion against the O(N L) double sum ------------------------- */

/* Worst error of quantal_template_criterion against the direct double
 * sum, relative to the criterion itself or to 1 where it is near zero
 * (the criterion is amplitude / noise SD, so 1 is a one-SD event). */
static double
criterion_error(const quantal_template *t, const synth *s)
{
  quantal_matcher *m = NULL;
  quantal_diag diag;
  double *c, *cd, worst = 0.0;
  size_t i, nout = s->n - t->n + 1;
  cr_assert_eq(quantal_template_matcher_alloc(t, &m, &diag), QUANTAL_OK);
  c = malloc(nout * sizeof *c);
  cd = malloc(nout * sizeof *cd);
  cr_assert_eq(quantal_template_criterion(m, s->x, s->n, c, NULL, &diag),
               QUANTAL_OK);
  cr_assert_eq(quantal_template_criterion_direct(t, s->x, s->n, cd, &diag),
               QUANTAL_OK);
  for (i = 0; i < nout; i++) {
    double e = fabs(c[i] - cd[i]) / fmax(fabs(cd[i]), 1.0);
    if (e > worst)
      worst = e;
  }
  free(c);
  free(cd);
  quantal_template_matcher_free(m);
  return worst;
}

Test(detect, criterion_matches_direct_on_large_offset)
{
  /* -75 mV membrane potential with 0.1 mV noise: the case where single
   * precision cancels unless the offset is removed first. The
   * bi-exponential template is correlated by its recursion, in double
   * precision (1e-9: its error is about 1 / (1 - e^{-1/100}) roundings
   * of the sums, 1e-14 of them); the same waveform given as samples goes
   * through the single-precision FFT (1e-4: float's 6e-8 times the
   * cancellation of the offset and the template's sum). */
  synth s;
  quantal_template *t = NULL, *ts = NULL;
  quantal_diag diag;
  double e;
  synth_make(&s, 20000.0, 1.5, -75.0, 0.0, 0.1, 0.5, 0.0005, 0.005, 5.0, 1,
             11);
  cr_assert_eq(quantal_template_biexp(0.0005, 0.005, s.rate, &t, &diag),
               QUANTAL_OK);
  e = criterion_error(t, &s);
  cr_expect_leq(e, 1e-9, "recursion: worst relative error %g", e);
  cr_assert_eq(quantal_template_from_samples(t->y, t->n, s.rate, &ts, &diag),
               QUANTAL_OK);
  e = criterion_error(ts, &s);
  cr_expect_leq(e, 1e-4, "FFT: worst relative error %g", e);
  cr_expect_gt(e, 1e-9, "the sampled template took the recursion too");
  free(s.x);
  quantal_template_free(t);
  quantal_template_free(ts);
}

/* The direct sum's integer screen (qtl_xcorr_screen on a short kernel)
 * may skip the float sums only where every output is under the
 * threshold: each output of the screened run is the unscreened one bit
 * for bit, or NaN where the unscreened one is under the threshold, and
 * every output at or over it lies in a recorded hit span. The trace sits
 * at -75 mV with events of many sizes, so outputs fall on both sides of
 * the threshold and next to it; one threshold is an output's own value. */
Test(detect, xcorr_screen_skips_only_outputs_under_threshold)
{
  size_t n = 60000, K = 48, i, j, nnan, npass;
  double *x = malloc(n * sizeof *x), *ref = malloc(n * sizeof *ref);
  double *out = malloc(n * sizeof *out), k[48];
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  quantal_diag diag;
  qtl_xcorr *c = NULL;
  int pol, t;
  for (j = 0; j < K; j++)
    k[j] = exp(-0.5 * ((double)j - 20.0) * ((double)j - 20.0) / 16.0) -
           0.3 * exp(-0.5 * ((double)j - 26.0) * ((double)j - 26.0) / 9.0);
  cr_assert_eq(qtl_xcorr_alloc(k, K, 128, &c, &diag), QUANTAL_OK);
  for (t = 0; t < 4; t++) {
    const qtl_span *sp;
    size_t nsp = 0, s;
    double thr;
    /* the screen takes thresholds above 0 on pol times the output: the
     * offset, 75 mV of the polarity's sign, keeps them there */
    pol = t % 2 ? -1 : 1;
    gsl_rng_set(rng, 78);
    for (i = 0; i < n; i++)
      x[i] = 75.0 * pol + gsl_ran_gaussian(rng, 0.1);
    for (i = 100; i + 200 < n; i += 150 + gsl_rng_uniform_int(rng, 300)) {
      double a = gsl_ran_flat(rng, -1.0, 1.0);
      for (j = 0; j < 200; j++)
        x[i + j] += a * (exp(-(double)j / 40.0) - exp(-(double)j / 4.0));
    }
    qtl_xcorr_screen(c, 0.0, pol);
    qtl_xcorr_run(c, x, n, ref, NULL);
    if (t < 2) {
      /* 30 % of the way from the first output to the largest */
      double mx = 0.0;
      for (i = 0; i + K <= n; i++)
        if (pol * ref[i] - pol * ref[0] > mx)
          mx = pol * ref[i] - pol * ref[0];
      thr = pol * ref[0] + 0.3 * mx;
    } else {
      /* exactly the largest output of the second half: it must pass */
      size_t m = n / 2;
      for (i = n / 2; i + K <= n; i++)
        if (pol * ref[i] > pol * ref[m])
          m = i;
      thr = pol * ref[m];
    }
    cr_assert_gt(thr, 0.0);
    qtl_xcorr_screen(c, thr, pol);
    qtl_xcorr_run(c, x, n, out, NULL);
    cr_assert_eq(qtl_xcorr_hits(c, &sp, &nsp), qtl_have_avx2() ? 0 : -1);
    nnan = npass = 0;
    for (i = 0, s = 0; i + K <= n; i++) {
      int passes = pol * ref[i] >= thr;
      npass += passes;
      if (isnan(out[i])) {
        nnan++;
        cr_assert(!passes, "output %zu (%g, threshold %g) skipped", i,
                  pol * ref[i], thr);
      } else {
        cr_assert(memcmp(&out[i], &ref[i], sizeof out[i]) == 0,
                  "output %zu: %.17g against %.17g", i, out[i], ref[i]);
      }
      if (passes && qtl_have_avx2()) {
        while (s < nsp && sp[s].hi <= i)
          s++;
        cr_assert(s < nsp && sp[s].lo <= i, "output %zu passes outside "
                  "the hit spans", i);
      }
    }
    cr_assert_gt(npass, 0);
    if (qtl_have_avx2())
      cr_assert_gt(nnan, n / 2, "the screen skipped only %zu of %zu", nnan,
                   n);
  }
  qtl_xcorr_free(c);
  gsl_rng_free(rng);
  free(x);
  free(ref);
  free(out);
}

/* Both ways of the internal correlation (float FFT overlap-save for long
 * kernels, a direct sum for short ones, float with AVX2 and double
 * without) against a double-precision direct sum, on a trace at -75 mV
 * with 0.1 mV noise: to 1e-4 of the output's noise SD (0.1 mV times the
 * norm of k), which the offset must not swamp. The FFT path's outputs
 * carry its block shift, corrected here with the block_shift values. */
Test(detect, xcorr_fft_and_direct_match_double_sum)
{
  size_t n = 50000, i, j, lens[2] = {48, 600};
  double *x = malloc(n * sizeof *x), *out = malloc(n * sizeof *out);
  double *shift = malloc(n * sizeof *shift), *k = malloc(600 * sizeof *k);
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  quantal_diag diag;
  int t, path;
  gsl_rng_set(rng, 77);
  for (i = 0; i < n; i++)
    x[i] = -75.0 + gsl_ran_gaussian(rng, 0.1);
  for (t = 0; t < 2; t++) {
    size_t K = lens[t];
    double ksum = 0.0, knorm = 0.0, worst = 0.0;
    qtl_xcorr *c = NULL;
    for (j = 0; j < K; j++) {
      k[j] = sin(0.3 * (double)j) * exp(-(double)j / (double)K) + 0.01;
      ksum += k[j];
      knorm += k[j] * k[j];
    }
    /* the short kernel directly; the long one by FFT */
    cr_assert_eq(qtl_xcorr_alloc(k, K, 128, &c, &diag), QUANTAL_OK);
    cr_assert_eq(qtl_xcorr_klen(c), K);
    qtl_xcorr_run(c, x, n, out, shift);
    for (i = 0; i + K <= n; i += 7) {
      double ref = 0.0, got = out[i] + shift[i] * ksum;
      for (j = 0; j < K; j++)
        ref += k[j] * x[i + j];
      if (fabs(got - ref) > worst)
        worst = fabs(got - ref);
    }
    path = K <= 128;
    knorm = sqrt(knorm);
    cr_assert_lt(worst, 1e-4 * 0.1 * knorm,
                 "%s path: largest error %g against %g", path ? "direct"
                                                             : "FFT",
                 worst, 1e-4 * 0.1 * knorm);
    qtl_xcorr_free(c);
  }
  gsl_rng_free(rng);
  free(x);
  free(out);
  free(shift);
  free(k);
}

Test(detect, fit_at_recovers_scale_and_offset_exactly)
{
  quantal_template *t = NULL;
  quantal_template_fit f;
  double x[2000];
  size_t i;
  cr_assert_eq(quantal_template_biexp(0.001, 0.004, 10000.0, &t, NULL),
               QUANTAL_OK);
  for (i = 0; i < 2000; i++)
    x[i] = -70.0;
  for (i = 0; i < t->n; i++)
    x[300 + i] += -2.5 * t->y[i];
  cr_assert_eq(quantal_template_fit_best(t, x, 2000, 250, 350, -1, &f, NULL),
               QUANTAL_OK);
  cr_expect_eq(f.index, 300);
  cr_expect_float_eq(f.scale, -2.5, 1e-9);
  cr_expect_float_eq(f.offset, -70.0, 1e-9);
  cr_expect_leq(f.sse, 1e-12);
  quantal_template_free(t);
}

/* ---- kinetics --------------------------------------------------------- */

Test(detect, kinetics_fit_noise_free_within_2_percent)
{
  const double rate = 20000.0, rise = 0.0004, decay = 0.006, t0 = 0.003;
  double y[1200];
  size_t i;
  quantal_kinetics k;
  quantal_diag diag;
  for (i = 0; i < 1200; i++)
    y[i] = 1.5 + 0.8 * quantal_template_biexp_value((double)i / rate - t0,
                                                    rise, decay);
  /* starting guesses 2x too slow and 3x too fast */
  cr_assert_eq(quantal_template_fit_kinetics(y, 1200, rate, 2 * rise,
                                             decay / 3, 0.002, &k, &diag),
               QUANTAL_OK, "%s", diag.reason);
  cr_expect_leq(fabs(k.rise_s / rise - 1.0), 0.02, "rise %g", k.rise_s);
  cr_expect_leq(fabs(k.decay_s / decay - 1.0), 0.02, "decay %g", k.decay_s);
  cr_expect_leq(fabs(k.amplitude / 0.8 - 1.0), 0.02);
  cr_expect_leq(fabs(k.onset_s - t0), 0.5 / rate);
}

Test(detect, measure_noise_free_event)
{
  const double rate = 20000.0, rise = 0.0005, decay = 0.005;
  double *x = calloc(4000, sizeof *x), tp;
  quantal_template *t = NULL;
  quantal_event ev;
  size_t i;
  for (i = 0; i < 4000; i++)
    x[i] = 3.0 * quantal_template_biexp_value((double)i / rate - 0.05, rise,
                                              decay);
  cr_assert_eq(quantal_template_biexp(rise, decay, rate, &t, NULL),
               QUANTAL_OK);
  cr_assert_eq(quantal_measure_event(x, 4000, rate, 0.0, 1000, 4000, 1, t,
                                     NULL, &ev, NULL),
               QUANTAL_OK);
  tp = qtl_biexp_tpeak(rise, decay);
  cr_expect_float_eq(ev.amplitude, 3.0, 1e-6);
  cr_expect_float_eq(ev.onset_s, 0.05, 0.5 / rate);
  cr_expect_float_eq(ev.peak_s, 0.05 + tp, 1.5 / rate);
  /* the smoothed rise is a little slower than the event's own */
  cr_expect_float_eq(ev.rise_10_90_s, qtl_biexp_rise_10_90(rise, decay),
                     0.15 * qtl_biexp_rise_10_90(rise, decay));
  /* after the peak the bi-exponential decays with tau = decay */
  cr_expect_float_eq(ev.decay_tau_s, decay, 0.05 * decay);
  /* area of 3 (1 - e^{-t/r}) e^{-t/d} / peak over 5 decays from the peak */
  cr_expect_gt(ev.area, 0.0);
  quantal_template_free(t);
  free(x);
}

/* ---- filters ---------------------------------------------------------- */

Test(detect, baseline_follows_drift_not_events)
{
  synth s;
  double *b, err = 0.0;
  size_t i;
  synth_make(&s, 10000.0, 10.0, -60.0, 0.3, 0.05, 1.0, 0.0005, 0.005, 3.0,
             1, 5);
  b = malloc(s.n * sizeof *b);
  cr_assert_eq(quantal_filter_baseline(s.x, s.n, 0, s.rate, 0.5, 0.02, b,
                                       NULL),
               QUANTAL_OK);
  for (i = 0; i < s.n; i++) {
    double truth = -60.0 + 0.3 * (double)i / s.rate;
    if (fabs(b[i] - truth) > err)
      err = fabs(b[i] - truth);
  }
  /* events of 20 noise SDs at 3/s move it by a fraction of the noise */
  cr_expect_leq(err, 0.05, "largest baseline error %g", err);
  free(b);
  free(s.x);
}

Test(detect, mains_hum_removed)
{
  const double rate = 20000.0;
  size_t n = 100000, i;
  double *x = malloc(n * sizeof *x), rms = 0.0;
  for (i = 0; i < n; i++) {
    double t = (double)i / rate;
    x[i] = 0.5 * sin(2 * M_PI * 50 * t + 0.3) +
           0.2 * cos(2 * M_PI * 150 * t) + 0.1 * sin(2 * M_PI * 100 * t);
  }
  cr_assert_eq(quantal_filter_mains(x, n, 0, rate, 50.0, 5, 0.5, NULL),
               QUANTAL_OK);
  for (i = 0; i < n; i++)
    rms += x[i] * x[i];
  rms = sqrt(rms / (double)n);
  cr_expect_leq(rms, 1e-6, "residual hum %g", rms);
  free(x);
}

/* ---- detection -------------------------------------------------------- */

typedef struct evlist {
  quantal_event ev[4096];
  size_t n;
} evlist;

static int
collect(const quantal_event *ev, void *user)
{
  evlist *l = user;
  if (l->n < 4096)
    l->ev[l->n++] = *ev;
  return 0;
}

/* F1 of detections against truth onsets within +-2 ms (greedy, in time
 * order). */
static double
f1_score(const synth *s, const evlist *l, double *med_amp_err)
{
  size_t i = 0, j = 0, tp = 0, nm = 0;
  double *err = malloc((l->n + 1) * sizeof *err);
  while (i < s->ne && j < l->n) {
    double d = l->ev[j].onset_s - s->onset[i];
    if (fabs(d) <= 0.002) {
      err[nm++] = fabs(l->ev[j].amplitude / s->amp[i] - 1.0);
      tp++;
      i++;
      j++;
    } else if (d < 0) {
      j++;
    } else {
      i++;
    }
  }
  *med_amp_err = nm ? qtl_median(err, nm) : NAN;
  free(err);
  return 2.0 * (double)tp / (double)(s->ne + l->n);
}

Test(detect, finds_events_at_snr_4_with_wrong_kinetics_guess)
{
  synth s;
  evlist *l = calloc(1, sizeof *l);
  quantal_detect_options o = quantal_detect_options_default();
  quantal_detect_summary sum;
  quantal_diag diag;
  double f1, amp_err;
  synth_make(&s, 20000.0, 30.0, -70.0, 0.01, 0.1, 0.4, 0.0003, 0.004, 3.0,
             1, 7);
  o.on_event = collect;
  o.user = l;
  o.rise_s = 0.0009; /* 3x too slow */
  o.decay_s = 0.012;
  cr_assert_eq(quantal_detect_array(s.x, s.n, s.rate, &o, &sum, &diag),
               QUANTAL_OK, "%s", diag.reason);
  cr_expect_eq(sum.polarity, 1);
  cr_expect(sum.refined);
  cr_expect_float_eq(sum.decay_s, 0.004, 0.1 * 0.004, "decay %g",
                     sum.decay_s);
  f1 = f1_score(&s, l, &amp_err);
  cr_expect_geq(f1, 0.97, "F1 %g (%zu found, %zu true)", f1, l->n, s.ne);
  /* amplitude SE ~ noise / sqrt(sum (T - mean T)^2) ~ 0.1 / 6 = 4 % */
  cr_expect_leq(amp_err, 0.06, "median amplitude error %g", amp_err);
  free(l);
  free(s.x);
}

Test(detect, negative_events_found_with_auto_polarity)
{
  synth s;
  evlist *l = calloc(1, sizeof *l);
  quantal_detect_options o = quantal_detect_options_default();
  quantal_detect_summary sum;
  double f1, amp_err;
  synth_make(&s, 10000.0, 20.0, 0.0, 0.0, 2.0, -10.0, 0.0005, 0.005, 3.0,
             1, 9);
  o.on_event = collect;
  o.user = l;
  cr_assert_eq(quantal_detect_array(s.x, s.n, s.rate, &o, &sum, NULL),
               QUANTAL_OK);
  cr_expect_eq(sum.polarity, -1);
  f1 = f1_score(&s, l, &amp_err);
  cr_expect_geq(f1, 0.97, "F1 %g", f1);
  cr_expect(l->n > 0 && l->ev[0].amplitude < 0.0);
  free(l);
  free(s.x);
}

Test(detect, same_events_for_any_block_size)
{
  static const size_t blocks[] = {2000, 7919, 65536, 1u << 22};
  synth s;
  evlist *ref = calloc(1, sizeof *ref), *l = calloc(1, sizeof *l);
  size_t b, i;
  int method;
  synth_make(&s, 10000.0, 25.0, -70.0, 0.05, 0.1, 0.5, 0.0005, 0.005, 8.0,
             1, 3);
  for (method = 0; method <= QUANTAL_DETECT_COMBINED; method++) {
    for (b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
      quantal_detect_options o = quantal_detect_options_default();
      quantal_detect_summary sum;
      quantal_diag diag;
      evlist *dst = b == 0 ? ref : l;
      dst->n = 0;
      o.method = (quantal_detect_method)method;
      o.block_frames = blocks[b];
      o.on_event = collect;
      o.user = dst;
      cr_assert_eq(quantal_detect_array(s.x, s.n, s.rate, &o, &sum, &diag),
                   QUANTAL_OK, "%s", diag.reason);
      if (b == 0) {
        cr_assert_gt(ref->n, 50, "method %d: %zu events", method, ref->n);
        continue;
      }
      cr_assert_eq(l->n, ref->n, "method %d block %zu: %zu vs %zu events",
                   method, blocks[b], l->n, ref->n);
      for (i = 0; i < l->n; i++) {
        const quantal_event *e = &l->ev[i], *r = &ref->ev[i];
        const double u[9] = {e->onset_s, e->peak_s, e->amplitude,
                             e->baseline, e->rise_10_90_s, e->decay_tau_s,
                             e->half_width_s, e->area, e->criterion},
                     v[9] = {r->onset_s, r->peak_s, r->amplitude,
                             r->baseline, r->rise_10_90_s, r->decay_tau_s,
                             r->half_width_s, r->area, r->criterion};
        int f;
        /* To the bit, every column: the scores' FFT segments and chunks
         * are cut at fixed frames, so a block edge moves no rounding. */
        for (f = 0; f < 9; f++)
          cr_assert(u[f] == v[f] || (isnan(u[f]) && isnan(v[f])),
                    "method %d block %zu event %zu column %d: %.17g vs "
                    "%.17g", method, blocks[b], i, f, u[f], v[f]);
        cr_assert_eq(e->overlap, r->overlap);
      }
    }
  }
  free(ref);
  free(l);
  free(s.x);
}

Test(detect, nan_gap_is_skipped_and_counted)
{
  synth s;
  evlist *l = calloc(1, sizeof *l);
  quantal_detect_options o = quantal_detect_options_default();
  quantal_detect_summary sum;
  size_t i;
  synth_make(&s, 10000.0, 10.0, 0.0, 0.0, 0.1, 1.0, 0.0005, 0.005, 3.0, 1,
             4);
  for (i = 40000; i < 45000; i++)
    s.x[i] = NAN;
  o.on_event = collect;
  o.user = l;
  cr_assert_eq(quantal_detect_array(s.x, s.n, s.rate, &o, &sum, NULL),
               QUANTAL_OK);
  cr_expect_eq(sum.n_gaps, 1);
  cr_expect_float_eq(sum.gap_s, 0.5, 1e-9);
  cr_expect_float_eq(sum.first_gap_s, 4.0, 1e-9);
  for (i = 0; i < l->n; i++)
    cr_expect(l->ev[i].onset_s < 4.0 || l->ev[i].onset_s >= 4.5);
  cr_expect_gt(l->n, 15);
  free(l);
  free(s.x);
}

Test(detect, bad_input_rejected)
{
  double x[50000];
  quantal_detect_options o = quantal_detect_options_default();
  quantal_detect_summary sum;
  quantal_diag diag;
  size_t i;
  for (i = 0; i < 50000; i++)
    x[i] = -70.0;
  /* constant: nothing to detect, an analysis failure */
  cr_expect_eq(quantal_detect_array(x, 50000, 10000.0, &o, &sum, &diag),
               QUANTAL_EFAILED);
  cr_expect_eq(quantal_detect_array(x, 100, 10000.0, &o, &sum, &diag),
               QUANTAL_ENODATA);
  cr_expect_eq(quantal_detect_array(x, 0, 10000.0, &o, &sum, &diag),
               QUANTAL_ENODATA);
  o.threshold = -1.0;
  cr_expect_eq(quantal_detect_array(x, 50000, 10000.0, &o, &sum, &diag),
               QUANTAL_EINVAL);
  o = quantal_detect_options_default();
  o.decay_s = 0.0;
  cr_expect_eq(quantal_detect_array(x, 50000, 10000.0, &o, &sum, &diag),
               QUANTAL_EINVAL);
  o = quantal_detect_options_default();
  o.from_s = 3.0;
  o.to_s = 2.0;
  cr_expect_eq(quantal_detect_array(x, 50000, 10000.0, &o, &sum, &diag),
               QUANTAL_EINVAL);
}
