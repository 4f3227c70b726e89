/* measure.c - amplitude, baseline and kinetics of one event. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

quantal_measure_options
quantal_measure_options_default(void)
{
  quantal_measure_options o;
  o.lowpass_hz = 2000.0;
  o.baseline_s = 0.002;
  o.peak_window_s = NAN;
  o.decay_window_s = NAN;
  o.fixed_onset = 0;
  return o;
}

#ifdef QTL_X86_SIMD
#include <immintrin.h>
/* expo_sse's four lanes in one vector, with its products and sums in its
 * order (no FMA): the same bits. The array loop kept its sums in memory,
 * and each step waited on the store of the one before. */
__attribute__((target("avx2"))) static void
expo_lanes_avx2(const double *y, size_t n4, double *e0, double q4,
                double *sye, double *see)
{
  __m256d e = _mm256_loadu_pd(e0), f = _mm256_set1_pd(q4),
          a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
  size_t k;
  for (k = 0; k < n4; k += 4) {
    a = _mm256_add_pd(a, _mm256_mul_pd(_mm256_loadu_pd(y + k), e));
    b = _mm256_add_pd(b, _mm256_mul_pd(e, e));
    e = _mm256_mul_pd(e, f);
  }
  _mm256_storeu_pd(sye, a);
  _mm256_storeu_pd(see, b);
  _mm256_storeu_pd(e0, e); /* for the tail */
}
#endif

/* Residual sum of squares of y ~ A exp(-t / tau) with A solved in closed
 * form (variable projection: for fixed tau the model is linear in A). */
static double
expo_sse(const double *y, size_t n, double syy, double dt, double tau,
         double *amp)
{
  double q = exp(-dt / tau), q2 = q * q, q4 = q2 * q2;
  double e[4], sye[4] = {0.0, 0.0, 0.0, 0.0}, see[4] = {0.0, 0.0, 0.0, 0.0};
  double a, b;
  size_t k, l, n4 = n & ~(size_t)3;
  /* Four interleaved geometric sequences (lane l has k = l mod 4): the
   * products and sums of one lane do not wait for the others'. */
  e[0] = 1.0;
  e[1] = q;
  e[2] = q2;
  e[3] = q2 * q;
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2()) {
    expo_lanes_avx2(y, n4, e, q4, sye, see);
    k = n4;
  } else
#endif
    for (k = 0; k < n4; k += 4)
      for (l = 0; l < 4; l++) {
        sye[l] += y[k + l] * e[l];
        see[l] += e[l] * e[l];
        e[l] *= q4;
      }
  for (l = 0; k < n; k++, l++) {
    sye[0] += y[k] * e[l];
    see[0] += e[l] * e[l];
  }
  a = (sye[0] + sye[1]) + (sye[2] + sye[3]);
  b = (see[0] + see[1]) + (see[2] + see[3]);
  *amp = b > 0.0 ? a / b : 0.0;
  return syy - a * a / b;
}

/* Least-squares decay time constant of y[0..n) (polarity-corrected,
 * baseline-free, starting at the fit start): the minimum of the profile
 * SSE over u = ln tau in [tau0 / 10, 10 tau0] by Brent's method (Brent
 * 1973, ch. 5: parabolic steps through the three best points, golden-
 * section steps when a parabola is not trusted), to 5e-6 in u. A
 * golden-section search alone took 30 SSE evaluations to that precision
 * (5 % of the time of detect); Brent takes 9-12 on events' decays. NaN
 * when the fitted amplitude is not positive or tau sits on a bound. */
static double
fit_decay_tau(const double *y, size_t n, double rate_hz, double tau0)
{
  const double cg = 0.3819660112501051; /* (3 - sqrt 5) / 2 */
  const double tol = 2.5e-6;
  double a = log(tau0 / 10.0), b = log(tau0 * 10.0), x, w, v, fx, fw, fv;
  double d = 0.0, e = 0.0, dt = 1.0 / rate_hz, tau, syy = 0.0, amp;
  int it;
  size_t k;
  if (n < 4 || !(tau0 > 0.0))
    return NAN;
  for (k = 0; k < n; k++)
    syy += y[k] * y[k];
  x = w = v = a + cg * (b - a);
  fx = fw = fv = expo_sse(y, n, syy, dt, exp(x), &amp);
  for (it = 0; it < 100; it++) {
    double m = 0.5 * (a + b), u, fu;
    int golden = 1;
    if (fabs(x - m) <= 2.0 * tol - 0.5 * (b - a))
      break;
    if (fabs(e) > tol) {
      /* The parabola through (x, fx), (w, fw), (v, fv): its vertex is
       * x + p / q. Taken when it lies inside [a, b] and the step is under
       * half the one before last (else the steps may not shrink). */
      double r = (x - w) * (fx - fv), q = (x - v) * (fx - fw);
      double p = (x - v) * q - (x - w) * r, eo = e;
      q = 2.0 * (q - r);
      if (q > 0.0)
        p = -p;
      else
        q = -q;
      if (fabs(p) < fabs(0.5 * q * eo) && p > q * (a - x) && p < q * (b - x)) {
        e = d;
        d = p / q;
        u = x + d;
        /* not within 2 tol of an end */
        if (u - a < 2.0 * tol || b - u < 2.0 * tol)
          d = x < m ? tol : -tol;
        golden = 0;
      }
    }
    if (golden) {
      e = (x < m ? b : a) - x;
      d = cg * e;
    }
    /* never closer than tol to x: a step below the resolution of the
     * SSE tells nothing */
    u = x + (fabs(d) >= tol ? d : (d > 0.0 ? tol : -tol));
    fu = expo_sse(y, n, syy, dt, exp(u), &amp);
    if (fu <= fx) {
      if (u < x)
        b = x;
      else
        a = x;
      v = w;
      fv = fw;
      w = x;
      fw = fx;
      x = u;
      fx = fu;
    } else {
      if (u < x)
        a = u;
      else
        b = u;
      if (fu <= fw || w == x) {
        v = w;
        fv = fw;
        w = u;
        fw = fu;
      } else if (fu <= fv || v == x || v == w) {
        v = u;
        fv = fu;
      }
    }
  }
  tau = exp(x);
  expo_sse(y, n, syy, dt, tau, &amp);
  if (!(amp > 0.0) || tau < tau0 / 9.5 || tau > tau0 * 9.5)
    return NAN;
  return tau;
}

/* Fractional index where s crosses level between i and i + 1 (linear
 * interpolation). */
static double
cross_at(const double *s, size_t i, double level)
{
  double a = s[i], b = s[i + 1];
  if (b == a)
    return (double)i;
  return (double)i + (level - a) / (b - a);
}

quantal_status
quantal_measure_event(const double *x, size_t n, double rate_hz,
                      double first_s, size_t onset, size_t end, int polarity,
                      const quantal_template *t,
                      const quantal_measure_options *opt, quantal_event *ev,
                      quantal_diag *diag)
{
  quantal_measure_options o = opt ? *opt : quantal_measure_options_default();
  double pol = polarity < 0 ? -1.0 : 1.0, base, amp_s, peak_win, decay_win;
  double *s = NULL, *y = NULL, tau0, lvl;
  size_t nb, lo, hi, i, pk, m, k;
  quantal_status st;

  if (n == 0 || onset >= n || !(rate_hz > 0.0))
    return qtl_fail(diag, QUANTAL_ERANGE, NULL, -1, (long long)onset,
                    "measure: onset outside the trace");
  if (end > n || end <= onset)
    end = n;
  tau0 = t && isfinite(t->decay_s) ? t->decay_s : 0.005;
  peak_win = isfinite(o.peak_window_s) ? o.peak_window_s
             : t ? 2.0 * (double)(t->peak_index - t->onset_index) / rate_hz +
                       1e-3
                 : 0.01;
  decay_win = isfinite(o.decay_window_s) ? o.decay_window_s
              : t && isfinite(t->decay_s) ? 3.0 * t->decay_s
              : t ? (double)(t->n - t->peak_index) / rate_hz
                  : 0.03;
  memset(ev, 0, sizeof *ev);
  ev->decay_tau_s = NAN;
  ev->rise_10_90_s = NAN;
  ev->half_width_s = NAN;

  /* Amplitude and local baseline from the optimally scaled template at
   * the best latency near the onset (Clements & Bekkers 1997): the fit
   * uses every sample of the event, so its amplitude is not biased up by
   * the noise at the peak as the largest sample is. */
  if (t != NULL && n >= t->n) {
    quantal_template_fit fit;
    size_t w = t->peak_index > t->onset_index
                   ? (t->peak_index - t->onset_index) / 2 + 2
                   : 2;
    size_t c = onset >= t->onset_index ? onset - t->onset_index : 0;
    size_t flo = c > w ? c - w : 0, fhi = c + w;
    /* The caller's onset is already a fitted latency: no search. */
    if (o.fixed_onset)
      flo = fhi = c;
    if (flo <= n - t->n) {
      st = quantal_template_fit_best(t, x, n, flo, fhi, polarity, &fit,
                                     diag);
      if (st != QUANTAL_OK)
        return st;
      onset = fit.index + t->onset_index;
      if (onset >= n)
        onset = n - 1;
      if (end <= onset)
        end = n;
      ev->amplitude = fit.scale;
      ev->baseline = fit.offset;
    } else {
      t = NULL;
    }
  }
  nb = (size_t)floor(o.baseline_s * rate_hz + 0.5);
  if (nb < 1)
    nb = 1;
  if (t == NULL) {
    double sum = 0.0;
    size_t cnt = 0;
    for (i = onset > nb ? onset - nb : 0; i < onset; i++) {
      sum += x[i];
      cnt++;
    }
    ev->baseline = cnt ? sum / (double)cnt : x[onset];
  }
  base = ev->baseline;

  /* A smoothed copy of the stretch of interest for the peak, the rise
   * and the half-width. */
  lo = onset > nb ? onset - nb : 0;
  hi = onset + (size_t)ceil((peak_win + 2.0 * decay_win) * rate_hz);
  if (hi > n)
    hi = n;
  m = hi - lo;
  s = malloc(m * sizeof *s);
  y = malloc(m * sizeof *y);
  if (s == NULL || y == NULL) {
    free(s);
    free(y);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  if (o.lowpass_hz > 0.0) {
    st = quantal_filter_lowpass(x + lo, s, m, rate_hz, o.lowpass_hz, diag);
    if (st != QUANTAL_OK) {
      free(s);
      free(y);
      return st;
    }
  } else {
    memcpy(s, x + lo, m * sizeof *s);
  }
  for (i = 0; i < m; i++)
    s[i] = pol * (s[i] - base);
  /* Peak: the extreme of the smoothed trace within the search window. */
  {
    size_t a = onset - lo, b = a + (size_t)ceil(peak_win * rate_hz);
    size_t e = end - lo;
    if (b > e)
      b = e;
    if (b > m)
      b = m;
    if (b <= a)
      b = a + 1 <= m ? a + 1 : m;
    pk = a;
    for (i = a; i < b; i++)
      if (s[i] > s[pk])
        pk = i;
  }
  amp_s = s[pk];
  ev->onset_s = first_s + (double)onset / rate_hz;
  ev->peak_s = first_s + (double)(lo + pk) / rate_hz;
  if (t == NULL)
    ev->amplitude = pol * amp_s;
  if (amp_s > 0.0) {
    double t10 = NAN, t90 = NAN, h0 = NAN, h1 = NAN;
    size_t e = end - lo < m ? end - lo : m;
    /* Rise: the last upward crossings of 10 % and 90 % before the peak. */
    for (i = pk; i-- > 0;) {
      if (isnan(t90) && s[i] < 0.9 * amp_s)
        t90 = cross_at(s, i, 0.9 * amp_s);
      if (isnan(h0) && s[i] < 0.5 * amp_s)
        h0 = cross_at(s, i, 0.5 * amp_s);
      if (s[i] < 0.1 * amp_s) {
        t10 = cross_at(s, i, 0.1 * amp_s);
        break;
      }
    }
    if (isfinite(t10) && isfinite(t90))
      ev->rise_10_90_s = (t90 - t10) / rate_hz;
    for (i = pk; i + 1 < e; i++)
      if (s[i + 1] < 0.5 * amp_s) {
        h1 = cross_at(s, i, 0.5 * amp_s);
        break;
      }
    if (isfinite(h0) && isfinite(h1))
      ev->half_width_s = (h1 - h0) / rate_hz;
    /* Decay: exponential fitted to the raw (unsmoothed) trace from where
     * the smoothed event has fallen below 90 % of its peak, over
     * decay_win or up to the next event. */
    lvl = 0.9 * amp_s;
    for (i = pk; i < e && s[i] >= lvl; i++)
      ;
    {
      size_t a = i, b = pk + (size_t)ceil(decay_win * rate_hz);
      if (b > e)
        b = e;
      if (b > a + 3) {
        for (k = a; k < b; k++)
          y[k - a] = pol * (x[lo + k] - base);
        ev->decay_tau_s = fit_decay_tau(y, b - a, rate_hz, tau0);
      }
    }
  }
  /* Area of the baseline-subtracted event from the onset to the next
   * event or to five decay constants after the peak, by the rectangle
   * rule on the raw trace (unit * s). */
  {
    size_t b = lo + pk + (size_t)ceil(5.0 * tau0 * rate_hz), a = onset;
    double sum = 0.0;
    if (b > end)
      b = end;
    for (k = a; k < b; k++)
      sum += x[k] - base;
    ev->area = sum / rate_hz;
  }
  free(s);
  free(y);
  return QUANTAL_OK;
}
