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
/* The combined method: its threshold, the fraction of it at which the
 * template criterion proposes candidates, the most Gauss-Seidel sweeps
 * of the neighbour fit and the most candidates fitted together (chosen
 * on scripts/bench/detect-accuracy). */
#define COMBINED_THRESHOLD 4.0
#define COMBINED_CANDIDATES 0.8
#define COMBINED_DECONV 0.75
#define COMBINED_SIGMA 0.2
#define BACKFIT_SWEEPS 12
#define CLUSTER_MAX 24
/* Deconvolution filters up to this many taps are summed directly rather
 * than by FFT (a bi-exponential's filter has a few dozen). */
#define DEC_DIRECT_MAX 128

quantal_detect_options
quantal_detect_options_default(void)
{
  quantal_detect_options o;
  memset(&o, 0, sizeof o);
  o.method = QUANTAL_DETECT_COMBINED;
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
                                           "threshold", "slope",
                                           "combined"};

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
  case QUANTAL_DETECT_COMBINED: return COMBINED_THRESHOLD;
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
  double *dec_g;         /* its taps, for the exact value at a candidate */
  size_t sep;            /* local-maximum half-window, samples */
  size_t ctx;            /* context frames each side of a block */
  size_t det_ctx;        /* the part of it detection needs (run) */
  double lp_hz;          /* low-pass of the threshold/slope methods */
  int refined;
  double *te;            /* template extended by its exponential tail */
  size_t te_n;
  double *tc;            /* template minus its mean (fast_fit_best) */
  double t_mean, t_stt;  /* its mean and sum of squares */
  double cand_thr;       /* candidate threshold of the combined method */
  double dec_sd;         /* SD of the deconvolution score (combined) */
  size_t dec_sep;        /* local-maximum half-window of its candidates */
  /* gaps */
  uint64_t n_gaps, gap_frames;
  int in_gap;
  double first_gap_s;
  uint64_t n_events;
  unsigned tpl_gen;      /* set_template calls: which template a cache is of */
  int mt_scaled;         /* the matcher writes the criterion / score_sd */
  double *work;          /* a run's scores, then its residual (reused) */
  size_t work_cap;
} detector;

/* d->work with room for n samples, kept from one block to the next (a
 * fresh one per block would be mapped and faulted in again each time). */
static double *
work_buffer(detector *d, size_t n)
{
  if (d->work_cap < n) {
    double *w = realloc(d->work, n * sizeof *w);
    if (w == NULL)
      return NULL;
    d->work = w;
    d->work_cap = n;
  }
  return d->work;
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
  size_t le = d->te_n - t->onset_index, nk = 8192, i, nb, k1, k2, j;
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
    e[i] = d->te[t->onset_index + i];
  fftw_execute(pf);
  /* Band limit: a Gaussian in time of SD half the time to peak (at least
   * one sample), i.e. sigma_f = 1 / (2 pi sigma_t). */
  sigma_t = (d->want == QUANTAL_DETECT_COMBINED ? COMBINED_SIGMA : 0.5) *
            (double)(t->peak_index - t->onset_index) / d->rate_hz;
  d->dec_sep = (size_t)(sigma_t * d->rate_hz);
  if (d->dec_sep < 2)
    d->dec_sep = 2;
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
  st = qtl_xcorr_alloc(g, k1 + k2 + 1, DEC_DIRECT_MAX, &d->dec, diag);
  d->dec_off = k2;
  free(d->dec_g);
  d->dec_g = g; /* kept for dec_exact */
  fftw_free(e);
  fftw_free(h);
  fftw_free(E);
  return st;
}

/* The deconvolution's filter for the current template, built on first
 * use (set_template drops it); nothing for the template-only methods. */
static quantal_status
deconv_ready(detector *d, quantal_diag *diag)
{
  if (d->dec != NULL || (d->want != QUANTAL_DETECT_DECONV &&
                         d->want != QUANTAL_DETECT_COMBINED))
    return QUANTAL_OK;
  return deconv_build(d, diag);
}

/* The deconvolved trace at sample t in double precision by the direct
 * sum (the FFT gives it in single precision, with a per-block offset):
 * decisions at the threshold are taken on this value, so they do not
 * depend on the block. NaN where the filter runs past the data. */
static double
dec_exact(const detector *d, const double *y, size_t n, size_t t)
{
  size_t K = qtl_xcorr_klen(d->dec), j;
  double sum = 0.0;
  if (t < d->dec_off || t - d->dec_off + K > n)
    return NAN;
  for (j = 0; j < K; j++)
    sum += d->dec_g[j] * y[t - d->dec_off + j];
  return sum;
}

/* Score of each sample as an event onset, in the method's raw unit, NaN
 * where it cannot be computed (too near the ends). */
static quantal_status
raw_score(detector *d, const double *y, size_t n, double *z,
          quantal_diag *diag)
{
  size_t i;
  quantal_status st;
  switch (d->o.method) {
  case QUANTAL_DETECT_TEMPLATE:
  case QUANTAL_DETECT_COMBINED: {
    /* written in place: score[i + on] = criterion at latency i */
    size_t L = d->tpl->n, on = d->tpl->onset_index;
    for (i = 0; i < n && i < on; i++)
      z[i] = NAN;
    for (i = n >= L ? n - L + on + 1 : on; i < n; i++)
      z[i] = NAN;
    if (n < L)
      return QUANTAL_OK;
    return quantal_template_criterion(d->mt, y, n, z + on, NULL, diag);
  }
  case QUANTAL_DETECT_DECONV: {
    size_t K, off;
    st = deconv_ready(d, diag);
    if (st != QUANTAL_OK)
      return st;
    K = qtl_xcorr_klen(d->dec);
    off = d->dec_off;
    for (i = 0; i < n && i < off; i++)
      z[i] = NAN;
    for (i = n >= K ? n - K + off + 1 : off; i < n; i++)
      z[i] = NAN;
    if (n < K)
      return QUANTAL_OK;
    qtl_xcorr_run(d->dec, y, n, z + off, NULL);
    return QUANTAL_OK;
  }
  case QUANTAL_DETECT_THRESHOLD:
  case QUANTAL_DETECT_SLOPE: {
    for (i = 0; i < n; i++)
      z[i] = NAN;
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
 * to the earliest sample, so a plateau gives one event. *next receives
 * the first sample after i that can still be one: the samples up to a
 * larger one found ahead of i, or up to i + sep when none is, are not
 * maxima (each has a larger sample, or i itself, within sep), so the
 * callers' scans skip them rather than testing each one over its whole
 * window (the long stretches above threshold of large evoked responses
 * made this 4 % of detect on their recordings). */
static int
is_peak(const double *z, size_t n, size_t i, size_t sep, double pol,
        double thr, size_t *next)
{
  double v = pol * z[i];
  size_t j, lo = i > sep ? i - sep : 0, hi = i + sep < n ? i + sep : n - 1;
  *next = i + 1;
  if (!(v >= thr))
    return 0;
  for (j = i + 1; j <= hi; j++)
    if (pol * z[j] > v) {
      *next = j;
      return 0;
    }
  *next = hi + 1;
  for (j = lo; j < i; j++)
    if (pol * z[j] >= v)
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

/* The first index j >= i with pol z[j] >= thr, n if none (NaN never
 * passes). The candidate scans call it: almost every sample fails. */
static size_t
next_at_least_scalar(const double *z, size_t i, size_t n, double pol,
                     double thr)
{
  for (; i < n; i++)
    if (pol * z[i] >= thr)
      return i;
  return n;
}

#ifdef QTL_X86_SIMD
#include <immintrin.h>
/* Eight samples a step: the products and comparisons are those of the
 * scalar loop, so the answer is the same. */
__attribute__((target("avx2"))) static size_t
next_at_least_avx2(const double *z, size_t i, size_t n, double pol,
                   double thr)
{
  const __m256d p = _mm256_set1_pd(pol), t = _mm256_set1_pd(thr);
  for (; i + 8 <= n; i += 8) {
    __m256d a = _mm256_mul_pd(p, _mm256_loadu_pd(z + i));
    __m256d b = _mm256_mul_pd(p, _mm256_loadu_pd(z + i + 4));
    int ma = _mm256_movemask_pd(_mm256_cmp_pd(a, t, _CMP_GE_OQ));
    int mb = _mm256_movemask_pd(_mm256_cmp_pd(b, t, _CMP_GE_OQ));
    if (ma | mb)
      return i + (size_t)__builtin_ctz((unsigned)(ma | (mb << 4)));
  }
  return next_at_least_scalar(z, i, n, pol, thr);
}
#endif

static size_t
next_at_least(const double *z, size_t i, size_t n, double pol, double thr)
{
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2())
    return next_at_least_avx2(z, i, n, pol, thr);
#endif
  return next_at_least_scalar(z, i, n, pol, thr);
}

/* The first j >= i with x[j] not finite, n if none: the gap scans of
 * every block. */
static size_t
first_nonfinite_scalar(const double *x, size_t i, size_t n)
{
  for (; i < n; i++)
    if (!isfinite(x[i]))
      return i;
  return n;
}

#ifdef QTL_X86_SIMD
/* x - x is 0 for a finite x and NaN for an infinite or NaN one. */
__attribute__((target("avx2"))) static size_t
first_nonfinite_avx2(const double *x, size_t i, size_t n)
{
  for (; i + 8 <= n; i += 8) {
    __m256d a = _mm256_loadu_pd(x + i), b = _mm256_loadu_pd(x + i + 4);
    __m256d z = _mm256_setzero_pd();
    int ma = _mm256_movemask_pd(
        _mm256_cmp_pd(_mm256_sub_pd(a, a), z, _CMP_NEQ_UQ));
    int mb = _mm256_movemask_pd(
        _mm256_cmp_pd(_mm256_sub_pd(b, b), z, _CMP_NEQ_UQ));
    if (ma | mb)
      return i + (size_t)__builtin_ctz((unsigned)(ma | (mb << 4)));
  }
  return first_nonfinite_scalar(x, i, n);
}
#endif

static size_t
first_nonfinite(const double *x, size_t i, size_t n)
{
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2())
    return first_nonfinite_avx2(x, i, n);
#endif
  return first_nonfinite_scalar(x, i, n);
}

/* y[j] -= a t[j], j < n: a fitted event taken off the trace. The AVX2
 * version does the same multiply and subtract per element (no FMA). */
static void
sub_scaled_scalar(double *y, const double *t, double a, size_t n)
{
  size_t j;
  for (j = 0; j < n; j++)
    y[j] -= a * t[j];
}

#ifdef QTL_X86_SIMD
__attribute__((target("avx2"))) static void
sub_scaled_avx2(double *y, const double *t, double a, size_t n)
{
  __m256d va = _mm256_set1_pd(a);
  size_t j;
  for (j = 0; j + 4 <= n; j += 4)
    _mm256_storeu_pd(y + j,
                     _mm256_sub_pd(_mm256_loadu_pd(y + j),
                                   _mm256_mul_pd(va, _mm256_loadu_pd(t + j))));
  sub_scaled_scalar(y + j, t + j, a, n - j);
}
#endif

static void
sub_scaled(double *y, const double *t, double a, size_t n)
{
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2()) {
    sub_scaled_avx2(y, t, a, n);
    return;
  }
#endif
  sub_scaled_scalar(y, t, a, n);
}

static void fast_fit_best(const detector *d, const double *x, size_t lo,
                          size_t hi, quantal_template_fit *fit);

typedef struct cand {
  size_t pos;    /* onset, sample index in the run */
  double score;  /* in score SDs, signed */
} cand;

/* The first i >= from with pol z[i] >= thr, n if none: by next_at_least
 * over all of z, or (sp set) over the spans where the screen passed,
 * shifted by off, outside which z holds only NaN. Calls come with from
 * increasing. */
typedef struct hit_scan {
  const qtl_span *sp;
  size_t n, k, off;
} hit_scan;

static size_t
next_cand(hit_scan *h, const double *z, size_t from, size_t n, double pol,
          double thr)
{
  if (h->sp == NULL)
    return next_at_least(z, from, n, pol, thr);
  for (; h->k < h->n; h->k++) {
    size_t lo = h->sp[h->k].lo + h->off, hi = h->sp[h->k].hi + h->off, i;
    if (hi > n)
      hi = n;
    if (hi <= from)
      continue;
    for (i = lo > from ? lo : from; i < hi; i++)
      if (pol * z[i] >= thr)
        return i;
  }
  return n;
}

/* Candidates in y[0..n): positions and scores. */
static quantal_status
find_candidates(detector *d, const double *y, size_t n, double *z, int have_z,
                cand **out, size_t *nc, quantal_diag *diag)
{
  size_t i, cap = 0, k = 0, nx = 0;
  cand *c = NULL;
  double pol = (double)d->pol;
  hit_scan hs;
  quantal_status st = have_z ? QUANTAL_OK : raw_score(d, y, n, z, diag);
  int classic = d->o.method == QUANTAL_DETECT_THRESHOLD ||
                d->o.method == QUANTAL_DETECT_SLOPE;
  /* The float FFT score is screened 1e-3 below the threshold; the
   * template method then decides on the exact double-precision
   * criterion, so block boundaries cannot flip a decision. */
  double thr = classic ? d->thr
               : d->o.method == QUANTAL_DETECT_COMBINED
                   ? d->cand_thr * (1.0 - 1e-3)
                   : d->thr * (1.0 - 1e-3);
  if (st != QUANTAL_OK)
    return st;
  hs.sp = NULL;
  hs.n = hs.k = hs.off = 0;
  if (have_z || !d->mt_scaled || classic ||
      d->o.method == QUANTAL_DETECT_DECONV) {
    double inv = 1.0 / d->score_sd;
    for (i = 0; i < n; i++)
      z[i] *= inv;
  } else if (qtl_template_matcher_hits(d->mt, &hs.sp, &hs.n) == 0) {
    /* the matcher's outputs start at z + onset_index */
    hs.off = d->tpl->onset_index;
  } else {
    hs.sp = NULL;
  }
  /* Almost every sample fails the threshold: next_at_least skips them
   * eight at a time, or only the spans where the screen passed are
   * looked at. */
  for (i = next_cand(&hs, z, 0, n, pol, thr); i < n;
       i = next_cand(&hs, z, nx, n, pol, thr)) {
    double sc;
    size_t pos;
    nx = i + 1;
    if (classic) {
      /* The classical detector: one event per excursion beyond the
       * threshold, at the excursion's extreme; the excursion ends only
       * below half the threshold (hysteresis), so the noise on a decay
       * does not make a second crossing. */
      size_t j = i, best = i;
      while (j < n && pol * z[j] >= 0.5 * d->thr) {
        if (pol * z[j] > pol * z[best])
          best = j;
        j++;
      }
      i = j;
      nx = i + 1;
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
    if (!is_peak(z, n, i, d->sep, pol, thr, &nx))
      continue;
    sc = z[i];
    pos = candidate_onset(d, z, i);
    if (d->o.method == QUANTAL_DETECT_DECONV) {
      /* the float score screens; the exact value decides */
      sc = dec_exact(d, y, n, i) / d->score_sd;
      if (!(pol * sc >= d->thr))
        continue;
    }
    if (d->o.method == QUANTAL_DETECT_TEMPLATE ||
        d->o.method == QUANTAL_DETECT_COMBINED) {
      double cthr = d->o.method == QUANTAL_DETECT_TEMPLATE ? d->thr
                                                           : d->cand_thr;
      quantal_template_fit f;
      size_t on = d->tpl->onset_index, a = pos - on;
      size_t lo = a > 2 ? a - 2 : 0, hi = a + 2;
      if (hi + d->tpl->n > n)
        hi = n - d->tpl->n;
      if (lo > hi)
        continue;
      fast_fit_best(d, y, lo, hi, &f);
      sc = f.criterion / d->score_sd;
      pos = f.index + on;
      if (!(pol * sc >= cthr))
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
 * (its grid kept in *bg when not NULL, for qtl_baseline_at), hum
 * removed. */
static quantal_status
preprocess(detector *d, double *x, size_t n, uint64_t f0,
           qtl_baseline_grid *bg, quantal_diag *diag)
{
  quantal_filter_options fo = d->o.filter;
  fo.lowpass_hz = 0.0; /* each method smooths in its own way */
  return qtl_filter_block_grid(x, n, f0, d->rate_hz, &fo, NULL, bg, diag);
}

/* ---- the combined detector -------------------------------------------- */

static int
cand_cmp(const void *a, const void *b)
{
  const cand *x = a, *y = b;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Candidates of the deconvolution (Pernia-Andrade et al. 2012) added to
 * the template's: the deconvolved trace is sharp, so it separates the
 * first event of a close pair, which the template criterion (smeared over
 * a whole template window) shows only as a shoulder. Those within sep/2
 * of a template candidate are dropped. */
static quantal_status
add_deconv_candidates(detector *d, const double *y, size_t n, double *z,
                      cand **c, size_t *nc, quantal_diag *diag)
{
  size_t i, k = *nc, cap = *nc, j, L = d->tpl->n, on = d->tpl->onset_index,
         nx;
  double pol = (double)d->pol, thr = COMBINED_DECONV * d->thr;
  cand *cc = *c;
  quantal_status st;
  hit_scan hs;
  thr *= d->dec_sd; /* compared with the raw score */
  /* the correlation records where its outputs pass, when it can */
  qtl_xcorr_screen(d->dec, thr * (1.0 - 1e-3), d->pol);
  d->o.method = QUANTAL_DETECT_DECONV;
  st = raw_score(d, y, n, z, diag);
  d->o.method = QUANTAL_DETECT_COMBINED;
  hs.sp = NULL;
  hs.n = hs.k = 0;
  hs.off = d->dec_off;
  if (st == QUANTAL_OK && qtl_xcorr_hits(d->dec, &hs.sp, &hs.n) != 0)
    hs.sp = NULL;
  qtl_xcorr_screen(d->dec, 0.0, d->pol);
  if (st != QUANTAL_OK)
    return st;
  j = 0;
  for (i = next_cand(&hs, z, on, n, pol, thr * (1.0 - 1e-3));
       i + L - on <= n;
       i = next_cand(&hs, z, nx, n, pol, thr * (1.0 - 1e-3))) {
    double ex;
    if (!is_peak(z, n, i, d->dec_sep, pol, thr * (1.0 - 1e-3), &nx))
      continue;
    /* the float score screens; the exact value decides */
    ex = dec_exact(d, y, n, i);
    if (!(pol * ex >= thr))
      continue;
    while (j < *nc && cc[j].pos + d->dec_sep < i)
      j++;
    if (j < *nc && cc[j].pos <= i + d->dec_sep)
      continue;
    if (k == cap) {
      size_t nc2 = cap ? 2 * cap : 256;
      cand *c2 = realloc(cc, nc2 * sizeof *c2);
      if (c2 == NULL)
        return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
      cc = c2;
      *c = cc;
      cap = nc2;
    }
    cc[k].pos = i;
    cc[k].score = ex / d->dec_sd;
    k++;
  }
  qsort(cc, k, sizeof *cc, cand_cmp);
  *nc = k;
  return QUANTAL_OK;
}

/* A candidate of the combined method. */
typedef struct fev {
  size_t a0;    /* candidate latency (index of the template's start) */
  size_t a;     /* fitted latency, within a0 +- 2 */
  double amp;   /* fitted scale, in the unit of the trace */
  double crit;  /* criterion in score SDs, neighbours subtracted */
  double se;    /* SE of that fit (CB97 eq. 4) */
  double mcrit; /* marginal criterion, in score SDs (joint_test) */
  int alive;
} fev;

/* r[lo..lo+m) minus the fitted templates of the live candidates of
 * e[0..ne) other than skip (skip = ne: all of them): formed in buf[0..m)
 * and returned, or, when none of them reaches the window (an isolated
 * event, the usual case), r + lo itself, with no copy. */
static const double *
minus_neighbours(const detector *d, const double *r, size_t lo, size_t m,
                 const fev *e, size_t ne, size_t skip, double *buf)
{
  size_t i;
  for (i = 0; i < ne; i++)
    if (i != skip && e[i].alive && e[i].amp != 0.0 && e[i].a < lo + m &&
        e[i].a + d->te_n > lo)
      break;
  if (i == ne)
    return r + lo;
  memcpy(buf, r + lo, m * sizeof *buf);
  for (i = 0; i < ne; i++) {
    size_t j0, j1;
    if (i == skip || !e[i].alive || e[i].amp == 0.0)
      continue;
    /* samples lo + j with 0 <= lo + j - a < te_n */
    j0 = e[i].a > lo ? e[i].a - lo : 0;
    j1 = e[i].a + d->te_n > lo ? e[i].a + d->te_n - lo : 0;
    if (j1 > m)
      j1 = m;
    if (j1 > j0)
      sub_scaled(buf + j0, d->te + (lo + j0 - e[i].a), e[i].amp, j1 - j0);
  }
  return buf;
}

/* quantal_template_fit_best in one pass per latency: with the centred
 * template tc (sum tc = 0) the cross term sum tc d needs no centring of
 * the data, and sum (d - d0)^2 about the first sample gives the data's
 * sum of squares without cancellation (the trace is already
 * baseline-free). Every sum runs in four lanes (lane l takes k = l mod 4,
 * the rest goes to lane 0, then (l0 + l1) + (l2 + l3)): instruction-level
 * parallelism in the scalar loops, and the AVX2 version below adds the
 * same terms in the same order, so both give the same bits. The CB97
 * criterion (eqs. 2-4), as in quantal_template_fit_at. */
static void
ffb_finish(const detector *d, size_t i, double std_, double s1, double s2,
           double d0, int *have, quantal_template_fit *fit)
{
  size_t L = d->tpl->n;
  double md = s1 / (double)L, sdd = s2 - s1 * md, sc = std_ / d->t_stt;
  double sse = sdd - sc * std_, se, cr;
  if (sse < 0.0)
    sse = 0.0;
  se = sqrt(sse / (double)(L - 1));
  cr = se > 0.0 ? sc / se : (sc > 0 ? HUGE_VAL : -HUGE_VAL);
  if (!*have || d->pol * cr > d->pol * fit->criterion) {
    fit->index = i;
    fit->scale = sc;
    fit->offset = d0 + md - sc * d->t_mean;
    fit->sse = sse;
    fit->se = se;
    fit->scale_se = se / sqrt(d->t_stt);
    fit->criterion = cr;
    *have = 1;
  }
}

static void
fast_fit_best_scalar(const detector *d, const double *x, size_t lo,
                     size_t hi, quantal_template_fit *fit)
{
  size_t L = d->tpl->n, i, k, l, L4 = L & ~(size_t)3;
  const double *tc = d->tc;
  double d0 = x[lo], a1[4] = {0}, a2[4] = {0}, s1, s2;
  int have = 0;
  /* sum (d - d0) and sum (d - d0)^2 slide from one latency to the next;
   * only the cross term is summed afresh */
  for (k = 0; k < L4; k += 4)
    for (l = 0; l < 4; l++) {
      double e0 = x[lo + k + l] - d0;
      a1[l] += e0;
      a2[l] += e0 * e0;
    }
  for (; k < L; k++) {
    double e0 = x[lo + k] - d0;
    a1[0] += e0;
    a2[0] += e0 * e0;
  }
  s1 = (a1[0] + a1[1]) + (a1[2] + a1[3]);
  s2 = (a2[0] + a2[1]) + (a2[2] + a2[3]);
  for (i = lo; i <= hi; i++) {
    const double *v = x + i;
    double c[4] = {0};
    if (i > lo) {
      double vo = x[i - 1] - d0, vi = x[i - 1 + L] - d0;
      s1 += vi - vo;
      s2 += vi * vi - vo * vo;
    }
    for (k = 0; k < L4; k += 4)
      for (l = 0; l < 4; l++)
        c[l] += tc[k + l] * v[k + l];
    for (; k < L; k++)
      c[0] += tc[k] * v[k];
    ffb_finish(d, i, (c[0] + c[1]) + (c[2] + c[3]), s1, s2, d0, &have,
               fit);
  }
}

#ifdef QTL_X86_SIMD
__attribute__((target("avx2"))) static void
fast_fit_best_avx2(const detector *d, const double *x, size_t lo, size_t hi,
                   quantal_template_fit *fit)
{
  size_t L = d->tpl->n, i, k, L4 = L & ~(size_t)3;
  const double *tc = d->tc;
  double d0 = x[lo], s1, s2, l[4];
  __m256d a1 = _mm256_setzero_pd(), a2 = a1, vd0 = _mm256_set1_pd(d0);
  int have = 0;
  for (k = 0; k < L4; k += 4) {
    __m256d e0 = _mm256_sub_pd(_mm256_loadu_pd(x + lo + k), vd0);
    a1 = _mm256_add_pd(a1, e0);
    a2 = _mm256_add_pd(a2, _mm256_mul_pd(e0, e0));
  }
  /* the tail in lane 0, in order, as in the scalar loop */
  _mm256_storeu_pd(l, a1);
  for (; k < L; k++)
    l[0] += x[lo + k] - d0;
  s1 = (l[0] + l[1]) + (l[2] + l[3]);
  _mm256_storeu_pd(l, a2);
  for (k = L4; k < L; k++) {
    double e0 = x[lo + k] - d0;
    l[0] += e0 * e0;
  }
  s2 = (l[0] + l[1]) + (l[2] + l[3]);
  for (i = lo; i <= hi;) {
    /* Up to six latencies at once (the callers ask for five), each in
     * its own accumulator: one chain of additions per latency had bound
     * the loop by their latency. Each sum is formed in the same order as
     * before (and as in the scalar loop), so the results are the same to
     * the bit. */
    size_t nl = hi - i + 1 < 6 ? hi - i + 1 : 6, j;
    const double *v = x + i;
    __m256d c[6];
    double cs[6];
    for (j = 0; j < 6; j++)
      c[j] = _mm256_setzero_pd();
#define FFB_ACC(j)                                                           \
  c[j] = _mm256_add_pd(c[j], _mm256_mul_pd(t, _mm256_loadu_pd(v + k + j)))
    if (nl == 5) /* what the callers ask: the loop without the tests */
      for (k = 0; k < L4; k += 4) {
        __m256d t = _mm256_loadu_pd(tc + k);
        FFB_ACC(0);
        FFB_ACC(1);
        FFB_ACC(2);
        FFB_ACC(3);
        FFB_ACC(4);
      }
    else
      for (k = 0; k < L4; k += 4) {
        __m256d t = _mm256_loadu_pd(tc + k);
        FFB_ACC(0);
        if (nl > 1)
          FFB_ACC(1);
        if (nl > 2)
          FFB_ACC(2);
        if (nl > 3)
          FFB_ACC(3);
        if (nl > 4)
          FFB_ACC(4);
        if (nl > 5)
          FFB_ACC(5);
      }
#undef FFB_ACC
    for (j = 0; j < nl; j++) {
      const double *vj = v + j;
      /* lane 0 continues with the tail terms, one at a time */
      _mm256_storeu_pd(l, c[j]);
      for (k = L4; k < L; k++)
        l[0] += tc[k] * vj[k];
      cs[j] = (l[0] + l[1]) + (l[2] + l[3]);
    }
    for (j = 0; j < nl; j++, i++) {
      if (i > lo) {
        double vo = x[i - 1] - d0, vi = x[i - 1 + L] - d0;
        s1 += vi - vo;
        s2 += vi * vi - vo * vo;
      }
      ffb_finish(d, i, cs[j], s1, s2, d0, &have, fit);
    }
  }
}
#endif

static void
fast_fit_best(const detector *d, const double *x, size_t lo, size_t hi,
              quantal_template_fit *fit)
{
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2()) {
    fast_fit_best_avx2(d, x, lo, hi, fit);
    return;
  }
#endif
  fast_fit_best_scalar(d, x, lo, hi, fit);
}

/* Fit the live candidates of a cluster jointly: each one's optimally
 * scaled template (Clements & Bekkers 1997, eqs. 2-4, with its own
 * offset and a latency free within +-2 samples of the candidate) on the
 * trace minus the current fits of all the others, sweep after sweep
 * (Gauss-Seidel, i.e. backfitting of an additive model: Hastie &
 * Tibshirani 1990, ch. 4) until nothing moves. Each criterion then
 * scores an event as if it were alone, so the first of a close pair is
 * no longer hidden by the second one inflating the SE of its fit. */
static void
backfit(const detector *d, const double *r, size_t n, fev *e, size_t ne,
        double *buf)
{
  size_t L = d->tpl->n, k, sweep, live = 0;
  for (k = 0; k < ne; k++) {
    e[k].amp = 0.0;
    e[k].a = e[k].a0;
    e[k].crit = 0.0;
    live += e[k].alive != 0;
  }
  for (sweep = 0; sweep < BACKFIT_SWEEPS; sweep++) {
    double dmax = 0.0, amax = 0.0;
    int moved = 0;
    for (k = 0; k < ne; k++) {
      quantal_template_fit f;
      size_t lo = e[k].a0 > 2 ? e[k].a0 - 2 : 0, hi = e[k].a0 + 2;
      if (!e[k].alive)
        continue;
      if (hi + L > n)
        hi = n - L;
      fast_fit_best(d, minus_neighbours(d, r, lo, hi - lo + L, e, ne, k, buf),
                    0, hi - lo, &f);
      if (lo + f.index != e[k].a)
        moved = 1;
      if (fabs(f.scale - e[k].amp) > dmax)
        dmax = fabs(f.scale - e[k].amp);
      if (fabs(f.scale) > amax)
        amax = fabs(f.scale);
      e[k].a = lo + f.index;
      e[k].amp = f.scale;
      e[k].crit = f.criterion / d->score_sd;
      e[k].se = f.se;
    }
    if (live <= 1 || (!moved && dmax <= 1e-6 * amax))
      break;
  }
}

/* In-place inverse of the symmetric positive definite m x m matrix a by
 * Gauss-Jordan elimination with diagonal pivots; 0 if it is singular. */
static int
spd_invert(double *a, size_t m)
{
  size_t i, j, k;
  for (k = 0; k < m; k++) {
    double p = a[k * m + k];
    if (!(p > 1e-12 * (1.0 + fabs(a[0]))))
      return 0;
    for (j = 0; j < m; j++)
      a[k * m + j] /= p;
    a[k * m + k] = 1.0 / p;
    for (i = 0; i < m; i++) {
      double f;
      if (i == k)
        continue;
      f = a[i * m + k];
      if (f == 0.0)
        continue;
      for (j = 0; j < m; j++)
        if (j != k)
          a[i * m + j] -= f * a[k * m + j];
      a[i * m + k] = -f * a[k * m + k];
    }
  }
  return 1;
}

/* Sum of x[0..n) and dot product of x and y in four interleaved chains
 * (element j in chain j mod 4), added (c0 + c1) + (c2 + c3): one chain
 * waited on the latency of each addition, which made the joint test's
 * normal equations 3 % of detect. Plain C, so the same bits on every
 * machine. */
static double
sum_chains(const double *x, size_t n)
{
  double c0 = 0.0, c1 = 0.0, c2 = 0.0, c3 = 0.0;
  size_t j;
  for (j = 0; j + 4 <= n; j += 4) {
    c0 += x[j];
    c1 += x[j + 1];
    c2 += x[j + 2];
    c3 += x[j + 3];
  }
  for (; j < n; j++)
    c0 += x[j];
  return (c0 + c1) + (c2 + c3);
}

static double
dot_chains(const double *x, const double *y, size_t n)
{
  double c0 = 0.0, c1 = 0.0, c2 = 0.0, c3 = 0.0;
  size_t j;
  for (j = 0; j + 4 <= n; j += 4) {
    c0 += x[j] * y[j];
    c1 += x[j + 1] * y[j + 1];
    c2 += x[j + 2] * y[j + 2];
    c3 += x[j + 3] * y[j + 3];
  }
  for (; j < n; j++)
    c0 += x[j] * y[j];
  return (c0 + c1) + (c2 + c3);
}

/* Marginal criterion of each live candidate of a cluster: the joint
 * least-squares fit of an offset and all the live templates (latencies
 * from the backfit) over the cluster's span gives amplitude b_k and the
 * k-th diagonal element of (X'X)^-1; b_k^2 / (X'X)^-1_kk is what the SSE
 * would grow by without candidate k (e.g. Seber & Lee 2003, Linear
 * Regression Analysis, sec. 4.3). In units of the CB97 criterion of a
 * lone event, b_k / (se_k sqrt(stt (X'X)^-1_kk)) with stt = sum (T -
 * mean T)^2: equal to the criterion for an isolated event, and small for
 * two candidates splitting one event (each could take the other's
 * place), so such splits are dropped while a real pair is kept. */
static quantal_status
joint_test(const detector *d, const double *r, size_t n, fev *e, size_t ne,
           double stt, quantal_diag *diag)
{
  size_t idx[CLUSTER_MAX], m = 0, p, i, k, s0, s1;
  double *g, *h;
  for (k = 0; k < ne; k++)
    if (e[k].alive)
      idx[m++] = k;
  if (m == 0)
    return QUANTAL_OK;
  if (m == 1) {
    e[idx[0]].mcrit = e[idx[0]].crit;
    return QUANTAL_OK;
  }
  p = m + 1;
  s0 = e[idx[0]].a;
  s1 = e[idx[m - 1]].a + d->tpl->n;
  if (s1 > n)
    s1 = n;
  g = calloc(p * p + p, sizeof *g);
  if (g == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  h = g + p * p;
  /* normal equations: column 0 the offset, column i + 1 template i */
  g[0] = (double)(s1 - s0);
  h[0] = sum_chains(r + s0, s1 - s0);
  for (i = 0; i < m; i++) {
    size_t ai = e[idx[i]].a, ei = ai + d->te_n < s1 ? ai + d->te_n : s1;
    g[i + 1] = g[(i + 1) * p] = sum_chains(d->te, ei - ai);
    h[i + 1] = dot_chains(d->te, r + ai, ei - ai);
    for (k = i; k < m; k++) {
      size_t ak = e[idx[k]].a, ek = ak + d->te_n < s1 ? ak + d->te_n : s1;
      size_t lo = ai > ak ? ai : ak, hi = ei < ek ? ei : ek;
      g[(i + 1) * p + k + 1] = g[(k + 1) * p + i + 1] =
          hi > lo ? dot_chains(d->te + (lo - ai), d->te + (lo - ak), hi - lo)
                  : 0.0;
    }
  }
  if (!spd_invert(g, p)) {
    /* collinear: no candidate stands on its own */
    for (i = 0; i < m; i++)
      e[idx[i]].mcrit = 0.0;
    free(g);
    return QUANTAL_OK;
  }
  for (i = 0; i < m; i++) {
    fev *f = &e[idx[i]];
    double b = 0.0, v = g[(i + 1) * p + i + 1] * stt;
    for (k = 0; k < p; k++)
      b += g[(i + 1) * p + k] * h[k];
    f->mcrit = f->se > 0.0 && v > 0.0
                   ? b / (f->se * sqrt(v)) / d->score_sd : 0.0;
    /* never above the leave-one-in criterion */
    if (d->pol * f->mcrit > d->pol * f->crit)
      f->mcrit = f->crit;
  }
  free(g);
  return QUANTAL_OK;
}

/* Amplitude of the event whose template window starts at x[0] (t->n
 * samples): x ~ scale T + c + b (k - mean k), i.e. the optimally scaled
 * template of Clements & Bekkers (1997) with a straight local baseline
 * instead of a constant one, so that the slow (1/f) wander and drift
 * left in the window, or the error in a subtracted neighbour's tail, do
 * not move the amplitude. Returns scale (the amplitude: T peaks at 1);
 * *base_pk is the fitted baseline at sample k_pk of the window. */
static double
amp_line_fit(const quantal_template *t, const double *x, size_t k_pk,
             double *base_pk)
{
  size_t L = t->n, k;
  double mt = 0.0, mx = 0.0, mk = 0.5 * (double)(L - 1);
  double s00 = 0.0, s01 = 0.0, s11 = 0.0, r0 = 0.0, r1 = 0.0, det, sc, b;
  for (k = 0; k < L; k++) {
    mt += t->y[k];
    mx += x[k];
  }
  mt /= (double)L;
  mx /= (double)L;
  for (k = 0; k < L; k++) {
    double u0 = t->y[k] - mt, u1 = (double)k - mk, v = x[k] - mx;
    s00 += u0 * u0;
    s01 += u0 * u1;
    s11 += u1 * u1;
    r0 += u0 * v;
    r1 += u1 * v;
  }
  /* the 2 x 2 centred normal equations, by Cramer's rule */
  det = s00 * s11 - s01 * s01;
  if (!(det > 0.0)) {
    sc = s00 > 0.0 ? r0 / s00 : 0.0;
    b = 0.0;
  } else {
    sc = (r0 * s11 - r1 * s01) / det;
    b = (r1 * s00 - r0 * s01) / det;
  }
  *base_pk = mx - sc * mt + b * ((double)k_pk - mk);
  return sc;
}

/* The samples a run's residual has changed, as sorted, disjoint spans
 * [lo, hi), their values before the change kept at the same indices in
 * orig: the residual is formed in the trace itself, and only what the
 * fitted events touch is copied (a copy of the whole run was 4 % of
 * detect). */
typedef struct saved {
  qtl_span *sp;
  size_t ns, cap;
  double *orig;
} saved;

/* Keep y[a..e) in orig where it is not kept yet (before y changes
 * there). 0, or -1 when memory runs out. */
static int
save_span(saved *sv, const double *y, size_t a, size_t e)
{
  size_t k = sv->ns, j, pos = a, lo, hi;
  if (a >= e)
    return 0;
  /* the spans that overlap or touch [a, e): k .. j - 1 */
  while (k > 0 && sv->sp[k - 1].hi >= a)
    k--;
  for (j = k; j < sv->ns && sv->sp[j].lo <= e; j++) {
    if (pos < sv->sp[j].lo)
      memcpy(sv->orig + pos, y + pos, (sv->sp[j].lo - pos) * sizeof *y);
    if (sv->sp[j].hi > pos)
      pos = sv->sp[j].hi;
  }
  if (pos < e)
    memcpy(sv->orig + pos, y + pos, (e - pos) * sizeof *y);
  lo = k < j && sv->sp[k].lo < a ? sv->sp[k].lo : a;
  hi = j > k && sv->sp[j - 1].hi > e ? sv->sp[j - 1].hi : e;
  if (k == j) {
    /* a new span at k */
    if (sv->ns == sv->cap) {
      size_t nc = sv->cap ? 2 * sv->cap : 64;
      qtl_span *p = realloc(sv->sp, nc * sizeof *p);
      if (p == NULL)
        return -1;
      sv->sp = p;
      sv->cap = nc;
    }
    memmove(sv->sp + k + 1, sv->sp + k, (sv->ns - k) * sizeof *sv->sp);
    sv->ns++;
  } else if (j > k + 1) {
    memmove(sv->sp + k + 1, sv->sp + j, (sv->ns - j) * sizeof *sv->sp);
    sv->ns -= j - k - 1;
  }
  sv->sp[k].lo = lo;
  sv->sp[k].hi = hi;
  return 0;
}

/* y[i] as it was before the residual changed it. */
static double
saved_value(const saved *sv, const double *y, size_t i)
{
  size_t lo = 0, hi = sv->ns;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (sv->sp[mid].hi <= i)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < sv->ns && sv->sp[lo].lo <= i ? sv->orig[i] : y[i];
}

/* The combined method on the finite stretch y[0..n): candidates are the
 * local maxima of the template criterion above a permissive threshold;
 * candidates whose template windows overlap form a cluster, fitted
 * jointly (backfit); the weakest candidate under the threshold is
 * dropped and the rest refitted until all pass. Each event is then
 * measured on the trace minus every neighbour's fit (earlier ones and
 * later ones), so its amplitude and baseline are its own. */
static quantal_status
process_combined(detector *d, double *y, size_t n, uint64_t f0,
                 const qtl_baseline_grid *bg, uint64_t own_lo, uint64_t own_hi,
                 quantal_diag *diag)
{
  double *z = NULL, *r = y, *buf = NULL, *mb = NULL, pol = d->pol;
  saved sv = {NULL, 0, 0, NULL};
  cand *c = NULL;
  fev *e = NULL;
  size_t nc = 0, k0, k, L = d->tpl->n, on = d->tpl->onset_index, mcap;
  quantal_status st;
  double prev_end = -1.0; /* sample index where the last event's window
                             ends, for the overlap flag */
  quantal_measure_options mo = d->o.measure;

  mo.fixed_onset = 1;
  /* one buffer: the scores, and once the candidates are known the values
   * the residual (formed in y itself) replaced */
  z = sv.orig = work_buffer(d, n);
  buf = malloc((L + 8) * sizeof *buf);
  mcap = 4 * L + d->te_n;
  mb = malloc(mcap * sizeof *mb);
  if (z == NULL || buf == NULL || mb == NULL) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    goto done;
  }
  st = find_candidates(d, y, n, z, 0, &c, &nc, diag);
  if (st != QUANTAL_OK)
    goto done;
  st = add_deconv_candidates(d, y, n, z, &c, &nc, diag);
  if (st != QUANTAL_OK)
    goto done;
  z = NULL;
  e = malloc((nc ? nc : 1) * sizeof *e);
  if (e == NULL) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    goto done;
  }
  for (k = 0; k < nc; k++) {
    e[k].a0 = c[k].pos - on;
    e[k].alive = 1;
  }
  /* r (= y): the trace minus the fits of the events of earlier
   * clusters. */
  for (k0 = 0; k0 < nc;) {
    size_t k1 = k0 + 1, ne, i;
    /* A cluster: candidates whose windows (plus the latency slack)
     * overlap the previous one's. */
    while (k1 < nc && k1 - k0 < CLUSTER_MAX &&
           e[k1].a0 < e[k1 - 1].a0 + L + 4)
      k1++;
    ne = k1 - k0;
    for (;;) {
      size_t worst = ne;
      backfit(d, r, n, e + k0, ne, buf);
      st = joint_test(d, r, n, e + k0, ne, d->t_stt, diag);
      if (st != QUANTAL_OK)
        goto done;
      for (i = 0; i < ne; i++)
        if (e[k0 + i].alive &&
            (worst == ne ||
             pol * e[k0 + i].mcrit < pol * e[k0 + worst].mcrit))
          worst = i;
      if (worst == ne || pol * e[k0 + worst].mcrit >= d->thr)
        break;
      e[k0 + worst].alive = 0;
    }
    /* Measure each survivor on r minus its neighbours' fits. */
    for (i = 0; i < ne; i++) {
      fev *f = &e[k0 + i];
      quantal_event ev;
      size_t lo, hi, end, j, onset, pk;
      double tail;
      const double *mv; /* r minus the neighbours, on [lo, hi) */
      if (!f->alive)
        continue;
      lo = f->a > L ? f->a - L : 0;
      hi = f->a + 3 * L < n ? f->a + 3 * L : n;
      if (hi - lo > mcap)
        hi = lo + mcap;
      mv = minus_neighbours(d, r, lo, hi - lo, e + k0, ne, i, mb);
      /* The event ends at the next survivor of its cluster or at the
       * next cluster's first candidate (not subtracted from mv). */
      end = hi - lo;
      for (j = k0 + i + 1; j < nc; j++)
        if (j >= k1 || e[j].alive) {
          size_t o2 = (j < k1 ? e[j].a : e[j].a0) + on;
          if (o2 > f->a + on && o2 < hi)
            end = o2 - lo;
          break;
        }
      st = quantal_measure_event(mv, hi - lo, d->rate_hz, 0.0,
                                 f->a + on - lo, end, d->pol, d->tpl, &mo,
                                 &ev, diag);
      if (st != QUANTAL_OK)
        goto done;
      onset = lo + (size_t)floor(ev.onset_s * d->rate_hz + 0.5);
      pk = lo + (size_t)floor(ev.peak_s * d->rate_hz + 0.5);
      if (pk >= n)
        pk = n - 1;
      /* The baseline column is the trace's own level under the peak:
       * the removed drift plus the tails of the earlier events. */
      tail = saved_value(&sv, y, pk) - r[pk];
      for (j = 0; j < i; j++) {
        const fev *g = &e[k0 + j];
        if (g->alive && pk >= g->a && pk - g->a < d->te_n)
          tail += g->amp * d->te[pk - g->a];
      }
      if (onset >= on + lo && onset - on + L <= hi) {
        double b_pk;
        ev.amplitude = amp_line_fit(d->tpl, mv + (onset - on - lo),
                                    pk - (onset - on), &b_pk);
        ev.baseline = b_pk;
      }
      ev.baseline += qtl_baseline_at(bg, f0 + pk) + tail;
      ev.overlap = prev_end >= 0.0 && (double)onset < prev_end;
      ev.criterion = f->mcrit;
      prev_end = (double)(f->a + L);
      ev.onset_s = (double)(f0 + onset) / d->rate_hz;
      ev.peak_s = (double)(f0 + pk) / d->rate_hz;
      if (f0 + f->a + on >= own_lo && f0 + f->a + on < own_hi) {
        d->n_events++;
        if (d->o.on_event && d->o.on_event(&ev, d->o.user) != 0) {
          st = qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                        "stopped by the caller");
          goto done;
        }
      }
    }
    /* Commit the cluster's fits to r for the clusters that follow. */
    for (i = 0; i < ne; i++) {
      const fev *f = &e[k0 + i];
      if (!f->alive)
        continue;
      if (f->a < n) {
        size_t len = n - f->a < d->te_n ? n - f->a : d->te_n;
        if (save_span(&sv, y, f->a, f->a + len) != 0) {
          st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
          goto done;
        }
        sub_scaled(r + f->a, d->te, f->amp, len);
      }
    }
    k0 = k1;
  }
done:
  free(c);
  free(e);
  free(buf);
  free(mb);
  free(sv.sp);
  return st;
}

/* Detect and measure the events of the finite stretch y[0..n) (frames
 * f0..f0+n of the recording, already pre-processed; base is the removed
 * baseline) and report those whose onset lies in [own_lo, own_hi). */
static quantal_status
process_run(detector *d, double *y, size_t n, uint64_t f0,
            const qtl_baseline_grid *bg,
            uint64_t own_lo, uint64_t own_hi, quantal_diag *diag)
{
  double *z = NULL, *r = NULL;
  cand *c = NULL;
  size_t nc = 0, k, j;
  quantal_status st;
  double prev_end_s = -1.0;

  if (n < d->tpl->n + 2)
    return QUANTAL_OK;
  /* The scores' FFT segments and chunks at fixed frames (det_ctx). */
  if (d->mt)
    qtl_template_matcher_phase(d->mt, f0);
  if (d->dec)
    qtl_xcorr_set_phase(d->dec, f0);
  if (d->o.method == QUANTAL_DETECT_COMBINED)
    return process_combined(d, y, n, f0, bg, own_lo, own_hi, diag);
  /* one buffer: the scores, then the residual */
  z = r = work_buffer(d, n);
  if (z == NULL) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    goto done;
  }
  st = find_candidates(d, y, n, z, 0, &c, &nc, diag);
  if (st != QUANTAL_OK)
    goto done;
  memcpy(r, y, n * sizeof *r);
  for (k = 0; k < nc; k++) {
    quantal_event ev;
    size_t end = k + 1 < nc ? c[k + 1].pos : n, on, pk;
    double tail;
    if (d->o.method == QUANTAL_DETECT_TEMPLATE) {
      /* Re-test on the residual, with the fitted earlier events removed:
       * a template of an event's decay scores above threshold just after
       * a large event (a side lobe of the criterion), while a real second
       * event on that decay still stands out from the residual. The
       * first of a run too (its residual is the trace): which event is a
       * run's first depends on where the block starts, and the two fits
       * round differently. */
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
    ev.baseline += qtl_baseline_at(bg, f0 + pk) + tail;
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
  /* The template criterion of each run (float) and its MAD SD, for the
   * template of generation zc_gen: polarity, kinetics and the final SD
   * each need it, often for the same template. */
  float **zc;
  double zc_sd;
  unsigned zc_gen;
} calib;

static void
calib_free(calib *c)
{
  size_t i;
  for (i = 0; i < c->nruns; i++) {
    free(c->runs[i].y);
    if (c->zc)
      free(c->zc[i]);
  }
  free(c->runs);
  free(c->zc);
  memset(c, 0, sizeof *c);
}

/* A run of n samples from frame f0: a copy of x, or (own) x itself, which
 * the calibration then frees. */
static quantal_status
calib_add(calib *c, double *x, size_t n, uint64_t f0, int own,
          quantal_diag *diag)
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
  if (own) {
    r->y = x;
  } else {
    r->y = malloc(n * sizeof *r->y);
    if (r->y == NULL)
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    memcpy(r->y, x, n * sizeof *r->y);
  }
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
  double *x = NULL;
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
  for (i = 0; i < ns && st == QUANTAL_OK; i++) {
    size_t m = (size_t)(starts[i] + len <= b ? len : b - starts[i]);
    if (x == NULL && (x = malloc((size_t)len * sizeof *x)) == NULL)
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    st = src_read(s, starts[i], m, x, diag);
    for (j = 0; j < m && st == QUANTAL_OK;) {
      size_t k = first_nonfinite(x, j, m);
      if (k - j >= d->tpl->n * 4) {
        /* a stretch finite throughout (the usual case) becomes the run
         * itself, without a copy */
        int own = j == 0 && k == m;
        st = preprocess(d, x + j, k - j, starts[i] + j, NULL, diag);
        if (st == QUANTAL_OK)
          st = calib_add(c, x + j, k - j, starts[i] + j, own, diag);
        if (own && st == QUANTAL_OK) {
          x = NULL;
          break;
        }
      }
      while (k < m && !isfinite(x[k]))
        k++;
      j = k;
    }
  }
  free(x);
  return st;
}

/* f[i] = (float)x[i], i < n: the calibration's cached criterion,
 * narrowed once per template (qtl_widen_float widens it for each use).
 * Four a step where AVX2 runs (each conversion one IEEE operation, so the
 * same values); the scalar loops were 5 % of calibration. */
#ifdef QTL_X86_SIMD
__attribute__((target("avx2"))) static void
to_float_avx2(float *f, const double *x, size_t n)
{
  size_t i;
  for (i = 0; i + 4 <= n; i += 4)
    _mm_storeu_ps(f + i, _mm256_cvtpd_ps(_mm256_loadu_pd(x + i)));
  for (; i < n; i++)
    f[i] = (float)x[i];
}
#endif

static void
to_float(float *f, const double *x, size_t n)
{
  size_t i;
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2()) {
    to_float_avx2(f, x, n);
    return;
  }
#endif
  for (i = 0; i < n; i++)
    f[i] = (float)x[i];
}

/* Robust SD (MAD) of the finite values of the raw score over all
 * calibration runs, from at most ~2^20 evenly spaced values. */
static quantal_status
score_values(detector *d, calib *c, double **vals, size_t *nv, float **keep,
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
    if (keep)
      to_float(keep[i], z, c->runs[i].n);
    free(z);
  }
  *vals = v;
  *nv = m;
  return QUANTAL_OK;
}

/* The template criterion of every calibration run for the current
 * template, kept in c->zc, and its MAD SD in c->zc_sd: computed once per
 * template (polarity and the first kinetics pass share the initial one;
 * the final SD may share the last). */
static quantal_status
calib_criterion(detector *d, calib *c, quantal_diag *diag)
{
  quantal_detect_method keep = d->o.method;
  double *v = NULL;
  size_t nv, i;
  quantal_status st;
  if (c->zc && c->zc_gen == d->tpl_gen)
    return QUANTAL_OK;
  if (c->zc == NULL) {
    c->zc = calloc(c->nruns ? c->nruns : 1, sizeof *c->zc);
    if (c->zc == NULL)
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    for (i = 0; i < c->nruns; i++)
      if ((c->zc[i] = malloc(c->runs[i].n * sizeof **c->zc)) == NULL)
        return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  c->zc_gen = d->tpl_gen - 1; /* invalid until complete */
  d->o.method = QUANTAL_DETECT_TEMPLATE;
  st = score_values(d, c, &v, &nv, c->zc, diag);
  d->o.method = keep;
  if (st != QUANTAL_OK)
    return st;
  c->zc_sd = nv ? qtl_mad_sd(v, nv) : NAN;
  free(v);
  c->zc_gen = d->tpl_gen;
  return QUANTAL_OK;
}

/* z[0..n) = the cached criterion of run i, in double. */
static void
calib_cached(const calib *c, size_t i, double *z)
{
  qtl_widen_float(z, c->zc[i], c->runs[i].n);
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
  mad = qtl_mad_sd_med(tmp, n, &med); /* the median once, not twice */
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
  d->tpl_gen++;
  st = quantal_template_matcher_alloc(t, &d->mt, diag);
  if (st != QUANTAL_OK)
    return st;
  /* The template extended to three times its length by the exponential
   * of its decay: what an event leaves on the samples after its window,
   * subtracted before the next events are fitted. */
  free(d->te);
  d->te_n = isfinite(t->decay_s) ? 3 * t->n : t->n;
  d->te = malloc(d->te_n * sizeof *d->te);
  if (d->te == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  {
    size_t j;
    double q = isfinite(t->decay_s)
                   ? exp(-1.0 / (t->decay_s * d->rate_hz)) : 0.0;
    for (j = 0; j < t->n; j++)
      d->te[j] = t->y[j];
    for (; j < d->te_n; j++)
      d->te[j] = d->te[j - 1] * q;
  }
  free(d->tc);
  d->tc = malloc(t->n * sizeof *d->tc);
  if (d->tc == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  {
    size_t j;
    d->t_mean = 0.0;
    d->t_stt = 0.0;
    for (j = 0; j < t->n; j++)
      d->t_mean += t->y[j];
    d->t_mean /= (double)t->n;
    for (j = 0; j < t->n; j++) {
      d->tc[j] = t->y[j] - d->t_mean;
      d->t_stt += d->tc[j] * d->tc[j];
    }
  }
  d->sep = (t->peak_index - t->onset_index);
  if (d->sep < 2)
    d->sep = 2;
  /* The deconvolution's filter is built when first used (deconv_ready):
   * the kinetics' refinement sets up to five templates and needs only the
   * last one's. */
  return QUANTAL_OK;
}

/* Polarity from the template criterion: the sign with more local
 * extremes beyond 5 SDs (MEPPs give positive, mEPSCs negative scales). */
static quantal_status
decide_polarity(detector *d, calib *c, quantal_diag *diag)
{
  double sd;
  size_t i, j, n, nx;
  double wpos = 0.0, wneg = 0.0;
  quantal_status st = calib_criterion(d, c, diag);
  if (st != QUANTAL_OK)
    return st;
  sd = c->zc_sd;
  if (!(sd > 0.0)) {
    d->pol = 1;
    return QUANTAL_OK;
  }
  for (i = 0; i < c->nruns; i++) {
    double *z = malloc(c->runs[i].n * sizeof *z);
    if (z == NULL)
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    calib_cached(c, i, z);
    /* Weighted by how far beyond 5 SDs: an event's own peak outweighs
     * the opposite-sign side lobe that a template of the wrong kinetics
     * gives on its decay. */
    n = c->runs[i].n;
    for (j = next_at_least(z, 0, n, 1.0, 5.0 * sd); j < n;
         j = next_at_least(z, nx, n, 1.0, 5.0 * sd))
      if (is_peak(z, n, j, d->sep, 1.0, 5.0 * sd, &nx))
        wpos += (z[j] / sd - 5.0) * (z[j] / sd - 5.0);
    for (j = next_at_least(z, 0, n, -1.0, 5.0 * sd); j < n;
         j = next_at_least(z, nx, n, -1.0, 5.0 * sd))
      if (is_peak(z, n, j, d->sep, -1.0, 5.0 * sd, &nx))
        wneg += (z[j] / sd + 5.0) * (z[j] / sd + 5.0);
    free(z);
  }
  d->pol = wneg > wpos ? -1 : 1;
  return QUANTAL_OK;
}

/* Residual sum of squares of the average event avg[0..n) under the
 * current kinetics: avg ~ b + A f(t - t0), f the unit-peak
 * bi-exponential, b and A by linear least squares, the onset t0 within
 * +-2 samples of where the events were aligned (sample pre). A refit is
 * kept only when it does better than this. */
static double
guess_sse(const double *avg, size_t n, double rate_hz, double rise_s,
          double decay_s, size_t pre)
{
  double best = HUGE_VAL;
  long sh;
  for (sh = -2; sh <= 2; sh++) {
    double sf = 0.0, sff = 0.0, sy = 0.0, syy = 0.0, sfy = 0.0, det;
    double a, b, sse;
    size_t k;
    if ((long)pre + sh < 0)
      continue;
    for (k = 0; k < n; k++) {
      double t = ((double)k - (double)((long)pre + sh)) / rate_hz;
      double f = quantal_template_biexp_value(t, rise_s, decay_s);
      sf += f;
      sff += f * f;
      sy += avg[k];
      syy += avg[k] * avg[k];
      sfy += f * avg[k];
    }
    det = (double)n * sff - sf * sf;
    if (!(det > 0.0))
      continue;
    a = ((double)n * sfy - sf * sy) / det;
    b = (sy - a * sf) / (double)n;
    sse = syy - 2.0 * a * sfy - 2.0 * b * sy + a * a * sff +
          2.0 * a * b * sf + (double)n * b * b;
    if (sse < best)
      best = sse;
  }
  return best;
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
    double sd, r0 = d->tpl->rise_s, d0 = d->tpl->decay_s;
    double tp = qtl_biexp_tpeak(r0, d0), *avg = NULL;
    size_t i, k, pre, win, navg = 0;
    quantal_kinetics kin;
    quantal_template *nt = NULL;
    st = calib_criterion(d, c, diag);
    if (st != QUANTAL_OK)
      break;
    sd = c->zc_sd;
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
        calib_cached(c, i, z);
        st = find_candidates(d, cr->y, cr->n, z, 1, &cc, &ncc, diag);
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
    /* Non-linear least squares has local minima: start from the guess
     * and from 3x slower and 3x faster kinetics, keep the best. */
    {
      static const double start[3] = {1.0, 3.0, 1.0 / 3.0};
      int s;
      memset(&kin, 0, sizeof kin);
      kin.sse = HUGE_VAL;
      for (s = 0; s < 3; s++) {
        quantal_kinetics k2;
        if (quantal_template_fit_kinetics(avg, win, d->rate_hz,
                                          r0 * start[s], d0 * start[s],
                                          (double)pre / d->rate_hz, &k2,
                                          NULL) == QUANTAL_OK &&
            k2.amplitude > 0.0 && k2.sse < kin.sse)
          kin = k2;
      }
      st = kin.sse < HUGE_VAL ? QUANTAL_OK : QUANTAL_EFAILED;
    }
    if (st != QUANTAL_OK || !(kin.amplitude > 0.0) ||
        kin.rise_s < 0.5 / d->rate_hz || kin.decay_s > 2.0 ||
        kin.rise_s > kin.decay_s ||
        !(kin.sse < guess_sse(avg, win, d->rate_hz, r0, d0, pre))) {
      /* keep the previous template: the guess stands */
      free(avg);
      st = QUANTAL_OK;
      break;
    }
    free(avg);
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
  if (d->o.method == QUANTAL_DETECT_TEMPLATE ||
      d->o.method == QUANTAL_DETECT_COMBINED) {
    st = calib_criterion(d, &c, diag);
    if (st != QUANTAL_OK)
      goto done;
    d->score_sd = c.zc_sd;
  } else {
    st = score_values(d, &c, &v, &nv, NULL, diag);
    if (st != QUANTAL_OK)
      goto done;
    d->score_sd = d->o.method == QUANTAL_DETECT_DECONV ? histogram_sd(v, nv)
                                                       : qtl_mad_sd(v, nv);
    free(v);
    v = NULL;
  }
  if (d->o.method == QUANTAL_DETECT_COMBINED) {
    /* The combined method also takes candidates from the deconvolution,
     * scaled like the deconvolution method's own score. */
    d->o.method = QUANTAL_DETECT_DECONV;
    st = score_values(d, &c, &v, &nv, NULL, diag);
    d->o.method = QUANTAL_DETECT_COMBINED;
    if (st != QUANTAL_OK)
      goto done;
    d->dec_sd = histogram_sd(v, nv);
    free(v);
    v = NULL;
  }
  if (!(d->score_sd > 0.0))
    st = qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                  "the detection score is flat: nothing to detect");
  if (st == QUANTAL_OK)
    st = deconv_ready(d, diag); /* the main pass's, for its margins */
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
  free(d->work);
  qtl_xcorr_free(d->dec);
  quantal_template_free(d->tpl);
  free(d->te);
  free(d->tc);
  free(d->dec_g);
}

static quantal_status
check_options(const quantal_detect_options *o, quantal_diag *diag)
{
  if ((unsigned)o->method > QUANTAL_DETECT_COMBINED)
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
  size_t i = first_nonfinite(x, 0, n);
  if (i > 0)
    d->in_gap = 0; /* x[0..i) finite */
  for (; i < n; i++) {
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
  double *x = NULL;

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
  d.cand_thr = COMBINED_CANDIDATES * d.thr;
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
  /* The main pass needs the criterion only where it may pass the
   * (candidate) threshold; the float FFT screens 1e-3 below it. */
  if (d.o.method == QUANTAL_DETECT_TEMPLATE ||
      d.o.method == QUANTAL_DETECT_COMBINED) {
    qtl_template_matcher_screen(
        d.mt,
        (d.o.method == QUANTAL_DETECT_TEMPLATE ? d.thr : d.cand_thr) *
            (1.0 - 1e-3) * d.score_sd,
        d.pol);
    /* in score SDs as written: find_candidates' scaling pass is saved */
    qtl_template_matcher_scale(d.mt, 1.0 / d.score_sd);
    d.mt_scaled = 1;
  }
  fill_summary(&d, a, b, sum);
  if (opt->on_ready && opt->on_ready(sum, opt->user) != 0) {
    st = qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                  "stopped by the caller");
    goto done;
  }
  /* Context each side of a block: the filters', plus room for a whole
   * event and its tail before the first owned onset and after the last. */
  /* Room for a whole event and its tail, plus the ends of a run where
   * the scores' float rounding depends on where the run starts (the
   * pieces of qtl_xcorr_set_phase): beyond them a frame's score, and so
   * the events owned, are the same whatever the block size (measured
   * before the pieces were aligned: a close pair at 16.19 s of
   * 171116sh_0020.abf was one event or two depending on --block). */
  d.det_ctx = 4 * d.tpl->n + (size_t)(0.05 * d.rate_hz) +
              (d.dec ? qtl_xcorr_klen(d.dec) : 0);
  {
    size_t mg = d.mt ? qtl_template_matcher_margin(d.mt) : 0;
    if (d.dec && qtl_xcorr_margin(d.dec) > mg)
      mg = qtl_xcorr_margin(d.dec);
    d.det_ctx += mg;
  }
  d.ctx = quantal_filter_context(&d.o.filter, d.rate_hz) + d.det_ctx;
  block = opt->block_frames ? opt->block_frames : BLOCK_DEFAULT;
  if (block < 1024)
    block = 1024;
  win_cap = block + 2 * d.ctx;
  x = malloc(win_cap * sizeof *x);
  if (x == NULL) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    goto done;
  }
  for (c0 = a; c0 < b; c0 += block) {
    uint64_t c1 = c0 + block < b ? c0 + block : b;
    uint64_t w0 = c0 - a > d.ctx ? c0 - d.ctx : a;
    uint64_t w1 = b - c1 > d.ctx ? c1 + d.ctx : b;
    size_t m = (size_t)(w1 - w0), j, kfirst;
    st = src_read(s, w0, m, x, diag);
    if (st != QUANTAL_OK)
      goto done;
    /* One scan finds the end of the first run; a window without a gap
     * (the usual case) needs no second one to count the owned gaps. */
    kfirst = s->rec != NULL && qtl_recording_read_finite(s->rec)
                 ? m /* the reader saw every value */
                 : first_nonfinite(x, 0, m);
    if (kfirst < m)
      count_gaps(&d, x + (c0 - w0), (size_t)(c1 - c0), c0);
    else if (c1 > c0)
      d.in_gap = 0;
    for (j = 0; j < m && st == QUANTAL_OK;) {
      size_t k = j == 0 ? kfirst : first_nonfinite(x, j, m);
      if (k > j) {
        /* The filters need the whole context to be exact on the block;
         * the detection only its own part of it, det_ctx each side of
         * the owned frames (the rest, 2 x 26,000 frames per block at 20
         * kHz, had its scores computed and its events fitted for
         * nothing: they are another block's). */
        size_t r0 = (size_t)(c0 - w0) > d.det_ctx
                        ? (size_t)(c0 - w0) - d.det_ctx : 0,
               r1 = (size_t)(c1 - w0) + d.det_ctx;
        r0 = r0 > j ? r0 : j;
        r1 = r1 < k ? r1 : k;
        qtl_baseline_grid bg;
        st = preprocess(&d, x + j, k - j, w0 + j, &bg, diag);
        if (st == QUANTAL_OK && r1 > r0)
          st = process_run(&d, x + r0, r1 - r0, w0 + r0, &bg, c0, c1, diag);
        free(bg.run);
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
