/* sim_run.c - streaming simulation of whole recordings with ground truth.
 * SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "sim_internal.h"

#include <gsl/gsl_randist.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * The recording is made block by block. Release events (stimulus pulses
 * and spontaneous quanta) are created in time order just ahead of the
 * block that needs them; each quantum enters a priority queue with its
 * release time. The synaptic conductance is a sum of exponential modes
 * (a bi-exponential is the difference of two), advanced by one multiply
 * per mode per step, so a quantum costs O(1) to add whatever its length
 * and the work per block is O(frames + quanta) (no kernel is ever
 * re-convolved). Events with their own kinetics (kinetics_cv > 0) get
 * their own pair of modes, freed once they have decayed.
 */

/* Parallel phasors of the mains hum. */
#define HUM_LANES 8
/* Drift knots: one OU step every this many frames, linear in between. */
#define DRIFT_STRIDE 256
/* A mode pair whose conductance falls below this fraction of a quantum's
 * peak is set to zero (its effect is < 1e-7 of a quantal response). */
#define RETIRE_FRACTION 1e-7

quantal_sim_options
quantal_sim_options_default(void)
{
  quantal_sim_options o;
  memset(&o, 0, sizeof o);
  o.seed = 1;
  o.rate_hz = 20000.0;
  o.duration_s = 10.0;
  o.clamp = QUANTAL_SIM_CURRENT_CLAMP;
  o.n_sweeps = 0;
  o.sweep_s = 0.5;
  o.sweep_stim_s = 0.1;
  o.stim_period_s = 1.0;
  o.stim_start_s = 0.5;
  o.stim_count = 0;
  o.stim_times_s = NULL;
  o.n_stim_times = 0;
  o.train_pulses = 1;
  o.train_interval_s = 0.02;
  o.delay_s = 0.0005;
  o.latency_s = 0.0;
  o.release.model = QUANTAL_RELEASE_BINOMIAL;
  o.release.n = 20;
  o.release.p = 0.3;
  o.release.m = 6.0;
  o.release.cv_p = 0.0;
  o.release.q = 0.5;
  o.release.cv_q = 0.25;
  o.release.shape = QUANTAL_QSHAPE_GAUSSIAN;
  o.release.noise_sd = 0.05;
  o.q_is_conductance = 0;
  o.tau_d_s = 0.0;
  o.tau_f_s = 0.0;
  o.mini_rate_hz = 1.0;
  o.mini_gap_s = 0.0;
  o.rise_s = 0.0003;
  o.decay_s = 0.0015;
  o.kinetics_cv = 0.0;
  o.tau_m_s = 0.01;
  o.r_in_ohm = 1e6;
  o.e_rest_v = -0.080;
  o.e_syn_v = 0.0;
  o.v_hold_v = -0.080;
  o.pink_sd = 0.0;
  o.pink_fmin_hz = 0.1;
  o.hum_amp = 0.0;
  o.hum_hz = 50.0;
  o.hum_harmonics = 3;
  o.drift_sd = 0.0;
  o.drift_tau_s = 10.0;
  o.artefact_amp = 0.0;
  o.artefact_tau_s = 0.0002;
  o.adc_bits = 0;
  o.adc_range = 100.0;
  o.ttl_v = 5.0;
  o.ttl_width_s = 0.001;
  o.block_frames = 65536;
  return o;
}

static void
membrane_from(const quantal_sim_options *o, qtl_membrane *mb)
{
  mb->vclamp = o->clamp == QUANTAL_SIM_VOLTAGE_CLAMP;
  mb->tau_m = o->tau_m_s;
  mb->g_l = 1.0 / o->r_in_ohm;
  mb->c = o->tau_m_s * mb->g_l;
  mb->e_rest = o->e_rest_v;
  mb->e_syn = o->e_syn_v;
  mb->v_hold = o->v_hold_v;
  mb->out_scale = mb->vclamp ? 1e12 : 1e3;
}

/* ---- checks ------------------------------------------------------------- */

#define BAD(...) qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1, __VA_ARGS__)

static int
finite_ge(double x, double lo)
{
  return isfinite(x) && x >= lo;
}

static double
total_duration(const quantal_sim_options *o)
{
  return o->n_sweeps > 0 ? (double)o->n_sweeps * o->sweep_s : o->duration_s;
}

/* Round up to 1, 2 or 5 times a power of ten. */
static double
nice_step(double x)
{
  double p = pow(10.0, floor(log10(x))), m = x / p;
  return (m <= 1.0 ? 1.0 : m <= 2.0 ? 2.0 : m <= 5.0 ? 5.0 : 10.0) * p;
}

static quantal_status
check_options(const quantal_sim_options *o, quantal_diag *diag)
{
  quantal_status st;
  double dur;
  size_t i;

  if (!(o->rate_hz >= 100.0 && o->rate_hz <= 1e7))
    return BAD("sample rate %g Hz is outside [100, 1e7]", o->rate_hz);
  if (o->n_sweeps > 0) {
    if (!(o->sweep_s > 0.0) || !isfinite(o->sweep_s))
      return BAD("sweep length %g s must be positive", o->sweep_s);
    if (!(o->sweep_stim_s >= 0.0 && o->sweep_stim_s < o->sweep_s))
      return BAD("stimulus time in the sweep %g s must lie in [0, sweep "
                 "length)",
                 o->sweep_stim_s);
  } else if (!(o->duration_s > 0.0) || !isfinite(o->duration_s)) {
    return BAD("duration %g s must be positive", o->duration_s);
  }
  dur = total_duration(o);
  if (dur * o->rate_hz > 1e12)
    return BAD("%g s at %g Hz is more than 1e12 frames", dur, o->rate_hz);
  if (dur * o->rate_hz < 1.0)
    return BAD("%g s at %g Hz is less than one frame", dur, o->rate_hz);
  if (!finite_ge(o->stim_period_s, 0.0))
    return BAD("stimulus period %g s must be >= 0", o->stim_period_s);
  if (!finite_ge(o->stim_start_s, 0.0))
    return BAD("first stimulus time %g s must be >= 0", o->stim_start_s);
  if (o->train_pulses < 1 || o->train_pulses > 10000)
    return BAD("pulses per train %u is outside [1, 10000]", o->train_pulses);
  if (o->train_pulses > 1
      && !(o->train_interval_s > 0.0 && isfinite(o->train_interval_s)))
    return BAD("train interval %g s must be positive", o->train_interval_s);
  if (o->train_pulses > 1 && o->stim_period_s > 0.0 && o->n_sweeps == 0
      && o->n_stim_times == 0
      && !(o->stim_period_s > (o->train_pulses - 1) * o->train_interval_s))
    return BAD("stimulus period %g s is not longer than a train of %u "
               "pulses %g s apart",
               o->stim_period_s, o->train_pulses, o->train_interval_s);
  if (o->n_stim_times > 0 && o->stim_times_s == NULL)
    return BAD("no stimulus times given");
  for (i = 0; i < o->n_stim_times; i++) {
    if (!finite_ge(o->stim_times_s[i], 0.0))
      return BAD("stimulus time %g s (number %zu) must be >= 0",
                 o->stim_times_s[i], i + 1);
    if (i > 0 && o->stim_times_s[i] < o->stim_times_s[i - 1])
      return BAD("stimulus times must be sorted (number %zu, %g s, comes "
                 "before %g s)",
                 i + 1, o->stim_times_s[i], o->stim_times_s[i - 1]);
  }
  {
    /* The pulses are counted one by one in quantal_sim_prepare. */
    double est = 0.0;
    if (o->n_sweeps > 0)
      est = (double)o->n_sweeps;
    else if (o->n_stim_times > 0)
      est = (double)o->n_stim_times;
    else if (o->stim_period_s > 0.0 && dur > o->stim_start_s)
      est = floor((dur - o->stim_start_s) / o->stim_period_s) + 1.0;
    if (o->stim_count > 0 && o->n_sweeps == 0 && o->n_stim_times == 0
        && est > (double)o->stim_count)
      est = (double)o->stim_count;
    if (est * o->train_pulses > 1e8)
      return BAD("more than 1e8 stimulus pulses");
  }
  if (!finite_ge(o->delay_s, 0.0) || o->delay_s > 1.0)
    return BAD("synaptic delay %g s is outside [0, 1]", o->delay_s);
  if (!finite_ge(o->latency_s, 0.0) || o->latency_s > 1.0)
    return BAD("release latency %g s is outside [0, 1]", o->latency_s);
  st = quantal_release_params_check(&o->release, diag);
  if (st != QUANTAL_OK)
    return st;
  if (!(o->release.q > 0.0))
    return BAD("quantal size q = %g must be positive (the sign of the "
               "response follows from the reversal potential)",
               o->release.q);
  if (!finite_ge(o->tau_d_s, 0.0))
    return BAD("recovery time constant %g s must be >= 0", o->tau_d_s);
  if (!finite_ge(o->tau_f_s, 0.0))
    return BAD("facilitation time constant %g s must be >= 0", o->tau_f_s);
  if ((o->tau_d_s > 0.0 || o->tau_f_s > 0.0)
      && o->release.model == QUANTAL_RELEASE_POISSON)
    return BAD("short-term plasticity needs release sites: use the "
               "binomial or beta-binomial model");
  if (!finite_ge(o->mini_rate_hz, 0.0) || o->mini_rate_hz > o->rate_hz / 10)
    return BAD("spontaneous release rate %g Hz is outside [0, sample rate "
               "/ 10]",
               o->mini_rate_hz);
  if (!finite_ge(o->mini_gap_s, 0.0))
    return BAD("gap after stimuli %g s must be >= 0", o->mini_gap_s);
  if (!finite_ge(o->rise_s, 0.0))
    return BAD("rise time constant %g s must be >= 0", o->rise_s);
  if (!(o->decay_s > o->rise_s) || !isfinite(o->decay_s))
    return BAD("decay time constant %g s must be longer than the rise time "
               "constant %g s",
               o->decay_s, o->rise_s);
  if (o->decay_s > 10.0)
    return BAD("decay time constant %g s is above 10 s", o->decay_s);
  if (!(o->kinetics_cv >= 0.0 && o->kinetics_cv <= 1.0))
    return BAD("kinetics jitter %g is outside [0, 1]", o->kinetics_cv);
  if (!(o->tau_m_s > 0.0 && o->tau_m_s <= 10.0))
    return BAD("membrane time constant %g s is outside (0, 10]", o->tau_m_s);
  if (!(o->r_in_ohm > 0.0) || !isfinite(o->r_in_ohm))
    return BAD("input resistance %g ohm must be positive", o->r_in_ohm);
  if (!(fabs(o->e_rest_v) <= 1.0 && fabs(o->e_syn_v) <= 1.0
        && fabs(o->v_hold_v) <= 1.0))
    return BAD("potentials must lie within +-1 V");
  if (o->clamp == QUANTAL_SIM_CURRENT_CLAMP && o->e_syn_v == o->e_rest_v)
    return BAD("no driving force: the synaptic reversal potential equals "
               "the resting potential");
  if (o->clamp == QUANTAL_SIM_VOLTAGE_CLAMP && o->e_syn_v == o->v_hold_v)
    return BAD("no driving force: the holding potential equals the "
               "synaptic reversal potential");
  if (o->clamp != QUANTAL_SIM_CURRENT_CLAMP
      && o->clamp != QUANTAL_SIM_VOLTAGE_CLAMP)
    return BAD("unknown clamp mode %d", (int)o->clamp);
  if (!finite_ge(o->pink_sd, 0.0))
    return BAD("1/f noise SD %g must be >= 0", o->pink_sd);
  if (o->pink_sd > 0.0
      && !(o->pink_fmin_hz >= 0.001 && o->pink_fmin_hz < o->rate_hz / 20.0))
    return BAD("lowest 1/f noise frequency %g Hz is outside [0.001, sample "
               "rate / 20)",
               o->pink_fmin_hz);
  if (!finite_ge(o->hum_amp, 0.0))
    return BAD("hum amplitude %g must be >= 0", o->hum_amp);
  if (o->hum_harmonics < 1 || o->hum_harmonics > 50)
    return BAD("hum harmonics %u is outside [1, 50]", o->hum_harmonics);
  if (o->hum_amp > 0.0
      && !(o->hum_hz > 0.0 && o->hum_hz * o->hum_harmonics < o->rate_hz / 2.0))
    return BAD("hum at %g Hz with %u harmonics is not below half the "
               "sample rate",
               o->hum_hz, o->hum_harmonics);
  if (!finite_ge(o->drift_sd, 0.0))
    return BAD("drift SD %g must be >= 0", o->drift_sd);
  if (!(o->drift_tau_s > 0.0) || !isfinite(o->drift_tau_s))
    return BAD("drift time constant %g s must be positive", o->drift_tau_s);
  if (!isfinite(o->artefact_amp))
    return BAD("stimulus artefact amplitude must be finite");
  if (!(o->artefact_tau_s > 0.0 && o->artefact_tau_s <= 1.0))
    return BAD("stimulus artefact time constant %g s is outside (0, 1]",
               o->artefact_tau_s);
  if (o->adc_bits != 0 && (o->adc_bits < 8 || o->adc_bits > 24))
    return BAD("digitiser resolution %u bits is outside [8, 24]", o->adc_bits);
  if (!(o->adc_range > 0.0) || !isfinite(o->adc_range))
    return BAD("digitiser range %g must be positive", o->adc_range);
  if (!isfinite(o->ttl_v))
    return BAD("TTL level must be finite");
  if (!(o->ttl_width_s > 0.0 && o->ttl_width_s <= 1.0))
    return BAD("TTL width %g s is outside (0, 1]", o->ttl_width_s);
  if (o->block_frames < 1 || o->block_frames > (1u << 24))
    return BAD("block of %zu frames is outside [1, 16777216]",
               o->block_frames);
  return QUANTAL_OK;
}

/* ---- stimulus pulses ---------------------------------------------------- */

typedef struct pulse_gen {
  const quantal_sim_options *o;
  double end_s;
  size_t stim; /* index of the next pulse's stimulus */
  unsigned pulse;
} pulse_gen;

/* Time of the next pulse, INFINITY when there is none. */
static double
pulse_peek(const pulse_gen *g)
{
  const quantal_sim_options *o = g->o;
  double base, t;
  if (o->n_sweeps > 0) {
    if (g->stim >= o->n_sweeps)
      return INFINITY;
    base = (double)g->stim * o->sweep_s + o->sweep_stim_s;
  } else if (o->n_stim_times > 0) {
    if (g->stim >= o->n_stim_times)
      return INFINITY;
    base = o->stim_times_s[g->stim];
  } else if (o->stim_period_s > 0.0) {
    if (o->stim_count > 0 && g->stim >= o->stim_count)
      return INFINITY;
    base = o->stim_start_s + (double)g->stim * o->stim_period_s;
  } else {
    return INFINITY;
  }
  t = base + (double)g->pulse * o->train_interval_s;
  return t < g->end_s ? t : INFINITY;
}

static void
pulse_next(pulse_gen *g)
{
  if (++g->pulse >= g->o->train_pulses) {
    g->pulse = 0;
    g->stim++;
  }
}

quantal_status
quantal_sim_prepare(const quantal_sim_options *o, quantal_sim_derived *d,
                    quantal_diag *diag)
{
  qtl_membrane mb;
  quantal_status st;
  double t0 = 0.0, lin, bound, nominal, kmax, g;
  pulse_gen pg;

  quantal_diag_clear(diag);
  memset(d, 0, sizeof *d);
  st = check_options(o, diag);
  if (st != QUANTAL_OK)
    return st;
  membrane_from(o, &mb);
  d->unit = mb.vclamp ? "pA" : "mV";
  d->channel = mb.vclamp ? "Im" : "Vm";
  d->m = o->release.model == QUANTAL_RELEASE_POISSON
             ? o->release.m
             : o->release.n * o->release.p;
  d->duration_s = total_duration(o);
  d->frames = (uint64_t)llround(d->duration_s * o->rate_hz);
  if (d->frames == 0)
    d->frames = 1;
  if (o->q_is_conductance) {
    d->q_conductance_s = o->release.q;
    st = qtl_sim_isolated(&mb, o->rise_s, o->decay_s, &t0, &d->q_conductance_s,
                          1, &d->q_amplitude, NULL, &lin);
    if (st != QUANTAL_OK)
      return qtl_fail(diag, st, NULL, -1, -1,
                      "cannot integrate the response to one quantum");
  } else {
    st = qtl_sim_q_to_g(&mb, o->rise_s, o->decay_s, o->release.q,
                        &d->q_conductance_s, diag);
    if (st != QUANTAL_OK)
      return st;
    g = d->q_conductance_s;
    st = qtl_sim_isolated(&mb, o->rise_s, o->decay_s, &t0, &g, 1,
                          &d->q_amplitude, NULL, &lin);
    if (st != QUANTAL_OK)
      return qtl_fail(diag, st, NULL, -1, -1,
                      "cannot integrate the response to one quantum");
  }
  /* Voltage clamp holds the cell away from rest: the leak then carries
   * a steady holding current g_L (V_hold - E_rest). */
  d->baseline = mb.vclamp ? mb.g_l * (o->v_hold_v - o->e_rest_v) * 1e12
                          : o->e_rest_v * 1e3;
  pg.o = o;
  pg.end_s = d->duration_s;
  pg.stim = 0;
  pg.pulse = 0;
  while (isfinite(pulse_peek(&pg))) {
    d->n_pulses++;
    pulse_next(&pg);
  }
  /* A 24-bit FLAC step that keeps the largest plausible excursion in
   * range (+-8388607 steps), but never coarser than needed: 1e-4 mV or
   * 1e-3 pA, well below any recording's noise. */
  nominal = mb.vclamp ? 1e-3 : 1e-4;
  kmax = o->release.model == QUANTAL_RELEASE_POISSON
             ? o->release.m + 8.0 * sqrt(o->release.m) + 10.0
             : (double)o->release.n;
  bound = fabs(d->baseline)
          + 8.0 * (o->release.noise_sd + o->pink_sd + o->drift_sd)
          + 2.5 * o->hum_amp + fabs(o->artefact_amp);
  if (mb.vclamp)
    bound += 2.0 * (kmax + 5.0) * fabs(d->q_amplitude)
             * (1.0 + 6.0 * o->release.cv_q);
  else
    bound += fabs(o->e_syn_v - o->e_rest_v) * 1e3;
  if (o->adc_bits > 0 && o->adc_range > bound)
    bound = o->adc_range;
  d->flac_scale = bound / 4e6 > nominal ? nice_step(bound / 4e6) : nominal;
  return QUANTAL_OK;
}

/* ---- the engine --------------------------------------------------------- */

typedef struct mode_pair {
  double d, r;   /* decay and rise exponentials of the conductance (S) */
  double fd, fr; /* their factors per integration step */
  double hd, hr; /* per half step (midpoint conductance) */
  double rise, decay, norm;
  unsigned pending; /* quanta queued but not yet added */
  int used;
} mode_pair;

typedef struct quantum {
  double t, g;
  size_t pair;
} quantum;

typedef struct tq {
  double t, g;
} tq;

typedef struct engine {
  const quantal_sim_options *o;
  quantal_sim_derived der;
  qtl_membrane mb;
  int amp_mode; /* quantal_sim_run_amplitudes */
  double sign;  /* of the response */
  double q_abs; /* amplitude mode: |q| in the recording's unit */
  gsl_rng *r_counts, *r_sizes, *r_noise, *r_minis, *r_lat, *r_kin, *r_white,
      *r_pink, *r_drift, *r_plast, *r_sham;
  pulse_gen pg;
  double next_pulse, next_mini, last_pulse, latest_nominal;
  /* plasticity */
  int have_pulse;
  double u_prev; /* facilitation u at the last pulse */
  unsigned occupied;
  /* quanta queue (binary min-heap on t) */
  quantum *heap;
  size_t n_heap, cap_heap;
  /* mode pairs: [0] shared by all events with the default kinetics */
  mode_pair *pairs;
  size_t n_pairs, cap_pairs;
  size_t *active; /* indices of pairs with a nonzero state */
  size_t n_active, cap_active;
  double retire_g;
  /* integration */
  double dt;
  int substeps;
  double h, e_m_sample;
  double u; /* V - E_rest, volts (current clamp) */
  /* per-event scratch */
  tq *ev_q;
  size_t cap_ev_q;
  /* truth events waiting to be emitted in onset order */
  quantal_sim_event *evbuf;
  size_t n_ev, cap_ev;
  quantal_sim_event_fn on_event;
  void *ctx;
  /* pulses whose TTL and artefact are still to be written */
  double *pend_pulse;
  size_t n_pend, cap_pend, art_next;
  double art, art_f;
  /* noise */
  qtl_pink pink;
  double hum_phase[51];
  double drift_x0, drift_x1, drift_rho;
  uint64_t drift_k; /* knot index of drift_x0 */
  /* buffers */
  double *sig, *tmp, *frames;
} engine;

static void
engine_free(engine *e)
{
  gsl_rng_free(e->r_counts);
  gsl_rng_free(e->r_sizes);
  gsl_rng_free(e->r_noise);
  gsl_rng_free(e->r_sham);
  gsl_rng_free(e->r_minis);
  gsl_rng_free(e->r_lat);
  gsl_rng_free(e->r_kin);
  gsl_rng_free(e->r_white);
  gsl_rng_free(e->r_pink);
  gsl_rng_free(e->r_drift);
  gsl_rng_free(e->r_plast);
  free(e->heap);
  free(e->pairs);
  free(e->active);
  free(e->ev_q);
  free(e->evbuf);
  free(e->pend_pulse);
  free(e->sig);
  free(e->tmp);
  free(e->frames);
}

/* Grow *p (of *cap elements of size sz) to hold at least need. */
static int
grow(void *pp, size_t *cap, size_t need, size_t sz)
{
  void **p = pp, *q;
  size_t nc = *cap ? *cap : 16;
  if (need <= *cap)
    return 0;
  while (nc < need)
    nc *= 2;
  q = realloc(*p, nc * sz);
  if (q == NULL)
    return -1;
  *p = q;
  *cap = nc;
  return 0;
}

static void
pair_setup(engine *e, mode_pair *pr, double rise, double decay)
{
  double h = e->mb.vclamp ? e->dt : e->h;
  memset(pr, 0, sizeof *pr);
  pr->rise = rise;
  pr->decay = decay;
  pr->norm = qtl_sim_biexp_norm(rise, decay);
  pr->fd = exp(-h / decay);
  pr->fr = rise > 0.0 ? exp(-h / rise) : 0.0;
  pr->hd = exp(-0.5 * h / decay);
  pr->hr = rise > 0.0 ? exp(-0.5 * h / rise) : 0.0;
  pr->used = 1;
}

static quantal_status
engine_init(engine *e, const quantal_sim_options *o, int amp_mode,
            quantal_diag *diag)
{
  quantal_status st;
  double fastest;
  unsigned h;

  memset(e, 0, sizeof *e);
  e->o = o;
  e->amp_mode = amp_mode;
  st = quantal_sim_prepare(o, &e->der, diag);
  if (st != QUANTAL_OK)
    return st;
  if (!amp_mode && e->der.m > 1e5)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "%g quanta per pulse on average is too many for a "
                    "waveform (at most 1e5); use the amplitudes only",
                    e->der.m);
  membrane_from(o, &e->mb);
  e->sign = e->der.q_amplitude < 0.0 ? -1.0 : 1.0;
  e->q_abs = fabs(e->der.q_amplitude);
  e->r_counts = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_COUNTS));
  e->r_sizes = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_SIZES));
  e->r_noise = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_NOISE));
  e->r_minis = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_MINIS));
  e->r_lat = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_LATENCY));
  e->r_kin = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_KINETICS));
  e->r_white = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_WHITE));
  e->r_pink = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_PINK));
  e->r_drift = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_DRIFT));
  e->r_plast = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_PLASTICITY));
  e->r_sham = qtl_rng_alloc(quantal_seed_mix(o->seed, QTL_STREAM_SHAM));
  if (!e->r_counts || !e->r_sizes || !e->r_noise || !e->r_minis || !e->r_lat
      || !e->r_kin || !e->r_white || !e->r_pink || !e->r_drift || !e->r_plast
      || !e->r_sham)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  e->pg.o = o;
  e->pg.end_s = e->der.duration_s;
  e->next_pulse = pulse_peek(&e->pg);
  e->next_mini = o->mini_rate_hz > 0.0
                     ? gsl_ran_exponential(e->r_minis, 1.0 / o->mini_rate_hz)
                     : INFINITY;
  e->last_pulse = -INFINITY;
  e->latest_nominal = -INFINITY;
  e->occupied = o->release.n;
  e->dt = 1.0 / o->rate_hz;
  /* Sub-steps of the membrane equation: at least 16 per fastest time
   * constant (rise, decay or tau_m, shortened for kinetics jitter), at
   * least 2 per sample; the midpoint exponential integrator then errs by
   * < (1/16)^2 / 12 = 3e-4 relative per time constant. */
  fastest = o->decay_s;
  if (o->rise_s > 0.0 && o->rise_s < fastest)
    fastest = o->rise_s;
  if (o->tau_m_s < fastest)
    fastest = o->tau_m_s;
  fastest /= 1.0 + 3.0 * o->kinetics_cv;
  e->substeps = (int)ceil(16.0 * e->dt / fastest);
  if (e->substeps < 2)
    e->substeps = 2;
  if (e->substeps > 256)
    e->substeps = 256;
  e->h = e->dt / e->substeps;
  e->e_m_sample = exp(-e->dt / o->tau_m_s);
  e->retire_g = RETIRE_FRACTION * e->der.q_conductance_s;
  if (grow(&e->pairs, &e->cap_pairs, 1, sizeof *e->pairs) != 0
      || grow(&e->active, &e->cap_active, 1, sizeof *e->active) != 0)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  pair_setup(e, &e->pairs[0], o->rise_s, o->decay_s);
  e->n_pairs = 1;
  if (!amp_mode) {
    size_t bf = o->block_frames;
    e->sig = malloc(bf * sizeof *e->sig);
    e->tmp = malloc(bf * sizeof *e->tmp);
    e->frames = malloc(2 * bf * sizeof *e->frames);
    if (!e->sig || !e->tmp || !e->frames)
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    if (o->pink_sd > 0.0) {
      /* Start the 1/f filters in their stationary state by running them
       * for five times their slowest time constant first. */
      uint64_t burn
          = (uint64_t)ceil(5.0 * o->rate_hz / (2.0 * M_PI * o->pink_fmin_hz));
      st = qtl_pink_init(&e->pink, o->pink_fmin_hz, o->rate_hz, o->pink_sd,
                         diag);
      if (st != QUANTAL_OK)
        return st;
      while (burn > 0) {
        size_t m = burn > bf ? bf : (size_t)burn;
        qtl_gauss_fill(e->r_pink, e->tmp, m);
        qtl_pink_run(&e->pink, e->tmp, e->tmp, m);
        burn -= m;
      }
    }
    for (h = 0; h <= o->hum_harmonics && h <= 50; h++)
      e->hum_phase[h] = 2.0 * M_PI * gsl_rng_uniform(e->r_drift);
    /* Ornstein-Uhlenbeck drift, started from its stationary law. */
    e->drift_rho = exp(-(double)DRIFT_STRIDE * e->dt / o->drift_tau_s);
    e->drift_x0 = o->drift_sd * gsl_ran_gaussian_ziggurat(e->r_drift, 1.0);
    e->drift_x1 = e->drift_rho * e->drift_x0
                  + o->drift_sd * sqrt(1.0 - e->drift_rho * e->drift_rho)
                        * gsl_ran_gaussian_ziggurat(e->r_drift, 1.0);
    e->drift_k = 0;
    e->art_f = exp(-e->dt / o->artefact_tau_s);
  }
  return QUANTAL_OK;
}

/* ---- quanta queue ------------------------------------------------------- */

static int
heap_push(engine *e, double t, double g, size_t pair)
{
  size_t i;
  if (grow(&e->heap, &e->cap_heap, e->n_heap + 1, sizeof *e->heap) != 0)
    return -1;
  i = e->n_heap++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (e->heap[parent].t <= t)
      break;
    e->heap[i] = e->heap[parent];
    i = parent;
  }
  e->heap[i].t = t;
  e->heap[i].g = g;
  e->heap[i].pair = pair;
  return 0;
}

static quantum
heap_pop(engine *e)
{
  quantum top = e->heap[0], last = e->heap[--e->n_heap];
  size_t i = 0, n = e->n_heap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && e->heap[c + 1].t < e->heap[c].t)
      c++;
    if (last.t <= e->heap[c].t)
      break;
    e->heap[i] = e->heap[c];
    i = c;
  }
  if (n > 0)
    e->heap[i] = last;
  return top;
}

static int
activate(engine *e, size_t pair)
{
  size_t i;
  for (i = 0; i < e->n_active; i++)
    if (e->active[i] == pair)
      return 0;
  if (grow(&e->active, &e->cap_active, e->n_active + 1, sizeof *e->active)
      != 0)
    return -1;
  e->active[e->n_active++] = pair;
  return 0;
}

/* Add every queued quantum released before t_b to its mode pair, as it
 * is at t_b (it has decayed for t_b - t since release). */
static int
inject_until(engine *e, double t_b)
{
  while (e->n_heap > 0 && e->heap[0].t < t_b) {
    quantum q = heap_pop(e);
    mode_pair *pr = &e->pairs[q.pair];
    double a = q.g * pr->norm, age = t_b - q.t;
    pr->d += a * exp(-age / pr->decay);
    if (pr->rise > 0.0)
      pr->r += a * exp(-age / pr->rise);
    pr->pending--;
    if (activate(e, q.pair) != 0)
      return -1;
  }
  return 0;
}

/* Drop pairs whose conductance has decayed to nothing. */
static void
retire(engine *e)
{
  size_t i = 0;
  while (i < e->n_active) {
    mode_pair *pr = &e->pairs[e->active[i]];
    if (fabs(pr->d) < e->retire_g && fabs(pr->r) < e->retire_g) {
      /* Quanta still queued re-activate the pair when they arrive; it is
       * free for another event only when none are left. */
      pr->d = pr->r = 0.0;
      if (e->active[i] != 0 && pr->pending == 0)
        pr->used = 0;
      e->active[i] = e->active[--e->n_active];
    } else {
      i++;
    }
  }
}

static int
pair_alloc(engine *e, double rise, double decay, size_t *idx)
{
  size_t i;
  for (i = 1; i < e->n_pairs; i++)
    if (!e->pairs[i].used)
      break;
  if (i == e->n_pairs) {
    if (grow(&e->pairs, &e->cap_pairs, e->n_pairs + 1, sizeof *e->pairs) != 0)
      return -1;
    e->n_pairs++;
  }
  pair_setup(e, &e->pairs[i], rise, decay);
  *idx = i;
  return 0;
}

/* ---- truth events ------------------------------------------------------- */

static quantal_status
emit_ready(engine *e, double upto, quantal_diag *diag)
{
  size_t i = 0, j;
  quantal_status st = QUANTAL_OK;
  while (i < e->n_ev && e->evbuf[i].onset_s <= upto) {
    if (e->on_event != NULL && e->evbuf[i].onset_s < e->der.duration_s) {
      st = e->on_event(e->ctx, &e->evbuf[i], diag);
      if (st != QUANTAL_OK)
        break;
    }
    i++;
  }
  for (j = i; j < e->n_ev; j++)
    e->evbuf[j - i] = e->evbuf[j];
  e->n_ev -= i;
  return st;
}

static int
queue_event(engine *e, const quantal_sim_event *ev)
{
  size_t i;
  if (grow(&e->evbuf, &e->cap_ev, e->n_ev + 1, sizeof *e->evbuf) != 0)
    return -1;
  i = e->n_ev;
  while (i > 0 && e->evbuf[i - 1].onset_s > ev->onset_s) {
    e->evbuf[i] = e->evbuf[i - 1];
    i--;
  }
  e->evbuf[i] = *ev;
  e->n_ev++;
  return 0;
}

static int
cmp_tq(const void *a, const void *b)
{
  double x = ((const tq *)a)->t, y = ((const tq *)b)->t;
  return x < y ? -1 : x > y;
}

/* ---- release ------------------------------------------------------------ */

/* Quanta released by the pulse at t. Without plasticity this is
 * qtl_sim_count on the counts stream, the same draws as
 * quantal_sim_amplitudes. With it, the stochastic depletion/facilitation
 * model of Gontier & Pfister (2020, Front Comput Neurosci 14:558477): n
 * sites, each holding at most one vesicle; between pulses an empty site
 * refills with probability 1 - exp(-dt / tau_D); at a pulse each filled
 * site releases with probability u, where u follows Tsodyks-Markram
 * facilitation u_k = U + u_{k-1} (1 - U) exp(-dt / tau_F) (Markram, Wang
 * & Tsodyks 1998, PNAS 95:5323) with U = p. Its mean field is the
 * Tsodyks-Markram model (Tsodyks & Markram 1997, PNAS 94:719). With the
 * beta-binomial, the pulse's drawn p is scaled by u / U (at most 1). */
static unsigned
release_count(engine *e, double t)
{
  const quantal_sim_options *o = e->o;
  const quantal_release_params *rp = &o->release;
  double dt = e->have_pulse ? t - e->last_pulse : INFINITY, U, u, a, b, pk;
  unsigned k;
  if (o->tau_d_s == 0.0 && o->tau_f_s == 0.0)
    return qtl_sim_count(e->r_counts, rp);
  U = rp->p;
  u = U;
  if (o->tau_f_s > 0.0 && e->have_pulse)
    u = U + e->u_prev * (1.0 - U) * exp(-dt / o->tau_f_s);
  if (o->tau_d_s > 0.0) {
    if (e->have_pulse && e->occupied < rp->n)
      e->occupied += gsl_ran_binomial(e->r_plast, -expm1(-dt / o->tau_d_s),
                                      rp->n - e->occupied);
  } else {
    e->occupied = rp->n;
  }
  pk = u;
  if (rp->model == QUANTAL_RELEASE_BETABINOMIAL
      && qtl_sim_beta_ab(rp->p, rp->cv_p, &a, &b) > 0) {
    pk = gsl_ran_beta(e->r_counts, a, b) * u / U;
    if (pk > 1.0)
      pk = 1.0;
  }
  k = gsl_ran_binomial(e->r_counts, pk, e->occupied);
  e->occupied -= k;
  e->u_prev = u;
  return k;
}

/* ---- event creation ----------------------------------------------------- */

/* Kinetics of one event: the defaults, each scaled by its own log-normal
 * factor of mean 1 and CV kinetics_cv. A decay drawn shorter than 1.05
 * times the rise is set to 1.05 times the rise. */
static void
event_kinetics(engine *e, double *rise, double *decay)
{
  const quantal_sim_options *o = e->o;
  *rise = o->rise_s;
  *decay = o->decay_s;
  if (o->kinetics_cv > 0.0) {
    double s2 = log1p(o->kinetics_cv * o->kinetics_cv), s = sqrt(s2);
    *rise *= exp(-0.5 * s2 + s * gsl_ran_gaussian_ziggurat(e->r_kin, 1.0));
    *decay *= exp(-0.5 * s2 + s * gsl_ran_gaussian_ziggurat(e->r_kin, 1.0));
    if (*decay < 1.05 * *rise)
      *decay = 1.05 * *rise;
  }
}

#define NOMEM() qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory")

/* Queue k quanta (e->ev_q, sorted) with the given kinetics; fills the
 * event's truth. */
static quantal_status
launch(engine *e, size_t k, double rise, double decay, quantal_sim_event *ev,
       quantal_diag *diag)
{
  quantal_status st;
  size_t pair = 0, j;
  double *t = NULL, *g = NULL, peak, tpk, lin;
  if (k == 0)
    return QUANTAL_OK;
  if (rise != e->o->rise_s || decay != e->o->decay_s) {
    if (pair_alloc(e, rise, decay, &pair) != 0)
      return NOMEM();
  }
  t = malloc(2 * k * sizeof *t);
  if (t == NULL)
    return NOMEM();
  g = t + k;
  for (j = 0; j < k; j++) {
    t[j] = e->ev_q[j].t;
    g[j] = e->ev_q[j].g;
    if (heap_push(e, t[j], g[j], pair) != 0) {
      free(t);
      return NOMEM();
    }
    e->pairs[pair].pending++;
  }
  st = qtl_sim_isolated(&e->mb, rise, decay, t, g, k, &peak, &tpk, &lin);
  free(t);
  if (st != QUANTAL_OK)
    return qtl_fail(diag, st, NULL, -1, -1,
                    "cannot integrate the response to an event of %zu "
                    "quanta at %g s",
                    k, ev->onset_s);
  ev->amplitude = peak;
  ev->linear = lin;
  ev->peak_s = tpk;
  return QUANTAL_OK;
}

static quantal_status
make_pulse(engine *e, double t, quantal_diag *diag)
{
  const quantal_sim_options *o = e->o;
  quantal_sim_event ev;
  unsigned k = release_count(e, t), j;
  double rise, decay;

  memset(&ev, 0, sizeof ev);
  ev.kind = QUANTAL_SIM_EVOKED;
  ev.stimulus = (long)e->pg.stim;
  ev.pulse = (long)e->pg.pulse;
  ev.stim_s = t;
  ev.quanta = k;
  ev.onset_s = t + o->delay_s;
  ev.peak_s = NAN;
  ev.sham = NAN;
  e->last_pulse = t;
  e->have_pulse = 1;
  if (e->amp_mode) {
    double sum = 0.0;
    /* The same draws, in the same order, as quantal_sim_amplitudes. */
    for (j = 0; j < k; j++)
      sum += qtl_sim_quantum(e->r_sizes, e->q_abs, o->release.cv_q,
                             o->release.shape);
    ev.linear = e->sign * sum;
    ev.amplitude
        = ev.linear
          + (o->release.noise_sd > 0.0
                 ? gsl_ran_gaussian_ziggurat(e->r_noise, o->release.noise_sd)
                 : 0.0);
    /* From a stream of its own: the amplitudes are those of a run
     * without shams. */
    ev.sham = o->release.noise_sd > 0.0
                  ? gsl_ran_gaussian_ziggurat(e->r_sham, o->release.noise_sd)
                  : 0.0;
    ev.peak_s = ev.onset_s;
    ev.rise_s = o->rise_s;
    ev.decay_s = o->decay_s;
    return queue_event(e, &ev) == 0 ? QUANTAL_OK : NOMEM();
  }
  if (grow(&e->ev_q, &e->cap_ev_q, k, sizeof *e->ev_q) != 0)
    return NOMEM();
  for (j = 0; j < k; j++) {
    /* Each quantum is released after the synaptic delay plus its own
     * latency, exponentially distributed: the decline of the release
     * rate after its peak (Katz & Miledi 1965, Proc R Soc B 161:483), so
     * a large EPP is an asynchronous sum of quanta. */
    e->ev_q[j].g = qtl_sim_quantum(e->r_sizes, e->der.q_conductance_s,
                                   o->release.cv_q, o->release.shape);
    e->ev_q[j].t
        = t + o->delay_s
          + (o->latency_s > 0.0 ? gsl_ran_exponential(e->r_lat, o->latency_s)
                                : 0.0);
  }
  event_kinetics(e, &rise, &decay);
  ev.rise_s = rise;
  ev.decay_s = decay;
  if (k > 1)
    qsort(e->ev_q, k, sizeof *e->ev_q, cmp_tq);
  if (k > 0) {
    quantal_status st;
    ev.onset_s = e->ev_q[0].t;
    st = launch(e, k, rise, decay, &ev, diag);
    if (st != QUANTAL_OK)
      return st;
  }
  if (grow(&e->pend_pulse, &e->cap_pend, e->n_pend + 1, sizeof *e->pend_pulse)
      != 0)
    return NOMEM();
  e->pend_pulse[e->n_pend++] = t;
  return queue_event(e, &ev) == 0 ? QUANTAL_OK : NOMEM();
}

static quantal_status
make_mini(engine *e, double t, quantal_diag *diag)
{
  const quantal_sim_options *o = e->o;
  quantal_sim_event ev;
  double size, noise = 0.0, rise = o->rise_s, decay = o->decay_s;
  int keep;

  /* One quantum, from the same size distribution as evoked quanta (del
   * Castillo & Katz 1954, J Physiol 124:560), at Poisson times (Fatt &
   * Katz 1952, J Physiol 117:109). */
  size = qtl_sim_quantum(e->r_minis,
                         e->amp_mode ? e->q_abs : e->der.q_conductance_s,
                         o->release.cv_q, o->release.shape);
  if (e->amp_mode && o->release.noise_sd > 0.0)
    noise = gsl_ran_gaussian_ziggurat(e->r_minis, o->release.noise_sd);
  if (!e->amp_mode)
    event_kinetics(e, &rise, &decay);
  e->next_mini = t + gsl_ran_exponential(e->r_minis, 1.0 / o->mini_rate_hz);
  keep = !(t - e->last_pulse < o->mini_gap_s);
  if (!keep)
    return QUANTAL_OK;
  memset(&ev, 0, sizeof ev);
  ev.kind = QUANTAL_SIM_SPONTANEOUS;
  ev.onset_s = t;
  ev.peak_s = t;
  ev.stimulus = -1;
  ev.pulse = -1;
  ev.stim_s = NAN;
  ev.sham = NAN;
  ev.quanta = 1;
  ev.rise_s = rise;
  ev.decay_s = decay;
  if (e->amp_mode) {
    ev.linear = e->sign * size;
    ev.amplitude = ev.linear + noise;
  } else {
    quantal_status st;
    if (grow(&e->ev_q, &e->cap_ev_q, 1, sizeof *e->ev_q) != 0)
      return NOMEM();
    e->ev_q[0].t = t;
    e->ev_q[0].g = size;
    st = launch(e, 1, rise, decay, &ev, diag);
    if (st != QUANTAL_OK)
      return st;
  }
  return queue_event(e, &ev) == 0 ? QUANTAL_OK : NOMEM();
}

/* Create every event whose nominal time (pulse or spontaneous release) is
 * before t_limit; all their quanta are then queued, and truth events that
 * no later event can precede are emitted. */
static quantal_status
create_until(engine *e, double t_limit, quantal_diag *diag)
{
  quantal_status st;
  for (;;) {
    double tn = e->next_pulse <= e->next_mini ? e->next_pulse : e->next_mini;
    if (!(tn < t_limit))
      break;
    if (e->next_pulse <= e->next_mini) {
      st = make_pulse(e, tn, diag);
      pulse_next(&e->pg);
      e->next_pulse = pulse_peek(&e->pg);
    } else {
      st = make_mini(e, tn, diag);
    }
    if (st != QUANTAL_OK)
      return st;
    /* Later events have nominal times >= tn and onsets >= those. */
    st = emit_ready(e, tn, diag);
    if (st != QUANTAL_OK)
      return st;
  }
  return QUANTAL_OK;
}

/* ---- waveform synthesis ------------------------------------------------- */

/* sig[i0..i1) = base + 1e3 u(t) while u (volts) relaxes by em per
 * sample; returns i1. Below 1e-12 V (1e-9 mV, far under the float32
 * resolution of any recording) u is set to 0, so long quiet stretches
 * become a plain fill. One multiplication per sample in sequence, so the
 * result does not depend on where blocks begin. */
static size_t
relax(double *sig, size_t i, size_t i1, double base, double *pu, double em)
{
  double u = *pu;
  for (; i < i1 && u != 0.0; i++) {
    sig[i] = base + u * 1e3;
    u *= em;
    if (fabs(u) < 1e-12)
      u = 0.0;
  }
  for (; i < i1; i++)
    sig[i] = base;
  *pu = u;
  return i;
}

/* First sample index i >= i0 of the block at n0 whose step reaches the
 * next queued quantum (heap[0].t < (n0 + i + 1) / rate, the exact test of
 * the per-sample loop), or n when none does in the block. */
static size_t
quiet_until(const engine *e, uint64_t n0, size_t i0, size_t n)
{
  double t, rate = e->o->rate_hz, j;
  if (e->n_active > 0)
    return i0;
  if (e->n_heap == 0)
    return n;
  t = e->heap[0].t;
  j = floor(t * rate);
  if (j < (double)(n0 + i0 + 1))
    j = (double)(n0 + i0 + 1);
  while (j > (double)(n0 + i0 + 1) && t < (j - 1.0) / rate)
    j -= 1.0;
  while (!(t < j / rate))
    j += 1.0;
  /* j is the smallest boundary index with t < j / rate: samples up to
   * j - 2 step without reaching the quantum. */
  if (j - 1.0 - (double)n0 >= (double)n)
    return n;
  return (size_t)(j - 1.0 - (double)n0);
}

static quantal_status
membrane_block(engine *e, uint64_t n0, size_t n, quantal_diag *diag)
{
  const double rate = e->o->rate_hz;
  double *sig = e->sig;
  size_t i, a;
  int s, S = e->substeps;

  if (e->mb.vclamp) {
    double drive = (e->mb.v_hold - e->mb.e_syn) * e->mb.out_scale,
           base = e->der.baseline;
    for (i = 0; i < n; i++) {
      double ti1 = (double)(n0 + i + 1) / rate, g = 0.0;
      size_t q = quiet_until(e, n0, i, n);
      if (q > i) {
        /* No conductance until sample q: the baseline. */
        for (; i < q; i++)
          sig[i] = base;
        if (i == n)
          break;
        ti1 = (double)(n0 + i + 1) / rate;
      }
      for (a = 0; a < e->n_active; a++) {
        mode_pair *pr = &e->pairs[e->active[a]];
        g += pr->d - pr->r;
        pr->d *= pr->fd;
        pr->r *= pr->fr;
      }
      sig[i] = base + g * drive;
      if (inject_until(e, ti1) != 0)
        return NOMEM();
      retire(e);
    }
    return QUANTAL_OK;
  }
  {
    const double gl = e->mb.g_l, c = e->mb.c, h = e->h,
                 de = e->mb.e_syn - e->mb.e_rest, base = e->der.baseline;
    double u = e->u;
    for (i = 0; i < n; i++) {
      double ti;
      size_t q = quiet_until(e, n0, i, n);
      if (q > i) {
        /* No synaptic conductance until sample q: exact passive
         * relaxation towards rest. */
        i = relax(sig, i, q, base, &u, e->e_m_sample);
        if (i == n)
          break;
      }
      ti = (double)(n0 + i);
      sig[i] = base + u * 1e3;
      for (s = 1; s <= S; s++) {
        double gm = 0.0, gt, uinf;
        for (a = 0; a < e->n_active; a++) {
          mode_pair *pr = &e->pairs[e->active[a]];
          gm += pr->d * pr->hd - pr->r * pr->hr;
          pr->d *= pr->fd;
          pr->r *= pr->fr;
        }
        /* C du/dt = -g_L u - g (u - (E_syn - E_rest)), solved exactly
         * over the sub-step for g fixed at its midpoint value
         * (exponential Euler with midpoint conductance, 2nd order). */
        gt = gl + gm;
        uinf = gm * de / gt;
        u = uinf + (u - uinf) * exp(-gt / c * h);
        if (inject_until(e, (ti + (double)s / S) / rate) != 0)
          return NOMEM();
      }
      retire(e);
    }
    e->u = u;
  }
  return QUANTAL_OK;
}

static void
noise_block(engine *e, uint64_t n0, size_t n)
{
  const quantal_sim_options *o = e->o;
  const double rate = o->rate_hz;
  double *sig = e->sig, *tmp = e->tmp;
  size_t i;
  unsigned h;

  if (o->release.noise_sd > 0.0) {
    double sd = o->release.noise_sd;
    qtl_gauss_fill(e->r_white, tmp, n);
    for (i = 0; i < n; i++)
      sig[i] += sd * tmp[i];
  }
  if (o->pink_sd > 0.0) {
    qtl_gauss_fill(e->r_pink, tmp, n);
    qtl_pink_run(&e->pink, tmp, tmp, n);
    for (i = 0; i < n; i++)
      sig[i] += tmp[i];
  }
  if (o->hum_amp > 0.0) {
    for (h = 1; h <= o->hum_harmonics; h++) {
      /* Rotating phasors, re-anchored every block from the exact phase
       * so rounding cannot accumulate over hours; HUM_LANES of them,
       * each for every HUM_LANES-th sample, run in parallel. */
      double f = h * o->hum_hz, cyc = fmod(f * (double)n0 / rate, 1.0),
             ph = 2.0 * M_PI * cyc + e->hum_phase[h],
             w = 2.0 * M_PI * f / rate, cw = cos(HUM_LANES * w),
             sw = sin(HUM_LANES * w), amp = o->hum_amp / h, c[HUM_LANES],
             s[HUM_LANES];
      int l;
      for (l = 0; l < HUM_LANES; l++) {
        c[l] = cos(ph + l * w);
        s[l] = sin(ph + l * w);
      }
      for (i = 0; i + HUM_LANES <= n; i += HUM_LANES)
        for (l = 0; l < HUM_LANES; l++) {
          double c2 = c[l] * cw - s[l] * sw;
          sig[i + l] += amp * s[l];
          s[l] = s[l] * cw + c[l] * sw;
          c[l] = c2;
        }
      for (l = 0; i < n; i++, l++)
        sig[i] += amp * s[l];
    }
  }
  if (o->drift_sd > 0.0) {
    double k_sd = o->drift_sd * sqrt(1.0 - e->drift_rho * e->drift_rho);
    for (i = 0; i < n; i++) {
      uint64_t N = n0 + i, k = N / DRIFT_STRIDE;
      while (k > e->drift_k) {
        e->drift_x0 = e->drift_x1;
        e->drift_x1 = e->drift_rho * e->drift_x1
                      + k_sd * gsl_ran_gaussian_ziggurat(e->r_drift, 1.0);
        e->drift_k++;
      }
      sig[i] += e->drift_x0
                + (e->drift_x1 - e->drift_x0) * (double)(N % DRIFT_STRIDE)
                      / DRIFT_STRIDE;
    }
  }
  if (o->artefact_amp != 0.0) {
    /* A stimulus artefact decaying exponentially from the pulse. */
    for (i = 0; i < n; i++) {
      double ti = (double)(n0 + i) / rate;
      while (e->art_next < e->n_pend && e->pend_pulse[e->art_next] <= ti) {
        e->art
            += o->artefact_amp
               * exp(-(ti - e->pend_pulse[e->art_next]) / o->artefact_tau_s);
        e->art_next++;
      }
      sig[i] += e->art;
      e->art *= e->art_f;
    }
  }
  if (o->adc_bits > 0) {
    /* A digitiser of adc_bits over +-adc_range: round to its step, clip
     * at its rails. */
    double step = 2.0 * o->adc_range / ldexp(1.0, (int)o->adc_bits),
           lo = -o->adc_range, hi = o->adc_range - step;
    for (i = 0; i < n; i++) {
      double v = nearbyint(sig[i] / step) * step;
      sig[i] = v < lo ? lo : v > hi ? hi : v;
    }
  }
}

/* Set TTL samples of [t0, t0 + width) inside the block. */
static void
ttl_mark(double *ttl, uint64_t n0, size_t n, double t0, double width,
         double rate, double level)
{
  double a = ceil(t0 * rate - 1e-6) - (double)n0,
         b = ceil((t0 + width) * rate - 1e-6) - (double)n0;
  size_t i, lo, hi;
  if (b <= 0.0 || a >= (double)n)
    return;
  lo = a < 0.0 ? 0 : (size_t)a;
  hi = b > (double)n ? n : (size_t)b;
  for (i = lo; i < hi; i++)
    ttl[i] = level;
}

static void
ttl_block(engine *e, uint64_t n0, size_t n)
{
  const quantal_sim_options *o = e->o;
  const double rate = o->rate_hz, t_end = (double)(n0 + n) / rate;
  double *ttl = e->tmp;
  size_t i, drop = 0;
  for (i = 0; i < n; i++)
    ttl[i] = 0.0;
  if (o->n_sweeps > 0) {
    /* Episodic: the TTL marks the start of each sweep. */
    double t0 = (double)n0 / rate;
    long k = (long)floor((t0 - o->ttl_width_s) / o->sweep_s);
    if (k < 0)
      k = 0;
    for (; (size_t)k < o->n_sweeps && (double)k * o->sweep_s < t_end; k++)
      ttl_mark(ttl, n0, n, (double)k * o->sweep_s, o->ttl_width_s, rate,
               o->ttl_v);
  } else {
    for (i = 0; i < e->n_pend; i++)
      ttl_mark(ttl, n0, n, e->pend_pulse[i], o->ttl_width_s, rate, o->ttl_v);
  }
  /* Forget pulses whose TTL and artefact onset are both written. */
  while (drop < e->n_pend && (o->artefact_amp == 0.0 || drop < e->art_next)
         && e->pend_pulse[drop] + o->ttl_width_s < t_end)
    drop++;
  if (drop > 0) {
    memmove(e->pend_pulse, e->pend_pulse + drop,
            (e->n_pend - drop) * sizeof *e->pend_pulse);
    e->n_pend -= drop;
    e->art_next -= o->artefact_amp == 0.0 ? 0 : drop;
  }
}

quantal_status
quantal_sim_run(const quantal_sim_options *o, quantal_sim_frames_fn on_frames,
                quantal_sim_event_fn on_event, void *ctx, quantal_diag *diag)
{
  engine e;
  quantal_status st;
  uint64_t n0;

  if (o == NULL || on_frames == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "no options or no frame callback");
  st = engine_init(&e, o, 0, diag);
  e.on_event = on_event;
  e.ctx = ctx;
  for (n0 = 0; st == QUANTAL_OK && n0 < e.der.frames;) {
    size_t n = e.der.frames - n0 > o->block_frames
                   ? o->block_frames
                   : (size_t)(e.der.frames - n0),
           i;
    st = create_until(&e, (double)(n0 + n) / o->rate_hz, diag);
    if (st == QUANTAL_OK)
      st = membrane_block(&e, n0, n, diag);
    if (st != QUANTAL_OK)
      break;
    noise_block(&e, n0, n);
    ttl_block(&e, n0, n);
    for (i = 0; i < n; i++) {
      e.frames[2 * i] = e.sig[i];
      e.frames[2 * i + 1] = e.tmp[i];
    }
    st = on_frames(ctx, e.frames, n, diag);
    n0 += n;
  }
  if (st == QUANTAL_OK)
    st = emit_ready(&e, INFINITY, diag);
  engine_free(&e);
  return st;
}

quantal_status
quantal_sim_run_amplitudes(const quantal_sim_options *o,
                           quantal_sim_event_fn on_event, void *ctx,
                           quantal_diag *diag)
{
  engine e;
  quantal_status st;
  if (o == NULL || on_event == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "no options or no event callback");
  st = engine_init(&e, o, 1, diag);
  e.on_event = on_event;
  e.ctx = ctx;
  if (st == QUANTAL_OK)
    st = create_until(&e, e.der.duration_s, diag);
  if (st == QUANTAL_OK)
    st = emit_ready(&e, INFINITY, diag);
  engine_free(&e);
  return st;
}
