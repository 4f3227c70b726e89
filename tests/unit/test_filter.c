/* test_filter.c - unit tests of the exact medians against gsl_stats_median. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include <criterion/criterion.h>
#include <float.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void
suite_init(void)
{
  gsl_set_error_handler_off();
}

TestSuite(median, .init = suite_init);

/* ---- exact medians ----------------------------------------------------- */

/* gsl_stats_median of a copy: the value every median must reproduce,
 * bit for bit (an order statistic, or the mean of two, has one value
 * whatever the algorithm). */
static double
gsl_median_of(const double *v, size_t n)
{
  double *c = malloc(n * sizeof *c), m;
  cr_assert_not_null(c);
  memcpy(c, v, n * sizeof *c);
  m = gsl_stats_median(c, 1, n);
  free(c);
  return m;
}

/* Kinds of data: the cases a selection gets wrong (ties, runs, sorted
 * input, outliers that push a sample's bracket off). */
enum { K_GAUSS, K_TIES, K_FEW, K_CONST, K_UP, K_DOWN, K_OUTLIERS, K_BIG_TIE,
       K_N };

static void
fill(double *v, size_t n, int kind, gsl_rng *r)
{
  size_t i;
  for (i = 0; i < n; i++) {
    double g = gsl_ran_gaussian(r, 1.0);
    switch (kind) {
    case K_GAUSS: v[i] = g; break;
    case K_TIES: v[i] = floor(3.0 * g); break;     /* quantised trace */
    case K_FEW: v[i] = (double)(i % 3); break;     /* three values */
    case K_CONST: v[i] = 5.25; break;
    case K_UP: v[i] = (double)i * 0.5; break;
    case K_DOWN: v[i] = -(double)i; break;
    case K_OUTLIERS: v[i] = i % 3 ? 1e12 * (1.0 + g * g) : g; break;
    default: v[i] = i % 5 < 2 ? 0.125 : g; break; /* 40 % tied near 0 */
    }
  }
}

Test(median, equals_gsl_on_every_kind_and_size)
{
  static const size_t sizes[] = {1,    2,    3,    4,     5,     7,    8,
                                 9,    15,   16,   17,    25,    26,   40,
                                 63,   64,   80,   81,    96,    97,   255,
                                 256,  257,  1000, 8191,  8192,  8193, 10007,
                                 65536, 100001};
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  size_t is, bad = 0;
  int kind, rep;
  gsl_rng_set(r, 7);
  for (is = 0; is < sizeof sizes / sizeof *sizes; is++)
    for (kind = 0; kind < K_N; kind++)
      for (rep = 0; rep < (sizes[is] < 1000 ? 20 : 2); rep++) {
        size_t n = sizes[is];
        double *v = malloc(n * sizeof *v), *keep = malloc(n * sizeof *v);
        double want, got;
        cr_assert(v != NULL && keep != NULL);
        fill(v, n, kind, r);
        memcpy(keep, v, n * sizeof *v);
        want = gsl_median_of(v, n);
        got = qtl_median(v, n);
        if (!(got == want)) {
          bad++;
          cr_log_error("n %zu kind %d: %.17g, gsl %.17g", n, kind, got, want);
        }
        /* the values are left in place */
        cr_expect(memcmp(v, keep, n * sizeof *v) == 0, "n %zu kind %d", n,
                  kind);
        free(v);
        free(keep);
      }
  cr_expect_eq(bad, 0, "%zu medians differ from gsl_stats_median", bad);
  cr_expect(isnan(qtl_median(NULL, 0)));
  gsl_rng_free(r);
}

/* A million values, as in the detector's calibration: the sampled
 * bracket's path, and its tie and fallback paths. */
Test(median, equals_gsl_on_a_million_values)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  size_t n = ((size_t)1 << 20) + 3;
  double *v = malloc(n * sizeof *v);
  int kind;
  cr_assert_not_null(v);
  gsl_rng_set(r, 11);
  for (kind = 0; kind < K_N; kind++) {
    size_t m = kind % 2 ? n : n - 1; /* odd and even */
    fill(v, m, kind, r);
    cr_expect_eq(qtl_median(v, m), gsl_median_of(v, m), "kind %d", kind);
  }
  free(v);
  gsl_rng_free(r);
}

Test(median, mad_sd_equals_gsl_reference)
{
  static const size_t sizes[] = {1, 2, 3, 4, 80, 1001, 20000, 300001};
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  size_t is, i;
  int kind;
  gsl_rng_set(r, 13);
  for (is = 0; is < sizeof sizes / sizeof *sizes; is++)
    for (kind = 0; kind < K_N; kind++) {
      size_t n = sizes[is];
      double *v = malloc(n * sizeof *v), *d = malloc(n * sizeof *d);
      double med, want;
      cr_assert(v != NULL && d != NULL);
      fill(v, n, kind, r);
      med = gsl_median_of(v, n);
      for (i = 0; i < n; i++)
        d[i] = fabs(v[i] - med);
      want = 1.482602218505602 * gsl_median_of(d, n);
      cr_expect_eq(qtl_mad_sd(v, n), want, "n %zu kind %d", n, kind);
      free(v);
      free(d);
    }
  gsl_rng_free(r);
}

