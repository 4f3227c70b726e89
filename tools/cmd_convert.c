/* cmd_convert.c - quantal convert: write a recording out as WAV or FLAC. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "cmds.h"
#include "util.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Frames per block: the working set stays small whatever the file size. */
#define BLOCK_FRAMES 65536
/* Largest magnitude of a 24-bit FLAC sample. */
#define FLAC_MAX 8388607.0

enum { OPT_CHANNELS = QT_OPT_FIRST_FREE, OPT_FORMAT };

static void
usage(FILE *fp)
{
  fprintf(fp,
          "Usage: quantal convert [OPTION]... IN OUT\n"
          "Write any recording quantal reads (ABF, ATF, WAV, FLAC, text,\n"
          "...) to OUT as float32 WAV or 24-bit FLAC, keeping channel names\n"
          "and units. Selected sweeps are written one after the other.\n\n"
          "  --sweeps LIST    sweeps to write, 1-based (\"1-10,12\"); default "
          "all\n"
          "  --channels LIST  channels to write, 1-based (\"2\", \"1,3\"); "
          "default all\n"
          "  --format FMT     wav or flac (default: from OUT's extension,\n"
          "                   .flac -> flac, anything else -> wav)\n"
          "  --rate HZ        sample rate of plain-text recordings\n"
          "  --units U1,U2..  unit of each input channel (overrides the "
          "file)\n"
          "  --scale S1,S2..  stored sample -> unit factor per input channel\n"
          "  -h, --help       show this help and exit\n\n"
          "Exit status: 0 ok, 2 usage, 3 a file cannot be read or written.\n"
          "See quantal-convert(1).\n");
}

/* Parse a 1-based list of numbers and ranges ("1-3,7") over 1..n into
 * sel[0..n-1]; 0, or -1 after a usage error. */
static int
parse_list(const char *opt, const char *spec, size_t n, unsigned char *sel)
{
  quantal_diag d;
  quantal_diag_clear(&d);
  if (quantal_parse_list(spec, n, sel, &d) != QUANTAL_OK) {
    qt_usage_error("%s: %s", opt, d.reason);
    return -1;
  }
  return 0;
}

/* Names and units end up in a "key=a,b;" metadata string. */
static void
sanitize(char *s)
{
  for (; *s; s++)
    if (*s == ',' || *s == ';' || *s == '=')
      *s = '_';
}

typedef struct job {
  quantal_recording *rec;
  quantal_recording_info info;
  unsigned char *sweep_sel, *chan_sel;
  size_t *chans, n_out;
  double *in, *out;
} job;

/* Run fn over every selected block: the one loop both passes share. */
static quantal_status
for_blocks(job *j, quantal_status (*fn)(job *, size_t, void *), void *arg,
           quantal_diag *diag)
{
  size_t s, nc = j->info.n_channels;
  for (s = 0; s < j->info.n_sweeps; s++) {
    uint64_t first, len, pos;
    if (!j->sweep_sel[s])
      continue;
    quantal_recording_get_sweep(j->rec, s, &first, &len);
    for (pos = 0; pos < len;) {
      size_t m = len - pos > BLOCK_FRAMES ? BLOCK_FRAMES
                                          : (size_t)(len - pos), i, k;
      quantal_status st =
          quantal_recording_read_frames(j->rec, first + pos, m, j->in, diag);
      if (st != QUANTAL_OK)
        return st;
      for (i = 0; i < m; i++)
        for (k = 0; k < j->n_out; k++)
          j->out[i * j->n_out + k] = j->in[i * nc + j->chans[k]];
      st = fn(j, m, arg);
      if (st != QUANTAL_OK)
        return st;
      pos += m;
    }
  }
  return QUANTAL_OK;
}

static quantal_status
track_max(job *j, size_t m, void *arg)
{
  double *mx = arg;
  size_t i, k;
  for (i = 0; i < m; i++)
    for (k = 0; k < j->n_out; k++) {
      double a = fabs(j->out[i * j->n_out + k]);
      if (a > mx[k]) /* NaN never compares greater: the writer rejects it */
        mx[k] = a;
    }
  return QUANTAL_OK;
}

typedef struct write_arg {
  quantal_writer *w;
  quantal_diag *diag;
} write_arg;

static quantal_status
write_block(job *j, size_t m, void *arg)
{
  write_arg *wa = arg;
  return quantal_writer_write(wa->w, j->out, m, wa->diag);
}

/* FLAC keeps one 24-bit step per channel: one stored count of an integer
 * source when that is exact (offset 0 and no clipping), else the finest
 * step that holds the channel's largest magnitude. */
static void
flac_steps(job *j, const double *mx, double *step)
{
  size_t k;
  for (k = 0; k < j->n_out; k++) {
    quantal_channel_info ci;
    quantal_recording_get_channel(j->rec, j->chans[k], &ci);
    if (j->info.integer_samples && ci.offset == 0.0 && ci.scale > 0.0 &&
        mx[k] / ci.scale <= FLAC_MAX)
      step[k] = ci.scale;
    else if (mx[k] > 0.0 && isfinite(mx[k]))
      step[k] = mx[k] / FLAC_MAX;
    else
      step[k] = 1e-6;
  }
}

static int
convert(const char *in, const char *outp, const quantal_open_options *oo,
        const char *sweeps, const char *channels, quantal_container ct)
{
  job j;
  quantal_diag diag;
  quantal_status st;
  quantal_write_options wo;
  quantal_writer *w = NULL;
  char **names = NULL, **units = NULL, comment[1200];
  double *mx = NULL, *step = NULL;
  size_t c, k, nc;
  int code = QT_EXIT_OK;
  uint64_t frames = 0;
  write_arg wa;

  memset(&j, 0, sizeof j);
  quantal_diag_clear(&diag);
  st = quantal_recording_open(in, oo, &j.rec, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    return qt_exit_code(st);
  }
  quantal_recording_get_info(j.rec, &j.info);
  nc = j.info.n_channels;
  j.sweep_sel = malloc(j.info.n_sweeps);
  j.chan_sel = malloc(nc);
  j.chans = malloc(nc * sizeof *j.chans);
  names = calloc(nc, sizeof *names);
  units = calloc(nc, sizeof *units);
  mx = calloc(nc, sizeof *mx);
  step = calloc(nc, sizeof *step);
  j.in = malloc((size_t)BLOCK_FRAMES * nc * sizeof *j.in);
  j.out = malloc((size_t)BLOCK_FRAMES * nc * sizeof *j.out);
  if (j.sweep_sel == NULL || j.chan_sel == NULL || j.chans == NULL ||
      names == NULL || units == NULL || mx == NULL || step == NULL ||
      j.in == NULL || j.out == NULL) {
    qt_error("%s: out of memory", in);
    code = QT_EXIT_ANALYSIS;
    goto done;
  }
  /* --sweeps was applied when the recording was opened: what is left is
   * the selection. */
  memset(j.sweep_sel, 1, j.info.n_sweeps);
  if (channels == NULL)
    memset(j.chan_sel, 1, nc);
  else if (parse_list("--channels", channels, nc, j.chan_sel) < 0) {
    code = QT_EXIT_USAGE;
    goto done;
  }
  for (c = 0; c < nc; c++)
    if (j.chan_sel[c])
      j.chans[j.n_out++] = c;
  for (c = 0; c < j.info.n_sweeps; c++) {
    uint64_t len = 0;
    if (j.sweep_sel[c]) {
      quantal_recording_get_sweep(j.rec, c, NULL, &len);
      frames += len;
    }
  }
  if (j.info.rate_hz != floor(j.info.rate_hz) || j.info.rate_hz > 1e9) {
    qt_error("%s: the sample rate %.10g Hz is not a whole number of Hz, "
             "which WAV and FLAC cannot store", in, j.info.rate_hz);
    code = QT_EXIT_IO;
    goto done;
  }
  for (k = 0; k < j.n_out; k++) {
    quantal_channel_info ci;
    quantal_recording_get_channel(j.rec, j.chans[k], &ci);
    names[k] = strdup(ci.name);
    units[k] = strdup(ci.unit);
    if (names[k] == NULL || units[k] == NULL) {
      qt_error("%s: out of memory", in);
      code = QT_EXIT_ANALYSIS;
      goto done;
    }
    sanitize(names[k]);
    sanitize(units[k]);
  }
  if (ct == QUANTAL_CONTAINER_AUTO)
    ct = strlen(outp) > 5 &&
                 strcmp(outp + strlen(outp) - 5, ".flac") == 0
             ? QUANTAL_CONTAINER_FLAC
             : QUANTAL_CONTAINER_WAV;
  if (ct == QUANTAL_CONTAINER_FLAC) {
    st = for_blocks(&j, track_max, mx, &diag);
    if (st != QUANTAL_OK) {
      qt_diag_error(&diag, st);
      code = qt_exit_code(st);
      goto done;
    }
    flac_steps(&j, mx, step);
  }
  snprintf(comment, sizeof comment, "converted by quantal %s from %s (%s)%s%s",
           quantal_version(), in, j.info.format, sweeps ? " sweeps " : "",
           sweeps ? sweeps : "");
  memset(&wo, 0, sizeof wo);
  wo.container = ct;
  wo.rate_hz = j.info.rate_hz;
  wo.n_channels = j.n_out;
  wo.names = (const char *const *)names;
  wo.units = (const char *const *)units;
  wo.scales = ct == QUANTAL_CONTAINER_FLAC ? step : NULL;
  wo.expected_frames = frames;
  wo.comment = comment;
  qt_signals_hold();
  st = quantal_writer_open(outp, &wo, &w, &diag);
  if (st == QUANTAL_OK)
    qt_track_tmp(quantal_writer_temp_path(w));
  qt_signals_release();
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    code = qt_exit_code(st);
    goto done;
  }
  wa.w = w;
  wa.diag = &diag;
  st = for_blocks(&j, write_block, &wa, &diag);
  {
    /* Stop tracking the temporary file only once it is gone (renamed or
     * removed), so a signal in between cannot leave it behind. */
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s", quantal_writer_temp_path(w));
    if (st != QUANTAL_OK) {
      quantal_writer_abort(w);
      qt_forget_tmp(tmp);
      qt_diag_error(&diag, st);
      code = qt_exit_code(st);
      goto done;
    }
    st = quantal_writer_commit(w, &diag);
    qt_forget_tmp(tmp);
  }
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    code = qt_exit_code(st);
  }
done:
  if (names)
    for (k = 0; k < nc; k++)
      free(names[k]);
  if (units)
    for (k = 0; k < nc; k++)
      free(units[k]);
  free(names);
  free(units);
  free(mx);
  free(step);
  free(j.in);
  free(j.out);
  free(j.sweep_sel);
  free(j.chan_sel);
  free(j.chans);
  quantal_recording_close(j.rec);
  return code;
}

int
cmd_convert(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"channels", required_argument, NULL, OPT_CHANNELS},
      {"format", required_argument, NULL, OPT_FORMAT},
      {"help", no_argument, NULL, 'h'},
      QT_RECORDING_LONGOPTS,
      {NULL, 0, NULL, 0}};
  qt_recopts ro;
  int common;
  quantal_open_options oo;
  quantal_container ct = QUANTAL_CONTAINER_AUTO;
  const char *channels = NULL;
  struct stat si, so;
  int opt;

  memset(&ro, 0, sizeof ro);
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    switch (opt) {
    case OPT_CHANNELS: channels = optarg; break;
    case OPT_FORMAT:
      if (strcmp(optarg, "wav") == 0)
        ct = QUANTAL_CONTAINER_WAV;
      else if (strcmp(optarg, "flac") == 0)
        ct = QUANTAL_CONTAINER_FLAC;
      else
        return qt_usage_error("--format: '%s' is not wav or flac", optarg);
      break;
    case 'h': usage(stdout); return qt_finish_stdout(QT_EXIT_OK);
    default:
      if ((common = qt_common_option(opt, &ro, argv)) != 0)
        return common;
      break;
    }
  }
  if (argc - optind != 2)
    return qt_usage_error(argc - optind < 2 ? "give an input and an output "
                                              "file"
                                            : "too many files: give one "
                                              "input and one output");
  if (strcmp(argv[optind + 1], "-") == 0)
    return qt_usage_error("the output must be a file, not standard output");
  if (stat(argv[optind], &si) == 0 && stat(argv[optind + 1], &so) == 0 &&
      si.st_dev == so.st_dev && si.st_ino == so.st_ino)
    return qt_usage_error("the output '%s' is the input file",
                          argv[optind + 1]);
  oo = qt_recopts_get(&ro);
  return convert(argv[optind], argv[optind + 1], &oo, ro.sweeps, channels,
                 ct);
}
