/* cmd_info.c - quantal info: describe recordings. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "cmds.h"
#include "util.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/internal.h" /* qtl_mad_sd */

/* Frames read per block: the working set stays a few MB whatever the
 * length of the recording. */
#define BLOCK_FRAMES 65536
/* First differences kept for the robust noise SD, over all channels. */
#define NOISE_BUDGET (1u << 21)
/* They are kept in runs of this many consecutive differences. */
#define NOISE_RUN 4096

typedef struct chan_stats {
  double shift, sum, sumsq, min, max, prev, noise_sd;
  uint64_t n_finite, n_nonfinite;
  int have_prev, have_shift;
  double *diffs;
  size_t n_diffs, cap_diffs;
} chan_stats;

typedef struct file_result {
  const char *path;
  quantal_recording_info info;
  quantal_channel_info *ch;
  chan_stats *st;
} file_result;

static void
usage(FILE *fp)
{
  fprintf(fp,
          "Usage: quantal info [OPTION]... FILE...\n"
          "Describe recordings: format, encoding, frames, rate, duration,\n"
          "sweeps, and per channel its name, unit, mean, SD, robust noise\n"
          "SD, minimum, maximum and count of NaN/Inf samples.\n\n"
          "  --json           JSON instead of a TSV table\n"
          "  --rate HZ        sample rate of plain-text recordings\n"
          "  --units U1,U2..  unit of each channel (overrides the file)\n"
          "  --scale S1,S2..  stored sample -> unit factor per channel\n"
          "  --sweeps LIST    only these sweeps (\"1-10,12\"), 1-based\n"
          "  -h, --help       show this help and exit\n\n"
          "Exit status: 0 ok, 1 a file holds NaN/Inf samples, 2 usage,\n"
          "3 a file cannot be read. See quantal-info(1).\n");
}

static quantal_status
describe(const char *path, const quantal_open_options *oo, file_result *r,
         quantal_diag *diag)
{
  quantal_recording *rec = NULL;
  quantal_status st;
  size_t nc, c, per_chan_cap;
  uint64_t frames, pos, run_stride = 1;
  double *buf = NULL;

  st = quantal_recording_open(path, oo, &rec, diag);
  if (st != QUANTAL_OK)
    return st;
  quantal_recording_get_info(rec, &r->info);
  nc = r->info.n_channels;
  frames = r->info.frames;
  r->path = path;
  r->ch = calloc(nc, sizeof *r->ch);
  r->st = calloc(nc, sizeof *r->st);
  buf = malloc((size_t)BLOCK_FRAMES * nc * sizeof *buf);
  if (r->ch == NULL || r->st == NULL || buf == NULL) {
    st = QUANTAL_ENOMEM;
    goto done;
  }
  /* Long files: the noise SD comes from evenly spaced runs of consecutive
   * differences, enough for a standard error of the MAD well under 1 %. */
  per_chan_cap = NOISE_BUDGET / nc;
  if (per_chan_cap < 8 * NOISE_RUN)
    per_chan_cap = 8 * NOISE_RUN;
  if (frames - 1 > per_chan_cap)
    run_stride = (frames - 1) / (per_chan_cap / NOISE_RUN);
  for (c = 0; c < nc; c++) {
    quantal_recording_get_channel(rec, c, &r->ch[c]);
    r->st[c].min = INFINITY;
    r->st[c].max = -INFINITY;
    r->st[c].cap_diffs = frames - 1 < per_chan_cap ? (size_t)frames
                                                   : per_chan_cap + NOISE_RUN;
    r->st[c].diffs = malloc(r->st[c].cap_diffs * sizeof(double));
    if (r->st[c].diffs == NULL) {
      st = QUANTAL_ENOMEM;
      goto done;
    }
  }
  for (pos = 0; pos < frames;) {
    size_t m = frames - pos > BLOCK_FRAMES ? BLOCK_FRAMES
                                           : (size_t)(frames - pos), i;
    st = quantal_recording_read_frames(rec, pos, m, buf, diag);
    if (st != QUANTAL_OK)
      goto done;
    for (c = 0; c < nc; c++) {
      chan_stats *s = &r->st[c];
      for (i = 0; i < m; i++) {
        double v = buf[i * nc + c];
        uint64_t idx = pos + i;
        if (!isfinite(v)) {
          s->n_nonfinite++;
          s->have_prev = 0;
          continue;
        }
        if (!s->have_shift) {
          /* Sums about the first sample avoid cancellation when the trace
           * sits on a large offset (-75 mV with 0.1 mV noise). */
          s->shift = v;
          s->have_shift = 1;
        }
        s->sum += v - s->shift;
        s->sumsq += (v - s->shift) * (v - s->shift);
        if (v < s->min)
          s->min = v;
        if (v > s->max)
          s->max = v;
        s->n_finite++;
        if (s->have_prev && ((idx - 1) % run_stride) < NOISE_RUN &&
            s->n_diffs < s->cap_diffs)
          s->diffs[s->n_diffs++] = v - s->prev;
        s->prev = v;
        s->have_prev = 1;
      }
    }
    pos += m;
  }
  for (c = 0; c < nc; c++) {
    chan_stats *s = &r->st[c];
    s->noise_sd = s->n_diffs >= 2 ? qtl_mad_sd(s->diffs, s->n_diffs) /
                                        sqrt(2.0)
                                  : NAN;
    free(s->diffs);
    s->diffs = NULL;
  }
done:
  free(buf);
  quantal_recording_close(rec);
  if (st == QUANTAL_ENOMEM && diag->reason[0] == '\0')
    qtl_fail(diag, st, path, -1, -1, "out of memory");
  return st;
}

static void
result_free(file_result *r)
{
  size_t c;
  if (r->st)
    for (c = 0; c < r->info.n_channels; c++)
      free(r->st[c].diffs);
  free(r->st);
  free(r->ch);
  r->st = NULL;
  r->ch = NULL;
}

static const char *
source_name(quantal_unit_source s)
{
  switch (s) {
  case QUANTAL_UNIT_FILE: return "file";
  case QUANTAL_UNIT_OPTION: return "option";
  default: return "default";
  }
}

static void
stat_values(const chan_stats *s, double *mean, double *sd, double *mn,
            double *mx)
{
  double n = (double)s->n_finite;
  *mean = *sd = *mn = *mx = NAN;
  if (s->n_finite == 0)
    return;
  *mean = s->shift + s->sum / n;
  if (s->n_finite > 1) {
    double var = (s->sumsq - s->sum * s->sum / n) / (n - 1.0);
    *sd = sqrt(var > 0.0 ? var : 0.0);
  }
  *mn = s->min;
  *mx = s->max;
}

static void
print_tsv(const file_result *r)
{
  size_t c;
  double dur = (double)r->info.frames / r->info.rate_hz;
  for (c = 0; c < r->info.n_channels; c++) {
    double mean, sd, mn, mx;
    stat_values(&r->st[c], &mean, &sd, &mn, &mx);
    printf("%s\t%s\t%s\t%.10g\t%llu\t%.10g\t%zu\t%zu\t%s\t%s\t%s\t%.9g\t%.9g"
           "\t%.9g\t%.9g\t%.9g\t%llu\n",
           r->path, r->info.format, r->info.encoding, r->info.rate_hz,
           (unsigned long long)r->info.frames, dur, r->info.n_sweeps, c + 1,
           r->ch[c].name, r->ch[c].unit, source_name(r->ch[c].unit_source),
           mean, sd, r->st[c].noise_sd, mn, mx,
           (unsigned long long)r->st[c].n_nonfinite);
  }
}

static void
print_json(const file_result *r, int first)
{
  size_t c;
  printf("%s\n  {\"file\": ", first ? "" : ",");
  qt_json_string(stdout, r->path);
  printf(", \"format\": ");
  qt_json_string(stdout, r->info.format);
  printf(", \"encoding\": ");
  qt_json_string(stdout, r->info.encoding);
  printf(", \"rate_hz\": ");
  qt_json_number(stdout, r->info.rate_hz);
  printf(", \"frames\": %llu, \"duration_s\": ",
         (unsigned long long)r->info.frames);
  qt_json_number(stdout, (double)r->info.frames / r->info.rate_hz);
  printf(", \"sweeps\": %zu, \"protocol\": ", r->info.n_sweeps);
  qt_json_string(stdout, r->info.protocol);
  printf(", \"channels\": [");
  for (c = 0; c < r->info.n_channels; c++) {
    double mean, sd, mn, mx;
    stat_values(&r->st[c], &mean, &sd, &mn, &mx);
    printf("%s\n    {\"channel\": %zu, \"name\": ", c ? "," : "", c + 1);
    qt_json_string(stdout, r->ch[c].name);
    printf(", \"unit\": ");
    qt_json_string(stdout, r->ch[c].unit);
    printf(", \"unit_source\": \"%s\", \"scale\": ",
           source_name(r->ch[c].unit_source));
    qt_json_number(stdout, r->ch[c].scale);
    printf(", \"mean\": ");
    qt_json_number(stdout, mean);
    printf(", \"sd\": ");
    qt_json_number(stdout, sd);
    printf(", \"noise_sd\": ");
    qt_json_number(stdout, r->st[c].noise_sd);
    printf(", \"min\": ");
    qt_json_number(stdout, mn);
    printf(", \"max\": ");
    qt_json_number(stdout, mx);
    printf(", \"nonfinite\": %llu}",
           (unsigned long long)r->st[c].n_nonfinite);
  }
  printf("]}");
}

int
cmd_info(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      QT_RECORDING_LONGOPTS,
      {NULL, 0, NULL, 0}};
  qt_recopts ro;
  int common;
  quantal_open_options oo;
  int json = 0, opt, i, code = QT_EXIT_OK, printed = 0;

  memset(&ro, 0, sizeof ro);
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    switch (opt) {
    case 'j': json = 1; break;
    case 'h': usage(stdout); return qt_finish_stdout(QT_EXIT_OK);
    default:
      if ((common = qt_common_option(opt, &ro, argv)) != 0)
        return common;
      break;
    }
  }
  if (optind >= argc)
    return qt_usage_error("no recording given");
  oo = qt_recopts_get(&ro);

  for (i = optind; i < argc; i++) {
    file_result r;
    quantal_diag diag;
    quantal_status st;
    size_t c;
    memset(&r, 0, sizeof r);
    quantal_diag_clear(&diag);
    st = describe(argv[i], &oo, &r, &diag);
    if (st != QUANTAL_OK) {
      int e = qt_exit_code(st);
      qt_diag_error(&diag, st);
      if (e > code)
        code = e;
      result_free(&r);
      continue;
    }
    /* The header goes out with the first good file, so a run in which
     * every file fails prints nothing on stdout. */
    if (!printed)
      printf(json ? "[" : "file\tformat\tencoding\trate_hz\tframes\t"
                          "duration_s\tsweeps\tchannel\tname\tunit\t"
                          "unit_source\tmean\tsd\tnoise_sd\tmin\tmax\t"
                          "nonfinite\n");
    if (json)
      print_json(&r, !printed);
    else
      print_tsv(&r);
    printed++;
    for (c = 0; c < r.info.n_channels; c++) {
      if (r.st[c].n_nonfinite > 0) {
        qt_error("%s: channel %zu has %llu NaN/Inf sample%s", argv[i], c + 1,
                 (unsigned long long)r.st[c].n_nonfinite,
                 r.st[c].n_nonfinite == 1 ? "" : "s");
        if (code < QT_EXIT_ANALYSIS)
          code = QT_EXIT_ANALYSIS;
      }
      if (r.ch[c].unit_source == QUANTAL_UNIT_DEFAULT &&
          r.info.integer_samples)
        qt_error("warning: %s: channel %zu: integer samples with no unit; "
                 "values are raw counts (give --units and --scale)",
                 argv[i], c + 1);
    }
    result_free(&r);
  }
  if (json && printed)
    printf("\n]\n");
  return qt_finish_stdout(code);
}
