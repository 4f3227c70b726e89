/* compare.c - scoring detections against ground truth. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * Detection scoring. A detection matches a true event when their times
 * differ by at most the tolerance, each event and each detection being
 * used at most once. Walking the true events in time order and giving each
 * the earliest unused detection within reach gives a matching of maximum
 * size (the exchange argument of interval scheduling: an earlier detection
 * can only be of use to this or a later event, never to an earlier one).
 * A detection equidistant from two events goes to the earlier event; a
 * second detection of one event is a false positive.
 */
quantal_status
quantal_compare_events(const double *det_s, const double *det_amp,
                       size_t n_det, const double *true_s,
                       const double *true_amp, size_t n_true,
                       double tolerance_s, size_t *match,
                       quantal_match_result *r, quantal_diag *diag)
{
  size_t *di = NULL, *ti = NULL, i, j = 0, k, n_amp = 0;
  double *dt = NULL, *ae = NULL, *re = NULL, s_dt = 0.0, s_dt2 = 0.0;
  double s_ae = 0.0, s_ae2 = 0.0;
  quantal_status st = QUANTAL_OK;

  memset(r, 0, sizeof *r);
  if (!(tolerance_s >= 0.0) || !isfinite(tolerance_s))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "the matching tolerance must be a finite time >= 0");
  for (i = 0; i < n_det; i++)
    if (!isfinite(det_s[i]))
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, (long long)i,
                      "detection %zu has no finite time", i + 1);
  for (i = 0; i < n_true; i++)
    if (!isfinite(true_s[i]))
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, (long long)i,
                      "true event %zu has no finite time", i + 1);
  di = malloc((n_det + 1) * sizeof *di);
  ti = malloc((n_true + 1) * sizeof *ti);
  dt = malloc((n_true + 1) * sizeof *dt);
  ae = malloc((n_true + 1) * sizeof *ae);
  re = malloc((n_true + 1) * sizeof *re);
  if (!di || !ti || !dt || !ae || !re) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    goto done;
  }
  /* Stable index sorts: equal times keep their table order. */
  gsl_sort_index(di, det_s, 1, n_det);
  gsl_sort_index(ti, true_s, 1, n_true);
  if (match != NULL)
    for (i = 0; i < n_det; i++)
      match[i] = (size_t)-1;

  for (k = 0; k < n_true; k++) {
    double t = true_s[ti[k]];
    /* Detections too early for this event are too early for every later
     * one: skip them for good. */
    while (j < n_det && det_s[di[j]] < t - tolerance_s)
      j++;
    if (j < n_det && det_s[di[j]] <= t + tolerance_s) {
      size_t d = di[j++];
      double e = det_s[d] - t;
      if (match != NULL)
        match[d] = ti[k];
      dt[r->true_positives] = e;
      s_dt += e;
      s_dt2 += e * e;
      r->true_positives++;
      if (det_amp != NULL && true_amp != NULL && isfinite(det_amp[d]) &&
          isfinite(true_amp[ti[k]])) {
        double a = det_amp[d] - true_amp[ti[k]];
        ae[n_amp] = a;
        re[n_amp] = true_amp[ti[k]] != 0.0 ? fabs(a / true_amp[ti[k]]) : NAN;
        s_ae += a;
        s_ae2 += a * a;
        n_amp++;
      }
    }
  }
  r->n_true = n_true;
  r->n_detected = n_det;
  r->false_positives = n_det - r->true_positives;
  r->false_negatives = n_true - r->true_positives;
  r->precision = n_det ? (double)r->true_positives / (double)n_det : NAN;
  r->recall = n_true ? (double)r->true_positives / (double)n_true : NAN;
  r->f1 = (n_det + n_true) ? 2.0 * (double)r->true_positives /
                                 (double)(n_det + n_true)
                           : NAN;
  r->onset_error_mean_s = NAN;
  r->onset_error_sd_s = NAN;
  r->onset_error_median_abs_s = NAN;
  r->amplitude_error_mean = NAN;
  r->amplitude_error_rms = NAN;
  r->amplitude_error_median_rel = NAN;
  r->n_amplitudes = n_amp;
  if (r->true_positives > 0) {
    double n = (double)r->true_positives;
    r->onset_error_mean_s = s_dt / n;
    r->onset_error_sd_s =
        n > 1 ? sqrt(fmax(0.0, (s_dt2 - s_dt * s_dt / n) / (n - 1))) : NAN;
    for (i = 0; i < r->true_positives; i++)
      dt[i] = fabs(dt[i]);
    gsl_sort(dt, 1, r->true_positives);
    r->onset_error_median_abs_s =
        gsl_stats_median_from_sorted_data(dt, 1, r->true_positives);
  }
  if (n_amp > 0) {
    size_t m = 0;
    r->amplitude_error_mean = s_ae / (double)n_amp;
    r->amplitude_error_rms = sqrt(s_ae2 / (double)n_amp);
    for (i = 0; i < n_amp; i++)
      if (isfinite(re[i]))
        re[m++] = re[i];
    if (m > 0) {
      gsl_sort(re, 1, m);
      r->amplitude_error_median_rel =
          gsl_stats_median_from_sorted_data(re, 1, m);
    }
  }
done:
  free(di);
  free(ti);
  free(dt);
  free(ae);
  free(re);
  return st;
}
