/* cmd_fit.c - quantal fit: quantal parameters by maximum likelihood. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "amplitudes.h"
#include "cmds.h"
#include "plot.h"
#include "progress.h"
#include "util.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
  OPT_MODEL = QT_OPT_FIRST_FREE,
  OPT_MINIS,
  OPT_COLUMN,
  OPT_MINIS_COLUMN,
  OPT_DRIVING,
  OPT_MARTIN_F,
  OPT_BOOT,
  OPT_SEED,
  OPT_THREADS,
  OPT_JSON,
  OPT_NMAX,
  OPT_LEVEL,
  OPT_NOISE,
  OPT_SHAPE,
  OPT_CVQ,
  OPT_MPFA,
  OPT_BINS,
  OPT_NO_CI,
  OPT_NO_SHAMS,
  OPT_GROUP,
  OPT_SHARED_Q,
  OPT_PLOT,
  OPT_QUIET
};

static void
usage(FILE *fp)
{
  fprintf(fp,
          "Usage: quantal fit [OPTION]... AMPLITUDES.tsv [MORE.tsv]...\n"
          "Quantal parameters (m, n, p, q, quantal and noise SD) of evoked\n"
          "amplitudes by maximum likelihood, with profile-likelihood\n"
          "intervals, model choice, goodness of fit and the classical\n"
          "estimators.\n\n"
          "  --model M           auto (Poisson and binomial, default),\n"
          "                      poisson, binomial, betabinomial, mixture,\n"
          "                      mixture-nofail or all\n"
          "  --minis FILE        MEPP amplitudes (fitted jointly: same q)\n"
          "  --column NAME       amplitude column (default: the first\n"
          "                      amplitude_*)\n"
          "  --minis-column NAME amplitude column of the minis table\n"
          "  --driving-force E   Martin correction with E = Erev - Vrest\n"
          "                      (the amplitudes' unit)\n"
          "  --martin-f F        factor f of the improved correction (1)\n"
          "  --noise-sd X        fix the noise SD at X, or 'column' for the\n"
          "                      median of the amplitude_sd_* (else\n"
          "                      noise_sd_*) column\n"
          "  --quantal-shape S   gaussian (default) or gamma\n"
          "  --cv-q C            quantal CV for the CV method and MPFA\n"
          "                      (default: from the minis, else 0)\n"
          "  --n-max N           largest n profiled (200)\n"
          "  --level L           confidence level (0.95)\n"
          "  --bootstrap B       parametric bootstrap replicates (0)\n"
          "  --seed N            bootstrap seed (1)\n"
          "  --threads N         bootstrap threads (0 = all cores)\n"
          "  --no-ci             skip the profile-likelihood intervals\n"
          "  --no-shams          leave the sham_* columns out of the fit\n"
          "  --mpfa TABLE        variance-mean analysis of conditions\n"
          "  --group-by COLUMN   fit each value of COLUMN separately (the\n"
          "                      minis too when their table has it);\n"
          "                      several tables: each one a group\n"
          "  --shared-q          one binomial model over the groups: n, q,\n"
          "                      sigma_q, sigma_0 shared, p per group\n"
          "  --bins FILE         observed/expected counts of the best model\n"
          "  --json              JSON instead of the TSV table\n"
          "  -o, --output FILE   write the result to FILE (default: stdout)\n"
          "  --plot FIG          also draw the fit (.png .svg .pdf)\n"
          "  --quiet             no progress bar for the bootstrap\n"
          "  -h, --help          show this help and exit\n\n"
          "Exit status: 0 ok, 1 the fit failed or the data cannot be\n"
          "fitted, 2 usage, 3 a file cannot be read or lacks the column.\n"
          "See quantal-fit(1).\n");
}

/* An amplitude column read from a table. */
typedef struct column {
  const char *path;
  quantal_table *t;
  double *v;
  size_t n;
  char name[128];
  char unit[64];
  double noise_median; /* see noise_median(), or NaN */
  /* The sham_<unit> and sham_after_<unit> columns, two per row
   * (sham[2 i], sham[2 i + 1]; NaN: no sham there); NULL without
   * either. */
  double *sham;
  long failure_col;
  size_t n_failures;
} column;

static int
cmp_d(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Median of the positive values of the amplitude noise column over the
 * rows listed (all when rows is NULL); NaN without one. The column is
 * amplitude_sd_<unit> when there is one (evoked's SD of the amplitude
 * itself, measured in sham windows: sigma_0 of the model), else
 * noise_sd_<unit> (the SD of the baseline trace, an upper bound on it). */
static double
noise_median(const quantal_table *t, const char *unit, const size_t *rows,
             size_t n)
{
  char nn[160];
  long jn;
  double *tmp, med = NAN;
  const double *nv;
  size_t i, m = 0;
  snprintf(nn, sizeof nn, "amplitude_sd_%s", unit);
  jn = quantal_table_find(t, nn);
  if (jn < 0) {
    snprintf(nn, sizeof nn, "noise_sd_%s", unit);
    jn = quantal_table_find(t, nn);
  }
  if (jn < 0 || n == 0)
    return NAN;
  tmp = malloc(n * sizeof *tmp);
  if (tmp == NULL)
    return NAN;
  nv = quantal_table_column(t, (size_t)jn);
  for (i = 0; i < n; i++) {
    double v = nv[rows ? rows[i] : i];
    if (isfinite(v) && v > 0.0)
      tmp[m++] = v;
  }
  if (m > 0) {
    qsort(tmp, m, sizeof *tmp, cmp_d);
    med = m % 2 ? tmp[m / 2] : 0.5 * (tmp[m / 2 - 1] + tmp[m / 2]);
  }
  free(tmp);
  return med;
}

/* Read path and pick the amplitude column (given name or the first
 * amplitude_*). Prints the error and returns an exit code on failure. */
static int
read_column(const char *path, const char *want, column *c)
{
  quantal_diag diag;
  quantal_status st;
  long j;
  size_t i, rows;
  const double *v;
  memset(c, 0, sizeof *c);
  c->path = path;
  c->noise_median = NAN;
  c->failure_col = -1;
  quantal_diag_clear(&diag);
  st = quantal_table_read(path, &c->t, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    return qt_exit_code(st) == QT_EXIT_USAGE ? QT_EXIT_IO : qt_exit_code(st);
  }
  j = want ? quantal_table_find(c->t, want)
           : quantal_table_find_prefix(c->t, "amplitude_");
  if (j < 0) {
    if (want)
      qt_error("%s: no column '%s'", path, want);
    else
      qt_error("%s: no amplitude_<unit> column", path);
    return QT_EXIT_IO;
  }
  snprintf(c->name, sizeof c->name, "%s",
           quantal_table_colname(c->t, (size_t)j));
  {
    const char *us = strchr(c->name, '_');
    snprintf(c->unit, sizeof c->unit, "%s", us ? us + 1 : "");
  }
  rows = quantal_table_rows(c->t);
  v = quantal_table_column(c->t, (size_t)j);
  c->v = malloc((rows + 1) * sizeof *c->v);
  if (c->v == NULL) {
    qt_error("out of memory");
    return QT_EXIT_ANALYSIS;
  }
  for (i = 0; i < rows; i++) {
    if (!isfinite(v[i])) {
      qt_error("%s: row %zu: %s is not a number ('%s')", path, i + 1,
               c->name, quantal_table_cell(c->t, i, (size_t)j));
      return QT_EXIT_IO;
    }
    c->v[i] = v[i];
  }
  c->n = rows;
  /* sigma_0 information: the median per-trial baseline noise. */
  c->noise_median = noise_median(c->t, c->unit, NULL, rows);
  {
    int code = qt_shams_read(c->t, path, c->unit, j, &c->sham);
    if (code != 0)
      return code;
  }
  c->failure_col = quantal_table_find(c->t, "failure");
  if (c->failure_col >= 0) {
    const double *fv = quantal_table_column(c->t, (size_t)c->failure_col);
    for (i = 0; i < rows; i++)
      c->n_failures += fv[i] == 1.0;
  }
  return QT_EXIT_OK;
}

/* Shams given in c (finite cells of its sham column). */
static size_t
shams_given(const column *c)
{
  size_t i, n = 0;
  for (i = 0; c->sham && i < 2 * c->n; i++)
    n += isfinite(c->sham[i]) != 0;
  return n;
}

static void
column_free(column *c)
{
  free(c->v);
  free(c->sham);
  quantal_table_free(c->t);
}

static void
mean_sd(const double *v, size_t n, double *mean, double *sd)
{
  double s = 0.0, ss = 0.0;
  size_t i;
  for (i = 0; i < n; i++)
    s += v[i];
  *mean = n ? s / n : NAN;
  for (i = 0; i < n; i++)
    ss += (v[i] - *mean) * (v[i] - *mean);
  *sd = n > 1 ? sqrt(ss / (n - 1)) : NAN;
}

/* Classical estimates (NaN value when not available). */
typedef struct classic {
  quantal_estimate failures, direct, cv;
  int have_failures, have_direct, have_cv;
  char cv_note[128];
} classic;

static void
print_num(FILE *fp, double v)
{
  if (isnan(v))
    fputs("NA", fp);
  else if (isinf(v))
    fputs(v > 0 ? "inf" : "-inf", fp);
  else
    fprintf(fp, "%.6g", v);
}

/* With --group-by: the group of the rows being printed, their first
 * column. */
static const char *row_group;

/* One row of the table: kind, model, name, then the numbers (value,
 * ci_low, ci_high, boot_low, boot_high, cal_low, cal_high) and the unit. */
static void
row_nums(FILE *fp, const char *kind, const char *model, const char *name,
         const double *num, const char *unit)
{
  int i;
  if (row_group)
    fprintf(fp, "%s\t", row_group);
  fprintf(fp, "%s\t%s\t%s", kind, model, name);
  for (i = 0; i < 7; i++) {
    fputc('\t', fp);
    print_num(fp, num[i]);
  }
  fprintf(fp, "\t%s\n", unit);
}

static void
row(FILE *fp, const char *kind, const char *model, const char *name,
    double v, double lo, double hi, double blo, double bhi, const char *unit)
{
  double num[7] = {v, lo, hi, blo, bhi, NAN, NAN};
  row_nums(fp, kind, model, name, num, unit);
}

static const char *
par_unit(int j, const char *unit)
{
  switch (j) {
  case QUANTAL_PAR_Q:
  case QUANTAL_PAR_SIGMA_Q:
  case QUANTAL_PAR_SIGMA_0: return unit;
  default: return "1";
  }
}

static const char *
verdict_name(quantal_n_verdict v)
{
  switch (v) {
  case QUANTAL_N_IDENTIFIED: return "identified";
  case QUANTAL_N_LOWER_BOUND: return "lower_bound_only";
  case QUANTAL_N_FLAT: return "not_identifiable";
  default: return "na";
  }
}

/* "name": {"value": v, "ci_low": lo, "ci_high": hi -- the object left
 * open for more members. */
static void
json_open_est(FILE *fp, const char *name, double v, double lo, double hi,
              int comma)
{
  fprintf(fp, "%s\"%s\": {\"value\": ", comma ? ", " : "", name);
  qt_json_number(fp, v);
  fputs(", \"ci_low\": ", fp);
  qt_json_number(fp, lo);
  fputs(", \"ci_high\": ", fp);
  qt_json_number(fp, hi);
}

static void
json_est(FILE *fp, const char *name, const quantal_estimate *e, int comma)
{
  json_open_est(fp, name, e->value, e->lo, e->hi, comma);
  fputc('}', fp);
}

static void
json_kv(FILE *fp, const char *name, double v)
{
  fprintf(fp, ", \"%s\": ", name);
  qt_json_number(fp, v);
}

/* One parameter as a JSON member: value, profile, bootstrap and
 * calibrated intervals; an open upper end is null with ci_high_open
 * true. */
static void
json_par(FILE *fp, const char *name, const quantal_fit_param *p, int comma)
{
  json_open_est(fp, name, p->value, p->lo, isinf(p->hi) ? NAN : p->hi,
                comma);
  fprintf(fp, ", \"ci_high_open\": %s", isinf(p->hi) ? "true" : "false");
  json_kv(fp, "boot_low", p->boot_lo);
  json_kv(fp, "boot_high", p->boot_hi);
  json_kv(fp, "cal_low", p->cal_lo);
  json_kv(fp, "cal_high", p->cal_hi);
  json_kv(fp, "cal_threshold", p->cal_lr);
  fputc('}', fp);
}

static void
print_json(FILE *fp, int argc, char **argv, const column *amp,
           const column *minis, const classic *cl,
           const quantal_fit_result *r, const quantal_fit_options *o,
           const quantal_mpfa_result *mp, double driving, double martin_f)
{
  int i, m, j;
  size_t k;
  fprintf(fp, "{\"quantal_version\": ");
  qt_json_string(fp, quantal_version());
  fputs(", \"command\": ", fp);
  {
    char buf[2048] = "";
    for (i = 0; i < argc; i++) {
      strncat(buf, argv[i], sizeof buf - strlen(buf) - 2);
      if (i + 1 < argc)
        strncat(buf, " ", sizeof buf - strlen(buf) - 1);
    }
    qt_json_string(fp, buf);
  }
  fputs(",\n \"input\": {\"file\": ", fp);
  qt_json_string(fp, amp->path);
  fputs(", \"column\": ", fp);
  qt_json_string(fp, amp->name);
  fputs(", \"unit\": ", fp);
  qt_json_string(fp, amp->unit);
  fprintf(fp, ", \"n\": %zu, \"minis_file\": ", amp->n);
  if (minis)
    qt_json_string(fp, minis->path);
  else
    fputs("null", fp);
  fprintf(fp, ", \"n_minis\": %zu, \"noise_sd_column_median\": ",
          minis ? minis->n : 0);
  qt_json_number(fp, amp->noise_median);
  fprintf(fp, ", \"n_shams\": %zu, \"n_shams_used\": %zu", shams_given(amp),
          r ? r->n_shams : 0);
  fputs("},\n \"settings\": {\"level\": ", fp);
  qt_json_number(fp, o->level);
  fprintf(fp, ", \"n_max\": %u, \"bootstrap\": %u, \"seed\": %llu, "
              "\"quantal_shape\": \"%s\", \"noise_sd_fixed\": ",
          o->n_max, o->bootstrap, (unsigned long long)o->seed,
          o->shape == QUANTAL_QSHAPE_GAMMA ? "gamma" : "gaussian");
  qt_json_number(fp, o->noise_sd > 0.0 ? o->noise_sd : NAN);
  fputs(", \"driving_force\": ", fp);
  qt_json_number(fp, driving);
  fputs(", \"martin_f\": ", fp);
  qt_json_number(fp, martin_f);
  fputs("},\n \"classical\": {", fp);
  {
    int comma = 0;
    if (cl->have_failures) {
      json_est(fp, "failures", &cl->failures, comma);
      fprintf(fp, ", \"n_failures\": %zu", amp->n_failures);
      comma = 1;
    }
    if (cl->have_direct) {
      json_est(fp, "direct", &cl->direct, comma);
      comma = 1;
    }
    if (cl->have_cv)
      json_est(fp, "cv", &cl->cv, comma);
  }
  fputs("},\n \"models\": {", fp);
  for (m = 0, i = 0; r && m < QUANTAL_FIT_N_MODELS; m++) {
    const quantal_model_fit *f = &r->model[m];
    if (!f->fitted)
      continue;
    fprintf(fp, "%s\n  \"%s\": {\"loglik\": ", i++ ? "," : "",
            quantal_fit_model_name((quantal_fit_model)m));
    qt_json_number(fp, f->loglik);
    fputs(", \"aic\": ", fp);
    qt_json_number(fp, f->aic);
    fputs(", \"bic\": ", fp);
    qt_json_number(fp, f->bic);
    fprintf(fp, ", \"n_params\": %u, \"n_verdict\": \"%s\", \"ks\": ",
            f->n_params, verdict_name(f->n_verdict));
    qt_json_number(fp, f->ks);
    fputs(", \"ks_p\": ", fp);
    qt_json_number(fp, f->ks_p);
    fputs(", \"ad\": ", fp);
    qt_json_number(fp, f->ad);
    fputs(", \"ad_p\": ", fp);
    qt_json_number(fp, f->ad_p);
    fprintf(fp, ", \"bootstrap_ok\": %u,\n   \"parameters\": {", f->boot_ok);
    for (j = 0, k = 0; j < QUANTAL_PAR_COUNT; j++) {
      const quantal_fit_param *p = &f->par[j];
      if (isnan(p->value))
        continue;
      json_par(fp, quantal_fit_par_name((quantal_fit_par)j), p, k++ > 0);
    }
    fputc('}', fp);
    if (f->n_weights) {
      fputs(",\n   \"weights\": [", fp);
      for (k = 0; k < f->n_weights; k++) {
        if (k)
          fputs(", ", fp);
        qt_json_number(fp, f->weights[k]);
      }
      fputc(']', fp);
    }
    if (f->n_profile) {
      fputs(",\n   \"profile_n\": [", fp);
      for (k = 0; k < f->n_profile; k++)
        fprintf(fp, "%s%u", k ? ", " : "", f->profile_n[k]);
      fputs("],\n   \"profile_loglik\": [", fp);
      for (k = 0; k < f->n_profile; k++) {
        if (k)
          fputs(", ", fp);
        qt_json_number(fp, f->profile_loglik[k]);
      }
      fputc(']', fp);
    }
    fputs(",\n   \"bins\": [", fp);
    for (k = 0; k < f->n_bins; k++) {
      fprintf(fp, "%s{\"low\": ", k ? ", " : "");
      qt_json_number(fp, f->bin_lo[k]);
      fputs(", \"high\": ", fp);
      qt_json_number(fp, f->bin_hi[k]);
      fprintf(fp, ", \"observed\": %zu, \"expected\": ", f->bin_observed[k]);
      qt_json_number(fp, f->bin_expected[k]);
      fputc('}', fp);
    }
    fputs("]}", fp);
  }
  fputs("},\n \"best_model\": ", fp);
  if (r && r->best >= 0)
    qt_json_string(fp, quantal_fit_model_name((quantal_fit_model)r->best));
  else
    fputs("null", fp);
  fputs(", \"lrt_binomial_vs_poisson\": ", fp);
  qt_json_number(fp, r ? r->lrt_stat : NAN);
  fputs(", \"lrt_p\": ", fp);
  qt_json_number(fp, r ? r->lrt_p : NAN);
  fputs(", \"lrt_mixture_vs_unimodal\": ", fp);
  qt_json_number(fp, r ? r->mixture_lrt_stat : NAN);
  if (mp) {
    fputs(",\n \"mpfa\": {", fp);
    json_est(fp, "q", &mp->q, 0);
    json_est(fp, "n", &mp->n_sites, 1);
    json_est(fp, "a", &mp->a, 1);
    json_est(fp, "b", &mp->b, 1);
    fputs(", \"chi2\": ", fp);
    qt_json_number(fp, mp->chi2);
    fprintf(fp, ", \"df\": %d, \"p\": [", mp->df);
    for (k = 0; k < mp->n_conditions; k++) {
      fputs(k ? ", {" : "{", fp);
      json_est(fp, "p", &mp->p[k], 0);
      fputc('}', fp);
    }
    fputs("]}", fp);
  }
  fputs("}\n", fp);
}

static void
print_tsv(FILE *fp, int argc, char **argv, const column *amp,
          const column *minis, const classic *cl,
          const quantal_fit_result *r, const quantal_fit_options *o,
          const quantal_mpfa_result *mp, int first)
{
  int m, j;
  size_t k;
  const char *u = amp->unit;
  /* Grouped: one header for the whole table, the comments of each group
   * tagged with it. */
  const char *g = row_group ? row_group : "";
  const char *gs = row_group ? ": " : "";
  if (first)
    qt_print_provenance(fp, argc, argv);
  fprintf(fp, "# %s%sinput: %s column %s (%zu amplitudes)", g, gs, amp->path,
          amp->name, amp->n);
  if (minis)
    fprintf(fp, "; minis: %s column %s (%zu)", minis->path, minis->name,
            minis->n);
  if (amp->sham) {
    size_t ng = shams_given(amp), nu = r ? r->n_shams : 0;
    fprintf(fp, "; shams: %zu", nu);
    if (nu < ng && o->noise_sd > 0.0)
      fprintf(fp, " of %zu (sigma_0 fixed)", ng);
    else if (nu < ng)
      fprintf(fp, " of %zu (the rest beyond 5 robust SDs)", ng);
  }
  fputc('\n', fp);
  if (first)
    fprintf(fp, "# level: %g; n_max: %u; bootstrap: %u; seed: %llu\n",
            o->level, o->n_max, o->bootstrap, (unsigned long long)o->seed);
  if (r) {
    for (m = 0; m < QUANTAL_FIT_N_MODELS; m++)
      if (r->model[m].fitted && r->model[m].n_verdict != QUANTAL_N_NA)
        fprintf(fp, "# %s%s%s: n %s\n", g, gs,
                quantal_fit_model_name((quantal_fit_model)m),
                verdict_name(r->model[m].n_verdict));
    if (r->best >= 0)
      fprintf(fp, "# %s%sbest model (lowest AIC): %s\n", g, gs,
              quantal_fit_model_name((quantal_fit_model)r->best));
  }
  if (cl->cv_note[0])
    fprintf(fp, "# %s%s%s\n", g, gs, cl->cv_note);
  if (first)
    fprintf(fp, "%skind\tmodel\tname\tvalue\tci_low\tci_high\tboot_low"
                "\tboot_high\tcal_low\tcal_high\tunit\n",
            row_group ? "group\t" : "");
  if (cl->have_failures)
    row(fp, "classical", "failures", "m", cl->failures.value, cl->failures.lo,
        cl->failures.hi, NAN, NAN, "1");
  if (cl->have_direct)
    row(fp, "classical", "direct", "m", cl->direct.value, cl->direct.lo,
        cl->direct.hi, NAN, NAN, "1");
  if (cl->have_cv)
    row(fp, "classical", "cv", "m", cl->cv.value, cl->cv.lo, cl->cv.hi, NAN,
        NAN, "1");
  for (m = 0; r && m < QUANTAL_FIT_N_MODELS; m++) {
    const quantal_model_fit *f = &r->model[m];
    const char *mn = quantal_fit_model_name((quantal_fit_model)m);
    if (!f->fitted)
      continue;
    for (j = 0; j < QUANTAL_PAR_COUNT; j++) {
      const quantal_fit_param *p = &f->par[j];
      if (isnan(p->value))
        continue;
      double num[7] = {p->value,  p->lo,     p->hi,    p->boot_lo,
                       p->boot_hi, p->cal_lo, p->cal_hi};
      row_nums(fp, "parameter", mn, quantal_fit_par_name((quantal_fit_par)j),
               num, par_unit(j, u));
    }
    for (k = 0; k < f->n_weights; k++) {
      char nm[32];
      snprintf(nm, sizeof nm, "w%zu", k);
      row(fp, "weight", mn, nm, f->weights[k], NAN, NAN, NAN, NAN, "1");
    }
    row(fp, "fit", mn, "loglik", f->loglik, NAN, NAN, NAN, NAN, "1");
    row(fp, "fit", mn, "aic", f->aic, NAN, NAN, NAN, NAN, "1");
    row(fp, "fit", mn, "bic", f->bic, NAN, NAN, NAN, NAN, "1");
    row(fp, "gof", mn, "ks", f->ks, NAN, NAN, NAN, NAN, "1");
    row(fp, "gof", mn, "ks_p", f->ks_p, NAN, NAN, NAN, NAN, "1");
    row(fp, "gof", mn, "ad", f->ad, NAN, NAN, NAN, NAN, "1");
    row(fp, "gof", mn, "ad_p", f->ad_p, NAN, NAN, NAN, NAN, "1");
  }
  if (r && !isnan(r->lrt_stat)) {
    row(fp, "compare", "binomial_vs_poisson", "lrt", r->lrt_stat, NAN, NAN,
        NAN, NAN, "1");
    row(fp, "compare", "binomial_vs_poisson", "lrt_p", r->lrt_p, NAN, NAN,
        NAN, NAN, "1");
  }
  if (r && !isnan(r->mixture_lrt_stat))
    row(fp, "compare", "mixture_nofail_vs_unimodal", "lrt",
        r->mixture_lrt_stat, NAN, NAN, NAN, NAN, "1");
  if (mp) {
    row(fp, "mpfa", "parabola", "q", mp->q.value, mp->q.lo, mp->q.hi, NAN,
        NAN, u);
    row(fp, "mpfa", "parabola", "n", mp->n_sites.value, mp->n_sites.lo,
        mp->n_sites.hi, NAN, NAN, "1");
    for (k = 0; k < mp->n_conditions; k++) {
      char nm[32];
      snprintf(nm, sizeof nm, "p%zu", k + 1);
      row(fp, "mpfa", "parabola", nm, mp->p[k].value, mp->p[k].lo,
          mp->p[k].hi, NAN, NAN, "1");
    }
    row(fp, "mpfa", "parabola", "chi2", mp->chi2, NAN, NAN, NAN, NAN, "1");
  }
}

/* --mpfa TABLE: either per-condition summaries (mean_<u>, var_<u>2 or
 * sd_<u>, n) or raw amplitudes with a condition column. */
static int
read_mpfa(const char *path, double cv_q, double level,
          quantal_mpfa_result **out)
{
  quantal_table *t = NULL;
  quantal_diag diag;
  quantal_status st;
  long jc, ja, jm, jv, js, jn;
  size_t rows, i, nc = 0;
  double *mean = NULL, *var = NULL;
  size_t *cnt = NULL;
  int code = QT_EXIT_OK;
  quantal_diag_clear(&diag);
  st = quantal_table_read(path, &t, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    return QT_EXIT_IO;
  }
  rows = quantal_table_rows(t);
  jc = quantal_table_find(t, "condition");
  ja = quantal_table_find_prefix(t, "amplitude_");
  jm = quantal_table_find_prefix(t, "mean_");
  jv = quantal_table_find_prefix(t, "var_");
  js = quantal_table_find_prefix(t, "sd_");
  jn = quantal_table_find(t, "n");
  mean = calloc(rows + 1, sizeof *mean);
  var = calloc(rows + 1, sizeof *var);
  cnt = calloc(rows + 1, sizeof *cnt);
  if (!mean || !var || !cnt) {
    qt_error("out of memory");
    code = QT_EXIT_ANALYSIS;
    goto done;
  }
  if (jm >= 0 && (jv >= 0 || js >= 0) && jn >= 0) {
    const double *M = quantal_table_column(t, (size_t)jm);
    const double *V = quantal_table_column(t, (size_t)(jv >= 0 ? jv : js));
    const double *N = quantal_table_column(t, (size_t)jn);
    for (i = 0; i < rows; i++) {
      if (!isfinite(M[i]) || !isfinite(V[i]) || !(N[i] >= 2.0)) {
        qt_error("%s: row %zu: mean, variance and n >= 2 needed", path,
                 i + 1);
        code = QT_EXIT_IO;
        goto done;
      }
      mean[nc] = M[i];
      var[nc] = jv >= 0 ? V[i] : V[i] * V[i];
      cnt[nc++] = (size_t)N[i];
    }
  } else if (jc >= 0 && ja >= 0) {
    /* Conditions in order of first appearance; one pass per condition
     * keeps this simple (tables are small). */
    const double *A = quantal_table_column(t, (size_t)ja);
    char **names = calloc(rows + 1, sizeof *names);
    if (names == NULL) {
      code = QT_EXIT_ANALYSIS;
      goto done;
    }
    for (i = 0; i < rows; i++) {
      const char *cn = quantal_table_cell(t, i, (size_t)jc);
      size_t c;
      if (!isfinite(A[i])) {
        qt_error("%s: row %zu: amplitude is not a number", path, i + 1);
        free(names);
        code = QT_EXIT_IO;
        goto done;
      }
      for (c = 0; c < nc; c++)
        if (strcmp(names[c], cn) == 0)
          break;
      if (c == nc)
        names[nc++] = (char *)cn;
      mean[c] += A[i];
      cnt[c]++;
    }
    for (i = 0; i < nc; i++)
      mean[i] /= cnt[i];
    for (i = 0; i < rows; i++) {
      const char *cn = quantal_table_cell(t, i, (size_t)jc);
      size_t c;
      for (c = 0; c < nc; c++)
        if (strcmp(names[c], cn) == 0)
          break;
      var[c] += (A[i] - mean[c]) * (A[i] - mean[c]);
    }
    for (i = 0; i < nc; i++)
      var[i] = cnt[i] > 1 ? var[i] / (cnt[i] - 1) : 0.0;
    free(names);
  } else {
    qt_error("%s: needs columns condition and amplitude_<unit>, or "
             "mean_<unit>, var_<unit>2 (or sd_<unit>) and n",
             path);
    code = QT_EXIT_IO;
    goto done;
  }
  quantal_diag_clear(&diag);
  st = quantal_mpfa_fit(mean, var, cnt, nc, cv_q, level, out, &diag);
  if (st != QUANTAL_OK) {
    qt_error("%s: %s", path, diag.reason[0] ? diag.reason
                                            : quantal_status_str(st));
    code = QT_EXIT_ANALYSIS;
  }
done:
  free(mean);
  free(var);
  free(cnt);
  quantal_table_free(t);
  return code;
}

static void
on_boot_progress(size_t done, size_t total, void *user)
{
  (void)total;
  qt_progress_update(user, done);
}

/* The estimates of one set of amplitudes. */
typedef struct analysis {
  classic cl;
  quantal_fit_result *r;
  double cv_q; /* as used by the CV method: given, from the minis, or 0 */
  int printable; /* something to report (with r NULL: classical only) */
} analysis;

/* Classical estimates and likelihood fits of amp (and mini when
 * have_minis), into an. Returns the exit code, the error printed;
 * an->printable says whether there is anything to report (all failures:
 * the classical estimates only, with QT_EXIT_ANALYSIS). */
static int
analyse(const column *amp, const column *mini, int have_minis,
        quantal_fit_options o, double cv_q, int quiet, analysis *an)
{
  quantal_diag diag;
  quantal_status st;
  qt_progress bar;
  int code = QT_EXIT_OK;
  memset(an, 0, sizeof *an);
  an->cv_q = cv_q;
  /* Classical estimates. */
  if (amp->failure_col >= 0 && amp->n > 0) {
    quantal_diag_clear(&diag);
    an->cl.have_failures = quantal_classic_failures(amp->n, amp->n_failures,
                                                o.level, &an->cl.failures,
                                                &diag) == QUANTAL_OK;
  }
  if (amp->n >= 2) {
    double me, se, mm = NAN, sm = NAN, cvq = cv_q;
    mean_sd(amp->v, amp->n, &me, &se);
    if (have_minis && mini->n >= 2) {
      double sdm;
      mean_sd(mini->v, mini->n, &mm, &sdm);
      sm = sdm / sqrt((double)mini->n);
      if (isnan(cvq) && mm != 0.0) {
        /* The minis' SD includes the noise: subtract it when known. */
        double s0 = isnan(amp->noise_median) ? 0.0 : amp->noise_median;
        double vq = sdm * sdm - s0 * s0;
        cvq = vq > 0.0 ? sqrt(vq) / fabs(mm) : 0.0;
      }
      quantal_diag_clear(&diag);
      an->cl.have_direct =
          quantal_classic_direct(me, se / sqrt((double)amp->n), mm, sm,
                                 o.level, &an->cl.direct, &diag) == QUANTAL_OK;
    }
    if (isnan(cvq)) {
      cvq = 0.0;
      snprintf(an->cl.cv_note, sizeof an->cl.cv_note,
               "cv method: quantal CV taken as 0 (give --minis or --cv-q)");
    }
    quantal_diag_clear(&diag);
    an->cl.have_cv =
        quantal_classic_cv(me, se, amp->n, cvq,
                           isnan(amp->noise_median) ? 0.0 : amp->noise_median,
                           o.level, &an->cl.cv, &diag) == QUANTAL_OK;
    an->cv_q = cvq;
  }
  /* Degenerate input with a documented result instead of a fit. */
  if (amp->failure_col >= 0 && amp->n > 0 && amp->n_failures == amp->n) {
    qt_error("%s: all %zu trials are failures: only the failures estimate "
             "(m = 0) is reported",
             amp->path, amp->n);
    code = QT_EXIT_ANALYSIS;
  } else {
    quantal_diag_clear(&diag);
    o.on_progress = on_boot_progress;
    o.user = &bar;
    qt_progress_begin(&bar, "fit: bootstrap", o.bootstrap,
                      quiet || o.bootstrap == 0);
    o.shams = amp->sham;
    o.n_shams = amp->sham ? 2 * amp->n : 0;
    st = quantal_fit_run(amp->v, amp->n, have_minis ? mini->v : NULL,
                         have_minis ? mini->n : 0, &o, &an->r, &diag);
    qt_progress_end(&bar);
    if (st != QUANTAL_OK) {
      qt_error("%s: %s", amp->path,
               diag.reason[0] ? diag.reason : quantal_status_str(st));
      return st == QUANTAL_EINVAL ? QT_EXIT_USAGE : QT_EXIT_ANALYSIS;
    }
  }
  an->printable = 1;
  return code;
}

/* The rows of t whose group column gcol holds value, into rows (room
 * for every row). */
static size_t
group_rows(const quantal_table *t, long gcol, const char *value,
           size_t *rows)
{
  size_t i, n = 0, nr = quantal_table_rows(t);
  for (i = 0; i < nr; i++)
    if (strcmp(quantal_table_cell(t, i, (size_t)gcol), value) == 0)
      rows[n++] = i;
  return n;
}

/* A column holding the listed rows of c (values copied; the table is
 * c's). */
static int
sub_column(const column *c, const size_t *rows, size_t n, const char *label,
           column *sc)
{
  size_t i;
  *sc = *c;
  sc->path = label;
  sc->v = malloc((n + 1) * sizeof *sc->v);
  if (sc->v == NULL)
    return -1;
  sc->n_failures = 0;
  for (i = 0; i < n; i++) {
    sc->v[i] = c->v[rows[i]];
    if (c->failure_col >= 0)
      sc->n_failures +=
          quantal_table_column(c->t, (size_t)c->failure_col)[rows[i]] == 1.0;
  }
  sc->n = n;
  sc->noise_median = noise_median(c->t, c->unit, rows, n);
  sc->sham = NULL;
  if (c->sham) {
    sc->sham = malloc((2 * n + 1) * sizeof *sc->sham);
    if (sc->sham == NULL)
      return -1;
    for (i = 0; i < n; i++) {
      sc->sham[2 * i] = c->sham[2 * rows[i]];
      sc->sham[2 * i + 1] = c->sham[2 * rows[i] + 1];
    }
  }
  return 0;
}

/* The groups of a grouped fit: the amplitudes of each (values owned,
 * the table borrowed), their label, and their minis (v NULL: none of
 * their own). */
typedef struct grouping {
  size_t ng;
  column *a, *m;
  const char **label;
  const char *by; /* the grouping column, or NULL: one table a group */
} grouping;

static void
grouping_free(grouping *gr)
{
  size_t i;
  for (i = 0; gr->a && i < gr->ng; i++) {
    free(gr->a[i].v);
    free(gr->a[i].sham);
    free(gr->m[i].v);
    free(gr->m[i].sham);
  }
  free(gr->a);
  free(gr->m);
  free(gr->label);
  memset(gr, 0, sizeof *gr);
}

/* Room for ng groups; 0 or the exit code (error printed). */
static int
grouping_alloc(grouping *gr, size_t ng)
{
  gr->ng = 0;
  gr->a = calloc(ng + 1, sizeof *gr->a);
  gr->m = calloc(ng + 1, sizeof *gr->m);
  gr->label = calloc(ng + 1, sizeof *gr->label);
  if (gr->a == NULL || gr->m == NULL || gr->label == NULL) {
    qt_error("out of memory");
    return QT_EXIT_ANALYSIS;
  }
  return QT_EXIT_OK;
}

/* --group-by: the values of column gname of amp, in order of first
 * appearance; the minis of the same value when the minis table has the
 * column. */
static int
groups_by_column(const column *amp, const column *mini, const char *gname,
                 grouping *gr)
{
  long gcol = quantal_table_find(amp->t, gname), mcol = -1;
  size_t nr = quantal_table_rows(amp->t), i, ng = 0;
  size_t *rows = malloc((nr + 1) * sizeof *rows), *mrows = NULL;
  int code;
  memset(gr, 0, sizeof *gr);
  gr->by = gname;
  if (gcol < 0) {
    qt_error("%s: no column '%s' (--group-by)", amp->path, gname);
    free(rows);
    return QT_EXIT_IO;
  }
  code = grouping_alloc(gr, nr);
  if (mini) {
    mcol = quantal_table_find(mini->t, gname);
    mrows = malloc((quantal_table_rows(mini->t) + 1) * sizeof *mrows);
  }
  if (code == QT_EXIT_OK && (rows == NULL || (mini && mrows == NULL))) {
    qt_error("out of memory");
    code = QT_EXIT_ANALYSIS;
  }
  for (i = 0; code == QT_EXIT_OK && i < nr; i++) {
    const char *g = quantal_table_cell(amp->t, i, (size_t)gcol);
    size_t k;
    for (k = 0; k < ng && strcmp(gr->label[k], g) != 0; k++)
      ;
    if (k == ng)
      gr->label[ng++] = g;
  }
  for (i = 0; code == QT_EXIT_OK && i < ng; i++) {
    size_t n = group_rows(amp->t, gcol, gr->label[i], rows);
    if (sub_column(amp, rows, n, amp->path, &gr->a[i]) != 0) {
      qt_error("out of memory");
      code = QT_EXIT_ANALYSIS;
      break;
    }
    gr->ng = i + 1;
    if (mini && mcol >= 0) {
      size_t nm = group_rows(mini->t, mcol, gr->label[i], mrows);
      if (sub_column(mini, mrows, nm, mini->path, &gr->m[i]) != 0) {
        qt_error("out of memory");
        code = QT_EXIT_ANALYSIS;
        break;
      }
    }
  }
  free(rows);
  free(mrows);
  return code;
}

/* Several tables: each one a group, labelled by its path. */
static int
groups_of_tables(const column *amps, size_t na, grouping *gr)
{
  size_t i, j;
  int code;
  memset(gr, 0, sizeof *gr);
  code = grouping_alloc(gr, na);
  for (i = 0; code == QT_EXIT_OK && i < na; i++) {
    size_t *rows = malloc((amps[i].n + 1) * sizeof *rows);
    int bad = rows == NULL;
    for (j = 0; !bad && j < amps[i].n; j++)
      rows[j] = j;
    if (bad || sub_column(&amps[i], rows, amps[i].n, amps[i].path,
                          &gr->a[i]) != 0) {
      free(rows);
      qt_error("out of memory");
      return QT_EXIT_ANALYSIS;
    }
    free(rows);
    gr->label[i] = amps[i].path;
    gr->ng = i + 1;
  }
  return code;
}

/* The analysis of each group on its own (with its minis, else all of
 * them), into one table or JSON document. A group that cannot be fitted
 * is reported and skipped; the exit status is that of the first such
 * group. */
static int
fit_groups(int argc, char **argv, const grouping *gr, const column *mini,
           quantal_fit_options o, double cv_q, int noise_from_column,
           int quiet, int json, const char *out_path, double driving,
           double martin_f)
{
  size_t i;
  int code = QT_EXIT_OK;
  qt_out out;
  if (qt_out_open(&out, out_path) != 0)
    return QT_EXIT_IO;
  if (json) {
    fputs("{\"group_by\": ", out.fp);
    if (gr->by)
      qt_json_string(out.fp, gr->by);
    else
      fputs("\"table\"", out.fp);
    fputs(", \"groups\": [\n", out.fp);
  }
  for (i = 0; i < gr->ng; i++) {
    char label[1024], mlabel[1024];
    column sa = gr->a[i], sm = gr->m[i];
    const column *use_m = mini;
    analysis an;
    quantal_fit_options og = o;
    int c;
    if (gr->by)
      snprintf(label, sizeof label, "%s [%s %s]", sa.path, gr->by,
               gr->label[i]);
    else
      snprintf(label, sizeof label, "%s", sa.path);
    sa.path = label;
    if (sm.v) {
      snprintf(mlabel, sizeof mlabel, "%s [%s %s]", sm.path, gr->by,
               gr->label[i]);
      sm.path = mlabel;
      use_m = &sm;
    }
    og.noise_hint = 0.0;
    if (noise_from_column) {
      if (isnan(sa.noise_median)) {
        qt_error("%s: --noise-sd column: no amplitude_sd_%s or noise_sd_%s "
                 "values",
                 label, sa.unit, sa.unit);
        c = QT_EXIT_IO;
        goto next;
      }
      og.noise_sd = sa.noise_median;
    } else if (!isnan(sa.noise_median))
      og.noise_hint = sa.noise_median;
    c = analyse(&sa, use_m, use_m != NULL && (use_m->n > 0), og, cv_q, quiet,
                &an);
    if (an.printable) {
      row_group = gr->label[i];
      if (json) {
        fputs(i ? ",\n{\"group\": " : "{\"group\": ", out.fp);
        qt_json_string(out.fp, gr->label[i]);
        fputs(", \"fit\": ", out.fp);
        print_json(out.fp, argc, argv, &sa, use_m, &an.cl, an.r, &og, NULL,
                   driving, martin_f);
        fputs("}", out.fp);
      } else
        print_tsv(out.fp, argc, argv, &sa, use_m, &an.cl, an.r, &og, NULL,
                  i == 0);
      row_group = NULL;
      quantal_fit_result_free(an.r);
    } else if (json) {
      fputs(i ? ",\n{\"group\": " : "{\"group\": ", out.fp);
      qt_json_string(out.fp, gr->label[i]);
      fputs(", \"fit\": null}", out.fp);
    } else
      fprintf(out.fp, "# %s: no fit (see the error on stderr)\n",
              gr->label[i]);
  next:
    if (c != QT_EXIT_OK && code == QT_EXIT_OK)
      code = c;
  }
  if (json)
    fputs("]}\n", out.fp);
  {
    int c2 = qt_out_commit(&out);
    if (c2 != QT_EXIT_OK)
      code = c2;
  }
  return code;
}

static void
shared_row(FILE *fp, const char *group, const char *kind, const char *name,
           const quantal_fit_param *p, double v, const char *unit)
{
  fprintf(fp, "%s\t%s\t%s\t", group, kind, name);
  print_num(fp, p ? p->value : v);
  fputc('\t', fp);
  print_num(fp, p ? p->lo : NAN);
  fputc('\t', fp);
  print_num(fp, p ? p->hi : NAN);
  fputc('\t', fp);
  print_num(fp, p ? p->boot_lo : NAN);
  fputc('\t', fp);
  print_num(fp, p ? p->boot_hi : NAN);
  fprintf(fp, "\t%s\n", unit);
}

/* --shared-q: one binomial model over the groups, n, q, sigma_q and
 * sigma_0 shared, p per group. */
static int
fit_shared(int argc, char **argv, const grouping *gr, const column *mini,
           quantal_fit_options o, int noise_from_column, int quiet, int json,
           const char *out_path)
{
  const double **a = calloc(gr->ng + 1, sizeof *a);
  size_t *n = calloc(gr->ng + 1, sizeof *n), i, nm = 0;
  double *mv = NULL;
  quantal_shared_fit *r = NULL;
  quantal_diag diag;
  quantal_status st;
  qt_progress bar;
  qt_out out;
  const char *u = gr->a[0].unit;
  int code = QT_EXIT_OK;
  if (a == NULL || n == NULL) {
    qt_error("out of memory");
    code = QT_EXIT_ANALYSIS;
    goto done;
  }
  for (i = 0; i < gr->ng; i++) {
    a[i] = gr->a[i].v;
    n[i] = gr->a[i].n;
  }
  /* The minis enter once: all of them (they share q whatever the
   * condition). */
  if (mini && mini->n > 0) {
    mv = mini->v;
    nm = mini->n;
  }
  if (noise_from_column) {
    /* One sigma_0 for all: the median of the groups' medians. */
    double *med = malloc((gr->ng + 1) * sizeof *med);
    size_t k = 0;
    if (med == NULL) {
      qt_error("out of memory");
      code = QT_EXIT_ANALYSIS;
      goto done;
    }
    for (i = 0; i < gr->ng; i++)
      if (!isnan(gr->a[i].noise_median))
        med[k++] = gr->a[i].noise_median;
    if (k < gr->ng) {
      qt_error("%s: --noise-sd column: no amplitude_sd_%s or noise_sd_%s "
               "values",
               gr->a[i < gr->ng ? i : 0].path, u, u);
      free(med);
      code = QT_EXIT_IO;
      goto done;
    }
    qsort(med, k, sizeof *med, cmp_d);
    o.noise_sd = k % 2 ? med[k / 2] : 0.5 * (med[k / 2 - 1] + med[k / 2]);
    free(med);
  }
  for (i = 0; i < gr->ng && !(o.noise_sd > 0.0); i++)
    if (shams_given(&gr->a[i]) > 0) {
      qt_error("%s: note: --shared-q does not use the shams: sigma_0 comes "
               "from the amplitudes and minis alone",
               gr->a[i].path);
      break;
    }
  o.on_progress = on_boot_progress;
  o.user = &bar;
  qt_progress_begin(&bar, "fit: bootstrap", o.bootstrap,
                    quiet || o.bootstrap == 0);
  quantal_diag_clear(&diag);
  st = quantal_fit_shared(a, n, gr->ng, mv, nm, &o, &r, &diag);
  qt_progress_end(&bar);
  if (st != QUANTAL_OK) {
    /* "condition K: ..." names the group. */
    unsigned long g = 0;
    int off = 0;
    if (sscanf(diag.reason, "condition %lu: %n", &g, &off) == 1 && off > 0 &&
        g >= 1 && g <= gr->ng) {
      if (gr->by)
        qt_error("%s [%s %s]: %s", gr->a[g - 1].path, gr->by,
                 gr->label[g - 1], diag.reason + off);
      else
        qt_error("%s: %s", gr->a[g - 1].path, diag.reason + off);
    } else
      qt_error("%s: shared-q fit: %s", gr->a[0].path,
               diag.reason[0] ? diag.reason : quantal_status_str(st));
    code = st == QUANTAL_EINVAL ? QT_EXIT_USAGE : QT_EXIT_ANALYSIS;
    goto done;
  }
  if (qt_out_open(&out, out_path) != 0) {
    code = QT_EXIT_IO;
    goto done;
  }
  if (json) {
    FILE *fp = out.fp;
    fputs("{\"model\": \"binomial_shared_q\", \"group_by\": ", fp);
    if (gr->by)
      qt_json_string(fp, gr->by);
    else
      fputs("\"table\"", fp);
    fputs(", \"unit\": ", fp);
    qt_json_string(fp, u);
    fprintf(fp, ",\n \"settings\": {\"level\": ");
    qt_json_number(fp, o.level);
    fprintf(fp, ", \"n_max\": %u, \"bootstrap\": %u, \"seed\": %llu, "
                "\"noise_sd_fixed\": ",
            o.n_max, o.bootstrap, (unsigned long long)o.seed);
    qt_json_number(fp, o.noise_sd > 0.0 ? o.noise_sd : NAN);
    fprintf(fp, ", \"n_minis\": %zu},\n \"shared\": {", nm);
    json_par(fp, "n", &r->n, 0);
    json_par(fp, "q", &r->q, 1);
    json_par(fp, "sigma_q", &r->sigma_q, 1);
    json_par(fp, "cv_q", &r->cv_q, 1);
    json_par(fp, "sigma_0", &r->sigma_0, 1);
    fprintf(fp, "},\n \"n_verdict\": \"%s\"", verdict_name(r->n_verdict));
    json_kv(fp, "loglik", r->loglik);
    json_kv(fp, "aic", r->aic);
    json_kv(fp, "bic", r->bic);
    fprintf(fp, ", \"n_params\": %u, \"bootstrap_ok\": %u,\n \"groups\": [",
            r->n_params, r->boot_ok);
    for (i = 0; i < gr->ng; i++) {
      fputs(i ? ",\n  {\"group\": " : "\n  {\"group\": ", fp);
      qt_json_string(fp, gr->label[i]);
      fprintf(fp, ", \"input\": ");
      qt_json_string(fp, gr->a[i].path);
      fprintf(fp, ", \"n_amplitudes\": %zu, ", r->n_amplitudes[i]);
      json_par(fp, "p", &r->p[i], 0);
      json_par(fp, "m", &r->m[i], 1);
      json_kv(fp, "loglik", r->loglik_group[i]);
      fputc('}', fp);
    }
    fputs("],\n \"profile_n\": [", fp);
    for (i = 0; i < r->n_profile; i++) {
      fprintf(fp, "%s[%u, ", i ? ", " : "", r->profile_n[i]);
      qt_json_number(fp, r->profile_loglik[i]);
      fputc(']', fp);
    }
    fputs("],\n \"shared_vs_separate\": {\"loglik_separate\": ", fp);
    qt_json_number(fp, r->loglik_separate);
    fprintf(fp, ", \"n_params_separate\": %u", r->n_params_separate);
    json_kv(fp, "lrt", r->lrt_stat);
    json_kv(fp, "df", r->lrt_df);
    json_kv(fp, "p_chisq", r->lrt_p);
    json_kv(fp, "p_bootstrap", r->lrt_boot_p);
    fputs("}}\n", fp);
  } else {
    FILE *fp = out.fp;
    qt_print_provenance(fp, argc, argv);
    for (i = 0; i < gr->ng; i++)
      fprintf(fp, "# group %s: %s column %s (%zu amplitudes)\n",
              gr->label[i], gr->a[i].path, gr->a[i].name, gr->a[i].n);
    if (nm)
      fprintf(fp, "# minis: %s column %s (%zu)\n", mini->path, mini->name,
              nm);
    fprintf(fp, "# model: binomial, n q sigma_q sigma_0 shared, p per "
                "group (%s)\n",
            gr->by ? gr->by : "one table a group");
    fprintf(fp, "# level: %g; n_max: %u; bootstrap: %u; seed: %llu\n",
            o.level, o.n_max, o.bootstrap, (unsigned long long)o.seed);
    fprintf(fp, "# n %s\n", verdict_name(r->n_verdict));
    fputs("group\tkind\tname\tvalue\tci_low\tci_high\tboot_low\tboot_high"
          "\tunit\n",
          fp);
    shared_row(fp, "all", "parameter", "n", &r->n, 0, "1");
    shared_row(fp, "all", "parameter", "q", &r->q, 0, u);
    shared_row(fp, "all", "parameter", "sigma_q", &r->sigma_q, 0, u);
    shared_row(fp, "all", "parameter", "cv_q", &r->cv_q, 0, "1");
    shared_row(fp, "all", "parameter", "sigma_0", &r->sigma_0, 0, u);
    for (i = 0; i < gr->ng; i++) {
      shared_row(fp, gr->label[i], "parameter", "p", &r->p[i], 0, "1");
      shared_row(fp, gr->label[i], "parameter", "m", &r->m[i], 0, "1");
      shared_row(fp, gr->label[i], "fit", "loglik", NULL,
                 r->loglik_group[i], "1");
    }
    shared_row(fp, "all", "fit", "loglik", NULL, r->loglik, "1");
    shared_row(fp, "all", "fit", "aic", NULL, r->aic, "1");
    shared_row(fp, "all", "fit", "bic", NULL, r->bic, "1");
    shared_row(fp, "all", "compare", "loglik_separate", NULL,
               r->loglik_separate, "1");
    shared_row(fp, "all", "compare", "lrt", NULL, r->lrt_stat, "1");
    shared_row(fp, "all", "compare", "lrt_df", NULL, r->lrt_df, "1");
    shared_row(fp, "all", "compare", "lrt_p", NULL, r->lrt_p, "1");
    shared_row(fp, "all", "compare", "lrt_boot_p", NULL, r->lrt_boot_p,
               "1");
  }
  code = qt_out_commit(&out);
done:
  quantal_shared_fit_free(r);
  free(a);
  free(n);
  return code;
}

int
cmd_fit(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"model", required_argument, NULL, OPT_MODEL},
      {"minis", required_argument, NULL, OPT_MINIS},
      {"column", required_argument, NULL, OPT_COLUMN},
      {"minis-column", required_argument, NULL, OPT_MINIS_COLUMN},
      {"driving-force", required_argument, NULL, OPT_DRIVING},
      {"martin-f", required_argument, NULL, OPT_MARTIN_F},
      {"bootstrap", required_argument, NULL, OPT_BOOT},
      {"seed", required_argument, NULL, OPT_SEED},
      {"threads", required_argument, NULL, OPT_THREADS},
      {"json", no_argument, NULL, OPT_JSON},
      {"n-max", required_argument, NULL, OPT_NMAX},
      {"level", required_argument, NULL, OPT_LEVEL},
      {"noise-sd", required_argument, NULL, OPT_NOISE},
      {"quantal-shape", required_argument, NULL, OPT_SHAPE},
      {"cv-q", required_argument, NULL, OPT_CVQ},
      {"mpfa", required_argument, NULL, OPT_MPFA},
      {"bins", required_argument, NULL, OPT_BINS},
      {"no-ci", no_argument, NULL, OPT_NO_CI},
      {"no-shams", no_argument, NULL, OPT_NO_SHAMS},
      {"group-by", required_argument, NULL, OPT_GROUP},
      {"shared-q", no_argument, NULL, OPT_SHARED_Q},
      {"output", required_argument, NULL, 'o'},
      {"plot", required_argument, NULL, OPT_PLOT},
      {"quiet", no_argument, NULL, OPT_QUIET},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0}};
  quantal_fit_options o = quantal_fit_options_default();
  const char *minis_path = NULL, *col = NULL, *mcol = NULL, *out_path = "-";
  const char *mpfa_path = NULL, *bins_path = NULL, *plot_path = NULL;
  const char *group_col = NULL;
  int quiet = 0, shared_q = 0, no_shams = 0;
  column *amps = NULL;
  size_t namp = 0;
  double driving = NAN, martin_f = 1.0, cv_q = NAN;
  int json = 0, opt, code = QT_EXIT_OK, noise_from_column = 0;
  long lv;
  column amp, mini;
  int have_minis = 0;
  classic cl;
  quantal_fit_result *r = NULL;
  quantal_mpfa_result *mp = NULL;
  quantal_diag diag;
  analysis an;
  qt_out out;
  size_t i;

  memset(&amp, 0, sizeof amp);
  memset(&mini, 0, sizeof mini);
  memset(&cl, 0, sizeof cl);
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
    switch (opt) {
    case OPT_MODEL:
      if (strcmp(optarg, "auto") == 0)
        o.models = QUANTAL_FIT_BIT(QUANTAL_FIT_POISSON) |
                   QUANTAL_FIT_BIT(QUANTAL_FIT_BINOMIAL);
      else if (strcmp(optarg, "poisson") == 0)
        o.models = QUANTAL_FIT_BIT(QUANTAL_FIT_POISSON);
      else if (strcmp(optarg, "binomial") == 0)
        o.models = QUANTAL_FIT_BIT(QUANTAL_FIT_BINOMIAL);
      else if (strcmp(optarg, "betabinomial") == 0)
        o.models = QUANTAL_FIT_BIT(QUANTAL_FIT_BETABINOMIAL);
      else if (strcmp(optarg, "mixture") == 0)
        o.models = QUANTAL_FIT_BIT(QUANTAL_FIT_MIXTURE);
      else if (strcmp(optarg, "mixture-nofail") == 0)
        o.models = QUANTAL_FIT_BIT(QUANTAL_FIT_MIXTURE_NOFAIL);
      else if (strcmp(optarg, "all") == 0)
        o.models = QUANTAL_FIT_BIT(QUANTAL_FIT_N_MODELS) - 1u;
      else
        return qt_usage_error("unknown model '%s'", optarg);
      break;
    case OPT_MINIS: minis_path = optarg; break;
    case OPT_COLUMN: col = optarg; break;
    case OPT_MINIS_COLUMN: mcol = optarg; break;
    case OPT_DRIVING:
      if (qt_parse_double("--driving-force", optarg, -1e6, 1e6, &driving))
        return QT_EXIT_USAGE;
      if (driving == 0.0)
        return qt_usage_error("--driving-force must not be 0");
      break;
    case OPT_MARTIN_F:
      if (qt_parse_double("--martin-f", optarg, 1e-3, 1.0, &martin_f))
        return QT_EXIT_USAGE;
      break;
    case OPT_BOOT:
      if (qt_parse_long("--bootstrap", optarg, 0, 100000, &lv))
        return QT_EXIT_USAGE;
      o.bootstrap = (unsigned)lv;
      break;
    case OPT_SEED:
      if (qt_parse_long("--seed", optarg, 0, 0x7fffffffL, &lv))
        return QT_EXIT_USAGE;
      o.seed = (uint64_t)lv;
      break;
    case OPT_THREADS:
      if (qt_parse_long("--threads", optarg, 0, 1024, &lv))
        return QT_EXIT_USAGE;
      o.threads = (unsigned)lv;
      break;
    case OPT_JSON: json = 1; break;
    case OPT_NMAX:
      if (qt_parse_long("--n-max", optarg, 1, 5000, &lv))
        return QT_EXIT_USAGE;
      o.n_max = (unsigned)lv;
      break;
    case OPT_LEVEL:
      if (qt_parse_double("--level", optarg, 0.5, 0.9999, &o.level))
        return QT_EXIT_USAGE;
      break;
    case OPT_NOISE:
      if (strcmp(optarg, "column") == 0)
        noise_from_column = 1;
      else if (qt_parse_double("--noise-sd", optarg, 1e-300, 1e300,
                               &o.noise_sd))
        return QT_EXIT_USAGE;
      break;
    case OPT_SHAPE:
      if (strcmp(optarg, "gaussian") == 0)
        o.shape = QUANTAL_QSHAPE_GAUSSIAN;
      else if (strcmp(optarg, "gamma") == 0)
        o.shape = QUANTAL_QSHAPE_GAMMA;
      else
        return qt_usage_error("unknown quantal shape '%s'", optarg);
      break;
    case OPT_CVQ:
      if (qt_parse_double("--cv-q", optarg, 0.0, 10.0, &cv_q))
        return QT_EXIT_USAGE;
      break;
    case OPT_MPFA: mpfa_path = optarg; break;
    case OPT_BINS: bins_path = optarg; break;
    case OPT_PLOT: plot_path = optarg; break;
    case OPT_QUIET: quiet = 1; break;
    case OPT_NO_CI: o.profile_ci = 0; break;
    case OPT_NO_SHAMS: no_shams = 1; break;
    case OPT_GROUP: group_col = optarg; break;
    case OPT_SHARED_Q: shared_q = 1; break;
    case 'o': out_path = optarg; break;
    case 'h': usage(stdout); return qt_finish_stdout(QT_EXIT_OK);
    default:
      return qt_common_option(opt, NULL, argv);
    }
  }
  if (optind >= argc)
    return qt_usage_error("no amplitude table given");
  namp = (size_t)(argc - optind);
  if ((group_col || namp > 1 || shared_q) &&
      (plot_path || bins_path || mpfa_path))
    return qt_usage_error("--plot, --bins and --mpfa take one ungrouped "
                          "table");
  if (group_col && namp > 1)
    return qt_usage_error("--group-by takes one table; with several "
                          "tables each one is a group");
  if (shared_q && !group_col && namp < 2)
    return qt_usage_error("--shared-q needs groups: --group-by COLUMN or "
                          "several tables");
  if (shared_q && (o.models != (QUANTAL_FIT_BIT(QUANTAL_FIT_POISSON) |
                                QUANTAL_FIT_BIT(QUANTAL_FIT_BINOMIAL)) &&
                   o.models != QUANTAL_FIT_BIT(QUANTAL_FIT_BINOMIAL)))
    return qt_usage_error("--shared-q fits the binomial model only");
  if (shared_q && o.shape != QUANTAL_QSHAPE_GAUSSIAN)
    return qt_usage_error("--shared-q has Gaussian quantal sizes only");

  amps = calloc(namp, sizeof *amps);
  if (amps == NULL) {
    qt_error("out of memory");
    code = QT_EXIT_ANALYSIS;
    goto done;
  }
  for (i = 0; i < namp; i++) {
    code = read_column(argv[optind + (int)i], col, &amps[i]);
    if (code != QT_EXIT_OK)
      goto done;
    if (no_shams) {
      free(amps[i].sham);
      amps[i].sham = NULL;
    }
    if (i > 0 && strcmp(amps[i].unit, amps[0].unit) != 0) {
      qt_error("%s: amplitudes in '%s' but %s has '%s'", amps[i].path,
               amps[i].unit, amps[0].path, amps[0].unit);
      code = QT_EXIT_IO;
      goto done;
    }
  }
  amp = amps[0];
  if (minis_path) {
    code = read_column(minis_path, mcol, &mini);
    if (code != QT_EXIT_OK)
      goto done;
    have_minis = 1;
    if (strcmp(mini.unit, amp.unit) != 0) {
      qt_error("%s: minis are in '%s' but the amplitudes in '%s'",
               minis_path, mini.unit, amp.unit);
      code = QT_EXIT_IO;
      goto done;
    }
  }
  if (noise_from_column && namp == 1 && !group_col) {
    if (isnan(amp.noise_median)) {
      qt_error("%s: --noise-sd column: no amplitude_sd_%s or noise_sd_%s "
               "column",
               amp.path, amp.unit, amp.unit);
      code = QT_EXIT_IO;
      goto done;
    }
    o.noise_sd = amp.noise_median;
  } else if (!isnan(amp.noise_median))
    o.noise_hint = amp.noise_median;

  /* Martin (1955) correction of every amplitude (and mini) before any
   * estimate: the magnitude is corrected, the sign kept. */
  if (!isnan(driving)) {
    size_t t;
    for (t = 0; t <= namp; t++) {
      column *cc = t < namp ? &amps[t] : (have_minis ? &mini : NULL);
      if (cc == NULL)
        continue;
      for (i = 0; i < cc->n; i++) {
        double *p = &cc->v[i];
        double a = fabs(*p), c;
        quantal_diag_clear(&diag);
        if (quantal_martin_correct(a, fabs(driving), martin_f, &c, &diag) !=
            QUANTAL_OK) {
          qt_error("%s: amplitude %g is not below the driving force %g%s",
                   cc->path, *p, fabs(driving),
                   martin_f < 1.0 ? " / f" : "");
          code = QT_EXIT_ANALYSIS;
          goto done;
        }
        *p = *p < 0.0 ? -c : c;
      }
    }
    amp = amps[0];
  }

  if (group_col || namp > 1) {
    grouping gr;
    code = group_col ? groups_by_column(&amp, have_minis ? &mini : NULL,
                                        group_col, &gr)
                     : groups_of_tables(amps, namp, &gr);
    if (code == QT_EXIT_OK && shared_q)
      code = fit_shared(argc, argv, &gr, have_minis ? &mini : NULL, o,
                        noise_from_column, quiet, json, out_path);
    else if (code == QT_EXIT_OK)
      code = fit_groups(argc, argv, &gr, have_minis ? &mini : NULL, o, cv_q,
                        noise_from_column, quiet, json, out_path, driving,
                        martin_f);
    grouping_free(&gr);
    goto done;
  }
  code = analyse(&amp, &mini, have_minis, o, cv_q, quiet, &an);
  if (!an.printable)
    goto done;
  cl = an.cl;
  r = an.r;
  cv_q = an.cv_q;
  if (mpfa_path) {
    code = read_mpfa(mpfa_path, isnan(cv_q) ? 0.0 : cv_q, o.level, &mp);
    if (code != QT_EXIT_OK)
      goto done;
  }

  if (qt_out_open(&out, out_path) != 0) {
    code = QT_EXIT_IO;
    goto done;
  }
  if (json)
    print_json(out.fp, argc, argv, &amp, have_minis ? &mini : NULL, &cl, r,
               &o, mp, driving, martin_f);
  else
    print_tsv(out.fp, argc, argv, &amp, have_minis ? &mini : NULL, &cl, r,
              &o, mp, 1);
  {
    int c2 = qt_out_commit(&out);
    if (c2 != QT_EXIT_OK) {
      code = c2;
      goto done;
    }
  }
  if (plot_path != NULL && r != NULL) {
    int c2 = qt_plot_fit_result(amp.v, amp.n, have_minis ? mini.v : NULL,
                                have_minis ? mini.n : 0, r, -1, amp.unit,
                                plot_path, amp.path);
    if (c2 != QT_EXIT_OK) {
      code = c2;
      goto done;
    }
  }
  if (bins_path && r && r->best >= 0) {
    const quantal_model_fit *f = &r->model[r->best];
    qt_out bo;
    if (qt_out_open(&bo, bins_path) != 0) {
      code = QT_EXIT_IO;
      goto done;
    }
    qt_print_provenance(bo.fp, argc, argv);
    fprintf(bo.fp, "# model: %s\nbin_low_%s\tbin_high_%s\tobserved\t"
                   "expected\n",
            quantal_fit_model_name((quantal_fit_model)r->best), amp.unit,
            amp.unit);
    for (i = 0; i < f->n_bins; i++)
      fprintf(bo.fp, "%.6g\t%.6g\t%zu\t%.4f\n", f->bin_lo[i], f->bin_hi[i],
              f->bin_observed[i], f->bin_expected[i]);
    {
      int c2 = qt_out_commit(&bo);
      if (c2 != QT_EXIT_OK)
        code = c2;
    }
  }
done:
  quantal_fit_result_free(r);
  quantal_mpfa_result_free(mp);
  for (i = 0; amps && i < namp; i++)
    column_free(&amps[i]);
  free(amps);
  column_free(&mini);
  return out_path && strcmp(out_path, "-") == 0 ? qt_finish_stdout(code)
                                                 : code;
}
