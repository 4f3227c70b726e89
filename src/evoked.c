/* evoked.c - stimulus times and stimulus-locked response amplitudes. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_statistics_double.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK_FRAMES 65536

/* ---- stimulus times --------------------------------------------------- */

static quantal_status
push_time(double **t, size_t *n, size_t *cap, double v)
{
  if (*n == *cap) {
    size_t nc = *cap ? 2 * *cap : 256;
    double *nt = realloc(*t, nc * sizeof *nt);
    if (nt == NULL)
      return QUANTAL_ENOMEM;
    *t = nt;
    *cap = nc;
  }
  (*t)[(*n)++] = v;
  return QUANTAL_OK;
}

/* Pass 1 of the trigger search keeps, for each run of TTL_SUB samples,
 * the range of its finite samples as floats rounded outwards (a day at
 * 20 kHz: 13 MB). Pass 2 then re-reads only the runs where the state
 * (above or below the threshold) can change: a trigger channel sits at one
 * of two levels nearly everywhere, and reading the whole channel a second
 * time was a third of the time of evoked without minis. */
#define TTL_SUB 1024

static float
float_down(double v)
{
  float f = (float)v;
  return (double)f > v ? nextafterf(f, -INFINITY) : f;
}

static float
float_up(double v)
{
  float f = (float)v;
  return (double)f < v ? nextafterf(f, INFINITY) : f;
}

/* The range of the finite samples of x[0..n): lo > hi when there are
 * none. Four independent chains; NaN and infinities fail the test. */
static void
finite_range(const double *x, size_t n, double *lo, double *hi)
{
  double a0 = INFINITY, a1 = INFINITY, a2 = INFINITY, a3 = INFINITY;
  double b0 = -INFINITY, b1 = -INFINITY, b2 = -INFINITY, b3 = -INFINITY;
  size_t i;
  /* A non-finite sample enters as +inf to the minimum, -inf to the
   * maximum; `v < a ? v : a` is one minsd. */
#define FR_STEP(a, b, k)                                                     \
  do {                                                                       \
    double v_ = x[i + k];                                                    \
    int ok_ = fabs(v_) <= DBL_MAX;                                           \
    double l_ = ok_ ? v_ : INFINITY, h_ = ok_ ? v_ : -INFINITY;              \
    a = l_ < a ? l_ : a;                                                     \
    b = h_ > b ? h_ : b;                                                     \
  } while (0)
  for (i = 0; i + 4 <= n; i += 4) {
    FR_STEP(a0, b0, 0);
    FR_STEP(a1, b1, 1);
    FR_STEP(a2, b2, 2);
    FR_STEP(a3, b3, 3);
  }
  for (; i < n; i++)
    FR_STEP(a0, b0, 0);
#undef FR_STEP
  a0 = a1 < a0 ? a1 : a0;
  a2 = a3 < a2 ? a3 : a2;
  b0 = b1 > b0 ? b1 : b0;
  b2 = b3 > b2 ? b3 : b2;
  *lo = a2 < a0 ? a2 : a0;
  *hi = b2 > b0 ? b2 : b0;
}

quantal_status
quantal_stimuli_from_ttl(quantal_recording *rec, size_t ch, double threshold,
                         double min_interval_s, double **times_s, size_t *n,
                         double *lo, double *hi, quantal_diag *diag)
{
  quantal_recording_info info;
  double *buf, mn = INFINITY, mx = -INFINITY, last = -INFINITY;
  double *t = NULL;
  float *smin = NULL, *smax;
  size_t cap = 0, count = 0, nsub, b;
  uint64_t pos;
  int high = 0;
  quantal_status st = QUANTAL_OK;

  quantal_recording_get_info(rec, &info);
  *times_s = NULL;
  *n = 0;
  if (ch >= info.n_channels)
    return qtl_fail(diag, QUANTAL_ERANGE, rec->path, (long)ch, -1,
                    "stimulus channel %zu does not exist (the file has %zu)",
                    ch + 1, info.n_channels);
  nsub = (size_t)((info.frames + TTL_SUB - 1) / TTL_SUB);
  buf = malloc(BLOCK_FRAMES * sizeof *buf);
  if (nsub > 0)
    smin = malloc(2 * nsub * sizeof *smin);
  if (buf == NULL || (nsub > 0 && smin == NULL)) {
    free(buf);
    free(smin);
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1, "out of memory");
  }
  smax = smin + nsub;
  /* Pass 1: the range, for the default threshold half-way up it and for
   * the caller's message when no edge crosses a given one, and the range
   * of each run. */
  for (pos = 0, b = 0; pos < info.frames;) {
    size_t m = info.frames - pos > BLOCK_FRAMES ? BLOCK_FRAMES
                                                : (size_t)(info.frames - pos);
    size_t i, r;
    float flo[BLOCK_FRAMES / TTL_SUB], fhi[BLOCK_FRAMES / TTL_SUB];
    int have = 0;
    if (rec->ops->channel_range != NULL) {
      /* The stored range of each run, scaled: x s + o is monotone in x,
       * so this is the range of the samples as read, unless scaling
       * overflows (then the run is read). */
      st = rec->ops->channel_range(rec->ctx, ch, pos, m, TTL_SUB, flo, fhi,
                                   diag);
      if (st != QUANTAL_OK)
        goto done;
      have = 1;
    } else {
      st = quantal_recording_read(rec, ch, pos, m, buf, diag);
      if (st != QUANTAL_OK)
        goto done;
    }
    for (i = 0, r = 0; i < m; i += TTL_SUB, b++, r++) {
      double a, z;
      size_t mm = m - i < TTL_SUB ? m - i : TTL_SUB;
      if (have) {
        double s = rec->channels[ch].scale, o = rec->channels[ch].offset;
        a = (double)flo[r] * s + o;
        z = (double)fhi[r] * s + o;
        if (s < 0.0) {
          double w = a;
          a = z;
          z = w;
        }
        if (flo[r] <= fhi[r] && !(fabs(a) <= DBL_MAX && fabs(z) <= DBL_MAX)) {
          st = quantal_recording_read(rec, ch, pos + i, mm, buf, diag);
          if (st != QUANTAL_OK)
            goto done;
          finite_range(buf, mm, &a, &z);
        } else if (!(flo[r] <= fhi[r])) {
          a = INFINITY;
          z = -INFINITY;
        }
      } else
        finite_range(buf + i, mm, &a, &z);
      if (a <= z) {
        smin[b] = float_down(a);
        smax[b] = float_up(z);
        mn = a < mn ? a : mn;
        mx = z > mx ? z : mx;
      } else {
        smin[b] = INFINITY;
        smax[b] = -INFINITY;
      }
    }
    pos += m;
  }
  if (isnan(threshold)) {
    if (!(mx > mn)) {
      st = qtl_fail(diag, QUANTAL_EFAILED, rec->path, (long)ch, -1,
                    "no stimuli found: trigger channel %zu is flat (%g)",
                    ch + 1, isfinite(mn) ? mn : NAN);
      goto done;
    }
    threshold = 0.5 * (mn + mx);
  }
  if (lo)
    *lo = mn;
  if (hi)
    *hi = mx;
  /* Pass 2: rising edges, in the runs where one can be. A run whose
   * finite samples all lie below the threshold leaves the state low; one
   * whose samples all lie at or above it keeps a high state high. */
  for (b = 0; b < nsub; b++) {
    size_t i, m;
    if (!(smin[b] <= smax[b]))
      continue; /* no finite sample */
    if ((double)smax[b] < threshold) {
      high = 0;
      continue;
    }
    if (high && (double)smin[b] >= threshold)
      continue;
    pos = (uint64_t)b * TTL_SUB;
    m = info.frames - pos > TTL_SUB ? TTL_SUB : (size_t)(info.frames - pos);
    st = quantal_recording_read(rec, ch, pos, m, buf, diag);
    if (st != QUANTAL_OK)
      goto done;
    for (i = 0; i < m; i++) {
      double v = buf[i];
      if (!isfinite(v))
        continue;
      if (!high && v >= threshold) {
        /* A digital trigger steps within one sample: its time is that of
         * the first sample at or above the threshold. */
        double ts = (double)(pos + i) / info.rate_hz;
        if (ts - last >= min_interval_s) {
          if (push_time(&t, &count, &cap, ts) != QUANTAL_OK) {
            st = qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                          "out of memory");
            goto done;
          }
          last = ts;
        }
        high = 1;
      } else if (high && v < threshold) {
        high = 0;
      }
    }
  }
done:
  free(buf);
  free(smin);
  if (st != QUANTAL_OK) {
    free(t);
    return st;
  }
  *times_s = t;
  *n = count;
  return QUANTAL_OK;
}

quantal_status
quantal_stimuli_from_artefact(quantal_recording *rec, size_t ch, double k_sd,
                              double min_interval_s, double **times_s,
                              size_t *n, quantal_diag *diag)
{
  quantal_recording_info info;
  double *buf, *d = NULL, sd, prev = NAN, last = -INFINITY, *t = NULL;
  size_t cap = 0, count = 0, nd = 0, dcap;
  uint64_t pos;
  quantal_status st = QUANTAL_OK;

  quantal_recording_get_info(rec, &info);
  *times_s = NULL;
  *n = 0;
  if (ch >= info.n_channels)
    return qtl_fail(diag, QUANTAL_ERANGE, rec->path, (long)ch, -1,
                    "channel %zu does not exist (the file has %zu)", ch + 1,
                    info.n_channels);
  buf = malloc(BLOCK_FRAMES * sizeof *buf);
  dcap = info.frames < (1u << 20) ? (size_t)info.frames : (1u << 20);
  d = malloc(dcap * sizeof *d);
  if (buf == NULL || d == NULL) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1, "out of memory");
    goto done;
  }
  /* The scale of ordinary sample-to-sample steps, from the start of the
   * recording (robust: artefacts are a handful of samples). */
  st = quantal_recording_read(rec, ch, 0, dcap, d, diag);
  if (st != QUANTAL_OK)
    goto done;
  for (size_t i = 1; i < dcap; i++)
    if (isfinite(d[i]) && isfinite(d[i - 1]))
      d[nd++] = d[i] - d[i - 1];
  if (nd < 16) {
    st = qtl_fail(diag, QUANTAL_ENODATA, rec->path, (long)ch, -1,
                  "too few samples to find stimulus artefacts");
    goto done;
  }
  sd = qtl_mad_sd(d, nd);
  if (!(sd > 0.0)) {
    st = qtl_fail(diag, QUANTAL_EFAILED, rec->path, (long)ch, -1,
                  "no stimuli found: the trace has no sample-to-sample noise "
                  "to compare artefacts with");
    goto done;
  }
  for (pos = 0; pos < info.frames;) {
    size_t m = info.frames - pos > BLOCK_FRAMES ? BLOCK_FRAMES
                                                : (size_t)(info.frames - pos);
    size_t i;
    st = quantal_recording_read(rec, ch, pos, m, buf, diag);
    if (st != QUANTAL_OK)
      goto done;
    for (i = 0; i < m; i++) {
      double v = buf[i];
      if (isfinite(v) && isfinite(prev) && fabs(v - prev) > k_sd * sd) {
        /* The artefact starts at the sample before the jump. */
        double ts = ((double)(pos + i) - 1.0) / info.rate_hz;
        if (ts - last >= min_interval_s) {
          if (push_time(&t, &count, &cap, ts) != QUANTAL_OK) {
            st = qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                          "out of memory");
            goto done;
          }
          last = ts;
        }
      }
      prev = v;
    }
    pos += m;
  }
done:
  free(buf);
  free(d);
  if (st != QUANTAL_OK) {
    free(t);
    return st;
  }
  *times_s = t;
  *n = count;
  return QUANTAL_OK;
}

quantal_status
quantal_stimuli_protocol(double first_s, double period_s, size_t count,
                         unsigned train_n, double train_hz, double duration_s,
                         double **times_s, unsigned **pulse, size_t *n,
                         quantal_diag *diag)
{
  size_t cap, k = 0, i;
  unsigned j;
  double *t;
  unsigned *p;
  *times_s = NULL;
  *pulse = NULL;
  *n = 0;
  if (train_n == 0)
    train_n = 1;
  if (!(first_s >= 0.0) || !(duration_s > 0.0) ||
      (count != 1 && !(period_s > 0.0)))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "the protocol needs --first >= 0 and --period > 0");
  if (train_n > 1 && !(train_hz > 0.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "a train needs --train-hz > 0");
  if (train_n > 1 && (double)(train_n - 1) / train_hz >= period_s &&
      count != 1)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "a train of %u pulses at %g Hz lasts longer than the "
                    "period (%g s)",
                    train_n, train_hz, period_s);
  if (count == 0)
    count = (size_t)floor((duration_s - first_s) / period_s) + 1;
  if (count > 100000000u / train_n)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "the protocol asks for too many stimuli");
  cap = count * train_n;
  t = malloc(cap * sizeof *t);
  p = malloc(cap * sizeof *p);
  if (t == NULL || p == NULL) {
    free(t);
    free(p);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  for (i = 0; i < count; i++)
    for (j = 0; j < train_n; j++) {
      double ts = first_s + (double)i * period_s +
                  (train_n > 1 ? (double)j / train_hz : 0.0);
      if (ts >= duration_s)
        continue;
      t[k] = ts;
      p[k] = j + 1;
      k++;
    }
  *times_s = t;
  *pulse = p;
  *n = k;
  return QUANTAL_OK;
}

quantal_status
quantal_stimuli_pulse_index(const double *times_s, size_t n, double gap_s,
                            unsigned *pulse)
{
  size_t i;
  for (i = 0; i < n; i++) {
    if (i > 0 && !(times_s[i] > times_s[i - 1]))
      return QUANTAL_EINVAL;
    pulse[i] = (i > 0 && times_s[i] - times_s[i - 1] < gap_s)
                   ? pulse[i - 1] + 1
                   : 1;
  }
  return QUANTAL_OK;
}

/* ---- measurement ------------------------------------------------------ */

quantal_evoked_options
quantal_evoked_options_default(void)
{
  quantal_evoked_options o;
  memset(&o, 0, sizeof o);
  o.baseline_s = 5e-3;
  o.blank_s = 1e-3;
  o.window_s = 30e-3;
  o.jitter_s = 1e-3;
  o.polarity = 0;
  o.alpha = 1e-3;
  return o;
}

/* One stimulus's stretch of trace: pre-stimulus baseline and response. */
typedef struct span {
  size_t n_pre, n_resp;  /* samples */
  size_t blank;          /* samples from the stimulus to the response */
  double *pre, *resp;
} span;

/* Read the baseline window [t - baseline, t) and the response window
 * [t + blank, t + window) of the stimulus at t (seconds). Returns
 * QUANTAL_ERANGE when they do not fit inside the recording. */
static quantal_status
read_span(quantal_recording *rec, size_t ch, double rate, double t,
          span *s, quantal_diag *diag)
{
  quantal_status st;
  long long i0 = (long long)floor(t * rate + 0.5);
  long long a = i0 - (long long)s->n_pre, b = i0 + (long long)s->blank;
  if (a < 0 || (uint64_t)(b + (long long)s->n_resp) > rec->info.frames)
    return QUANTAL_ERANGE;
  st = quantal_recording_read(rec, ch, (uint64_t)a, s->n_pre, s->pre, diag);
  if (st == QUANTAL_OK)
    st = quantal_recording_read(rec, ch, (uint64_t)b, s->n_resp, s->resp,
                                diag);
  return st;
}

static double
median_of(const double *x, size_t n, double *work)
{
  size_t i, m = 0;
  for (i = 0; i < n; i++)
    if (isfinite(x[i]))
      work[m++] = x[i];
  if (m == 0)
    return NAN;
  return qtl_median(work, m);
}

/* Least-squares scale of template T (n samples, shifted by `shift`
 * samples, zero outside) onto pol * y: a = sum(pol y T) / sum(T^2). T is
 * positive in the response direction, so a is positive for a response of
 * either sign. */
#ifdef QTL_X86_SIMD
#include <immintrin.h>
/* The four chains of template_scale's loop as the four lanes of a vector
 * (i = i0 + 4 j + k in lane k), with the same products and sums in the
 * same order (no FMA): the same bits, four samples a step. The latency
 * search made the scalar loop a sixth of evoked without minis. */
__attribute__((target("avx2"))) static void
ts_chains_avx2(const double *y, const double *w, long i0, long i1, double *ya,
               double *ta, long *iend)
{
  const __m256d big = _mm256_set1_pd(DBL_MAX),
                absm = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  __m256d ys = _mm256_setzero_pd(), ts = _mm256_setzero_pd();
  long i;
  for (i = i0; i + 4 <= i1; i += 4) {
    __m256d v = _mm256_loadu_pd(y + i), u = _mm256_loadu_pd(w + i);
    __m256d ok = _mm256_cmp_pd(_mm256_and_pd(v, absm), big, _CMP_LE_OQ);
    v = _mm256_and_pd(v, ok);
    u = _mm256_and_pd(u, ok);
    ys = _mm256_add_pd(ys, _mm256_mul_pd(u, v));
    ts = _mm256_add_pd(ts, _mm256_mul_pd(u, u));
  }
  _mm256_storeu_pd(ya, ys);
  _mm256_storeu_pd(ta, ts);
  *iend = i;
}
#endif

static double
template_scale(const double *y, const double *T, size_t n, long shift,
               int pol)
{
  /* Samples i with j = i - shift inside the template; four chains of
   * sums (one chain was bound by the latency of the additions: the
   * latency search calls this 2 jitter + 1 times per response). A
   * non-finite sample counts in neither sum. */
  double y0 = 0.0, y1 = 0.0, y2 = 0.0, y3 = 0.0, t0 = 0.0, t1 = 0.0,
         t2 = 0.0, t3 = 0.0, a, b;
  long i0 = shift > 0 ? shift : 0, i1 = shift < 0 ? (long)n + shift : (long)n,
       i;
  const double *w = T - shift;
#define TS_TERM(yk, tk, k)                                                   \
  do {                                                                       \
    int ok_ = fabs(y[i + k]) <= DBL_MAX;                                     \
    double v_ = ok_ ? y[i + k] : 0.0, w_ = ok_ ? w[i + k] : 0.0;             \
    yk += w_ * v_;                                                           \
    tk += w_ * w_;                                                           \
  } while (0)
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2()) {
    double ya[4], ta[4];
    ts_chains_avx2(y, w, i0, i1, ya, ta, &i);
    y0 = ya[0], y1 = ya[1], y2 = ya[2], y3 = ya[3];
    t0 = ta[0], t1 = ta[1], t2 = ta[2], t3 = ta[3];
  } else
#endif
    for (i = i0; i + 4 <= i1; i += 4) {
      TS_TERM(y0, t0, 0);
      TS_TERM(y1, t1, 1);
      TS_TERM(y2, t2, 2);
      TS_TERM(y3, t3, 3);
    }
  for (; i < i1; i++)
    TS_TERM(y0, t0, 0);
#undef TS_TERM
  a = (y0 + y1) + (y2 + y3);
  b = (t0 + t1) + (t2 + t3);
  return b > 0.0 ? pol * a / b : 0.0;
}

/* Index of the sweep holding frame f (sweeps are sorted). */
static size_t
sweep_of(const quantal_recording *rec, uint64_t f)
{
  size_t lo = 0, hi = rec->info.n_sweeps;
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (rec->sweep_first[mid] <= f)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

/* Do frames [a, b) lie inside one sweep? Sweeps of an episodic recording
 * are concatenated, and a window that straddles two would compare samples
 * recorded seconds apart. */
static int
within_one_sweep(const quantal_recording *rec, double a_s, double b_s)
{
  double rate = rec->info.rate_hz;
  long long a = (long long)floor(a_s * rate + 0.5);
  long long b = (long long)floor(b_s * rate + 0.5);
  size_t k;
  if (a < 0 || b <= a)
    return 0;
  k = sweep_of(rec, (uint64_t)a);
  return (uint64_t)b <= rec->sweep_first[k] + rec->sweep_frames[k];
}

/* Time constant of the template's decay, for extrapolating a response's
 * tail past the window: a weighted least-squares line through log T over
 * the decay from 60 % down to 5 % of the peak (weights T^2, since the
 * noise of T is about constant on the linear scale). *c0 receives the
 * intercept: T(k) ~ exp(c0 - k / (tau * rate)). NAN when the window holds
 * too little of the decay. */
static double
tail_tau(const double *T, size_t n, size_t peak_i, double rate, double *c0)
{
  double sw = 0.0, sx = 0.0, sy = 0.0, sxx = 0.0, sxy = 0.0, slope;
  size_t k, m = 0;
  for (k = peak_i; k < n; k++) {
    double w;
    if (T[k] > 0.6)
      continue;
    if (T[k] < 0.05)
      break;
    w = T[k] * T[k];
    sw += w;
    sx += w * (double)k;
    sy += w * log(T[k]);
    sxx += w * (double)k * (double)k;
    sxy += w * (double)k * log(T[k]);
    m++;
  }
  if (m < 5)
    return NAN;
  slope = (sw * sxy - sx * sy) / (sw * sxx - sx * sx);
  if (!(slope < 0.0))
    return NAN;
  *c0 = (sy - slope * sx) / sw;
  return -1.0 / (slope * rate);
}

/* The template extended in time: u seconds after the stimulus. */
typedef struct ext_template {
  const double *T;
  size_t n;
  double blank_s, rate, tau, c0;
} ext_template;

static double
ext_value(const ext_template *e, double u)
{
  double x = (u - e->blank_s) * e->rate;
  size_t k;
  if (x < 0.0)
    return 0.0;
  if (x < (double)(e->n - 1)) {
    k = (size_t)x;
    return e->T[k] + (x - (double)k) * (e->T[k + 1] - e->T[k]);
  }
  if (!isfinite(e->tau))
    return 0.0;
  return exp(e->c0 - x / (e->tau * e->rate));
}

/* Remove from y (n samples, the first at time t0) the tails of the earlier
 * responses of the same train: scale[j] * template(t - stim[j] - shift[j]).
 * Trains sum linearly to first order in voltage clamp; in current clamp
 * the driving-force non-linearity is second order for these tails. */
static void
subtract_tails(double *y, size_t n, double t0, size_t i,
               const double *stim_s, const unsigned *pulse,
               const double *scale, const double *shift_s,
               const ext_template *e)
{
  size_t j = i, k;
  while (j > 0 && pulse[j] > 1) {
    j--;
    for (k = 0; k < n; k++)
      y[k] -= scale[j] *
              ext_value(e, t0 + (double)k / e->rate - stim_s[j] - shift_s[j]);
  }
}

/* A response is checked for a spontaneous event that fell in its window
 * when its z is below LATE_Z_MAX; it is one when the template fits best
 * more than LATE_S past the latency search. */
#define LATE_Z_MAX 50.0
#define LATE_S 2e-3

static quantal_status
evoked_measure(quantal_recording *rec, size_t ch, const double *stim_s,
               const unsigned *pulse, size_t n_stim,
               const quantal_evoked_options *opt,
               quantal_evoked_response *out, quantal_evoked_summary *sum,
               quantal_diag *diag)
{
  quantal_recording_info info;
  quantal_evoked_options o = *opt;
  span sp;
  double rate, *avg = NULL, *T = NULL, *work = NULL, *sham = NULL;
  double *sham_at = NULL; /* 2 per stimulus: before, after; NaN: none */
  double *scale = NULL, *shift_s = NULL, peak = 0.0, tt_full, t_sum, null_sd;
  double *sumv, *Ti;
  double white_gain;
  double null_mean, z_crit, onset_s = NAN, peak_s = NAN, s2 = 0.0;
  size_t i, j, n_avg = 0, n_sham = 0, peak_i = 0, n_noise = 0;
  ext_template ext;
  long jit, late_n;
  int pol;
  quantal_status st = QUANTAL_OK;

  quantal_recording_get_info(rec, &info);
  memset(sum, 0, sizeof *sum);
  memset(&sp, 0, sizeof sp);
  rate = info.rate_hz;
  if (ch >= info.n_channels)
    return qtl_fail(diag, QUANTAL_ERANGE, rec->path, (long)ch, -1,
                    "channel %zu does not exist (the file has %zu)", ch + 1,
                    info.n_channels);
  if (n_stim == 0)
    return qtl_fail(diag, QUANTAL_ENODATA, rec->path, -1, -1,
                    "no stimuli to measure");
  if (!(o.baseline_s > 0.0) || !(o.window_s > 0.0) || !(o.blank_s >= 0.0) ||
      !(o.jitter_s >= 0.0) || !(o.alpha > 0.0 && o.alpha < 0.5) ||
      o.polarity < -1 || o.polarity > 1)
    return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "invalid evoked options");
  if (o.blank_s >= o.window_s)
    return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "the artefact blanking (%g ms) is not shorter than the "
                    "response window (%g ms)",
                    o.blank_s * 1e3, o.window_s * 1e3);
  for (i = 1; i < n_stim; i++)
    if (stim_s[i] - stim_s[i - 1] < o.window_s - 1e-12)
      return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                      "stimuli %zu and %zu are %.3g ms apart, closer than "
                      "the response window (%.3g ms)",
                      i, i + 1, (stim_s[i] - stim_s[i - 1]) * 1e3,
                      o.window_s * 1e3);

  for (i = 0; i < n_stim; i++)
    if (stim_s[i] - o.baseline_s >= 0.0 &&
        (stim_s[i] + o.window_s) * rate <= (double)info.frames &&
        !within_one_sweep(rec, stim_s[i] - o.baseline_s,
                          stim_s[i] + o.window_s))
      return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                      "stimulus %zu at %.6g s: its baseline and response "
                      "windows span two sweeps",
                      i + 1, stim_s[i]);
  sp.n_pre = (size_t)ceil(o.baseline_s * rate);
  sp.blank = (size_t)ceil(o.blank_s * rate);
  sp.n_resp = (size_t)ceil((o.window_s - o.blank_s) * rate);
  if (sp.n_pre < 2 || sp.n_resp < 4)
    return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "the baseline and response windows hold too few samples "
                    "at %g Hz",
                    rate);
  sp.pre = malloc(sp.n_pre * sizeof(double));
  sp.resp = malloc(sp.n_resp * sizeof(double));
  avg = calloc(2 * sp.n_resp, sizeof *avg);
  T = malloc(2 * sp.n_resp * sizeof *T);
  {
    /* work holds a baseline window, a response window or the shams. */
    size_t nw = sp.n_pre > sp.n_resp ? sp.n_pre : sp.n_resp;
    work = malloc((nw > 2 * n_stim ? nw : 2 * n_stim) * sizeof *work);
  }
  sham = malloc(2 * n_stim * sizeof *sham);
  sham_at = malloc(2 * n_stim * sizeof *sham_at);
  scale = malloc(n_stim * sizeof *scale);
  shift_s = malloc(n_stim * sizeof *shift_s);
  if (!sp.pre || !sp.resp || !avg || !T || !work || !sham || !sham_at ||
      !scale || !shift_s) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1, "out of memory");
    goto done;
  }
  for (i = 0; i < 2 * n_stim; i++)
    sham_at[i] = NAN;

  /* Pass 1: the template is the mean baseline-subtracted response to the
   * first pulse of each train (every stimulus when there are no trains).
   * Clements & Bekkers (1997) scale a fixed waveform; taking the
   * preparation's own mean response means no kinetics have to be assumed,
   * and later pulses, which ride on earlier tails, stay out of it. */
  for (i = 0; i < n_stim; i++) {
    double bl;
    if (pulse != NULL && pulse[i] > 1)
      continue;
    st = read_span(rec, ch, rate, stim_s[i], &sp, diag);
    if (st == QUANTAL_ERANGE) {
      st = qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "stimulus %zu at %.6g s: its baseline or response "
                    "window lies outside the recording",
                    i + 1, stim_s[i]);
      goto done;
    }
    if (st != QUANTAL_OK)
      goto done;
    bl = median_of(sp.pre, sp.n_pre, work);
    if (!isfinite(bl)) {
      st = qtl_fail(diag, QUANTAL_ENUMERIC, rec->path, (long)ch, -1,
                    "stimulus %zu at %.6g s: the baseline window holds no "
                    "finite samples",
                    i + 1, stim_s[i]);
      goto done;
    }
    for (j = 0; j < sp.n_resp; j++)
      if (isfinite(sp.resp[j]))
        avg[j] += sp.resp[j] - bl;
    n_avg++;
    {
      size_t m = 0;
      double sd;
      for (j = 0; j < sp.n_pre; j++)
        if (isfinite(sp.pre[j]))
          work[m++] = sp.pre[j] - bl;
      sd = m > 1 ? qtl_mad_sd(work, m) : NAN;
      if (isfinite(sd)) {
        s2 += sd * sd;
        n_noise++;
      }
    }
  }
  if (n_avg == 0) {
    st = qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                  "no first pulse of a train to build the template from");
    goto done;
  }
  pol = o.polarity;
  sumv = avg + sp.n_resp;
  memcpy(sumv, avg, sp.n_resp * sizeof *sumv);
  Ti = T + sp.n_resp;
  for (j = 0; j < sp.n_resp; j++) {
    avg[j] /= (double)n_avg;
    if (pol == 0 ? fabs(avg[j]) > fabs(peak) : avg[j] * pol > peak * pol) {
      peak = avg[j];
      peak_i = j;
    }
  }
  if (pol == 0)
    pol = peak >= 0.0 ? 1 : -1;
  if (!(fabs(peak) > 0.0)) {
    st = qtl_fail(diag, QUANTAL_EFAILED, rec->path, (long)ch, -1,
                  "the average response is flat: nothing to measure");
    goto done;
  }
  /* Normalise so the template peaks at +1 in the response direction:
   * scales are then positive for responses, and amplitudes read in the
   * recording's unit once multiplied by the polarity. */
  tt_full = 0.0;
  t_sum = 0.0;
  for (j = 0; j < sp.n_resp; j++) {
    T[j] = avg[j] * pol / fabs(peak);
    tt_full += T[j] * T[j];
    t_sum += T[j];
  }
  /* Under white noise of SD sigma the scale a = sum (y - b) T / sum T^2
   * has SD sigma * white_gain: the response window contributes
   * 1 / sum T^2 to the variance, and the baseline b, a median of n_pre
   * samples (variance pi/2 sigma^2 / n_pre), contributes through
   * sum T / sum T^2. */
  white_gain = sqrt(1.0 / tt_full + M_PI / 2.0 / (double)sp.n_pre *
                                        (t_sum / tt_full) * (t_sum / tt_full));
  peak_s = o.blank_s + (double)peak_i / rate;
  for (j = 0; j <= peak_i; j++)
    if (T[j] >= 0.1) {
      /* Onset: the 10 % point of the rising phase, interpolated. */
      double f = j > 0 ? (0.1 - T[j - 1]) / (T[j] - T[j - 1]) : 1.0;
      onset_s = o.blank_s + ((double)j - 1.0 + f) / rate;
      break;
    }
  ext.T = T;
  ext.n = sp.n_resp;
  ext.blank_s = o.blank_s;
  ext.rate = rate;
  ext.c0 = 0.0;
  ext.tau = tail_tau(T, sp.n_resp, peak_i, rate, &ext.c0);

  /* Null distribution of the scale: the same estimator applied to sham
   * stimuli placed where no response can be, in the quiet stretch before
   * each stimulus and the one after its response (where the sweep or the
   * interval has room). Its spread includes whatever correlation the noise
   * has (1/f, filtering), which the white-noise formula ignores. */
  {
    double tail = isfinite(ext.tau) ? 3.0 * ext.tau : 0.0;
    double span_s = o.baseline_s + o.window_s; /* a sham's whole extent */
    /* Where the last sham written out ends: the ones written out
     * (sham_at) do not overlap, so that they are independent draws of the
     * noise, as quantal fit's likelihood takes them; the null uses them
     * all. */
    double last_hi = -INFINITY;
    for (i = 0; i < n_stim; i++) {
      double quiet_from = i > 0 ? stim_s[i - 1] + o.window_s + tail : 0.0;
      double quiet_to = i + 1 < n_stim ? stim_s[i + 1] - o.baseline_s
                                       : (double)info.frames / rate;
      double cand[2];
      int c;
      /* Before: ending where this stimulus's baseline window starts. */
      cand[0] = stim_s[i] - o.baseline_s - o.window_s;
      /* After: starting once this response has decayed. */
      cand[1] = stim_s[i] + o.window_s + tail + o.baseline_s;
      for (c = 0; c < 2; c++) {
        double ts = cand[c], bl;
        double lo = ts - o.baseline_s, hi = ts + o.window_s;
        if (c == 0 && lo < quiet_from)
          continue;
        if (c == 1 && hi > quiet_to)
          continue;
        if (!within_one_sweep(rec, lo, hi) ||
            !within_one_sweep(rec, lo, c == 0 ? stim_s[i] : lo + span_s))
          continue;
        st = read_span(rec, ch, rate, ts, &sp, diag);
        if (st == QUANTAL_ERANGE) {
          st = QUANTAL_OK;
          continue;
        }
        if (st != QUANTAL_OK)
          goto done;
        bl = median_of(sp.pre, sp.n_pre, work);
        if (!isfinite(bl))
          continue;
        for (j = 0; j < sp.n_resp; j++)
          sp.resp[j] -= bl;
        sham[n_sham] = template_scale(sp.resp, T, sp.n_resp, 0, pol);
        if (lo >= last_hi) {
          sham_at[2 * i + c] = sham[n_sham];
          last_hi = hi;
        }
        n_sham++;
      }
    }
  }

  if (n_sham >= 10) {
    /* Robust location and spread: a spontaneous mini in a sham window is
     * an outlier, not noise. */
    memcpy(work, sham, n_sham * sizeof *work);
    null_mean = qtl_median(work, n_sham);
    memcpy(work, sham, n_sham * sizeof *work);
    null_sd = qtl_mad_sd(work, n_sham);
    sum->null_from_shams = 1;
  } else {
    null_mean = 0.0;
    null_sd = n_noise > 0 ? sqrt(s2 / (double)n_noise) * white_gain : NAN;
    sum->null_from_shams = 0;
  }
  if (!(null_sd > 0.0) || !isfinite(null_sd)) {
    st = qtl_fail(diag, QUANTAL_EFAILED, rec->path, (long)ch, -1,
                  "cannot estimate the noise of the amplitude estimate (the "
                  "trace is noiseless or constant)");
    goto done;
  }
  z_crit = gsl_cdf_ugaussian_Qinv(o.alpha);

  /* Pass 2, in time order so each pulse of a train can have the tails of
   * the earlier ones removed first. */
  jit = (long)floor(o.jitter_s * rate + 0.5);
  late_n = (long)ceil(LATE_S * rate);
  for (i = 0; i < n_stim; i++) {
    quantal_evoked_response *r = &out[i];
    double area = 0.0, tpk;
    const double *tpl;
    memset(r, 0, sizeof *r);
    r->stim_s = stim_s[i];
    r->sham = sham_at[2 * i];
    r->sham_after = sham_at[2 * i + 1];
    st = read_span(rec, ch, rate, stim_s[i], &sp, diag);
    if (st == QUANTAL_ERANGE) {
      st = qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "stimulus %zu at %.6g s: its baseline or response "
                    "window lies outside the recording",
                    i + 1, stim_s[i]);
      goto done;
    }
    if (st != QUANTAL_OK)
      goto done;
    if (pulse != NULL && pulse[i] > 1) {
      subtract_tails(sp.pre, sp.n_pre,
                     stim_s[i] - (double)sp.n_pre / rate, i, stim_s, pulse,
                     scale, shift_s, &ext);
      subtract_tails(sp.resp, sp.n_resp,
                     stim_s[i] + (double)sp.blank / rate, i, stim_s, pulse,
                     scale, shift_s, &ext);
    }
    r->baseline = median_of(sp.pre, sp.n_pre, work);
    if (!isfinite(r->baseline)) {
      st = qtl_fail(diag, QUANTAL_ENUMERIC, rec->path, (long)ch, -1,
                    "stimulus %zu at %.6g s: the baseline window holds no "
                    "finite samples",
                    i + 1, stim_s[i]);
      goto done;
    }
    {
      size_t m = 0;
      for (j = 0; j < sp.n_pre; j++)
        if (isfinite(sp.pre[j]))
          work[m++] = sp.pre[j] - r->baseline;
      r->noise_sd = m > 1 ? qtl_mad_sd(work, m) : NAN;
    }
    for (j = 0; j < sp.n_resp; j++) {
      sp.resp[j] -= r->baseline;
      if (isfinite(sp.resp[j]))
        area += sp.resp[j];
    }
    r->area = area / rate;
    /* Decide: the fixed-latency scale against the sham null (one-sided z
     * test) says whether there is a response at all; a response then gets
     * the best scale over latencies within +/- jitter, so asynchronous
     * release does not shrink it, while a failure keeps the fixed-latency
     * scale, whose distribution is the unbiased noise distribution that
     * the quantal fit expects for k = 0. */
    /* A response that went into the template is measured with the
     * template of the others (leave one out): its own noise, a 1 / n_avg
     * share of the template, correlates with itself, and with little or
     * no release, where the template is mostly noise, that biased every
     * scale upwards (measured: 50 stimuli without any release, 26-86 %
     * called responses at alpha 0.001, failures' mean amplitude 1.3-2.5
     * null SDs above 0). The scale is then taken at the template's peak
     * index, the units of the shams' null. */
    tpl = T;
    tpk = 1.0;
    if (n_avg > 1 && (pulse == NULL || pulse[i] <= 1)) {
      double f = (double)pol / (fabs(peak) * (double)(n_avg - 1));
      for (j = 0; j < sp.n_resp; j++)
        Ti[j] = (sumv[j] - (isfinite(sp.resp[j]) ? sp.resp[j] : 0.0)) * f;
      if (Ti[peak_i] > 0.0) {
        tpl = Ti;
        tpk = Ti[peak_i];
      }
    }
    scale[i] = template_scale(sp.resp, tpl, sp.n_resp, 0, pol) * tpk;
    shift_s[i] = 0.0;
    r->z = (scale[i] - null_mean) / null_sd;
    r->failure = r->z < z_crit;
    if (!r->failure && r->z < LATE_Z_MAX) {
      /* A small response may be a spontaneous event that fell in the
       * window: the template fits best well after its own latency. Then
       * that event (the template there, at its best scale) is removed and
       * the test made again on what is left. Large responses are not
       * checked (a mini cannot make one). */
      long smax = (long)sp.n_resp - (long)peak_i - 1, s, sg = 0;
      double ag = -INFINITY;
      for (s = -jit; s <= smax; s++) {
        double a = template_scale(sp.resp, tpl, sp.n_resp, s, pol);
        if (a > ag) {
          ag = a;
          sg = s;
        }
      }
      if (sg > jit + late_n) {
        for (j = (size_t)sg; j < sp.n_resp; j++)
          sp.resp[j] -= (double)pol * ag * tpl[j - (size_t)sg];
        scale[i] = template_scale(sp.resp, tpl, sp.n_resp, 0, pol) * tpk;
        r->z = (scale[i] - null_mean) / null_sd;
        r->failure = r->z < z_crit;
        r->late_event = 1;
        sum->n_late_events++;
      }
    }
    if (r->failure) {
      r->latency_s = NAN;
      r->peak_latency_s = NAN;
      sum->n_failures++;
    } else {
      long s, best_s = 0;
      for (s = -jit; s <= jit; s++) {
        double a = template_scale(sp.resp, tpl, sp.n_resp, s, pol) * tpk;
        if (a > scale[i]) {
          scale[i] = a;
          best_s = s;
        }
      }
      shift_s[i] = (double)best_s / rate;
      r->latency_s = onset_s + shift_s[i];
      r->peak_latency_s = peak_s + shift_s[i];
    }
    r->amplitude = scale[i] * pol;
  }
  sum->polarity = pol;
  sum->null_sd = null_sd;
  sum->null_mean = null_mean;
  sum->n_shams = n_sham;
  sum->z_crit = z_crit;
  sum->template_peak = peak;
  sum->template_onset_s = onset_s;
  sum->template_peak_s = peak_s;
  sum->tail_tau_s = ext.tau;
  sum->white_noise_sd =
      n_noise > 0 ? sqrt(s2 / (double)n_noise) * white_gain : NAN;
  sum->template_snr = n_noise > 0 && s2 > 0.0
                          ? fabs(peak) * sqrt((double)n_avg) /
                                sqrt(s2 / (double)n_noise)
                          : INFINITY;
done:
  free(sp.pre);
  free(sp.resp);
  free(avg);
  free(T);
  free(work);
  free(sham);
  free(sham_at);
  free(scale);
  free(shift_s);
  return st;
}

/* The mean response shows the sign of the responses when its peak stands
 * this many SEs of a mean of noise windows clear of 0. */
#define TEMPLATE_SNR_MIN 5.0

/* detect's on_ready: keep the polarity its calibration learnt from the
 * spontaneous events, and stop there. */
static int
keep_polarity(const quantal_detect_summary *s, void *user)
{
  *(int *)user = s->polarity;
  return 1;
}

quantal_status
quantal_evoked_measure(quantal_recording *rec, size_t ch,
                       const double *stim_s, const unsigned *pulse,
                       size_t n_stim, const quantal_evoked_options *opt,
                       quantal_evoked_response *out,
                       quantal_evoked_summary *sum, quantal_diag *diag)
{
  quantal_evoked_options o = opt ? *opt : quantal_evoked_options_default();
  quantal_status st =
      evoked_measure(rec, ch, stim_s, pulse, n_stim, &o, out, sum, diag);
  if (st == QUANTAL_OK && o.polarity == 0 &&
      !(sum->template_snr >= TEMPLATE_SNR_MIN)) {
    /* Little or no release: the mean response is noise and its extreme
     * may have either sign. The spontaneous events of the same channel
     * have the responses' sign: take the one detect's calibration learns
     * from them, and measure again if it differs. Without this a
     * recording without release got a negative polarity from its noise,
     * and its minis came out negative: none of the 52 true, positive ones
     * found (evoked-accuracy, no-release-50). */
    quantal_detect_options dq = quantal_detect_options_default();
    quantal_detect_summary ds;
    quantal_diag dd;
    int pd = 0;
    dq.on_ready = keep_polarity;
    dq.user = &pd;
    memset(&dd, 0, sizeof dd);
    (void)quantal_detect_run(rec, ch, &dq, &ds, &dd);
    if (pd != 0 && pd != sum->polarity) {
      o.polarity = pd;
      st = evoked_measure(rec, ch, stim_s, pulse, n_stim, &o, out, sum, diag);
    }
    sum->polarity_from_minis = pd != 0;
  }
  return st;
}

/* The kinetics of the mean response: the average of the baseline-
 * subtracted traces from baseline_s before each first pulse to window_s
 * after it, fitted with the bi-exponential of quantal_template_fit_kinetics.
 * Unlike the template of quantal_evoked_measure, the average starts before
 * the stimulus (no blanking), so the fit sees the whole rise: a large
 * stimulus artefact would enter it too. */
quantal_status
quantal_evoked_kinetics(quantal_recording *rec, size_t ch,
                        const double *stim_s, const unsigned *pulse,
                        size_t n_stim, const quantal_evoked_options *opt,
                        quantal_kinetics *out, quantal_diag *diag)
{
  quantal_recording_info info;
  quantal_evoked_options o = opt ? *opt : quantal_evoked_options_default();
  double rate, *avg = NULL, *buf = NULL, *work = NULL, peak = 0.0;
  double rise0, decay0, onset0;
  size_t n_pre, n_all, i, j, n_avg = 0, peak_i = 0, on_i = 0, end_i;
  quantal_status st = QUANTAL_OK;

  memset(out, 0, sizeof *out);
  quantal_recording_get_info(rec, &info);
  rate = info.rate_hz;
  if (ch >= info.n_channels)
    return qtl_fail(diag, QUANTAL_ERANGE, rec->path, (long)ch, -1,
                    "channel %zu does not exist (the file has %zu)", ch + 1,
                    info.n_channels);
  if (!(o.baseline_s > 0.0) || !(o.window_s > 0.0))
    return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "invalid evoked options");
  n_pre = (size_t)ceil(o.baseline_s * rate);
  n_all = n_pre + (size_t)ceil(o.window_s * rate);
  if (n_pre < 2 || n_all < n_pre + 8)
    return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "the baseline and response windows hold too few samples "
                    "at %g Hz",
                    rate);
  avg = calloc(n_all, sizeof *avg);
  buf = malloc(n_all * sizeof *buf);
  work = malloc(n_all * sizeof *work);
  if (avg == NULL || buf == NULL || work == NULL) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1, "out of memory");
    goto done;
  }
  for (i = 0; i < n_stim; i++) {
    long long a = (long long)floor(stim_s[i] * rate + 0.5) - (long long)n_pre;
    double bl;
    if ((pulse != NULL && pulse[i] > 1) || a < 0 ||
        (uint64_t)a + n_all > info.frames ||
        !within_one_sweep(rec, stim_s[i] - o.baseline_s,
                          stim_s[i] + o.window_s))
      continue;
    st = quantal_recording_read(rec, ch, (uint64_t)a, n_all, buf, diag);
    if (st != QUANTAL_OK)
      goto done;
    bl = median_of(buf, n_pre, work);
    if (!isfinite(bl))
      continue;
    for (j = 0; j < n_all; j++)
      avg[j] += isfinite(buf[j]) ? buf[j] - bl : 0.0;
    n_avg++;
  }
  if (n_avg == 0) {
    st = qtl_fail(diag, QUANTAL_ENODATA, rec->path, (long)ch, -1,
                  "no stimulus has its baseline and response windows inside "
                  "the recording");
    goto done;
  }
  for (j = 0; j < n_all; j++) {
    avg[j] /= (double)n_avg;
    if (j >= n_pre &&
        (o.polarity == 0 ? fabs(avg[j]) > fabs(peak)
                         : avg[j] * o.polarity > peak * o.polarity)) {
      peak = avg[j];
      peak_i = j;
    }
  }
  if (!(fabs(peak) > 0.0)) {
    st = qtl_fail(diag, QUANTAL_EFAILED, rec->path, (long)ch, -1,
                  "the average response is flat: no kinetics to measure");
    goto done;
  }
  /* Starting guesses from the shape: onset at the 10 % point, rise a
   * third of the time to peak, decay to 1/e of the peak. */
  for (on_i = n_pre; on_i < peak_i && avg[on_i] / peak < 0.1; on_i++)
    ;
  for (end_i = peak_i; end_i < n_all && avg[end_i] / peak > exp(-1.0);
       end_i++)
    ;
  onset0 = (double)on_i / rate;
  rise0 = fmax((double)(peak_i - on_i) / rate / 3.0, 1.0 / rate);
  decay0 = fmax((double)(end_i - peak_i) / rate, 2.0 * rise0);
  st = quantal_template_fit_kinetics(avg, n_all, rate, rise0, decay0, onset0,
                                     out, diag);
  if (st == QUANTAL_OK &&
      !(isfinite(out->rise_s) && isfinite(out->decay_s) && out->rise_s > 0.0 &&
        out->decay_s > out->rise_s && isfinite(out->onset_s)))
    st = qtl_fail(diag, QUANTAL_EFAILED, rec->path, (long)ch, -1,
                  "the bi-exponential fit of the mean response failed");
  if (st == QUANTAL_OK)
    out->onset_s -= (double)n_pre / rate; /* from the stimulus */
done:
  free(avg);
  free(buf);
  free(work);
  return st;
}

int
quantal_evoked_near_stimulus(const double *stim_s, size_t n_stim,
                             double before_s, double after_s, size_t *next,
                             double onset_s, double peak_s)
{
  /* Skip the stimuli whose window has passed, then test the current one. */
  while (*next < n_stim && stim_s[*next] + after_s < onset_s)
    (*next)++;
  return *next < n_stim && fmax(onset_s, peak_s) >= stim_s[*next] - before_s;
}
