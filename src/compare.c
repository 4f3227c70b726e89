/* compare.c - scoring detections against ground truth. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Detection scoring. A detection matches a true event when their times
 * differ by at most the tolerance, each event and each detection being
 * used at most once. Walking the true events in time order and giving each
 * the earliest unused detection within reach gives a matching of maximum
 * size (the exchange argument of interval scheduling: an earlier detection
 * can only be of use to this or a later event, never to an earlier one).
 * A detection equidistant from two events goes to the earlier event; a
 * second detection of one event is a false positive.
 */
quantal_status
quantal_compare_events(const double *det_s, const double *det_amp,
                       size_t n_det, const double *true_s,
                       const double *true_amp, size_t n_true,
                       double tolerance_s, size_t *match,
                       quantal_match_result *r, quantal_diag *diag)
{
  size_t *di = NULL, *ti = NULL, i, j = 0, k, n_amp = 0;
  double *dt = NULL, *ae = NULL, *re = NULL, s_dt = 0.0, s_dt2 = 0.0;
  double s_ae = 0.0, s_ae2 = 0.0;
  quantal_status st = QUANTAL_OK;

  memset(r, 0, sizeof *r);
  if (!(tolerance_s >= 0.0) || !isfinite(tolerance_s))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "the matching tolerance must be a finite time >= 0");
  for (i = 0; i < n_det; i++)
    if (!isfinite(det_s[i]))
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, (long long)i,
                      "detection %zu has no finite time", i + 1);
  for (i = 0; i < n_true; i++)
    if (!isfinite(true_s[i]))
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, (long long)i,
                      "true event %zu has no finite time", i + 1);
  di = malloc((n_det + 1) * sizeof *di);
  ti = malloc((n_true + 1) * sizeof *ti);
  dt = malloc((n_true + 1) * sizeof *dt);
  ae = malloc((n_true + 1) * sizeof *ae);
  re = malloc((n_true + 1) * sizeof *re);
  if (!di || !ti || !dt || !ae || !re) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    goto done;
  }
  /* Stable index sorts: equal times keep their table order. */
  gsl_sort_index(di, det_s, 1, n_det);
  gsl_sort_index(ti, true_s, 1, n_true);
  if (match != NULL)
    for (i = 0; i < n_det; i++)
      match[i] = (size_t)-1;

  for (k = 0; k < n_true; k++) {
    double t = true_s[ti[k]];
    /* Detections too early for this event are too early for every later
     * one: skip them for good. */
    while (j < n_det && det_s[di[j]] < t - tolerance_s)
      j++;
    if (j < n_det && det_s[di[j]] <= t + tolerance_s) {
      size_t d = di[j++];
      double e = det_s[d] - t;
      if (match != NULL)
        match[d] = ti[k];
      dt[r->true_positives] = e;
      s_dt += e;
      s_dt2 += e * e;
      r->true_positives++;
      if (det_amp != NULL && true_amp != NULL && isfinite(det_amp[d]) &&
          isfinite(true_amp[ti[k]])) {
        double a = det_amp[d] - true_amp[ti[k]];
        ae[n_amp] = a;
        re[n_amp] = true_amp[ti[k]] != 0.0 ? fabs(a / true_amp[ti[k]]) : NAN;
        s_ae += a;
        s_ae2 += a * a;
        n_amp++;
      }
    }
  }
  r->n_true = n_true;
  r->n_detected = n_det;
  r->false_positives = n_det - r->true_positives;
  r->false_negatives = n_true - r->true_positives;
  r->precision = n_det ? (double)r->true_positives / (double)n_det : NAN;
  r->recall = n_true ? (double)r->true_positives / (double)n_true : NAN;
  r->f1 = (n_det + n_true) ? 2.0 * (double)r->true_positives /
                                 (double)(n_det + n_true)
                           : NAN;
  r->onset_error_mean_s = NAN;
  r->onset_error_sd_s = NAN;
  r->onset_error_median_abs_s = NAN;
  r->amplitude_error_mean = NAN;
  r->amplitude_error_rms = NAN;
  r->amplitude_error_median_rel = NAN;
  r->n_amplitudes = n_amp;
  if (r->true_positives > 0) {
    double n = (double)r->true_positives;
    r->onset_error_mean_s = s_dt / n;
    r->onset_error_sd_s =
        n > 1 ? sqrt(fmax(0.0, (s_dt2 - s_dt * s_dt / n) / (n - 1))) : NAN;
    for (i = 0; i < r->true_positives; i++)
      dt[i] = fabs(dt[i]);
    gsl_sort(dt, 1, r->true_positives);
    r->onset_error_median_abs_s =
        gsl_stats_median_from_sorted_data(dt, 1, r->true_positives);
  }
  if (n_amp > 0) {
    size_t m = 0;
    r->amplitude_error_mean = s_ae / (double)n_amp;
    r->amplitude_error_rms = sqrt(s_ae2 / (double)n_amp);
    for (i = 0; i < n_amp; i++)
      if (isfinite(re[i]))
        re[m++] = re[i];
    if (m > 0) {
      gsl_sort(re, 1, m);
      r->amplitude_error_median_rel =
          gsl_stats_median_from_sorted_data(re, 1, m);
    }
  }
done:
  free(di);
  free(ti);
  free(dt);
  free(ae);
  free(re);
  return st;
}

/* ---- recovery and calibration ------------------------------------------ */

quantal_recovery_options
quantal_recovery_options_default(void)
{
  quantal_recovery_options o;
  memset(&o, 0, sizeof o);
  o.truth.model = QUANTAL_RELEASE_BINOMIAL;
  o.truth.n = 20;
  o.truth.p = 0.3;
  o.truth.q = 0.5;
  o.truth.cv_q = 0.25;
  o.truth.noise_sd = 0.1;
  o.n_trials = 300;
  o.n_minis = 0;
  o.fit = quantal_fit_options_default();
  o.fit.bootstrap = 0;
  o.fit.threads = 1;
  o.score_model = QUANTAL_FIT_BINOMIAL;
  o.replicates = 200;
  o.threads = 0;
  o.seed = 1;
  return o;
}

/* The true value of each reported parameter, NaN where the simulated model
 * has no such parameter. */
static void
true_values(const quantal_release_params *t, double *v)
{
  size_t i;
  for (i = 0; i < QUANTAL_PAR_COUNT; i++)
    v[i] = NAN;
  switch (t->model) {
  case QUANTAL_RELEASE_POISSON: v[QUANTAL_PAR_M] = t->m; break;
  case QUANTAL_RELEASE_BINOMIAL:
  case QUANTAL_RELEASE_BETABINOMIAL:
    v[QUANTAL_PAR_M] = (double)t->n * t->p;
    v[QUANTAL_PAR_N] = (double)t->n;
    v[QUANTAL_PAR_P] = t->p;
    if (t->model == QUANTAL_RELEASE_BETABINOMIAL)
      v[QUANTAL_PAR_CV_P] = t->cv_p;
    break;
  }
  v[QUANTAL_PAR_Q] = t->q;
  v[QUANTAL_PAR_SIGMA_Q] = fabs(t->q) * t->cv_q;
  v[QUANTAL_PAR_CV_Q] = t->cv_q;
  v[QUANTAL_PAR_SIGMA_0] = t->noise_sd;
}

typedef struct rec_job {
  const quantal_recovery_options *o;
  quantal_recovery_result *r;
  pthread_mutex_t mu;
  size_t next, done;
  quantal_status first_error;
  quantal_diag diag;
} rec_job;

/* One replicate: simulate the experiment, analyse it exactly as the data
 * were, keep the estimates of the scored model. */
static void
run_replicate(rec_job *job, size_t i, double *amps, double *minis,
              double *shams, qtl_wave_ws *ws)
{
  const quantal_recovery_options *o = job->o;
  quantal_recovery_result *r = job->r;
  quantal_release_params mp = o->truth;
  quantal_fit_options fo = o->fit;
  size_t n_shams = 0;
  quantal_fit_result *fr = NULL;
  quantal_diag d;
  uint64_t s = quantal_seed_mix(o->seed, i);
  quantal_status st;
  size_t k, n_minis = o->n_minis;
  const double *fit_minis = minis;
  double *est = r->estimates + i * QUANTAL_PAR_COUNT;
  double *lo = r->lower + i * QUANTAL_PAR_COUNT;
  double *hi = r->upper + i * QUANTAL_PAR_COUNT;

  for (k = 0; k < QUANTAL_PAR_COUNT; k++)
    est[k] = lo[k] = hi[k] = NAN;
  for (k = 0; k < QUANTAL_STAT_COUNT; k++)
    r->stats[i * QUANTAL_STAT_COUNT + k] = NAN;
  r->ok[i] = 0;
  quantal_diag_clear(&d);
  if (o->waveform != NULL) {
    st = qtl_wave_replicate(o->waveform, &o->truth, quantal_seed_mix(s, 0), i,
                            ws, amps, shams, &n_shams, &fit_minis, &n_minis,
                            r->wave + i * QUANTAL_WAVE_COUNT, &d);
    if (o->n_shams == 0)
      n_shams = 0;
    if (st != QUANTAL_OK && st != QUANTAL_ENOMEM) {
      /* This recording could not be re-analysed: a failed replicate,
       * counted and reported (the first in replicate order, so the
       * report does not depend on the threads). */
      pthread_mutex_lock(&job->mu);
      r->n_failed++;
      if (r->n_failed == 1 || i < r->failed_replicate) {
        r->failed_replicate = i;
        r->failure = d;
        if (r->failure.reason[0] == '\0')
          qtl_strlcpy(r->failure.reason, quantal_status_str(st),
                      sizeof r->failure.reason);
      }
      pthread_mutex_unlock(&job->mu);
      return;
    }
  } else {
    st = quantal_sim_amplitudes(&o->truth, quantal_seed_mix(s, 0),
                                o->n_trials, amps, NULL, &d);
  }
  if (st == QUANTAL_OK && o->waveform == NULL && o->n_minis > 0) {
    /* A mini is one quantum: the same sizes, the same noise. */
    mp.model = QUANTAL_RELEASE_BINOMIAL;
    mp.n = 1;
    mp.p = 1.0;
    mp.cv_p = 0.0;
    st = quantal_sim_amplitudes(&mp, quantal_seed_mix(s, 1), o->n_minis,
                                minis, NULL, &d);
  }
  if (st == QUANTAL_OK && o->waveform == NULL && o->n_shams > 0) {
    /* A sham is the noise alone. */
    mp = o->truth;
    mp.model = QUANTAL_RELEASE_POISSON;
    mp.m = 0.0;
    n_shams = o->n_shams;
    st = quantal_sim_amplitudes(&mp, quantal_seed_mix(s, 2), n_shams, shams,
                                NULL, &d);
  }
  fo.shams = n_shams ? shams : NULL;
  fo.n_shams = n_shams;
  if (st == QUANTAL_OK)
    st = quantal_fit_run(amps, o->n_trials, fit_minis, n_minis, &fo, &fr,
                         &d);
  if (st == QUANTAL_OK)
    quantal_amplitude_stats(amps, o->n_trials, o->truth.q,
                            r->stats + i * QUANTAL_STAT_COUNT);
  if (st == QUANTAL_OK && fr->model[o->score_model].fitted) {
    const quantal_model_fit *mf = &fr->model[o->score_model];
    for (k = 0; k < QUANTAL_PAR_COUNT; k++) {
      est[k] = mf->par[k].value;
      lo[k] = mf->par[k].lo;
      hi[k] = mf->par[k].hi;
    }
    r->stats[i * QUANTAL_STAT_COUNT + QUANTAL_STAT_KS] = mf->ks;
    r->ok[i] = 1;
  } else if (st != QUANTAL_OK && st != QUANTAL_EFAILED &&
             st != QUANTAL_ENUMERIC) {
    /* A replicate whose fit does not converge is counted as such; any
     * other failure (memory, invalid settings) stops the run. */
    pthread_mutex_lock(&job->mu);
    if (job->first_error == QUANTAL_OK) {
      job->first_error = st;
      job->diag = d;
    }
    pthread_mutex_unlock(&job->mu);
  }
  quantal_fit_result_free(fr);
}

static void *
rec_worker(void *arg)
{
  rec_job *job = arg;
  const quantal_recovery_options *o = job->o;
  double *amps = malloc((o->n_trials + 1) * sizeof *amps);
  double *minis = malloc((o->n_minis + 1) * sizeof *minis);
  /* Room for the simulated shams, or two per stimulus from evoked. */
  double *shams = malloc((o->n_shams + 2 * o->n_trials + 1) * sizeof *shams);
  qtl_wave_ws *ws = o->waveform ? qtl_wave_ws_alloc(o->waveform) : NULL;
  for (;;) {
    size_t i;
    pthread_mutex_lock(&job->mu);
    i = job->next++;
    if (amps == NULL || minis == NULL || shams == NULL ||
        (o->waveform && ws == NULL)) {
      if (job->first_error == QUANTAL_OK)
        job->first_error = QUANTAL_ENOMEM;
      i = o->replicates;
    }
    if (job->first_error != QUANTAL_OK)
      i = o->replicates;
    pthread_mutex_unlock(&job->mu);
    if (i >= o->replicates)
      break;
    run_replicate(job, i, amps, minis, shams, ws);
    pthread_mutex_lock(&job->mu);
    job->done++;
    if (o->on_progress != NULL)
      o->on_progress(job->done, o->replicates, o->user);
    pthread_mutex_unlock(&job->mu);
  }
  free(amps);
  free(minis);
  free(shams);
  qtl_wave_ws_free(ws);
  return NULL;
}

void
quantal_recovery_result_free(quantal_recovery_result *r)
{
  if (r == NULL)
    return;
  free(r->estimates);
  free(r->lower);
  free(r->upper);
  free(r->ok);
  free(r->stats);
  free(r->wave);
  free(r);
}

/* Summaries over the replicates whose fit converged, in replicate order
 * (so they do not depend on the number of threads). */
static void
summarise(quantal_recovery_result *r, const quantal_recovery_options *o)
{
  size_t i, k;
  true_values(&o->truth, r->truth);
  for (k = 0; k < QUANTAL_PAR_COUNT; k++) {
    quantal_recovery_param *p = &r->par[k];
    double s = 0.0, s2 = 0.0, e2 = 0.0, t = r->truth[k];
    memset(p, 0, sizeof *p);
    p->truth = t;
    for (i = 0; i < o->replicates; i++) {
      double v = r->estimates[i * QUANTAL_PAR_COUNT + k];
      double lo = r->lower[i * QUANTAL_PAR_COUNT + k];
      double hi = r->upper[i * QUANTAL_PAR_COUNT + k];
      if (!r->ok[i] || !isfinite(v))
        continue;
      p->n_estimates++;
      s += v;
      s2 += v * v;
      if (isfinite(t))
        e2 += (v - t) * (v - t);
      if (!isnan(lo) && !isnan(hi)) {
        p->n_intervals++;
        if (lo <= t && t <= hi)
          p->n_covered++;
        if (isinf(hi))
          p->n_unbounded++;
      }
    }
    p->mean = p->sd = p->bias = p->rmse = p->coverage = NAN;
    if (p->n_estimates > 0) {
      double n = (double)p->n_estimates;
      p->mean = s / n;
      p->sd = n > 1 ? sqrt(fmax(0.0, (s2 - s * s / n) / (n - 1))) : NAN;
      if (isfinite(t)) {
        p->bias = p->mean - t;
        p->rmse = sqrt(e2 / n);
      }
    }
    if (p->n_intervals > 0 && isfinite(t))
      p->coverage = (double)p->n_covered / (double)p->n_intervals;
  }
  r->n_ok = 0;
  for (i = 0; i < o->replicates; i++)
    r->n_ok += (size_t)r->ok[i];
}

quantal_status
quantal_compare_recovery(const quantal_recovery_options *opt,
                         quantal_recovery_result **out, quantal_diag *diag)
{
  quantal_recovery_options o =
      opt ? *opt : quantal_recovery_options_default();
  quantal_recovery_result *r;
  rec_job job;
  pthread_t *th = NULL;
  unsigned nt, t, started = 0;
  size_t m;
  quantal_status st;

  quantal_diag_clear(diag);
  *out = NULL;
  st = quantal_release_params_check(&o.truth, diag);
  if (st != QUANTAL_OK)
    return st;
  if (o.waveform != NULL) {
    st = qtl_wave_check(o.waveform, &o.truth, diag);
    if (st != QUANTAL_OK)
      return st;
    o.n_trials = o.waveform->n_stim;
    o.n_minis = 0;
  }
  if (o.replicates == 0 || o.n_trials < 10)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "recovery needs at least 1 replicate of at least 10 "
                    "trials");
  if ((unsigned)o.score_model >= QUANTAL_FIT_N_MODELS ||
      !(o.fit.models & QUANTAL_FIT_BIT(o.score_model)))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "the scored model is not among the fitted ones");
  /* The replicates are the parallel work: each fit runs on one thread.
   * Only the scored model is read from a replicate's fit, so only it is
   * fitted (the Poisson fit that starts every model runs regardless; its
   * profile intervals were 12 % of a binomial replicate's likelihood
   * evaluations). */
  o.fit.threads = 1;
  o.fit.models = QUANTAL_FIT_BIT(o.score_model);
  r = calloc(1, sizeof *r);
  if (r == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  m = o.replicates * QUANTAL_PAR_COUNT;
  r->replicates = o.replicates;
  r->estimates = malloc(m * sizeof *r->estimates);
  r->lower = malloc(m * sizeof *r->lower);
  r->upper = malloc(m * sizeof *r->upper);
  r->ok = calloc(o.replicates, sizeof *r->ok);
  r->stats = malloc(o.replicates * QUANTAL_STAT_COUNT * sizeof *r->stats);
  if (o.waveform != NULL) {
    size_t w;
    r->wave = malloc(o.replicates * QUANTAL_WAVE_COUNT * sizeof *r->wave);
    for (w = 0; r->wave != NULL && w < o.replicates * QUANTAL_WAVE_COUNT;
         w++)
      r->wave[w] = NAN;
  }
  if (!r->estimates || !r->lower || !r->upper || !r->ok || !r->stats ||
      (o.waveform != NULL && r->wave == NULL)) {
    quantal_recovery_result_free(r);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  memset(&job, 0, sizeof job);
  job.o = &o;
  job.r = r;
  job.first_error = QUANTAL_OK;
  pthread_mutex_init(&job.mu, NULL);
  nt = o.threads;
  if (nt == 0) {
    long c = sysconf(_SC_NPROCESSORS_ONLN);
    nt = c > 0 ? (unsigned)c : 1;
  }
  if (nt > o.replicates)
    nt = (unsigned)o.replicates;
  th = malloc(nt * sizeof *th);
  if (th == NULL)
    nt = 0;
  for (t = 0; t + 1 < nt; t++)
    if (pthread_create(&th[t], NULL, rec_worker, &job) == 0)
      started++;
  rec_worker(&job); /* this thread works too */
  for (t = 0; t < started; t++)
    pthread_join(th[t], NULL);
  free(th);
  pthread_mutex_destroy(&job.mu);
  if (job.first_error != QUANTAL_OK) {
    if (diag != NULL)
      *diag = job.diag;
    st = job.first_error;
    if (diag != NULL && diag->reason[0] == '\0')
      qtl_fail(diag, st, NULL, -1, -1, "%s", quantal_status_str(st));
    quantal_recovery_result_free(r);
    return st;
  }
  summarise(r, &o);
  *out = r;
  return QUANTAL_OK;
}

const char *
quantal_stat_name(quantal_stat s)
{
  switch (s) {
  case QUANTAL_STAT_MEAN: return "mean";
  case QUANTAL_STAT_CV: return "cv";
  case QUANTAL_STAT_SKEW: return "skew";
  case QUANTAL_STAT_LOW: return "low_fraction";
  case QUANTAL_STAT_KS: return "ks";
  default: return "?";
  }
}

void
quantal_amplitude_stats(const double *x, size_t n, double q, double *stats)
{
  double s = 0.0, s2 = 0.0, s3 = 0.0, mean, var, sign = q < 0.0 ? -1.0 : 1.0;
  size_t i, low = 0;
  for (i = 0; i < QUANTAL_STAT_COUNT; i++)
    stats[i] = NAN;
  if (n < 2)
    return;
  for (i = 0; i < n; i++)
    s += sign * x[i];
  mean = s / (double)n;
  for (i = 0; i < n; i++) {
    double d = sign * x[i] - mean;
    s2 += d * d;
    s3 += d * d * d;
    /* Below half a quantum: the failures, as far as amplitudes alone can
     * tell. */
    if (sign * x[i] < 0.5 * fabs(q))
      low++;
  }
  var = s2 / (double)(n - 1);
  stats[QUANTAL_STAT_MEAN] = mean;
  stats[QUANTAL_STAT_CV] = mean != 0.0 ? sqrt(var) / fabs(mean) : NAN;
  stats[QUANTAL_STAT_SKEW] =
      var > 0.0 ? (s3 / (double)n) / pow(s2 / (double)n, 1.5) : NAN;
  stats[QUANTAL_STAT_LOW] = (double)low / (double)n;
}
