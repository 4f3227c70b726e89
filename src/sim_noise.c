/* sim_noise.c - coloured noise for simulated recordings.
 * SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "sim_internal.h"

#include <math.h>
#include <string.h>

/*
 * 1/f noise by the interlaced pole-zero filter (Keshner 1982, Proc IEEE
 * 70:212; Kasdin 1995, Proc IEEE 83:802): a cascade of first-order
 * sections with poles at corner frequencies f_k spaced two per decade
 * from fmin up to the Nyquist frequency, each followed half-way (in log f)
 * by a zero, approximates a -10 dB/decade magnitude (1/f power) to within
 * +-0.1 dB between 10 fmin and a tenth of the sample rate; below fmin the
 * spectrum is flat, which keeps the variance finite. The cascade is run
 * in parallel form, H(z) = c + sum_k r_k / (1 - p_k z^-1), whose
 * residues r_k = prod_j (1 - z_j / p_k) / prod_{j != k} (1 - p_j / p_k)
 * and constant c = prod_j z_j / p_j follow from partial fractions; the
 * sections are then independent and the work is two multiply-adds per
 * pole and sample.
 */
quantal_status
qtl_pink_init(qtl_pink *pk, double fmin_hz, double rate_hz, double sd,
              quantal_diag *diag)
{
  double zero[QTL_PINK_MAX], var, f, scale, c = 1.0, step = pow(10.0, 0.5);
  size_t i, j, n = 0;

  memset(pk, 0, sizeof *pk);
  if (!(fmin_hz > 0.0) || !(fmin_hz < rate_hz / 20.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "lowest 1/f noise frequency %g Hz must be above 0 and "
                    "below a twentieth of the sample rate",
                    fmin_hz);
  for (f = fmin_hz; f < 0.5 * rate_hz && n < QTL_PINK_MAX; f *= step) {
    pk->a[n] = exp(-2.0 * M_PI * f / rate_hz);
    zero[n] = exp(-2.0 * M_PI * f * sqrt(step) / rate_hz);
    n++;
  }
  for (i = 0; i < n; i++) {
    double r = 1.0;
    for (j = 0; j < n; j++) {
      r *= 1.0 - zero[j] / pk->a[i];
      if (j != i)
        r /= 1.0 - pk->a[j] / pk->a[i];
    }
    pk->w[i] = r;
    c *= zero[i] / pk->a[i];
  }
  pk->n = n;
  /* Output variance for unit white input x: y = c x + sum_k r_k s_k with
   * s_k = sum_m p_k^m x[n - m], so Var y = c^2 + 2 c sum_k r_k
   * + sum_jk r_j r_k / (1 - p_j p_k). */
  var = c * c;
  for (i = 0; i < n; i++) {
    var += 2.0 * c * pk->w[i];
    for (j = 0; j < n; j++)
      var += pk->w[i] * pk->w[j] / (1.0 - pk->a[i] * pk->a[j]);
  }
  if (!(var > 0.0) || !isfinite(var))
    return qtl_fail(diag, QUANTAL_ENUMERIC, NULL, -1, -1,
                    "cannot design the 1/f noise filter");
  scale = sd / sqrt(var);
  for (i = 0; i < n; i++)
    pk->w[i] *= scale;
  pk->c = c * scale;
  return QUANTAL_OK;
}

void
qtl_pink_run(qtl_pink *pk, const double *x, double *out, size_t n)
{
  size_t i, k, np = pk->n;
  double y[QTL_PINK_MAX], a[QTL_PINK_MAX], w[QTL_PINK_MAX], c = pk->c;
  /* Local copies let the compiler keep the bank in registers. */
  memcpy(y, pk->y, sizeof y);
  memcpy(a, pk->a, sizeof a);
  memcpy(w, pk->w, sizeof w);
  /* Poles beyond n have a = w = 0 (memset in init), so the bank can be
   * run in fours; four partial sums keep the additions independent. */
  np = (np + 3) & ~(size_t)3;
  for (i = 0; i < n; i++) {
    double xi = x[i], s0 = c * xi, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (k = 0; k < np; k += 4) {
      y[k] = a[k] * y[k] + xi;
      y[k + 1] = a[k + 1] * y[k + 1] + xi;
      y[k + 2] = a[k + 2] * y[k + 2] + xi;
      y[k + 3] = a[k + 3] * y[k + 3] + xi;
      s0 += w[k] * y[k];
      s1 += w[k + 1] * y[k + 1];
      s2 += w[k + 2] * y[k + 2];
      s3 += w[k + 3] * y[k + 3];
    }
    out[i] = (s0 + s1) + (s2 + s3);
  }
  memcpy(pk->y, y, sizeof y);
}
