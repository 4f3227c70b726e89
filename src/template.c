/* template.c - event templates, the optimally scaled template fit and kinetics. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <fftw3.h>
#ifdef QTL_X86_SIMD
#include <immintrin.h>
#endif
#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_vector.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* FFTW's planner is the one part of FFTW that is not thread-safe
 * (FFTW 3.3 manual, section 5.4); `quantal compare` runs detections in
 * threads, so every plan is made and destroyed under this lock. */
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

void
qtl_plan_lock(void)
{
  pthread_mutex_lock(&plan_lock);
}

void
qtl_plan_unlock(void)
{
  pthread_mutex_unlock(&plan_lock);
}

/* ---- the bi-exponential ----------------------------------------------- */

static double
biexp_tpeak(double rise_s, double decay_s)
{
  /* d/dt (1 - e^{-t/r}) e^{-t/d} = 0  =>  t_peak = r ln((r + d) / r). */
  return rise_s * log((rise_s + decay_s) / rise_s);
}

static double
biexp_raw(double t, double rise_s, double decay_s)
{
  if (t <= 0.0)
    return 0.0;
  return -expm1(-t / rise_s) * exp(-t / decay_s);
}

double
quantal_template_biexp_value(double t_s, double rise_s, double decay_s)
{
  double tp = biexp_tpeak(rise_s, decay_s);
  return biexp_raw(t_s, rise_s, decay_s) / biexp_raw(tp, rise_s, decay_s);
}

static quantal_status
tpl_new(size_t n, double rate_hz, quantal_template **out, quantal_diag *diag)
{
  quantal_template *t = calloc(1, sizeof *t);
  if (t == NULL || (t->y = calloc(n, sizeof *t->y)) == NULL) {
    free(t);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  t->n = n;
  t->rate_hz = rate_hz;
  *out = t;
  return QUANTAL_OK;
}

quantal_status
quantal_template_biexp(double rise_s, double decay_s, double rate_hz,
                       quantal_template **out, quantal_diag *diag)
{
  double tp, pre, len;
  size_t n, k, on;
  quantal_template *t;
  quantal_status st;
  if (!(rise_s > 0.0) || !(decay_s > 0.0) || !isfinite(rise_s) ||
      !isfinite(decay_s) || !(rate_hz > 0.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "template: rise and decay must be positive");
  tp = biexp_tpeak(rise_s, decay_s);
  /* A stretch of pre-event baseline makes the fitted offset come from
   * before the onset, so a slow ramp of noise no longer resembles a
   * decay (the template has a sharp rise that the ramp lacks). */
  pre = 2.0 * tp > 1e-3 ? 2.0 * tp : 1e-3;
  len = pre + tp + 3.0 * decay_s;
  if (len * rate_hz > 1e7)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "template: kinetics too slow for the sample rate "
                    "(%.3g s long)", len);
  n = (size_t)ceil(len * rate_hz) + 1;
  on = (size_t)floor(pre * rate_hz + 0.5);
  if (n < on + 3)
    n = on + 3;
  st = tpl_new(n, rate_hz, &t, diag);
  if (st != QUANTAL_OK)
    return st;
  for (k = 0; k < n; k++)
    t->y[k] = quantal_template_biexp_value(((double)k - (double)on) / rate_hz,
                                           rise_s, decay_s);
  t->onset_index = on;
  t->peak_index = on + (size_t)floor(tp * rate_hz + 0.5);
  if (t->peak_index >= n)
    t->peak_index = n - 1;
  t->rise_s = rise_s;
  t->decay_s = decay_s;
  *out = t;
  return QUANTAL_OK;
}

quantal_status
quantal_template_from_samples(const double *w, size_t n, double rate_hz,
                              quantal_template **out, quantal_diag *diag)
{
  size_t k, pk = 0;
  double ext = 0.0;
  quantal_template *t;
  quantal_status st;
  if (n < 4)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "template: a waveform needs at least 4 samples");
  for (k = 0; k < n; k++) {
    if (!isfinite(w[k]))
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, (long long)k,
                      "template: sample %zu is not a number", k + 1);
    if (fabs(w[k]) > fabs(ext)) {
      ext = w[k];
      pk = k;
    }
  }
  if (ext == 0.0)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "template: the waveform is flat");
  st = tpl_new(n, rate_hz, &t, diag);
  if (st != QUANTAL_OK)
    return st;
  for (k = 0; k < n; k++)
    t->y[k] = w[k] / ext;
  t->peak_index = pk;
  k = pk;
  while (k > 0 && t->y[k - 1] >= 0.05)
    k--;
  t->onset_index = k;
  t->rise_s = NAN;
  t->decay_s = NAN;
  *out = t;
  return QUANTAL_OK;
}

void
quantal_template_free(quantal_template *t)
{
  if (t == NULL)
    return;
  free(t->y);
  free(t);
}

/* ---- the optimally scaled template (Clements & Bekkers 1997) ---------- */

quantal_status
quantal_template_fit_at(const quantal_template *t, const double *x, size_t n,
                        size_t index, quantal_template_fit *fit,
                        quantal_diag *diag)
{
  size_t L = t->n, k;
  double mt = 0.0, md = 0.0, stt = 0.0, std_ = 0.0, sdd = 0.0;
  const double *d;
  if (index + L > n)
    return qtl_fail(diag, QUANTAL_ERANGE, NULL, -1, (long long)index,
                    "template fit: the template runs past the data");
  d = x + index;
  /* Two passes about the means: the normal equations of
   * d ~ scale * T + offset (CB97 eqs. 2-3) written in centred form, which
   * does not cancel when the data sit on a large offset. */
  for (k = 0; k < L; k++) {
    mt += t->y[k];
    md += d[k];
  }
  mt /= (double)L;
  md /= (double)L;
  for (k = 0; k < L; k++) {
    double a = t->y[k] - mt, b = d[k] - md;
    stt += a * a;
    std_ += a * b;
    sdd += b * b;
  }
  fit->index = index;
  fit->scale = std_ / stt;
  fit->offset = md - fit->scale * mt;
  fit->sse = sdd - fit->scale * std_;
  if (fit->sse < 0.0)
    fit->sse = 0.0;
  /* CB97 eq. 4: the standard error of the fit, and the criterion. */
  fit->se = sqrt(fit->sse / (double)(L - 1));
  fit->scale_se = fit->se / sqrt(stt);
  fit->criterion = fit->se > 0.0 ? fit->scale / fit->se
                                 : (fit->scale > 0 ? HUGE_VAL : -HUGE_VAL);
  return QUANTAL_OK;
}

quantal_status
quantal_template_fit_best(const quantal_template *t, const double *x,
                          size_t n, size_t lo, size_t hi, int polarity,
                          quantal_template_fit *fit, quantal_diag *diag)
{
  size_t i;
  int have = 0;
  quantal_template_fit f;
  quantal_status st;
  if (n < t->n)
    return qtl_fail(diag, QUANTAL_ERANGE, NULL, -1, -1,
                    "template fit: the data are shorter than the template");
  if (hi > n - t->n)
    hi = n - t->n;
  if (lo > hi)
    return qtl_fail(diag, QUANTAL_ERANGE, NULL, -1, (long long)lo,
                    "template fit: empty latency range");
  for (i = lo; i <= hi; i++) {
    st = quantal_template_fit_at(t, x, n, i, &f, diag);
    if (st != QUANTAL_OK)
      return st;
    if (!have || polarity * f.criterion > polarity * fit->criterion) {
      *fit = f;
      have = 1;
    }
  }
  return QUANTAL_OK;
}

quantal_status
quantal_template_criterion_direct(const quantal_template *t, const double *x,
                                  size_t n, double *crit, quantal_diag *diag)
{
  size_t i;
  quantal_template_fit f;
  quantal_status st;
  if (n < t->n)
    return qtl_fail(diag, QUANTAL_ERANGE, NULL, -1, -1,
                    "the trace is shorter than the template");
  for (i = 0; i + t->n <= n; i++) {
    st = quantal_template_fit_at(t, x, n, i, &f, diag);
    if (st != QUANTAL_OK)
      return st;
    crit[i] = f.criterion;
  }
  return QUANTAL_OK;
}

/* ---- FFT overlap-save correlation ------------------------------------- */

/* Outputs of a direct (short) correlation per float conversion. */
#define FIR_CHUNK 2048

struct qtl_xcorr {
  size_t nfft, klen, step;
  uint64_t phase; /* frame of x[0] in the run's recording (set_phase) */
  double *taps; /* the kernel when summed directly (nfft = 0) */
  double ksum;  /* and the sum of its taps */
  float *ftaps, *fbuf; /* the same in float, and a chunk of the trace */
  /* The screen's integer copy of the taps (fir_screen): pairs
   * k[2m] | k[2m + 1] << 16 scaled by qtc, npair of them; qe1 the sum of
   * |ftaps[j] - K[j] / qtc|, qsk the sum of |K[j]|, fsk of |ftaps[j]|;
   * pbuf the chunk's trace as pairs of 16-bit integers. */
  int32_t *ptaps, *pbuf;
  size_t npair;
  double qtc, qe1, qsk, fsk;
  float *buf;
  fftwf_complex *spec, *kspec;
  fftwf_plan fwd, inv;
  /* qtl_xcorr_screen: the thresholds, and the output spans of the last
   * run that hold every output with pol out >= thr */
  double scr_thr, scr_pol;
  int scr_on, hit_ok;
  qtl_span *hit;
  size_t nhit, hit_cap;
};

/* Append [lo, hi) to the sorted spans sp[0..*n), merging it with the
 * last when they touch; *ok = 0 (and the spans no longer complete) when
 * memory runs out. */
static void
span_add(qtl_span **sp, size_t *n, size_t *cap, int *ok, size_t lo,
         size_t hi)
{
  if (!*ok)
    return;
  if (*n > 0 && (*sp)[*n - 1].hi >= lo) {
    if (hi > (*sp)[*n - 1].hi)
      (*sp)[*n - 1].hi = hi;
    return;
  }
  if (*n == *cap) {
    size_t nc = *cap ? 2 * *cap : 256;
    qtl_span *p = realloc(*sp, nc * sizeof *p);
    if (p == NULL) {
      *ok = 0;
      return;
    }
    *sp = p;
    *cap = nc;
  }
  (*sp)[*n].lo = lo;
  (*sp)[*n].hi = hi;
  (*n)++;
}

static void
xhit_add(qtl_xcorr *c, size_t lo, size_t hi)
{
  span_add(&c->hit, &c->nhit, &c->hit_cap, &c->hit_ok, lo, hi);
}

void
qtl_xcorr_screen(qtl_xcorr *c, double thr, int pol)
{
  c->scr_on = thr > 0.0;
  c->scr_thr = thr;
  c->scr_pol = pol < 0 ? -1.0 : 1.0;
}

int
qtl_xcorr_hits(const qtl_xcorr *c, const qtl_span **hit, size_t *nhit)
{
  if (!c->scr_on || !c->hit_ok)
    return -1;
  *hit = c->hit;
  *nhit = c->nhit;
  return 0;
}

void
qtl_xcorr_free(qtl_xcorr *c)
{
  if (c == NULL)
    return;
  pthread_mutex_lock(&plan_lock);
  if (c->fwd)
    fftwf_destroy_plan(c->fwd);
  if (c->inv)
    fftwf_destroy_plan(c->inv);
  pthread_mutex_unlock(&plan_lock);
  free(c->taps);
  free(c->ftaps);
  free(c->ptaps);
  free(c->pbuf);
  free(c->fbuf);
  free(c->hit);
  fftwf_free(c->buf);
  fftwf_free(c->spec);
  fftwf_free(c->kspec);
  free(c);
}

/* The integer taps of the direct sum's screen (fir_avx2): K[j] =
 * rint(ftaps[j] qtc), with qtc as large as keeps sum |K[j]| 16383 (the
 * largest trace value) inside an int32, so the integer sums cannot
 * overflow. -1 when memory runs out; no taps (npair 0, the screen off)
 * for a kernel of zeros. */
static int
screen_taps(qtl_xcorr *c)
{
  size_t K = c->klen, j;
  double kmax = 0.0, sk;
  int32_t *kq;
  for (j = 0; j < K; j++)
    if (fabs((double)c->ftaps[j]) > kmax)
      kmax = fabs((double)c->ftaps[j]);
  if (!(kmax > 0.0) || !isfinite(kmax))
    return 0;
  c->npair = (K + 1) / 2;
  c->ptaps = malloc(c->npair * sizeof *c->ptaps);
  c->pbuf = malloc((FIR_CHUNK + K + 64) * sizeof *c->pbuf);
  kq = calloc(2 * c->npair, sizeof *kq);
  if (c->ptaps == NULL || c->pbuf == NULL || kq == NULL) {
    free(kq);
    return -1;
  }
  c->qtc = 32767.0 / kmax;
  for (;;) {
    sk = 0.0;
    for (j = 0; j < K; j++) {
      kq[j] = (int32_t)lrint((double)c->ftaps[j] * c->qtc);
      sk += fabs((double)kq[j]);
    }
    if (sk * 16384.0 < 2147483647.0 - 1048576.0)
      break;
    c->qtc *= 0.9;
  }
  c->qsk = sk;
  c->qe1 = c->fsk = 0.0;
  for (j = 0; j < K; j++) {
    c->qe1 += fabs((double)c->ftaps[j] - (double)kq[j] / c->qtc);
    c->fsk += fabs((double)c->ftaps[j]);
  }
  for (j = 0; j < c->npair; j++)
    c->ptaps[j] = (int32_t)(((uint32_t)kq[2 * j] & 0xffffu) |
                            ((uint32_t)kq[2 * j + 1] << 16));
  free(kq);
  return 0;
}

quantal_status
qtl_xcorr_alloc(const double *k, size_t klen, size_t direct_max,
                qtl_xcorr **out, quantal_diag *diag)
{
  qtl_xcorr *c;
  size_t nfft = 4096, i;
  if (klen == 0)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1, "empty kernel");
  if (klen <= direct_max) {
    c = calloc(1, sizeof *c);
    if (c == NULL || (c->taps = malloc(klen * sizeof *c->taps)) == NULL ||
        (c->ftaps = malloc(klen * sizeof *c->ftaps)) == NULL ||
        (c->fbuf = malloc((FIR_CHUNK + klen + 64) * sizeof *c->fbuf)) == NULL) {
      qtl_xcorr_free(c);
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    }
    memcpy(c->taps, k, klen * sizeof *k);
    for (i = 0; i < klen; i++) {
      c->ftaps[i] = (float)k[i];
      c->ksum += k[i];
    }
    c->klen = klen;
    if (screen_taps(c) != 0) {
      qtl_xcorr_free(c);
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    }
    *out = c;
    return QUANTAL_OK;
  }
  /* An FFT 8 to 16 times the kernel keeps the overlap (klen - 1 samples
   * recomputed per block) small, while staying in cache. */
  while (nfft < 8 * klen)
    nfft *= 2;
  c = calloc(1, sizeof *c);
  if (c == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  c->nfft = nfft;
  c->klen = klen;
  c->step = nfft - klen + 1;
  c->buf = fftwf_malloc(nfft * sizeof *c->buf);
  c->spec = fftwf_malloc((nfft / 2 + 1) * sizeof *c->spec);
  c->kspec = fftwf_malloc((nfft / 2 + 1) * sizeof *c->kspec);
  if (c->buf == NULL || c->spec == NULL || c->kspec == NULL) {
    qtl_xcorr_free(c);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  pthread_mutex_lock(&plan_lock);
  c->fwd = fftwf_plan_dft_r2c_1d((int)nfft, c->buf, c->spec, FFTW_ESTIMATE);
  c->inv = fftwf_plan_dft_c2r_1d((int)nfft, c->spec, c->buf, FFTW_ESTIMATE);
  pthread_mutex_unlock(&plan_lock);
  if (c->fwd == NULL || c->inv == NULL) {
    qtl_xcorr_free(c);
    return qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                    "FFTW could not plan a transform of %zu points", nfft);
  }
  memset(c->buf, 0, nfft * sizeof *c->buf);
  for (i = 0; i < klen; i++)
    c->buf[i] = (float)k[i];
  fftwf_execute_dft_r2c(c->fwd, c->buf, c->kspec);
  /* conj(K) / nfft: correlation instead of convolution, and FFTW's
   * unnormalised inverse folded into the kernel. */
  for (i = 0; i < nfft / 2 + 1; i++) {
    c->kspec[i][0] /= (float)nfft;
    c->kspec[i][1] /= -(float)nfft;
  }
  *out = c;
  return QUANTAL_OK;
}

size_t
qtl_xcorr_klen(const qtl_xcorr *c)
{
  return c->klen;
}

/* Outputs in the first piece (FFT segment or direct-sum chunk) of a run
 * whose x[0] is frame phase: the pieces are cut at the frames that are
 * multiples of their length P, so that a frame's value does not depend
 * on where the run (the detector's block) starts. */
static size_t
first_piece(uint64_t phase, size_t P)
{
  size_t r = (size_t)(phase % P);
  return r ? P - r : P;
}

void
qtl_xcorr_set_phase(qtl_xcorr *c, uint64_t phase)
{
  c->phase = phase;
}

size_t
qtl_xcorr_margin(const qtl_xcorr *c)
{
  return c->taps ? FIR_CHUNK + c->klen + 64 : c->nfft;
}

/* One overlap-save block at s: c->buf[i] = sum_j k[j] (x[s + i + j] -
 * shift) for i = 0..cnt-1 (returned), shift the mean of the block's
 * samples (so that the float transform does not carry the trace's
 * offset). Needs s < n - klen + 1. The loops around the transforms have
 * an AVX2 version (xcorr_prep_avx2, xcorr_mul_avx2) with the same
 * arithmetic: the mean in four lanes as the scalar partial sums, the
 * complex product without FMA. */
static double
xcorr_prep(float *buf, size_t nfft, const double *xs, size_t m)
{
  double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, shift;
  size_t i;
  /* four partial sums: the adds overlap instead of forming one chain */
  for (i = 0; i + 4 <= m; i += 4) {
    a0 += xs[i];
    a1 += xs[i + 1];
    a2 += xs[i + 2];
    a3 += xs[i + 3];
  }
  for (; i < m; i++)
    a0 += xs[i];
  shift = ((a0 + a1) + (a2 + a3)) / (double)m;
  for (i = 0; i < m; i++)
    buf[i] = (float)(xs[i] - shift);
  for (; i < nfft; i++)
    buf[i] = 0.0f;
  return shift;
}

static void
xcorr_mul(float *sp, const float *kp, size_t nb)
{
  size_t i;
  for (i = 0; i < nb; i++) {
    float a = sp[2 * i], b = sp[2 * i + 1];
    float kr = kp[2 * i], ki = kp[2 * i + 1];
    sp[2 * i] = a * kr - b * ki;
    sp[2 * i + 1] = a * ki + b * kr;
  }
}

#ifdef QTL_X86_SIMD
__attribute__((target("avx2"))) static double
xcorr_prep_avx2(float *buf, size_t nfft, const double *xs, size_t m)
{
  __m256d acc = _mm256_setzero_pd(), sh;
  double l[4], shift;
  size_t i;
  for (i = 0; i + 4 <= m; i += 4)
    acc = _mm256_add_pd(acc, _mm256_loadu_pd(xs + i));
  _mm256_storeu_pd(l, acc);
  for (; i < m; i++)
    l[0] += xs[i];
  shift = ((l[0] + l[1]) + (l[2] + l[3])) / (double)m;
  sh = _mm256_set1_pd(shift);
  for (i = 0; i + 4 <= m; i += 4)
    _mm_storeu_ps(buf + i,
                  _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_loadu_pd(xs + i), sh)));
  for (; i < m; i++)
    buf[i] = (float)(xs[i] - shift);
  for (; i < nfft; i++)
    buf[i] = 0.0f;
  return shift;
}

__attribute__((target("avx2"))) static void
xcorr_mul_avx2(float *sp, const float *kp, size_t nb)
{
  size_t i;
  for (i = 0; i + 4 <= nb; i += 4) {
    __m256 x = _mm256_loadu_ps(sp + 2 * i), k = _mm256_loadu_ps(kp + 2 * i);
    __m256 t1 = _mm256_mul_ps(x, _mm256_moveldup_ps(k));
    __m256 t2 = _mm256_mul_ps(_mm256_permute_ps(x, 0xB1),
                              _mm256_movehdup_ps(k));
    _mm256_storeu_ps(sp + 2 * i, _mm256_addsub_ps(t1, t2));
  }
  xcorr_mul(sp + 2 * i, kp + 2 * i, nb - i);
}
#endif

static size_t
xcorr_block(qtl_xcorr *c, const double *x, size_t n, size_t s,
            double *shift_out)
{
  size_t nfft = c->nfft, nb = nfft / 2 + 1, m, nout = n - c->klen + 1;
  int avx2 = qtl_have_avx2();
  m = n - s < nfft ? n - s : nfft;
#ifdef QTL_X86_SIMD
  if (avx2)
    *shift_out = xcorr_prep_avx2(c->buf, nfft, x + s, m);
  else
#endif
    *shift_out = xcorr_prep(c->buf, nfft, x + s, m);
  fftwf_execute_dft_r2c(c->fwd, c->buf, c->spec);
#ifdef QTL_X86_SIMD
  if (avx2)
    xcorr_mul_avx2((float *)c->spec, (const float *)c->kspec, nb);
  else
#endif
    xcorr_mul((float *)c->spec, (const float *)c->kspec, nb);
  fftwf_execute_dft_c2r(c->inv, c->spec, c->buf);
  (void)avx2;
  return nout - s < c->step ? nout - s : c->step;
}

/* The direct sum, out[i] = sum_j k[j] x[i + j], each sum in the order
 * j = 0..K-1 (mul, then add: no FMA). */
static void
fir_scalar(const double *k, size_t K, const double *x, size_t nout,
           double *out)
{
  size_t i, j;
  for (i = 0; i < nout; i++) {
    double a = 0.0;
    for (j = 0; j < K; j++)
      a += k[j] * x[i + j];
    out[i] = a;
  }
}

#ifdef QTL_X86_SIMD
/* The screen of a chunk of the direct sum (qtl_xcorr_screen on): the
 * trace as 16-bit integers q = rint(u sc), |q| <= 16383, sc = 16383 /
 * max |u|, laid out in pairs pbuf[t] = q[t] | q[t + 1] << 16, so that one
 * vpmaddwd multiplies eight outputs by two taps: the integer sums A take
 * half the instructions of the float ones. Where every output of 64 is
 * provably under the threshold, pol (base + A / (qtc sc)) + B < thr for
 * the bound B below, the float sums are not needed: the outputs there
 * are stored as NaN, which no caller's comparison passes, as none passes
 * a value under the threshold (the hits and the values at them are those
 * of the full sum, bit for bit). Returns the integer threshold T: a block
 * needs its float sums when some pol A > T. */
__attribute__((target("avx2,fma"))) static int32_t
fir_screen_prep(qtl_xcorr *xc, float *fbuf, size_t nin, float umax,
                double base)
{
  size_t t, K = xc->klen;
  int32_t *P = xc->pbuf;
  double sc, B, T, pol = xc->scr_pol;
  float scf = 16383.0f / umax;
  __m256 vs = _mm256_set1_ps(scf);
  const __m256i lo16 = _mm256_set1_epi32(0xffff);
  /* zeros past the trace: the pair of an odd kernel's last tap, and
   * the vector tail */
  for (t = nin; t < nin + 16; t++)
    fbuf[t] = 0.0f;
  for (t = 0; t < nin; t += 8) {
    __m256i qa = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(fbuf + t), vs));
    __m256i qb =
        _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(fbuf + t + 1), vs));
    _mm256_storeu_si256((__m256i *)(P + t),
                        _mm256_or_si256(_mm256_and_si256(qa, lo16),
                                        _mm256_slli_epi32(qb, 16)));
  }
  sc = (double)scf;
  /* |sum k u - A / (qtc sc)| <= qe1 max|u| + qsk 0.501 / (qtc sc): the
   * taps' rounding, and the trace's (half a step, and u sc rounded in
   * float first); the float sum is within 2 K 2^-24 fsk max|u| of
   * sum k u (Higham, Accuracy and Stability, 3.1), and the double
   * additions within 1e-12 of the magnitudes. */
  B = xc->qe1 * umax + xc->qsk * 0.501 / (xc->qtc * sc) +
      2.0 * (double)K * 0x1p-24 * xc->fsk * umax +
      1e-12 * (fabs(base) + xc->fsk * umax + fabs(xc->scr_thr));
  B *= 1.0625;
  T = (xc->scr_thr - B - pol * base) * xc->qtc * sc;
  if (!(T < 2147483647.0))
    return INT32_MAX;
  if (!(T > -2147483647.0))
    return INT32_MIN;
  return (int32_t)floor(T) - 2;
}

/* Whether some output of the 64 at P passes the integer threshold:
 * pol A > T for A the integer sums over the npair tap pairs. */
__attribute__((target("avx2,fma"))) static int
fir_screen64(const int32_t *ptaps, size_t npair, const int32_t *P,
             __m256i vpol, __m256i vT)
{
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  __m256i a4 = a0, a5 = a0, a6 = a0, a7 = a0, m;
  size_t j;
  for (j = 0; j < npair; j++) {
    __m256i g = _mm256_set1_epi32(ptaps[j]);
    const int32_t *p = P + 2 * j;
#define SCR_MADD(a, off)                                                       \
  a = _mm256_add_epi32(                                                        \
      a, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(p + (off))), g))
    SCR_MADD(a0, 0);
    SCR_MADD(a1, 8);
    SCR_MADD(a2, 16);
    SCR_MADD(a3, 24);
    SCR_MADD(a4, 32);
    SCR_MADD(a5, 40);
    SCR_MADD(a6, 48);
    SCR_MADD(a7, 56);
#undef SCR_MADD
  }
#define SCR_PASS(a) _mm256_cmpgt_epi32(_mm256_sign_epi32(a, vpol), vT)
  m = _mm256_or_si256(_mm256_or_si256(SCR_PASS(a0), SCR_PASS(a1)),
                      _mm256_or_si256(SCR_PASS(a2), SCR_PASS(a3)));
  m = _mm256_or_si256(m, _mm256_or_si256(SCR_PASS(a4), SCR_PASS(a5)));
  m = _mm256_or_si256(m, _mm256_or_si256(SCR_PASS(a6), SCR_PASS(a7)));
#undef SCR_PASS
  return !_mm256_testz_si256(m, m);
}

/* The direct sum in single precision with FMA, like the FFT path, 64
 * outputs a step. The trace is converted to float a chunk at a time
 * (fbuf, FIR_CHUNK + K + 64); with the screen on, a chunk's blocks of 64
 * go through fir_screen64 first. */
__attribute__((target("avx2,fma"))) static void
fir_avx2(const float *k, size_t K, double ksum, const double *x, size_t nout,
         double *out, float *fbuf, size_t first, qtl_xcorr *xc)
{
  size_t i0, i, j, m;
  const int scr = xc->scr_on;
  const __m256d spol = _mm256_set1_pd(xc->scr_pol),
                sthr = _mm256_set1_pd(xc->scr_thr);
  const __m256i vpol = _mm256_set1_epi32(xc->scr_pol < 0.0 ? -1 : 1);
  const __m256 sgn = _mm256_set1_ps(-0.0f);
  const __m256d vnan = _mm256_set1_pd(NAN);
  for (i0 = 0; i0 < nout; i0 += m) {
    const double *xs = x + i0;
    int use_scr = 0;
    int32_t Tq = 0;
    __m256 vmax = _mm256_setzero_ps();
    __m256i vT;
    m = i0 == 0 ? first : FIR_CHUNK;
    m = nout - i0 < m ? nout - i0 : m;
    /* the chunk about its first sample, so that float keeps the signal
     * when the trace sits on a large offset; the offset's share, shift
     * times the sum of the taps, is added back in double */
    double shift = xs[0], base = shift * ksum;
    __m256d sh = _mm256_set1_pd(shift), vb = _mm256_set1_pd(base);
    for (i = 0; i + 8 <= m + K - 1; i += 8) {
      __m256 u = _mm256_set_m128(
          _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_loadu_pd(xs + i + 4), sh)),
          _mm256_cvtpd_ps(_mm256_sub_pd(_mm256_loadu_pd(xs + i), sh)));
      _mm256_storeu_ps(fbuf + i, u);
      vmax = _mm256_max_ps(_mm256_andnot_ps(sgn, u), vmax);
    }
    for (; i < m + K - 1; i++) {
      fbuf[i] = (float)(xs[i] - shift);
      vmax = _mm256_max_ps(_mm256_set1_ps(fabsf(fbuf[i])), vmax);
    }
    if (scr && xc->npair > 0 && m >= 64) {
      float mv[8], umax = 0.0f;
      _mm256_storeu_ps(mv, vmax);
      for (j = 0; j < 8; j++)
        umax = mv[j] > umax ? mv[j] : umax;
      /* (max_ps returns its second operand, the running maximum, for a
       * NaN: a NaN sample counts as 0 in the integer sums, and its float
       * outputs, NaN, pass nowhere either way) */
      if (umax > 0.0f && umax < 1e30f) {
        Tq = fir_screen_prep(xc, fbuf, m + K - 1, umax, base);
        use_scr = 1;
      }
    }
    vT = _mm256_set1_epi32(Tq);
    for (i = 0; i + 64 <= m; i += 64) {
      __m256 a0, a1, a2, a3, a4, a5, a6, a7;
      double *o = out + i0 + i;
      if (use_scr && !fir_screen64(xc->ptaps, xc->npair, xc->pbuf + i, vpol, vT)) {
        for (j = 0; j < 64; j += 4)
          _mm256_storeu_pd(o + j, vnan);
        continue;
      }
      /* eight per vector, eight vectors' chains overlapping (an FMA's
       * latency is about four times its issue interval), each chain in
       * tap order */
      a0 = _mm256_setzero_ps();
      a1 = a2 = a3 = a4 = a5 = a6 = a7 = a0;
      for (j = 0; j < K; j++) {
        __m256 g = _mm256_broadcast_ss(k + j);
        const float *p = fbuf + i + j;
        a0 = _mm256_fmadd_ps(g, _mm256_loadu_ps(p), a0);
        a1 = _mm256_fmadd_ps(g, _mm256_loadu_ps(p + 8), a1);
        a2 = _mm256_fmadd_ps(g, _mm256_loadu_ps(p + 16), a2);
        a3 = _mm256_fmadd_ps(g, _mm256_loadu_ps(p + 24), a3);
        a4 = _mm256_fmadd_ps(g, _mm256_loadu_ps(p + 32), a4);
        a5 = _mm256_fmadd_ps(g, _mm256_loadu_ps(p + 40), a5);
        a6 = _mm256_fmadd_ps(g, _mm256_loadu_ps(p + 48), a6);
        a7 = _mm256_fmadd_ps(g, _mm256_loadu_ps(p + 56), a7);
      }
#define FIR_STORE(a, off)                                                      \
  do {                                                                         \
    __m256d lo_ = _mm256_add_pd(vb, _mm256_cvtps_pd(_mm256_castps256_ps128(a))); \
    __m256d hi_ = _mm256_add_pd(vb, _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1))); \
    _mm256_storeu_pd(o + (off), lo_);                                          \
    _mm256_storeu_pd(o + (off) + 4, hi_);                                      \
    if (scr && (_mm256_movemask_pd(_mm256_cmp_pd(_mm256_mul_pd(spol, lo_),    \
                                                 sthr, _CMP_GE_OQ)) |          \
                _mm256_movemask_pd(_mm256_cmp_pd(_mm256_mul_pd(spol, hi_),    \
                                                 sthr, _CMP_GE_OQ))))          \
      xhit_add(xc, i0 + i + (off), i0 + i + (off) + 8);                        \
  } while (0)
      FIR_STORE(a0, 0);
      FIR_STORE(a1, 8);
      FIR_STORE(a2, 16);
      FIR_STORE(a3, 24);
      FIR_STORE(a4, 32);
      FIR_STORE(a5, 40);
      FIR_STORE(a6, 48);
      FIR_STORE(a7, 56);
#undef FIR_STORE
    }
    for (; i < m; i++) {
      float a = 0.0f;
      for (j = 0; j < K; j++)
        a += k[j] * fbuf[i + j];
      out[i0 + i] = base + (double)a;
      if (scr && xc->scr_pol * out[i0 + i] >= xc->scr_thr)
        xhit_add(xc, i0 + i, i0 + i + 1);
    }
  }
}
#endif

/* out[i] = (double)f[i] (exact), eight a step where AVX2 runs: the
 * scalar loop, which GCC left unvectorised (out and f may overlap as far
 * as it knows), was 2 % of detect with an FFT deconvolution, and its
 * twin 5 % of detect's calibration. */
#ifdef QTL_X86_SIMD
__attribute__((target("avx2"))) static void
widen_float_avx2(double *out, const float *f, size_t n)
{
  size_t i;
  for (i = 0; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(f + i);
    _mm256_storeu_pd(out + i, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    _mm256_storeu_pd(out + i + 4,
                     _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  for (; i < n; i++)
    out[i] = (double)f[i];
}
#endif

void
qtl_widen_float(double *out, const float *f, size_t n)
{
  size_t i;
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2()) {
    widen_float_avx2(out, f, n);
    return;
  }
#endif
  for (i = 0; i < n; i++)
    out[i] = (double)f[i];
}

void
qtl_xcorr_run(qtl_xcorr *c, const double *x, size_t n, double *out,
              double *block_shift)
{
  size_t s, i, nout, cnt;
  double shift;
  c->nhit = 0;
  c->hit_ok = 1;
  if (n < c->klen)
    return;
  nout = n - c->klen + 1;
  if (c->taps) {
#ifdef QTL_X86_SIMD
    if (qtl_have_avx2())
      fir_avx2(c->ftaps, c->klen, c->ksum, x, nout, out, c->fbuf,
               first_piece(c->phase, FIR_CHUNK), c);
    else
#endif
    {
      fir_scalar(c->taps, c->klen, x, nout, out);
      c->hit_ok = 0; /* not recorded: the caller scans it all */
    }
    if (block_shift)
      for (i = 0; i < nout; i++)
        block_shift[i] = 0.0;
    return;
  }
  c->hit_ok = 0; /* not recorded by the FFT: the caller scans it all */
  for (s = 0; s < nout; s += cnt) {
    cnt = xcorr_block(c, x, n, s, &shift);
    if (s == 0 && cnt > first_piece(c->phase, c->step))
      cnt = first_piece(c->phase, c->step);
    qtl_widen_float(out + s, c->buf, cnt);
    if (block_shift)
      for (i = 0; i < cnt; i++)
        block_shift[s + i] = shift;
  }
}

/* ---- the matcher ------------------------------------------------------ */

struct quantal_matcher {
  qtl_xcorr *xc;
  size_t L;
  double sum_t, stt; /* sum T and sum (T - mean T)^2 */
  double *s1, *s2;   /* window sums of one piece (P each) */
  double *r;         /* its correlation (4 xc->step: four pieces) */
  double *w;         /* four pieces interleaved (biexp_corr4_avx2) */
  double screen;     /* > 0: criterion only where pol * crit >= screen */
  double oscale;     /* the criterion is written times this (1 at first) */
  /* Screened: the output spans [lo, hi) of the last call where the
   * screen passed (every non-NaN value lies in one), sorted; hit_ok 0
   * when they could not be kept. */
  qtl_span *hit;
  size_t nhit, hit_cap;
  int hit_ok;
  int pol;
  /* A bi-exponential template, T[on + j] = C (a^j - b^j) for j < M and
   * 0 before on, is correlated by recursion (biexp_corr) instead of the
   * FFT: rec is set, aM = a^M, bM = b^M. */
  int rec;
  size_t on, M;
  double a, b, aM, bM, C;
  size_t P;        /* piece length: the FFT's step, or the recursion's */
  uint64_t phase;  /* frame of x[0] (qtl_template_matcher_phase) */
};

/* Whether t is the sampled bi-exponential of quantal_template_biexp, to
 * 1e-9 of its peak, and then the constants of its recursion. */
static void
biexp_recursion(const quantal_template *t, quantal_matcher *m)
{
  double r = t->rise_s, d = t->decay_s, rate = t->rate_hz, pk, a, b;
  size_t k;
  if (!(r > 0.0) || !(d > 0.0) || !isfinite(r) || !isfinite(d) ||
      t->onset_index + 2 > t->n)
    return;
  pk = biexp_raw(biexp_tpeak(r, d), r, d);
  a = exp(-1.0 / (d * rate));
  b = exp(-(1.0 / r + 1.0 / d) / rate);
  for (k = 0; k < t->n; k++) {
    double j = (double)k - (double)t->onset_index,
           v = k < t->onset_index ? 0.0 : (pow(a, j) - pow(b, j)) / pk;
    if (!(fabs(v - t->y[k]) <= 1e-9))
      return;
  }
  m->rec = 1;
  m->on = t->onset_index;
  m->M = t->n - t->onset_index;
  m->a = a;
  m->b = b;
  m->aM = pow(a, (double)m->M);
  m->bM = pow(b, (double)m->M);
  m->C = 1.0 / pk;
}

/* r[k] = sum_j T[j] (x[s + k + j] - c), k < cnt, for the template of
 * biexp_recursion: with G_w[p] = sum_{j<M} w^j v[p + j], v = x - c, r[k]
 * = C (G_a[p] - G_b[p]) at p = s + k + on, and G_w[p] = v[p] + w
 * G_w[p + 1] - w^M v[p + M] backwards from a direct sum at the end of
 * the piece. Two multiply-adds per sample and weight instead of a
 * forward and an inverse FFT; in double precision, where the FFT was in
 * single. The error of the recursion is damped by w each step: about
 * 1 / (1 - a) roundings, 1e-14 relative for a decay of 100 samples. */
static void
biexp_corr(const quantal_matcher *m, const double *x, size_t s, size_t cnt,
           double c, double *r)
{
  const double a = m->a, b = m->b, aM = m->aM, bM = m->bM, C = m->C;
  const double *v = x + s + m->on;
  size_t M = m->M, j, k;
  double ga = 0.0, gb = 0.0;
  if (cnt == 0)
    return;
  for (j = M; j-- > 0;) {
    double u = v[cnt - 1 + j] - c;
    ga = u + a * ga;
    gb = u + b * gb;
  }
  r[cnt - 1] = C * (ga - gb);
  for (k = cnt - 1; k-- > 0;) {
    double u0 = v[k] - c, uM = v[k + M] - c;
    ga = (u0 - aM * uM) + a * ga;
    gb = (u0 - bM * uM) + b * gb;
    r[k] = C * (ga - gb);
  }
}

#ifdef QTL_X86_SIMD
/* biexp_corr of four consecutive whole pieces at s, s + P, s + 2 P,
 * s + 3 P (P = m->P; their shifts c[0..3]) into r + l P, one piece per
 * lane: the pieces are interleaved into m->w (4 x 4 transposes), the
 * recursion runs on vectors, and the results are transposed back. The
 * same operations in the same order as biexp_corr, without FMA (the
 * target is avx2 alone), so each piece gets the bits it gets there: a
 * piece's values do not depend on whether it was one of four. The
 * scalar recursion was latency-bound (a multiply and an add per sample
 * on one chain); four chains share those cycles. */
__attribute__((target("avx2"))) static void
biexp_corr4_avx2(const quantal_matcher *m, const double *x, size_t s,
                 const double *c, double *r)
{
  const size_t P = m->P, M = m->M, T = P + M - 1;
  const double *v = x + s + m->on;
  const __m256d a = _mm256_set1_pd(m->a), b = _mm256_set1_pd(m->b),
                aM = _mm256_set1_pd(m->aM), bM = _mm256_set1_pd(m->bM),
                C = _mm256_set1_pd(m->C);
  __m256d ga = _mm256_setzero_pd(), gb = ga;
  double *w = m->w, *o = m->w + 4 * (P + M);
  size_t t, j, l;
  /* w[4 t + l] = v[l P + t] - c[l], t < T */
  for (t = 0; t + 4 <= T; t += 4) {
    __m256d r0 = _mm256_sub_pd(_mm256_loadu_pd(v + t), _mm256_set1_pd(c[0]));
    __m256d r1 = _mm256_sub_pd(_mm256_loadu_pd(v + P + t),
                               _mm256_set1_pd(c[1]));
    __m256d r2 = _mm256_sub_pd(_mm256_loadu_pd(v + 2 * P + t),
                               _mm256_set1_pd(c[2]));
    __m256d r3 = _mm256_sub_pd(_mm256_loadu_pd(v + 3 * P + t),
                               _mm256_set1_pd(c[3]));
    __m256d u0 = _mm256_unpacklo_pd(r0, r1), u1 = _mm256_unpackhi_pd(r0, r1);
    __m256d u2 = _mm256_unpacklo_pd(r2, r3), u3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(w + 4 * t, _mm256_permute2f128_pd(u0, u2, 0x20));
    _mm256_storeu_pd(w + 4 * t + 4, _mm256_permute2f128_pd(u1, u3, 0x20));
    _mm256_storeu_pd(w + 4 * t + 8, _mm256_permute2f128_pd(u0, u2, 0x31));
    _mm256_storeu_pd(w + 4 * t + 12, _mm256_permute2f128_pd(u1, u3, 0x31));
  }
  for (; t < T; t++)
    for (l = 0; l < 4; l++)
      w[4 * t + l] = v[l * P + t] - c[l];
  for (j = M; j-- > 0;) {
    __m256d u = _mm256_loadu_pd(w + 4 * (P - 1 + j));
    ga = _mm256_add_pd(u, _mm256_mul_pd(a, ga));
    gb = _mm256_add_pd(u, _mm256_mul_pd(b, gb));
  }
  /* results interleaved into o */
  _mm256_storeu_pd(o + 4 * (P - 1),
                   _mm256_mul_pd(C, _mm256_sub_pd(ga, gb)));
  for (t = P - 1; t-- > 0;) {
    __m256d u0 = _mm256_loadu_pd(w + 4 * t),
            uM = _mm256_loadu_pd(w + 4 * (t + M));
    ga = _mm256_add_pd(_mm256_sub_pd(u0, _mm256_mul_pd(aM, uM)),
                       _mm256_mul_pd(a, ga));
    gb = _mm256_add_pd(_mm256_sub_pd(u0, _mm256_mul_pd(bM, uM)),
                       _mm256_mul_pd(b, gb));
    _mm256_storeu_pd(o + 4 * t, _mm256_mul_pd(C, _mm256_sub_pd(ga, gb)));
  }
  /* r[l P + t] = o[4 t + l] */
  for (t = 0; t + 4 <= P; t += 4) {
    __m256d r0 = _mm256_loadu_pd(o + 4 * t),
            r1 = _mm256_loadu_pd(o + 4 * t + 4);
    __m256d r2 = _mm256_loadu_pd(o + 4 * t + 8),
            r3 = _mm256_loadu_pd(o + 4 * t + 12);
    __m256d u0 = _mm256_unpacklo_pd(r0, r1), u1 = _mm256_unpackhi_pd(r0, r1);
    __m256d u2 = _mm256_unpacklo_pd(r2, r3), u3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(r + t, _mm256_permute2f128_pd(u0, u2, 0x20));
    _mm256_storeu_pd(r + P + t, _mm256_permute2f128_pd(u1, u3, 0x20));
    _mm256_storeu_pd(r + 2 * P + t, _mm256_permute2f128_pd(u0, u2, 0x31));
    _mm256_storeu_pd(r + 3 * P + t, _mm256_permute2f128_pd(u1, u3, 0x31));
  }
  for (; t < P; t++)
    for (l = 0; l < 4; l++)
      r[l * P + t] = o[4 * t + l];
}
#endif

quantal_status
quantal_template_matcher_alloc(const quantal_template *t,
                               quantal_matcher **out, quantal_diag *diag)
{
  quantal_matcher *m;
  quantal_status st;
  size_t k;
  double mt;
  m = calloc(1, sizeof *m);
  if (m != NULL)
    m->oscale = 1.0;
  if (m == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  biexp_recursion(t, m);
  if (m->rec) {
    /* Pieces of at least twice the exponentials' length (the direct sum
     * that starts each costs M), and no FFT: a slow template (decay 200
     * ms) would otherwise take pieces, buffers and a block margin of the
     * FFT's size (8 template lengths, 131072 frames there). */
    m->P = 2 * m->M > 4096 ? 2 * m->M : 4096;
    m->w = malloc(4 * (2 * m->P + t->n) * sizeof *m->w);
    if (m->w == NULL) {
      free(m);
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    }
  } else {
    st = qtl_xcorr_alloc(t->y, t->n, 0, &m->xc, diag);
    if (st != QUANTAL_OK) {
      free(m);
      return st;
    }
    m->P = m->xc->step;
  }
  m->s1 = malloc(6 * m->P * sizeof *m->s1);
  if (m->s1 == NULL) {
    quantal_template_matcher_free(m);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  m->s2 = m->s1 + m->P;
  m->r = m->s2 + m->P;
  m->L = t->n;
  for (k = 0; k < t->n; k++)
    m->sum_t += t->y[k];
  mt = m->sum_t / (double)t->n;
  for (k = 0; k < t->n; k++)
    m->stt += (t->y[k] - mt) * (t->y[k] - mt);
  *out = m;
  return QUANTAL_OK;
}

void
qtl_template_matcher_screen(quantal_matcher *m, double thr, int polarity)
{
  m->screen = thr > 0.0 ? thr : 0.0;
  m->pol = polarity < 0 ? -1 : 1;
}

void
qtl_template_matcher_scale(quantal_matcher *m, double s)
{
  m->oscale = s;
}

void
qtl_template_matcher_phase(quantal_matcher *m, uint64_t phase)
{
  m->phase = phase;
}

size_t
qtl_template_matcher_margin(const quantal_matcher *m)
{
  /* The recursion's last piece starts from the run's end: a piece and
   * the template past it. */
  return m->rec ? m->P + m->L : qtl_xcorr_margin(m->xc);
}

void
quantal_template_matcher_free(quantal_matcher *m)
{
  if (m == NULL)
    return;
  qtl_xcorr_free(m->xc);
  free(m->s1);
  free(m->w);
  free(m->hit);
  free(m);
}

/* Record that outputs [lo, hi) passed the screen. */
static void
hit_add(quantal_matcher *m, size_t lo, size_t hi)
{
  span_add(&m->hit, &m->nhit, &m->hit_cap, &m->hit_ok, lo, hi);
}

int
qtl_template_matcher_hits(const quantal_matcher *m, const qtl_span **hit,
                          size_t *nhit)
{
  if (!(m->screen > 0.0) || !m->hit_ok)
    return -1;
  *hit = m->hit;
  *nhit = m->nhit;
  return 0;
}

/* s1[k] and s2[k], k = 0..cnt-1: the sums of v = x - c and of v^2 over
 * x[k..k+L), in double precision. s[0] is a direct sum (four lanes, the
 * tail in lane 0); then s[k + 1] = s[k] + d[k], d the difference of the
 * sample entering and the one leaving, as prefix sums four at a time:
 * with C = s[k], s[k+1..k+4] = C + (d0, d0 + d1, (d1 + d2) + d0,
 * (d2 + d3) + (d0 + d1)), the order of an in-register scan, so the AVX2
 * version gives these bits too; the dependency from one group to the next
 * is a single addition. x[cnt - 1 + L] must exist. */
static void
window_init(const double *x, size_t L, double c, double *s1, double *s2)
{
  double a1[4] = {0.0, 0.0, 0.0, 0.0}, a2[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i, l, L4 = L & ~(size_t)3;
  for (i = 0; i < L4; i += 4)
    for (l = 0; l < 4; l++) {
      double v = x[i + l] - c;
      a1[l] += v;
      a2[l] += v * v;
    }
  for (; i < L; i++) {
    double v = x[i] - c;
    a1[0] += v;
    a2[0] += v * v;
  }
  *s1 = (a1[0] + a1[1]) + (a1[2] + a1[3]);
  *s2 = (a2[0] + a2[1]) + (a2[2] + a2[3]);
}

/* From k on (s1[k], s2[k] set), one at a time: the tail of both versions. */
static void
window_tail(const double *x, size_t k, size_t cnt, size_t L, double c,
            double *s1, double *s2)
{
  for (; k + 1 < cnt; k++) {
    double vo = x[k] - c, vi = x[k + L] - c;
    s1[k + 1] = s1[k] + (vi - vo);
    s2[k + 1] = s2[k] + (vi * vi - vo * vo);
  }
}

static void
window_sums(const double *x, size_t cnt, size_t L, double c, double *s1,
            double *s2)
{
  size_t k, j;
  double d1[4], d2[4], c1, c2;
  if (cnt == 0)
    return;
  window_init(x, L, c, &s1[0], &s2[0]);
  c1 = s1[0];
  c2 = s2[0];
  for (k = 0; k + 5 <= cnt; k += 4) {
    for (j = 0; j < 4; j++) {
      double vo = x[k + j] - c, vi = x[k + j + L] - c;
      d1[j] = vi - vo;
      d2[j] = vi * vi - vo * vo;
    }
    s1[k + 1] = c1 + d1[0];
    s1[k + 2] = c1 + (d1[0] + d1[1]);
    s1[k + 3] = c1 + ((d1[1] + d1[2]) + d1[0]);
    s1[k + 4] = c1 = c1 + ((d1[2] + d1[3]) + (d1[0] + d1[1]));
    s2[k + 1] = c2 + d2[0];
    s2[k + 2] = c2 + (d2[0] + d2[1]);
    s2[k + 3] = c2 + ((d2[1] + d2[2]) + d2[0]);
    s2[k + 4] = c2 = c2 + ((d2[2] + d2[3]) + (d2[0] + d2[1]));
  }
  window_tail(x, k, cnt, L, c, s1, s2);
}

#ifdef QTL_X86_SIMD
/* The scan of window_sums in registers: t = d + (0, d0, d1, d2), then
 * t + (0, 0, t0, t1). No FMA. */
__attribute__((target("avx2"))) static void
window_sums_avx2(const double *x, size_t cnt, size_t L, double c, double *s1,
                 double *s2)
{
  size_t k;
  __m256d vc = _mm256_set1_pd(c), zero = _mm256_setzero_pd(), c1, c2;
  if (cnt == 0)
    return;
  window_init(x, L, c, &s1[0], &s2[0]);
  c1 = _mm256_set1_pd(s1[0]);
  c2 = _mm256_set1_pd(s2[0]);
  for (k = 0; k + 5 <= cnt; k += 4) {
    __m256d vo = _mm256_sub_pd(_mm256_loadu_pd(x + k), vc);
    __m256d vi = _mm256_sub_pd(_mm256_loadu_pd(x + k + L), vc);
    __m256d a = _mm256_sub_pd(vi, vo);
    __m256d b = _mm256_sub_pd(_mm256_mul_pd(vi, vi), _mm256_mul_pd(vo, vo));
    a = _mm256_add_pd(a, _mm256_blend_pd(_mm256_permute4x64_pd(a, 0x90),
                                         zero, 0x1));
    b = _mm256_add_pd(b, _mm256_blend_pd(_mm256_permute4x64_pd(b, 0x90),
                                         zero, 0x1));
    a = _mm256_add_pd(a, _mm256_permute2f128_pd(a, a, 0x08));
    b = _mm256_add_pd(b, _mm256_permute2f128_pd(b, b, 0x08));
    a = _mm256_add_pd(c1, a);
    b = _mm256_add_pd(c2, b);
    _mm256_storeu_pd(s1 + k + 1, a);
    _mm256_storeu_pd(s2 + k + 1, b);
    c1 = _mm256_permute4x64_pd(a, 0xFF);
    c2 = _mm256_permute4x64_pd(b, 0xFF);
  }
  window_tail(x, k, cnt, L, c, s1, s2);
}
#endif

/* The constants of the criterion of one matcher. */
typedef struct crit_k {
  double st_l, inv_l, inv_stt, inv_dof, scr2, pol, osc;
  quantal_matcher *m; /* screened: where the passes are recorded */
  size_t base;        /* output index of cr[0] */
} crit_k;

/* CB97 from the correlation R = sum T (x - c) and the window sums: the
 * centred sums of the normal equations are S_td = R - sum T S_1 / L and
 * S_dd = S_2 - S_1^2 / L (CB97 eqs. 2-4 with the data shifted by c, which
 * leaves scale and SSE unchanged). Screened (scr2 > 0): NaN unless
 * pol sc >= 0 and sc^2 >= screen^2 sse / dof, which is pol crit >=
 * screen without the square root. */
static void
crit_scalar(const crit_k *K, const double *r, const double *s1,
            const double *s2, size_t cnt, double *cr, double *scl)
{
  size_t k;
  for (k = 0; k < cnt; k++) {
    double std_ = r[k] - K->st_l * s1[k];
    double sdd = s2[k] - s1[k] * s1[k] * K->inv_l;
    double sc = std_ * K->inv_stt;
    double sse = sdd - sc * std_;
    sse = sse > 1e-300 ? sse : 1e-300;
    if (K->scr2 > 0.0 &&
        !(K->pol * sc >= 0.0 && sc * sc >= K->scr2 * K->inv_dof * sse)) {
      cr[k] = NAN;
    } else {
      cr[k] = sc / sqrt(sse * K->inv_dof) * K->osc;
      if (K->scr2 > 0.0)
        hit_add(K->m, K->base + k, K->base + k + 1);
    }
    if (scl)
      scl[k] = sc;
  }
}

#ifdef QTL_X86_SIMD
/* The same arithmetic, four latencies at a time (AVX2 without FMA, so the
 * values are those of crit_scalar bit for bit); where the screen passes
 * none of the four, the square root and division are skipped. */
__attribute__((target("avx2"))) static void
crit_avx2(const crit_k *K, const double *r, const double *s1, const double *s2,
          size_t cnt, double *cr, double *scl)
{
  size_t k;
  const __m256d st_l = _mm256_set1_pd(K->st_l), inv_l = _mm256_set1_pd(K->inv_l);
  const __m256d inv_stt = _mm256_set1_pd(K->inv_stt);
  const __m256d inv_dof = _mm256_set1_pd(K->inv_dof);
  const __m256d scr = _mm256_set1_pd(K->scr2 * K->inv_dof);
  const __m256d pol = _mm256_set1_pd(K->pol), tiny = _mm256_set1_pd(1e-300);
  const __m256d osc = _mm256_set1_pd(K->osc);
  const __m256d nan = _mm256_set1_pd(NAN), zero = _mm256_setzero_pd();
  const int screened = K->scr2 > 0.0;
  for (k = 0; k + 4 <= cnt; k += 4) {
    __m256d a = _mm256_loadu_pd(s1 + k), b = _mm256_loadu_pd(s2 + k);
    __m256d rr = _mm256_loadu_pd(r + k);
    __m256d std_ = _mm256_sub_pd(rr, _mm256_mul_pd(st_l, a));
    __m256d sdd = _mm256_sub_pd(b, _mm256_mul_pd(_mm256_mul_pd(a, a), inv_l));
    __m256d sc = _mm256_mul_pd(std_, inv_stt);
    __m256d sse = _mm256_sub_pd(sdd, _mm256_mul_pd(sc, std_));
    __m256d val;
    sse = _mm256_blendv_pd(tiny, sse, _mm256_cmp_pd(sse, tiny, _CMP_GT_OQ));
    if (screened) {
      __m256d pass = _mm256_and_pd(
          _mm256_cmp_pd(_mm256_mul_pd(pol, sc), zero, _CMP_GE_OQ),
          _mm256_cmp_pd(_mm256_mul_pd(sc, sc), _mm256_mul_pd(scr, sse),
                        _CMP_GE_OQ));
      if (_mm256_movemask_pd(pass) == 0) {
        val = nan;
      } else {
        hit_add(K->m, K->base + k, K->base + k + 4);
        val = _mm256_mul_pd(
            _mm256_div_pd(sc, _mm256_sqrt_pd(_mm256_mul_pd(sse, inv_dof))),
            osc);
        val = _mm256_blendv_pd(nan, val, pass);
      }
    } else {
      val = _mm256_mul_pd(
          _mm256_div_pd(sc, _mm256_sqrt_pd(_mm256_mul_pd(sse, inv_dof))),
          osc);
    }
    _mm256_storeu_pd(cr + k, val);
    if (scl)
      _mm256_storeu_pd(scl + k, sc);
  }
  {
    crit_k Kt = *K; /* the tail's outputs start at k */
    Kt.base += k;
    crit_scalar(&Kt, r + k, s1 + k, s2 + k, cnt - k, cr + k,
                scl ? scl + k : NULL);
  }
}

static int have_avx2;

static void
avx2_init(void)
{
  __builtin_cpu_init();
  have_avx2 = __builtin_cpu_supports("avx2") &&
              __builtin_cpu_supports("fma");
  /* QUANTAL_NO_SIMD (any value) takes the scalar paths: for the tests
   * that compare the two, and for timing them. */
  if (getenv("QUANTAL_NO_SIMD"))
    have_avx2 = 0;
}
#endif

int
qtl_have_avx2(void)
{
#ifdef QTL_X86_SIMD
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, avx2_init);
  return have_avx2;
#else
  return 0;
#endif
}

quantal_status
quantal_template_criterion(quantal_matcher *m, const double *x, size_t n,
                           double *crit, double *scale, quantal_diag *diag)
{
  size_t L = m->L, nout, s, cnt, q4 = 0;
  double c4[4];
  crit_k K;
  int avx2 = qtl_have_avx2();
  if (n < L)
    return qtl_fail(diag, QUANTAL_ERANGE, NULL, -1, -1,
                    "the trace (%zu samples) is shorter than the template "
                    "(%zu)", n, L);
  K.inv_l = 1.0 / (double)L;
  K.st_l = m->sum_t * K.inv_l;
  K.inv_stt = 1.0 / m->stt;
  K.inv_dof = 1.0 / ((double)L - 1.0);
  K.scr2 = m->screen * m->screen;
  K.pol = (double)m->pol;
  K.osc = m->oscale;
  K.m = m;
  m->nhit = 0;
  m->hit_ok = 1;
  nout = n - L + 1;
  /* One piece at a time: its correlation (the FFT's, in float, about
   * the mean of the transform's input; or the recursion's, in double,
   * about the piece's first sample), the window sums about the same
   * shift, then the criterion, all while the piece is in cache. */
  for (s = 0; s < nout; s += cnt) {
    double c, *r = m->r;
    /* Pieces of P outputs, cut at fixed frames (the first may be short). */
    size_t i, P = m->P, cap = s == 0 ? first_piece(m->phase, P) : P;
    if (m->rec) {
      cnt = nout - s < cap ? nout - s : cap;
#ifdef QTL_X86_SIMD
      /* Four whole pieces at once; their window sums and criteria then
       * one by one below (q4 counts them down). */
      if (avx2 && q4 == 0 && cnt == P && s + 4 * P <= nout) {
        for (i = 0; i < 4; i++)
          c4[i] = x[s + i * P];
        biexp_corr4_avx2(m, x, s, c4, m->r);
        q4 = 4;
      }
      if (q4 > 0) {
        c = c4[4 - q4];
        r = m->r + P * (4 - q4);
        q4--;
      } else
#endif
      {
        c = x[s];
        biexp_corr(m, x, s, cnt, c, r);
      }
    } else {
      cnt = xcorr_block(m->xc, x, n, s, &c);
      cnt = cnt < cap ? cnt : cap;
      for (i = 0; i < cnt; i++)
        m->r[i] = (double)m->xc->buf[i];
    }
#ifdef QTL_X86_SIMD
    if (avx2)
      window_sums_avx2(x + s, cnt, L, c, m->s1, m->s2);
    else
#endif
      window_sums(x + s, cnt, L, c, m->s1, m->s2);
    K.base = s;
#ifdef QTL_X86_SIMD
    if (avx2)
      crit_avx2(&K, r, m->s1, m->s2, cnt, crit + s,
                scale ? scale + s : NULL);
    else
#endif
      crit_scalar(&K, r, m->s1, m->s2, cnt, crit + s,
                  scale ? scale + s : NULL);
  }
  (void)avx2;
  (void)c4;
  (void)q4;
  return QUANTAL_OK;
}

/* ---- kinetics by non-linear least squares ----------------------------- */

typedef struct kin_data {
  const double *y;
  size_t n;
  double rate_hz;
} kin_data;

/* Parameters: baseline, amplitude, onset (s), ln rise, ln (decay - rise).
 * Writing decay as rise plus a positive excess keeps decay > rise: with
 * rise free to pass decay, an alpha-like event (rise close to decay) is
 * fitted as well by rise -> infinity, (1 - e^{-t/r}) ~ t / r, a
 * degenerate solution the fit then drifts into. The logs
 * keep the time constants positive without constraints. */
static int
kin_f(const gsl_vector *p, void *data, gsl_vector *f)
{
  const kin_data *d = data;
  double b = gsl_vector_get(p, 0), a = gsl_vector_get(p, 1);
  double t0 = gsl_vector_get(p, 2), r = exp(gsl_vector_get(p, 3));
  double dc = r + exp(gsl_vector_get(p, 4)), norm;
  size_t k;
  if (!isfinite(r) || !isfinite(dc) || r <= 0.0 || dc <= 0.0)
    return GSL_EDOM;
  norm = biexp_raw(biexp_tpeak(r, dc), r, dc);
  for (k = 0; k < d->n; k++) {
    double t = (double)k / d->rate_hz - t0;
    gsl_vector_set(f, k, b + a * biexp_raw(t, r, dc) / norm - d->y[k]);
  }
  return GSL_SUCCESS;
}

/* Time at which the unit-peak bi-exponential first reaches level (0..1),
 * by bisection on [0, t_peak] where it increases monotonically. */
static double
biexp_rise_time_to(double level, double r, double dc)
{
  double lo = 0.0, hi = biexp_tpeak(r, dc);
  int it;
  for (it = 0; it < 100; it++) {
    double mid = 0.5 * (lo + hi);
    if (quantal_template_biexp_value(mid, r, dc) < level)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

double
qtl_biexp_rise_10_90(double rise_s, double decay_s)
{
  return biexp_rise_time_to(0.9, rise_s, decay_s) -
         biexp_rise_time_to(0.1, rise_s, decay_s);
}

double
qtl_biexp_tpeak(double rise_s, double decay_s)
{
  return biexp_tpeak(rise_s, decay_s);
}

quantal_status
quantal_template_fit_kinetics(const double *y, size_t n, double rate_hz,
                              double rise_s, double decay_s, double onset_s,
                              quantal_kinetics *out, quantal_diag *diag)
{
  const gsl_multifit_nlinear_type *T = gsl_multifit_nlinear_trust;
  gsl_multifit_nlinear_parameters par =
      gsl_multifit_nlinear_default_parameters();
  gsl_multifit_nlinear_workspace *w;
  gsl_multifit_nlinear_fdf fdf;
  gsl_vector *p0;
  kin_data d;
  double b0 = 0.0, ext = 0.0, chisq;
  size_t k, nb, pk = 0;
  int status, info;

  if (n < 8 || !(rate_hz > 0.0) || !(rise_s > 0.0) || !(decay_s > 0.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "kinetics fit: needs 8 samples and positive guesses");
  for (k = 0; k < n; k++)
    if (!isfinite(y[k]))
      return qtl_fail(diag, QUANTAL_ENUMERIC, NULL, -1, (long long)k,
                      "kinetics fit: sample %zu is not finite", k);
  /* Starting values: baseline from the samples before the onset guess,
   * amplitude from the largest excursion from it. */
  nb = (size_t)(onset_s * rate_hz);
  if (nb > n / 2)
    nb = n / 2;
  if (nb == 0)
    nb = 1;
  for (k = 0; k < nb; k++)
    b0 += y[k];
  b0 /= (double)nb;
  for (k = nb; k < n; k++)
    if (fabs(y[k] - b0) > fabs(ext)) {
      ext = y[k] - b0;
      pk = k;
    }
  (void)pk;
  d.y = y;
  d.n = n;
  d.rate_hz = rate_hz;
  fdf.f = kin_f;
  fdf.df = NULL; /* forward-difference Jacobian */
  fdf.fvv = NULL;
  fdf.n = n;
  fdf.p = 5;
  fdf.params = &d;
  par.trs = gsl_multifit_nlinear_trs_lm;
  w = gsl_multifit_nlinear_alloc(T, &par, n, 5);
  p0 = gsl_vector_alloc(5);
  if (w == NULL || p0 == NULL) {
    if (w)
      gsl_multifit_nlinear_free(w);
    gsl_vector_free(p0);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  gsl_vector_set(p0, 0, b0);
  gsl_vector_set(p0, 1, ext);
  gsl_vector_set(p0, 2, onset_s);
  gsl_vector_set(p0, 3, log(rise_s));
  gsl_vector_set(p0, 4, log(decay_s > rise_s ? decay_s - rise_s
                                             : 0.5 * rise_s));
  status = gsl_multifit_nlinear_init(p0, &fdf, w);
  if (status == GSL_SUCCESS)
    status = gsl_multifit_nlinear_driver(400, 1e-10, 1e-10, 1e-12, NULL,
                                         NULL, &info, w);
  if (status == GSL_SUCCESS || status == GSL_EMAXITER) {
    const gsl_vector *p = gsl_multifit_nlinear_position(w);
    const gsl_vector *f = gsl_multifit_nlinear_residual(w);
    double r, dc;
    status = gsl_blas_ddot(f, f, &chisq);
    r = exp(gsl_vector_get(p, 3));
    dc = r + exp(gsl_vector_get(p, 4));
    out->baseline = gsl_vector_get(p, 0);
    out->amplitude = gsl_vector_get(p, 1);
    out->onset_s = gsl_vector_get(p, 2);
    out->rise_s = r;
    out->decay_s = dc;
    out->sse = chisq;
    out->iterations = gsl_multifit_nlinear_niter(w);
    if (status == GSL_SUCCESS && isfinite(r) && isfinite(dc) &&
        isfinite(out->amplitude))
      out->rise_10_90_s = qtl_biexp_rise_10_90(r, dc);
    else
      status = GSL_EFAILED;
  }
  gsl_multifit_nlinear_free(w);
  gsl_vector_free(p0);
  if (status != GSL_SUCCESS)
    return qtl_fail(diag, QUANTAL_EFAILED, NULL, -1, -1,
                    "kinetics fit did not converge (%s)",
                    gsl_strerror(status));
  return QUANTAL_OK;
}
