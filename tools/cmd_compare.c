/* cmd_compare.c - quantal compare: check results against ground truth. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "cmds.h"
#include "util.h"

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
  OPT_AMP_COLUMN
};

static void
usage(FILE *fp)
{
  fprintf(fp,
      "Usage: quantal compare --events DETECTED.tsv --truth TRUTH.tsv "
      "[OPTION]...\n"
      "Score detected events against ground truth (from quantal simulate\n"
      "or hand-labelled): precision, recall, F1, onset and amplitude\n"
      "errors. Works for any detector's table with a time column.\n\n"
      "  --events FILE        detected events (TSV)\n"
      "  --truth FILE         true events (TSV), e.g. OUT.truth.tsv\n"
      "  --tolerance-ms MS    largest onset difference of a match (2)\n"
      "  --kind K             only truth rows of this kind (column 'kind',\n"
      "                       e.g. spontaneous); default all\n"
      "  --time-column NAME   time column, seconds (default: onset_s,\n"
      "                       else peak_s, time_s, stim_s)\n"
      "  --amplitude-column NAME  amplitude column (default: the first\n"
      "                       amplitude_<unit>)\n"
      "  -o, --output FILE    write the report to FILE (default stdout)\n"
      "  --json               JSON instead of the readable report\n"
      "  -h, --help           show this help and exit\n\n"
      "Exit status: 0 ok, 2 usage, 3 a table cannot be read or lacks a\n"
      "column. See quantal-compare(1).\n");
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
  fprintf(fp, ", \"tolerance_ms\": ");
  qt_json_number(fp, tol_s * 1e3);
  fprintf(fp, ", \"unit\": ");
  qt_json_string(fp, de->unit);
  fprintf(fp,
          ",\n \"true_events\": %zu, \"detected\": %zu, \"matched\": %zu, "
          "\"false_positives\": %zu, \"missed\": %zu,\n \"precision\": ",
          r->n_true, r->n_detected, r->true_positives, r->false_positives,
          r->false_negatives);
  qt_json_number(fp, r->precision);
  fprintf(fp, ", \"recall\": ");
  qt_json_number(fp, r->recall);
  fprintf(fp, ", \"f1\": ");
  qt_json_number(fp, r->f1);
  fprintf(fp, ",\n \"onset_error_mean_ms\": ");
  qt_json_number(fp, r->onset_error_mean_s * 1e3);
  fprintf(fp, ", \"onset_error_sd_ms\": ");
  qt_json_number(fp, r->onset_error_sd_s * 1e3);
  fprintf(fp, ", \"onset_error_median_abs_ms\": ");
  qt_json_number(fp, r->onset_error_median_abs_s * 1e3);
  fprintf(fp, ",\n \"amplitude_matches\": %zu, \"amplitude_error_mean\": ",
          r->n_amplitudes);
  qt_json_number(fp, r->amplitude_error_mean);
  fprintf(fp, ", \"amplitude_error_rms\": ");
  qt_json_number(fp, r->amplitude_error_rms);
  fprintf(fp, ", \"amplitude_error_median_rel\": ");
  qt_json_number(fp, r->amplitude_error_median_rel);
  fprintf(fp, "}\n");
}

static int
score_events(const char *det, const char *truth, double tol_s,
             const char *kind, const char *time_col, const char *amp_col,
             const char *output, int json)
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
  events_free(&de);
  events_free(&te);
  return code;
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
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *output = "-", *events_path = NULL, *truth_path = NULL;
  const char *kind = NULL, *time_col = NULL, *amp_col = NULL;
  double tol_ms = 2.0;
  int json = 0, opt;

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
    case ':':
      return qt_usage_error("option '%s' needs a value", argv[optind - 1]);
    default:
      return qt_usage_error("unknown option '%s'", argv[optind - 1]);
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
                                         amp_col, output, json));
  }
  return qt_usage_error("give --events and --truth to score a detector");
}
