/* cmd_detect.c - quantal detect: find and measure spontaneous events. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "cmds.h"
#include "events.h"
#include "plot.h"
#include "util.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/internal.h" /* qtl_median */

/* Recordings longer than this get a progress bar when stderr is a
 * terminal. */
#define PROGRESS_MIN_FRAMES 20000000ULL

static void
usage(FILE *fp)
{
  fprintf(fp,
          "Usage: quantal detect [OPTION]... FILE\n"
          "Find and measure spontaneous synaptic events (MEPPs, mEPSCs):\n"
          "one row per event with onset, peak, amplitude, baseline, 10-90 %%\n"
          "rise, decay tau, half-width, area, detection score and overlap.\n\n"
          "  -m, --method M       combined (default), template,\n"
          "                       deconvolution, threshold, slope\n"
          "  -t, --threshold SD   detection threshold in SDs of the score\n"
          "                       (default 4)\n"
          "  -p, --polarity P     auto (default), positive, negative\n"
          "      --rise MS        template rise time constant guess (0.5)\n"
          "      --decay MS       template decay time constant guess (5)\n"
          "      --template FILE  event waveform: a one-column table\n"
          "      --no-refine      keep the given kinetics (no refit)\n"
          "      --mains HZ       50 (default), 60 or off\n"
          "      --lowpass HZ     Gaussian low-pass of threshold/slope\n"
          "                       methods (default 1000)\n"
          "      --baseline-window S  running-median baseline (0.5 s)\n"
          "  -c, --channel N      channel, from 1 (default 1)\n"
          "      --from S, --to S analyse only this span (seconds)\n"
          "  -o, --output FILE    write the table to FILE (default stdout)\n"
          "      --json           JSON instead of TSV\n"
          "      --plot FIG       also draw the events (.png .svg .pdf);\n"
          "                       needs -o FILE\n"
          "      --block FRAMES   frames per block (default 524288)\n"
          "  -q, --quiet          no summary on stderr\n"
          "      --rate HZ, --units U, --scale S  as for quantal info\n"
          "      --sweeps LIST     only these sweeps (\"1-10,12\"), laid end\n"
          "                        to end; times refer to them\n"
          "  -h, --help           show this help and exit\n\n"
          "Exit status: 0 ok, 1 analysis failed, 2 usage, 3 unreadable or\n"
          "empty input. See quantal-detect(1).\n");
}

typedef struct out_state {
  FILE *fp;
  int json;
  int argc;
  char **argv;
  const char *path;
  size_t channel;
  quantal_channel_info ci;
  const quantal_detect_options *o;
  uint64_t n;
  double *amps;
  size_t namps, capamps;
  int failed;
  /* progress */
  int progress;
  int last_pct;
} out_state;

static const char *
pol_name(int p)
{
  return p > 0 ? "positive" : "negative";
}

static int
on_ready(const quantal_detect_summary *s, void *user)
{
  out_state *st = user;
  FILE *fp = st->fp;
  const char *u = st->ci.unit;
  if (st->json) {
    fprintf(fp, "{\"quantal\": ");
    qt_json_string(fp, quantal_version());
    fprintf(fp, ", \"input\": ");
    qt_json_string(fp, st->path);
    fprintf(fp, ", \"channel\": %zu, \"channel_name\": ", st->channel + 1);
    qt_json_string(fp, st->ci.name);
    fprintf(fp, ", \"unit\": ");
    qt_json_string(fp, u);
    fprintf(fp, ", \"method\": \"%s\", \"polarity\": \"%s\", "
                "\"threshold_sd\": ",
            quantal_detect_method_name(s->method), pol_name(s->polarity));
    qt_json_number(fp, s->threshold);
    qt_json_field(fp, "rise_ms", s->rise_s * 1e3);
    qt_json_field(fp, "decay_ms", s->decay_s * 1e3);
    fprintf(fp, ", \"kinetics\": \"%s\", \"noise_sd\": ",
            st->o->waveform ? "template file"
            : s->refined    ? "refined"
                            : "given");
    qt_json_number(fp, s->noise_sd);
    fprintf(fp, ",\n \"events\": [");
  } else {
    qt_print_provenance(fp, st->argc, st->argv);
    fprintf(fp, "# input: %s\n# channel: %zu (%s, %s)\n", st->path,
            st->channel + 1, st->ci.name, u);
    fprintf(fp, "# method: %s, polarity: %s, threshold: %g SD of the score\n",
            quantal_detect_method_name(s->method), pol_name(s->polarity),
            s->threshold);
    if (st->o->waveform)
      fprintf(fp, "# template: from a file\n");
    else
      fprintf(fp, "# template: rise %.4g ms, decay %.4g ms (%s)\n",
              s->rise_s * 1e3, s->decay_s * 1e3,
              s->refined ? "refined from the data" : "as given");
    fprintf(fp, "# noise_sd: %.6g %s\n", s->noise_sd, u);
    qt_event_tsv_header(fp, u);
  }
  return ferror(fp) ? -1 : 0;
}

static int
on_event(const quantal_event *ev, void *user)
{
  out_state *st = user;
  FILE *fp = st->fp;
  if (st->namps == st->capamps) {
    size_t nc = st->capamps ? 2 * st->capamps : 1024;
    double *a = realloc(st->amps, nc * sizeof *a);
    if (a == NULL)
      return -1;
    st->amps = a;
    st->capamps = nc;
  }
  st->amps[st->namps++] = ev->amplitude;
  if (st->json) {
    fprintf(fp, "%s\n  {\"onset_s\": ", st->n ? "," : "");
    qt_json_number(fp, ev->onset_s);
    qt_json_field(fp, "peak_s", ev->peak_s);
    qt_json_field(fp, "amplitude", ev->amplitude);
    qt_json_field(fp, "baseline", ev->baseline);
    qt_json_field(fp, "rise_10_90_ms", ev->rise_10_90_s * 1e3);
    qt_json_field(fp, "decay_tau_ms", ev->decay_tau_s * 1e3);
    qt_json_field(fp, "half_width_ms", ev->half_width_s * 1e3);
    qt_json_field(fp, "area_ms", ev->area * 1e3);
    qt_json_field(fp, "criterion", ev->criterion);
    fprintf(fp, ", \"overlap\": %d}", ev->overlap);
  } else {
    qt_event_tsv_row(fp, ev);
  }
  st->n++;
  return ferror(fp) ? -1 : 0;
}

static void
on_progress(uint64_t done, uint64_t total, void *user)
{
  out_state *st = user;
  int pct, i;
  if (!st->progress || total == 0)
    return;
  pct = (int)(100.0 * (double)done / (double)total);
  if (pct == st->last_pct)
    return;
  st->last_pct = pct;
  fputs("\r[", stderr);
  for (i = 0; i < 40; i++)
    fputc(i < pct * 40 / 100 ? '#' : ' ', stderr);
  fprintf(stderr, "] %3d%%", pct);
  if (done >= total)
    fputs("\r\033[K", stderr);
  fflush(stderr);
}

/* A template waveform from the first numeric column of a table. */
static int
read_waveform(const char *path, double **w, size_t *n)
{
  quantal_table *t = NULL;
  quantal_diag diag;
  quantal_status st;
  size_t i, rows;
  const double *col;
  quantal_diag_clear(&diag);
  st = quantal_table_read(path, &t, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    return qt_exit_code(st) == QT_EXIT_USAGE ? QT_EXIT_IO : qt_exit_code(st);
  }
  rows = quantal_table_rows(t);
  if (quantal_table_cols(t) < 1 || rows < 4) {
    qt_error("%s: a template needs at least 4 rows", path);
    quantal_table_free(t);
    return QT_EXIT_IO;
  }
  col = quantal_table_column(t, quantal_table_cols(t) - 1);
  *w = malloc(rows * sizeof **w);
  if (*w == NULL) {
    quantal_table_free(t);
    qt_error("out of memory");
    return QT_EXIT_ANALYSIS;
  }
  for (i = 0; i < rows; i++) {
    if (!isfinite(col[i])) {
      qt_error("%s: row %zu of the template is not a number", path, i + 1);
      free(*w);
      *w = NULL;
      quantal_table_free(t);
      return QT_EXIT_IO;
    }
    (*w)[i] = col[i];
  }
  *n = rows;
  quantal_table_free(t);
  return 0;
}

enum {
  OPT_RISE = QT_OPT_FIRST_FREE,
  OPT_DECAY,
  OPT_TEMPLATE,
  OPT_NO_REFINE,
  OPT_MAINS,
  OPT_LOWPASS,
  OPT_BASEWIN,
  OPT_FROM,
  OPT_TO,
  OPT_JSON,
  OPT_BLOCK,
  OPT_PLOT
};

int
cmd_detect(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"method", required_argument, NULL, 'm'},
      {"threshold", required_argument, NULL, 't'},
      {"polarity", required_argument, NULL, 'p'},
      {"rise", required_argument, NULL, OPT_RISE},
      {"decay", required_argument, NULL, OPT_DECAY},
      {"template", required_argument, NULL, OPT_TEMPLATE},
      {"no-refine", no_argument, NULL, OPT_NO_REFINE},
      {"mains", required_argument, NULL, OPT_MAINS},
      {"lowpass", required_argument, NULL, OPT_LOWPASS},
      {"baseline-window", required_argument, NULL, OPT_BASEWIN},
      {"channel", required_argument, NULL, 'c'},
      {"from", required_argument, NULL, OPT_FROM},
      {"to", required_argument, NULL, OPT_TO},
      {"output", required_argument, NULL, 'o'},
      {"json", no_argument, NULL, OPT_JSON},
      {"block", required_argument, NULL, OPT_BLOCK},
      {"plot", required_argument, NULL, OPT_PLOT},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      QT_RECORDING_LONGOPTS,
      {NULL, 0, NULL, 0}};
  qt_recopts ro;
  int common;
  quantal_open_options oo;
  quantal_detect_options o = quantal_detect_options_default();
  quantal_detect_summary sum;
  quantal_recording *rec = NULL;
  quantal_recording_info info;
  quantal_diag diag;
  quantal_status st;
  out_state os;
  qt_out out;
  const char *outpath = "-", *tplpath = NULL, *path, *plotpath = NULL;
  double v, *wave = NULL;
  long lv, channel = 1;
  int opt, quiet = 0, code;
  FILE *buf = NULL;

  memset(&ro, 0, sizeof ro);
  memset(&os, 0, sizeof os);
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":hm:t:p:c:o:q", longopts, NULL)) !=
         -1) {
    switch (opt) {
    case 'm': {
      int m = quantal_detect_method_parse(optarg);
      if (m < 0)
        return qt_usage_error("--method: '%s' is not combined, template, "
                              "deconvolution, threshold or slope",
                              optarg);
      o.method = (quantal_detect_method)m;
      break;
    }
    case 't':
      if (qt_parse_double("--threshold", optarg, 0.5, 1000.0, &v) != 0)
        return QT_EXIT_USAGE;
      o.threshold = v;
      break;
    case 'p':
      if (strcmp(optarg, "auto") == 0)
        o.polarity = 0;
      else if (strcmp(optarg, "positive") == 0 || strcmp(optarg, "+") == 0)
        o.polarity = 1;
      else if (strcmp(optarg, "negative") == 0 || strcmp(optarg, "-") == 0)
        o.polarity = -1;
      else
        return qt_usage_error("--polarity: '%s' is not auto, positive or "
                              "negative", optarg);
      break;
    case OPT_RISE:
      if (qt_parse_double("--rise", optarg, 0.001, 1000.0, &v) != 0)
        return QT_EXIT_USAGE;
      o.rise_s = v * 1e-3;
      break;
    case OPT_DECAY:
      if (qt_parse_double("--decay", optarg, 0.01, 10000.0, &v) != 0)
        return QT_EXIT_USAGE;
      o.decay_s = v * 1e-3;
      break;
    case OPT_TEMPLATE: tplpath = optarg; break;
    case OPT_NO_REFINE: o.refine = 0; break;
    case OPT_MAINS:
      if (strcmp(optarg, "off") == 0 || strcmp(optarg, "0") == 0)
        o.filter.mains_hz = 0.0;
      else if (strcmp(optarg, "50") == 0)
        o.filter.mains_hz = 50.0;
      else if (strcmp(optarg, "60") == 0)
        o.filter.mains_hz = 60.0;
      else
        return qt_usage_error("--mains: '%s' is not 50, 60 or off", optarg);
      break;
    case OPT_LOWPASS:
      if (qt_parse_double("--lowpass", optarg, 1.0, 1e6, &v) != 0)
        return QT_EXIT_USAGE;
      o.filter.lowpass_hz = v;
      break;
    case OPT_BASEWIN:
      if (qt_parse_double("--baseline-window", optarg, 0.0, 3600.0, &v) != 0)
        return QT_EXIT_USAGE;
      o.filter.baseline_window_s = v;
      break;
    case 'c':
      if (qt_parse_long("--channel", optarg, 1, QUANTAL_MAX_CHANNELS,
                        &channel) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_FROM:
      if (qt_parse_double("--from", optarg, 0.0, 1e9, &v) != 0)
        return QT_EXIT_USAGE;
      o.from_s = v;
      break;
    case OPT_TO:
      if (qt_parse_double("--to", optarg, 1e-9, 1e9, &v) != 0)
        return QT_EXIT_USAGE;
      o.to_s = v;
      break;
    case 'o': outpath = optarg; break;
    case OPT_JSON: os.json = 1; break;
    case OPT_PLOT: plotpath = optarg; break;
    case OPT_BLOCK:
      if (qt_parse_long("--block", optarg, 1024, 1L << 26, &lv) != 0)
        return QT_EXIT_USAGE;
      o.block_frames = (size_t)lv;
      break;
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
    return qt_usage_error("one recording at a time (got %d)", argc - optind);
  if (o.to_s > 0.0 && o.to_s <= o.from_s)
    return qt_usage_error("--to (%g s) must be after --from (%g s)", o.to_s,
                          o.from_s);
  if (o.rise_s >= o.decay_s)
    return qt_usage_error("--rise (%g ms) must be shorter than --decay "
                          "(%g ms)", o.rise_s * 1e3, o.decay_s * 1e3);
  path = argv[optind];
  oo = qt_recopts_get(&ro);
  if (plotpath != NULL && (strcmp(outpath, "-") == 0 || os.json))
    return qt_usage_error("--plot draws from the TSV table: give -o FILE "
                          "(and no --json)");

  if (tplpath) {
    code = read_waveform(tplpath, &wave, &o.waveform_n);
    if (code != 0)
      return code;
    o.waveform = wave;
  }
  quantal_diag_clear(&diag);
  st = quantal_recording_open(path, &oo, &rec, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    free(wave);
    /* A --sweeps list the recording cannot satisfy is a usage error; other
     * option-versus-file mismatches are the file's. */
    if (oo.sweeps && strncmp(diag.reason, "sweeps ", 7) == 0)
      return QT_EXIT_USAGE;
    return qt_exit_code(st) == QT_EXIT_USAGE ? QT_EXIT_IO
                                             : qt_exit_code(st);
  }
  quantal_recording_get_info(rec, &info);
  if ((size_t)channel > info.n_channels) {
    qt_usage_error("--channel: %s has %zu channel%s, not %ld", path,
                   info.n_channels, info.n_channels == 1 ? "" : "s",
                   channel);
    quantal_recording_close(rec);
    free(wave);
    return QT_EXIT_USAGE;
  }
  os.channel = (size_t)channel - 1;
  quantal_recording_get_channel(rec, os.channel, &os.ci);
  os.argc = argc;
  os.argv = argv;
  os.path = path;
  os.o = &o;
  os.last_pct = -1;
  os.progress = isatty(2) && !quiet && info.frames >= PROGRESS_MIN_FRAMES;

  /* Everything goes to a temporary file first: to the output's folder
   * (renamed at the end), or for stdout an anonymous one copied out only
   * when the run succeeded, so a failure never leaves half a table. */
  if (strcmp(outpath, "-") == 0) {
    buf = tmpfile();
    if (buf == NULL) {
      qt_error("cannot create a temporary file");
      quantal_recording_close(rec);
      free(wave);
      return QT_EXIT_IO;
    }
    os.fp = buf;
  } else {
    code = qt_out_open(&out, outpath);
    if (code != 0) {
      quantal_recording_close(rec);
      free(wave);
      return code;
    }
    os.fp = out.fp;
  }
  o.on_ready = on_ready;
  o.on_event = on_event;
  o.on_progress = on_progress;
  o.user = &os;
  st = quantal_detect_run(rec, os.channel, &o, &sum, &diag);
  if (os.progress && st != QUANTAL_OK)
    fputs("\r\033[K", stderr);
  quantal_recording_close(rec);
  free(wave);
  if (st != QUANTAL_OK) {
    /* Ask the stream before closing it: after fclose it is gone. */
    int write_failed = ferror(os.fp) != 0;
    if (write_failed)
      qt_error("%s: write error", outpath);
    else
      qt_diag_error(&diag, st);
    if (buf)
      fclose(buf);
    else
      qt_out_abort(&out);
    free(os.amps);
    return qt_exit_code(st) == QT_EXIT_USAGE && !write_failed
               ? QT_EXIT_USAGE
               : qt_exit_code(st);
  }
  if (os.json) {
    fprintf(os.fp, "%s],\n \"summary\": {\"events\": %llu, \"duration_s\": ",
            os.n ? "\n " : "", (unsigned long long)sum.n_events);
    qt_json_number(os.fp, sum.duration_s);
    fprintf(os.fp, ", \"rate_hz\": ");
    qt_json_number(os.fp, sum.rate_hz);
    fprintf(os.fp, ", \"median_amplitude\": ");
    qt_json_number(os.fp, os.namps ? qtl_median(os.amps, os.namps) : NAN);
    fprintf(os.fp, ", \"gaps\": %llu, \"gap_s\": ",
            (unsigned long long)sum.n_gaps);
    qt_json_number(os.fp, sum.gap_s);
    fprintf(os.fp, "}}\n");
  }
  if (buf) {
    char chunk[65536];
    size_t m;
    rewind(buf);
    while ((m = fread(chunk, 1, sizeof chunk, buf)) > 0)
      fwrite(chunk, 1, m, stdout);
    fclose(buf);
    code = qt_finish_stdout(QT_EXIT_OK);
  } else {
    code = qt_out_commit(&out);
  }
  if (code == QT_EXIT_OK && !quiet) {
    double med = os.namps ? qtl_median(os.amps, os.namps) : NAN;
    fprintf(stderr,
            "quantal: detect: %s: %llu events in %.6g s (%.4g Hz), median "
            "amplitude %.4g %s, noise SD %.4g %s\n",
            path, (unsigned long long)sum.n_events, sum.duration_s,
            sum.rate_hz, med, os.ci.unit, sum.noise_sd, os.ci.unit);
    if (sum.n_gaps > 0)
      fprintf(stderr,
              "quantal: detect: %s: skipped %llu gap%s of NaN/Inf samples "
              "(%.6g s in all, the first at %.6g s)\n",
              path, (unsigned long long)sum.n_gaps,
              sum.n_gaps == 1 ? "" : "s", sum.gap_s, sum.first_gap_s);
  }
  free(os.amps);
  if (code == QT_EXIT_OK && plotpath != NULL)
    code = qt_plot_detect(path, &oo, (size_t)channel - 1, outpath, plotpath,
                          NULL);
  return code;
}
