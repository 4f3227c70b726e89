/* cmd_summarize.c - quantal summarize: one tidy table of many analyses. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "cmds.h"
#include "util.h"

#include "../src/internal.h" /* qtl_json_*: quantal's own result files */

#include <dirent.h>
#include <getopt.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The per-recording folders that scripts/batch writes hold meta.tsv
 * (file, cell, condition, channel, stim), info.json, then events.tsv
 * (minis) or evoked.tsv + minis.tsv + fit.json, a done.stamp when
 * complete and error.log when a step failed. One row per folder. */

enum { OPT_JSON = QT_OPT_FIRST_FREE };

static void
usage(FILE *fp)
{
  fprintf(fp,
      "Usage: quantal summarize [OPTION]... DIR...\n"
      "Collect per-recording results (the folders scripts/batch writes)\n"
      "into one table: one row per recording with its cell, condition,\n"
      "event rate and amplitude, evoked amplitudes and failures, the\n"
      "quantal parameters with their intervals, the model chosen and QC\n"
      "flags. Each DIR is a recording folder or holds them.\n\n"
      "  -o, --output FILE  write the table to FILE (default stdout)\n"
      "  --json             JSON instead of TSV\n"
      "  -h, --help         show this help and exit\n\n"
      "Exit status: 0 ok, 2 usage, 3 a folder cannot be read. See\n"
      "quantal-summarize(1).\n");
}

#define N_PARS 7
static const char *par_names[N_PARS] = {"m", "n", "p", "q", "cv_q",
                                        "sigma_0", "cv_p"};

typedef struct row {
  char id[256], file[1024], cell[128], condition[128], channel[16];
  char status[16], message[512], unit[QUANTAL_UNIT_MAX], model[32];
  char n_verdict[32], qc[256];
  double duration_s, noise_sd, events, rate_hz, amp_median;
  double stimuli, failures, evoked_mean;
  double est[N_PARS], lo[N_PARS], hi[N_PARS];
} row;

static int
exists(const char *dir, const char *name)
{
  char p[4200];
  struct stat sb;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return stat(p, &sb) == 0;
}

static void
add_qc(row *r, const char *flag)
{
  size_t n = strlen(r->qc);
  snprintf(r->qc + n, sizeof r->qc - n, "%s%s", n ? "," : "", flag);
}

static quantal_table *
open_table(const char *dir, const char *name)
{
  char p[4200];
  quantal_table *t = NULL;
  quantal_diag d;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  if (quantal_table_read(p, &t, &d) != QUANTAL_OK)
    return NULL;
  return t;
}

static void
cell_copy(char *dst, size_t size, const quantal_table *t, const char *col)
{
  long c = quantal_table_find(t, col);
  const char *v = c >= 0 && quantal_table_rows(t) > 0
                      ? quantal_table_cell(t, 0, (size_t)c)
                      : "";
  snprintf(dst, size, "%s", v ? v : "");
}

/* Median of the first amplitude_ column, and the row count. */
static void
events_summary(const quantal_table *t, double *count, double *median)
{
  long c = quantal_table_find_prefix(t, "amplitude_");
  size_t n = quantal_table_rows(t), i, m = 0;
  double *v;
  *count = (double)n;
  *median = NAN;
  if (c < 0 || n == 0 || (v = malloc(n * sizeof *v)) == NULL)
    return;
  for (i = 0; i < n; i++) {
    double x = quantal_table_column(t, (size_t)c)[i];
    if (isfinite(x))
      v[m++] = x;
  }
  if (m > 0) {
    gsl_sort(v, 1, m);
    *median = gsl_stats_median_from_sorted_data(v, 1, m);
  }
  free(v);
}

static void
read_folder(const char *dir, const char *id, row *r)
{
  quantal_table *t;
  qtl_json *j = NULL;
  quantal_diag d;
  char p[4200];
  size_t k;

  memset(r, 0, sizeof *r);
  snprintf(r->id, sizeof r->id, "%s", id);
  r->duration_s = r->noise_sd = r->events = r->rate_hz = NAN;
  r->amp_median = r->stimuli = r->failures = r->evoked_mean = NAN;
  for (k = 0; k < N_PARS; k++)
    r->est[k] = r->lo[k] = r->hi[k] = NAN;
  if ((t = open_table(dir, "meta.tsv")) != NULL) {
    cell_copy(r->file, sizeof r->file, t, "file");
    cell_copy(r->cell, sizeof r->cell, t, "cell");
    cell_copy(r->condition, sizeof r->condition, t, "condition");
    cell_copy(r->channel, sizeof r->channel, t, "channel");
    quantal_table_free(t);
  }
  if (!r->channel[0])
    snprintf(r->channel, sizeof r->channel, "1");
  snprintf(r->status, sizeof r->status, "%s",
           exists(dir, "done.stamp")  ? "ok"
           : exists(dir, "error.log") ? "failed"
                                      : "incomplete");
  if (strcmp(r->status, "failed") == 0) {
    FILE *f;
    snprintf(p, sizeof p, "%s/error.log", dir);
    if ((f = fopen(p, "r")) != NULL) {
      if (fgets(r->message, sizeof r->message, f) != NULL)
        r->message[strcspn(r->message, "\r\n")] = '\0';
      fclose(f);
    }
    add_qc(r, "failed");
  }
  snprintf(p, sizeof p, "%s/info.json", dir);
  if (exists(dir, "info.json") &&
      qtl_json_read_file(p, &j, &d) == QUANTAL_OK) {
    const qtl_json *f = qtl_json_at(j, 0);
    long ch = strtol(r->channel, NULL, 10);
    const qtl_json *c = qtl_json_at(qtl_json_get(f, "channels"),
                                     ch > 0 ? (size_t)ch - 1 : 0);
    const char *u = qtl_json_string(qtl_json_get(c, "unit"));
    r->duration_s = qtl_json_number(qtl_json_get(f, "duration_s"));
    r->noise_sd = qtl_json_number(qtl_json_get(c, "noise_sd"));
    snprintf(r->unit, sizeof r->unit, "%s", u ? u : "");
    if (qtl_json_number(qtl_json_get(c, "nonfinite")) > 0)
      add_qc(r, "nonfinite_samples");
  }
  qtl_json_free(j);
  j = NULL;
  if ((t = open_table(dir, "events.tsv")) != NULL ||
      (t = open_table(dir, "minis.tsv")) != NULL) {
    events_summary(t, &r->events, &r->amp_median);
    if (r->duration_s > 0)
      r->rate_hz = r->events / r->duration_s;
    if (r->events == 0)
      add_qc(r, "no_events");
    quantal_table_free(t);
  }
  if ((t = open_table(dir, "evoked.tsv")) != NULL) {
    long ca = quantal_table_find_prefix(t, "amplitude_");
    long cf = quantal_table_find(t, "failure");
    size_t n = quantal_table_rows(t), i;
    double s = 0.0, nf = 0.0;
    for (i = 0; i < n; i++) {
      if (ca >= 0)
        s += quantal_table_column(t, (size_t)ca)[i];
      if (cf >= 0)
        nf += quantal_table_column(t, (size_t)cf)[i] > 0.5;
    }
    r->stimuli = (double)n;
    r->failures = cf >= 0 ? nf : NAN;
    r->evoked_mean = n ? s / (double)n : NAN;
    if (n < 30)
      add_qc(r, "few_stimuli");
    quantal_table_free(t);
  }
  snprintf(p, sizeof p, "%s/fit.json", dir);
  if (exists(dir, "fit.json") &&
      qtl_json_read_file(p, &j, &d) == QUANTAL_OK) {
    const char *best = qtl_json_string(qtl_json_get(j, "best_model"));
    const qtl_json *m = best ? qtl_json_get(qtl_json_get(j, "models"), best)
                             : NULL;
    const char *v = qtl_json_string(qtl_json_get(m, "n_verdict"));
    snprintf(r->model, sizeof r->model, "%s", best ? best : "");
    snprintf(r->n_verdict, sizeof r->n_verdict, "%s", v ? v : "");
    for (k = 0; k < N_PARS; k++) {
      const qtl_json *pp = qtl_json_get(qtl_json_get(m, "parameters"),
                                        par_names[k]);
      r->est[k] = qtl_json_number(qtl_json_get(pp, "value"));
      r->lo[k] = qtl_json_number(qtl_json_get(pp, "ci_low"));
      r->hi[k] = qtl_json_number(qtl_json_get(pp, "ci_high_open")) == 1.0
                     ? INFINITY
                     : qtl_json_number(qtl_json_get(pp, "ci_high"));
    }
    if (v != NULL && strcmp(v, "identified") != 0 && strcmp(v, "na") != 0 &&
        v[0] != '\0')
      add_qc(r, "n_not_identified");
    if (best == NULL)
      add_qc(r, "fit_failed");
  } else if (exists(dir, "evoked.tsv")) {
    add_qc(r, "fit_missing");
  }
  qtl_json_free(j);
}

static void
tsv_num(FILE *fp, double v)
{
  if (isnan(v))
    fputs("\tnan", fp);
  else if (isinf(v))
    fputs(v > 0 ? "\tinf" : "\t-inf", fp);
  else
    fprintf(fp, "\t%.6g", v);
}

static void
tsv_text(FILE *fp, const char *s)
{
  /* Tabs or newlines in a name would break the table. */
  fputc('\t', fp);
  for (; *s; s++)
    fputc(*s == '\t' || *s == '\n' || *s == '\r' ? ' ' : *s, fp);
}

static void
print_tsv_header(FILE *fp)
{
  size_t k;
  fputs("id\tfile\tcell\tcondition\tchannel\tstatus\tunit\tduration_s\t"
        "noise_sd\tevents\tevent_rate_hz\tamplitude_median\tstimuli\t"
        "failures\tevoked_mean\tmodel\tn_verdict",
        fp);
  for (k = 0; k < N_PARS; k++)
    fprintf(fp, "\t%s\t%s_lo\t%s_hi", par_names[k], par_names[k],
            par_names[k]);
  fputs("\tqc\tmessage\n", fp);
}

static void
print_tsv_row(FILE *fp, const row *r)
{
  size_t k;
  fputs(r->id, fp);
  tsv_text(fp, r->file);
  tsv_text(fp, r->cell);
  tsv_text(fp, r->condition);
  tsv_text(fp, r->channel);
  tsv_text(fp, r->status);
  tsv_text(fp, r->unit);
  tsv_num(fp, r->duration_s);
  tsv_num(fp, r->noise_sd);
  tsv_num(fp, r->events);
  tsv_num(fp, r->rate_hz);
  tsv_num(fp, r->amp_median);
  tsv_num(fp, r->stimuli);
  tsv_num(fp, r->failures);
  tsv_num(fp, r->evoked_mean);
  tsv_text(fp, r->model);
  tsv_text(fp, r->n_verdict);
  for (k = 0; k < N_PARS; k++) {
    tsv_num(fp, r->est[k]);
    tsv_num(fp, r->lo[k]);
    tsv_num(fp, r->hi[k]);
  }
  tsv_text(fp, r->qc);
  tsv_text(fp, r->message);
  fputc('\n', fp);
}

static void
json_kv(FILE *fp, const char *k, const char *v, int num, double x)
{
  fprintf(fp, ", \"%s\": ", k);
  if (num)
    qt_json_number(fp, x);
  else
    qt_json_string(fp, v);
}

static void
print_json_row(FILE *fp, const row *r, int first)
{
  size_t k;
  fprintf(fp, "%s\n  {\"id\": ", first ? "" : ",");
  qt_json_string(fp, r->id);
  json_kv(fp, "file", r->file, 0, 0);
  json_kv(fp, "cell", r->cell, 0, 0);
  json_kv(fp, "condition", r->condition, 0, 0);
  json_kv(fp, "channel", r->channel, 0, 0);
  json_kv(fp, "status", r->status, 0, 0);
  json_kv(fp, "unit", r->unit, 0, 0);
  json_kv(fp, "duration_s", NULL, 1, r->duration_s);
  json_kv(fp, "noise_sd", NULL, 1, r->noise_sd);
  json_kv(fp, "events", NULL, 1, r->events);
  json_kv(fp, "event_rate_hz", NULL, 1, r->rate_hz);
  json_kv(fp, "amplitude_median", NULL, 1, r->amp_median);
  json_kv(fp, "stimuli", NULL, 1, r->stimuli);
  json_kv(fp, "failures", NULL, 1, r->failures);
  json_kv(fp, "evoked_mean", NULL, 1, r->evoked_mean);
  json_kv(fp, "model", r->model, 0, 0);
  json_kv(fp, "n_verdict", r->n_verdict, 0, 0);
  for (k = 0; k < N_PARS; k++) {
    fprintf(fp, ", \"%s\": {\"value\": ", par_names[k]);
    qt_json_number(fp, r->est[k]);
    fprintf(fp, ", \"lo\": ");
    qt_json_number(fp, r->lo[k]);
    fprintf(fp, ", \"hi\": ");
    if (isinf(r->hi[k]))
      fputs("\"inf\"", fp);
    else
      qt_json_number(fp, r->hi[k]);
    fputc('}', fp);
  }
  json_kv(fp, "qc", r->qc, 0, 0);
  json_kv(fp, "message", r->message, 0, 0);
  fputc('}', fp);
}

static int
is_recording_folder(const char *dir)
{
  return exists(dir, "meta.tsv") || exists(dir, "info.json");
}

static int
cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int
cmd_summarize(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"output", required_argument, NULL, 'o'},
      {"json", no_argument, NULL, OPT_JSON},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  const char *output = "-";
  int json = 0, opt, i, code = 0, first = 1;
  size_t nrows = 0;
  qt_out out;

  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
    switch (opt) {
    case 'h': usage(stdout); return qt_finish_stdout(QT_EXIT_OK);
    case 'o': output = optarg; break;
    case OPT_JSON: json = 1; break;
    default:
      return qt_common_option(opt, NULL, argv);
    }
  }
  if (optind >= argc)
    return qt_usage_error("no folder given");
  for (i = optind; i < argc; i++) {
    struct stat sb;
    if (stat(argv[i], &sb) != 0 || !S_ISDIR(sb.st_mode)) {
      qt_error("%s: %s", argv[i],
               stat(argv[i], &sb) != 0 ? "No such file or directory"
                                       : "not a folder");
      return QT_EXIT_IO;
    }
  }
  if ((code = qt_out_open(&out, output)) != 0)
    return code;
  if (json)
    fputc('[', out.fp);
  else
    print_tsv_header(out.fp);
  for (i = optind; i < argc && code == 0; i++) {
    const char *base = strrchr(argv[i], '/');
    row r;
    if (is_recording_folder(argv[i])) {
      read_folder(argv[i], base && base[1] ? base + 1 : argv[i], &r);
      if (json)
        print_json_row(out.fp, &r, first);
      else
        print_tsv_row(out.fp, &r);
      first = 0;
      nrows++;
    } else {
      DIR *d = opendir(argv[i]);
      struct dirent *e;
      char **names = NULL;
      size_t n = 0, cap = 0, k;
      if (d == NULL) {
        qt_error("%s: cannot read the folder", argv[i]);
        code = QT_EXIT_IO;
        break;
      }
      while ((e = readdir(d)) != NULL) {
        char sub[2048];
        if (e->d_name[0] == '.')
          continue;
        snprintf(sub, sizeof sub, "%s/%s", argv[i], e->d_name);
        if (!is_recording_folder(sub))
          continue;
        if (n == cap) {
          char **nn = realloc(names, (cap = cap ? 2 * cap : 64) *
                                         sizeof *names);
          if (nn == NULL)
            break;
          names = nn;
        }
        names[n] = strdup(e->d_name);
        if (names[n] != NULL)
          n++;
      }
      closedir(d);
      /* Sorted, so the table does not depend on the file system's order. */
      qsort(names, n, sizeof *names, cmp_str);
      for (k = 0; k < n; k++) {
        char sub[2048];
        snprintf(sub, sizeof sub, "%s/%s", argv[i], names[k]);
        read_folder(sub, names[k], &r);
        if (json)
          print_json_row(out.fp, &r, first);
        else
          print_tsv_row(out.fp, &r);
        first = 0;
        nrows++;
        free(names[k]);
      }
      free(names);
    }
  }
  if (code != 0) {
    qt_out_abort(&out);
    return code;
  }
  if (json)
    fputs(nrows ? "\n]\n" : "]\n", out.fp);
  return qt_finish_stdout(qt_out_commit(&out));
}
