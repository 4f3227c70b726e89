/* sim_internal.h - shared internals of the simulator (sim*.c).
 * SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_SIM_INTERNAL_H
#define QUANTAL_SIM_INTERNAL_H

#include "internal.h"

#include <gsl/gsl_rng.h>

/*
 * Random streams. Every stream is a gsl_rng of type qtl_rng_xoshiro
 * (xoshiro256**, Blackman & Vigna 2021, ACM TOMS 47:36) whose 256-bit state
 * is filled from the full 64-bit seed by SplitMix64, so distinct 64-bit
 * seeds give distinct streams (gsl's mt19937 keeps only 32 bits of a seed).
 * A simulation draws each kind of randomness (counts, sizes, noise, ...)
 * from its own stream quantal_seed_mix(seed, QTL_STREAM_...), so changing
 * one parameter does not reshuffle the others (common random numbers).
 */
extern const gsl_rng_type *qtl_rng_xoshiro;

enum {
  QTL_STREAM_COUNTS = 0,     /* quanta per stimulus */
  QTL_STREAM_SIZES = 1,      /* quantal sizes */
  QTL_STREAM_NOISE = 2,      /* additive recording noise (amplitude level) */
  QTL_STREAM_MINIS = 3,      /* spontaneous release times and sizes */
  QTL_STREAM_LATENCY = 4,    /* release latencies */
  QTL_STREAM_KINETICS = 5,   /* per-event rise/decay jitter */
  QTL_STREAM_WHITE = 6,      /* white noise of the waveform */
  QTL_STREAM_PINK = 7,       /* 1/f noise */
  QTL_STREAM_DRIFT = 8,      /* baseline drift */
  QTL_STREAM_STIM = 9,       /* stimulus times (Poisson trains) */
  QTL_STREAM_PLASTICITY = 10, /* site depletion / recovery */
  QTL_STREAM_SHAM = 11        /* sham amplitudes (amplitude level) */
};

/* A new generator seeded with seed (all 64 bits used); NULL when out of
 * memory. Free with gsl_rng_free. */
gsl_rng *qtl_rng_alloc(uint64_t seed);

/* One quantum's size: mean |q|, CV cv, shape; always >= 0 (the caller
 * applies the sign of q). */
double qtl_sim_quantum(const gsl_rng *r, double q_abs, double cv,
                       quantal_qshape shape);

/* Quanta released by one stimulus under p (no plasticity). */
unsigned qtl_sim_count(const gsl_rng *r, const quantal_release_params *p);

/* Beta parameters (a, b) of the beta-binomial with mean p and CV cv_p;
 * returns 0 when cv_p is 0 (plain binomial), -1 when impossible. */
int qtl_sim_beta_ab(double p, double cv_p, double *a, double *b);

/* ---- membrane (sim_membrane.c) ----------------------------------------- */

/* Membrane constants in SI units. */
typedef struct qtl_membrane {
  int vclamp;       /* 1: voltage clamp (output current), 0: current clamp */
  double tau_m;     /* membrane time constant C / g_L, s */
  double g_l;       /* leak conductance 1 / R_in, S */
  double c;         /* capacitance, F */
  double e_rest;    /* resting potential, V */
  double e_syn;     /* synaptic reversal potential, V */
  double v_hold;    /* holding potential (voltage clamp), V */
  double out_scale; /* volts -> mV (1e3) or amperes -> pA (1e12) */
} qtl_membrane;

/* The conductance of one quantum of peak g0 released at t = 0 is
 * g0 * norm * (exp(-t / decay) - exp(-t / rise)) (rise may be 0: a single
 * exponential). These give norm and the time of the peak. */
double qtl_sim_biexp_norm(double rise, double decay);
double qtl_sim_biexp_tpeak(double rise, double decay);

/* Response of the membrane, starting from rest, to one event alone: k
 * quanta released at t[j] (s, sorted, relative to anything), of peak
 * conductance g[j] (S), all with kinetics (rise, decay). *peak is the
 * extremum of the response (recording unit, signed: V - E_rest in mV, or
 * the clamp current in pA), *t_peak its time on the scale of t, *linear
 * the extremum of the linearised response (driving force frozen at rest;
 * equal to *peak in voltage clamp). */
quantal_status qtl_sim_isolated(const qtl_membrane *mb, double rise,
                                double decay, const double *t, const double *g,
                                size_t k, double *peak, double *t_peak,
                                double *linear);

/* Peak conductance (S) of a quantum whose isolated response peaks at
 * amp_abs (recording unit, magnitude). */
quantal_status qtl_sim_q_to_g(const qtl_membrane *mb, double rise,
                              double decay, double amp_abs, double *g,
                              quantal_diag *diag);

/* ---- noise (sim_noise.c) ------------------------------------------------ */

#define QTL_PINK_MAX 32

/* 1/f noise: white noise through an interlaced pole-zero filter in
 * parallel form (see sim_noise.c). */
typedef struct qtl_pink {
  size_t n;
  double a[QTL_PINK_MAX]; /* poles: s_k = a_k s_k + x */
  double w[QTL_PINK_MAX]; /* residues: y = c x + sum w_k s_k */
  double y[QTL_PINK_MAX]; /* states s_k */
  double c;
} qtl_pink;

/* Design for 1/f between fmin_hz and rate_hz / 2 with total SD sd. */
quantal_status qtl_pink_init(qtl_pink *pk, double fmin_hz, double rate_hz,
                             double sd, quantal_diag *diag);

/* Fill out[0..n) with the next n values, driven by unit white noise in
 * x[0..n) (x may equal out). */
void qtl_pink_run(qtl_pink *pk, const double *x, double *out, size_t n);

/* n standard normal deviates into out (Marsaglia & Tsang 2000 ziggurat on
 * the xoshiro stream; faster than gsl_ran_gaussian_ziggurat through the
 * gsl_rng indirection). r must be a qtl_rng_alloc generator. */
void qtl_gauss_fill(gsl_rng *r, double *out, size_t n);

#endif /* QUANTAL_SIM_INTERNAL_H */
