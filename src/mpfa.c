/* mpfa.c - variance-mean (multiple-probability fluctuation) analysis. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <gsl/gsl_cdf.h>
#include <math.h>
#include <stdlib.h>

void
quantal_mpfa_result_free(quantal_mpfa_result *r)
{
  if (r == NULL)
    return;
  free(r->p);
  free(r);
}

quantal_status
quantal_mpfa_fit(const double *mean, const double *var,
                 const size_t *n_trials, size_t n_conditions, double cv_q,
                 double level, quantal_mpfa_result **out, quantal_diag *diag)
{
  /* Silver (2003), Clements & Silver (2000): with binomial release at N
   * sites of quantal size q, across conditions of different p the mean I
   * and variance s2 of the response obey
   *   s2 = q (1 + CV_q^2) I - I^2 / N,
   * the quantal variance (CV_q, intrasite) adding q CV_q^2 I. A weighted
   * least-squares parabola through the origin, s2 = A I - B I^2, with
   * weights 1 / Var(s2) = (n - 1) / (2 s2^2) (variance of a sample
   * variance, Gaussian approximation), gives q = A / (1 + CV_q^2),
   * N = 1 / B and p_j = I_j / (N q). Intervals are Wald intervals from
   * the weighted-LS covariance (delta method for N and p). */
  double s11 = 0.0, s12 = 0.0, s22 = 0.0, r1 = 0.0, r2 = 0.0, det, A, B;
  double cAA, cAB, cBB, z, c2 = 1.0 + cv_q * cv_q, chi2 = 0.0;
  quantal_mpfa_result *r;
  size_t j;
  if (out == NULL || mean == NULL || var == NULL || n_trials == NULL ||
      !(cv_q >= 0.0) || !(level > 0.0 && level < 1.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "invalid variance-mean input");
  *out = NULL;
  if (n_conditions < 3)
    return qtl_fail(diag, QUANTAL_ENODATA, NULL, -1, -1,
                    "variance-mean analysis needs at least 3 conditions, "
                    "got %zu",
                    n_conditions);
  for (j = 0; j < n_conditions; j++) {
    double I = mean[j], s2 = var[j], w;
    if (!isfinite(I) || !isfinite(s2) || s2 < 0.0 || n_trials[j] < 2)
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, (long long)j,
                      "condition %zu: needs a finite mean, a variance >= 0 "
                      "and at least 2 trials",
                      j + 1);
    /* A zero variance would get infinite weight: floor it at 1e-6 of the
     * largest variance. */
    w = (n_trials[j] - 1.0) / (2.0 * fmax(s2 * s2, 1e-12));
    s11 += w * I * I;
    s12 += -w * I * I * I;
    s22 += w * I * I * I * I;
    r1 += w * I * s2;
    r2 += -w * I * I * s2;
  }
  det = s11 * s22 - s12 * s12;
  if (!(det > 1e-14 * s11 * s22))
    return qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                    "the conditions do not span enough means for a "
                    "parabola");
  A = (s22 * r1 - s12 * r2) / det;
  B = (s11 * r2 - s12 * r1) / det;
  cAA = s22 / det;
  cBB = s11 / det;
  cAB = -s12 / det;
  for (j = 0; j < n_conditions; j++) {
    double I = mean[j], w = (n_trials[j] - 1.0) /
                            (2.0 * fmax(var[j] * var[j], 1e-12));
    double e = var[j] - (A * I - B * I * I);
    chi2 += w * e * e;
  }
  r = calloc(1, sizeof *r);
  if (r == NULL || (r->p = calloc(n_conditions, sizeof *r->p)) == NULL) {
    free(r);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  z = gsl_cdf_ugaussian_Pinv(0.5 * (1.0 + level));
  r->n_conditions = n_conditions;
  r->chi2 = chi2;
  r->df = (int)n_conditions - 2;
  r->a.value = A;
  r->a.lo = A - z * sqrt(cAA);
  r->a.hi = A + z * sqrt(cAA);
  r->b.value = B;
  r->b.lo = B - z * sqrt(cBB);
  r->b.hi = B + z * sqrt(cBB);
  r->q.value = A / c2;
  r->q.lo = r->a.lo / c2;
  r->q.hi = r->a.hi / c2;
  r->n_sites.value = B > 0.0 ? 1.0 / B : INFINITY;
  r->n_sites.lo = r->b.hi > 0.0 ? 1.0 / r->b.hi : INFINITY;
  r->n_sites.hi = r->b.lo > 0.0 ? 1.0 / r->b.lo : INFINITY;
  for (j = 0; j < n_conditions; j++) {
    /* p = I B (1 + CV_q^2) / A; gradient (-p / A, p / B). */
    double p = mean[j] * B * c2 / A;
    double gA = -p / A, gB = mean[j] * c2 / A;
    double se = sqrt(gA * gA * cAA + 2.0 * gA * gB * cAB + gB * gB * cBB);
    r->p[j].value = p;
    r->p[j].lo = p - z * se;
    r->p[j].hi = p + z * se;
  }
  *out = r;
  return QUANTAL_OK;
}
