/* compare_waveform.c - recovery through simulated recordings. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * The waveform path of recovery: a replicate is a whole recording
 * simulated by quantal_sim_run with the fitted release parameters, shaped
 * like the original experiment, then analysed by the library's own evoked
 * measurement and mini detection. Nothing here models release or the
 * membrane: the simulator does, and the analysis is the one the data had.
 * What this file adds is the translation of the measured shape (the
 * kinetics of the mean response, the resting level, the noise) into the
 * simulator's parameters.
 */

struct qtl_wave_ws {
  double *trace;          /* the replicate's recording (channel 1) */
  uint64_t frames, filled;
  unsigned *quanta;       /* true quanta per stimulus */
  quantal_evoked_response *resp;
  double *minis;          /* detected mini amplitudes */
  size_t n_minis, cap_minis;
  /* Exclusion windows around the stimuli, walked in time order. */
  size_t next_sim, next_det;
  size_t minis_simulated;
  int overflow;           /* out of memory while collecting minis */
  const quantal_waveform_shape *w;
};

qtl_wave_ws *
qtl_wave_ws_alloc(const quantal_waveform_shape *w)
{
  qtl_wave_ws *ws = calloc(1, sizeof *ws);
  if (ws == NULL)
    return NULL;
  ws->w = w;
  ws->quanta = malloc((w->n_stim + 1) * sizeof *ws->quanta);
  ws->resp = malloc((w->n_stim + 1) * sizeof *ws->resp);
  if (ws->quanta == NULL || ws->resp == NULL) {
    qtl_wave_ws_free(ws);
    return NULL;
  }
  return ws;
}

void
qtl_wave_ws_free(qtl_wave_ws *ws)
{
  if (ws == NULL)
    return;
  free(ws->trace);
  free(ws->quanta);
  free(ws->resp);
  free(ws->minis);
  free(ws);
}

/*
 * The simulator's parameters for a response of the measured kinetics.
 * The measured shape is f(t) = (1 - exp(-t/r)) exp(-t/d) = exp(-t/d) -
 * exp(-t/tau), 1/tau = 1/r + 1/d. In voltage clamp the current follows
 * the conductance, exp(-t/decay) - exp(-t/rise) (sim_membrane.c), so
 * decay = d and rise = tau. In current clamp the potential is the
 * conductance filtered by the membrane, exp(-t/tau_m) convolved with g;
 * a single-exponential conductance (rise 0) of decay tau through a
 * membrane of tau_m = d gives exactly exp(-t/d) - exp(-t/tau) up to a
 * constant (for small responses; large ones sum sub-linearly through
 * the driving force, as in the recording).
 */
static void
sim_options(const quantal_waveform_shape *w,
            const quantal_release_params *truth, uint64_t seed,
            quantal_sim_options *so)
{
  double tau = w->rise_s * w->decay_s / (w->rise_s + w->decay_s);
  *so = quantal_sim_options_default();
  so->seed = seed;
  so->rate_hz = w->rate_hz;
  so->duration_s = w->duration_s;
  so->clamp = w->clamp;
  so->stim_times_s = w->stim_s;
  so->n_stim_times = w->n_stim;
  so->stim_period_s = 1.0; /* ignored with stim_times_s */
  so->train_pulses = 1;    /* every pulse is in stim_times_s */
  so->delay_s = w->delay_s > 0.0 ? w->delay_s : 0.0;
  so->latency_s = 0.0;
  so->release = *truth;
  so->release.q = fabs(truth->q);
  so->release.noise_sd = w->noise_sd;
  so->mini_rate_hz = w->mini_rate_hz;
  if (w->clamp == QUANTAL_SIM_CURRENT_CLAMP) {
    so->rise_s = 0.0;
    so->decay_s = tau;
    so->tau_m_s = w->decay_s;
    if (strcmp(w->unit, "mV") == 0 && w->resting >= -150.0 &&
        w->resting <= -20.0)
      so->e_rest_v = w->resting * 1e-3;
  } else {
    so->rise_s = tau;
    so->decay_s = w->decay_s;
  }
}

quantal_status
qtl_wave_check(const quantal_waveform_shape *w,
               const quantal_release_params *truth, quantal_diag *diag)
{
  quantal_sim_options so;
  quantal_sim_derived der;
  size_t i;
  if (!(w->rate_hz > 0.0) || !isfinite(w->rate_hz) ||
      !(w->duration_s > 0.0) || !isfinite(w->duration_s))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "waveform recovery needs a sample rate and a duration");
  if (w->n_stim < 10 || w->stim_s == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "waveform recovery needs at least 10 stimuli");
  for (i = 0; i < w->n_stim; i++)
    if (!(w->stim_s[i] >= 0.0 && w->stim_s[i] < w->duration_s) ||
        (i > 0 && !(w->stim_s[i] > w->stim_s[i - 1])))
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "stimulus %zu at %g s: the times must increase and "
                      "lie inside the %g s recording",
                      i + 1, w->stim_s[i], w->duration_s);
  if (!(w->rise_s > 0.0) || !(w->decay_s > w->rise_s) ||
      !isfinite(w->decay_s))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "waveform recovery needs kinetics with 0 < rise < "
                    "decay (got %g and %g ms)",
                    w->rise_s * 1e3, w->decay_s * 1e3);
  if (!(w->noise_sd >= 0.0) || !isfinite(w->resting) ||
      !(w->mini_rate_hz >= 0.0) || w->unit == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "waveform recovery needs a unit, a resting level, a "
                    "noise SD and a minis rate");
  if (!(fabs(truth->q) > 0.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "waveform recovery needs a quantal size other than 0");
  sim_options(w, truth, 1, &so);
  return quantal_sim_prepare(&so, &der, diag);
}

/* Whether an event from onset_s to peak_s falls in the exclusion window
 * of a stimulus, the rule quantal evoked --minis applies: stimuli whose
 * window has passed are skipped for good (events come in time order). */
static int
excluded(const quantal_waveform_shape *w, size_t *next, double onset_s,
         double peak_s)
{
  return quantal_evoked_near_stimulus(w->stim_s, w->n_stim,
                                      w->minis_before_s, w->minis_after_s,
                                      next, onset_s, peak_s);
}

static quantal_status
on_frames(void *ctx, const double *frames, size_t n, quantal_diag *diag)
{
  qtl_wave_ws *ws = ctx;
  size_t j;
  (void)diag;
  for (j = 0; j < n && ws->filled < ws->frames; j++)
    ws->trace[ws->filled++] = frames[2 * j];
  return QUANTAL_OK;
}

static quantal_status
on_sim_event(void *ctx, const quantal_sim_event *ev, quantal_diag *diag)
{
  qtl_wave_ws *ws = ctx;
  (void)diag;
  if (ev->kind == QUANTAL_SIM_EVOKED) {
    if (ev->stimulus >= 0 && (size_t)ev->stimulus < ws->w->n_stim)
      ws->quanta[ev->stimulus] = ev->quanta;
  } else if (!excluded(ws->w, &ws->next_sim, ev->onset_s, ev->peak_s)) {
    ws->minis_simulated++;
  }
  return QUANTAL_OK;
}

static int
on_mini(const quantal_event *ev, void *user)
{
  qtl_wave_ws *ws = user;
  if (excluded(ws->w, &ws->next_det, ev->onset_s, ev->peak_s))
    return 0;
  if (ws->n_minis == ws->cap_minis) {
    size_t cap = ws->cap_minis ? 2 * ws->cap_minis : 256;
    double *m = realloc(ws->minis, cap * sizeof *m);
    if (m == NULL) {
      ws->overflow = 1;
      return 1;
    }
    ws->minis = m;
    ws->cap_minis = cap;
  }
  ws->minis[ws->n_minis++] = ev->amplitude;
  return 0;
}

quantal_status
qtl_wave_replicate(const quantal_waveform_shape *w,
                   const quantal_release_params *truth, uint64_t seed,
                   size_t replicate, qtl_wave_ws *ws, double *amps,
                   double *shams, size_t *n_shams, const double **minis,
                   size_t *n_minis, double *wave, quantal_diag *diag)
{
  quantal_sim_options so;
  quantal_sim_derived der;
  quantal_recording *rec = NULL;
  quantal_evoked_summary sum;
  quantal_status st;
  char name[64];
  double shift, mirror;
  size_t i, k;

  for (k = 0; k < QUANTAL_WAVE_COUNT; k++)
    wave[k] = NAN;
  *minis = NULL;
  *n_minis = 0;
  *n_shams = 0;
  sim_options(w, truth, seed, &so);
  st = quantal_sim_prepare(&so, &der, diag);
  if (st != QUANTAL_OK)
    return st;
  free(ws->trace);
  ws->frames = der.frames;
  ws->filled = 0;
  ws->trace = malloc((ws->frames + 1) * sizeof *ws->trace);
  if (ws->trace == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1,
                    "out of memory for a simulated recording of %llu "
                    "frames",
                    (unsigned long long)ws->frames);
  for (i = 0; i < w->n_stim; i++)
    ws->quanta[i] = UINT_MAX;
  ws->next_sim = ws->next_det = 0;
  ws->minis_simulated = 0;
  ws->n_minis = 0;
  ws->overflow = 0;
  st = quantal_sim_run(&so, on_frames, on_sim_event, ws, diag);
  if (st != QUANTAL_OK)
    return st;
  /* The simulator's response has its own sign (depolarising in current
   * clamp, inward in voltage clamp) and resting level: mirror the trace
   * when the data's responses have the other sign, and move it to the
   * recorded level. */
  mirror = (truth->q < 0.0) != (der.q_amplitude < 0.0) ? -1.0 : 1.0;
  shift = w->resting - mirror * der.baseline;
  for (i = 0; i < ws->filled; i++)
    ws->trace[i] = mirror * ws->trace[i] + shift;
  snprintf(name, sizeof name, "replicate %zu", replicate + 1);
  st = qtl_recording_from_memory(name, ws->trace, ws->filled, w->rate_hz,
                                 "sim", w->unit, &rec, diag);
  ws->trace = NULL; /* the recording owns it now */
  if (st != QUANTAL_OK)
    return st;
  st = quantal_evoked_measure(rec, 0, w->stim_s, w->pulse, w->n_stim,
                              &w->evoked, ws->resp, &sum, diag);
  if (st == QUANTAL_OK && w->detect_minis) {
    quantal_detect_options dopt = quantal_detect_options_default();
    quantal_detect_summary dsum;
    dopt.polarity = sum.polarity;
    dopt.on_event = on_mini;
    dopt.user = ws;
    st = quantal_detect_run(rec, 0, &dopt, &dsum, diag);
    if (ws->overflow)
      st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  quantal_recording_close(rec);
  if (st != QUANTAL_OK)
    return st;
  {
    size_t true_f = 0, flagged = 0, wrong = 0;
    for (i = 0; i < w->n_stim; i++) {
      int f = ws->quanta[i] == 0;
      amps[i] = ws->resp[i].amplitude;
      if (isfinite(ws->resp[i].sham))
        shams[(*n_shams)++] = ws->resp[i].sham;
      if (isfinite(ws->resp[i].sham_after))
        shams[(*n_shams)++] = ws->resp[i].sham_after;
      true_f += (size_t)f;
      flagged += (size_t)(ws->resp[i].failure != 0);
      wrong += (size_t)(f != (ws->resp[i].failure != 0));
    }
    wave[QUANTAL_WAVE_TRUE_FAILURES] = (double)true_f;
    wave[QUANTAL_WAVE_FLAGGED_FAILURES] = (double)flagged;
    wave[QUANTAL_WAVE_MISCLASSIFIED] = (double)wrong;
  }
  if (w->detect_minis) {
    wave[QUANTAL_WAVE_MINIS_SIMULATED] = (double)ws->minis_simulated;
    wave[QUANTAL_WAVE_MINIS_DETECTED] = (double)ws->n_minis;
    *minis = ws->minis;
    *n_minis = ws->n_minis;
  }
  return QUANTAL_OK;
}
