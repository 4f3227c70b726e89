/* cmd_compare.c - quantal compare: check results against ground truth. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "amplitudes.h"
#include "cmds.h"
#include "plot.h"
#include "progress.h"
#include "util.h"

#include "../src/internal.h" /* qtl_json_*, qtl_has_suffix */

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
  OPT_JSON = QT_OPT_FIRST_FREE,
  OPT_EVENTS,
  OPT_TRUTH,
  OPT_TOLERANCE,
  OPT_KIND,
  OPT_TIME_COLUMN,
  OPT_AMP_COLUMN,
  OPT_MINIS,
  OPT_COLUMN,
  OPT_MODEL,
  OPT_N_MAX,
  OPT_REPLICATES,
  OPT_TRIALS,
  OPT_SEED,
  OPT_THREADS,
  OPT_QUIET,
  OPT_PLOT,
  OPT_NOISE,
  OPT_NO_SHAMS,
  OPT_WAVEFORM,
  OPT_RISE,
  OPT_DECAY,
  OPT_RATE
};

static void
usage(FILE *fp)
{
  fprintf(fp,
      "Usage: quantal compare [OPTION]... AMPLITUDES.tsv|FIT.json\n"
      "       quantal compare --events DETECTED.tsv --truth TRUTH.tsv "
      "[OPTION]...\n"
      "Could these numbers have been recovered? Fit the amplitudes, then\n"
      "simulate many experiments like this one with the fitted parameters,\n"
      "analyse each the same way, and report bias, RMS error and interval\n"
      "coverage per parameter, a predictive check of the data against the\n"
      "simulations, and (--trials) how precision grows with stimuli.\n"
      "With --events/--truth: score a detector against ground truth.\n\n"
      "Recovery (amplitude tables as for quantal fit, or the JSON result\n"
      "of quantal fit --json, which names its tables, model and n_max):\n"
      "  --minis FILE         minis table, fitted jointly (same q)\n"
      "  --column NAME        amplitude column (first amplitude_<unit>)\n"
      "  --model M            poisson, binomial or betabinomial: the model\n"
      "                       simulated and scored (default: the one fit\n"
      "                       prefers by AIC among poisson and binomial)\n"
      "  --n-max N            largest n profiled (100)\n"
      "  --noise-sd X         sigma_0 known: fixed at X in every fit and\n"
      "                       in the simulations (default: estimated;\n"
      "                       from FIT.json when its fit fixed it)\n"
      "  --no-shams           leave the table's sham_* columns out (also\n"
      "                       when FIT.json's fit used none of them)\n"
      "  --waveform           simulate whole recordings shaped like the\n"
      "                       original (from the table of quantal evoked)\n"
      "                       and measure, detect and fit each one\n"
      "  --rise MS, --decay MS  response kinetics for --waveform (default:\n"
      "                       fitted to the mean response of the recording)\n"
      "  --rate HZ            sample rate for --waveform when the recording\n"
      "                       cannot be read\n"
      "  --replicates B       simulated experiments (200)\n"
      "  --trials N1,N2,...   design: recovery at these numbers of stimuli\n"
      "  --seed N             random seed (1); results do not depend on\n"
      "                       --threads\n"
      "  --threads N          0 = all processors (0)\n"
      "  --quiet              no progress bar\n"
      "Detection scoring:\n"
      "  --events FILE        detected events (TSV)\n"
      "  --truth FILE         true events (TSV), e.g. OUT.truth.tsv\n"
      "  --tolerance-ms MS    largest onset difference of a match (2)\n"
      "  --kind K             only truth rows of this kind (column 'kind',\n"
      "                       e.g. spontaneous); default all\n"
      "  --time-column NAME   time column, seconds (default: onset_s,\n"
      "                       else peak_s, time_s, stim_s)\n"
      "  --amplitude-column NAME  amplitude column (default: the first\n"
      "                       amplitude_<unit>)\n"
      "Output:\n"
      "  -o, --output FILE    write the report to FILE (default stdout)\n"
      "  --json               JSON instead of the readable report\n"
      "  --plot FIG           also draw the result (.png .svg .pdf)\n"
      "  -h, --help           show this help and exit\n\n"
      "Exit status: 0 ok, 1 the data cannot be fitted, 2 usage, 3 a table\n"
      "cannot be read or lacks a column. See quantal-compare(1).\n");
}

typedef struct events {
  double *t, *amp;
  size_t n;
  char unit[QUANTAL_UNIT_MAX];
  char time_col[64], amp_col[64];
} events;

static void
events_free(events *e)
{
  free(e->t);
  free(e->amp);
  memset(e, 0, sizeof *e);
}

/* Load times (and amplitudes) of a table; kind filters on a 'kind'
 * column when not NULL. */
static int
load_events(const char *path, const char *time_col, const char *amp_col,
            const char *kind, events *e)
{
  static const char *time_names[] = {"onset_s", "peak_s", "time_s",
                                     "stim_s"};
  quantal_table *t;
  quantal_diag d;
  quantal_status st = quantal_table_read(path, &t, &d);
  const double *tc, *ac = NULL;
  long ct = -1, ca = -1, ck = -1;
  size_t i, rows;
  memset(e, 0, sizeof *e);
  if (st != QUANTAL_OK) {
    qt_diag_error(&d, st);
    return qt_exit_code(st);
  }
  if (time_col != NULL) {
    ct = quantal_table_find(t, time_col);
  } else {
    for (i = 0; i < 4 && ct < 0; i++)
      ct = quantal_table_find(t, time_names[i]);
  }
  if (ct < 0) {
    qt_error("%s: no time column (%s)", path,
             time_col ? time_col : "onset_s, peak_s, time_s or stim_s");
    quantal_table_free(t);
    return QT_EXIT_IO;
  }
  ca = amp_col ? quantal_table_find(t, amp_col)
               : quantal_table_find_prefix(t, "amplitude_");
  if (amp_col != NULL && ca < 0) {
    qt_error("%s: no column '%s'", path, amp_col);
    quantal_table_free(t);
    return QT_EXIT_IO;
  }
  if (kind != NULL && (ck = quantal_table_find(t, "kind")) < 0) {
    qt_error("%s: --kind given but the table has no 'kind' column", path);
    quantal_table_free(t);
    return QT_EXIT_IO;
  }
  snprintf(e->time_col, sizeof e->time_col, "%s",
           quantal_table_colname(t, (size_t)ct));
  if (ca >= 0) {
    const char *name = quantal_table_colname(t, (size_t)ca);
    const char *u = strncmp(name, "amplitude_", 10) == 0 ? name + 10 : "";
    snprintf(e->amp_col, sizeof e->amp_col, "%s", name);
    snprintf(e->unit, sizeof e->unit, "%s", u);
  }
  rows = quantal_table_rows(t);
  e->t = malloc((rows + 1) * sizeof *e->t);
  e->amp = malloc((rows + 1) * sizeof *e->amp);
  if (e->t == NULL || e->amp == NULL) {
    quantal_table_free(t);
    events_free(e);
    qt_error("%s: out of memory", path);
    return QT_EXIT_ANALYSIS;
  }
  tc = quantal_table_column(t, (size_t)ct);
  if (ca >= 0)
    ac = quantal_table_column(t, (size_t)ca);
  for (i = 0; i < rows; i++) {
    if (ck >= 0 && strcmp(quantal_table_cell(t, i, (size_t)ck), kind) != 0)
      continue;
    if (!isfinite(tc[i])) {
      qt_error("%s: row %zu: '%s' is not a time in seconds", path, i + 1,
               quantal_table_cell(t, i, (size_t)ct));
      quantal_table_free(t);
      events_free(e);
      return QT_EXIT_IO;
    }
    e->t[e->n] = tc[i];
    e->amp[e->n] = ac ? ac[i] : NAN;
    e->n++;
  }
  quantal_table_free(t);
  return 0;
}

static void
report_text(FILE *fp, const char *det, const char *truth, double tol_s,
            const events *de, const quantal_match_result *r)
{
  fprintf(fp, "quantal compare: %s against %s (tolerance %g ms)\n", det,
          truth, tol_s * 1e3);
  fprintf(fp, "true events       %zu\n", r->n_true);
  fprintf(fp, "detected          %zu\n", r->n_detected);
  fprintf(fp, "matched           %zu\n", r->true_positives);
  fprintf(fp, "false positives   %zu\n", r->false_positives);
  fprintf(fp, "missed            %zu\n", r->false_negatives);
  fprintf(fp, "precision         %.4f\n", r->precision);
  fprintf(fp, "recall            %.4f\n", r->recall);
  fprintf(fp, "F1                %.4f\n", r->f1);
  fprintf(fp,
          "onset error       mean %.4g ms, SD %.4g ms, median |error| %.4g "
          "ms\n",
          r->onset_error_mean_s * 1e3, r->onset_error_sd_s * 1e3,
          r->onset_error_median_abs_s * 1e3);
  if (r->n_amplitudes > 0)
    fprintf(fp,
            "amplitude error   mean %.4g %s, RMS %.4g %s, median relative "
            "%.3g %% (%zu matches)\n",
            r->amplitude_error_mean, de->unit, r->amplitude_error_rms,
            de->unit, 100.0 * r->amplitude_error_median_rel, r->n_amplitudes);
}

static void
report_json(FILE *fp, const char *det, const char *truth, double tol_s,
            const events *de, const quantal_match_result *r)
{
  fprintf(fp, "{\"version\": ");
  qt_json_string(fp, quantal_version());
  fprintf(fp, ", \"events\": ");
  qt_json_string(fp, det);
  fprintf(fp, ", \"truth\": ");
  qt_json_string(fp, truth);
  qt_json_field(fp, "tolerance_ms", tol_s * 1e3);
  fprintf(fp, ", \"unit\": ");
  qt_json_string(fp, de->unit);
  fprintf(fp,
          ",\n \"true_events\": %zu, \"detected\": %zu, \"matched\": %zu, "
          "\"false_positives\": %zu, \"missed\": %zu,\n \"precision\": ",
          r->n_true, r->n_detected, r->true_positives, r->false_positives,
          r->false_negatives);
  qt_json_number(fp, r->precision);
  qt_json_field(fp, "recall", r->recall);
  qt_json_field(fp, "f1", r->f1);
  fprintf(fp, ",\n \"onset_error_mean_ms\": ");
  qt_json_number(fp, r->onset_error_mean_s * 1e3);
  qt_json_field(fp, "onset_error_sd_ms", r->onset_error_sd_s * 1e3);
  qt_json_field(fp, "onset_error_median_abs_ms", r->onset_error_median_abs_s * 1e3);
  fprintf(fp, ",\n \"amplitude_matches\": %zu, \"amplitude_error_mean\": ",
          r->n_amplitudes);
  qt_json_number(fp, r->amplitude_error_mean);
  qt_json_field(fp, "amplitude_error_rms", r->amplitude_error_rms);
  qt_json_field(fp, "amplitude_error_median_rel", r->amplitude_error_median_rel);
  fprintf(fp, "}\n");
}

static int
score_events(const char *det, const char *truth, double tol_s,
             const char *kind, const char *time_col, const char *amp_col,
             const char *output, int json, const char *plot)
{
  events de, te;
  quantal_match_result r;
  quantal_diag d;
  quantal_status st;
  qt_out out;
  int code;
  if ((code = load_events(det, time_col, amp_col, NULL, &de)) != 0)
    return code;
  if ((code = load_events(truth, time_col, amp_col, kind, &te)) != 0) {
    events_free(&de);
    return code;
  }
  if (de.unit[0] && te.unit[0] && strcmp(de.unit, te.unit) != 0) {
    qt_error("%s: amplitudes are in %s but %s has %s", det, de.unit, truth,
             te.unit);
    events_free(&de);
    events_free(&te);
    return QT_EXIT_IO;
  }
  quantal_diag_clear(&d);
  st = quantal_compare_events(de.t, de.amp, de.n, te.t, te.amp, te.n, tol_s,
                              NULL, &r, &d);
  if (st != QUANTAL_OK) {
    qt_diag_error(&d, st);
    events_free(&de);
    events_free(&te);
    return qt_exit_code(st);
  }
  if ((code = qt_out_open(&out, output)) == 0) {
    if (json)
      report_json(out.fp, det, truth, tol_s, &de, &r);
    else
      report_text(out.fp, det, truth, tol_s, &de, &r);
    code = qt_out_commit(&out);
  }
  if (code == 0 && plot != NULL)
    code = qt_plot_compare(det, truth, tol_s, kind, plot, NULL);
  events_free(&de);
  events_free(&te);
  return code;
}

/* ---- recovery, predictive check, design -------------------------------- */

typedef struct rec_cli {
  const char *amp_path, *minis_path, *column, *output, *plot;
  int model;            /* quantal_fit_model, or -1 = best by AIC */
  unsigned n_max;
  int n_max_given;
  double noise_sd; /* > 0: sigma_0 fixed */
  int no_shams;    /* the table's shams left out */
  size_t replicates;
  size_t trials[32], n_trials_list;
  uint64_t seed;
  unsigned threads;
  int json, quiet;
  int waveform;
  double rise_ms, decay_ms, rate_hz; /* 0: not given */
} rec_cli;

static void
on_rep_progress(size_t done, size_t total, void *user)
{
  (void)total;
  qt_progress_update(user, done);
}

/* Release parameters of a fitted model, the truth of the simulations. */
static quantal_release_params
fitted_truth(const quantal_model_fit *mf, int model)
{
  quantal_release_params t;
  memset(&t, 0, sizeof t);
  t.model = model == QUANTAL_FIT_POISSON   ? QUANTAL_RELEASE_POISSON
            : model == QUANTAL_FIT_BINOMIAL ? QUANTAL_RELEASE_BINOMIAL
                                            : QUANTAL_RELEASE_BETABINOMIAL;
  t.m = mf->par[QUANTAL_PAR_M].value;
  t.n = isfinite(mf->par[QUANTAL_PAR_N].value)
            ? (unsigned)llround(mf->par[QUANTAL_PAR_N].value)
            : 0;
  t.p = isfinite(mf->par[QUANTAL_PAR_P].value) ? mf->par[QUANTAL_PAR_P].value
                                               : 0.0;
  t.cv_p = isfinite(mf->par[QUANTAL_PAR_CV_P].value)
               ? mf->par[QUANTAL_PAR_CV_P].value
               : 0.0;
  t.q = mf->par[QUANTAL_PAR_Q].value;
  t.cv_q = mf->par[QUANTAL_PAR_CV_Q].value;
  if (!isfinite(t.cv_q) || t.cv_q < 0.0)
    t.cv_q = 0.0;
  t.shape = QUANTAL_QSHAPE_GAUSSIAN;
  t.noise_sd = mf->par[QUANTAL_PAR_SIGMA_0].value;
  if (!isfinite(t.noise_sd) || t.noise_sd < 0.0)
    t.noise_sd = 0.0;
  return t;
}

/* Two-sided Monte Carlo p-value of obs among the simulated values. */
static double
mc_p(double obs, const quantal_recovery_result *r, int stat)
{
  size_t i, lo = 0, hi = 0, n = 0;
  if (!isfinite(obs))
    return NAN;
  for (i = 0; i < r->replicates; i++) {
    double v = r->stats[i * QUANTAL_STAT_COUNT + stat];
    if (!isfinite(v))
      continue;
    n++;
    lo += v <= obs;
    hi += v >= obs;
  }
  if (n == 0)
    return NAN;
  return fmin(1.0, 2.0 * (double)((lo < hi ? lo : hi) + 1) / (double)(n + 1));
}

static void
sim_stat_range(const quantal_recovery_result *r, int stat, double *mean,
               double *sd)
{
  double s = 0.0, s2 = 0.0;
  size_t i, n = 0;
  for (i = 0; i < r->replicates; i++) {
    double v = r->stats[i * QUANTAL_STAT_COUNT + stat];
    if (!isfinite(v))
      continue;
    s += v;
    s2 += v * v;
    n++;
  }
  *mean = n ? s / (double)n : NAN;
  *sd = n > 1 ? sqrt(fmax(0.0, (s2 - s * s / (double)n) / (double)(n - 1)))
              : NAN;
}

/* Median relative half-width of parameter k's intervals; INFINITY when
 * more than half are unbounded. */
static double
median_rel_halfwidth(const quantal_recovery_result *r, int k)
{
  double *w = malloc((r->replicates + 1) * sizeof *w), med;
  size_t i, n = 0;
  if (w == NULL)
    return NAN;
  for (i = 0; i < r->replicates; i++) {
    double lo = r->lower[i * QUANTAL_PAR_COUNT + k];
    double hi = r->upper[i * QUANTAL_PAR_COUNT + k];
    double v = r->estimates[i * QUANTAL_PAR_COUNT + k];
    if (!r->ok[i] || isnan(lo) || isnan(hi) || !isfinite(v) || v == 0.0)
      continue;
    w[n++] = 0.5 * (hi - lo) / fabs(v);
  }
  if (n == 0) {
    free(w);
    return NAN;
  }
  /* Sorting puts unbounded widths last. */
  for (i = 1; i < n; i++) {
    double x = w[i];
    size_t j = i;
    while (j > 0 && w[j - 1] > x) {
      w[j] = w[j - 1];
      j--;
    }
    w[j] = x;
  }
  med = n % 2 ? w[n / 2] : 0.5 * (w[n / 2 - 1] + w[n / 2]);
  free(w);
  return med;
}

static const int scored[] = {QUANTAL_PAR_M,  QUANTAL_PAR_N,
                             QUANTAL_PAR_P,  QUANTAL_PAR_CV_P,
                             QUANTAL_PAR_Q,  QUANTAL_PAR_CV_Q,
                             QUANTAL_PAR_SIGMA_0};
#define N_SCORED (sizeof scored / sizeof scored[0])

/* Words for what the numbers say about one parameter; returns the number
 * of lines written. */
static int
verdict(FILE *fp, const quantal_recovery_param *p, const char *name,
        double level, size_t n_trials, double p_release)
{
  double se_cov, se_bias;
  int lines = 0;
  if (!isfinite(p->truth) || p->n_estimates == 0)
    return 0;
  if (p->n_unbounded * 10 > p->n_intervals && p->n_intervals > 0) {
    double u = 100.0 * (double)p->n_unbounded / (double)p->n_intervals;
    if (strcmp(name, "n") == 0)
      fprintf(fp,
              "  n is not identifiable with %zu trials at p = %.3g: the "
              "upper CI bound is unbounded in %.0f %% of replicates\n",
              n_trials, p_release, u);
    else
      fprintf(fp,
              "  %s: the upper CI bound is unbounded in %.0f %% of "
              "replicates\n",
              name, u);
    lines++;
  }
  se_bias = p->sd / sqrt((double)p->n_estimates);
  if (isfinite(se_bias) && fabs(p->bias) > 2.0 * se_bias &&
      fabs(p->bias) > 0.02 * fabs(p->truth)) {
    /* A truth at (nearly) zero makes a relative bias meaningless. */
    if (fabs(p->truth) > 0.01 * p->sd)
      fprintf(fp, "  %s is biased by %+.1f %% (%.1f standard errors)\n",
              name, 100.0 * p->bias / fabs(p->truth), p->bias / se_bias);
    else
      fprintf(fp, "  %s is biased by %+.4g (%.1f standard errors; the "
                  "fitted value is about 0)\n",
              name, p->bias, p->bias / se_bias);
    lines++;
  }
  if (p->n_intervals >= 20) {
    se_cov = sqrt(level * (1 - level) / (double)p->n_intervals);
    if (p->coverage < level - 2 * se_cov) {
      fprintf(fp,
              "  %s: the %.0f %% intervals are too narrow: they cover the "
              "truth in %.1f %% of replicates\n",
              name, 100 * level, 100 * p->coverage);
      lines++;
    } else if (p->coverage > level + 2 * se_cov) {
      fprintf(fp,
              "  %s: the %.0f %% intervals are conservative (coverage "
              "%.1f %%)\n",
              name, 100 * level, 100 * p->coverage);
      lines++;
    }
  }
  return lines;
}

/* ---- the waveform path: the shape of the original experiment --------- */

typedef struct wave_cli {
  quantal_waveform_shape w;
  double *stim;
  unsigned *pulse;
  char input[1024];
  int recording_read;   /* the kinetics and rate came from the recording */
  int kinetics_given;   /* --rise/--decay */
  quantal_status rec_status;
  char rec_reason[512];
} wave_cli;

static void
wave_cli_free(wave_cli *wc)
{
  free(wc->stim);
  free(wc->pulse);
  memset(wc, 0, sizeof *wc);
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of the finite values of column j (NaN when none). */
static double
column_median(const quantal_table *t, size_t j)
{
  const double *v = quantal_table_column(t, j);
  size_t i, n = 0, rows = quantal_table_rows(t);
  double *w = malloc((rows + 1) * sizeof *w), m = NAN;
  if (w == NULL)
    return NAN;
  for (i = 0; i < rows; i++)
    if (isfinite(v[i]))
      w[n++] = v[i];
  if (n > 0) {
    qsort(w, n, sizeof *w, cmp_double);
    m = n % 2 ? w[n / 2] : 0.5 * (w[n / 2 - 1] + w[n / 2]);
  }
  free(w);
  return m;
}

/* The value of --NAME in a recorded command line ("--NAME V" or
 * "--NAME=V"), copied into buf; 0 when absent. */
static int
command_option(const char *cmd, const char *name, char *buf, size_t size)
{
  size_t len = strlen(name);
  const char *p = cmd;
  while ((p = strstr(p, name)) != NULL) {
    const char *v = p + len;
    if ((p == cmd || p[-1] == ' ') && (*v == ' ' || *v == '=')) {
      size_t k = 0;
      v++;
      while (*v == ' ')
        v++;
      while (v[k] != '\0' && v[k] != ' ' && k + 1 < size)
        k++;
      memcpy(buf, v, k);
      buf[k] = '\0';
      return 1;
    }
    p = v;
  }
  return 0;
}

/* Time after onset at which the unit-peak bi-exponential first reaches
 * 10 % of its peak (the evoked template's onset is that point). */
static double
biexp_t10(double rise_s, double decay_s)
{
  double lo = 0.0, hi = rise_s * decay_s / (decay_s - rise_s) *
                        log(decay_s / rise_s);
  int k;
  for (k = 0; k < 60; k++) {
    double mid = 0.5 * (lo + hi);
    if (quantal_template_biexp_value(mid, rise_s, decay_s) < 0.1)
      lo = mid;
    else
      hi = mid;
  }
  return 0.5 * (lo + hi);
}

/* Read the shape of the experiment behind the amplitude table of quantal
 * evoked: its provenance lines, its per-stimulus columns, and the
 * recording it names (for the rate, duration and the kinetics of the mean
 * response). Returns 0 or an exit code after printing the error. */
static int
load_waveform_shape(const rec_cli *c, const qt_amplitudes *a, size_t n_minis,
                    wave_cli *wc)
{
  quantal_table *t = NULL;
  quantal_diag d;
  quantal_status st;
  quantal_recording *rec = NULL;
  const char *cmd = NULL, *settings = NULL, *input = NULL, *templ = NULL;
  long c_stim, c_pulse, c_base = -1, c_noise = -1, channel = 1;
  char name[96], buf[64];
  size_t i, k, rows;
  double onset10_ms = NAN, excluded_s;
  quantal_waveform_shape *w = &wc->w;
  int code = 0;

  memset(wc, 0, sizeof *wc);
  w->evoked = quantal_evoked_options_default();
  st = quantal_table_read(c->amp_path, &t, &d);
  if (st != QUANTAL_OK) {
    qt_diag_error(&d, st);
    return qt_exit_code(st);
  }
  for (k = 0; k < quantal_table_n_comments(t); k++) {
    const char *line = quantal_table_comment(t, k);
    while (*line == ' ')
      line++;
    if (strncmp(line, "command: ", 9) == 0)
      cmd = line + 9;
    else if (strncmp(line, "settings: ", 10) == 0)
      settings = line + 10;
    else if (strncmp(line, "input: ", 7) == 0)
      input = line + 7;
    else if (strncmp(line, "template: ", 10) == 0)
      templ = line + 10;
    else if (strncmp(line, "channel: ", 9) == 0)
      channel = strtol(line + 9, NULL, 10);
  }
  if (cmd == NULL || strncmp(cmd, "evoked", 6) != 0 || input == NULL) {
    qt_error("%s: --waveform needs the table of quantal evoked, whose "
             "'# command: evoked' and '# input:' lines say how the "
             "recording was made and measured; this table has %s",
             c->amp_path, cmd == NULL ? "no '# command:' line"
                          : strncmp(cmd, "evoked", 6) != 0
                              ? "no '# command: evoked' line"
                              : "no '# input:' line");
    code = QT_EXIT_IO;
    goto done;
  }
  qtl_strlcpy(wc->input, input, sizeof wc->input);
  /* The per-stimulus columns: when, the level before, the noise. */
  c_stim = quantal_table_find(t, "stim_s");
  c_pulse = quantal_table_find(t, "pulse");
  snprintf(name, sizeof name, "baseline_%s", a->unit);
  if (a->unit[0] != '\0')
    c_base = quantal_table_find(t, name);
  if (c_stim < 0 || c_base < 0) {
    qt_error("%s: --waveform needs the column %s", c->amp_path,
             c_stim < 0 ? "stim_s" : name);
    code = QT_EXIT_IO;
    goto done;
  }
  snprintf(name, sizeof name, "noise_sd_%s", a->unit);
  c_noise = quantal_table_find(t, name);
  if (c_noise < 0) {
    qt_error("%s: --waveform needs the column %s", c->amp_path, name);
    code = QT_EXIT_IO;
    goto done;
  }
  rows = quantal_table_rows(t);
  if (rows != a->n) {
    qt_error("%s: --waveform: %zu rows but %zu amplitudes", c->amp_path, rows,
             a->n);
    code = QT_EXIT_IO;
    goto done;
  }
  wc->stim = malloc((rows + 1) * sizeof *wc->stim);
  wc->pulse = malloc((rows + 1) * sizeof *wc->pulse);
  if (wc->stim == NULL || wc->pulse == NULL) {
    qt_error("%s: out of memory", c->amp_path);
    code = QT_EXIT_ANALYSIS;
    goto done;
  }
  for (i = 0; i < rows; i++) {
    double ts = quantal_table_column(t, (size_t)c_stim)[i];
    double pu = c_pulse >= 0 ? quantal_table_column(t, (size_t)c_pulse)[i]
                             : 1.0;
    if (!(ts >= 0.0) || !isfinite(ts) || (i > 0 && !(ts > wc->stim[i - 1]))) {
      qt_error("%s: row %zu: stim_s '%s' is not a time after the previous "
               "stimulus",
               c->amp_path, i + 1, quantal_table_cell(t, i, (size_t)c_stim));
      code = QT_EXIT_IO;
      goto done;
    }
    wc->stim[i] = ts;
    wc->pulse[i] = isfinite(pu) && pu >= 1.0 ? (unsigned)pu : 1u;
  }
  w->stim_s = wc->stim;
  w->pulse = wc->pulse;
  w->n_stim = rows;
  w->unit = a->unit;
  w->resting = column_median(t, (size_t)c_base);
  w->noise_sd = column_median(t, (size_t)c_noise);
  if (!isfinite(w->resting) || !isfinite(w->noise_sd)) {
    qt_error("%s: --waveform: the columns baseline_%s and noise_sd_%s hold "
             "no numbers",
             c->amp_path, a->unit, a->unit);
    code = QT_EXIT_IO;
    goto done;
  }
  w->clamp = strcmp(a->unit, "mV") == 0 ? QUANTAL_SIM_CURRENT_CLAMP
                                         : QUANTAL_SIM_VOLTAGE_CLAMP;
  /* The measurement as evoked made it: its settings line has the
   * numbers; the polarity is re-decided from the data unless the
   * command fixed it. */
  if (settings != NULL) {
    double b, bl, wi, j, al;
    if (sscanf(settings, "baseline %lf ms, blank %lf ms, window %lf ms, "
                         "jitter %lf ms, alpha %lf",
               &b, &bl, &wi, &j, &al) == 5) {
      w->evoked.baseline_s = b * 1e-3;
      w->evoked.blank_s = bl * 1e-3;
      w->evoked.window_s = wi * 1e-3;
      w->evoked.jitter_s = j * 1e-3;
      w->evoked.alpha = al;
    }
  }
  if (command_option(cmd, "--polarity", buf, sizeof buf))
    w->evoked.polarity = strcmp(buf, "positive") == 0   ? 1
                         : strcmp(buf, "negative") == 0 ? -1
                                                        : 0;
  if (templ != NULL) {
    const char *o = strstr(templ, "onset (10 %) ");
    if (o != NULL)
      onset10_ms = strtod(o + 13, NULL);
  }
  /* The recording: its rate, length and the kinetics of its mean
   * response. */
  quantal_diag_clear(&d);
  st = quantal_recording_open(wc->input, NULL, &rec, &d);
  wc->rec_status = st;
  if (st != QUANTAL_OK)
    qtl_strlcpy(wc->rec_reason, d.reason, sizeof wc->rec_reason);
  wc->kinetics_given = c->rise_ms > 0.0;
  if (wc->kinetics_given) {
    w->rise_s = c->rise_ms * 1e-3;
    w->decay_s = c->decay_ms * 1e-3;
    w->delay_s = isfinite(onset10_ms)
                     ? onset10_ms * 1e-3 - biexp_t10(w->rise_s, w->decay_s)
                     : 0.0;
  }
  if (st == QUANTAL_OK) {
    quantal_recording_info info;
    quantal_recording_get_info(rec, &info);
    wc->recording_read = 1;
    w->rate_hz = info.rate_hz;
    w->duration_s = (double)info.frames / info.rate_hz;
    if (!wc->kinetics_given) {
      quantal_kinetics kin;
      if (channel < 1 || (size_t)channel > info.n_channels)
        channel = 1;
      st = quantal_evoked_kinetics(rec, (size_t)channel - 1, wc->stim,
                                   wc->pulse, rows, &w->evoked, &kin, &d);
      if (st != QUANTAL_OK) {
        qt_error("%s: --waveform: the kinetics of the mean response could "
                 "not be measured (%s); give --rise MS and --decay MS",
                 wc->input, d.reason);
        code = qt_exit_code(st);
        goto done;
      }
      w->rise_s = kin.rise_s;
      w->decay_s = kin.decay_s;
      w->delay_s = kin.onset_s;
    }
  } else {
    const char *miss = !wc->kinetics_given && !(c->rate_hz > 0.0)
                           ? "--rise MS, --decay MS and --rate HZ"
                       : !wc->kinetics_given ? "--rise MS and --decay MS"
                       : !(c->rate_hz > 0.0) ? "--rate HZ"
                                             : NULL;
    if (miss != NULL) {
      qt_error("%s: --waveform: the recording %s it was measured from "
               "cannot be read (%s): give %s",
               c->amp_path, wc->input, d.reason, miss);
      code = QT_EXIT_IO;
      goto done;
    }
    w->rate_hz = c->rate_hz;
    /* Without the recording its end is not known: one more interval (at
     * least a response window) after the last stimulus. */
    {
      double gap = w->evoked.window_s;
      if (rows > 1) {
        double *iv = malloc(rows * sizeof *iv);
        if (iv != NULL) {
          for (i = 1; i < rows; i++)
            iv[i - 1] = wc->stim[i] - wc->stim[i - 1];
          qsort(iv, rows - 1, sizeof *iv, cmp_double);
          gap = fmax(gap, iv[(rows - 1) / 2]);
          free(iv);
        }
      }
      w->duration_s = wc->stim[rows - 1] + gap;
    }
  }
  if (!(w->delay_s >= 0.0))
    w->delay_s = 0.0;
  /* Minis: the table's count over the time they were looked for (the
   * recording less the windows excluded around each stimulus). */
  w->minis_before_s = 1e-3;
  w->minis_after_s = w->evoked.window_s;
  excluded_s = (double)rows * (w->minis_before_s + w->minis_after_s);
  w->detect_minis = n_minis > 0;
  w->mini_rate_hz =
      n_minis > 0 ? (double)n_minis / fmax(w->duration_s - excluded_s,
                                           0.5 * w->duration_s)
                  : 0.0;
done:
  quantal_recording_close(rec);
  quantal_table_free(t);
  if (code != 0)
    wave_cli_free(wc);
  return code;
}

/* Mean of waveform statistic j over the replicates that have it. */
static double
wave_mean(const quantal_recovery_result *r, int j)
{
  double sum = 0.0;
  size_t i, n = 0;
  if (r->wave == NULL)
    return NAN;
  for (i = 0; i < r->replicates; i++) {
    double v = r->wave[i * QUANTAL_WAVE_COUNT + j];
    if (isfinite(v)) {
      sum += v;
      n++;
    }
  }
  return n ? sum / (double)n : NAN;
}

static void
report_waveform_text(FILE *fp, const rec_cli *c, const wave_cli *wc,
                     const quantal_recovery_result *r)
{
  const quantal_waveform_shape *w = &wc->w;
  fprintf(fp, "path: waveform: each replicate a %.4g s recording at %.6g Hz "
              "(%s clamp), resting level %.5g %s, noise SD %.4g %s, "
              "kinetics rise %.3g ms, decay %.3g ms, delay %.3g ms (%s), "
              "minis %.3g/s; measured by evoked%s as the data were\n",
          w->duration_s, w->rate_hz,
          w->clamp == QUANTAL_SIM_CURRENT_CLAMP ? "current" : "voltage",
          w->resting, w->unit, w->noise_sd, w->unit, w->rise_s * 1e3,
          w->decay_s * 1e3, w->delay_s * 1e3,
          wc->kinetics_given ? "--rise/--decay"
                             : "mean response of the recording",
          w->mini_rate_hz, w->detect_minis ? " and detect" : "");
  if (!wc->recording_read)
    fprintf(fp, "  (the recording %s could not be read: rate from --rate, "
                "length from the stimuli)\n",
            wc->input);
  fprintf(fp, "  failures per experiment (mean): %.2f true, %.2f flagged, "
              "%.2f misclassified",
          wave_mean(r, QUANTAL_WAVE_TRUE_FAILURES),
          wave_mean(r, QUANTAL_WAVE_FLAGGED_FAILURES),
          wave_mean(r, QUANTAL_WAVE_MISCLASSIFIED));
  if (w->detect_minis)
    fprintf(fp, "; minis %.1f simulated, %.1f detected",
            wave_mean(r, QUANTAL_WAVE_MINIS_SIMULATED),
            wave_mean(r, QUANTAL_WAVE_MINIS_DETECTED));
  fprintf(fp, "\n");
  if (r->n_failed > 0)
    fprintf(fp, "  %zu of %zu recordings could not be analysed (first, "
                "replicate %zu: %s)\n",
            r->n_failed, r->replicates, r->failed_replicate + 1,
            r->failure.reason);
  (void)c;
}

static void
report_waveform_json(FILE *fp, const wave_cli *wc,
                     const quantal_recovery_result *r)
{
  const quantal_waveform_shape *w = &wc->w;
  fprintf(fp, ",\n \"waveform\": {\"recording\": ");
  qt_json_string(fp, wc->input);
  fprintf(fp, ", \"recording_read\": %s, \"clamp\": \"%s\"",
          wc->recording_read ? "true" : "false",
          w->clamp == QUANTAL_SIM_CURRENT_CLAMP ? "current" : "voltage");
  qt_json_field(fp, "rate_hz", w->rate_hz);
  qt_json_field(fp, "duration_s", w->duration_s);
  fprintf(fp, ", \"stimuli\": %zu", w->n_stim);
  qt_json_field(fp, "resting", w->resting);
  qt_json_field(fp, "noise_sd", w->noise_sd);
  qt_json_field(fp, "rise_ms", w->rise_s * 1e3);
  qt_json_field(fp, "decay_ms", w->decay_s * 1e3);
  qt_json_field(fp, "delay_ms", w->delay_s * 1e3);
  fprintf(fp, ", \"kinetics_from\": \"%s\"",
          wc->kinetics_given ? "options" : "mean_response");
  qt_json_field(fp, "mini_rate_hz", w->mini_rate_hz);
  fprintf(fp, ",\n  \"evoked\": {\"baseline_ms\": %g, \"blank_ms\": %g, "
              "\"window_ms\": %g, \"jitter_ms\": %g, \"alpha\": %g, "
              "\"polarity\": \"%s\"}",
          w->evoked.baseline_s * 1e3, w->evoked.blank_s * 1e3,
          w->evoked.window_s * 1e3, w->evoked.jitter_s * 1e3, w->evoked.alpha,
          w->evoked.polarity > 0   ? "positive"
          : w->evoked.polarity < 0 ? "negative"
                                   : "auto");
  fprintf(fp, ",\n  \"failed\": %zu, \"first_failure\": ", r->n_failed);
  if (r->n_failed > 0)
    qt_json_string(fp, r->failure.reason);
  else
    fprintf(fp, "null");
  qt_json_field(fp, "true_failures_mean",
                wave_mean(r, QUANTAL_WAVE_TRUE_FAILURES));
  qt_json_field(fp, "flagged_failures_mean",
                wave_mean(r, QUANTAL_WAVE_FLAGGED_FAILURES));
  qt_json_field(fp, "misclassified_mean",
                wave_mean(r, QUANTAL_WAVE_MISCLASSIFIED));
  qt_json_field(fp, "minis_simulated_mean",
                wave_mean(r, QUANTAL_WAVE_MINIS_SIMULATED));
  qt_json_field(fp, "minis_detected_mean",
                wave_mean(r, QUANTAL_WAVE_MINIS_DETECTED));
  fprintf(fp, "}");
}

static void
report_recovery_text(FILE *fp, const rec_cli *c, const qt_amplitudes *a,
                     const quantal_fit_result *fr, int model,
                     const quantal_recovery_options *ro,
                     const quantal_recovery_result *r, const double *obs,
                     quantal_recovery_result **design, const wave_cli *wc)
{
  const quantal_model_fit *mf = &fr->model[model];
  size_t j, k;
  double level = ro->fit.level;
  fprintf(fp, "quantal compare: %s (%zu amplitudes", c->amp_path, a->n);
  if (ro->n_minis)
    fprintf(fp, ", %zu minis", ro->n_minis);
  if (ro->n_shams)
    fprintf(fp, ", %zu shams", ro->n_shams);
  fprintf(fp, "), model %s\n", quantal_fit_model_name(model));
  fprintf(fp, "%zu simulated experiments of %zu trials, seed %llu; %zu "
              "fits converged\n",
          r->replicates, ro->n_trials, (unsigned long long)c->seed, r->n_ok);
  if (wc != NULL)
    report_waveform_text(fp, c, wc, r);
  else
    fprintf(fp, "path: amplitudes (simulated at the amplitude level)\n");
  fprintf(fp, "\n");
  fprintf(fp, "%-8s %11s %11s %9s %11s %11s %9s %10s\n", "param", "fitted",
          "sim mean", "bias %", "sim SD", "RMS error", "coverage",
          "unbounded");
  for (j = 0; j < N_SCORED; j++) {
    const quantal_recovery_param *p = &r->par[scored[j]];
    if (!isfinite(p->truth))
      continue;
    fprintf(fp, "%-8s %11.4g %11.4g %9.2f %11.4g %11.4g %8.1f%% %9.1f%%\n",
            quantal_fit_par_name(scored[j]), p->truth, p->mean,
            fabs(p->truth) > 0.01 * p->sd ? 100.0 * p->bias / fabs(p->truth)
                                          : NAN,
            p->sd,
            p->rmse, 100.0 * p->coverage,
            p->n_intervals ? 100.0 * (double)p->n_unbounded /
                                 (double)p->n_intervals
                           : NAN);
  }
  fprintf(fp, "(coverage: of the %.0f %% profile-likelihood intervals; "
              "Monte Carlo SE %.1f %%)\n\n",
          100 * level, 100 * sqrt(level * (1 - level) / (double)r->n_ok));
  fprintf(fp, "verdict:\n");
  {
    /* Counted, not measured with ftell: on a pipe ftell fails both times
     * and the all-clear was printed under a list of problems. */
    int said = 0;
    for (j = 0; j < N_SCORED; j++)
      said += verdict(fp, &r->par[scored[j]], quantal_fit_par_name(scored[j]),
                      level, ro->n_trials, ro->truth.p);
    if (said == 0)
      fprintf(fp, "  every parameter is recovered without detectable bias "
                  "and its intervals are calibrated\n");
  }
  fprintf(fp, "\npredictive check (data against the simulated experiments):\n");
  fprintf(fp, "%-13s %11s %11s %11s %9s\n", "statistic", "data",
          "sim mean", "sim SD", "p");
  for (k = 0; k < QUANTAL_STAT_COUNT; k++) {
    double m, sd;
    sim_stat_range(r, (int)k, &m, &sd);
    fprintf(fp, "%-13s %11.4g %11.4g %11.4g %9.3f\n",
            quantal_stat_name((quantal_stat)k), obs[k], m, sd,
            mc_p(obs[k], r, (int)k));
  }
  fprintf(fp, "(p: two-sided Monte Carlo p-value; low_fraction: amplitudes "
              "below q/2; ks: KS statistic of each data set against its own "
              "fitted %s model)\n",
          quantal_fit_model_name(model));
  (void)mf;
  if (c->n_trials_list > 0) {
    size_t best = 0;
    fprintf(fp, "\ndesign (median half-width of the %.0f %% interval, "
                "relative to the estimate):\n",
            100 * level);
    fprintf(fp, "%8s %9s %9s %9s %9s\n", "trials", "n", "p", "q", "m");
    for (j = 0; j < c->n_trials_list; j++) {
      double wn = median_rel_halfwidth(design[j], QUANTAL_PAR_N);
      fprintf(fp, "%8zu %8.1f%% %8.1f%% %8.1f%% %8.1f%%\n", c->trials[j],
              100 * wn, 100 * median_rel_halfwidth(design[j], QUANTAL_PAR_P),
              100 * median_rel_halfwidth(design[j], QUANTAL_PAR_Q),
              100 * median_rel_halfwidth(design[j], QUANTAL_PAR_M));
      if (best == 0 && isfinite(wn) && wn <= 0.2)
        best = c->trials[j];
    }
    if (ro->truth.model != QUANTAL_RELEASE_POISSON) {
      if (best)
        fprintf(fp, "  >= %zu trials to get n within +/-20 %% (median "
                    "interval)\n",
                best);
      else
        fprintf(fp, "  none of these numbers of trials gets n within "
                    "+/-20 %%\n");
    }
  }
}

static void
json_param(FILE *fp, const quantal_recovery_param *p)
{
  fprintf(fp, "{\"truth\": ");
  qt_json_number(fp, p->truth);
  qt_json_field(fp, "mean", p->mean);
  qt_json_field(fp, "sd", p->sd);
  qt_json_field(fp, "bias", p->bias);
  qt_json_field(fp, "rmse", p->rmse);
  qt_json_field(fp, "coverage", p->coverage);
  fprintf(fp, ", \"estimates\": %zu, \"intervals\": %zu, \"covered\": %zu, "
              "\"unbounded\": %zu}",
          p->n_estimates, p->n_intervals, p->n_covered, p->n_unbounded);
}

static void
report_recovery_json(FILE *fp, const rec_cli *c, const qt_amplitudes *a,
                     int model, const quantal_recovery_options *ro,
                     const quantal_recovery_result *r, const double *obs,
                     quantal_recovery_result **design, const wave_cli *wc)
{
  size_t j, k;
  fprintf(fp, "{\"version\": ");
  qt_json_string(fp, quantal_version());
  fprintf(fp, ", \"input\": ");
  qt_json_string(fp, c->amp_path);
  fprintf(fp, ", \"amplitudes\": %zu, \"minis\": %zu, \"shams\": %zu, "
              "\"unit\": ",
          a->n, ro->n_minis, ro->n_shams);
  qt_json_string(fp, a->unit);
  fprintf(fp, ", \"path\": \"%s\"", wc != NULL ? "waveform" : "amplitudes");
  fprintf(fp, ", \"model\": \"%s\", \"replicates\": %zu, \"converged\": "
              "%zu, \"seed\": %llu, \"level\": ",
          quantal_fit_model_name(model), r->replicates, r->n_ok,
          (unsigned long long)c->seed);
  qt_json_number(fp, ro->fit.level);
  fprintf(fp, ",\n \"parameters\": {");
  for (j = 0, k = 0; j < N_SCORED; j++) {
    const quantal_recovery_param *p = &r->par[scored[j]];
    if (!isfinite(p->truth))
      continue;
    fprintf(fp, "%s\n  \"%s\": ", k++ ? "," : "",
            quantal_fit_par_name(scored[j]));
    json_param(fp, p);
  }
  fprintf(fp, "},\n \"predictive\": {");
  for (k = 0; k < QUANTAL_STAT_COUNT; k++) {
    double m, sd;
    sim_stat_range(r, (int)k, &m, &sd);
    fprintf(fp, "%s\n  \"%s\": {\"data\": ", k ? "," : "",
            quantal_stat_name((quantal_stat)k));
    qt_json_number(fp, obs[k]);
    qt_json_field(fp, "sim_mean", m);
    qt_json_field(fp, "sim_sd", sd);
    qt_json_field(fp, "p", mc_p(obs[k], r, (int)k));
    fprintf(fp, "}");
  }
  fprintf(fp, "},\n \"design\": [");
  for (j = 0; j < c->n_trials_list; j++) {
    fprintf(fp, "%s\n  {\"trials\": %zu", j ? "," : "", c->trials[j]);
    for (k = 0; k < N_SCORED; k++) {
      if (!isfinite(design[j]->par[scored[k]].truth))
        continue;
      fprintf(fp, ", \"%s_rel_halfwidth\": ", quantal_fit_par_name(scored[k]));
      qt_json_number(fp, median_rel_halfwidth(design[j], scored[k]));
      fprintf(fp, ", \"%s_coverage\": ", quantal_fit_par_name(scored[k]));
      qt_json_number(fp, design[j]->par[scored[k]].coverage);
    }
    fprintf(fp, "}");
  }
  fprintf(fp, "]");
  if (wc != NULL)
    report_waveform_json(fp, wc, r);
  fprintf(fp, "}\n");
}

static int
recovery(const rec_cli *c)
{
  qt_amplitudes a, mn;
  quantal_fit_options fo = quantal_fit_options_default();
  quantal_fit_result *fr = NULL;
  quantal_recovery_options ro = quantal_recovery_options_default();
  quantal_recovery_result *r = NULL, *design[32];
  quantal_diag d;
  quantal_status st;
  qt_progress bar;
  qt_out out;
  wave_cli wc;
  double obs[QUANTAL_STAT_COUNT];
  int code, model;
  size_t j;

  memset(design, 0, sizeof design);
  memset(&mn, 0, sizeof mn);
  memset(&wc, 0, sizeof wc);
  if ((code = qt_amplitudes_load(c->amp_path, c->column, &a)) != 0)
    return code;
  if (c->no_shams)
    a.n_sham = 0;
  if (c->minis_path != NULL &&
      (code = qt_amplitudes_load(c->minis_path, NULL, &mn)) != 0) {
    qt_amplitudes_free(&a);
    return code;
  }
  if (mn.n && a.unit[0] && mn.unit[0] && strcmp(a.unit, mn.unit) != 0) {
    qt_error("%s: minis are in %s but %s has %s", c->minis_path, mn.unit,
             c->amp_path, a.unit);
    code = QT_EXIT_IO;
    goto done;
  }
  fo.n_max = c->n_max;
  fo.noise_sd = c->noise_sd;
  fo.threads = 1;
  fo.models = QUANTAL_FIT_BIT(QUANTAL_FIT_POISSON) |
              QUANTAL_FIT_BIT(QUANTAL_FIT_BINOMIAL);
  if (c->model >= 0)
    fo.models |= QUANTAL_FIT_BIT(c->model);
  /* The table's shams (quantal evoked's sham windows) enter the fit, and
   * as many noise draws enter every replicate's. */
  fo.shams = a.sham;
  fo.n_shams = a.n_sham;
  quantal_diag_clear(&d);
  st = quantal_fit_run(a.x, a.n, mn.x, mn.n, &fo, &fr, &d);
  if (st != QUANTAL_OK) {
    if (d.file[0] == '\0')
      snprintf(d.file, sizeof d.file, "%s", c->amp_path);
    qt_diag_error(&d, st);
    code = qt_exit_code(st);
    goto done;
  }
  model = c->model >= 0 ? c->model : fr->best;
  if (model < 0 || !fr->model[model].fitted) {
    qt_error("%s: the %s model could not be fitted", c->amp_path,
             model < 0 ? "chosen" : quantal_fit_model_name(model));
    code = QT_EXIT_ANALYSIS;
    goto done;
  }
  ro.truth = fitted_truth(&fr->model[model], model);
  ro.n_trials = a.n;
  ro.n_minis = mn.n;
  ro.n_shams = fo.noise_sd > 0.0 ? 0 : fr->n_shams;
  ro.fit = fo;
  ro.score_model = (quantal_fit_model)model;
  ro.replicates = c->replicates;
  ro.threads = c->threads;
  ro.seed = c->seed;
  ro.on_progress = on_rep_progress;
  ro.user = &bar;
  if (c->waveform) {
    if ((code = load_waveform_shape(c, &a, mn.n, &wc)) != 0)
      goto done;
    ro.waveform = &wc.w;
  }
  quantal_amplitude_stats(a.x, a.n, ro.truth.q, obs);
  obs[QUANTAL_STAT_KS] = fr->model[model].ks;

  qt_progress_begin(&bar, "compare: replicates", c->replicates, c->quiet);
  st = quantal_compare_recovery(&ro, &r, &d);
  qt_progress_end(&bar);
  for (j = 0; st == QUANTAL_OK && j < c->n_trials_list; j++) {
    quantal_recovery_options dro = ro;
    dro.n_trials = c->trials[j];
    /* Shams come one or two per trial. */
    dro.n_shams = (size_t)floor((double)ro.n_shams * (double)c->trials[j] /
                                    (double)a.n + 0.5);
    qt_progress_begin(&bar, "compare: design", c->replicates, c->quiet);
    st = quantal_compare_recovery(&dro, &design[j], &d);
    qt_progress_end(&bar);
  }
  if (st != QUANTAL_OK) {
    if (c->waveform && d.file[0] == '\0')
      qt_error("%s: --waveform: %s", c->amp_path, d.reason);
    else
      qt_diag_error(&d, st);
    code = qt_exit_code(st);
    goto done;
  }
  if ((code = qt_out_open(&out, c->output)) != 0)
    goto done;
  if (c->json)
    report_recovery_json(out.fp, c, &a, model, &ro, r, obs, design,
                         c->waveform ? &wc : NULL);
  else
    report_recovery_text(out.fp, c, &a, fr, model, &ro, r, obs, design,
                         c->waveform ? &wc : NULL);
  code = qt_out_commit(&out);
  if (code == 0 && c->plot != NULL)
    code = qt_plot_recovery(r, a.unit, c->plot, c->amp_path);
done:
  for (j = 0; j < c->n_trials_list; j++)
    quantal_recovery_result_free(design[j]);
  quantal_recovery_result_free(r);
  quantal_fit_result_free(fr);
  qt_amplitudes_free(&a);
  qt_amplitudes_free(&mn);
  wave_cli_free(&wc);
  return code;
}

/* A result of `quantal fit --json` names its inputs and settings: the
 * same experiment is then re-analysed from them. Options given on the
 * command line win over the file's. The strings point into *j. */
static int
from_fit_json(rec_cli *c, qtl_json **j)
{
  quantal_diag d;
  quantal_status st = qtl_json_read_file(c->amp_path, j, &d);
  const qtl_json *in;
  const char *file, *col, *minis, *best;
  double nmax;
  if (st != QUANTAL_OK) {
    qt_diag_error(&d, st);
    return qt_exit_code(st);
  }
  in = qtl_json_get(*j, "input");
  file = qtl_json_string(qtl_json_get(in, "file"));
  if (file == NULL) {
    const char *model = qtl_json_string(qtl_json_get(*j, "model"));
    if (model || qtl_json_get(*j, "group_by"))
      qt_error("%s: a grouped fit (--group-by, several tables or "
               "--shared-q): compare one group's fit at a time",
               c->amp_path);
    else
      qt_error("%s: not a result of quantal fit --json (no input.file)",
               c->amp_path);
    qtl_json_free(*j);
    return QT_EXIT_IO;
  }
  col = qtl_json_string(qtl_json_get(in, "column"));
  minis = qtl_json_string(qtl_json_get(in, "minis_file"));
  best = qtl_json_string(qtl_json_get(*j, "best_model"));
  nmax = qtl_json_number(qtl_json_path(*j, "settings.n_max"));
  c->amp_path = file;
  if (c->column == NULL)
    c->column = col;
  if (c->minis_path == NULL)
    c->minis_path = minis;
  if (c->model < 0 && best != NULL) {
    if (strcmp(best, "poisson") == 0)
      c->model = QUANTAL_FIT_POISSON;
    else if (strcmp(best, "binomial") == 0)
      c->model = QUANTAL_FIT_BINOMIAL;
    else if (strcmp(best, "betabinomial") == 0)
      c->model = QUANTAL_FIT_BETABINOMIAL;
  }
  if (!c->n_max_given && nmax >= 1 && nmax <= 2000)
    c->n_max = (unsigned)nmax;
  /* A fit that fixed sigma_0, or used no shams, is re-analysed the same
   * way. */
  if (qtl_json_number(qtl_json_path(*j, "input.n_shams_used")) == 0.0)
    c->no_shams = 1;
  {
    double s0 = qtl_json_number(qtl_json_path(*j, "settings.noise_sd_fixed"));
    if (!(c->noise_sd > 0.0) && s0 > 0.0 && isfinite(s0))
      c->noise_sd = s0;
  }
  return 0;
}

int
cmd_compare(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"output", required_argument, NULL, 'o'},
      {"json", no_argument, NULL, OPT_JSON},
      {"events", required_argument, NULL, OPT_EVENTS},
      {"truth", required_argument, NULL, OPT_TRUTH},
      {"tolerance-ms", required_argument, NULL, OPT_TOLERANCE},
      {"kind", required_argument, NULL, OPT_KIND},
      {"time-column", required_argument, NULL, OPT_TIME_COLUMN},
      {"amplitude-column", required_argument, NULL, OPT_AMP_COLUMN},
      {"minis", required_argument, NULL, OPT_MINIS},
      {"column", required_argument, NULL, OPT_COLUMN},
      {"model", required_argument, NULL, OPT_MODEL},
      {"n-max", required_argument, NULL, OPT_N_MAX},
      {"replicates", required_argument, NULL, OPT_REPLICATES},
      {"trials", required_argument, NULL, OPT_TRIALS},
      {"seed", required_argument, NULL, OPT_SEED},
      {"threads", required_argument, NULL, OPT_THREADS},
      {"quiet", no_argument, NULL, OPT_QUIET},
      {"plot", required_argument, NULL, OPT_PLOT},
      {"noise-sd", required_argument, NULL, OPT_NOISE},
      {"no-shams", no_argument, NULL, OPT_NO_SHAMS},
      {"waveform", no_argument, NULL, OPT_WAVEFORM},
      {"rise", required_argument, NULL, OPT_RISE},
      {"decay", required_argument, NULL, OPT_DECAY},
      {"rate", required_argument, NULL, OPT_RATE},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *output = "-", *events_path = NULL, *truth_path = NULL;
  const char *kind = NULL, *time_col = NULL, *amp_col = NULL;
  double tol_ms = 2.0;
  int json = 0, opt;
  long lv;
  rec_cli rc;
  qtl_json *fitj = NULL;

  memset(&rc, 0, sizeof rc);
  rc.model = -1;
  rc.n_max = 100;
  rc.replicates = 200;
  rc.seed = 1;

  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
    switch (opt) {
    case 'h': usage(stdout); return qt_finish_stdout(QT_EXIT_OK);
    case 'o': output = optarg; break;
    case OPT_JSON: json = 1; break;
    case OPT_EVENTS: events_path = optarg; break;
    case OPT_TRUTH: truth_path = optarg; break;
    case OPT_TOLERANCE:
      if (qt_parse_double("--tolerance-ms", optarg, 0.0, 1e6, &tol_ms) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_KIND: kind = optarg; break;
    case OPT_TIME_COLUMN: time_col = optarg; break;
    case OPT_AMP_COLUMN: amp_col = optarg; break;
    case OPT_MINIS: rc.minis_path = optarg; break;
    case OPT_COLUMN: rc.column = optarg; break;
    case OPT_MODEL:
      if (strcmp(optarg, "poisson") == 0)
        rc.model = QUANTAL_FIT_POISSON;
      else if (strcmp(optarg, "binomial") == 0)
        rc.model = QUANTAL_FIT_BINOMIAL;
      else if (strcmp(optarg, "betabinomial") == 0)
        rc.model = QUANTAL_FIT_BETABINOMIAL;
      else
        return qt_usage_error("--model: '%s' is not poisson, binomial or "
                              "betabinomial",
                              optarg);
      break;
    case OPT_N_MAX:
      if (qt_parse_long("--n-max", optarg, 1, 2000, &lv) != 0)
        return QT_EXIT_USAGE;
      rc.n_max = (unsigned)lv;
      rc.n_max_given = 1;
      break;
    case OPT_REPLICATES:
      if (qt_parse_long("--replicates", optarg, 1, 1000000, &lv) != 0)
        return QT_EXIT_USAGE;
      rc.replicates = (size_t)lv;
      break;
    case OPT_TRIALS: {
      char buf[1024], *items[32];
      int k, i;
      if (strlen(optarg) >= sizeof buf)
        return qt_usage_error("--trials: list too long");
      strcpy(buf, optarg);
      k = qt_split_commas(buf, items, 32);
      if (k < 0)
        return qt_usage_error("--trials: at most 32 numbers");
      for (i = 0; i < k; i++) {
        if (qt_parse_long("--trials", items[i], 10, 10000000, &lv) != 0)
          return QT_EXIT_USAGE;
        rc.trials[i] = (size_t)lv;
      }
      rc.n_trials_list = (size_t)k;
      break;
    }
    case OPT_SEED: {
      char *end;
      errno = 0;
      rc.seed = strtoull(optarg, &end, 10);
      if (end == optarg || *end != '\0' || errno != 0 || optarg[0] == '-')
        return qt_usage_error("--seed: '%s' is not a whole number >= 0",
                              optarg);
      break;
    }
    case OPT_THREADS:
      if (qt_parse_long("--threads", optarg, 0, 1024, &lv) != 0)
        return QT_EXIT_USAGE;
      rc.threads = (unsigned)lv;
      break;
    case OPT_QUIET: rc.quiet = 1; break;
    case OPT_PLOT: rc.plot = optarg; break;
    case OPT_NOISE:
      if (qt_parse_double("--noise-sd", optarg, 1e-300, 1e300,
                          &rc.noise_sd) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_WAVEFORM: rc.waveform = 1; break;
    case OPT_NO_SHAMS: rc.no_shams = 1; break;
    case OPT_RISE:
      if (qt_parse_double("--rise", optarg, 1e-4, 1e4, &rc.rise_ms) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_DECAY:
      if (qt_parse_double("--decay", optarg, 1e-4, 1e4, &rc.decay_ms) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_RATE:
      if (qt_parse_double("--rate", optarg, 1.0, 1e7, &rc.rate_hz) != 0)
        return QT_EXIT_USAGE;
      break;
    default:
      return qt_common_option(opt, NULL, argv);
    }
  }
  if (events_path != NULL || truth_path != NULL) {
    if (events_path == NULL || truth_path == NULL)
      return qt_usage_error("--events and --truth go together");
    if (optind < argc)
      return qt_usage_error("unexpected argument '%s' with --events",
                            argv[optind]);
    return qt_finish_stdout(score_events(events_path, truth_path,
                                         tol_ms * 1e-3, kind, time_col,
                                         amp_col, output, json, rc.plot));
  }
  if (optind >= argc)
    return qt_usage_error("give an amplitude table, or --events and --truth");
  if (argc - optind > 1)
    return qt_usage_error("one amplitude table at a time (got %d)",
                          argc - optind);
  if ((rc.rise_ms > 0.0) != (rc.decay_ms > 0.0))
    return qt_usage_error("--rise and --decay go together");
  if (rc.rise_ms > 0.0 && !(rc.decay_ms > rc.rise_ms))
    return qt_usage_error("--decay (%g ms) must be longer than --rise "
                          "(%g ms)",
                          rc.decay_ms, rc.rise_ms);
  if (!rc.waveform && (rc.rise_ms > 0.0 || rc.rate_hz > 0.0))
    return qt_usage_error("--rise, --decay and --rate go with --waveform");
  if (rc.waveform && rc.n_trials_list > 0)
    return qt_usage_error("--trials works on the amplitude path only, not "
                          "with --waveform");
  rc.amp_path = argv[optind];
  rc.output = output;
  rc.json = json;
  if (qtl_has_suffix(rc.amp_path, ".json")) {
    int code = from_fit_json(&rc, &fitj);
    if (code != 0)
      return code;
    code = recovery(&rc);
    qtl_json_free(fitj);
    return qt_finish_stdout(code);
  }
  return qt_finish_stdout(recovery(&rc));
}
