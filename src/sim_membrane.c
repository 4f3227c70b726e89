/* sim_membrane.c - synaptic conductance and passive membrane of the simulator.
 * SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "sim_internal.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_roots.h>
#include <math.h>
#include <string.h>

/*
 * One quantum opens a conductance with a bi-exponential time course,
 * g(t) = g0 norm (exp(-t/decay) - exp(-t/rise)), the standard description
 * of an end-plate current (Magleby & Stevens 1972, J Physiol 223:173, for
 * its exponential decay; the rise is the binding/opening step). It peaks
 * at t* = rise decay / (decay - rise) ln(decay / rise).
 */
double
qtl_sim_biexp_tpeak(double rise, double decay)
{
  if (!(rise > 0.0))
    return 0.0;
  return rise * decay / (decay - rise) * log(decay / rise);
}

double
qtl_sim_biexp_norm(double rise, double decay)
{
  double tp = qtl_sim_biexp_tpeak(rise, decay);
  if (!(rise > 0.0))
    return 1.0;
  return 1.0 / (exp(-tp / decay) - exp(-tp / rise));
}

/* Refine a sampled extremum y1 (between y0 and y2, spacing h) by the
 * parabola through the three points; *dt receives the offset from y1. */
static double
parabolic_peak(double y0, double y1, double y2, double h, double *dt)
{
  double den = y0 - 2.0 * y1 + y2, d;
  if (den == 0.0) {
    *dt = 0.0;
    return y1;
  }
  d = 0.5 * (y0 - y2) / den;
  if (d > 1.0)
    d = 1.0;
  else if (d < -1.0)
    d = -1.0;
  *dt = d * h;
  return y1 - 0.25 * (y0 - y2) * d;
}

/* Tracks the extremum of a sampled signal of known sign. */
typedef struct peak_track {
  double sign, best, prev, best_prev, best_next, best_t;
  double h_in, h_out; /* steps before and after the best sample */
  int have_next, passed;
} peak_track;

static void
track_init(peak_track *pt, double sign, double t0)
{
  memset(pt, 0, sizeof *pt);
  pt->sign = sign;
  pt->best_t = t0;
}

/* Sample y at time t, reached by a step of h. */
static void
track(peak_track *pt, double y, double t, double h)
{
  double v = pt->sign * y;
  if (v > pt->best) {
    pt->best = v;
    pt->best_prev = pt->prev;
    pt->best_t = t;
    pt->h_in = h;
    pt->have_next = 0;
    pt->passed = 0;
  } else if (!pt->have_next && t > pt->best_t) {
    pt->best_next = v;
    pt->h_out = h;
    pt->have_next = 1;
  }
  if (v < pt->prev)
    pt->passed = 1;
  pt->prev = v;
}

static double
track_result(const peak_track *pt, double *t_peak)
{
  double dt = 0.0, y = pt->best;
  /* The parabola needs equally spaced samples. */
  if (pt->have_next && pt->h_in > 0.0 && pt->h_in == pt->h_out)
    y = parabolic_peak(pt->best_prev, pt->best, pt->best_next, pt->h_in, &dt);
  if (t_peak)
    *t_peak = pt->best_t + dt;
  return pt->sign * y;
}

/* The conductance of k quanta at time x, exactly. */
static double
g_exact(double x, double rise, double decay, double norm, const double *t,
        const double *g, size_t k)
{
  double s = 0.0;
  size_t j;
  for (j = 0; j < k && t[j] <= x; j++)
    s += g[j] * norm
         * (exp(-(x - t[j]) / decay)
            - (rise > 0.0 ? exp(-(x - t[j]) / rise) : 0.0));
  return s;
}

/* Golden-section search for the maximum of the exact conductance in
 * [a, b], which brackets the grid maximum (the conductance is unimodal
 * there at the resolution of the grid). */
static double
g_peak(double a, double b, double rise, double decay, double norm,
       const double *t, const double *g, size_t k, double *t_peak)
{
  const double r = 0.5 * (sqrt(5.0) - 1.0);
  double x1 = b - r * (b - a), x2 = a + r * (b - a),
         f1 = g_exact(x1, rise, decay, norm, t, g, k),
         f2 = g_exact(x2, rise, decay, norm, t, g, k);
  int it;
  for (it = 0; it < 80 && b - a > 1e-15; it++) {
    if (f1 < f2) {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + r * (b - a);
      f2 = g_exact(x2, rise, decay, norm, t, g, k);
    } else {
      b = x2;
      x2 = x1;
      f2 = f1;
      x1 = b - r * (b - a);
      f1 = g_exact(x1, rise, decay, norm, t, g, k);
    }
  }
  *t_peak = f1 > f2 ? x1 : x2;
  return f1 > f2 ? f1 : f2;
}

quantal_status
qtl_sim_isolated(const qtl_membrane *mb, double rise, double decay,
                 const double *t, const double *g, size_t k, double *peak,
                 double *t_peak, double *linear)
{
  double norm = qtl_sim_biexp_norm(rise, decay), h, h_slow, ed, er, hd, hr, tt,
         d = 0.0, r = 0.0, u = 0.0, ul = 0.0, e_lin, gprev = 0.0, de, sign,
         fastest, t_last;
  peak_track pu, pl;
  size_t j = 0;
  long step;
  int slow = 0, falling = 0;

  *peak = 0.0;
  *linear = 0.0;
  if (t_peak)
    *t_peak = k > 0 ? t[0] : 0.0;
  if (k == 0)
    return QUANTAL_OK;
  /* Steps of a fortieth of the fastest time constant keep the midpoint
   * exponential integrator below 1e-5 relative error in the peak. Once
   * every quantum is in and the conductance is past its peak, the rise
   * no longer matters and the step grows to a fortieth of the slower
   * of decay and tau_m. */
  fastest = decay;
  if (rise > 0.0 && rise < fastest)
    fastest = rise;
  h_slow = decay;
  if (!mb->vclamp && mb->tau_m < fastest)
    fastest = mb->tau_m;
  if (!mb->vclamp && mb->tau_m < h_slow)
    h_slow = mb->tau_m;
  h = fastest / 40.0;
  h_slow /= 40.0;
  de = mb->e_syn - mb->e_rest;
  if (mb->vclamp)
    de = mb->v_hold - mb->e_syn; /* I = g (V_hold - E_syn) */
  sign = de < 0.0 ? -1.0 : 1.0;
  track_init(&pu, sign, t[0]);
  track_init(&pl, sign, t[0]);
  t_last = t[k - 1];
  tt = t[0];
  for (step = 0;; step++) {
    double gnow, h_in = h;
    if (step == 0 || (falling && !slow)) {
      if (step > 0) {
        slow = 1;
        if (h_slow > h)
          h = h_slow;
      }
      ed = exp(-h / decay);
      er = rise > 0.0 ? exp(-h / rise) : 0.0;
      hd = exp(-0.5 * h / decay);
      hr = rise > 0.0 ? exp(-0.5 * h / rise) : 0.0;
      e_lin = exp(-h / mb->tau_m);
    }
    if (step == 0)
      h_in = 0.0;
    /* Quanta released by now enter with the decay they have already
     * undergone, so their timing is exact, not rounded to the grid. */
    while (j < k && t[j] <= tt + 1e-15) {
      double a = g[j] * norm;
      d += a * exp(-(tt - t[j]) / decay);
      if (rise > 0.0)
        r += a * exp(-(tt - t[j]) / rise);
      j++;
    }
    gnow = d - r;
    if (mb->vclamp) {
      track(&pu, gnow * de * mb->out_scale, tt, h_in);
      if (j == k && gnow < gprev && pu.passed)
        break;
    } else {
      double gm = d * hd - r * hr, a, uinf;
      track(&pu, u * mb->out_scale, tt, h_in);
      track(&pl, ul * mb->out_scale, tt, h_in);
      if (j == k && gnow < gprev && pu.passed && pl.passed && tt > t_last)
        break;
      /* Exact step of C du/dt = -g_L u - g (u - (E_syn - E_rest)) for g
       * held at its midpoint value (exponential Euler, 2nd order). */
      a = (mb->g_l + gm) / mb->c;
      uinf = gm * de / (mb->g_l + gm);
      u = uinf + (u - uinf) * exp(-a * h);
      /* The linearised membrane: driving force frozen at E_syn - E_rest. */
      uinf = gm * de / mb->g_l;
      ul = uinf + (ul - uinf) * e_lin;
    }
    falling = j == k && gnow < gprev;
    gprev = gnow;
    d *= ed;
    r *= er;
    tt += h;
    /* A response that has not peaked after this many steps means
     * absurd time constants; refuse rather than loop for minutes. */
    if (step > 20000000L)
      return QUANTAL_ENUMERIC;
  }
  if (mb->vclamp) {
    /* The clamp current is proportional to the conductance, which is
     * known in closed form: refine its maximum exactly. */
    double tp, lo = pu.best_t - h, gp;
    if (lo < t[0])
      lo = t[0];
    gp = g_peak(lo, pu.best_t + h, rise, decay, norm, t, g, k, &tp);
    *peak = gp * de * mb->out_scale;
    if (t_peak)
      *t_peak = tp;
    *linear = *peak;
    return QUANTAL_OK;
  }
  *peak = track_result(&pu, t_peak);
  *linear = track_result(&pl, NULL);
  return QUANTAL_OK;
}

typedef struct qg_ctx {
  const qtl_membrane *mb;
  double rise, decay, target;
  quantal_status st;
} qg_ctx;

static double
qg_f(double g, void *vctx)
{
  qg_ctx *c = vctx;
  double t0 = 0.0, pk, lin;
  quantal_status st = qtl_sim_isolated(c->mb, c->rise, c->decay, &t0, &g, 1,
                                       &pk, NULL, &lin);
  if (st != QUANTAL_OK)
    c->st = st;
  return fabs(pk) - c->target;
}

quantal_status
qtl_sim_q_to_g(const qtl_membrane *mb, double rise, double decay,
               double amp_abs, double *g, quantal_diag *diag)
{
  qg_ctx c;
  gsl_function f;
  gsl_root_fsolver *s;
  double lo = 0.0, hi, de;
  int it, status;

  c.mb = mb;
  c.rise = rise;
  c.decay = decay;
  c.target = amp_abs;
  c.st = QUANTAL_OK;
  if (amp_abs == 0.0) {
    *g = 0.0;
    return QUANTAL_OK;
  }
  if (mb->vclamp) {
    /* Linear: I = g (V_hold - E_syn). */
    de = fabs(mb->v_hold - mb->e_syn) * mb->out_scale;
    if (de == 0.0)
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "no driving force: holding potential equals the "
                      "synaptic reversal potential");
    *g = amp_abs / de;
    return QUANTAL_OK;
  }
  de = fabs(mb->e_syn - mb->e_rest) * mb->out_scale;
  /* Current clamp: the response can never pass the reversal potential,
   * so q must be below the driving force |E_syn - E_rest|. */
  if (!(amp_abs < de))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "quantal amplitude %g mV is not below the driving force "
                    "|E_syn - E_rest| = %g mV",
                    amp_abs, de);
  f.function = qg_f;
  f.params = &c;
  /* The peak of a transient is below the steady state g de / (g_L + g),
   * so g_L q / (de - q) is a lower bound; double it until it brackets. */
  hi = mb->g_l * amp_abs / (de - amp_abs);
  for (it = 0; it < 200 && qg_f(hi, &c) < 0.0; it++) {
    lo = hi;
    hi *= 2.0;
  }
  if (it == 200 || c.st != QUANTAL_OK)
    return qtl_fail(diag, QUANTAL_ENUMERIC, NULL, -1, -1,
                    "cannot find the conductance of a %g mV quantum", amp_abs);
  s = gsl_root_fsolver_alloc(gsl_root_fsolver_brent);
  if (s == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  status = gsl_root_fsolver_set(s, &f, lo, hi);
  for (it = 0; status == GSL_SUCCESS && it < 200; it++) {
    status = gsl_root_fsolver_iterate(s);
    if (status != GSL_SUCCESS)
      break;
    lo = gsl_root_fsolver_x_lower(s);
    hi = gsl_root_fsolver_x_upper(s);
    status = gsl_root_test_interval(lo, hi, 0.0, 1e-12);
    if (status == GSL_SUCCESS)
      break;
    if (status != GSL_CONTINUE)
      break;
    status = GSL_SUCCESS;
  }
  *g = gsl_root_fsolver_root(s);
  gsl_root_fsolver_free(s);
  if (status != GSL_SUCCESS || c.st != QUANTAL_OK || !(*g > 0.0))
    return qtl_fail(diag, QUANTAL_ENUMERIC, NULL, -1, -1,
                    "cannot find the conductance of a %g mV quantum", amp_abs);
  return QUANTAL_OK;
}
