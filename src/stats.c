/* stats.c - robust statistics shared by the analysis modules. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdlib.h>

quantal_status
quantal_noise_sd(const double *x, size_t n, double *sd)
{
  double *d;
  size_t i, m = 0;
  if (n < 3)
    return QUANTAL_ENODATA;
  d = malloc((n - 1) * sizeof *d);
  if (d == NULL)
    return QUANTAL_ENOMEM;
  for (i = 1; i < n; i++)
    if (isfinite(x[i]) && isfinite(x[i - 1]))
      d[m++] = x[i] - x[i - 1];
  if (m < 2) {
    free(d);
    return QUANTAL_ENODATA;
  }
  *sd = qtl_mad_sd(d, m) / sqrt(2.0);
  free(d);
  return QUANTAL_OK;
}

double
qtl_mad_sd(double *v, size_t n)
{
  /* 1.4826 * MAD estimates the SD of a Gaussian (1 / Phi^-1(3/4)); the
   * median of first differences ignores slow drift, and the MAD ignores
   * the few large differences at event onsets. v is reordered. */
  double med = gsl_stats_median(v, 1, n);
  size_t i;
  for (i = 0; i < n; i++)
    v[i] = fabs(v[i] - med);
  return 1.482602218505602 * gsl_stats_median(v, 1, n);
}

int
qtl_cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

unsigned
qtl_claim_next(pthread_mutex_t *mu, unsigned *next, unsigned B,
               void (*on_progress)(size_t done, size_t total, void *user),
               void *user)
{
  unsigned b;
  pthread_mutex_lock(mu);
  b = (*next)++;
  if (on_progress != NULL && b < B)
    on_progress(b, B, user);
  pthread_mutex_unlock(mu);
  return b;
}

double
qtl_percentile_sorted(const double *v, size_t n, double f)
{
  double h = (n - 1) * f;
  size_t i = (size_t)floor(h);
  if (n == 0)
    return NAN;
  if (i + 1 >= n)
    return v[n - 1];
  return v[i] + (h - i) * (v[i + 1] - v[i]);
}
