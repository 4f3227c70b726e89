/* classic.c - classical estimators of quantal content. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <gsl/gsl_cdf.h>
#include <math.h>

static int
bad_level(double level)
{
  return !(level > 0.0 && level < 1.0);
}

quantal_status
quantal_classic_failures(size_t n_trials, size_t n_failures, double level,
                         quantal_estimate *m, quantal_diag *diag)
{
  /* del Castillo & Katz (1954): with Poisson release the probability of a
   * failure is exp(-m), so m = ln(N / N0). N0 ~ Binomial(N, exp(-m)); the
   * Clopper-Pearson (1934) interval of the failure probability, through
   * the decreasing map -ln, gives the interval of m. */
  double a = 0.5 * (1.0 - level), plo, phi;
  double N = (double)n_trials, N0 = (double)n_failures;
  if (m == NULL || bad_level(level))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "invalid confidence level");
  if (n_trials == 0)
    return qtl_fail(diag, QUANTAL_ENODATA, NULL, -1, -1, "no trials");
  if (n_failures > n_trials)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "more failures (%zu) than trials (%zu)", n_failures,
                    n_trials);
  plo = n_failures == 0 ? 0.0 : gsl_cdf_beta_Pinv(a, N0, N - N0 + 1.0);
  phi = n_failures == n_trials ? 1.0
                               : gsl_cdf_beta_Pinv(1.0 - a, N0 + 1.0, N - N0);
  m->value = n_failures == 0 ? INFINITY : log(N / N0);
  m->lo = -log(phi);
  m->hi = n_failures == 0 ? INFINITY : -log(plo);
  if (m->lo <= 0.0)
    m->lo = 0.0; /* -log(1) is -0 */
  return QUANTAL_OK;
}

quantal_status
quantal_classic_direct(double mean_epp, double se_epp, double mean_mepp,
                       double se_mepp, double level, quantal_estimate *m,
                       quantal_diag *diag)
{
  /* m = mean EPP / mean MEPP (del Castillo & Katz 1954). The relative
   * variances of a ratio of independent means add (delta method):
   * (se_m / m)^2 = (se_epp / epp)^2 + (se_mepp / mepp)^2. */
  double z, rel;
  if (m == NULL || bad_level(level) || !isfinite(mean_epp) ||
      !isfinite(mean_mepp) || !(se_epp >= 0.0) || !(se_mepp >= 0.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "invalid input to the direct method");
  if (mean_mepp == 0.0 || mean_epp * mean_mepp < 0.0)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "mean EPP and mean MEPP must be non-zero, same sign");
  z = gsl_cdf_ugaussian_Pinv(0.5 * (1.0 + level));
  m->value = mean_epp / mean_mepp;
  rel = sqrt(pow(se_epp / mean_epp, 2) + pow(se_mepp / mean_mepp, 2));
  if (mean_epp == 0.0)
    rel = se_epp / fabs(mean_mepp);
  if (mean_epp == 0.0) {
    m->lo = 0.0;
    m->hi = z * rel;
  } else {
    m->lo = fmax(0.0, m->value * (1.0 - z * rel));
    m->hi = m->value * (1.0 + z * rel);
  }
  return QUANTAL_OK;
}

quantal_status
quantal_classic_cv(double mean_epp, double sd_epp, size_t n_trials,
                   double cv_q, double noise_sd, double level,
                   quantal_estimate *m, quantal_diag *diag)
{
  /* For Poisson release the EPP variance is m (q^2 + sigma_q^2), so
   * CV^2 = (1 + CV_q^2) / m (del Castillo & Katz 1954; Martin 1966) once
   * the recording noise variance is subtracted. The interval treats the
   * variance as chi-square with n - 1 degrees of freedom (Gaussian
   * approximation; the mean's error is second order). */
  double a = 0.5 * (1.0 - level), var, df, vlo, vhi, c2 = 1.0 + cv_q * cv_q;
  if (m == NULL || bad_level(level) || !isfinite(mean_epp) ||
      !(sd_epp >= 0.0) || !(cv_q >= 0.0) || !(noise_sd >= 0.0) ||
      !isfinite(sd_epp) || !isfinite(noise_sd))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "invalid input to the CV method");
  if (n_trials < 2)
    return qtl_fail(diag, QUANTAL_ENODATA, NULL, -1, -1,
                    "the CV method needs at least 2 trials");
  if (mean_epp == 0.0)
    return qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                    "mean EPP is 0: CV undefined");
  var = sd_epp * sd_epp - noise_sd * noise_sd;
  if (!(var > 0.0))
    return qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                    "EPP variance (%g) does not exceed the noise variance "
                    "(%g)",
                    sd_epp * sd_epp, noise_sd * noise_sd);
  df = (double)n_trials - 1.0;
  m->value = c2 * mean_epp * mean_epp / var;
  vlo = sd_epp * sd_epp * df / gsl_cdf_chisq_Pinv(1.0 - a, df) -
        noise_sd * noise_sd;
  vhi = sd_epp * sd_epp * df / gsl_cdf_chisq_Pinv(a, df) -
        noise_sd * noise_sd;
  m->lo = c2 * mean_epp * mean_epp / vhi;
  m->hi = vlo > 0.0 ? c2 * mean_epp * mean_epp / vlo : INFINITY;
  return QUANTAL_OK;
}

quantal_status
quantal_martin_correct(double v, double driving_force, double f,
                       double *corrected, quantal_diag *diag)
{
  /* Martin (1955): each quantum lowers the driving force, so a large
   * potential v is smaller than the linear sum of its quanta; v' =
   * v / (1 - f v / E). f = 1 is Martin's form; McLachlan & Martin (1981)
   * found f of about 0.8 for the real cable geometry. */
  double d;
  if (corrected == NULL || !isfinite(v) || !isfinite(driving_force) ||
      driving_force == 0.0 || !(f > 0.0 && f <= 1.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "invalid Martin correction input");
  d = 1.0 - f * v / driving_force;
  if (!(d > 0.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "potential %g is not below the driving force %g / f",
                    v, driving_force);
  *corrected = v / d;
  return QUANTAL_OK;
}
