/* cmd_report.c - quantal report: run the pipeline, write one HTML page. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "cmds.h"
#include "plot.h"
#include "progress.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fftw3.h>
#include <ftw.h>
#include <getopt.h>
#include <gsl/gsl_version.h>
#include <limits.h>
#include <math.h>
#include <sndfile.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <stdarg.h>
#include <unistd.h>

#include "../src/internal.h" /* qtl_strlcpy */

extern char **environ;

#define MAX_STEPS 16
#define MAX_ARGS 24
/* Table rows shown on the page; the whole table is in its file. */
#define ROWS_SHOWN 15

typedef struct step {
  char title[128];
  char command[2048]; /* as shown on the page */
  char out_file[64];  /* stdout file in the report folder, or "" */
  char *err;          /* what it said on stderr */
  int code;           /* exit status; -1 not run */
  int in_process;     /* a figure drawn by this program */
} step;

typedef struct report {
  char dir[PATH_MAX];   /* final folder */
  char tmp[PATH_MAX];   /* temporary sibling being built */
  char exe[PATH_MAX];   /* this program */
  step steps[MAX_STEPS];
  size_t n_steps;
  int failed;
} report;

static void
usage(FILE *fp)
{
  fprintf(fp,
          "Usage: quantal report [OPTION]... RECORDING -o DIR\n"
          "Run the standard pipeline on a recording (info, then detect or\n"
          "evoked with minis, fit, compare with a truth table) and write\n"
          "DIR/index.html, one self-contained page with the figures\n"
          "(SVG, inline), tables, the commands and versions to reproduce\n"
          "it, beside the TSV/JSON outputs. DIR appears whole or not at "
          "all.\n\n"
          "  -o, --output DIR      the report folder (required; must not\n"
          "                        exist unless --force)\n"
          "  -c, --channel N       recorded channel (1)\n"
          "  --stim-channel N      trigger channel: evoked analysis\n"
          "                        (default: a channel named TTL, trig or\n"
          "                        stim, or in V, that has rising edges)\n"
          "  --sweep-stim S        or one stimulus S seconds into each\n"
          "                        sweep of an episodic file\n"
          "  --mode M              auto, detect or evoked (auto)\n"
          "  --truth FILE          truth table for compare (default:\n"
          "                        RECORDING without extension +\n"
          "                        .truth.tsv, when it exists)\n"
          "  --force               replace an existing DIR\n"
          "  -q, --quiet           no progress bar\n"
          "  --rate HZ, --units U, --scale S   as in quantal info (not yet:\n"
          "                        convert the recording first)\n"
          "  --sweeps LIST         only these sweeps, passed on to every step\n"
          "  -h, --help            show this help and exit\n\n"
          "Exit status: 0 ok, 1 a step failed (the report shows which),\n"
          "2 usage, 3 file problem (no report written). See\n"
          "quantal-report(1).\n");
}

/* ---- small helpers ------------------------------------------------------ */

static void
html_text(FILE *fp, const char *s)
{
  for (; s && *s; s++) {
    switch (*s) {
    case '<': fputs("&lt;", fp); break;
    case '>': fputs("&gt;", fp); break;
    case '&': fputs("&amp;", fp); break;
    case '"': fputs("&quot;", fp); break;
    default: fputc(*s, fp);
    }
  }
}

/* Shell-quote an argument for the commands shown on the page. */
static void
shell_arg(char *buf, size_t size, const char *a)
{
  size_t len = strlen(buf);
  int plain = *a != '\0';
  const char *p;
  for (p = a; *p; p++)
    if (!(isalnum((unsigned char)*p) || strchr("-_./=:,+@%", *p)))
      plain = 0;
  if (plain) {
    snprintf(buf + len, size - len, "%s%s", len ? " " : "", a);
    return;
  }
  snprintf(buf + len, size - len, "%s'", len ? " " : "");
  for (p = a; *p; p++) {
    len = strlen(buf);
    if (*p == '\'')
      snprintf(buf + len, size - len, "'\\''");
    else
      snprintf(buf + len, size - len, "%c", *p);
  }
  len = strlen(buf);
  snprintf(buf + len, size - len, "'");
}

static char *
slurp(const char *path, size_t *len)
{
  FILE *fp = fopen(path, "rb");
  char *b = NULL;
  size_t n = 0, cap = 0, r;
  if (len)
    *len = 0;
  if (fp == NULL)
    return NULL;
  for (;;) {
    if (cap - n < 65536) {
      char *nb = realloc(b, cap + 65536 + 1);
      if (nb == NULL) {
        free(b);
        fclose(fp);
        return NULL;
      }
      b = nb;
      cap += 65536;
    }
    r = fread(b + n, 1, cap - n, fp);
    n += r;
    if (r == 0)
      break;
  }
  fclose(fp);
  b[n] = '\0';
  if (len)
    *len = n;
  return b;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void
rm_tree(const char *path)
{
  nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
in_tmp(const report *r, const char *name, char *buf, size_t size)
{
  snprintf(buf, size, "%s/%s", r->tmp, name);
}

static int
file_exists(const report *r, const char *name)
{
  char p[PATH_MAX + 64];
  in_tmp(r, name, p, sizeof p);
  return access(p, F_OK) == 0;
}

/* ---- running steps ------------------------------------------------------ */

/* --sweeps LIST, passed on to every step that opens the recording. */
static const char *report_sweeps;

static int
opens_recording(const char *cmd)
{
  return strcmp(cmd, "info") == 0 || strcmp(cmd, "detect") == 0 ||
         strcmp(cmd, "evoked") == 0;
}

/* Run `quantal ARGS...` with stdout to out_file in the report folder (or
 * /dev/null) and stderr kept for the page. shown[] are the arguments as
 * the page shows them (file names relative to the report folder). */
static int
run_step(report *r, const char *title, const char *out_file,
         char *const args[], char *const shown[])
{
  step *s = &r->steps[r->n_steps++];
  posix_spawn_file_actions_t fa;
  char *argv[MAX_ARGS + 2];
  char outp[PATH_MAX + 64], errp[PATH_MAX + 64];
  pid_t pid;
  int i, status = 0, rc;

  memset(s, 0, sizeof *s);
  qtl_strlcpy(s->title, title, sizeof s->title);
  qtl_strlcpy(s->out_file, out_file ? out_file : "", sizeof s->out_file);
  shell_arg(s->command, sizeof s->command, "quantal");
  for (i = 0; shown[i] != NULL; i++)
    shell_arg(s->command, sizeof s->command, shown[i]);
  if (report_sweeps && opens_recording(args[0])) {
    shell_arg(s->command, sizeof s->command, "--sweeps");
    shell_arg(s->command, sizeof s->command, report_sweeps);
  }
  if (out_file) {
    size_t l = strlen(s->command);
    snprintf(s->command + l, sizeof s->command - l, " >");
    shell_arg(s->command, sizeof s->command, out_file);
  }
  argv[0] = "quantal";
  for (i = 0; args[i] != NULL && i < MAX_ARGS; i++)
    argv[i + 1] = args[i];
  if (report_sweeps && opens_recording(args[0]) && i + 2 <= MAX_ARGS) {
    argv[++i] = "--sweeps";
    argv[++i] = (char *)report_sweeps;
  }
  argv[i + 1] = NULL;
  if (out_file)
    in_tmp(r, out_file, outp, sizeof outp);
  else
    snprintf(outp, sizeof outp, "/dev/null");
  snprintf(errp, sizeof errp, "%s/.stderr", r->tmp);
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY,
                                   0);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, outp,
                                   O_WRONLY | O_CREAT | O_TRUNC, 0666);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, errp,
                                   O_WRONLY | O_CREAT | O_TRUNC, 0666);
  rc = posix_spawn(&pid, r->exe, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    qt_error("%s: cannot run: %s", r->exe, strerror(rc));
    s->code = QT_EXIT_IO;
  } else if (waitpid(pid, &status, 0) < 0) {
    s->code = QT_EXIT_IO;
  } else {
    s->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  }
  s->err = slurp(errp, NULL);
  remove(errp);
  if (s->code != 0)
    r->failed = 1;
  return s->code;
}

/* Whether this program has the subcommand (its --help exits 0). */
static int
has_command(const report *r, const char *sub)
{
  posix_spawn_file_actions_t fa;
  char *argv[] = {"quantal", (char *)sub, "--help", NULL};
  pid_t pid;
  int status = 0, rc;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  rc = posix_spawn(&pid, r->exe, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0 || waitpid(pid, &status, 0) < 0)
    return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* A command line for the page from NULL-terminated arguments. */
static const char *
command_line(char *buf, size_t size, ...)
{
  va_list ap;
  const char *a;
  buf[0] = '\0';
  va_start(ap, size);
  while ((a = va_arg(ap, const char *)) != NULL)
    shell_arg(buf, size, a);
  va_end(ap);
  return buf;
}

/* Record a figure drawn in this process. */
static void
note_figure(report *r, const char *title, const char *shown, int code)
{
  step *s = &r->steps[r->n_steps++];
  memset(s, 0, sizeof *s);
  qtl_strlcpy(s->title, title, sizeof s->title);
  qtl_strlcpy(s->command, shown, sizeof s->command);
  s->code = code;
  s->in_process = 1;
  if (code != 0)
    r->failed = 1;
}

/* ---- the page ----------------------------------------------------------- */

/* A TSV file as an HTML table: its comment lines, the header and the
 * first rows. */
static void
html_table(FILE *fp, const report *r, const char *name)
{
  char p[PATH_MAX + 64], *text, *line, *save = NULL;
  size_t rows = 0, total = 0;
  int header = 1;
  in_tmp(r, name, p, sizeof p);
  text = slurp(p, NULL);
  if (text == NULL)
    return;
  fputs("<div class=\"tbl\"><table>\n", fp);
  for (line = strtok_r(text, "\n", &save); line;
       line = strtok_r(NULL, "\n", &save)) {
    char *cell, *cs = NULL;
    if (line[0] == '#')
      continue;
    if (!header && ++total > ROWS_SHOWN)
      continue;
    if (!header)
      rows++;
    fputs("<tr>", fp);
    for (cell = strtok_r(line, "\t", &cs); cell;
         cell = strtok_r(NULL, "\t", &cs)) {
      fputs(header ? "<th>" : "<td>", fp);
      html_text(fp, cell);
      fputs(header ? "</th>" : "</td>", fp);
    }
    fputs("</tr>\n", fp);
    header = 0;
  }
  fputs("</table></div>\n", fp);
  fprintf(fp, "<p class=\"note\">%zu of %zu rows shown; the whole table: "
              "<a href=\"", rows, total);
  html_text(fp, name);
  fputs("\">", fp);
  html_text(fp, name);
  fputs("</a>.</p>\n", fp);
  free(text);
}

/* An SVG file inlined, its ids made unique on the page. */
static void
html_svg(FILE *fp, const report *r, const char *name, int fig)
{
  char p[PATH_MAX + 64], *text, *s;
  in_tmp(r, name, p, sizeof p);
  text = slurp(p, NULL);
  if (text == NULL)
    return;
  s = strstr(text, "<svg");
  if (s == NULL) {
    free(text);
    return;
  }
  fputs("<figure>", fp);
  while (*s) {
    /* Ids (PLplot's clip paths) would clash between figures. */
    if (strncmp(s, "id=\"", 4) == 0) {
      fprintf(fp, "id=\"f%d-", fig);
      s += 4;
    } else if (strncmp(s, "url(#", 5) == 0) {
      fprintf(fp, "url(#f%d-", fig);
      s += 5;
    } else if (strncmp(s, "href=\"#", 7) == 0) {
      fprintf(fp, "href=\"#f%d-", fig);
      s += 7;
    } else {
      fputc(*s++, fp);
    }
  }
  fputs("<figcaption>", fp);
  html_text(fp, name);
  fputs(" (<a href=\"", fp);
  html_text(fp, name);
  fputs("\">file</a>)</figcaption></figure>\n", fp);
  free(text);
}

static void
html_pre_file(FILE *fp, const report *r, const char *name)
{
  char p[PATH_MAX + 64], *text;
  in_tmp(r, name, p, sizeof p);
  text = slurp(p, NULL);
  if (text == NULL)
    return;
  fputs("<pre>", fp);
  html_text(fp, text);
  fputs("</pre>\n", fp);
  free(text);
}

static const step *
find_step(const report *r, const char *title)
{
  size_t i;
  for (i = 0; i < r->n_steps; i++)
    if (strcmp(r->steps[i].title, title) == 0)
      return &r->steps[i];
  return NULL;
}

static void
html_step_status(FILE *fp, const step *s)
{
  if (s == NULL)
    return;
  if (s->code != 0)
    fprintf(fp, "<p class=\"fail\">This step failed (exit %d).</p>\n",
            s->code);
  if (s->err && *s->err) {
    fputs("<pre class=\"log\">", fp);
    html_text(fp, s->err);
    fputs("</pre>\n", fp);
  }
}

static const char *css =
    "body{font-family:sans-serif;max-width:1200px;margin:1em auto;"
    "padding:0 1em;color:#111;background:#fff;line-height:1.4}"
    "h1{font-size:1.6em;border-bottom:2px solid #0072B2}"
    "h2{font-size:1.3em;margin-top:1.6em;color:#0072B2}"
    "figure{margin:1em 0}figure svg{width:100%;height:auto;"
    "border:1px solid #ddd}figcaption{font-size:.85em;color:#555}"
    "table{border-collapse:collapse;font-size:.85em}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}"
    "th{background:#eef5fb}.tbl{overflow-x:auto}"
    "pre{background:#f6f6f6;padding:.6em;overflow-x:auto;"
    "font-size:.85em}pre.log{background:#fffbea}"
    ".fail{color:#D55E00;font-weight:bold}.note{font-size:.85em;"
    "color:#555}";

static int
write_page(const report *r, const char *rec_path, const char *mode,
           size_t ch, const quantal_channel_info *ci, long stim_ch,
           const char *sweep_stim, const char *truth)
{
  char p[PATH_MAX + 64], when[64], backend[64];
  const char *name = strrchr(rec_path, '/');
  time_t now = time(NULL);
  struct tm tmv;
  FILE *fp;
  size_t i;
  int fig = 0, failed;

  name = name ? name + 1 : rec_path;
  in_tmp(r, "index.html", p, sizeof p);
  fp = fopen(p, "w");
  if (fp == NULL) {
    qt_error("%s: %s", p, strerror(errno));
    return QT_EXIT_IO;
  }
  gmtime_r(&now, &tmv);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tmv);
  quantal_plot_backend(backend, sizeof backend);
  fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width\">"
        "<title>quantal report: ", fp);
  html_text(fp, name);
  fprintf(fp, "</title><style>%s</style></head><body>\n", css);
  fputs("<h1>quantal report: ", fp);
  html_text(fp, name);
  fputs("</h1>\n<p class=\"note\">", fp);
  html_text(fp, rec_path);
  fprintf(fp, ", channel %zu (", ch + 1);
  html_text(fp, ci->name);
  fputs(", ", fp);
  html_text(fp, ci->unit);
  fprintf(fp, "); analysis: %s", mode);
  if (sweep_stim)
    fprintf(fp, " with one stimulus %s s into each sweep", sweep_stim);
  else if (stim_ch >= 0)
    fprintf(fp, " with stimuli from channel %ld", stim_ch + 1);
  fprintf(fp, "; written %s by quantal %s.</p>\n", when, quantal_version());
  if (r->failed)
    fputs("<p class=\"fail\">Some steps failed: see below.</p>\n", fp);

  fputs("<h2 id=\"recording\">Recording</h2>\n", fp);
  html_step_status(fp, find_step(r, "info"));
  html_table(fp, r, "info.tsv");

  if (strcmp(mode, "detect") == 0) {
    fputs("<h2 id=\"events\">Spontaneous events</h2>\n", fp);
    html_step_status(fp, find_step(r, "detect"));
    if (file_exists(r, "detect.svg"))
      html_svg(fp, r, "detect.svg", ++fig);
    if (file_exists(r, "events.tsv"))
      html_table(fp, r, "events.tsv");
  } else {
    fputs("<h2 id=\"evoked\">Evoked responses</h2>\n", fp);
    html_step_status(fp, find_step(r, "evoked"));
    if (file_exists(r, "evoked.svg"))
      html_svg(fp, r, "evoked.svg", ++fig);
    if (file_exists(r, "evoked.tsv"))
      html_table(fp, r, "evoked.tsv");
    if (file_exists(r, "minis.tsv")) {
      fputs("<h3>Minis between the responses</h3>\n", fp);
      html_table(fp, r, "minis.tsv");
    }
    fputs("<h2 id=\"fit\">Quantal fit</h2>\n", fp);
    html_step_status(fp, find_step(r, "fit"));
    if (file_exists(r, "fit.svg"))
      html_svg(fp, r, "fit.svg", ++fig);
    if (file_exists(r, "fit.tsv"))
      html_pre_file(fp, r, "fit.tsv");
  }
  if (truth != NULL) {
    fputs("<h2 id=\"compare\">Against the truth</h2>\n<p>", fp);
    html_text(fp, truth);
    fputs("</p>\n", fp);
    for (i = 0; i < r->n_steps; i++)
      if (strncmp(r->steps[i].title, "compare", 7) == 0)
        html_step_status(fp, &r->steps[i]);
    if (file_exists(r, "compare.svg"))
      html_svg(fp, r, "compare.svg", ++fig);
    if (file_exists(r, "compare.txt"))
      html_pre_file(fp, r, "compare.txt");
    if (file_exists(r, "compare-evoked.txt"))
      html_pre_file(fp, r, "compare-evoked.txt");
  }

  fputs("<h2 id=\"reproduce\">Reproduce</h2>\n<p>In the report folder, "
        "with the recording where it was:</p>\n<pre>", fp);
  for (i = 0; i < r->n_steps; i++) {
    const step *s = &r->steps[i];
    html_text(fp, s->command);
    if (s->code != 0)
      fprintf(fp, "    # exit %d", s->code);
    fputc('\n', fp);
  }
  fputs("</pre>\n<table>\n", fp);
  fprintf(fp, "<tr><th>quantal</th><td>%s</td></tr>\n", quantal_version());
  fprintf(fp, "<tr><th>drawing</th><td>%s</td></tr>\n", backend);
  fprintf(fp, "<tr><th>GSL</th><td>%s</td></tr>\n", GSL_VERSION);
  fputs("<tr><th>libsndfile</th><td>", fp);
  html_text(fp, sf_version_string());
  fputs("</td></tr>\n<tr><th>FFTW</th><td>", fp);
  html_text(fp, fftw_version);
  fputs("</td></tr>\n</table>\n</body></html>\n", fp);
  failed = ferror(fp) != 0;
  if (fclose(fp) != 0 || failed) {
    qt_error("%s: write error", p);
    return QT_EXIT_IO;
  }
  return 0;
}

/* ---- the subcommand ----------------------------------------------------- */

static int
name_says_trigger(const char *name)
{
  char low[QUANTAL_NAME_MAX];
  size_t i;
  for (i = 0; name[i] && i + 1 < sizeof low; i++)
    low[i] = (char)tolower((unsigned char)name[i]);
  low[i] = '\0';
  return strstr(low, "ttl") || strstr(low, "trig") || strstr(low, "stim");
}

/* A trigger channel with at least two rising edges, or -1. */
static long
find_stim_channel(quantal_recording *rec, size_t ch, size_t n_ch,
                  const quantal_channel_info *ci)
{
  size_t c;
  for (c = 0; c < n_ch; c++) {
    quantal_channel_info cc;
    quantal_diag diag;
    double *t = NULL, lo, hi;
    size_t n = 0;
    if (c == ch || quantal_recording_get_channel(rec, c, &cc) != QUANTAL_OK)
      continue;
    if (!name_says_trigger(cc.name) &&
        !(strcmp(cc.unit, "V") == 0 && strcmp(ci->unit, "V") != 0))
      continue;
    quantal_diag_clear(&diag);
    if (quantal_stimuli_from_ttl(rec, c, NAN, 0.001, &t, &n, &lo, &hi,
                                 &diag) == QUANTAL_OK &&
        n >= 2 && hi > lo) {
      free(t);
      return (long)c;
    }
    free(t);
  }
  return -1;
}

static int
has_kind_column(const char *path)
{
  quantal_table *t = NULL;
  quantal_diag diag;
  int k;
  quantal_diag_clear(&diag);
  if (quantal_table_read(path, &t, &diag) != QUANTAL_OK)
    return 0;
  k = quantal_table_find(t, "kind") >= 0;
  quantal_table_free(t);
  return k;
}

/* Put the finished folder in place: rename, or with force swap out the
 * old one first and remove it after. */
static int
commit_dir(report *r, int force)
{
  char old[PATH_MAX + 16];
  struct stat sb;
  int have_old = 0;
  if (lstat(r->dir, &sb) == 0) {
    if (!force) {
      qt_error("%s: already exists (remove it or give --force)", r->dir);
      return QT_EXIT_IO;
    }
    snprintf(old, sizeof old, "%s.oldXXXXXX", r->tmp);
    if (mkdtemp(old) == NULL || rename(r->dir, old) != 0) {
      qt_error("%s: cannot move the old report aside: %s", r->dir,
               strerror(errno));
      return QT_EXIT_IO;
    }
    have_old = 1;
  }
  if (rename(r->tmp, r->dir) != 0) {
    qt_error("%s: cannot rename into place: %s", r->dir, strerror(errno));
    if (have_old)
      (void)rename(old, r->dir);
    return QT_EXIT_IO;
  }
  if (have_old)
    rm_tree(old);
  return 0;
}

enum {
  OPT_STIM = QT_OPT_FIRST_FREE,
  OPT_MODE,
  OPT_TRUTH,
  OPT_FORCE,
  OPT_SWEEP_STIM
};

int
cmd_report(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"output", required_argument, NULL, 'o'},
      {"channel", required_argument, NULL, 'c'},
      {"stim-channel", required_argument, NULL, OPT_STIM},
      {"sweep-stim", required_argument, NULL, OPT_SWEEP_STIM},
      {"mode", required_argument, NULL, OPT_MODE},
      {"truth", required_argument, NULL, OPT_TRUTH},
      {"force", no_argument, NULL, OPT_FORCE},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      QT_RECORDING_LONGOPTS,
      {NULL, 0, NULL, 0}};
  static report r;
  qt_recopts ro;
  int common;
  quantal_open_options oo;
  quantal_recording *rec = NULL;
  quantal_recording_info info;
  quantal_channel_info ci;
  quantal_diag diag;
  quantal_status st;
  qt_progress prog;
  const char *out = NULL, *mode = "auto", *truth_opt = NULL;
  const char *sweep_stim = NULL;
  double sweep_s;
  char rec_abs[PATH_MAX], truth[PATH_MAX], chs[32], stims[32], path[PATH_MAX
                                                                     + 64];
  char *slash, base[PATH_MAX], shown[3 * PATH_MAX];
  long ch = 1, stim_ch = -1;
  int opt, quiet = 0, force = 0, code, have_truth = 0, n_steps, evoked;
  ssize_t len;

  memset(&ro, 0, sizeof ro);
  memset(&r, 0, sizeof r);
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":ho:c:q", longopts, NULL)) != -1) {
    switch (opt) {
    case 'o': out = optarg; break;
    case 'c':
      if (qt_parse_long("--channel", optarg, 1, QUANTAL_MAX_CHANNELS, &ch))
        return QT_EXIT_USAGE;
      break;
    case OPT_STIM:
      if (qt_parse_long("--stim-channel", optarg, 1, QUANTAL_MAX_CHANNELS,
                        &stim_ch))
        return QT_EXIT_USAGE;
      stim_ch--;
      break;
    case OPT_MODE:
      if (strcmp(optarg, "auto") && strcmp(optarg, "detect") &&
          strcmp(optarg, "evoked"))
        return qt_usage_error("--mode: '%s' is not auto, detect or evoked",
                              optarg);
      mode = optarg;
      break;
    case OPT_SWEEP_STIM:
      if (qt_parse_double("--sweep-stim", optarg, 0.0, 1e6, &sweep_s))
        return QT_EXIT_USAGE;
      sweep_stim = optarg;
      break;
    case OPT_TRUTH: truth_opt = optarg; break;
    case OPT_FORCE: force = 1; break;
    case 'q': quiet = 1; break;
    case 'h': usage(stdout); return qt_finish_stdout(QT_EXIT_OK);
    default:
      if ((common = qt_common_option(opt, &ro, argv)) != 0)
        return common;
      break;
    }
  }
  if (optind >= argc)
    return qt_usage_error("no recording given");
  if (optind + 1 < argc)
    return qt_usage_error("one recording at a time ('%s' is extra)",
                          argv[optind + 1]);
  if (out == NULL)
    return qt_usage_error("no report folder given (-o DIR)");
  if (ro.n_units || ro.n_scales || ro.rate_hz > 0)
    return qt_usage_error("--rate, --units and --scale are not passed on "
                          "to the pipeline yet; convert the recording "
                          "first (quantal convert)");
  report_sweeps = ro.sweeps;
  oo = qt_recopts_get(&ro);

  /* The recording: channels, and which analysis applies. */
  quantal_diag_clear(&diag);
  st = quantal_recording_open(argv[optind], &oo, &rec, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    return qt_exit_code(st);
  }
  quantal_recording_get_info(rec, &info);
  if ((size_t)ch > info.n_channels ||
      (stim_ch >= 0 && (size_t)stim_ch >= info.n_channels)) {
    qt_error("%s: no channel %ld (the recording has %zu)", argv[optind],
             (size_t)ch > info.n_channels ? ch : stim_ch + 1,
             info.n_channels);
    quantal_recording_close(rec);
    return QT_EXIT_USAGE;
  }
  quantal_recording_get_channel(rec, (size_t)ch - 1, &ci);
  if (sweep_stim && strcmp(mode, "detect") == 0) {
    quantal_recording_close(rec);
    return qt_usage_error("--sweep-stim asks for an evoked analysis, not "
                          "--mode detect");
  }
  if (strcmp(mode, "detect") == 0)
    stim_ch = -1;
  else if (stim_ch < 0 && sweep_stim == NULL)
    stim_ch = find_stim_channel(rec, (size_t)ch - 1, info.n_channels, &ci);
  quantal_recording_close(rec);
  if (strcmp(mode, "evoked") == 0 && stim_ch < 0 && sweep_stim == NULL) {
    qt_error("%s: no trigger channel found (give --stim-channel)",
             argv[optind]);
    return QT_EXIT_ANALYSIS;
  }
  evoked = stim_ch >= 0 || sweep_stim != NULL;
  mode = evoked ? "evoked" : "detect";
  if (realpath(argv[optind], rec_abs) == NULL)
    qtl_strlcpy(rec_abs, argv[optind], sizeof rec_abs);

  /* The truth table, given or beside the recording. */
  if (truth_opt != NULL) {
    if (realpath(truth_opt, truth) == NULL) {
      qt_error("%s: %s", truth_opt, strerror(errno));
      return QT_EXIT_IO;
    }
    have_truth = 1;
  } else {
    char *dot;
    qtl_strlcpy(base, rec_abs, sizeof base);
    dot = strrchr(base, '.');
    if (dot != NULL && strchr(dot, '/') == NULL)
      *dot = '\0';
    snprintf(truth, sizeof truth, "%.*s.truth.tsv", PATH_MAX - 16, base);
    have_truth = access(truth, R_OK) == 0;
  }

  /* The temporary sibling folder. */
  qtl_strlcpy(r.dir, out, sizeof r.dir);
  len = (ssize_t)strlen(r.dir);
  while (len > 1 && r.dir[len - 1] == '/')
    r.dir[--len] = '\0';
  qtl_strlcpy(base, r.dir, sizeof base);
  slash = strrchr(base, '/');
  if (slash != NULL) {
    *slash = '\0';
    snprintf(r.tmp, sizeof r.tmp, "%.*s/.%.*s.tmpXXXXXX", PATH_MAX / 2,
             base[0] ? base : "/", PATH_MAX / 3, slash + 1);
  } else {
    snprintf(r.tmp, sizeof r.tmp, ".%.*s.tmpXXXXXX", PATH_MAX - 16, base);
  }
  if (!force && access(r.dir, F_OK) == 0) {
    qt_error("%s: already exists (remove it or give --force)", r.dir);
    return QT_EXIT_IO;
  }
  if (mkdtemp(r.tmp) == NULL) {
    qt_error("%s: cannot create a folder beside it: %s", r.dir,
             strerror(errno));
    return QT_EXIT_IO;
  }
  {
    /* mkdtemp makes it private; a report is an ordinary folder. */
    mode_t mask = umask(0);
    umask(mask);
    (void)chmod(r.tmp, 0777 & ~mask);
  }
  len = readlink("/proc/self/exe", r.exe, sizeof r.exe - 1);
  if (len <= 0) {
    qt_error("cannot find the quantal program (/proc/self/exe)");
    rm_tree(r.tmp);
    return QT_EXIT_IO;
  }
  r.exe[len] = '\0';
  snprintf(chs, sizeof chs, "%ld", ch);
  snprintf(stims, sizeof stims, "%ld", stim_ch + 1);
  memset(&qt_plot_defaults, 0, sizeof qt_plot_defaults);
  qt_plot_defaults.quiet = 1;

  n_steps = 4 + have_truth;
  qt_progress_begin(&prog, "report", (uint64_t)n_steps, quiet);
  {
    char *a[] = {"info", rec_abs, NULL};
    run_step(&r, "info", "info.tsv", a, a);
  }
  qt_progress_update(&prog, 1);
  if (!evoked) {
    char ev[PATH_MAX + 64];
    char *a[] = {"detect", "-c", chs, rec_abs, "-o", ev, NULL};
    char *s[] = {"detect", "-c", chs, rec_abs, "-o", "events.tsv", NULL};
    in_tmp(&r, "events.tsv", ev, sizeof ev);
    run_step(&r, "detect", NULL, a, s);
    qt_progress_update(&prog, 2);
    if (file_exists(&r, "events.tsv")) {
      in_tmp(&r, "detect.svg", path, sizeof path);
      code = qt_plot_detect(rec_abs, &oo, (size_t)ch - 1, ev, path, NULL);
      note_figure(&r, "plot detect",
                  command_line(shown, sizeof shown, "quantal", "plot",
                               "detect", "-c", chs, rec_abs, "events.tsv",
                               "-o", "detect.svg",
                               report_sweeps ? "--sweeps" : (char *)NULL,
                               report_sweeps, (char *)NULL),
                  code);
    }
  } else {
    char ev[PATH_MAX + 64], mi[PATH_MAX + 64], fi[PATH_MAX + 64];
    /* The stimuli: a trigger channel, or a fixed time in each sweep. */
    char *sopt = sweep_stim ? "--sweep-stim" : "--stim-channel";
    char *sval = sweep_stim ? (char *)sweep_stim : stims;
    char *a[] = {"evoked", "-c", chs, sopt, sval, rec_abs,
                 "-o", ev, "--minis", mi, NULL};
    char *s[] = {"evoked", "-c", chs, sopt, sval, rec_abs,
                 "-o", "evoked.tsv", "--minis", "minis.tsv", NULL};
    in_tmp(&r, "evoked.tsv", ev, sizeof ev);
    in_tmp(&r, "minis.tsv", mi, sizeof mi);
    in_tmp(&r, "fit.tsv", fi, sizeof fi);
    run_step(&r, "evoked", NULL, a, s);
    qt_progress_update(&prog, 2);
    if (file_exists(&r, "evoked.tsv")) {
      int have_minis = file_exists(&r, "minis.tsv");
      in_tmp(&r, "evoked.svg", path, sizeof path);
      code = qt_plot_evoked(rec_abs, &oo, (size_t)ch - 1, ev, path, NULL);
      note_figure(&r, "plot evoked",
                  command_line(shown, sizeof shown, "quantal", "plot",
                               "evoked", "-c", chs, rec_abs, "evoked.tsv",
                               "-o", "evoked.svg",
                               report_sweeps ? "--sweeps" : (char *)NULL,
                               report_sweeps, (char *)NULL),
                  code);
      /* The fit's own table when this build has `quantal fit`. */
      if (has_command(&r, "fit")) {
        char *f[] = {"fit", ev, "-o", fi, "--minis", mi, NULL};
        char *fs[] = {"fit", "evoked.tsv", "-o", "fit.tsv", "--minis",
                      "minis.tsv", NULL};
        if (!have_minis)
          f[4] = fs[4] = NULL;
        run_step(&r, "fit", NULL, f, fs);
      }
      in_tmp(&r, "fit.svg", path, sizeof path);
      code = qt_plot_fit(ev, have_minis ? mi : NULL, -1, path, NULL);
      note_figure(&r, "plot fit",
                  command_line(shown, sizeof shown, "quantal", "plot", "fit",
                               "evoked.tsv", "-o", "fit.svg",
                               have_minis ? "--minis" : (char *)NULL,
                               "minis.tsv", (char *)NULL),
                  code);
    }
  }
  qt_progress_update(&prog, 4);
  if (have_truth) {
    const char *det = !evoked ? "events.tsv" : "minis.tsv";
    char dp[PATH_MAX + 64], cp[PATH_MAX + 64];
    int kind = has_kind_column(truth);
    in_tmp(&r, det, dp, sizeof dp);
    in_tmp(&r, "compare.txt", cp, sizeof cp);
    if (file_exists(&r, det)) {
      char *a[] = {"compare", "--events", dp, "--truth", truth, "--kind",
                   "spontaneous", "-o", cp, NULL};
      char *s[] = {"compare", "--events", (char *)det, "--truth", truth,
                   "--kind", "spontaneous", "-o", "compare.txt", NULL};
      if (!kind) {
        a[5] = "-o";
        a[6] = cp;
        a[7] = NULL;
        s[5] = "-o";
        s[6] = "compare.txt";
        s[7] = NULL;
      }
      run_step(&r, "compare", NULL, a, s);
      in_tmp(&r, "compare.svg", path, sizeof path);
      code = qt_plot_compare(dp, truth, 0.002, kind ? "spontaneous" : NULL,
                             path, NULL);
      note_figure(&r, "plot compare",
                  command_line(shown, sizeof shown, "quantal", "plot",
                               "compare", det, truth, "-o", "compare.svg",
                               kind ? "--kind" : (char *)NULL,
                               "spontaneous", (char *)NULL),
                  code);
    }
    if (evoked && kind && file_exists(&r, "evoked.tsv")) {
      char ev[PATH_MAX + 64], ce[PATH_MAX + 64];
      char *a[] = {"compare", "--events", ev, "--truth", truth, "--kind",
                   "evoked", "--time-column", "stim_s", "-o", ce, NULL};
      char *s[] = {"compare", "--events", "evoked.tsv", "--truth", truth,
                   "--kind", "evoked", "--time-column", "stim_s", "-o",
                   "compare-evoked.txt", NULL};
      in_tmp(&r, "evoked.tsv", ev, sizeof ev);
      in_tmp(&r, "compare-evoked.txt", ce, sizeof ce);
      run_step(&r, "compare evoked", NULL, a, s);
    }
  }
  qt_progress_update(&prog, (uint64_t)n_steps);
  qt_progress_end(&prog);

  code = write_page(&r, rec_abs, mode, (size_t)ch - 1, &ci, stim_ch,
                    sweep_stim,
                    have_truth ? truth : NULL);
  if (code == 0)
    code = commit_dir(&r, force);
  {
    size_t i;
    for (i = 0; i < r.n_steps; i++)
      free(r.steps[i].err);
  }
  if (code != 0) {
    rm_tree(r.tmp);
    return code;
  }
  qt_error("%s/index.html: %zu steps%s", r.dir, r.n_steps,
           r.failed ? ", some failed (see the page)" : "");
  return r.failed ? QT_EXIT_ANALYSIS : QT_EXIT_OK;
}
