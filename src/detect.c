/* detect.c - streaming detection of spontaneous synaptic events. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <fftw3.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Calibration looks at up to CAL_STRETCHES evenly spaced stretches of at
 * most CAL_FRAMES frames each: enough events to learn the kinetics and
 * the noise, in bounded memory and time whatever the file's length. */
#define CAL_FRAMES ((size_t)1 << 19)
#define CAL_STRETCHES 4
/* Default frames per block of the main pass. */
#define BLOCK_DEFAULT ((size_t)1 << 19)

quantal_detect_options
quantal_detect_options_default(void)
{
  quantal_detect_options o;
  memset(&o, 0, sizeof o);
  o.method = QUANTAL_DETECT_TEMPLATE;
  o.polarity = 0;
  o.threshold = NAN;
  o.rise_s = 0.0005;
  o.decay_s = 0.005;
  o.refine = 1;
  o.from_s = 0.0;
  o.to_s = 0.0;
  o.filter = quantal_filter_options_default();
  o.measure = quantal_measure_options_default();
  return o;
}

static const char *const method_names[] = {"template", "deconvolution",
                                           "threshold", "slope"};

const char *
quantal_detect_method_name(quantal_detect_method m)
{
  if ((unsigned)m < sizeof method_names / sizeof method_names[0])
    return method_names[m];
  return "unknown";
}

int
quantal_detect_method_parse(const char *name)
{
  size_t i;
  if (strcmp(name, "deconv") == 0)
    return QUANTAL_DETECT_DECONV;
  for (i = 0; i < sizeof method_names / sizeof method_names[0]; i++)
    if (strcmp(name, method_names[i]) == 0)
      return (int)i;
  return -1;
}

/* Default thresholds, in SDs of each method's score; chosen on the
 * detect-accuracy benchmark (scripts/bench/detect-accuracy). */
static double
default_threshold(quantal_detect_method m)
{
  switch (m) {
  case QUANTAL_DETECT_TEMPLATE: return 4.0;
  case QUANTAL_DETECT_DECONV: return 4.0;
  case QUANTAL_DETECT_THRESHOLD: return 4.0;
  case QUANTAL_DETECT_SLOPE: return 4.0;
  }
  return 4.0;
}

/* ---- where the samples come from -------------------------------------- */

typedef struct source {
  quantal_recording *rec;
  size_t ch;
  const double *arr;
  uint64_t frames;
  double rate_hz;
} source;

static quantal_status
src_read(source *s, uint64_t first, size_t n, double *buf, quantal_diag *d)
{
  if (s->rec)
    return quantal_recording_read(s->rec, s->ch, first, n, buf, d);
  memcpy(buf, s->arr + first, n * sizeof *buf);
  return QUANTAL_OK;
}

/* ---- the detector ----------------------------------------------------- */

typedef struct detector {
  quantal_detect_options o;
  quantal_detect_method want; /* o.method changes during calibration */
  double rate_hz, thr, score_sd, noise_sd;
  int pol;
  quantal_template *tpl;
  quantal_matcher *mt;
  qtl_xcorr *dec;        /* deconvolution filter as a correlation */
  size_t dec_off;        /* D[i + dec_off] = out[i] */
  size_t sep;            /* local-maximum half-window, samples */
  size_t ctx;            /* context frames each side of a block */
  double lp_hz;          /* low-pass of the threshold/slope methods */
  int refined;
  /* gaps */
  uint64_t n_gaps, gap_frames;
  int in_gap;
  double first_gap_s;
  uint64_t n_events;
  /* scratch */
  double *crit;
  size_t crit_cap;
} detector;

static quantal_status
scratch(double **p, size_t *cap, size_t n, quantal_diag *diag)
{
  if (*cap < n) {
    double *a = realloc(*p, n * sizeof *a);
    if (a == NULL)
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    *p = a;
    *cap = n;
  }
  return QUANTAL_OK;
}

/* Pernia-Andrade et al. (2012): deconvolution by the template, band
 * limited by a Gaussian, D = F^-1[G F(x) / F(e)]. Written as one FIR
 * filter h = F^-1[G / F(e)] (G kills the high frequencies where F(e)
 * vanishes, so h is short), applied by overlap-save like the template
 * correlation: that makes it stream in blocks. */
static quantal_status
deconv_build(detector *d, quantal_diag *diag)
{
  const quantal_template *t = d->tpl;
  size_t le = t->n - t->onset_index, nk = 8192, i, nb, k1, k2, j;
  double *e, *h, sigma_t, sigma_f, hmax = 0.0, *g;
  fftw_complex *E;
  fftw_plan pf, pb;
  quantal_status st;
  while (nk < 16 * le)
    nk *= 2;
  nb = nk / 2 + 1;
  e = fftw_malloc(nk * sizeof *e);
  h = fftw_malloc(nk * sizeof *h);
  E = fftw_malloc(nb * sizeof *E);
  if (e == NULL || h == NULL || E == NULL) {
    fftw_free(e);
    fftw_free(h);
    fftw_free(E);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  qtl_plan_lock();
  pf = fftw_plan_dft_r2c_1d((int)nk, e, E, FFTW_ESTIMATE);
  pb = fftw_plan_dft_c2r_1d((int)nk, E, h, FFTW_ESTIMATE);
  qtl_plan_unlock();
  memset(e, 0, nk * sizeof *e);
  for (i = 0; i < le; i++)
    e[i] = t->y[t->onset_index + i];
  fftw_execute(pf);
  /* Band limit: a Gaussian in time of SD half the time to peak (at least
   * one sample), i.e. sigma_f = 1 / (2 pi sigma_t). */
  sigma_t = 0.5 * (double)(t->peak_index - t->onset_index) / d->rate_hz;
  if (sigma_t < 1.0 / d->rate_hz)
    sigma_t = 1.0 / d->rate_hz;
  sigma_f = 1.0 / (2.0 * M_PI * sigma_t);
  for (i = 0; i < nb; i++) {
    double f = (double)i * d->rate_hz / (double)nk;
    double gg = exp(-0.5 * f * f / (sigma_f * sigma_f));
    double re = E[i][0], im = E[i][1], m2 = re * re + im * im;
    /* G / E = G conj(E) / |E|^2; where G has died there is nothing. */
    if (gg < 1e-12 || m2 == 0.0) {
      E[i][0] = E[i][1] = 0.0;
    } else {
      E[i][0] = gg * re / m2 / (double)nk;
      E[i][1] = -gg * im / m2 / (double)nk;
    }
  }
  fftw_execute(pb);
  qtl_plan_lock();
  fftw_destroy_plan(pf);
  fftw_destroy_plan(pb);
  qtl_plan_unlock();
  for (i = 0; i < nk; i++)
    if (fabs(h[i]) > hmax)
      hmax = fabs(h[i]);
  /* Support: lags -k1..k2 (circular indices) where |h| > 1e-4 max. */
  for (k2 = nk / 2; k2 > 0 && fabs(h[k2]) < 1e-4 * hmax; k2--)
    ;
  for (k1 = nk / 2; k1 > 0 && fabs(h[nk - k1]) < 1e-4 * hmax; k1--)
    ;
  g = malloc((k1 + k2 + 1) * sizeof *g);
  if (g == NULL) {
    fftw_free(e);
    fftw_free(h);
    fftw_free(E);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  /* D[t] = sum_k h[k] x[t - k] = sum_j g[j] x[t - k2 + j], g[j] =
   * h[k2 - j]. */
  for (j = 0; j <= k1 + k2; j++) {
    long k = (long)k2 - (long)j;
    g[j] = h[k >= 0 ? (size_t)k : nk - (size_t)(-k)];
  }
  st = qtl_xcorr_alloc(g, k1 + k2 + 1, &d->dec, diag);
  d->dec_off = k2;
  free(g);
  fftw_free(e);
  fftw_free(h);
  fftw_free(E);
  return st;
}

/* Score of each sample as an event onset, in the method's raw unit, NaN
 * where it cannot be computed (too near the ends). */
static quantal_status
raw_score(detector *d, const double *y, size_t n, double *z,
          quantal_diag *diag)
{
  size_t i;
  quantal_status st;
  for (i = 0; i < n; i++)
    z[i] = NAN;
  switch (d->o.method) {
  case QUANTAL_DETECT_TEMPLATE: {
    size_t L = d->tpl->n, on = d->tpl->onset_index;
    if (n < L)
      return QUANTAL_OK;
    st = scratch(&d->crit, &d->crit_cap, n, diag);
    if (st != QUANTAL_OK)
      return st;
    st = quantal_template_criterion(d->mt, y, n, d->crit, NULL, diag);
    if (st != QUANTAL_OK)
      return st;
    for (i = 0; i + L <= n; i++)
      z[i + on] = d->crit[i];
    return QUANTAL_OK;
  }
  case QUANTAL_DETECT_DECONV: {
    size_t K = qtl_xcorr_klen(d->dec);
    if (n < K)
      return QUANTAL_OK;
    st = scratch(&d->crit, &d->crit_cap, n, diag);
    if (st != QUANTAL_OK)
      return st;
    qtl_xcorr_run(d->dec, y, n, d->crit, NULL);
    for (i = 0; i + K <= n; i++)
      z[i + d->dec_off] = d->crit[i];
    return QUANTAL_OK;
  }
  case QUANTAL_DETECT_THRESHOLD:
  case QUANTAL_DETECT_SLOPE: {
    size_t half = (size_t)ceil(4.0 * 0.1325 * d->rate_hz / d->lp_hz) + 1;
    if (n < 2 * half + 2)
      return QUANTAL_OK;
    st = quantal_filter_lowpass(y, z, n, d->rate_hz, d->lp_hz, diag);
    if (st != QUANTAL_OK)
      return st;
    if (d->o.method == QUANTAL_DETECT_SLOPE) {
      /* central difference, per second */
      double prev = z[0], cur;
      for (i = 1; i + 1 < n; i++) {
        cur = z[i];
        z[i] = 0.5 * (z[i + 1] - prev) * d->rate_hz;
        prev = cur;
      }
      z[0] = z[n - 1] = NAN;
    }
    for (i = 0; i < half && i < n; i++)
      z[i] = z[n - 1 - i] = NAN;
    return QUANTAL_OK;
  }
  }
  return QUANTAL_OK;
}

/* Is i a local maximum of polarity * z above thr within +-sep? Ties go
 * to the earliest sample, so a plateau gives one event. */
static int
is_peak(const double *z, size_t n, size_t i, size_t sep, double pol,
        double thr)
{
  double v = pol * z[i];
  size_t j, lo = i > sep ? i - sep : 0, hi = i + sep < n ? i + sep : n - 1;
  if (!(v >= thr))
    return 0;
  for (j = lo; j < i; j++)
    if (pol * z[j] >= v)
      return 0;
  for (j = i + 1; j <= hi; j++)
    if (pol * z[j] > v)
      return 0;
  return 1;
}

/* Onset of a candidate: the template/deconvolution scores sit at the
 * onset already; threshold and slope scores peak later, so walk back to
 * where the filtered trace (or slope) falls under 10 % of its peak. */
static size_t
candidate_onset(const detector *d, const double *z, size_t i)
{
  size_t j = i, lim;
  double v = d->pol * z[i];
  if (d->o.method != QUANTAL_DETECT_THRESHOLD &&
      d->o.method != QUANTAL_DETECT_SLOPE)
    return i;
  lim = (size_t)(0.02 * d->rate_hz);
  while (j > 0 && i - j < lim && isfinite(z[j - 1]) &&
         d->pol * z[j - 1] > 0.1 * v)
    j--;
  return j;
}

typedef struct cand {
  size_t pos;    /* onset, sample index in the run */
  double score;  /* in score SDs, signed */
} cand;

/* Candidates in y[0..n): positions and scores. */
static quantal_status
find_candidates(detector *d, const double *y, size_t n, double *z,
                cand **out, size_t *nc, quantal_diag *diag)
{
  size_t i, cap = 0, k = 0;
  cand *c = NULL;
  double pol = (double)d->pol;
  quantal_status st = raw_score(d, y, n, z, diag);
  if (st != QUANTAL_OK)
    return st;
  for (i = 0; i < n; i++)
    z[i] /= d->score_sd;
  for (i = 0; i < n; i++) {
    double sc;
    size_t pos;
    if (d->o.method == QUANTAL_DETECT_THRESHOLD ||
        d->o.method == QUANTAL_DETECT_SLOPE) {
      /* The classical detector: one event per excursion beyond the
       * threshold, at the excursion's extreme; the excursion ends only
       * below half the threshold (hysteresis), so the noise on a decay
       * does not make a second crossing. */
      size_t j = i, best = i;
      if (!(pol * z[i] >= d->thr))
        continue;
      while (j < n && pol * z[j] >= 0.5 * d->thr) {
        if (pol * z[j] > pol * z[best])
          best = j;
        j++;
      }
      i = j;
      if (k == cap) {
        size_t nc2 = cap ? 2 * cap : 256;
        cand *c2 = realloc(c, nc2 * sizeof *c2);
        if (c2 == NULL) {
          free(c);
          return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1,
                          "out of memory");
        }
        c = c2;
        cap = nc2;
      }
      c[k].pos = candidate_onset(d, z, best);
      c[k].score = z[best];
      k++;
      continue;
    }
    /* The float FFT score is screened 1e-3 below the threshold; the
     * template method then decides on the exact double-precision
     * criterion, so block boundaries cannot flip a decision. */
    double thr = d->o.method == QUANTAL_DETECT_TEMPLATE
                     ? d->thr * (1.0 - 1e-3)
                     : d->thr;
    if (!isfinite(z[i]) || !is_peak(z, n, i, d->sep, pol, thr))
      continue;
    sc = z[i];
    pos = candidate_onset(d, z, i);
    if (d->o.method == QUANTAL_DETECT_TEMPLATE) {
      quantal_template_fit f;
      size_t on = d->tpl->onset_index, a = pos - on;
      size_t lo = a > 2 ? a - 2 : 0, hi = a + 2;
      if (hi + d->tpl->n > n)
        hi = n - d->tpl->n;
      st = quantal_template_fit_best(d->tpl, y, n, lo, hi, d->pol, &f, diag);
      if (st != QUANTAL_OK) {
        free(c);
        return st;
      }
      sc = f.criterion / d->score_sd;
      pos = f.index + on;
      if (!(pol * sc >= d->thr))
        continue;
      if (k > 0 && c[k - 1].pos == pos)
        continue;
    }
    if (k == cap) {
      size_t nc2 = cap ? 2 * cap : 256;
      cand *c2 = realloc(c, nc2 * sizeof *c2);
      if (c2 == NULL) {
        free(c);
        return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
      }
      c = c2;
      cap = nc2;
    }
    c[k].pos = pos;
    c[k].score = sc;
    k++;
  }
  *out = c;
  *nc = k;
  return QUANTAL_OK;
}

/* ---- one stretch of finite samples ------------------------------------ */

/* Pre-process x (n samples, first frame f0) in place: baseline removed
 * (kept in base), hum removed. */
static quantal_status
preprocess(detector *d, double *x, size_t n, uint64_t f0, double *base,
           quantal_diag *diag)
{
  quantal_filter_options fo = d->o.filter;
  fo.lowpass_hz = 0.0; /* each method smooths in its own way */
  return quantal_filter_block(x, n, f0, d->rate_hz, &fo, base, diag);
}

/* Detect and measure the events of the finite stretch y[0..n) (frames
 * f0..f0+n of the recording, already pre-processed; base is the removed
 * baseline) and report those whose onset lies in [own_lo, own_hi). */
static quantal_status
process_run(detector *d, double *y, size_t n, uint64_t f0, const double *base,
            uint64_t own_lo, uint64_t own_hi, quantal_diag *diag)
{
  double *z = NULL, *r = NULL;
  cand *c = NULL;
  size_t nc = 0, k, j;
  quantal_status st;
  double prev_end_s = -1.0;

  if (n < d->tpl->n + 2)
    return QUANTAL_OK;
  z = malloc(n * sizeof *z);
  r = malloc(n * sizeof *r);
  if (z == NULL || r == NULL) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    goto done;
  }
  st = find_candidates(d, y, n, z, &c, &nc, diag);
  if (st != QUANTAL_OK)
    goto done;
  memcpy(r, y, n * sizeof *r);
  for (k = 0; k < nc; k++) {
    quantal_event ev;
    size_t end = k + 1 < nc ? c[k + 1].pos : n, on, pk;
    double tail;
    if (k > 0 && d->o.method == QUANTAL_DETECT_TEMPLATE) {
      /* Re-test on the residual, with the fitted earlier events removed:
       * a template of an event's decay scores above threshold just after
       * a large event (a side lobe of the criterion), while a real second
       * event on that decay still stands out from the residual. */
      quantal_template_fit f;
      size_t on0 = d->tpl->onset_index, a0 = c[k].pos - on0;
      size_t lo = a0 > 2 ? a0 - 2 : 0, hi = a0 + 2;
      if (hi + d->tpl->n > n)
        hi = n - d->tpl->n;
      if (lo <= hi) {
        st = quantal_template_fit_best(d->tpl, r, n, lo, hi, d->pol, &f,
                                       diag);
        if (st != QUANTAL_OK)
          goto done;
        if (!(d->pol * f.criterion / d->score_sd >= d->thr))
          continue;
        c[k].pos = f.index + on0;
        c[k].score = f.criterion / d->score_sd;
      }
    }
    st = quantal_measure_event(r, n, d->rate_hz, 0.0, c[k].pos, end, d->pol,
                               d->tpl, &d->o.measure, &ev, diag);
    if (st != QUANTAL_OK)
      goto done;
    on = (size_t)floor(ev.onset_s * d->rate_hz + 0.5);
    pk = (size_t)floor(ev.peak_s * d->rate_hz + 0.5);
    if (pk >= n)
      pk = n - 1;
    /* The tails of earlier events were subtracted from r; add them back
     * so that the baseline column is the trace's own level under the
     * peak. */
    tail = y[pk] - r[pk];
    ev.baseline += base[pk] + tail;
    ev.overlap = prev_end_s >= 0.0 && ev.onset_s < prev_end_s;
    ev.criterion = c[k].score;
    /* Subtract this event's fitted template (an exponential beyond the
     * template's end for a bi-exponential) before measuring the next one:
     * that puts the next event on the correct local baseline. */
    if (on >= d->tpl->onset_index) {
      size_t s0 = on - d->tpl->onset_index, L = d->tpl->n;
      double last = d->tpl->y[L - 1], q = 0.0;
      if (isfinite(d->tpl->decay_s))
        q = exp(-1.0 / (d->tpl->decay_s * d->rate_hz));
      for (j = s0 + d->tpl->onset_index; j < n && j < s0 + L; j++)
        r[j] -= ev.amplitude * d->tpl->y[j - s0];
      for (; q > 0.0 && j < n && j < s0 + 3 * L; j++) {
        last *= q;
        r[j] -= ev.amplitude * last;
      }
      prev_end_s = ((double)s0 + (double)L) / d->rate_hz;
    }
    /* From the integer sample indices, so that the times are bit for bit
     * the same whatever block the event was found in. */
    ev.onset_s = (double)(f0 + on) / d->rate_hz;
    ev.peak_s = (double)(f0 + pk) / d->rate_hz;
    if (f0 + c[k].pos >= own_lo && f0 + c[k].pos < own_hi) {
      d->n_events++;
      if (d->o.on_event && d->o.on_event(&ev, d->o.user) != 0) {
        st = qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                      "stopped by the caller");
        goto done;
      }
    }
  }
done:
  free(c);
  free(z);
  free(r);
  return st;
}

/* ---- calibration ------------------------------------------------------ */

typedef struct cal_run {
  double *y;
  size_t n;
  uint64_t f0;
} cal_run;

typedef struct calib {
  cal_run *runs;
  size_t nruns, cap;
} calib;

static void
calib_free(calib *c)
{
  size_t i;
  for (i = 0; i < c->nruns; i++)
    free(c->runs[i].y);
  free(c->runs);
  memset(c, 0, sizeof *c);
}

static quantal_status
calib_add(calib *c, const double *x, size_t n, uint64_t f0, quantal_diag *diag)
{
  cal_run *r;
  if (c->nruns == c->cap) {
    size_t nc = c->cap ? 2 * c->cap : 8;
    cal_run *a = realloc(c->runs, nc * sizeof *a);
    if (a == NULL)
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    c->runs = a;
    c->cap = nc;
  }
  r = &c->runs[c->nruns];
  r->y = malloc(n * sizeof *r->y);
  if (r->y == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  memcpy(r->y, x, n * sizeof *r->y);
  r->n = n;
  r->f0 = f0;
  c->nruns++;
  return QUANTAL_OK;
}

/* Read the calibration stretches and keep their finite runs,
 * pre-processed. */
static quantal_status
calib_read(detector *d, source *s, uint64_t a, uint64_t b, calib *c,
           quantal_diag *diag)
{
  uint64_t span = b - a, len, starts[CAL_STRETCHES];
  size_t ns, i, j;
  double *x, *base;
  quantal_status st = QUANTAL_OK;
  if (span <= (uint64_t)CAL_FRAMES * CAL_STRETCHES) {
    /* short enough: all of it, in pieces of at most CAL_FRAMES */
    ns = (size_t)((span + CAL_FRAMES - 1) / CAL_FRAMES);
    len = (span + ns - 1) / ns;
    for (i = 0; i < ns; i++)
      starts[i] = a + i * len;
  } else {
    ns = CAL_STRETCHES;
    len = CAL_FRAMES;
    for (i = 0; i < ns; i++)
      starts[i] = a + (span - len) * i / (ns - 1);
  }
  x = malloc((size_t)len * sizeof *x);
  base = malloc((size_t)len * sizeof *base);
  if (x == NULL || base == NULL) {
    free(x);
    free(base);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  for (i = 0; i < ns && st == QUANTAL_OK; i++) {
    size_t m = (size_t)(starts[i] + len <= b ? len : b - starts[i]);
    st = src_read(s, starts[i], m, x, diag);
    for (j = 0; j < m && st == QUANTAL_OK;) {
      size_t k = j;
      while (k < m && isfinite(x[k]))
        k++;
      if (k - j >= d->tpl->n * 4) {
        st = preprocess(d, x + j, k - j, starts[i] + j, base, diag);
        if (st == QUANTAL_OK)
          st = calib_add(c, x + j, k - j, starts[i] + j, diag);
      }
      while (k < m && !isfinite(x[k]))
        k++;
      j = k;
    }
  }
  free(x);
  free(base);
  return st;
}

/* Robust SD (MAD) of the finite values of the raw score over all
 * calibration runs, from at most ~2^20 evenly spaced values. */
static quantal_status
score_values(detector *d, calib *c, double **vals, size_t *nv,
             quantal_diag *diag)
{
  size_t total = 0, i, j, m = 0, stride;
  double *v, *z;
  quantal_status st;
  for (i = 0; i < c->nruns; i++)
    total += c->runs[i].n;
  stride = total > ((size_t)1 << 20) ? total / ((size_t)1 << 20) + 1 : 1;
  v = malloc((total / stride + c->nruns + 1) * sizeof *v);
  if (v == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  for (i = 0; i < c->nruns; i++) {
    z = malloc(c->runs[i].n * sizeof *z);
    if (z == NULL) {
      free(v);
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    }
    st = raw_score(d, c->runs[i].y, c->runs[i].n, z, diag);
    if (st != QUANTAL_OK) {
      free(z);
      free(v);
      return st;
    }
    for (j = 0; j < c->runs[i].n; j += stride)
      if (isfinite(z[j]))
        v[m++] = z[j];
    free(z);
  }
  *vals = v;
  *nv = m;
  return QUANTAL_OK;
}

/* SD of the Gaussian fitted to the all-points histogram (Pernia-Andrade
 * et al. 2012): a parabola fitted to the log counts of the bins within
 * about 2 SD of the mode, weighted by the counts, so that the events (a
 * tail on one side) do not widen it. Falls back to the MAD. */
static double
histogram_sd(double *v, size_t n)
{
  enum { NB = 121 };
  double cnt[NB], mad, med, lo, w, s[5] = {0}, t[3] = {0}, cmax = 0.0;
  size_t i, b;
  double *tmp = malloc(n * sizeof *tmp);
  if (tmp == NULL || n < 100) {
    free(tmp);
    return n ? qtl_mad_sd(v, n) : NAN;
  }
  memcpy(tmp, v, n * sizeof *tmp);
  med = qtl_median(tmp, n);
  mad = qtl_mad_sd(tmp, n);
  free(tmp);
  if (!(mad > 0.0))
    return mad;
  lo = med - 6.0 * mad;
  w = 12.0 * mad / NB;
  memset(cnt, 0, sizeof cnt);
  for (i = 0; i < n; i++) {
    double p = (v[i] - lo) / w;
    if (p >= 0.0 && p < NB)
      cnt[(size_t)p] += 1.0;
  }
  for (b = 0; b < NB; b++)
    if (cnt[b] > cmax)
      cmax = cnt[b];
  for (b = 0; b < NB; b++) {
    double x = (lo + (b + 0.5) * w - med) / mad, y, wt;
    if (cnt[b] < cmax * exp(-2.0))
      continue;
    y = log(cnt[b]);
    wt = cnt[b];
    s[0] += wt;
    s[1] += wt * x;
    s[2] += wt * x * x;
    s[3] += wt * x * x * x;
    s[4] += wt * x * x * x * x;
    t[0] += wt * y;
    t[1] += wt * x * y;
    t[2] += wt * x * x * y;
  }
  {
    /* normal equations of y = a + b x + c x^2, Cramer's rule */
    double M[3][3] = {{s[0], s[1], s[2]}, {s[1], s[2], s[3]},
                      {s[2], s[3], s[4]}};
    double det = M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) -
                 M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +
                 M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]);
    double dc = M[0][0] * (M[1][1] * t[2] - t[1] * M[2][1]) -
                M[0][1] * (M[1][0] * t[2] - t[1] * M[2][0]) +
                t[0] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]);
    double cc = det != 0.0 ? dc / det : 0.0;
    if (cc < 0.0 && s[0] > 0.0) {
      double sd = sqrt(-1.0 / (2.0 * cc)) * mad;
      if (sd > 0.3 * mad && sd < 3.0 * mad)
        return sd;
    }
  }
  return mad;
}

static quantal_status
set_template(detector *d, quantal_template *t, quantal_diag *diag)
{
  quantal_status st;
  quantal_template_matcher_free(d->mt);
  d->mt = NULL;
  qtl_xcorr_free(d->dec);
  d->dec = NULL;
  quantal_template_free(d->tpl);
  d->tpl = t;
  st = quantal_template_matcher_alloc(t, &d->mt, diag);
  if (st != QUANTAL_OK)
    return st;
  if (d->want == QUANTAL_DETECT_DECONV) {
    st = deconv_build(d, diag);
    if (st != QUANTAL_OK)
      return st;
  }
  d->sep = (t->peak_index - t->onset_index);
  if (d->sep < 2)
    d->sep = 2;
  return QUANTAL_OK;
}

/* Polarity from the template criterion: the sign with more local
 * extremes beyond 5 SDs (MEPPs give positive, mEPSCs negative scales). */
static quantal_status
decide_polarity(detector *d, calib *c, quantal_diag *diag)
{
  quantal_detect_method keep = d->o.method;
  double *v = NULL, sd;
  size_t nv, i, j;
  double wpos = 0.0, wneg = 0.0;
  quantal_status st;
  d->o.method = QUANTAL_DETECT_TEMPLATE;
  st = score_values(d, c, &v, &nv, diag);
  if (st != QUANTAL_OK)
    goto done;
  sd = nv ? qtl_mad_sd(v, nv) : NAN;
  free(v);
  v = NULL;
  if (!(sd > 0.0)) {
    d->pol = 1;
    goto done;
  }
  for (i = 0; i < c->nruns; i++) {
    double *z = malloc(c->runs[i].n * sizeof *z);
    if (z == NULL) {
      st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
      goto done;
    }
    st = raw_score(d, c->runs[i].y, c->runs[i].n, z, diag);
    if (st == QUANTAL_OK)
      for (j = 0; j < c->runs[i].n; j++) {
        if (!isfinite(z[j]))
          continue;
        /* Weighted by how far beyond 5 SDs: an event's own peak
         * outweighs the opposite-sign side lobe that a template of the
         * wrong kinetics gives on its decay. */
        if (is_peak(z, c->runs[i].n, j, d->sep, 1.0, 5.0 * sd))
          wpos += (z[j] / sd - 5.0) * (z[j] / sd - 5.0);
        if (is_peak(z, c->runs[i].n, j, d->sep, -1.0, 5.0 * sd))
          wneg += (z[j] / sd + 5.0) * (z[j] / sd + 5.0);
      }
    free(z);
    if (st != QUANTAL_OK)
      goto done;
  }
  d->pol = wneg > wpos ? -1 : 1;
done:
  d->o.method = keep;
  return st;
}

/* Kinetics from the data: detect with a conservative threshold, align the
 * isolated events on their best template latency, average them and fit a
 * bi-exponential (quantal_template_fit_kinetics), then start again with
 * the new template until rise and decay change by less than 2 %. */
static quantal_status
refine_kinetics(detector *d, calib *c, quantal_diag *diag)
{
  quantal_detect_method keep = d->o.method;
  double keep_thr = d->thr, keep_sd = d->score_sd;
  quantal_status st = QUANTAL_OK;
  int iter;
  d->o.method = QUANTAL_DETECT_TEMPLATE;
  for (iter = 0; iter < 4; iter++) {
    double *v = NULL, sd, r0 = d->tpl->rise_s, d0 = d->tpl->decay_s;
    double tp = qtl_biexp_tpeak(r0, d0), *avg = NULL;
    size_t nv, i, k, pre, win, navg = 0;
    quantal_kinetics kin;
    quantal_template *nt = NULL;
    st = score_values(d, c, &v, &nv, diag);
    if (st != QUANTAL_OK)
      break;
    sd = nv ? qtl_mad_sd(v, nv) : NAN;
    free(v);
    if (!(sd > 0.0))
      break;
    d->score_sd = sd;
    pre = (size_t)ceil((2.0 * tp > 1e-3 ? 2.0 * tp : 1e-3) * d->rate_hz);
    win = pre + (size_t)ceil((tp + 6.0 * d0) * d->rate_hz);
    avg = calloc(win, sizeof *avg);
    if (avg == NULL) {
      st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
      break;
    }
    /* 6 SDs first; fewer than 10 such events: 4.5 SDs. */
    for (k = 0; k < 2 && navg < 10; k++) {
      memset(avg, 0, win * sizeof *avg);
      navg = 0;
      d->thr = k == 0 ? 6.0 : 4.5;
      for (i = 0; i < c->nruns; i++) {
        cal_run *cr = &c->runs[i];
        double *z = malloc(cr->n * sizeof *z);
        cand *cc = NULL;
        size_t ncc = 0, j, s;
        if (z == NULL) {
          st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
          break;
        }
        st = find_candidates(d, cr->y, cr->n, z, &cc, &ncc, diag);
        free(z);
        if (st != QUANTAL_OK)
          break;
        for (j = 0; j < ncc; j++) {
          size_t p = cc[j].pos;
          /* isolated: no other candidate in the averaging window */
          if (j > 0 && cc[j - 1].pos + win > p)
            continue;
          if (j + 1 < ncc && p + win > cc[j + 1].pos)
            continue;
          if (p < pre || p - pre + win > cr->n)
            continue;
          for (s = 0; s < win; s++)
            avg[s] += d->pol * cr->y[p - pre + s];
          navg++;
        }
        free(cc);
      }
      if (st != QUANTAL_OK)
        break;
    }
    if (st != QUANTAL_OK || navg < 5) {
      free(avg);
      break;
    }
    for (i = 0; i < win; i++)
      avg[i] /= (double)navg;
    st = quantal_template_fit_kinetics(avg, win, d->rate_hz, r0, d0,
                                       (double)pre / d->rate_hz, &kin, diag);
    free(avg);
    if (st != QUANTAL_OK || !(kin.amplitude > 0.0) ||
        kin.rise_s < 0.5 / d->rate_hz || kin.decay_s > 2.0 ||
        kin.rise_s > kin.decay_s) {
      /* keep the previous template: the guess stands */
      st = QUANTAL_OK;
      break;
    }
    st = quantal_template_biexp(kin.rise_s, kin.decay_s, d->rate_hz, &nt,
                                diag);
    if (st != QUANTAL_OK)
      break;
    st = set_template(d, nt, diag);
    if (st != QUANTAL_OK)
      break;
    d->refined = 1;
    if (fabs(kin.rise_s / r0 - 1.0) < 0.02 &&
        fabs(kin.decay_s / d0 - 1.0) < 0.02)
      break;
  }
  d->o.method = keep;
  d->thr = keep_thr;
  d->score_sd = keep_sd;
  return st;
}

static quantal_status
calibrate(detector *d, source *s, uint64_t a, uint64_t b, quantal_diag *diag)
{
  calib c;
  quantal_status st;
  double *v = NULL;
  size_t nv, i, total = 0;
  memset(&c, 0, sizeof c);
  st = calib_read(d, s, a, b, &c, diag);
  if (st != QUANTAL_OK)
    goto done;
  for (i = 0; i < c.nruns; i++)
    total += c.runs[i].n;
  if (total == 0) {
    st = qtl_fail(diag, QUANTAL_ENODATA, NULL, -1, -1,
                  "no stretch of finite samples as long as 4 templates "
                  "(%zu samples)", 4 * d->tpl->n);
    goto done;
  }
  /* noise SD of the pre-processed trace */
  {
    size_t stride = total > ((size_t)1 << 20) ? total / ((size_t)1 << 20) + 1
                                               : 1, m = 0, j;
    v = malloc((total / stride + c.nruns + 1) * sizeof *v);
    if (v == NULL) {
      st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
      goto done;
    }
    for (i = 0; i < c.nruns; i++)
      for (j = 0; j < c.runs[i].n; j += stride)
        v[m++] = c.runs[i].y[j];
    d->noise_sd = qtl_mad_sd(v, m);
    free(v);
    v = NULL;
  }
  if (!(d->noise_sd > 0.0)) {
    st = qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                  "the trace is constant: nothing to detect");
    goto done;
  }
  if (d->o.polarity == 0) {
    st = decide_polarity(d, &c, diag);
    if (st != QUANTAL_OK)
      goto done;
  } else {
    d->pol = d->o.polarity > 0 ? 1 : -1;
  }
  if (d->o.refine && d->o.waveform == NULL) {
    st = refine_kinetics(d, &c, diag);
    if (st != QUANTAL_OK)
      goto done;
  }
  /* The score SD of the chosen method with the final template. */
  st = score_values(d, &c, &v, &nv, diag);
  if (st != QUANTAL_OK)
    goto done;
  d->score_sd = d->o.method == QUANTAL_DETECT_DECONV ? histogram_sd(v, nv)
                                                     : qtl_mad_sd(v, nv);
  free(v);
  v = NULL;
  if (!(d->score_sd > 0.0))
    st = qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                  "the detection score is flat: nothing to detect");
done:
  free(v);
  calib_free(&c);
  return st;
}

/* ---- the driver ------------------------------------------------------- */

static void
detector_free(detector *d)
{
  quantal_template_matcher_free(d->mt);
  qtl_xcorr_free(d->dec);
  quantal_template_free(d->tpl);
  free(d->crit);
}

static quantal_status
check_options(const quantal_detect_options *o, quantal_diag *diag)
{
  if ((unsigned)o->method > QUANTAL_DETECT_SLOPE)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1, "unknown method");
  if (isfinite(o->threshold) ? !(o->threshold > 0.0 && o->threshold < 1e6)
                             : !isnan(o->threshold))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "threshold must be positive");
  if (o->waveform == NULL &&
      (!(o->rise_s > 0.0) || !(o->decay_s > 0.0) || o->rise_s > 1.0 ||
       o->decay_s > 10.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "rise and decay must be positive (and under 1 s / 10 s)");
  if (!(o->from_s >= 0.0) || o->to_s < 0.0 ||
      (o->to_s > 0.0 && o->to_s <= o->from_s))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "bad time span: from %g s to %g s", o->from_s, o->to_s);
  return QUANTAL_OK;
}

static void
count_gaps(detector *d, const double *x, size_t n, uint64_t f0)
{
  size_t i;
  for (i = 0; i < n; i++) {
    int bad = !isfinite(x[i]);
    if (bad) {
      if (!d->in_gap) {
        d->n_gaps++;
        if (d->n_gaps == 1)
          d->first_gap_s = (double)(f0 + i) / d->rate_hz;
      }
      d->gap_frames++;
    }
    d->in_gap = bad;
  }
}

static void
fill_summary(const detector *d, uint64_t a, uint64_t b,
             quantal_detect_summary *sum)
{
  sum->n_events = d->n_events;
  sum->duration_s = (double)(b - a - d->gap_frames) / d->rate_hz;
  sum->rate_hz = sum->duration_s > 0.0 ? (double)d->n_events / sum->duration_s
                                       : NAN;
  sum->noise_sd = d->noise_sd;
  sum->score_sd = d->score_sd;
  sum->threshold = d->thr;
  sum->polarity = d->pol;
  sum->method = d->o.method;
  sum->rise_s = d->tpl->rise_s;
  sum->decay_s = d->tpl->decay_s;
  sum->refined = d->refined;
  sum->n_gaps = d->n_gaps;
  sum->gap_s = (double)d->gap_frames / d->rate_hz;
  sum->first_gap_s = d->first_gap_s;
}

static quantal_status
run(source *s, const quantal_detect_options *opt,
    quantal_detect_summary *sum, quantal_diag *diag)
{
  detector d;
  quantal_status st;
  quantal_template *t = NULL;
  uint64_t a, b, c0;
  size_t block, win_cap;
  double *x = NULL, *base = NULL;

  memset(&d, 0, sizeof d);
  memset(sum, 0, sizeof *sum);
  st = check_options(opt, diag);
  if (st != QUANTAL_OK)
    return st;
  d.o = *opt;
  d.want = opt->method;
  d.rate_hz = s->rate_hz;
  d.first_gap_s = NAN;
  d.thr = isfinite(opt->threshold) ? opt->threshold
                                   : default_threshold(opt->method);
  d.lp_hz = opt->filter.lowpass_hz > 0.0 ? opt->filter.lowpass_hz : 1000.0;
  if (d.lp_hz > 0.45 * d.rate_hz)
    d.lp_hz = 0.45 * d.rate_hz;
  a = (uint64_t)floor(opt->from_s * d.rate_hz + 0.5);
  b = opt->to_s > 0.0 ? (uint64_t)floor(opt->to_s * d.rate_hz + 0.5)
                      : s->frames;
  if (b > s->frames)
    b = s->frames;
  if (a >= b)
    return qtl_fail(diag, s->frames ? QUANTAL_ERANGE : QUANTAL_ENODATA, NULL,
                    -1, -1,
                    s->frames ? "the time span %g-%g s lies outside the "
                                "recording (%g s)"
                              : "the recording is empty",
                    opt->from_s, opt->to_s, (double)s->frames / d.rate_hz);
  if (opt->waveform)
    st = quantal_template_from_samples(opt->waveform, opt->waveform_n,
                                       d.rate_hz, &t, diag);
  else
    st = quantal_template_biexp(opt->rise_s, opt->decay_s, d.rate_hz, &t,
                                diag);
  if (st != QUANTAL_OK)
    return st;
  st = set_template(&d, t, diag);
  if (st != QUANTAL_OK)
    goto done;
  if (b - a < 4 * (uint64_t)d.tpl->n) {
    st = qtl_fail(diag, QUANTAL_ENODATA, NULL, -1, -1,
                  "the trace (%llu samples) is shorter than 4 templates "
                  "(%zu samples)", (unsigned long long)(b - a),
                  4 * d.tpl->n);
    goto done;
  }
  st = calibrate(&d, s, a, b, diag);
  if (st != QUANTAL_OK)
    goto done;
  fill_summary(&d, a, b, sum);
  if (opt->on_ready && opt->on_ready(sum, opt->user) != 0) {
    st = qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                  "stopped by the caller");
    goto done;
  }
  /* Context each side of a block: the filters', plus room for a whole
   * event and its tail before the first owned onset and after the last. */
  d.ctx = quantal_filter_context(&d.o.filter, d.rate_hz) + 4 * d.tpl->n +
          (size_t)(0.05 * d.rate_hz) +
          (d.dec ? qtl_xcorr_klen(d.dec) : 0);
  block = opt->block_frames ? opt->block_frames : BLOCK_DEFAULT;
  if (block < 1024)
    block = 1024;
  win_cap = block + 2 * d.ctx;
  x = malloc(win_cap * sizeof *x);
  base = malloc(win_cap * sizeof *base);
  if (x == NULL || base == NULL) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    goto done;
  }
  for (c0 = a; c0 < b; c0 += block) {
    uint64_t c1 = c0 + block < b ? c0 + block : b;
    uint64_t w0 = c0 - a > d.ctx ? c0 - d.ctx : a;
    uint64_t w1 = b - c1 > d.ctx ? c1 + d.ctx : b;
    size_t m = (size_t)(w1 - w0), j;
    st = src_read(s, w0, m, x, diag);
    if (st != QUANTAL_OK)
      goto done;
    count_gaps(&d, x + (c0 - w0), (size_t)(c1 - c0), c0);
    for (j = 0; j < m && st == QUANTAL_OK;) {
      size_t k = j;
      while (k < m && isfinite(x[k]))
        k++;
      if (k > j) {
        st = preprocess(&d, x + j, k - j, w0 + j, base + j, diag);
        if (st == QUANTAL_OK)
          st = process_run(&d, x + j, k - j, w0 + j, base + j, c0, c1, diag);
      }
      while (k < m && !isfinite(x[k]))
        k++;
      j = k;
    }
    if (st != QUANTAL_OK)
      goto done;
    if (opt->on_progress)
      opt->on_progress(c1 - a, b - a, opt->user);
  }
  fill_summary(&d, a, b, sum);
done:
  free(x);
  free(base);
  detector_free(&d);
  return st;
}

quantal_status
quantal_detect_run(quantal_recording *rec, size_t ch,
                   const quantal_detect_options *opt,
                   quantal_detect_summary *summary, quantal_diag *diag)
{
  source s;
  quantal_recording_info info;
  quantal_channel_info ci;
  quantal_status st;
  quantal_recording_get_info(rec, &info);
  st = quantal_recording_get_channel(rec, ch, &ci);
  if (st != QUANTAL_OK)
    return qtl_fail(diag, QUANTAL_ERANGE, rec->path, (long)ch, -1,
                    "channel %zu does not exist (the file has %zu)", ch + 1,
                    info.n_channels);
  memset(&s, 0, sizeof s);
  s.rec = rec;
  s.ch = ch;
  s.frames = info.frames;
  s.rate_hz = info.rate_hz;
  st = run(&s, opt, summary, diag);
  if (st != QUANTAL_OK && diag && diag->file[0] == '\0')
    qtl_strlcpy(diag->file, rec->path, sizeof diag->file);
  return st;
}

quantal_status
quantal_detect_array(const double *x, size_t n, double rate_hz,
                     const quantal_detect_options *opt,
                     quantal_detect_summary *summary, quantal_diag *diag)
{
  source s;
  if (!(rate_hz > 0.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "the sample rate must be positive");
  memset(&s, 0, sizeof s);
  s.arr = x;
  s.frames = n;
  s.rate_hz = rate_hz;
  return run(&s, opt, summary, diag);
}
