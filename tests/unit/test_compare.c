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
