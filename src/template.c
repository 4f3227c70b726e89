/* template.c - event templates, the optimally scaled template fit and kinetics. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <fftw3.h>
#include <gsl/gsl_blas.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multifit_nlinear.h>
#include <gsl/gsl_vector.h>
#include <math.h>
#include <pthread.h>
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

struct qtl_xcorr {
  size_t nfft, klen, step;
  float *buf;
  fftwf_complex *spec, *kspec;
  fftwf_plan fwd, inv;
};

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
  fftwf_free(c->buf);
  fftwf_free(c->spec);
  fftwf_free(c->kspec);
  free(c);
}

quantal_status
qtl_xcorr_alloc(const double *k, size_t klen, qtl_xcorr **out,
                quantal_diag *diag)
{
  qtl_xcorr *c;
  size_t nfft = 4096, i;
  if (klen == 0)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1, "empty kernel");
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

/* out[i] = sum_j k[j] (x[i + j] - shift[b]) for i = 0..n-klen, where
 * shift[b] is the mean of the FFT block b holding i (returned through
 * block_shift when not NULL: one value per output, so that callers can
 * correct sums). */
void
qtl_xcorr_run(qtl_xcorr *c, const double *x, size_t n, double *out,
              double *block_shift)
{
  size_t s, i, nout, nfft = c->nfft, nb = nfft / 2 + 1;
  if (n < c->klen)
    return;
  nout = n - c->klen + 1;
  for (s = 0; s < nout; s += c->step) {
    size_t m = n - s < nfft ? n - s : nfft, cnt;
    double shift = 0.0;
    for (i = 0; i < m; i++)
      shift += x[s + i];
    shift /= (double)m;
    for (i = 0; i < m; i++)
      c->buf[i] = (float)(x[s + i] - shift);
    for (; i < nfft; i++)
      c->buf[i] = 0.0f;
    fftwf_execute_dft_r2c(c->fwd, c->buf, c->spec);
    for (i = 0; i < nb; i++) {
      float a = c->spec[i][0], b = c->spec[i][1];
      float kr = c->kspec[i][0], ki = c->kspec[i][1];
      c->spec[i][0] = a * kr - b * ki;
      c->spec[i][1] = a * ki + b * kr;
    }
    fftwf_execute_dft_c2r(c->inv, c->spec, c->buf);
    cnt = nout - s < c->step ? nout - s : c->step;
    for (i = 0; i < cnt; i++)
      out[s + i] = (double)c->buf[i];
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
  double *corr, *shift;
  size_t cap;
  double screen; /* > 0: criterion only where pol * crit >= screen */
  int pol;
};

quantal_status
quantal_template_matcher_alloc(const quantal_template *t,
                               quantal_matcher **out, quantal_diag *diag)
{
  quantal_matcher *m;
  quantal_status st;
  size_t k;
  double mt;
  m = calloc(1, sizeof *m);
  if (m == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  st = qtl_xcorr_alloc(t->y, t->n, &m->xc, diag);
  if (st != QUANTAL_OK) {
    free(m);
    return st;
  }
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
quantal_template_matcher_free(quantal_matcher *m)
{
  if (m == NULL)
    return;
  qtl_xcorr_free(m->xc);
  free(m->corr);
  free(m->shift);
  free(m);
}

quantal_status
quantal_template_criterion(quantal_matcher *m, const double *x, size_t n,
                           double *crit, double *scale, quantal_diag *diag)
{
  size_t L = m->L, nout, i, j;
  double L_d = (double)L;
  if (n < L)
    return qtl_fail(diag, QUANTAL_ERANGE, NULL, -1, -1,
                    "the trace (%zu samples) is shorter than the template "
                    "(%zu)", n, L);
  nout = n - L + 1;
  if (m->cap < nout) {
    double *a = realloc(m->corr, nout * sizeof *a);
    if (a == NULL)
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    m->corr = a;
    a = realloc(m->shift, nout * sizeof *a);
    if (a == NULL)
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    m->shift = a;
    m->cap = nout;
  }
  qtl_xcorr_run(m->xc, x, n, m->corr, m->shift);
  /* Running sums of (x - shift) and its square over the template window,
   * per stretch of equal block shift, in double precision. With the
   * correlation R = sum T (x - c) they give the centred sums of the normal
   * equations: S_td = R - sum T S_1 / L, S_dd = S_2 - S_1^2 / L (CB97
   * eqs. 2-4 with the data shifted by c, which leaves scale and SSE
   * unchanged). The sums slide by one sample per latency (two dependent
   * additions), and the per-latency arithmetic has no carried dependency
   * and one division and one square root. */
  for (i = 0; i < nout;) {
    double c = m->shift[i], s1 = 0.0, s2 = 0.0;
    size_t e = i;
    const double *xs = x + i;
    const double *corr = m->corr + i;
    double *cr = crit + i, *scl = scale ? scale + i : NULL;
    double st = m->sum_t, inv_stt = 1.0 / m->stt, inv_l = 1.0 / L_d;
    double inv_dof = 1.0 / (L_d - 1.0);
    double screen2 = m->screen * m->screen, pol = (double)m->pol;
    size_t cnt, k;
    while (e < nout && m->shift[e] == c)
      e++;
    cnt = e - i;
    for (j = 0; j < L; j++) {
      double v = xs[j] - c;
      s1 += v;
      s2 += v * v;
    }
    for (k = 0; k < cnt; k++) {
      double std_ = corr[k] - st * s1 * inv_l;
      double sdd = s2 - s1 * s1 * inv_l;
      double sc = std_ * inv_stt;
      double sse = sdd - sc * std_, vo, vi;
      sse = sse > 1e-300 ? sse : 1e-300;
      /* pol sc / sqrt(sse / dof) >= screen  <=>  pol sc >= 0 and
       * sc^2 >= screen^2 sse / dof */
      if (screen2 > 0.0 &&
          !(pol * sc >= 0.0 && sc * sc >= screen2 * sse * inv_dof))
        cr[k] = NAN;
      else
        cr[k] = sc / sqrt(sse * inv_dof);
      if (scl)
        scl[k] = sc;
      if (k + 1 < cnt) {
        vo = xs[k] - c;
        vi = xs[k + L] - c;
        s1 += vi - vo;
        s2 += vi * vi - vo * vo;
      }
    }
    i = e;
  }
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
