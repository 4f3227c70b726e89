/* fit_coords.h - the unconstrained coordinates of the fits (fit.c, fit_shared.c). SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_FIT_COORDS_H
#define QUANTAL_FIT_COORDS_H

#include <math.h>

/* Release probabilities and widths are fitted in coordinates where every
 * value is valid: p = sin^2 t (periodic) and sigma = ref sqrt(t^2 + eps)
 * (even), so the edges p = 0, 1 and sigma = 0 are stationary points at
 * finite t. */
#define P_EPS 1e-12
#define SD_EPS2 1e-12

/* p = eps + (1 - 2 eps) sin^2 t, kept off 0 and 1 so log P(k) and its
 * derivative stay finite. */
static inline double
p_of(double t)
{
  double s = sin(t);
  return P_EPS + (1.0 - 2.0 * P_EPS) * s * s;
}

/* The inverse on [0, pi/2]. */
static inline double
t_of_p(double p)
{
  double u = (p - P_EPS) / (1.0 - 2.0 * P_EPS);
  u = u < 0.0 ? 0.0 : (u > 1.0 ? 1.0 : u);
  return asin(sqrt(u));
}

static inline double
sd_of(double t, double ref)
{
  return ref * sqrt(t * t + SD_EPS2);
}

static inline double
t_of_sd(double sd, double ref)
{
  double u = (sd / ref) * (sd / ref) - SD_EPS2;
  return u > 0.0 ? sqrt(u) : 0.0;
}

#endif
