/* cmd_plot.c - quantal plot: figures of events, responses, fits. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "amplitudes.h"
#include "cmds.h"
#include "plot.h"
#include "progress.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/internal.h" /* qtl_median */

/* Frames read per block while decimating a trace. */
#define BLOCK_FRAMES 65536
/* Events averaged at most (evenly spaced through the table). */
#define MAX_AVERAGED 1000
/* Evoked traces read at most (evenly spaced); every amplitude is used. */
#define MAX_TRACES 400
/* Points of the fitted densities. */
#define N_GRID 400
/* Mixture components drawn at most. */
#define MAX_COMPONENTS 60

qt_plot_settings qt_plot_defaults = {0.0, 0.0, QUANTAL_PLOT_AUTO, 0};

/* ---- writing a figure atomically ---------------------------------------- */

typedef quantal_status (*fig_fn)(const void *data, const char *path,
                                 const quantal_plot_options *po,
                                 quantal_diag *diag);

static int
copy_to_stdout(const char *path)
{
  char buf[65536];
  size_t n;
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) {
    qt_error("%s: %s", path, strerror(errno));
    return QT_EXIT_IO;
  }
  while ((n = fread(buf, 1, sizeof buf, fp)) > 0)
    if (fwrite(buf, 1, n, stdout) != n)
      break;
  fclose(fp);
  return qt_finish_stdout(QT_EXIT_OK);
}

static void
report_fail(const quantal_diag *diag, quantal_status st, const char *tmp,
            const char *out_path)
{
  quantal_diag d = *diag;
  if (strcmp(d.file, tmp) == 0)
    qtl_strlcpy(d.file, out_path, sizeof d.file);
  qt_diag_error(&d, st);
}

static int
write_figure(const char *out_path, const char *title, fig_fn fn,
             const void *data)
{
  quantal_plot_options po = quantal_plot_options_default();
  quantal_diag diag;
  quantal_status st;
  qt_out o;
  int code;

  quantal_diag_clear(&diag);
  po.width_px = qt_plot_defaults.width_px;
  po.height_px = qt_plot_defaults.height_px;
  po.format = qt_plot_defaults.format;
  po.title = title;
  if (strcmp(out_path, "-") == 0) {
    char tmp[1100];
    const char *dir = getenv("TMPDIR");
    int fd;
    if (po.format == QUANTAL_PLOT_AUTO) {
      qt_error("-o -: give the figure's --format (png, svg or pdf)");
      return QT_EXIT_USAGE;
    }
    snprintf(tmp, sizeof tmp, "%s/quantal-plot.XXXXXX",
             dir && *dir ? dir : "/tmp");
    fd = mkstemp(tmp);
    if (fd < 0) {
      qt_error("%s: %s", tmp, strerror(errno));
      return QT_EXIT_IO;
    }
    close(fd);
    qt_track_tmp(tmp);
    st = fn(data, tmp, &po, &diag);
    if (st != QUANTAL_OK) {
      report_fail(&diag, st, tmp, "-");
      code = qt_exit_code(st);
    } else {
      code = copy_to_stdout(tmp);
    }
    unlink(tmp);
    qt_forget_tmp(tmp);
    return code;
  }
  if (po.format == QUANTAL_PLOT_AUTO) {
    st = quantal_plot_format_from_path(out_path, &po.format, &diag);
    if (st != QUANTAL_OK) {
      qt_diag_error(&diag, st);
      return QT_EXIT_USAGE;
    }
  }
  code = qt_out_open(&o, out_path);
  if (code != 0)
    return code;
  /* PLplot opens the file by name: close ours, let it write the
   * temporary file, then reopen it so qt_out_commit can sync and rename
   * it into place. */
  fclose(o.fp);
  o.fp = NULL;
  st = fn(data, o.tmp, &po, &diag);
  if (st != QUANTAL_OK) {
    report_fail(&diag, st, o.tmp, out_path);
    qt_out_abort(&o);
    return qt_exit_code(st);
  }
  o.fp = fopen(o.tmp, "ab");
  if (o.fp == NULL) {
    qt_error("%s: %s", out_path, strerror(errno));
    qt_out_abort(&o);
    return QT_EXIT_IO;
  }
  return qt_out_commit(&o);
}

static quantal_status
fig_detect(const void *d, const char *path, const quantal_plot_options *po,
           quantal_diag *diag)
{
  return quantal_plot_detect(d, path, po, diag);
}

static quantal_status
fig_evoked(const void *d, const char *path, const quantal_plot_options *po,
           quantal_diag *diag)
{
  return quantal_plot_evoked(d, path, po, diag);
}

static quantal_status
fig_fit(const void *d, const char *path, const quantal_plot_options *po,
        quantal_diag *diag)
{
  return quantal_plot_fit(d, path, po, diag);
}

static quantal_status
fig_score(const void *d, const char *path, const quantal_plot_options *po,
          quantal_diag *diag)
{
  return quantal_plot_score(d, path, po, diag);
}

typedef struct recovery_fig {
  const quantal_plot_recovery_param *par;
  size_t n;
} recovery_fig;

static quantal_status
fig_recovery(const void *d, const char *path,
             const quantal_plot_options *po, quantal_diag *diag)
{
  const recovery_fig *r = d;
  return quantal_plot_recovery(r->par, r->n, path, po, diag);
}

/* ---- tables ------------------------------------------------------------- */

static int
read_table(const char *path, quantal_table **t)
{
  quantal_diag diag;
  quantal_status st;
  quantal_diag_clear(&diag);
  st = quantal_table_read(path, t, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    return QT_EXIT_IO;
  }
  return 0;
}

static const double *
column(const quantal_table *t, const char *name)
{
  long j = quantal_table_find(t, name);
  return j < 0 ? NULL : quantal_table_column(t, (size_t)j);
}

/* The first amplitude_<unit> column: values and unit (into unit). */
static const double *
amplitude_column(const quantal_table *t, char *unit, size_t size)
{
  long j = quantal_table_find_prefix(t, "amplitude_");
  if (j < 0)
    return NULL;
  qtl_strlcpy(unit, quantal_table_colname(t, (size_t)j) + 10, size);
  return quantal_table_column(t, (size_t)j);
}

static const double *
prefix_column(const quantal_table *t, const char *prefix)
{
  long j = quantal_table_find_prefix(t, prefix);
  return j < 0 ? NULL : quantal_table_column(t, (size_t)j);
}

static const char *
base_name(const char *path)
{
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* ---- recordings --------------------------------------------------------- */

static int
open_channel(const char *path, const quantal_open_options *oo, size_t ch,
             quantal_recording **rec, quantal_recording_info *info,
             quantal_channel_info *ci)
{
  quantal_diag diag;
  quantal_status st;
  quantal_diag_clear(&diag);
  st = quantal_recording_open(path, oo, rec, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    return qt_exit_code(st);
  }
  quantal_recording_get_info(*rec, info);
  if (ch >= info->n_channels) {
    qt_error("%s: no channel %zu (the recording has %zu)", path, ch + 1,
             info->n_channels);
    quantal_recording_close(*rec);
    *rec = NULL;
    return QT_EXIT_USAGE;
  }
  quantal_recording_get_channel(*rec, ch, ci);
  if (info->frames == 0 || !(info->rate_hz > 0)) {
    qt_error("%s: no samples", path);
    quantal_recording_close(*rec);
    *rec = NULL;
    return QT_EXIT_IO;
  }
  return 0;
}

/* Read frames [first, first + n) of ch into buf, NaN outside the
 * recording. */
static quantal_status
read_window(quantal_recording *rec, size_t ch, long long first, size_t n,
            uint64_t frames, double *buf, quantal_diag *diag)
{
  long long a = first < 0 ? 0 : first;
  long long b = first + (long long)n;
  size_t i;
  for (i = 0; i < n; i++)
    buf[i] = NAN;
  if (b > (long long)frames)
    b = (long long)frames;
  if (a >= b)
    return QUANTAL_OK;
  return quantal_recording_read(rec, ch, (uint64_t)a, (size_t)(b - a),
                                buf + (a - first), diag);
}

/* ---- detect ------------------------------------------------------------- */

/* Template kinetics from a detect table's comment "template: rise R ms,
 * decay D ms"; NaN when absent. */
static void
template_kinetics(const quantal_table *t, double *rise_s, double *decay_s)
{
  size_t i;
  *rise_s = *decay_s = NAN;
  for (i = 0; i < quantal_table_n_comments(t); i++) {
    const char *c = strstr(quantal_table_comment(t, i), "template: rise ");
    double r, dcy;
    if (c != NULL && sscanf(c, "template: rise %lf ms, decay %lf ms", &r,
                            &dcy) == 2) {
      *rise_s = 1e-3 * r;
      *decay_s = 1e-3 * dcy;
    }
  }
}

static double
median_of(const double *x, size_t n)
{
  double *v = malloc((n ? n : 1) * sizeof *v), m;
  size_t i, k = 0;
  if (v == NULL)
    return NAN;
  for (i = 0; i < n; i++)
    if (isfinite(x[i]))
      v[k++] = x[i];
  m = k ? qtl_median(v, k) : NAN;
  free(v);
  return m;
}

int
qt_plot_detect(const char *rec_path, const quantal_open_options *oo,
               size_t ch, const char *events_tsv, const char *out_path,
               const char *title)
{
  quantal_table *t = NULL;
  quantal_recording *rec = NULL;
  quantal_recording_info info;
  quantal_channel_info ci;
  quantal_plot_detect_data d;
  quantal_diag diag;
  quantal_status st = QUANTAL_OK;
  const double *onset, *peak, *amp, *base, *overlap;
  double *lo = NULL, *hi = NULL, *buf = NULL, *strip = NULL, *avg = NULL,
         *win = NULL, *level = NULL, rate, dur, width;
  char unit[QUANTAL_UNIT_MAX], ttl[1200];
  size_t n_ev, n_cols, i, n_avg = 0, npre, npost, used = 0;
  uint64_t frames, pos;
  qt_progress prog;
  int code;

  memset(&d, 0, sizeof d);
  quantal_diag_clear(&diag);
  if ((code = read_table(events_tsv, &t)) != 0)
    return code;
  onset = column(t, "onset_s");
  if (onset == NULL)
    onset = column(t, "peak_s");
  if (onset == NULL)
    onset = column(t, "time_s");
  if (onset == NULL) {
    qt_error("%s: no onset_s, peak_s or time_s column", events_tsv);
    quantal_table_free(t);
    return QT_EXIT_IO;
  }
  peak = column(t, "peak_s");
  amp = amplitude_column(t, unit, sizeof unit);
  base = prefix_column(t, "baseline_");
  overlap = column(t, "overlap");
  n_ev = quantal_table_rows(t);
  template_kinetics(t, &d.rise_s, &d.decay_s);
  if ((code = open_channel(rec_path, oo, ch, &rec, &info, &ci)) != 0) {
    quantal_table_free(t);
    return code;
  }
  rate = info.rate_hz;
  frames = info.frames;
  dur = (double)frames / rate;

  /* Overview: min/max per pixel column of the panel, streamed. */
  width = qt_plot_defaults.width_px > 0 ? qt_plot_defaults.width_px : 1200;
  n_cols = (size_t)(0.91 * width);
  if ((uint64_t)n_cols > frames)
    n_cols = (size_t)frames;
  lo = malloc(n_cols * sizeof *lo);
  hi = malloc(n_cols * sizeof *hi);
  buf = malloc(BLOCK_FRAMES * sizeof *buf);
  level = malloc((n_ev ? n_ev : 1) * sizeof *level);
  if (lo == NULL || hi == NULL || buf == NULL || level == NULL) {
    st = qtl_fail(&diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    goto done;
  }
  for (i = 0; i < n_cols; i++) {
    lo[i] = INFINITY;
    hi[i] = -INFINITY;
  }
  qt_progress_begin(&prog, "plot: reading", frames, qt_plot_defaults.quiet);
  for (pos = 0; pos < frames;) {
    size_t m = frames - pos > BLOCK_FRAMES ? BLOCK_FRAMES
                                           : (size_t)(frames - pos);
    st = quantal_recording_read(rec, ch, pos, m, buf, &diag);
    if (st != QUANTAL_OK)
      break;
    quantal_plot_minmax(buf, m, pos, frames, n_cols, lo, hi);
    pos += m;
    qt_progress_update(&prog, pos);
  }
  qt_progress_end(&prog);
  if (st != QUANTAL_OK)
    goto done;
  d.env_lo = lo;
  d.env_hi = hi;
  d.n_cols = n_cols;
  d.env_t0_s = 0.0;
  d.env_dt_s = dur / (double)n_cols;
  d.rate_hz = rate;

  /* Zoomed strip: the one-second stretch holding the most events. */
  {
    double w = dur < 1.0 ? dur : 1.0, start = 0.0;
    size_t best = 0, j, n_strip;
    for (i = 0; i < n_ev; i++) {
      double s0 = onset[i] - 0.1 * w;
      size_t c = 0;
      if (!isfinite(onset[i]))
        continue;
      for (j = 0; j < n_ev; j++)
        c += onset[j] >= s0 && onset[j] < s0 + w;
      if (c > best) {
        best = c;
        start = s0;
      }
    }
    if (start + w > dur)
      start = dur - w;
    if (start < 0)
      start = 0;
    n_strip = (size_t)(w * rate);
    if (n_strip > frames)
      n_strip = (size_t)frames;
    strip = malloc((n_strip ? n_strip : 1) * sizeof *strip);
    if (strip == NULL) {
      st = qtl_fail(&diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
      goto done;
    }
    st = read_window(rec, ch, (long long)(start * rate), n_strip, frames,
                     strip, &diag);
    if (st != QUANTAL_OK)
      goto done;
    d.strip = strip;
    d.n_strip = n_strip;
    d.strip_t0_s = floor(start * rate) / rate;
  }

  /* Average of isolated events aligned on their onsets, each minus its
   * own baseline. */
  {
    double pre_s = 0.003, post_s = 0.025, stride;
    double rise = d.rise_s, decay = d.decay_s;
    if (!isfinite(decay)) {
      const double *dc = column(t, "decay_tau_ms");
      decay = dc ? 1e-3 * median_of(dc, n_ev) : NAN;
    }
    if (isfinite(rise) && 2.0 * rise > pre_s)
      pre_s = 2.0 * rise;
    if (isfinite(decay) && 5.0 * decay > post_s)
      post_s = 5.0 * decay;
    if (post_s > 1.0)
      post_s = 1.0;
    npre = (size_t)(pre_s * rate);
    npost = (size_t)(post_s * rate);
    n_avg = npre + npost;
    avg = calloc(n_avg, sizeof *avg);
    win = malloc(n_avg * sizeof *win);
    if (avg == NULL || win == NULL) {
      st = qtl_fail(&diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
      goto done;
    }
    stride = n_ev > MAX_AVERAGED ? (double)n_ev / MAX_AVERAGED : 1.0;
    for (i = 0; i < n_ev && (size_t)((double)i * stride) < n_ev; i++) {
      size_t e = (size_t)((double)i * stride), k;
      long long f0;
      double b;
      if (!isfinite(onset[e]) || (overlap && overlap[e] != 0))
        continue;
      f0 = (long long)llround(onset[e] * rate) - (long long)npre;
      if (f0 < 0 || f0 + (long long)n_avg > (long long)frames)
        continue;
      st = read_window(rec, ch, f0, n_avg, frames, win, &diag);
      if (st != QUANTAL_OK)
        goto done;
      b = base && isfinite(base[e]) ? base[e] : median_of(win, npre);
      if (!isfinite(b))
        continue;
      for (k = 0; k < n_avg; k++)
        avg[k] += win[k] - b;
      used++;
    }
    if (used > 0) {
      for (i = 0; i < n_avg; i++)
        avg[i] /= (double)used;
      d.avg = avg;
      d.n_avg = n_avg;
      d.n_averaged = used;
      d.avg_t0_s = -(double)npre / rate;
    }
  }
  for (i = 0; i < n_ev; i++)
    level[i] = amp && base ? base[i] + amp[i] : NAN;
  d.unit = amp ? unit : ci.unit;
  d.onset_s = onset;
  d.peak_s = peak;
  d.amplitude = amp;
  d.peak_level = level;
  d.n_events = n_ev;
  if (title == NULL) {
    snprintf(ttl, sizeof ttl, "quantal detect: %s, channel %zu (%s)",
             base_name(rec_path), ch + 1, ci.name);
    title = ttl;
  }
  quantal_recording_close(rec);
  rec = NULL;
  code = write_figure(out_path, title, fig_detect, &d);
done:
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    code = qt_exit_code(st);
  }
  quantal_recording_close(rec);
  quantal_table_free(t);
  free(lo);
  free(hi);
  free(buf);
  free(strip);
  free(avg);
  free(win);
  free(level);
  return code;
}

/* ---- evoked ------------------------------------------------------------- */

int
qt_plot_evoked(const char *rec_path, const quantal_open_options *oo,
               size_t ch, const char *evoked_tsv, const char *out_path,
               const char *title)
{
  quantal_table *t = NULL;
  quantal_recording *rec = NULL;
  quantal_recording_info info;
  quantal_channel_info ci;
  quantal_plot_evoked_data d;
  quantal_diag diag;
  quantal_status st = QUANTAL_OK;
  const double *stim, *amp, *base, *fail, *num;
  double *traces = NULL, pre_ms = 5.0, blank_ms = 1.0, win_ms = 30.0,
         stride;
  int *failure = NULL, *tfail = NULL;
  char unit[QUANTAL_UNIT_MAX], ttl[1200];
  size_t n, i, npre, ns, n_tr = 0;
  int code;

  memset(&d, 0, sizeof d);
  quantal_diag_clear(&diag);
  if ((code = read_table(evoked_tsv, &t)) != 0)
    return code;
  stim = column(t, "stim_s");
  amp = amplitude_column(t, unit, sizeof unit);
  if (stim == NULL || amp == NULL) {
    qt_error("%s: no %s column", evoked_tsv,
             stim == NULL ? "stim_s" : "amplitude_<unit>");
    quantal_table_free(t);
    return QT_EXIT_IO;
  }
  base = prefix_column(t, "baseline_");
  fail = column(t, "failure");
  num = column(t, "stimulus");
  n = quantal_table_rows(t);
  for (i = 0; i < quantal_table_n_comments(t); i++) {
    const char *c = strstr(quantal_table_comment(t, i), "settings: ");
    if (c != NULL)
      (void)sscanf(c, "settings: baseline %lf ms, blank %lf ms, window "
                      "%lf ms", &pre_ms, &blank_ms, &win_ms);
  }
  if ((code = open_channel(rec_path, oo, ch, &rec, &info, &ci)) != 0) {
    quantal_table_free(t);
    return code;
  }
  npre = (size_t)(1e-3 * pre_ms * info.rate_hz);
  ns = npre + (size_t)(1e-3 * win_ms * info.rate_hz) + 1;
  failure = calloc(n ? n : 1, sizeof *failure);
  tfail = calloc(MAX_TRACES, sizeof *tfail);
  traces = malloc((size_t)MAX_TRACES * ns * sizeof *traces);
  if (failure == NULL || tfail == NULL || traces == NULL) {
    st = qtl_fail(&diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    goto done;
  }
  for (i = 0; i < n; i++)
    failure[i] = fail && fail[i] == 1.0;
  stride = n > MAX_TRACES ? (double)n / MAX_TRACES : 1.0;
  for (i = 0; i < MAX_TRACES && (size_t)((double)i * stride) < n; i++) {
    size_t e = (size_t)((double)i * stride), k;
    double *row = traces + n_tr * ns, b;
    if (!isfinite(stim[e]))
      continue;
    st = read_window(rec, ch,
                     (long long)llround(stim[e] * info.rate_hz) -
                         (long long)npre,
                     ns, info.frames, row, &diag);
    if (st != QUANTAL_OK)
      goto done;
    b = base && isfinite(base[e]) ? base[e] : median_of(row, npre);
    for (k = 0; k < ns; k++)
      row[k] -= b;
    /* The stimulus artefact is blanked as in the measurement. */
    for (k = npre; k < ns && k < npre + (size_t)(1e-3 * blank_ms *
                                                 info.rate_hz); k++)
      row[k] = NAN;
    tfail[n_tr++] = failure[e];
  }
  d.unit = unit;
  d.n_traces = n_tr;
  d.n_samples = ns;
  d.traces = traces;
  d.trace_failure = tfail;
  d.rate_hz = info.rate_hz;
  d.t0_s = -(double)npre / info.rate_hz;
  d.n_resp = n;
  d.amplitude = amp;
  d.failure = failure;
  d.stimulus = num;
  if (title == NULL) {
    snprintf(ttl, sizeof ttl, "quantal evoked: %s, channel %zu (%s)",
             base_name(rec_path), ch + 1, ci.name);
    title = ttl;
  }
  quantal_recording_close(rec);
  rec = NULL;
  code = write_figure(out_path, title, fig_evoked, &d);
done:
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    code = qt_exit_code(st);
  }
  quantal_recording_close(rec);
  quantal_table_free(t);
  free(traces);
  free(failure);
  free(tfail);
  return code;
}

/* ---- fit ---------------------------------------------------------------- */

/* Release probabilities P(k), k = 0..kmax, of a fitted model. */
static void
release_pmf(const quantal_model_fit *mf, int model, double *pk, size_t kmax)
{
  size_t k;
  double m = mf->par[QUANTAL_PAR_M].value;
  double nn = mf->par[QUANTAL_PAR_N].value;
  double p = mf->par[QUANTAL_PAR_P].value;
  double cvp = mf->par[QUANTAL_PAR_CV_P].value;
  for (k = 0; k <= kmax; k++) {
    double kk = (double)k, lp = -INFINITY;
    switch (model) {
    case QUANTAL_FIT_POISSON:
      if (m > 0)
        lp = kk * log(m) - m - lgamma(kk + 1.0);
      else
        lp = k == 0 ? 0.0 : -INFINITY;
      break;
    case QUANTAL_FIT_BINOMIAL:
      if (kk <= nn && p > 0 && p < 1)
        lp = lgamma(nn + 1) - lgamma(kk + 1) - lgamma(nn - kk + 1) +
             kk * log(p) + (nn - kk) * log1p(-p);
      else if (kk <= nn)
        lp = (p <= 0 && k == 0) || (p >= 1 && kk == nn) ? 0.0 : -INFINITY;
      break;
    case QUANTAL_FIT_BETABINOMIAL:
      if (kk <= nn && p > 0 && p < 1) {
        /* Beta-binomial with mean p and CV cv_p of p across sites:
         * a + b = (1 - p) / (cv_p^2 p) - 1, a = p (a + b) (as in
         * quantal_sim_amplitudes); P(k) = C(n,k) B(k+a, n-k+b) / B(a,b). */
        double s = isfinite(cvp) && cvp > 0
                       ? (1 - p) / (cvp * cvp * p) - 1
                       : 1e12;
        double a = p * s, b = (1 - p) * s;
        lp = lgamma(nn + 1) - lgamma(kk + 1) - lgamma(nn - kk + 1) +
             lgamma(kk + a) + lgamma(nn - kk + b) - lgamma(nn + a + b) -
             (lgamma(a) + lgamma(b) - lgamma(a + b));
      }
      break;
    default:
      lp = k < mf->n_weights && mf->weights[k] > 0 ? log(mf->weights[k])
                                                   : -INFINITY;
      break;
    }
    pk[k] = exp(lp);
  }
}

static double
gauss(double x, double mu, double var)
{
  return exp(-0.5 * (x - mu) * (x - mu) / var) / sqrt(2 * M_PI * var);
}

int
qt_plot_fit_result(const double *amplitudes, size_t n, const double *minis,
                   size_t n_minis, const quantal_fit_result *fit, int model,
                   const char *unit, const char *out_path,
                   const char *title)
{
  const quantal_model_fit *mf;
  quantal_plot_fit_data d;
  double grid[N_GRID], dens[N_GRID], mgrid[N_GRID], mdens[N_GRID];
  double *pk = NULL, *comp = NULL, q, sq, s0, lo, hi;
  unsigned kk[MAX_COMPONENTS];
  char summary[512];
  size_t kmax, k, i, nc = 0, len = 0;
  int code, j;

  if (model < 0)
    model = fit->best;
  if (model < 0 || model >= QUANTAL_FIT_N_MODELS ||
      !fit->model[model].fitted) {
    qt_error("no fitted model to draw");
    return QT_EXIT_ANALYSIS;
  }
  mf = &fit->model[model];
  q = mf->par[QUANTAL_PAR_Q].value;
  sq = mf->par[QUANTAL_PAR_SIGMA_Q].value;
  s0 = mf->par[QUANTAL_PAR_SIGMA_0].value;
  if (!isfinite(sq))
    sq = 0;
  if (!isfinite(q) || !isfinite(s0)) {
    qt_error("the %s fit has no q or sigma_0", quantal_fit_model_name(model));
    return QT_EXIT_ANALYSIS;
  }
  /* Largest k: the model's n, or where a Poisson tail is negligible. */
  if (model == QUANTAL_FIT_POISSON) {
    double m = mf->par[QUANTAL_PAR_M].value;
    kmax = (size_t)(m + 8 * sqrt(m > 0 ? m : 0) + 8);
  } else if (model == QUANTAL_FIT_MIXTURE ||
             model == QUANTAL_FIT_MIXTURE_NOFAIL) {
    kmax = mf->n_weights ? mf->n_weights - 1 : 0;
  } else {
    kmax = (size_t)mf->par[QUANTAL_PAR_N].value;
  }
  if (kmax > 1000)
    kmax = 1000;
  pk = malloc((kmax + 1) * sizeof *pk);
  comp = malloc((size_t)MAX_COMPONENTS * N_GRID * sizeof *comp);
  if (pk == NULL || comp == NULL) {
    free(pk);
    free(comp);
    qt_error("out of memory");
    return QT_EXIT_ANALYSIS;
  }
  release_pmf(mf, model, pk, kmax);
  lo = INFINITY;
  hi = -INFINITY;
  for (i = 0; i < n; i++)
    if (isfinite(amplitudes[i])) {
      lo = fmin(lo, amplitudes[i]);
      hi = fmax(hi, amplitudes[i]);
    }
  lo = fmin(lo, 0.0) - 3 * s0;
  hi = fmax(hi, 0.0) + 3 * s0;
  for (i = 0; i < N_GRID; i++) {
    grid[i] = lo + (hi - lo) * (double)i / (N_GRID - 1);
    dens[i] = 0;
  }
  /* f(x) = sum_k P(k) phi(x; k q, sigma_0^2 + k sigma_q^2) (the DESIGN's
   * mixture; Stricker & Redman 1994). With gamma quantal sizes each
   * component is drawn as the Gaussian of the same mean and variance. */
  for (k = 0; k <= kmax; k++) {
    double var = s0 * s0 + (double)k * sq * sq, *c;
    int keep;
    if (!(pk[k] > 0) || !(var > 0))
      continue;
    keep = pk[k] > 1e-3 && nc < MAX_COMPONENTS;
    c = comp + nc * N_GRID;
    for (i = 0; i < N_GRID; i++) {
      double v = pk[k] * gauss(grid[i], (double)k * q, var);
      dens[i] += v;
      if (keep)
        c[i] = v;
    }
    if (keep)
      kk[nc++] = (unsigned)k;
  }
  memset(&d, 0, sizeof d);
  d.unit = unit;
  d.model = quantal_fit_model_name(model);
  d.amplitudes = amplitudes;
  d.n_amplitudes = n;
  d.grid = grid;
  d.n_grid = N_GRID;
  d.density = dens;
  d.n_components = nc;
  d.component_k = kk;
  d.components = comp;
  if (mf->n_profile >= 2) {
    d.profile_n = mf->profile_n;
    d.profile_loglik = mf->profile_loglik;
    d.n_profile = mf->n_profile;
  }
  if (minis != NULL && n_minis >= 2) {
    /* One quantum plus noise: phi(x; q, sigma_0^2 + sigma_q^2). */
    double mlo = INFINITY, mhi = -INFINITY, var = s0 * s0 + sq * sq;
    for (i = 0; i < n_minis; i++)
      if (isfinite(minis[i])) {
        mlo = fmin(mlo, minis[i]);
        mhi = fmax(mhi, minis[i]);
      }
    mlo = fmin(mlo, q - 3 * sqrt(var));
    mhi = fmax(mhi, q + 3 * sqrt(var));
    for (i = 0; i < N_GRID; i++) {
      mgrid[i] = mlo + (mhi - mlo) * (double)i / (N_GRID - 1);
      mdens[i] = gauss(mgrid[i], q, var);
    }
    d.minis = minis;
    d.n_minis = n_minis;
    d.minis_grid = mgrid;
    d.minis_density = mdens;
    d.n_minis_grid = N_GRID;
  }
  summary[0] = '\0';
  for (j = 0; j < QUANTAL_PAR_COUNT; j++) {
    double v = mf->par[j].value;
    if (!isfinite(v) || len + 40 >= sizeof summary)
      continue;
    len += (size_t)snprintf(summary + len, sizeof summary - len,
                            "%s%s = %.3g", len ? ", " : "",
                            quantal_fit_par_name((quantal_fit_par)j), v);
  }
  if (len + 40 < sizeof summary)
    snprintf(summary + len, sizeof summary - len, "; AIC %.1f",
             mf->aic);
  d.summary = summary;
  code = write_figure(out_path, title ? title : "quantal fit", fig_fit, &d);
  free(pk);
  free(comp);
  return code;
}

/* Finite values of a column, copied. */
static double *
finite_copy(const double *x, size_t n, size_t *m)
{
  double *v = malloc((n ? n : 1) * sizeof *v);
  size_t i;
  *m = 0;
  if (v == NULL)
    return NULL;
  for (i = 0; i < n; i++)
    if (isfinite(x[i]))
      v[(*m)++] = x[i];
  return v;
}

int
qt_plot_fit(const char *amps_tsv, const char *minis_tsv, int model,
            const char *out_path, const char *title)
{
  quantal_table *t = NULL, *tm = NULL;
  quantal_fit_options fo = quantal_fit_options_default();
  quantal_fit_result *r = NULL;
  quantal_diag diag;
  quantal_status st;
  const double *a, *ma = NULL;
  double *x = NULL, *mx = NULL, *sh = NULL;
  char unit[QUANTAL_UNIT_MAX], munit[QUANTAL_UNIT_MAX], ttl[1200];
  size_t n = 0, nm = 0;
  int code;

  quantal_diag_clear(&diag);
  if ((code = read_table(amps_tsv, &t)) != 0)
    return code;
  a = amplitude_column(t, unit, sizeof unit);
  if (a == NULL) {
    qt_error("%s: no amplitude_<unit> column", amps_tsv);
    quantal_table_free(t);
    return QT_EXIT_IO;
  }
  if (minis_tsv != NULL) {
    if ((code = read_table(minis_tsv, &tm)) != 0) {
      quantal_table_free(t);
      return code;
    }
    ma = amplitude_column(tm, munit, sizeof munit);
    if (ma == NULL) {
      qt_error("%s: no amplitude_<unit> column", minis_tsv);
      code = QT_EXIT_IO;
      goto done;
    }
  }
  x = finite_copy(a, quantal_table_rows(t), &n);
  if (ma != NULL)
    mx = finite_copy(ma, quantal_table_rows(tm), &nm);
  if (x == NULL || (ma != NULL && mx == NULL)) {
    qt_error("out of memory");
    code = QT_EXIT_ANALYSIS;
    goto done;
  }
  if (model >= 0)
    fo.models |= QUANTAL_FIT_BIT(model);
  /* The table's shams enter the fit as in quantal fit. */
  if ((code = qt_shams_read(t, amps_tsv, unit, -1, &sh)) != 0)
    goto done;
  fo.shams = sh;
  fo.n_shams = sh ? 2 * quantal_table_rows(t) : 0;
  st = quantal_fit_run(x, n, mx, nm, &fo, &r, &diag);
  if (st != QUANTAL_OK) {
    if (diag.file[0] == '\0')
      qtl_strlcpy(diag.file, amps_tsv, sizeof diag.file);
    qt_diag_error(&diag, st);
    code = qt_exit_code(st);
    goto done;
  }
  if (title == NULL) {
    snprintf(ttl, sizeof ttl, "quantal fit: %s%s%s", base_name(amps_tsv),
             minis_tsv ? " with minis " : "",
             minis_tsv ? base_name(minis_tsv) : "");
    title = ttl;
  }
  code = qt_plot_fit_result(x, n, mx, nm, r, model, unit, out_path, title);
done:
  quantal_fit_result_free(r);
  quantal_table_free(t);
  quantal_table_free(tm);
  free(x);
  free(mx);
  free(sh);
  return code;
}

/* ---- compare ------------------------------------------------------------ */

static const double *
time_column(const quantal_table *t)
{
  static const char *names[] = {"onset_s", "peak_s", "time_s", "stim_s"};
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    const double *c = column(t, names[i]);
    if (c != NULL)
      return c;
  }
  return NULL;
}

int
qt_plot_compare(const char *events_tsv, const char *truth_tsv,
                double tolerance_s, const char *kind, const char *out_path,
                const char *title)
{
  quantal_table *te = NULL, *tt = NULL;
  const double *ds, *da, *ts, *ta;
  double *ts2 = NULL, *ta2 = NULL;
  size_t *match = NULL, nd, nt, i, k = 0;
  quantal_match_result res;
  quantal_plot_score_data d;
  quantal_diag diag;
  quantal_status st;
  char unit[QUANTAL_UNIT_MAX], tunit[QUANTAL_UNIT_MAX], ttl[1200];
  long kc = -1;
  int code;

  quantal_diag_clear(&diag);
  if ((code = read_table(events_tsv, &te)) != 0)
    return code;
  if ((code = read_table(truth_tsv, &tt)) != 0) {
    quantal_table_free(te);
    return code;
  }
  ds = time_column(te);
  ts = time_column(tt);
  if (ds == NULL || ts == NULL) {
    qt_error("%s: no onset_s, peak_s, time_s or stim_s column",
             ds == NULL ? events_tsv : truth_tsv);
    code = QT_EXIT_IO;
    goto done;
  }
  unit[0] = tunit[0] = '\0';
  da = amplitude_column(te, unit, sizeof unit);
  ta = amplitude_column(tt, tunit, sizeof tunit);
  nd = quantal_table_rows(te);
  nt = quantal_table_rows(tt);
  if (kind != NULL) {
    kc = quantal_table_find(tt, "kind");
    if (kc < 0) {
      qt_error("%s: no 'kind' column for --kind", truth_tsv);
      code = QT_EXIT_IO;
      goto done;
    }
  }
  ts2 = malloc((nt ? nt : 1) * sizeof *ts2);
  ta2 = malloc((nt ? nt : 1) * sizeof *ta2);
  match = malloc((nd ? nd : 1) * sizeof *match);
  if (ts2 == NULL || ta2 == NULL || match == NULL) {
    qt_error("out of memory");
    code = QT_EXIT_ANALYSIS;
    goto done;
  }
  for (i = 0; i < nt; i++) {
    if (kc >= 0 && strcmp(quantal_table_cell(tt, i, (size_t)kc), kind) != 0)
      continue;
    ts2[k] = ts[i];
    ta2[k++] = ta ? ta[i] : NAN;
  }
  st = quantal_compare_events(ds, da, nd, ts2, ta ? ta2 : NULL, k,
                              tolerance_s, match, &res, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    code = qt_exit_code(st);
    goto done;
  }
  memset(&d, 0, sizeof d);
  d.unit = unit[0] ? unit : tunit;
  d.det_s = ds;
  d.det_amp = da;
  d.n_det = nd;
  d.true_s = ts2;
  d.true_amp = ta ? ta2 : NULL;
  d.n_true = k;
  d.match = match;
  d.result = &res;
  if (title == NULL) {
    snprintf(ttl, sizeof ttl, "quantal compare: %s against %s",
             base_name(events_tsv), base_name(truth_tsv));
    title = ttl;
  }
  code = write_figure(out_path, title, fig_score, &d);
done:
  quantal_table_free(te);
  quantal_table_free(tt);
  free(ts2);
  free(ta2);
  free(match);
  return code;
}

int
qt_plot_recovery(const quantal_recovery_result *r, const char *unit,
                 const char *out_path, const char *title)
{
  quantal_plot_recovery_param par[QUANTAL_PAR_COUNT];
  char names[QUANTAL_PAR_COUNT][64];
  double *buf;
  size_t n = 0, i, rep = r->replicates;
  recovery_fig f;
  int k, code;

  buf = malloc((size_t)QUANTAL_PAR_COUNT * 3 * (rep ? rep : 1) *
               sizeof *buf);
  if (buf == NULL) {
    qt_error("out of memory");
    return QT_EXIT_ANALYSIS;
  }
  for (k = 0; k < QUANTAL_PAR_COUNT; k++) {
    double *v = buf + (size_t)k * 3 * rep, *lo = v + rep, *hi = lo + rep;
    int amp = k == QUANTAL_PAR_Q || k == QUANTAL_PAR_SIGMA_Q ||
              k == QUANTAL_PAR_SIGMA_0;
    if (!isfinite(r->truth[k]) || r->par[k].n_estimates == 0)
      continue;
    for (i = 0; i < rep; i++) {
      int ok = r->ok == NULL || r->ok[i];
      size_t at = i * QUANTAL_PAR_COUNT + (size_t)k;
      v[i] = ok ? r->estimates[at] : NAN;
      lo[i] = ok && r->lower ? r->lower[at] : NAN;
      hi[i] = ok && r->upper ? r->upper[at] : NAN;
    }
    snprintf(names[n], sizeof names[n], amp && unit ? "%s (%s)" : "%s",
             quantal_fit_par_name((quantal_fit_par)k), unit ? unit : "");
    par[n].name = names[n];
    par[n].truth = r->truth[k];
    par[n].n = rep;
    par[n].value = v;
    par[n].lo = lo;
    par[n].hi = hi;
    n++;
  }
  if (n == 0) {
    free(buf);
    qt_error("no parameter with a true value and estimates to draw");
    return QT_EXIT_ANALYSIS;
  }
  f.par = par;
  f.n = n;
  code = write_figure(out_path, title ? title : "quantal compare: recovery",
                      fig_recovery, &f);
  free(buf);
  return code;
}

/* ---- the subcommand ----------------------------------------------------- */

static void
usage(FILE *fp)
{
  fprintf(fp,
          "Usage: quantal plot detect RECORDING EVENTS.tsv -o FIG\n"
          "       quantal plot evoked RECORDING EVOKED.tsv -o FIG\n"
          "       quantal plot fit AMPLITUDES.tsv [--minis MINIS.tsv] -o FIG\n"
          "       quantal plot compare DETECTED.tsv TRUTH.tsv -o FIG\n"
          "Draw the figure of an analysis with PLplot: FIG ends in .png,\n"
          ".svg or .pdf.\n\n"
          "  -o, --output FIG     the figure (required; - = stdout with\n"
          "                       --format)\n"
          "  --format F           png, svg or pdf (default: FIG's "
          "extension)\n"
          "  --width PX           figure width (1200)\n"
          "  --height PX          figure height (1000; compare 900)\n"
          "  --title TEXT         figure title (default: command and "
          "input)\n"
          "  -c, --channel N      recorded channel (1)\n"
          "  --minis FILE         fit: minis table sharing q\n"
          "  --model M            fit: poisson, binomial, betabinomial,\n"
          "                       mixture, mixture_nofail (default: best\n"
          "                       by AIC of poisson and binomial)\n"
          "  --tolerance-ms MS    compare: largest onset difference (2)\n"
          "  --kind K             compare: truth rows of this kind only\n"
          "  -q, --quiet          no progress bar\n"
          "  --rate HZ, --units U, --scale S   as in quantal info\n"
          "  --sweeps LIST         only these sweeps, as given to detect or\n"
          "                        evoked\n"
          "  -h, --help           show this help and exit\n\n"
          "Exit status: 0 ok, 1 nothing to draw or fit failed, 2 usage,\n"
          "3 file problem. See quantal-plot(1).\n");
}

static int
model_parse(const char *s)
{
  int m;
  for (m = 0; m < QUANTAL_FIT_N_MODELS; m++)
    if (strcmp(s, quantal_fit_model_name((quantal_fit_model)m)) == 0)
      return m;
  return -1;
}

enum {
  OPT_FORMAT = QT_OPT_FIRST_FREE,
  OPT_WIDTH,
  OPT_HEIGHT,
  OPT_TITLE,
  OPT_MINIS,
  OPT_MODEL,
  OPT_TOL,
  OPT_KIND
};

int
cmd_plot(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"output", required_argument, NULL, 'o'},
      {"format", required_argument, NULL, OPT_FORMAT},
      {"width", required_argument, NULL, OPT_WIDTH},
      {"height", required_argument, NULL, OPT_HEIGHT},
      {"title", required_argument, NULL, OPT_TITLE},
      {"channel", required_argument, NULL, 'c'},
      {"minis", required_argument, NULL, OPT_MINIS},
      {"model", required_argument, NULL, OPT_MODEL},
      {"tolerance-ms", required_argument, NULL, OPT_TOL},
      {"kind", required_argument, NULL, OPT_KIND},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      QT_RECORDING_LONGOPTS,
      {NULL, 0, NULL, 0}};
  qt_recopts ro;
  int common;
  quantal_open_options oo;
  const char *out = NULL, *title = NULL, *minis = NULL, *kind = NULL,
             *what;
  double tol_ms = 2.0;
  long ch = 1;
  int opt, model = -1, nargs;

  memset(&ro, 0, sizeof ro);
  memset(&qt_plot_defaults, 0, sizeof qt_plot_defaults);
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":ho:c:q", longopts, NULL)) != -1) {
    switch (opt) {
    case 'o': out = optarg; break;
    case 'c':
      if (qt_parse_long("--channel", optarg, 1, QUANTAL_MAX_CHANNELS, &ch))
        return QT_EXIT_USAGE;
      break;
    case 'q': qt_plot_defaults.quiet = 1; break;
    case OPT_FORMAT:
      if (strcmp(optarg, "png") == 0)
        qt_plot_defaults.format = QUANTAL_PLOT_PNG;
      else if (strcmp(optarg, "svg") == 0)
        qt_plot_defaults.format = QUANTAL_PLOT_SVG;
      else if (strcmp(optarg, "pdf") == 0)
        qt_plot_defaults.format = QUANTAL_PLOT_PDF;
      else
        return qt_usage_error("--format: '%s' is not png, svg or pdf",
                              optarg);
      break;
    case OPT_WIDTH:
      if (qt_parse_double("--width", optarg, 200, 20000,
                          &qt_plot_defaults.width_px))
        return QT_EXIT_USAGE;
      break;
    case OPT_HEIGHT:
      if (qt_parse_double("--height", optarg, 150, 20000,
                          &qt_plot_defaults.height_px))
        return QT_EXIT_USAGE;
      break;
    case OPT_TITLE: title = optarg; break;
    case OPT_MINIS: minis = optarg; break;
    case OPT_MODEL:
      model = model_parse(optarg);
      if (model < 0)
        return qt_usage_error("--model: unknown model '%s'", optarg);
      break;
    case OPT_TOL:
      if (qt_parse_double("--tolerance-ms", optarg, 1e-6, 1e6, &tol_ms))
        return QT_EXIT_USAGE;
      break;
    case OPT_KIND: kind = optarg; break;
    case 'h': usage(stdout); return qt_finish_stdout(QT_EXIT_OK);
    default:
      if ((common = qt_common_option(opt, &ro, argv)) != 0)
        return common;
      break;
    }
  }
  if (optind >= argc)
    return qt_usage_error("no figure kind given (detect, evoked, fit, "
                          "compare)");
  /* Options may come before or after the kind and its files (getopt
   * permutes them to the front). */
  what = argv[optind++];
  nargs = argc - optind;
  if (out == NULL)
    return qt_usage_error("no figure given (-o FIG.png|FIG.svg|FIG.pdf)");
  oo = qt_recopts_get(&ro);
  if (strcmp(what, "detect") == 0 || strcmp(what, "evoked") == 0 ||
      strcmp(what, "compare") == 0) {
    if (nargs != 2)
      return qt_usage_error("plot %s needs two files, got %d", what, nargs);
  } else if (strcmp(what, "fit") == 0) {
    if (nargs != 1)
      return qt_usage_error("plot fit needs one amplitude table, got %d",
                            nargs);
  } else {
    return qt_usage_error("unknown figure kind '%s' (detect, evoked, fit, "
                          "compare)", what);
  }
  if (strcmp(what, "detect") == 0)
    return qt_plot_detect(argv[optind], &oo, (size_t)(ch - 1),
                          argv[optind + 1], out, title);
  if (strcmp(what, "evoked") == 0)
    return qt_plot_evoked(argv[optind], &oo, (size_t)(ch - 1),
                          argv[optind + 1], out, title);
  if (strcmp(what, "fit") == 0)
    return qt_plot_fit(argv[optind], minis, model, out, title);
  return qt_plot_compare(argv[optind], argv[optind + 1], 1e-3 * tol_ms,
                         kind, out, title);
}
