/* cmd_simulate.c - quantal simulate: synthetic recordings with ground truth.
 * SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "cmds.h"
#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

enum {
  OPT_SEED = QT_OPT_FIRST_FREE,
  OPT_PRESET,
  OPT_AMPS,
  OPT_RATE,
  OPT_DURATION,
  OPT_CLAMP,
  OPT_SWEEPS,
  OPT_SWEEP_LEN,
  OPT_SWEEP_STIM,
  OPT_STIM_PERIOD,
  OPT_STIM_START,
  OPT_STIM_COUNT,
  OPT_STIM_TABLE,
  OPT_TRAIN,
  OPT_TRAIN_INT,
  OPT_DELAY,
  OPT_LATENCY,
  OPT_MODEL,
  OPT_N,
  OPT_P,
  OPT_M,
  OPT_CV_P,
  OPT_Q,
  OPT_Q_COND,
  OPT_CV_Q,
  OPT_Q_SHAPE,
  OPT_TAU_D,
  OPT_TAU_F,
  OPT_MINI_RATE,
  OPT_MINI_GAP,
  OPT_RISE,
  OPT_DECAY,
  OPT_KIN_JITTER,
  OPT_TAU_M,
  OPT_R_IN,
  OPT_REST,
  OPT_REVERSAL,
  OPT_HOLD,
  OPT_NOISE,
  OPT_PINK,
  OPT_PINK_FMIN,
  OPT_HUM,
  OPT_HUM_FREQ,
  OPT_HUM_HARM,
  OPT_DRIFT,
  OPT_DRIFT_TAU,
  OPT_ARTEFACT,
  OPT_ARTEFACT_TAU,
  OPT_ADC_BITS,
  OPT_ADC_RANGE,
  OPT_TTL,
  OPT_TTL_WIDTH,
  OPT_BLOCK
};

static const struct option longopts[]
    = { { "output", required_argument, NULL, 'o' },
        { "seed", required_argument, NULL, OPT_SEED },
        { "preset", required_argument, NULL, OPT_PRESET },
        { "amplitudes-only", no_argument, NULL, OPT_AMPS },
        { "rate", required_argument, NULL, OPT_RATE },
        { "duration", required_argument, NULL, OPT_DURATION },
        { "clamp", required_argument, NULL, OPT_CLAMP },
        { "sweeps", required_argument, NULL, OPT_SWEEPS },
        { "sweep-length", required_argument, NULL, OPT_SWEEP_LEN },
        { "sweep-stim", required_argument, NULL, OPT_SWEEP_STIM },
        { "stim-period", required_argument, NULL, OPT_STIM_PERIOD },
        { "stim-start", required_argument, NULL, OPT_STIM_START },
        { "stim-count", required_argument, NULL, OPT_STIM_COUNT },
        { "stim-table", required_argument, NULL, OPT_STIM_TABLE },
        { "train", required_argument, NULL, OPT_TRAIN },
        { "train-interval", required_argument, NULL, OPT_TRAIN_INT },
        { "delay", required_argument, NULL, OPT_DELAY },
        { "latency", required_argument, NULL, OPT_LATENCY },
        { "model", required_argument, NULL, OPT_MODEL },
        { "n", required_argument, NULL, OPT_N },
        { "p", required_argument, NULL, OPT_P },
        { "m", required_argument, NULL, OPT_M },
        { "cv-p", required_argument, NULL, OPT_CV_P },
        { "q", required_argument, NULL, OPT_Q },
        { "q-conductance", required_argument, NULL, OPT_Q_COND },
        { "cv-q", required_argument, NULL, OPT_CV_Q },
        { "q-shape", required_argument, NULL, OPT_Q_SHAPE },
        { "tau-d", required_argument, NULL, OPT_TAU_D },
        { "tau-f", required_argument, NULL, OPT_TAU_F },
        { "mini-rate", required_argument, NULL, OPT_MINI_RATE },
        { "mini-gap", required_argument, NULL, OPT_MINI_GAP },
        { "rise", required_argument, NULL, OPT_RISE },
        { "decay", required_argument, NULL, OPT_DECAY },
        { "kinetics-jitter", required_argument, NULL, OPT_KIN_JITTER },
        { "tau-m", required_argument, NULL, OPT_TAU_M },
        { "r-in", required_argument, NULL, OPT_R_IN },
        { "rest", required_argument, NULL, OPT_REST },
        { "reversal", required_argument, NULL, OPT_REVERSAL },
        { "hold", required_argument, NULL, OPT_HOLD },
        { "noise", required_argument, NULL, OPT_NOISE },
        { "pink", required_argument, NULL, OPT_PINK },
        { "pink-fmin", required_argument, NULL, OPT_PINK_FMIN },
        { "hum", required_argument, NULL, OPT_HUM },
        { "hum-freq", required_argument, NULL, OPT_HUM_FREQ },
        { "hum-harmonics", required_argument, NULL, OPT_HUM_HARM },
        { "drift", required_argument, NULL, OPT_DRIFT },
        { "drift-tau", required_argument, NULL, OPT_DRIFT_TAU },
        { "artefact", required_argument, NULL, OPT_ARTEFACT },
        { "artefact-tau", required_argument, NULL, OPT_ARTEFACT_TAU },
        { "adc-bits", required_argument, NULL, OPT_ADC_BITS },
        { "adc-range", required_argument, NULL, OPT_ADC_RANGE },
        { "ttl", required_argument, NULL, OPT_TTL },
        { "ttl-width", required_argument, NULL, OPT_TTL_WIDTH },
        { "block", required_argument, NULL, OPT_BLOCK },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 } };

static void
usage(FILE *fp)
{
  fprintf(
      fp,
      "Usage: quantal simulate [OPTION]... -o OUT.wav|OUT.flac\n"
      "   or: quantal simulate --amplitudes-only [OPTION]... -o OUT.tsv\n"
      "Simulate quantal release and the membrane response: a recording\n"
      "(signal + TTL channel) with OUT.truth.tsv (one row per release\n"
      "event) and OUT.truth.json (every parameter, derived m, seed).\n\n"
      "General:\n"
      "  -o, --output FILE     .wav (float32) or .flac (24-bit); .tsv or -\n"
      "                        with --amplitudes-only\n"
      "  --seed N              random seed (default: chosen and recorded)\n"
      "  --preset NAME         frog-nmj-low-ca, mammal-nmj, cns-mepsc\n"
      "  --amplitudes-only     per-stimulus amplitude table, no waveform\n"
      "  --rate HZ             sample rate [20000]\n"
      "  --duration S          recording length [10]\n"
      "  --clamp MODE          current (mV) or voltage (pA) [current]\n"
      "Stimulation:\n"
      "  --stim-period S       one stimulus every S, 0 = none [1]\n"
      "  --stim-start S        first stimulus [0.5]\n"
      "  --stim-count N        number of stimuli, 0 = until the end [0]\n"
      "  --stim-table FILE     stimulus times (s) from a table column\n"
      "                        stim_s (or the first column)\n"
      "  --train N             pulses per stimulus [1]\n"
      "  --train-interval MS   between pulses of a train [20]\n"
      "  --sweeps N            episodic: N sweeps, stimulus in each [0]\n"
      "  --sweep-length S      sweep length [0.5]\n"
      "  --sweep-stim S        stimulus time within a sweep [0.1]\n"
      "  --delay MS            synaptic delay [0.5]\n"
      "  --latency MS          mean exponential release latency [0]\n"
      "Release:\n"
      "  --model M             poisson, binomial, betabinomial [binomial]\n"
      "  --n N  --p P          release sites, probability [20, 0.3]\n"
      "  --m M                 Poisson mean quanta per stimulus [6]\n"
      "  --cv-p X              beta-binomial: CV of p [0.3]\n"
      "  --q Q                 quantal size: peak response at rest, mV or\n"
      "                        pA [0.5 mV | 20 pA]\n"
      "  --q-conductance NS    ... or its peak conductance in nS\n"
      "  --cv-q X              CV of quantal size [0.25]\n"
      "  --q-shape S           gaussian, gamma, lognormal [gaussian]\n"
      "  --tau-d MS  --tau-f MS  depletion recovery, facilitation [0, 0]\n"
      "  --mini-rate HZ        spontaneous quanta [1]\n"
      "  --mini-gap MS         no spontaneous quanta after pulses [0]\n"
      "Kinetics and membrane:\n"
      "  --rise MS  --decay MS conductance time constants [0.3, 1.5]\n"
      "  --kinetics-jitter CV  per-event CV of rise and decay [0]\n"
      "  --tau-m MS            membrane time constant [10]\n"
      "  --r-in MOHM           input resistance [1]\n"
      "  --rest MV  --reversal MV  --hold MV  [-80, 0, -80]\n"
      "Noise and artefacts (recording unit):\n"
      "  --noise SD            white noise [0.05 mV | 2 pA]\n"
      "  --pink SD  --pink-fmin HZ       1/f noise [0, 0.1]\n"
      "  --hum A  --hum-freq HZ  --hum-harmonics N   mains [0, 50, 3]\n"
      "  --drift SD  --drift-tau S       baseline drift [0, 10]\n"
      "  --artefact A  --artefact-tau MS stimulus artefact [0, 0.2]\n"
      "  --adc-bits N  --adc-range R     digitiser [off, 100 mV|10000 pA]\n"
      "  --ttl V  --ttl-width MS         TTL pulse [5, 1]\n"
      "  -h, --help            show this help and exit\n\n"
      "Exit status: 0 ok, 1 simulation failed, 2 usage or impossible\n"
      "parameters, 3 cannot write. See quantal-simulate(1).\n");
}

/* ---- presets -------------------------------------------------------------
 */

typedef struct preset {
  const char *name;
  void (*apply)(quantal_sim_options *o, double *noise_default);
} preset;

/* Frog neuromuscular junction in low Ca / high Mg: del Castillo & Katz
 * 1954 (m ~ 0.3-3), Fatt & Katz 1952 (MEPPs ~0.5 mV at ~1/s), Takeuchi &
 * Takeuchi 1960 (end-plate reversal ~ -15 mV). Values cited in
 * quantal-simulate(1). */
static void
preset_frog(quantal_sim_options *o, double *noise)
{
  o->clamp = QUANTAL_SIM_CURRENT_CLAMP;
  o->release.model = QUANTAL_RELEASE_POISSON;
  o->release.m = 1.5;
  o->release.q = 0.4;
  o->release.cv_q = 0.3;
  o->release.shape = QUANTAL_QSHAPE_GAUSSIAN;
  o->mini_rate_hz = 1.0;
  o->e_rest_v = -0.090;
  o->e_syn_v = -0.015;
  o->tau_m_s = 0.020;
  o->r_in_ohm = 0.5e6;
  o->rise_s = 0.0005;
  o->decay_s = 0.002;
  o->delay_s = 0.00075;
  o->latency_s = 0.0003;
  o->stim_period_s = 1.0;
  *noise = 0.04;
}

/* Mammalian (rat, mouse) neuromuscular junction in normal Ca: quantal
 * content 50-300 (Wood & Slater 2001), MEPPs ~0.5-1 mV. */
static void
preset_mammal(quantal_sim_options *o, double *noise)
{
  o->clamp = QUANTAL_SIM_CURRENT_CLAMP;
  o->release.model = QUANTAL_RELEASE_BINOMIAL;
  o->release.n = 200;
  o->release.p = 0.3;
  o->release.q = 0.8;
  o->release.cv_q = 0.3;
  o->release.shape = QUANTAL_QSHAPE_GAUSSIAN;
  o->mini_rate_hz = 1.0;
  o->e_rest_v = -0.075;
  o->e_syn_v = -0.005;
  o->tau_m_s = 0.004;
  o->r_in_ohm = 0.5e6;
  o->rise_s = 0.0002;
  o->decay_s = 0.001;
  o->delay_s = 0.0005;
  o->latency_s = 0.0002;
  o->stim_period_s = 1.0;
  *noise = 0.05;
}

/* Miniature EPSCs of central neurons in voltage clamp: skewed amplitude
 * distributions of a few tens of pA (Bekkers, Richerson & Stevens 1990),
 * AMPA-receptor kinetics of a few ms, no stimulation. */
static void
preset_cns(quantal_sim_options *o, double *noise)
{
  o->clamp = QUANTAL_SIM_VOLTAGE_CLAMP;
  o->release.model = QUANTAL_RELEASE_BINOMIAL;
  o->release.q = 15.0;
  o->release.cv_q = 0.45;
  o->release.shape = QUANTAL_QSHAPE_LOGNORMAL;
  o->mini_rate_hz = 2.0;
  o->v_hold_v = -0.070;
  o->e_rest_v = -0.070;
  o->e_syn_v = 0.0;
  o->rise_s = 0.0003;
  o->decay_s = 0.003;
  o->kinetics_cv = 0.15;
  o->stim_period_s = 0.0;
  *noise = 2.0;
}

static const preset presets[] = { { "frog-nmj-low-ca", preset_frog },
                                  { "mammal-nmj", preset_mammal },
                                  { "cns-mepsc", preset_cns } };

/* ---- helpers --------------------------------------------------------------
 */

static int
parse_ms(const char *opt, const char *s, double lo, double hi, double *v)
{
  if (qt_parse_double(opt, s, lo, hi, v) != 0)
    return -1;
  *v *= 1e-3;
  return 0;
}

static int
parse_seed(const char *s, uint64_t *seed)
{
  char *end;
  unsigned long long v;
  if (*s == '\0' || *s == '-' || *s == '+') {
    qt_usage_error("--seed: '%s' is not a whole number >= 0", s);
    return -1;
  }
  errno = 0;
  v = strtoull(s, &end, 10);
  if (*end != '\0' || errno == ERANGE) {
    qt_usage_error("--seed: '%s' is not a whole number >= 0", s);
    return -1;
  }
  *seed = (uint64_t)v;
  return 0;
}

static uint64_t
fresh_seed(void)
{
  /* Not reproducible by design; it is printed to the truth files so the
   * run can be repeated. Below 2^53 so JSON readers keep it exact. */
  struct timeval tv;
  uint64_t s = 0;
  FILE *f = fopen("/dev/urandom", "rb");
  if (f != NULL) {
    if (fread(&s, sizeof s, 1, f) != 1)
      s = 0;
    fclose(f);
  }
  gettimeofday(&tv, NULL);
  s ^= quantal_seed_mix((uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec,
                        (uint64_t)getpid());
  return s & ((UINT64_C(1) << 53) - 1);
}

static const char *
model_name(quantal_release_model m)
{
  switch (m) {
  case QUANTAL_RELEASE_POISSON: return "poisson";
  case QUANTAL_RELEASE_BINOMIAL: return "binomial";
  case QUANTAL_RELEASE_BETABINOMIAL: return "betabinomial";
  }
  return "?";
}

static const char *
shape_name(quantal_qshape s)
{
  switch (s) {
  case QUANTAL_QSHAPE_GAUSSIAN: return "gaussian";
  case QUANTAL_QSHAPE_GAMMA: return "gamma";
  case QUANTAL_QSHAPE_LOGNORMAL: return "lognormal";
  }
  return "?";
}

/* OUT.wav -> OUT + suffix (the extension replaced). */
static int
sibling(char *dst, size_t size, const char *path, const char *ext,
        const char *suffix)
{
  size_t n = strlen(path), e = strlen(ext);
  int k;
  if (n >= e && strcasecmp(path + n - e, ext) == 0)
    n -= e;
  k = snprintf(dst, size, "%.*s%s", (int)n, path, suffix);
  return k < 0 || (size_t)k >= size ? -1 : 0;
}

/* ---- outputs --------------------------------------------------------------
 */

typedef struct run_ctx {
  quantal_writer *w;
  FILE *truth;  /* waveform mode: OUT.truth.tsv */
  FILE *evoked; /* amplitudes mode: OUT.tsv */
  FILE *minis;  /* amplitudes mode: OUT.minis.tsv or NULL */
  size_t n_evoked, n_failures, n_spont;
  uint64_t n_quanta;
} run_ctx;

static quantal_status
on_frames(void *vctx, const double *frames, size_t n, quantal_diag *diag)
{
  run_ctx *c = vctx;
  return quantal_writer_write(c->w, frames, n, diag);
}

static void
put_num(FILE *fp, double v)
{
  if (isfinite(v))
    fprintf(fp, "%.9g", v);
  else
    fputs("nan", fp);
}

static void
count_event(run_ctx *c, const quantal_sim_event *ev)
{
  if (ev->kind == QUANTAL_SIM_EVOKED) {
    c->n_evoked++;
    if (ev->quanta == 0)
      c->n_failures++;
  } else {
    c->n_spont++;
  }
  c->n_quanta += ev->quanta;
}

static quantal_status
on_truth(void *vctx, const quantal_sim_event *ev, quantal_diag *diag)
{
  run_ctx *c = vctx;
  FILE *fp = c->truth;
  (void)diag;
  count_event(c, ev);
  fprintf(fp, "%.9f\t", ev->onset_s);
  if (isfinite(ev->peak_s))
    fprintf(fp, "%.9f", ev->peak_s);
  else
    fputs("nan", fp);
  fprintf(fp, "\t%s\t%ld\t%ld\t",
          ev->kind == QUANTAL_SIM_EVOKED ? "evoked" : "spontaneous",
          ev->stimulus < 0 ? -1L : ev->stimulus + 1,
          ev->pulse < 0 ? -1L : ev->pulse + 1);
  if (isfinite(ev->stim_s))
    fprintf(fp, "%.9f", ev->stim_s);
  else
    fputs("nan", fp);
  fprintf(fp, "\t%u\t", ev->quanta);
  put_num(fp, ev->amplitude);
  fputc('\t', fp);
  put_num(fp, ev->linear);
  fprintf(fp, "\t%.6g\t%.6g\n", ev->rise_s * 1e3, ev->decay_s * 1e3);
  return QUANTAL_OK;
}

static quantal_status
on_amplitude(void *vctx, const quantal_sim_event *ev, quantal_diag *diag)
{
  run_ctx *c = vctx;
  (void)diag;
  count_event(c, ev);
  if (ev->kind == QUANTAL_SIM_EVOKED) {
    fprintf(c->evoked, "%ld\t%ld\t%.9f\t", ev->stimulus + 1, ev->pulse + 1,
            ev->stim_s);
    put_num(c->evoked, ev->amplitude);
    fprintf(c->evoked, "\t%u\t", ev->quanta);
    put_num(c->evoked, ev->sham);
    fputc('\n', c->evoked);
  } else if (c->minis != NULL) {
    fprintf(c->minis, "%.9f\t", ev->onset_s);
    put_num(c->minis, ev->amplitude);
    fputc('\n', c->minis);
  }
  return QUANTAL_OK;
}

/* Parameters as "# name: value" comment lines (TSV) . */
static void
print_params(FILE *fp, const quantal_sim_options *o,
             const quantal_sim_derived *d, const char *preset_name)
{
  const quantal_release_params *r = &o->release;
  fprintf(fp, "# seed: %llu\n", (unsigned long long)o->seed);
  if (preset_name)
    fprintf(fp, "# preset: %s\n", preset_name);
  fprintf(fp, "# release: %s", model_name(r->model));
  if (r->model == QUANTAL_RELEASE_POISSON)
    fprintf(fp, " m=%g", r->m);
  else
    fprintf(fp, " n=%u p=%g", r->n, r->p);
  if (r->model == QUANTAL_RELEASE_BETABINOMIAL)
    fprintf(fp, " cv_p=%g", r->cv_p);
  fprintf(fp, " q=%.6g %s cv_q=%g shape=%s noise_sd=%g %s\n", d->q_amplitude,
          d->unit, r->cv_q, shape_name(r->shape), r->noise_sd, d->unit);
  fprintf(fp, "# derived: m=%g q_conductance_nS=%.6g\n", d->m,
          d->q_conductance_s * 1e9);
}

static void
json_kv(FILE *fp, const char *k, double v, int comma)
{
  fprintf(fp, "    \"%s\": ", k);
  qt_json_number(fp, v);
  fputs(comma ? ",\n" : "\n", fp);
}

static void
write_json(FILE *fp, const quantal_sim_options *o,
           const quantal_sim_derived *d, const char *preset_name,
           const char *out, const run_ctx *c, int argc, char **argv)
{
  const quantal_release_params *r = &o->release;
  int i;
  fprintf(fp, "{\n  \"quantal_version\": ");
  qt_json_string(fp, quantal_version());
  fprintf(fp, ",\n  \"command\": [");
  for (i = 0; i < argc; i++) {
    if (i)
      fputs(", ", fp);
    qt_json_string(fp, argv[i]);
  }
  fprintf(fp, "],\n  \"seed\": %llu,\n  \"preset\": ",
          (unsigned long long)o->seed);
  if (preset_name)
    qt_json_string(fp, preset_name);
  else
    fputs("null", fp);
  fprintf(fp, ",\n  \"recording\": {\n    \"file\": ");
  qt_json_string(fp, out);
  fprintf(fp,
          ",\n    \"channels\": [{\"name\": \"%s\", \"unit\": \"%s\"}, "
          "{\"name\": \"TTL\", \"unit\": \"V\"}],\n",
          d->channel, d->unit);
  json_kv(fp, "rate_hz", o->rate_hz, 1);
  fprintf(fp, "    \"frames\": %llu,\n", (unsigned long long)d->frames);
  json_kv(fp, "duration_s", d->duration_s, 1);
  json_kv(fp, "flac_scale", d->flac_scale, 0);
  fprintf(fp, "  },\n  \"derived\": {\n");
  json_kv(fp, "m", d->m, 1);
  json_kv(fp, "q_amplitude", d->q_amplitude, 1);
  json_kv(fp, "q_conductance_s", d->q_conductance_s, 1);
  json_kv(fp, "baseline", d->baseline, 1);
  fprintf(fp, "    \"unit\": \"%s\",\n    \"pulses\": %zu\n  },\n", d->unit,
          d->n_pulses);
  fprintf(fp,
          "  \"realised\": {\n    \"evoked_events\": %zu,\n"
          "    \"failures\": %zu,\n    \"spontaneous_events\": %zu,\n"
          "    \"quanta\": %llu\n  },\n",
          c->n_evoked, c->n_failures, c->n_spont,
          (unsigned long long)c->n_quanta);
  fprintf(fp, "  \"parameters\": {\n");
  fprintf(fp, "    \"clamp\": \"%s\",\n",
          o->clamp == QUANTAL_SIM_VOLTAGE_CLAMP ? "voltage" : "current");
  json_kv(fp, "rate_hz", o->rate_hz, 1);
  json_kv(fp, "duration_s", d->duration_s, 1);
  fprintf(fp, "    \"sweeps\": %zu,\n", o->n_sweeps);
  json_kv(fp, "sweep_length_s", o->sweep_s, 1);
  json_kv(fp, "sweep_stim_s", o->sweep_stim_s, 1);
  json_kv(fp, "stim_period_s", o->stim_period_s, 1);
  json_kv(fp, "stim_start_s", o->stim_start_s, 1);
  fprintf(fp, "    \"stim_count\": %zu,\n    \"stim_table_rows\": %zu,\n",
          o->stim_count, o->n_stim_times);
  fprintf(fp, "    \"train_pulses\": %u,\n", o->train_pulses);
  json_kv(fp, "train_interval_s", o->train_interval_s, 1);
  json_kv(fp, "delay_s", o->delay_s, 1);
  json_kv(fp, "latency_s", o->latency_s, 1);
  fprintf(fp, "    \"model\": \"%s\",\n    \"n\": %u,\n", model_name(r->model),
          r->n);
  json_kv(fp, "p", r->p, 1);
  json_kv(fp, "m", r->m, 1);
  json_kv(fp, "cv_p", r->cv_p, 1);
  fprintf(fp, "    \"q_given_as\": \"%s\",\n",
          o->q_is_conductance ? "conductance_s" : "amplitude");
  json_kv(fp, "q", r->q, 1);
  json_kv(fp, "cv_q", r->cv_q, 1);
  fprintf(fp, "    \"q_shape\": \"%s\",\n", shape_name(r->shape));
  json_kv(fp, "tau_d_s", o->tau_d_s, 1);
  json_kv(fp, "tau_f_s", o->tau_f_s, 1);
  json_kv(fp, "mini_rate_hz", o->mini_rate_hz, 1);
  json_kv(fp, "mini_gap_s", o->mini_gap_s, 1);
  json_kv(fp, "rise_s", o->rise_s, 1);
  json_kv(fp, "decay_s", o->decay_s, 1);
  json_kv(fp, "kinetics_cv", o->kinetics_cv, 1);
  json_kv(fp, "tau_m_s", o->tau_m_s, 1);
  json_kv(fp, "r_in_ohm", o->r_in_ohm, 1);
  json_kv(fp, "e_rest_v", o->e_rest_v, 1);
  json_kv(fp, "e_syn_v", o->e_syn_v, 1);
  json_kv(fp, "v_hold_v", o->v_hold_v, 1);
  json_kv(fp, "noise_sd", r->noise_sd, 1);
  json_kv(fp, "pink_sd", o->pink_sd, 1);
  json_kv(fp, "pink_fmin_hz", o->pink_fmin_hz, 1);
  json_kv(fp, "hum_amp", o->hum_amp, 1);
  json_kv(fp, "hum_hz", o->hum_hz, 1);
  fprintf(fp, "    \"hum_harmonics\": %u,\n", o->hum_harmonics);
  json_kv(fp, "drift_sd", o->drift_sd, 1);
  json_kv(fp, "drift_tau_s", o->drift_tau_s, 1);
  json_kv(fp, "artefact_amp", o->artefact_amp, 1);
  json_kv(fp, "artefact_tau_s", o->artefact_tau_s, 1);
  fprintf(fp, "    \"adc_bits\": %u,\n", o->adc_bits);
  json_kv(fp, "adc_range", o->adc_range, 1);
  json_kv(fp, "ttl_v", o->ttl_v, 1);
  json_kv(fp, "ttl_width_s", o->ttl_width_s, 0);
  fprintf(fp, "  }\n}\n");
}

/* ---- the command ----------------------------------------------------------
 */

typedef struct cli {
  quantal_sim_options o;
  const char *out, *preset_name, *stim_table;
  int amps_only, have_seed, have_noise, have_q, have_adc_range, have_cv_p;
  double noise_default;
  double *stim_times;
} cli;

/* Handle one option; returns 0 or an exit code. */
static int
handle(cli *c, int opt, const char *arg, const char *optname)
{
  quantal_sim_options *o = &c->o;
  double v;
  long l;
  switch (opt) {
  case 'o': c->out = arg; return 0;
  case OPT_SEED:
    c->have_seed = 1;
    return parse_seed(arg, &o->seed) ? QT_EXIT_USAGE : 0;
  case OPT_PRESET: return 0; /* applied before the other options */
  case OPT_AMPS: c->amps_only = 1; return 0;
  case OPT_RATE:
    if (qt_parse_double("--rate", arg, 100, 1e7, &o->rate_hz))
      return QT_EXIT_USAGE;
    if (o->rate_hz != floor(o->rate_hz))
      return qt_usage_error("--rate: %s is not a whole number of Hz", arg);
    return 0;
  case OPT_DURATION:
    if (qt_parse_double("--duration", arg, 0, 1e7, &o->duration_s))
      return QT_EXIT_USAGE;
    if (!(o->duration_s > 0.0))
      return qt_usage_error("--duration: must be positive");
    return 0;
  case OPT_CLAMP:
    if (strcmp(arg, "current") == 0)
      o->clamp = QUANTAL_SIM_CURRENT_CLAMP;
    else if (strcmp(arg, "voltage") == 0)
      o->clamp = QUANTAL_SIM_VOLTAGE_CLAMP;
    else
      return qt_usage_error("--clamp: '%s' is not current or voltage", arg);
    return 0;
  case OPT_SWEEPS:
    if (qt_parse_long("--sweeps", arg, 0, 10000000, &l))
      return QT_EXIT_USAGE;
    o->n_sweeps = (size_t)l;
    return 0;
  case OPT_SWEEP_LEN:
    if (qt_parse_double("--sweep-length", arg, 0, 1e5, &o->sweep_s))
      return QT_EXIT_USAGE;
    if (!(o->sweep_s > 0.0))
      return qt_usage_error("--sweep-length: must be positive");
    return 0;
  case OPT_SWEEP_STIM:
    return qt_parse_double("--sweep-stim", arg, 0, 1e5, &o->sweep_stim_s)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_STIM_PERIOD:
    return qt_parse_double("--stim-period", arg, 0, 1e7, &o->stim_period_s)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_STIM_START:
    return qt_parse_double("--stim-start", arg, 0, 1e7, &o->stim_start_s)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_STIM_COUNT:
    if (qt_parse_long("--stim-count", arg, 0, 1000000000, &l))
      return QT_EXIT_USAGE;
    o->stim_count = (size_t)l;
    return 0;
  case OPT_STIM_TABLE: c->stim_table = arg; return 0;
  case OPT_TRAIN:
    if (qt_parse_long("--train", arg, 1, 10000, &l))
      return QT_EXIT_USAGE;
    o->train_pulses = (unsigned)l;
    return 0;
  case OPT_TRAIN_INT:
    if (parse_ms("--train-interval", arg, 0, 1e6, &o->train_interval_s))
      return QT_EXIT_USAGE;
    if (!(o->train_interval_s > 0.0))
      return qt_usage_error("--train-interval: must be positive");
    return 0;
  case OPT_DELAY:
    return parse_ms("--delay", arg, 0, 1000, &o->delay_s) ? QT_EXIT_USAGE : 0;
  case OPT_LATENCY:
    return parse_ms("--latency", arg, 0, 1000, &o->latency_s) ? QT_EXIT_USAGE
                                                              : 0;
  case OPT_MODEL:
    if (strcmp(arg, "poisson") == 0)
      o->release.model = QUANTAL_RELEASE_POISSON;
    else if (strcmp(arg, "binomial") == 0)
      o->release.model = QUANTAL_RELEASE_BINOMIAL;
    else if (strcmp(arg, "betabinomial") == 0
             || strcmp(arg, "beta-binomial") == 0) {
      o->release.model = QUANTAL_RELEASE_BETABINOMIAL;
    } else
      return qt_usage_error("--model: '%s' is not poisson, binomial or "
                            "betabinomial",
                            arg);
    return 0;
  case OPT_N:
    if (qt_parse_long("--n", arg, 1, 10000000, &l))
      return QT_EXIT_USAGE;
    o->release.n = (unsigned)l;
    return 0;
  case OPT_P:
    return qt_parse_double("--p", arg, 0, 1, &o->release.p) ? QT_EXIT_USAGE
                                                            : 0;
  case OPT_M:
    return qt_parse_double("--m", arg, 0, 1e7, &o->release.m) ? QT_EXIT_USAGE
                                                              : 0;
  case OPT_CV_P:
    c->have_cv_p = 1;
    return qt_parse_double("--cv-p", arg, 0, 100, &o->release.cv_p)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_Q:
    if (qt_parse_double("--q", arg, 0, 1e9, &o->release.q))
      return QT_EXIT_USAGE;
    if (!(o->release.q > 0.0))
      return qt_usage_error("--q: must be positive");
    o->q_is_conductance = 0;
    c->have_q = 1;
    return 0;
  case OPT_Q_COND:
    if (qt_parse_double("--q-conductance", arg, 0, 1e9, &v))
      return QT_EXIT_USAGE;
    if (!(v > 0.0))
      return qt_usage_error("--q-conductance: must be positive");
    o->release.q = v * 1e-9;
    o->q_is_conductance = 1;
    c->have_q = 1;
    return 0;
  case OPT_CV_Q:
    return qt_parse_double("--cv-q", arg, 0, 10, &o->release.cv_q)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_Q_SHAPE:
    if (strcmp(arg, "gaussian") == 0)
      o->release.shape = QUANTAL_QSHAPE_GAUSSIAN;
    else if (strcmp(arg, "gamma") == 0)
      o->release.shape = QUANTAL_QSHAPE_GAMMA;
    else if (strcmp(arg, "lognormal") == 0)
      o->release.shape = QUANTAL_QSHAPE_LOGNORMAL;
    else
      return qt_usage_error("--q-shape: '%s' is not gaussian, gamma or "
                            "lognormal",
                            arg);
    return 0;
  case OPT_TAU_D:
    return parse_ms("--tau-d", arg, 0, 1e7, &o->tau_d_s) ? QT_EXIT_USAGE : 0;
  case OPT_TAU_F:
    return parse_ms("--tau-f", arg, 0, 1e7, &o->tau_f_s) ? QT_EXIT_USAGE : 0;
  case OPT_MINI_RATE:
    return qt_parse_double("--mini-rate", arg, 0, 1e5, &o->mini_rate_hz)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_MINI_GAP:
    return parse_ms("--mini-gap", arg, 0, 1e7, &o->mini_gap_s) ? QT_EXIT_USAGE
                                                               : 0;
  case OPT_RISE:
    return parse_ms("--rise", arg, 0, 1e4, &o->rise_s) ? QT_EXIT_USAGE : 0;
  case OPT_DECAY:
    if (parse_ms("--decay", arg, 0, 1e4, &o->decay_s))
      return QT_EXIT_USAGE;
    if (!(o->decay_s > 0.0))
      return qt_usage_error("--decay: must be positive");
    return 0;
  case OPT_KIN_JITTER:
    return qt_parse_double("--kinetics-jitter", arg, 0, 1, &o->kinetics_cv)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_TAU_M:
    if (parse_ms("--tau-m", arg, 0, 1e4, &o->tau_m_s))
      return QT_EXIT_USAGE;
    if (!(o->tau_m_s > 0.0))
      return qt_usage_error("--tau-m: must be positive");
    return 0;
  case OPT_R_IN:
    if (qt_parse_double("--r-in", arg, 0, 1e6, &v))
      return QT_EXIT_USAGE;
    if (!(v > 0.0))
      return qt_usage_error("--r-in: must be positive");
    o->r_in_ohm = v * 1e6;
    return 0;
  case OPT_REST:
    if (qt_parse_double("--rest", arg, -1000, 1000, &v))
      return QT_EXIT_USAGE;
    o->e_rest_v = v * 1e-3;
    return 0;
  case OPT_REVERSAL:
    if (qt_parse_double("--reversal", arg, -1000, 1000, &v))
      return QT_EXIT_USAGE;
    o->e_syn_v = v * 1e-3;
    return 0;
  case OPT_HOLD:
    if (qt_parse_double("--hold", arg, -1000, 1000, &v))
      return QT_EXIT_USAGE;
    o->v_hold_v = v * 1e-3;
    return 0;
  case OPT_NOISE:
    c->have_noise = 1;
    return qt_parse_double("--noise", arg, 0, 1e9, &o->release.noise_sd)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_PINK:
    return qt_parse_double("--pink", arg, 0, 1e9, &o->pink_sd) ? QT_EXIT_USAGE
                                                               : 0;
  case OPT_PINK_FMIN:
    return qt_parse_double("--pink-fmin", arg, 0.001, 1e6, &o->pink_fmin_hz)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_HUM:
    return qt_parse_double("--hum", arg, 0, 1e9, &o->hum_amp) ? QT_EXIT_USAGE
                                                              : 0;
  case OPT_HUM_FREQ:
    if (qt_parse_double("--hum-freq", arg, 0, 1e6, &o->hum_hz))
      return QT_EXIT_USAGE;
    if (!(o->hum_hz > 0.0))
      return qt_usage_error("--hum-freq: must be positive");
    return 0;
  case OPT_HUM_HARM:
    if (qt_parse_long("--hum-harmonics", arg, 1, 50, &l))
      return QT_EXIT_USAGE;
    o->hum_harmonics = (unsigned)l;
    return 0;
  case OPT_DRIFT:
    return qt_parse_double("--drift", arg, 0, 1e9, &o->drift_sd)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_DRIFT_TAU:
    if (qt_parse_double("--drift-tau", arg, 0, 1e7, &o->drift_tau_s))
      return QT_EXIT_USAGE;
    if (!(o->drift_tau_s > 0.0))
      return qt_usage_error("--drift-tau: must be positive");
    return 0;
  case OPT_ARTEFACT:
    return qt_parse_double("--artefact", arg, -1e9, 1e9, &o->artefact_amp)
               ? QT_EXIT_USAGE
               : 0;
  case OPT_ARTEFACT_TAU:
    if (parse_ms("--artefact-tau", arg, 0, 1000, &o->artefact_tau_s))
      return QT_EXIT_USAGE;
    if (!(o->artefact_tau_s > 0.0))
      return qt_usage_error("--artefact-tau: must be positive");
    return 0;
  case OPT_ADC_BITS:
    if (qt_parse_long("--adc-bits", arg, 8, 24, &l))
      return QT_EXIT_USAGE;
    o->adc_bits = (unsigned)l;
    return 0;
  case OPT_ADC_RANGE:
    if (qt_parse_double("--adc-range", arg, 0, 1e9, &o->adc_range))
      return QT_EXIT_USAGE;
    if (!(o->adc_range > 0.0))
      return qt_usage_error("--adc-range: must be positive");
    c->have_adc_range = 1;
    return 0;
  case OPT_TTL:
    return qt_parse_double("--ttl", arg, -100, 100, &o->ttl_v) ? QT_EXIT_USAGE
                                                               : 0;
  case OPT_TTL_WIDTH:
    if (parse_ms("--ttl-width", arg, 0, 1000, &o->ttl_width_s))
      return QT_EXIT_USAGE;
    if (!(o->ttl_width_s > 0.0))
      return qt_usage_error("--ttl-width: must be positive");
    return 0;
  case OPT_BLOCK:
    if (qt_parse_long("--block", arg, 1, 1L << 24, &l))
      return QT_EXIT_USAGE;
    o->block_frames = (size_t)l;
    return 0;
  case ':': return qt_usage_error("option '%s' needs a value", optname);
  default: return qt_usage_error("unknown option '%s'", optname);
  }
}

static int
load_stim_table(cli *c)
{
  quantal_table *t = NULL;
  quantal_diag diag;
  quantal_status st;
  long col;
  size_t i, n;
  const double *v;
  quantal_diag_clear(&diag);
  st = quantal_table_read(c->stim_table, &t, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    return QT_EXIT_IO;
  }
  col = quantal_table_find(t, "stim_s");
  if (col < 0)
    col = 0;
  n = quantal_table_rows(t);
  if (n == 0 || quantal_table_cols(t) == 0) {
    quantal_table_free(t);
    qt_error("%s: no stimulus times", c->stim_table);
    return QT_EXIT_IO;
  }
  v = quantal_table_column(t, (size_t)col);
  c->stim_times = malloc(n * sizeof *c->stim_times);
  if (c->stim_times == NULL) {
    quantal_table_free(t);
    qt_error("out of memory");
    return QT_EXIT_ANALYSIS;
  }
  for (i = 0; i < n; i++) {
    if (!isfinite(v[i]) || v[i] < 0.0 || (i > 0 && v[i] < v[i - 1])) {
      qt_error("%s: row %zu: stimulus time '%s' is not a number >= 0 and "
               ">= the one before",
               c->stim_table, i + 1, quantal_table_cell(t, i, (size_t)col));
      quantal_table_free(t);
      free(c->stim_times);
      c->stim_times = NULL;
      return QT_EXIT_IO;
    }
    c->stim_times[i] = v[i];
  }
  c->o.stim_times_s = c->stim_times;
  c->o.n_stim_times = n;
  quantal_table_free(t);
  return 0;
}

/* Remove the outputs already renamed into place (when a later one
 * fails, none must remain). */
static void
unlink_all(const char *const *paths, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++)
    if (paths[i] != NULL)
      unlink(paths[i]);
}

static int
run_amplitudes(cli *c, const quantal_sim_derived *d, int argc, char **argv)
{
  char minis_path[1100];
  qt_out oe, om;
  run_ctx rc;
  quantal_diag diag;
  quantal_status st;
  int want_minis = c->o.mini_rate_hz > 0.0, code;
  const char *done[1];

  memset(&rc, 0, sizeof rc);
  memset(&om, 0, sizeof om);
  if (want_minis && strcmp(c->out, "-") == 0)
    return qt_usage_error("--amplitudes-only to standard output cannot also "
                          "write the minis table; give --mini-rate 0 or a "
                          "file name");
  if (want_minis
      && sibling(minis_path, sizeof minis_path, c->out, ".tsv", ".minis.tsv")
             != 0) {
    qt_error("%s: file name too long", c->out);
    return QT_EXIT_IO;
  }
  code = qt_out_open(&oe, c->out);
  if (code != 0)
    return code;
  if (want_minis) {
    code = qt_out_open(&om, minis_path);
    if (code != 0) {
      qt_out_abort(&oe);
      return code;
    }
  }
  rc.evoked = oe.fp;
  rc.minis = want_minis ? om.fp : NULL;
  qt_print_provenance(oe.fp, argc, argv);
  print_params(oe.fp, &c->o, d, c->preset_name);
  fprintf(oe.fp, "# amplitude = linear sum of quantal sizes + N(0, "
                 "noise_sd^2); sham = N(0, noise_sd^2) alone\n");
  fprintf(oe.fp, "stimulus\tpulse\tstim_s\tamplitude_%s\tquanta\tsham_%s\n",
          d->unit, d->unit);
  if (want_minis) {
    qt_print_provenance(om.fp, argc, argv);
    print_params(om.fp, &c->o, d, c->preset_name);
    fprintf(om.fp, "onset_s\tamplitude_%s\n", d->unit);
  }
  quantal_diag_clear(&diag);
  st = quantal_sim_run_amplitudes(&c->o, on_amplitude, &rc, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    qt_out_abort(&oe);
    if (want_minis)
      qt_out_abort(&om);
    return qt_exit_code(st);
  }
  code = oe.is_stdout ? qt_finish_stdout(QT_EXIT_OK) : qt_out_commit(&oe);
  if (code != 0) {
    if (want_minis)
      qt_out_abort(&om);
    return code;
  }
  if (want_minis) {
    code = qt_out_commit(&om);
    if (code != 0) {
      done[0] = oe.is_stdout ? NULL : c->out;
      unlink_all(done, 1);
      return code;
    }
  }
  return QT_EXIT_OK;
}

static int
run_waveform(cli *c, const quantal_sim_derived *d, int argc, char **argv)
{
  char tsv_path[1100], json_path[1100], comment[256];
  const char *ext = NULL, *names[2], *units[2], *done[2];
  double scales[2];
  quantal_write_options wo;
  quantal_writer *w = NULL;
  qt_out ot, oj;
  run_ctx rc;
  quantal_diag diag;
  quantal_status st;
  int code;
  size_t n = strlen(c->out);

  if (n > 4 && strcasecmp(c->out + n - 4, ".wav") == 0)
    ext = ".wav";
  else if (n > 5 && strcasecmp(c->out + n - 5, ".flac") == 0)
    ext = ".flac";
  if (ext == NULL)
    return qt_usage_error("output '%s' must end in .wav or .flac (or give "
                          "--amplitudes-only)",
                          c->out);
  if (sibling(tsv_path, sizeof tsv_path, c->out, ext, ".truth.tsv") != 0
      || sibling(json_path, sizeof json_path, c->out, ext, ".truth.json")
             != 0) {
    qt_error("%s: file name too long", c->out);
    return QT_EXIT_IO;
  }
  memset(&rc, 0, sizeof rc);
  names[0] = d->channel;
  names[1] = "TTL";
  units[0] = d->unit;
  units[1] = "V";
  scales[0] = d->flac_scale;
  scales[1] = 1e-3;
  snprintf(comment, sizeof comment, "quantal simulate seed %llu",
           (unsigned long long)c->o.seed);
  memset(&wo, 0, sizeof wo);
  wo.container = QUANTAL_CONTAINER_AUTO;
  wo.rate_hz = c->o.rate_hz;
  wo.n_channels = 2;
  wo.names = names;
  wo.units = units;
  wo.scales = scales;
  wo.expected_frames = d->frames;
  wo.comment = comment;
  quantal_diag_clear(&diag);
  qt_signals_hold();
  st = quantal_writer_open(c->out, &wo, &w, &diag);
  if (st == QUANTAL_OK)
    qt_track_tmp(quantal_writer_temp_path(w));
  qt_signals_release();
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    return st == QUANTAL_EINVAL ? QT_EXIT_USAGE : QT_EXIT_IO;
  }
  code = qt_out_open(&ot, tsv_path);
  if (code != 0) {
    qt_forget_tmp(quantal_writer_temp_path(w));
    quantal_writer_abort(w);
    return code;
  }
  code = qt_out_open(&oj, json_path);
  if (code != 0) {
    qt_out_abort(&ot);
    qt_forget_tmp(quantal_writer_temp_path(w));
    quantal_writer_abort(w);
    return code;
  }
  rc.w = w;
  rc.truth = ot.fp;
  qt_print_provenance(ot.fp, argc, argv);
  fprintf(ot.fp, "# recording: %s\n", c->out);
  print_params(ot.fp, &c->o, d, c->preset_name);
  fprintf(ot.fp, "# amplitude = peak of the event's own noise-free "
                 "response, alone, from rest\n");
  fprintf(ot.fp,
          "onset_s\tpeak_s\tkind\tstimulus\tpulse\tstim_s\tquanta\t"
          "amplitude_%s\tlinear_%s\trise_ms\tdecay_ms\n",
          d->unit, d->unit);
  st = quantal_sim_run(&c->o, on_frames, on_truth, &rc, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    qt_out_abort(&ot);
    qt_out_abort(&oj);
    qt_forget_tmp(quantal_writer_temp_path(w));
    quantal_writer_abort(w);
    return qt_exit_code(st);
  }
  write_json(oj.fp, &c->o, d, c->preset_name, c->out, &rc, argc, argv);
  /* Three renames: the recording, then its truth; if a later one fails
   * the earlier ones are removed again, so none of them remains. */
  {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s", quantal_writer_temp_path(w));
    st = quantal_writer_commit(w, &diag);
    qt_forget_tmp(tmp);
  }
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    qt_out_abort(&ot);
    qt_out_abort(&oj);
    return QT_EXIT_IO;
  }
  done[0] = c->out;
  code = qt_out_commit(&ot);
  if (code != 0) {
    qt_out_abort(&oj);
    unlink_all(done, 1);
    return code;
  }
  done[1] = tsv_path;
  code = qt_out_commit(&oj);
  if (code != 0) {
    unlink_all(done, 2);
    return code;
  }
  return QT_EXIT_OK;
}

int
cmd_simulate(int argc, char **argv)
{
  cli c;
  quantal_sim_derived d;
  quantal_diag diag;
  quantal_status st;
  int opt, code;
  size_t i;

  memset(&c, 0, sizeof c);
  c.o = quantal_sim_options_default();
  c.noise_default = 0.05;
  /* First pass: --help and --preset, so that every other option
   * overrides the preset wherever it stands. */
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "+:ho:", longopts, NULL)) != -1) {
    if (opt == 'h') {
      usage(stdout);
      return qt_finish_stdout(QT_EXIT_OK);
    }
    if (opt == OPT_PRESET) {
      for (i = 0; i < sizeof presets / sizeof presets[0]; i++)
        if (strcmp(optarg, presets[i].name) == 0)
          break;
      if (i == sizeof presets / sizeof presets[0])
        return qt_usage_error("unknown preset '%s' (frog-nmj-low-ca, "
                              "mammal-nmj, cns-mepsc)",
                              optarg);
      c.preset_name = presets[i].name;
      presets[i].apply(&c.o, &c.noise_default);
    }
  }
  optind = 1;
  opterr = 0;
  while ((opt = getopt_long(argc, argv, "+:ho:", longopts, NULL)) != -1) {
    code = handle(&c, opt, optarg, argv[optind - 1]);
    if (code != 0)
      return code;
  }
  if (optind < argc)
    return qt_usage_error("unexpected argument '%s'", argv[optind]);
  if (c.out == NULL)
    return qt_usage_error("no output file given (-o OUT.wav|OUT.flac)");
  /* Units follow the clamp: defaults given in mV are rescaled for pA. */
  if (c.o.clamp == QUANTAL_SIM_VOLTAGE_CLAMP) {
    if (c.preset_name == NULL) {
      if (!c.have_q)
        c.o.release.q = 20.0;
      c.noise_default = 2.0;
    }
    if (!c.have_adc_range)
      c.o.adc_range = 10000.0;
  }
  if (!c.have_noise)
    c.o.release.noise_sd = c.noise_default;
  if (c.o.release.model == QUANTAL_RELEASE_BETABINOMIAL && !c.have_cv_p)
    c.o.release.cv_p = 0.3;
  if (!c.have_seed)
    c.o.seed = fresh_seed();
  if (c.o.decay_s <= c.o.rise_s)
    return qt_usage_error("--decay (%g ms) must be longer than --rise (%g "
                          "ms)",
                          c.o.decay_s * 1e3, c.o.rise_s * 1e3);
  if (c.stim_table != NULL) {
    code = load_stim_table(&c);
    if (code != 0)
      return code;
  }
  quantal_diag_clear(&diag);
  st = quantal_sim_prepare(&c.o, &d, &diag);
  if (st != QUANTAL_OK) {
    qt_diag_error(&diag, st);
    free(c.stim_times);
    return qt_exit_code(st);
  }
  code = c.amps_only ? run_amplitudes(&c, &d, argc, argv)
                     : run_waveform(&c, &d, argc, argv);
  free(c.stim_times);
  return code;
}
