/* cmd_evoked.c - quantal evoked: per-stimulus response amplitudes. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "cmds.h"
#include "events.h"
#include "plot.h"
#include "progress.h"
#include "util.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
  OPT_JSON = QT_OPT_FIRST_FREE,
  OPT_STIM_CHANNEL,
  OPT_STIM_THRESHOLD,
  OPT_STIMULI,
  OPT_FIRST,
  OPT_PERIOD,
  OPT_COUNT,
  OPT_TRAIN,
  OPT_TRAIN_HZ,
  OPT_TRAIN_GAP,
  OPT_ARTEFACT,
  OPT_SWEEP_STIM,
  OPT_BASELINE,
  OPT_BLANK,
  OPT_WINDOW,
  OPT_JITTER,
  OPT_POLARITY,
  OPT_ALPHA,
  OPT_MIN_INTERVAL,
  OPT_MINIS,
  OPT_PLOT,
  OPT_QUIET
};

static void
usage(FILE *fp)
{
  fprintf(fp,
      "Usage: quantal evoked [OPTION]... RECORDING\n"
      "Measure the response to every stimulus: amplitude, latency,\n"
      "baseline, noise and a statistical failure flag (TSV or --json).\n\n"
      "Stimulus times (one source):\n"
      "  --stim-channel N       rising edges of trigger channel N\n"
      "  --stim-threshold V     trigger threshold (default: half its range)\n"
      "  --stimuli FILE         table of times (first column, seconds)\n"
      "  --first S --period S   a regular protocol; --count N stimuli\n"
      "  --train N --train-hz F each stimulus a train of N pulses\n"
      "  --stim-from-artefact K artefacts: steps > K robust SDs (e.g. 20)\n"
      "  --sweep-stim S         one stimulus S seconds into each sweep\n"
      "  --min-interval MS      ignore edges closer than this (1 ms)\n"
      "  --train-gap MS         a gap longer than this starts a new train\n"
      "Measurement:\n"
      "  -c, --channel N        recorded channel (1)\n"
      "  --baseline MS          baseline window before the stimulus (5)\n"
      "  --blank MS             artefact blanking after the stimulus (1)\n"
      "  --window MS            response window after the stimulus (30)\n"
      "  --jitter MS            latency search for responses (1)\n"
      "  --polarity auto|positive|negative   response sign (auto)\n"
      "  --alpha A              false-response rate of the failure test\n"
      "                         (0.001)\n"
      "Output:\n"
      "  -o, --output FILE      write the table to FILE (default stdout)\n"
      "  --minis FILE           also detect the spontaneous minis between\n"
      "                         the responses and write them to FILE\n"
      "  --json                 JSON instead of TSV\n"
      "  --plot FIG             also draw the responses (.png .svg .pdf);\n"
      "                         needs -o FILE\n"
      "  --quiet                no progress bar\n"
      "  --rate HZ, --units U, --scale S   as in quantal info\n"
      "  --sweeps LIST         only these sweeps (\"1-10,12\"), laid end to\n"
      "                        end; times and stimuli refer to them\n"
      "  -h, --help             show this help and exit\n\n"
      "Exit status: 0 ok, 1 no stimuli or nothing measurable, 2 usage,\n"
      "3 file problem. See quantal-evoked(1).\n");
}

/* Times from the first column of a table (or a bare list of numbers). */
static int
read_stimuli(const char *path, double **times, size_t *n)
{
  quantal_table *t;
  quantal_diag d;
  quantal_status st = quantal_table_read(path, &t, &d);
  const double *col;
  size_t i, rows;
  long c;
  if (st != QUANTAL_OK) {
    qt_diag_error(&d, st);
    return qt_exit_code(st);
  }
  rows = quantal_table_rows(t);
  c = quantal_table_find(t, "stim_s");
  if (c < 0)
    c = quantal_table_find(t, "time_s");
  if (c < 0)
    c = 0;
  *times = malloc((rows + 1) * sizeof **times);
  if (*times == NULL) {
    quantal_table_free(t);
    qt_error("%s: out of memory", path);
    return QT_EXIT_ANALYSIS;
  }
  *n = 0;
  /* A bare column of numbers has no header: its first line is a time. */
  {
    char *end;
    const char *h = quantal_table_colname(t, (size_t)c);
    double v = strtod(h, &end);
    if (end != h && *end == '\0')
      (*times)[(*n)++] = v;
  }
  col = quantal_table_column(t, (size_t)c);
  for (i = 0; i < rows; i++) {
    if (!isfinite(col[i]) || col[i] < 0.0) {
      qt_error("%s: row %zu: '%s' is not a time in seconds", path, i + 1,
               quantal_table_cell(t, i, (size_t)c));
      quantal_table_free(t);
      free(*times);
      *times = NULL;
      return QT_EXIT_IO;
    }
    (*times)[(*n)++] = col[i];
  }
  quantal_table_free(t);
  for (i = 1; i < *n; i++)
    if (!((*times)[i] > (*times)[i - 1])) {
      qt_error("%s: stimulus times must increase (row %zu)", path, i + 1);
      free(*times);
      *times = NULL;
      return QT_EXIT_IO;
    }
  return 0;
}

/* Pulse index for times from a trigger, a table or artefacts: trains are
 * recognised by their short intervals. */
static void
infer_pulses(const double *t, size_t n, double gap_s, unsigned *pulse)
{
  double lo = INFINITY, hi = 0.0;
  size_t i;
  if (gap_s <= 0.0) {
    for (i = 1; i < n; i++) {
      double d = t[i] - t[i - 1];
      if (d < lo)
        lo = d;
      if (d > hi)
        hi = d;
    }
    /* Regular stimulation (all intervals alike) is single pulses; else a
     * gap longer than the geometric mean of the shortest and longest
     * interval separates trains. */
    gap_s = (n < 2 || hi < 1.5 * lo) ? 0.0 : sqrt(lo * hi);
  }
  if (gap_s <= 0.0) {
    for (i = 0; i < n; i++)
      pulse[i] = 1;
    return;
  }
  quantal_stimuli_pulse_index(t, n, gap_s, pulse);
}

/* Spontaneous events between the evoked responses, for the table that
 * quantal fit takes as its quantal-size reference. */
typedef struct minis_state {
  FILE *fp;
  const double *stim_s;
  size_t n_stim, next;   /* first stimulus whose exclusion may still come */
  double before_s, after_s;
  size_t n;
  double sum;
  qt_progress *bar;
} minis_state;

static void
on_minis_progress(uint64_t done, uint64_t total, void *user)
{
  minis_state *m = user;
  (void)total;
  qt_progress_update(m->bar, done);
}

static int
on_mini(const quantal_event *ev, void *user)
{
  minis_state *m = user;
  /* The evoked response and its artefact are not minis. */
  if (quantal_evoked_near_stimulus(m->stim_s, m->n_stim, m->before_s,
                                   m->after_s, &m->next, ev->onset_s,
                                   ev->peak_s))
    return 0;
  qt_event_tsv_row(m->fp, ev);
  m->n++;
  m->sum += ev->amplitude;
  return ferror(m->fp) ? -1 : 0;
}

static void
print_tsv(FILE *fp, const quantal_evoked_response *r, const unsigned *pulse,
          size_t n, const char *unit, double null_sd)
{
  size_t i;
  fprintf(fp,
          "stimulus\tpulse\tstim_s\tamplitude_%s\tlatency_ms\tpeak_ms\t"
          "baseline_%s\tnoise_sd_%s\tamplitude_sd_%s\tarea_%s_ms\tz\t"
          "failure\tsham_%s\tsham_after_%s\n",
          unit, unit, unit, unit, unit, unit, unit);
  for (i = 0; i < n; i++)
    fprintf(fp, "%zu\t%u\t%.6f\t%.6g\t%.4g\t%.4g\t%.7g\t%.4g\t%.4g\t%.6g\t"
                "%.4g\t%d\t%.6g\t%.6g\n",
            i + 1, pulse[i], r[i].stim_s, r[i].amplitude,
            r[i].latency_s * 1e3, r[i].peak_latency_s * 1e3, r[i].baseline,
            r[i].noise_sd, null_sd, r[i].area * 1e3, r[i].z, r[i].failure,
            r[i].sham, r[i].sham_after);
}

static void
print_json(FILE *fp, const char *path, size_t ch, const char *unit,
           const quantal_evoked_response *r, const unsigned *pulse, size_t n,
           const quantal_evoked_summary *s, const quantal_evoked_options *o)
{
  size_t i;
  fprintf(fp, "{\"version\": ");
  qt_json_string(fp, quantal_version());
  fprintf(fp, ", \"input\": ");
  qt_json_string(fp, path);
  fprintf(fp, ", \"channel\": %zu, \"unit\": ", ch + 1);
  qt_json_string(fp, unit);
  fprintf(fp, ",\n \"settings\": {\"baseline_ms\": %g, \"blank_ms\": %g, "
              "\"window_ms\": %g, \"jitter_ms\": %g, \"alpha\": %g},\n",
          o->baseline_s * 1e3, o->blank_s * 1e3, o->window_s * 1e3,
          o->jitter_s * 1e3, o->alpha);
  fprintf(fp, " \"summary\": {\"stimuli\": %zu, \"failures\": %zu, "
              "\"polarity\": %d, \"template_peak\": ",
          n, s->n_failures, s->polarity);
  qt_json_number(fp, s->template_peak);
  qt_json_field(fp, "template_onset_ms", s->template_onset_s * 1e3);
  qt_json_field(fp, "template_peak_ms", s->template_peak_s * 1e3);
  qt_json_field(fp, "template_snr", s->template_snr);
  fprintf(fp, ", \"late_events\": %zu", s->n_late_events);
  qt_json_field(fp, "amplitude_sd", s->null_sd);
  fprintf(fp, ", \"null_from_shams\": %s, \"shams\": %zu, \"z_crit\": ",
          s->null_from_shams ? "true" : "false", s->n_shams);
  qt_json_number(fp, s->z_crit);
  fprintf(fp, "},\n \"responses\": [");
  for (i = 0; i < n; i++) {
    fprintf(fp, "%s\n  {\"stimulus\": %zu, \"pulse\": %u, \"stim_s\": ",
            i ? "," : "", i + 1, pulse[i]);
    qt_json_number(fp, r[i].stim_s);
    qt_json_field(fp, "amplitude", r[i].amplitude);
    qt_json_field(fp, "latency_ms", r[i].latency_s * 1e3);
    qt_json_field(fp, "peak_ms", r[i].peak_latency_s * 1e3);
    qt_json_field(fp, "baseline", r[i].baseline);
    qt_json_field(fp, "noise_sd", r[i].noise_sd);
    qt_json_field(fp, "area_ms", r[i].area * 1e3);
    qt_json_field(fp, "z", r[i].z);
    qt_json_field(fp, "sham", r[i].sham);
    qt_json_field(fp, "sham_after", r[i].sham_after);
    fprintf(fp, ", \"failure\": %s, \"late_event\": %s}",
            r[i].failure ? "true" : "false",
            r[i].late_event ? "true" : "false");
  }
  fprintf(fp, "\n]}\n");
}

static void
print_summary(const char *path, const char *unit,
              const quantal_evoked_response *r, size_t n,
              const quantal_evoked_summary *s, double alpha)
{
  double sum = 0.0, sum2 = 0.0, sresp = 0.0, mean, sd;
  size_t i, nresp = 0;
  for (i = 0; i < n; i++) {
    sum += r[i].amplitude;
    sum2 += r[i].amplitude * r[i].amplitude;
    if (!r[i].failure) {
      sresp += r[i].amplitude;
      nresp++;
    }
  }
  mean = sum / (double)n;
  sd = n > 1 ? sqrt(fmax(0.0, (sum2 - sum * sum / (double)n) /
                                  (double)(n - 1)))
             : NAN;
  fprintf(stderr,
          "quantal: evoked: %s: %zu stimuli, %zu failures (%.1f %%); "
          "amplitude mean %.4g %s, SD %.4g, CV %.3g; ",
          path, n, s->n_failures, 100.0 * (double)s->n_failures / (double)n,
          mean, unit, sd, fabs(sd / mean));
  if (nresp)
    fprintf(stderr, "mean of responses %.4g %s\n", sresp / (double)nresp,
            unit);
  else
    fprintf(stderr, "no responses\n");
  fprintf(stderr,
          "quantal: evoked: %s: failure = amplitude not above noise: z < "
          "%.3g (alpha %.3g, one-sided), noise SD of the amplitude %.4g %s "
          "(%s)\n",
          path, s->z_crit, alpha, s->null_sd, unit,
          s->null_from_shams ? "from sham windows between the responses"
                             : "white-noise formula: no room for shams");
}

int
cmd_evoked(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"channel", required_argument, NULL, 'c'},
      {"output", required_argument, NULL, 'o'},
      {"json", no_argument, NULL, OPT_JSON},
      {"stim-channel", required_argument, NULL, OPT_STIM_CHANNEL},
      {"stim-threshold", required_argument, NULL, OPT_STIM_THRESHOLD},
      {"stimuli", required_argument, NULL, OPT_STIMULI},
      {"first", required_argument, NULL, OPT_FIRST},
      {"period", required_argument, NULL, OPT_PERIOD},
      {"count", required_argument, NULL, OPT_COUNT},
      {"train", required_argument, NULL, OPT_TRAIN},
      {"train-hz", required_argument, NULL, OPT_TRAIN_HZ},
      {"train-gap", required_argument, NULL, OPT_TRAIN_GAP},
      {"stim-from-artefact", required_argument, NULL, OPT_ARTEFACT},
      {"sweep-stim", required_argument, NULL, OPT_SWEEP_STIM},
      {"min-interval", required_argument, NULL, OPT_MIN_INTERVAL},
      {"baseline", required_argument, NULL, OPT_BASELINE},
      {"blank", required_argument, NULL, OPT_BLANK},
      {"window", required_argument, NULL, OPT_WINDOW},
      {"jitter", required_argument, NULL, OPT_JITTER},
      {"polarity", required_argument, NULL, OPT_POLARITY},
      {"alpha", required_argument, NULL, OPT_ALPHA},
      {"minis", required_argument, NULL, OPT_MINIS},
      {"plot", required_argument, NULL, OPT_PLOT},
      {"quiet", no_argument, NULL, OPT_QUIET},
      {"help", no_argument, NULL, 'h'},
      QT_RECORDING_LONGOPTS,
      {NULL, 0, NULL, 0}};
  qt_recopts ro;
  int common;
  quantal_open_options oo;
  quantal_evoked_options eo = quantal_evoked_options_default();
  quantal_evoked_summary summary;
  quantal_evoked_response *resp = NULL;
  quantal_recording *rec = NULL;
  quantal_recording_info info;
  quantal_channel_info chinfo;
  quantal_diag diag;
  quantal_status st;
  qt_out out;
  const char *output = "-", *stim_file = NULL, *path, *minis_path = NULL;
  const char *plot_path = NULL;
  int quiet = 0;
  qt_progress bar;
  minis_state ms;
  qt_out mout;
  double stim_threshold = NAN, first = NAN, period = NAN, train_hz = NAN;
  double artefact_k = NAN, sweep_stim = NAN, min_interval_ms = 1.0;
  double train_gap_ms = 0.0, v, *times = NULL;
  long channel = 1, stim_channel = 0, count = 0, train = 1;
  unsigned *pulse = NULL;
  size_t n = 0, i;
  int json = 0, opt, code = QT_EXIT_OK, sources = 0;

  memset(&ro, 0, sizeof ro);
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, ":hc:o:", longopts, NULL)) != -1) {
    switch (opt) {
    case 'h': usage(stdout); return qt_finish_stdout(QT_EXIT_OK);
    case 'c':
      if (qt_parse_long("--channel", optarg, 1, QUANTAL_MAX_CHANNELS,
                        &channel) != 0)
        return QT_EXIT_USAGE;
      break;
    case 'o': output = optarg; break;
    case OPT_JSON: json = 1; break;
    case OPT_STIM_CHANNEL:
      if (qt_parse_long("--stim-channel", optarg, 1, QUANTAL_MAX_CHANNELS,
                        &stim_channel) != 0)
        return QT_EXIT_USAGE;
      sources++;
      break;
    case OPT_STIM_THRESHOLD:
      if (qt_parse_double("--stim-threshold", optarg, -1e300, 1e300,
                          &stim_threshold) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_STIMULI: stim_file = optarg; sources++; break;
    case OPT_FIRST:
      if (qt_parse_double("--first", optarg, 0.0, 1e9, &first) != 0)
        return QT_EXIT_USAGE;
      sources++;
      break;
    case OPT_PERIOD:
      if (qt_parse_double("--period", optarg, 1e-6, 1e9, &period) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_COUNT:
      if (qt_parse_long("--count", optarg, 1, 100000000L, &count) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_TRAIN:
      if (qt_parse_long("--train", optarg, 1, 100000L, &train) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_TRAIN_HZ:
      if (qt_parse_double("--train-hz", optarg, 1e-3, 1e6, &train_hz) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_TRAIN_GAP:
      if (qt_parse_double("--train-gap", optarg, 1e-3, 1e9,
                          &train_gap_ms) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_ARTEFACT:
      if (qt_parse_double("--stim-from-artefact", optarg, 3.0, 1e9,
                          &artefact_k) != 0)
        return QT_EXIT_USAGE;
      sources++;
      break;
    case OPT_SWEEP_STIM:
      if (qt_parse_double("--sweep-stim", optarg, 0.0, 1e9, &sweep_stim) != 0)
        return QT_EXIT_USAGE;
      sources++;
      break;
    case OPT_MIN_INTERVAL:
      if (qt_parse_double("--min-interval", optarg, 0.0, 1e9,
                          &min_interval_ms) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_BASELINE:
      if (qt_parse_double("--baseline", optarg, 1e-3, 1e6, &v) != 0)
        return QT_EXIT_USAGE;
      eo.baseline_s = v * 1e-3;
      break;
    case OPT_BLANK:
      if (qt_parse_double("--blank", optarg, 0.0, 1e6, &v) != 0)
        return QT_EXIT_USAGE;
      eo.blank_s = v * 1e-3;
      break;
    case OPT_WINDOW:
      if (qt_parse_double("--window", optarg, 1e-3, 1e6, &v) != 0)
        return QT_EXIT_USAGE;
      eo.window_s = v * 1e-3;
      break;
    case OPT_JITTER:
      if (qt_parse_double("--jitter", optarg, 0.0, 1e3, &v) != 0)
        return QT_EXIT_USAGE;
      eo.jitter_s = v * 1e-3;
      break;
    case OPT_POLARITY:
      if (strcmp(optarg, "auto") == 0)
        eo.polarity = 0;
      else if (strcmp(optarg, "positive") == 0)
        eo.polarity = 1;
      else if (strcmp(optarg, "negative") == 0)
        eo.polarity = -1;
      else
        return qt_usage_error("--polarity: '%s' is not auto, positive or "
                              "negative",
                              optarg);
      break;
    case OPT_ALPHA:
      if (qt_parse_double("--alpha", optarg, 1e-12, 0.4, &eo.alpha) != 0)
        return QT_EXIT_USAGE;
      break;
    case OPT_MINIS: minis_path = optarg; break;
    case OPT_PLOT: plot_path = optarg; break;
    case OPT_QUIET: quiet = 1; break;
    default:
      if ((common = qt_common_option(opt, &ro, argv)) != 0)
        return common;
      break;
    }
  }
  if (optind >= argc)
    return qt_usage_error("no recording given");
  if (argc - optind > 1)
    return qt_usage_error("one recording at a time (got %d)", argc - optind);
  if (sources == 0)
    return qt_usage_error("say where the stimuli are: --stim-channel, "
                          "--stimuli, --first/--period, --stim-from-artefact "
                          "or --sweep-stim");
  if (sources > 1)
    return qt_usage_error("give only one source of stimulus times");
  if (!isnan(first) && isnan(period) && count != 1)
    return qt_usage_error("--first needs --period (or --count 1)");
  if (train > 1 && isnan(train_hz))
    return qt_usage_error("--train needs --train-hz");
  if (plot_path != NULL && (strcmp(output, "-") == 0 || json))
    return qt_usage_error("--plot draws from the TSV table: give -o FILE "
                          "(and no --json)");
  path = argv[optind];
  oo = qt_recopts_get(&ro);
  quantal_diag_clear(&diag);
  st = quantal_recording_open(path, &oo, &rec, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    return qt_exit_code(st);
  }
  quantal_recording_get_info(rec, &info);
  if ((size_t)channel > info.n_channels ||
      (size_t)stim_channel > info.n_channels) {
    qt_error("%s: channel %ld does not exist (the file has %zu)", path,
             (size_t)channel > info.n_channels ? channel : stim_channel,
             info.n_channels);
    code = QT_EXIT_USAGE;
    goto done;
  }
  quantal_recording_get_channel(rec, (size_t)channel - 1, &chinfo);

  /* Stimulus times. */
  if (stim_channel > 0) {
    double lo = NAN, hi = NAN;
    st = quantal_stimuli_from_ttl(rec, (size_t)stim_channel - 1,
                                  stim_threshold, min_interval_ms * 1e-3,
                                  &times, &n, &lo, &hi, &diag);
    if (st == QUANTAL_OK && n == 0) {
      qt_error("%s: no stimuli found: no rising edge crossed %g on channel "
               "%ld (range %g to %g)",
               path, isnan(stim_threshold) ? 0.5 * (lo + hi) : stim_threshold,
               stim_channel, lo, hi);
      code = QT_EXIT_ANALYSIS;
      goto done;
    }
  } else if (stim_file != NULL) {
    code = read_stimuli(stim_file, &times, &n);
    if (code != 0)
      goto done;
  } else if (!isnan(first)) {
    st = quantal_stimuli_protocol(first, isnan(period) ? 1.0 : period,
                                  (size_t)count, (unsigned)train,
                                  train_hz, (double)info.frames / info.rate_hz,
                                  &times, &pulse, &n, &diag);
    if (st == QUANTAL_EINVAL) {
      code = qt_usage_error("%s", diag.reason);
      goto done;
    }
  } else if (!isnan(artefact_k)) {
    st = quantal_stimuli_from_artefact(rec, (size_t)channel - 1, artefact_k,
                                       min_interval_ms * 1e-3, &times, &n,
                                       &diag);
    if (st == QUANTAL_OK && n == 0) {
      qt_error("%s: no stimuli found: no artefact step above %g robust SDs "
               "on channel %ld",
               path, artefact_k, channel);
      code = QT_EXIT_ANALYSIS;
      goto done;
    }
  } else {
    n = info.n_sweeps;
    times = malloc(n * sizeof *times);
    if (times == NULL) {
      st = QUANTAL_ENOMEM;
      goto done;
    }
    for (i = 0; i < n; i++) {
      uint64_t f0, len;
      quantal_recording_get_sweep(rec, i, &f0, &len);
      if (sweep_stim >= (double)len / info.rate_hz) {
        qt_usage_error("--sweep-stim %g s lies beyond sweep %zu (%g s long)",
                       sweep_stim, i + 1, (double)len / info.rate_hz);
        code = QT_EXIT_USAGE;
        goto done;
      }
      times[i] = (double)f0 / info.rate_hz + sweep_stim;
    }
  }
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    code = qt_exit_code(st);
    goto done;
  }
  if (n == 0) {
    qt_error("%s: no stimuli found", path);
    code = QT_EXIT_ANALYSIS;
    goto done;
  }
  if (pulse == NULL) {
    pulse = malloc(n * sizeof *pulse);
    if (pulse == NULL) {
      st = QUANTAL_ENOMEM;
      goto done;
    }
    infer_pulses(times, n, train_gap_ms * 1e-3, pulse);
  }

  resp = calloc(n, sizeof *resp);
  if (resp == NULL) {
    st = QUANTAL_ENOMEM;
    goto done;
  }
  st = quantal_evoked_measure(rec, (size_t)channel - 1, times, pulse, n, &eo,
                              resp,
                              &summary, &diag);
  if (st != QUANTAL_OK) {
    if (st == QUANTAL_EINVAL)
      qt_error("%s: %s", path, diag.reason);
    else
      qt_diag_error(&diag, st);
    code = qt_exit_code(st);
    goto done;
  }

  if ((code = qt_out_open(&out, output)) != 0)
    goto done;
  if (json) {
    print_json(out.fp, path, (size_t)channel - 1, chinfo.unit, resp, pulse,
               n, &summary, &eo);
  } else {
    qt_print_provenance(out.fp, argc, argv);
    fprintf(out.fp, "# input: %s\n# channel: %ld (%s, %s)\n", path, channel,
            chinfo.name, chinfo.unit);
    fprintf(out.fp,
            "# settings: baseline %g ms, blank %g ms, window %g ms, jitter "
            "%g ms, alpha %g, polarity %s%s\n",
            eo.baseline_s * 1e3, eo.blank_s * 1e3, eo.window_s * 1e3,
            eo.jitter_s * 1e3, eo.alpha,
            summary.polarity > 0 ? "positive" : "negative",
            summary.polarity_from_minis
                ? " (that of the spontaneous events: the mean response is "
                  "within noise)"
                : "");
    fprintf(out.fp,
            "# template: mean response, peak %.5g %s at %.4g ms, onset (10 "
            "%%) %.4g ms, peak / SE of a mean of noise %.3g\n",
            summary.template_peak, chinfo.unit, summary.template_peak_s * 1e3,
            summary.template_onset_s * 1e3, summary.template_snr);
    fprintf(out.fp,
            "# failure test: z = (scale - %.4g) / %.4g %s < %.4g (%s)\n",
            summary.null_mean, summary.null_sd, chinfo.unit, summary.z_crit,
            summary.null_from_shams ? "null from sham windows"
                                    : "white-noise null");
    fprintf(out.fp,
            "# late events (a spontaneous event late in the window, removed "
            "before the test): %zu\n",
            summary.n_late_events);
    print_tsv(out.fp, resp, pulse, n, chinfo.unit, summary.null_sd);
  }
  if (minis_path != NULL) {
    quantal_detect_options dopt = quantal_detect_options_default();
    quantal_detect_summary dsum;
    if ((code = qt_out_open(&mout, minis_path)) != 0) {
      qt_out_abort(&out);
      goto done;
    }
    memset(&ms, 0, sizeof ms);
    ms.fp = mout.fp;
    ms.stim_s = times;
    ms.n_stim = n;
    ms.before_s = 1e-3;
    ms.after_s = eo.window_s;
    dopt.polarity = summary.polarity;
    dopt.on_event = on_mini;
    dopt.on_progress = on_minis_progress;
    dopt.user = &ms;
    ms.bar = &bar;
    qt_progress_begin(&bar, "evoked: minis", info.frames, quiet);
    qt_print_provenance(mout.fp, argc, argv);
    fprintf(mout.fp,
            "# input: %s\n# channel: %ld (%s, %s)\n# minis: events "
            "detected between the evoked responses (excluded: %g ms before "
            "to %g ms after each stimulus)\n",
            path, channel, chinfo.name, chinfo.unit, ms.before_s * 1e3,
            ms.after_s * 1e3);
    qt_event_tsv_header(mout.fp, chinfo.unit);
    st = quantal_detect_run(rec, (size_t)channel - 1, &dopt, &dsum, &diag);
    qt_progress_end(&bar);
    if (st != QUANTAL_OK) {
      qt_diag_error(&diag, st);
      code = qt_exit_code(st);
      qt_out_abort(&mout);
      qt_out_abort(&out);
      goto done;
    }
    if ((code = qt_out_commit(&mout)) != 0) {
      qt_out_abort(&out);
      goto done;
    }
  }
  if ((code = qt_out_commit(&out)) != 0)
    goto done;
  print_summary(path, chinfo.unit, resp, n, &summary, eo.alpha);
  if (minis_path != NULL)
    fprintf(stderr,
            "quantal: evoked: %s: %zu minis between the responses, mean "
            "amplitude %.4g %s\n",
            path, ms.n, ms.n ? ms.sum / (double)ms.n : NAN, chinfo.unit);
  if (plot_path != NULL)
    code = qt_plot_evoked(path, &oo, (size_t)channel - 1, output, plot_path,
                          NULL);

done:
  if (st == QUANTAL_ENOMEM) {
    qt_error("%s: out of memory", path);
    code = QT_EXIT_ANALYSIS;
  }
  free(times);
  free(pulse);
  free(resp);
  quantal_recording_close(rec);
  return code == 0 ? qt_finish_stdout(0) : code;
}
