/* gof.c - goodness of fit of a quantal mixture: KS, AD, binned counts. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <math.h>
#include <stdlib.h>

void
qtl_gof_stats(const qtl_mix *mix, const qtl_lik_ws *ws, unsigned K,
              const double *sorted, size_t n, double *ks, double *ad)
{
  /* Kolmogorov-Smirnov D = sup |F_n - F| and Anderson-Darling
   * A^2 = -n - (1/n) sum_i (2i - 1) [ln F(x_i) + ln(1 - F(x_{n+1-i}))]
   * (Anderson & Darling 1954; D'Agostino & Stephens 1986, eq. 4.2), with
   * F the fitted mixture CDF. The parameters are estimated, so the
   * textbook null distributions do not apply: p-values come from the
   * parametric bootstrap (Stute, Gonzalez Manteiga & Presedo Quindimil
   * 1993). */
  double d = 0.0, a = 0.0, *F;
  size_t i;
  F = malloc(n * sizeof *F);
  if (F == NULL) {
    *ks = *ad = NAN;
    return;
  }
  for (i = 0; i < n; i++)
    F[i] = qtl_mix_cdf(mix, ws, K, sorted[i]);
  for (i = 0; i < n; i++) {
    double up = (double)(i + 1) / n - F[i], dn = F[i] - (double)i / n;
    double lo = F[i], hi = 1.0 - F[n - 1 - i];
    if (up > d)
      d = up;
    if (dn > d)
      d = dn;
    /* Clamp so a point in the far tail costs a large but finite term. */
    if (lo < 1e-300)
      lo = 1e-300;
    if (hi < 1e-300)
      hi = 1e-300;
    a += (2.0 * i + 1.0) * (log(lo) + log(hi));
  }
  free(F);
  *ks = d;
  *ad = -(double)n - a / n;
}

quantal_status
qtl_gof_bins(const qtl_mix *mix, const qtl_lik_ws *ws, unsigned K,
             const double *sorted, size_t n, size_t nbins, double *lo,
             double *hi, size_t *obs, double *expect)
{
  /* Equal-width bins over the data range; the outer bins extend to
   * +-infinity so the expected counts add up to n. */
  double x0 = sorted[0], x1 = sorted[n - 1], w;
  size_t b, i = 0;
  if (nbins == 0 || !(x1 > x0))
    return QUANTAL_EINVAL;
  w = (x1 - x0) / nbins;
  for (b = 0; b < nbins; b++) {
    double a = x0 + b * w, e = b + 1 == nbins ? x1 : x0 + (b + 1) * w;
    double Fa = b == 0 ? 0.0 : qtl_mix_cdf(mix, ws, K, a);
    double Fe = b + 1 == nbins ? 1.0 : qtl_mix_cdf(mix, ws, K, e);
    lo[b] = a;
    hi[b] = e;
    expect[b] = n * (Fe - Fa);
    obs[b] = 0;
    while (i < n && (sorted[i] < e || b + 1 == nbins)) {
      obs[b]++;
      i++;
    }
  }
  return QUANTAL_OK;
}
