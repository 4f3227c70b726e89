/* quantal.h - libquantal public interface. SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_H
#define QUANTAL_H

/*
 * The one installed header of libquantal. It includes nothing beyond the C
 * standard library and exposes no GSL or libsndfile types. Physical
 * quantities are SI or the recording's own unit; every function that can
 * fail returns a quantal_status and fills an optional quantal_diag.
 * The library never prints, exits or aborts.
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status ------------------------------------------------------------ */

/* Append-only: never renumber a value. */
typedef enum quantal_status {
  QUANTAL_OK = 0,        /* 0: success */
  QUANTAL_EINVAL = 1,    /* 1: invalid argument or option value */
  QUANTAL_ENOMEM = 2,    /* 2: out of memory */
  QUANTAL_EIO = 3,       /* 3: the operating system failed to read/write */
  QUANTAL_EFORMAT = 4,   /* 4: not a recording/table, or malformed */
  QUANTAL_ERANGE = 5,    /* 5: channel, frame or sweep out of range */
  QUANTAL_ENODATA = 6,   /* 6: nothing to analyse (zero frames, no rows) */
  QUANTAL_ENUMERIC = 7,  /* 7: non-finite data or a numerical failure */
  QUANTAL_EFAILED = 8,   /* 8: the analysis could not reach a result */
  QUANTAL_EUNSUPPORTED = 9 /* 9: valid input that this build cannot handle */
} quantal_status;

/* Caller-owned details of the last failure. Fields that do not apply are
 * empty strings or -1. */
typedef struct quantal_diag {
  char file[1024];   /* the file involved, if any */
  long channel;      /* 0-based channel, or -1 */
  long long frame;   /* 0-based frame (sample index), or -1 */
  char reason[512];  /* human-readable reason, no trailing newline */
} quantal_diag;

/* A short English description of a status code ("invalid argument"). */
const char *quantal_status_str(quantal_status status);

/* Empty all fields of diag (no-op for NULL). */
void quantal_diag_clear(quantal_diag *diag);

/* The library version string, e.g. "0.1.0". */
const char *quantal_version(void);

/* ---- recordings -------------------------------------------------------- */

#define QUANTAL_NAME_MAX 64
#define QUANTAL_UNIT_MAX 16
#define QUANTAL_MAX_CHANNELS 256

typedef struct quantal_recording quantal_recording;

/* Where a channel's unit and scale came from. */
typedef enum quantal_unit_source {
  QUANTAL_UNIT_DEFAULT = 0, /* nothing known: "au", scale 1 */
  QUANTAL_UNIT_FILE = 1,    /* metadata in the file (quantal's or format's) */
  QUANTAL_UNIT_OPTION = 2   /* given by the caller in quantal_open_options */
} quantal_unit_source;

/* Options for quantal_recording_open. Start from
 * quantal_open_options_default(): all fields unset. */
typedef struct quantal_open_options {
  double rate_hz;              /* sample rate for plain-text input; 0 = none */
  size_t n_units;              /* units[i] applies to channel i */
  const char *const *units;    /* e.g. {"mV", "V"}; NULL entries = keep */
  size_t n_scales;             /* scales[i]: physical = stored * scale */
  const double *scales;        /* NULL or values; 0 or NaN entries = keep */
  const char *sweeps;          /* "1-10,12": only these sweeps (1-based),
                                * laid end to end (see
                                * quantal_recording_select_sweeps); NULL =
                                * all */
} quantal_open_options;

quantal_open_options quantal_open_options_default(void);

/* Description of one channel. physical value = stored * scale + offset;
 * quantal_recording_read returns physical values. */
typedef struct quantal_channel_info {
  char name[QUANTAL_NAME_MAX];
  char unit[QUANTAL_UNIT_MAX];
  double scale;
  double offset;
  quantal_unit_source unit_source;
} quantal_channel_info;

/* Description of a whole recording. */
typedef struct quantal_recording_info {
  char format[32];       /* "WAV", "FLAC", "text", "ABF2", ... */
  char encoding[32];     /* "float32", "pcm16", "int16", "text", ... */
  uint64_t frames;       /* samples per channel (all sweeps together) */
  double rate_hz;        /* samples per second */
  size_t n_channels;
  size_t n_sweeps;       /* 1 for a continuous (gap-free) recording */
  int integer_samples;   /* 1 when stored samples are integers */
  char protocol[128];    /* acquisition protocol name, or "" */
} quantal_recording_info;

/* Open a recording for reading. Formats: everything libsndfile reads (WAV,
 * RF64, W64, FLAC, AIFF, CAF, ...) and plain-text columns (needs
 * opt->rate_hz). opt may be NULL. On success *out is a new handle to be
 * closed with quantal_recording_close. */
quantal_status quantal_recording_open(const char *path,
                                      const quantal_open_options *opt,
                                      quantal_recording **out,
                                      quantal_diag *diag);

/* Close and free; NULL is a no-op. */
void quantal_recording_close(quantal_recording *rec);

/* Copy the recording's description into *info. */
void quantal_recording_get_info(const quantal_recording *rec,
                                quantal_recording_info *info);

/* Copy channel ch's description (0-based) into *info. */
quantal_status quantal_recording_get_channel(const quantal_recording *rec,
                                             size_t ch,
                                             quantal_channel_info *info);

/* Sweep i (0-based): first frame and length in frames. A continuous
 * recording has one sweep covering all frames. */
quantal_status quantal_recording_get_sweep(const quantal_recording *rec,
                                           size_t i, uint64_t *first_frame,
                                           uint64_t *n_frames);

/* Parse a 1-based list of numbers and ranges ("1-3,7") over 1..n into
 * sel[0..n-1] (1 = listed). QUANTAL_EINVAL with the reason when spec is
 * empty, malformed, backwards or outside 1..n. */
quantal_status quantal_parse_list(const char *spec, size_t n,
                                  unsigned char *sel, quantal_diag *diag);

/* Keep only the sweeps i with sel[i] != 0 (sel has n_sweeps entries):
 * from then on the recording is those sweeps laid end to end, in their
 * order (frames, sweep table and reads all refer to that), streamed from
 * the file as before. Selecting every sweep changes nothing; none is
 * QUANTAL_EINVAL. */
quantal_status quantal_recording_select_sweeps(quantal_recording *rec,
                                               const unsigned char *sel,
                                               quantal_diag *diag);

/* Read n frames of channel ch starting at first_frame into buf (n doubles,
 * physical units). Reading past the end is QUANTAL_ERANGE. Streaming: call
 * repeatedly with successive blocks; memory use does not grow with the
 * file. */
quantal_status quantal_recording_read(quantal_recording *rec, size_t ch,
                                      uint64_t first_frame, size_t n,
                                      double *buf, quantal_diag *diag);

/* Read n frames of all channels, interleaved (n * n_channels doubles,
 * physical units). */
quantal_status quantal_recording_read_frames(quantal_recording *rec,
                                             uint64_t first_frame, size_t n,
                                             double *buf, quantal_diag *diag);

/* Load a whole channel: *out is malloc'ed (caller frees with free()),
 * *n its length. For files that fit in memory. */
quantal_status quantal_recording_load(quantal_recording *rec, size_t ch,
                                      double **out, size_t *n,
                                      quantal_diag *diag);

/* ---- writing recordings ------------------------------------------------ */

typedef struct quantal_writer quantal_writer;

typedef enum quantal_container {
  QUANTAL_CONTAINER_AUTO = 0, /* from the file name: .flac -> FLAC, else WAV */
  QUANTAL_CONTAINER_WAV = 1,  /* float32 WAV (RF64 when it would pass 4 GiB) */
  QUANTAL_CONTAINER_FLAC = 2  /* 24-bit FLAC with a per-channel stored scale */
} quantal_container;

/* What to write. names/units have n_channels entries. For FLAC, scales[i]
 * is the physical value of one 24-bit step (NULL: 1e-6 of the unit). */
typedef struct quantal_write_options {
  quantal_container container;
  double rate_hz;
  size_t n_channels;
  const char *const *names;
  const char *const *units;
  const double *scales;
  uint64_t expected_frames; /* hint for choosing RF64; 0 = unknown */
  const char *comment;      /* free text stored with the metadata, or NULL */
} quantal_write_options;

/* Create path for writing. Data go to a temporary file in the same folder
 * and appear under path only after quantal_writer_commit succeeds. */
quantal_status quantal_writer_open(const char *path,
                                   const quantal_write_options *opt,
                                   quantal_writer **out, quantal_diag *diag);

/* Append n interleaved frames (n * n_channels doubles, physical units). */
quantal_status quantal_writer_write(quantal_writer *w, const double *frames,
                                    size_t n, quantal_diag *diag);

/* Flush, close, rename into place, free. w is freed even on failure (and
 * the temporary file removed). */
quantal_status quantal_writer_commit(quantal_writer *w, quantal_diag *diag);

/* Close and remove the temporary file, free; NULL is a no-op. */
void quantal_writer_abort(quantal_writer *w);

/* Name of the temporary file being written (so a program can remove it
 * from a signal handler). */
const char *quantal_writer_temp_path(const quantal_writer *w);

/* ---- tables (TSV) ------------------------------------------------------ */

typedef struct quantal_table quantal_table;

/* Read a tab-separated table with one header row; lines starting '#' are
 * comments (kept), empty lines skipped. Cells that are not numbers read as
 * NaN in the numeric view; the text is kept. path "-" reads stdin. */
quantal_status quantal_table_read(const char *path, quantal_table **out,
                                  quantal_diag *diag);
void quantal_table_free(quantal_table *t);
size_t quantal_table_rows(const quantal_table *t);
size_t quantal_table_cols(const quantal_table *t);
const char *quantal_table_colname(const quantal_table *t, size_t j);
/* Column index of name, or -1. */
long quantal_table_find(const quantal_table *t, const char *name);
/* Column index of the first column whose name starts with prefix, or -1
 * (e.g. "amplitude_" matches "amplitude_mV"). */
long quantal_table_find_prefix(const quantal_table *t, const char *prefix);
/* Numeric values of column j (rows entries; NaN where not a number). */
const double *quantal_table_column(const quantal_table *t, size_t j);
/* Text of cell (i, j). */
const char *quantal_table_cell(const quantal_table *t, size_t i, size_t j);
/* Comment lines (without the leading '#'). */
size_t quantal_table_n_comments(const quantal_table *t);
const char *quantal_table_comment(const quantal_table *t, size_t i);

/* ---- statistics helpers ------------------------------------------------ */

/* Robust noise SD of a trace: 1.4826 * MAD(first differences) / sqrt(2).
 * Non-finite samples are skipped. Returns QUANTAL_ENODATA for n < 3. */
quantal_status quantal_noise_sd(const double *x, size_t n, double *sd);

/* ---- randomness ---------------------------------------------------- */

/* Derive an independent 64-bit seed for stream `stream` of a run seeded
 * with `seed` (SplitMix64 finaliser). Replicate i of a parallel job uses
 * quantal_seed_mix(seed, i), so results do not depend on thread count. */
uint64_t quantal_seed_mix(uint64_t seed, uint64_t stream);

/* ---- release models (shared by sim, fit, compare) ---------------------- */

/* How many quanta a stimulus releases. */
typedef enum quantal_release_model {
  QUANTAL_RELEASE_POISSON = 0,     /* k ~ Poisson(m) */
  QUANTAL_RELEASE_BINOMIAL = 1,    /* k ~ Binomial(n, p) */
  QUANTAL_RELEASE_BETABINOMIAL = 2 /* p_i ~ Beta(mean p, CV cv_p) per site */
} quantal_release_model;

/* Distribution of one quantum's size. */
typedef enum quantal_qshape {
  QUANTAL_QSHAPE_GAUSSIAN = 0,  /* Gaussian truncated at 0 */
  QUANTAL_QSHAPE_GAMMA = 1,     /* gamma with mean q, CV cv_q */
  QUANTAL_QSHAPE_LOGNORMAL = 2  /* log-normal with mean q, CV cv_q */
} quantal_qshape;

/* Amplitude-level release parameters. Amplitudes are in the recording's
 * unit (mV, pA, ...), signed by q (negative q: inward currents). */
typedef struct quantal_release_params {
  quantal_release_model model;
  double m;            /* Poisson: mean quanta per stimulus */
  unsigned n;          /* binomial/beta-binomial: release sites */
  double p;            /* binomial: release probability; beta-binomial: mean */
  double cv_p;         /* beta-binomial: CV of p across sites (0 = binomial) */
  double q;            /* mean quantal amplitude */
  double cv_q;         /* coefficient of variation of quantal size */
  quantal_qshape shape;
  double noise_sd;     /* additive Gaussian recording noise (sigma_0) */
} quantal_release_params;

/* sim module: declarations below this line are owned by src/sim.c */

/* Simulate n_trials evoked amplitudes (recording unit): k quanta per
 * stimulus from p->model, each of size drawn from p->shape with mean
 * p->q and CV p->cv_q, plus Gaussian noise SD p->noise_sd. quanta
 * (may be NULL) receives k per trial. Deterministic for a given seed.
 * Thread-safe (no shared state).
 * Beta-binomial: each stimulus draws its p from Beta(a, b) with
 * a + b = (1 - p) / (cv_p^2 p) - 1 and a = p (a + b), then
 * k ~ Binomial(n, p). Gaussian sizes are truncated at 0, so with a large
 * cv_q the realised mean is above q (0.7 % at CV 0.4, 29 % at CV 1).
 * Sizes sum linearly (no driving-force non-linearity at this level). */
quantal_status quantal_sim_amplitudes(const quantal_release_params *p,
                                      uint64_t seed, size_t n_trials,
                                      double *amplitudes, unsigned *quanta,
                                      quantal_diag *diag);
/* Check p for impossible values (p outside [0,1], n = 0 for binomial,
 * m < 0, cv < 0, noise_sd < 0, beta-binomial cv_p too large for p,...);
 * QUANTAL_EINVAL with a reason naming the parameter. */
quantal_status quantal_release_params_check(const quantal_release_params *p,
                                            quantal_diag *diag);

/* Whole-recording simulation (quantal-simulate(1) documents the model). */

typedef enum quantal_sim_clamp {
  QUANTAL_SIM_CURRENT_CLAMP = 0, /* membrane potential in mV */
  QUANTAL_SIM_VOLTAGE_CLAMP = 1  /* clamp current in pA */
} quantal_sim_clamp;

/* Every parameter of a simulated recording. Times in s, rates in Hz,
 * potentials in V, conductances in S, resistance in ohm; amplitudes and
 * noise in the recording's unit (mV in current clamp, pA in voltage
 * clamp). Start from quantal_sim_options_default(). */
typedef struct quantal_sim_options {
  uint64_t seed;
  double rate_hz;          /* sample rate; 20000 */
  double duration_s;       /* continuous recording length; 10 */
  quantal_sim_clamp clamp; /* current clamp */
  /* Episodic protocol when n_sweeps > 0: n_sweeps sweeps of sweep_s,
   * written end to end, one stimulus (train) sweep_stim_s after each sweep
   * start; the TTL channel marks sweep starts; duration_s is ignored. */
  size_t n_sweeps;         /* 0 */
  double sweep_s;          /* 0.5 */
  double sweep_stim_s;     /* 0.1 */
  /* Continuous stimulation: a stimulus every stim_period_s from
   * stim_start_s (stim_count of them, 0 = until the end), or the sorted
   * times stim_times_s[n_stim_times] when n_stim_times > 0 (borrowed for
   * the call). Each stimulus is a train of train_pulses pulses
   * train_interval_s apart. */
  double stim_period_s;    /* 1; 0 = no stimulation */
  double stim_start_s;     /* 0.5 */
  size_t stim_count;       /* 0 */
  const double *stim_times_s;
  size_t n_stim_times;
  unsigned train_pulses;   /* 1 */
  double train_interval_s; /* 0.02 */
  double delay_s;          /* synaptic delay from pulse to release; 0.0005 */
  double latency_s;        /* mean exponential release latency; 0 */
  /* Release: model, n, p, m, cv_p, q, cv_q, shape as in
   * quantal_release_params, with q > 0 the magnitude of a mean quantum's
   * peak response at rest in the recording's unit, or its peak
   * conductance in S when q_is_conductance; release.noise_sd is the SD of
   * the white recording noise. */
  quantal_release_params release;
  int q_is_conductance;    /* 0 */
  double tau_d_s;          /* vesicle recovery time constant; 0 = none */
  double tau_f_s;          /* facilitation time constant; 0 = none */
  double mini_rate_hz;     /* spontaneous release rate; 1 */
  double mini_gap_s;       /* no spontaneous release this long after each
                            * pulse; 0 */
  double rise_s;           /* conductance rise time constant; 0.0003 */
  double decay_s;          /* conductance decay time constant; 0.0015 */
  double kinetics_cv;      /* CV of each event's rise and decay; 0 */
  double tau_m_s;          /* membrane time constant; 0.01 */
  double r_in_ohm;         /* input resistance; 1e6 */
  double e_rest_v;         /* resting potential; -0.080 */
  double e_syn_v;          /* synaptic reversal potential; 0 */
  double v_hold_v;         /* holding potential (voltage clamp); -0.080 */
  double pink_sd;          /* SD of the 1/f noise; 0 */
  double pink_fmin_hz;     /* where the 1/f spectrum flattens; 0.1 */
  double hum_amp;          /* amplitude of the mains fundamental; 0 */
  double hum_hz;           /* mains frequency; 50 */
  unsigned hum_harmonics;  /* components h = 1..this at h hum_hz, each of
                            * amplitude hum_amp / h; 3 */
  double drift_sd;         /* SD of the baseline drift; 0 */
  double drift_tau_s;      /* its correlation time; 10 */
  double artefact_amp;     /* stimulus artefact peak; 0 */
  double artefact_tau_s;   /* its decay time constant; 0.0002 */
  unsigned adc_bits;       /* quantise to this many bits; 0 = off */
  double adc_range;        /* +- full scale of the digitiser; 100 */
  double ttl_v;            /* TTL pulse height (V); 5 */
  double ttl_width_s;      /* TTL pulse width; 0.001 */
  size_t block_frames;     /* frames generated per block; 65536 */
} quantal_sim_options;

quantal_sim_options quantal_sim_options_default(void);

/* What the options imply, from quantal_sim_prepare. */
typedef struct quantal_sim_derived {
  const char *unit;        /* "mV" or "pA" */
  const char *channel;     /* "Vm" or "Im" */
  double m;                /* mean quanta per stimulus without plasticity */
  double q_conductance_s;  /* peak conductance of a mean quantum */
  double q_amplitude;      /* its isolated peak at rest, signed, in unit */
  double baseline;         /* noise-free resting level, in unit */
  uint64_t frames;         /* frames of the recording */
  double duration_s;
  size_t n_pulses;         /* stimulus pulses inside the recording */
  double flac_scale;       /* suggested 24-bit step for the signal */
} quantal_sim_derived;

/* Check o (every field, with a reason naming the first bad one) and
 * derive *d. */
quantal_status quantal_sim_prepare(const quantal_sim_options *o,
                                   quantal_sim_derived *d,
                                   quantal_diag *diag);

typedef enum quantal_sim_kind {
  QUANTAL_SIM_EVOKED = 0,
  QUANTAL_SIM_SPONTANEOUS = 1
} quantal_sim_kind;

/* One release event of the ground truth. */
typedef struct quantal_sim_event {
  quantal_sim_kind kind;
  double onset_s;    /* first quantum's release (failures: pulse + delay) */
  double peak_s;     /* time of the peak of its isolated response */
  long stimulus;     /* 0-based stimulus (sweep) index; -1 spontaneous */
  long pulse;        /* 0-based pulse within the train; -1 spontaneous */
  double stim_s;     /* pulse time; NaN for spontaneous events */
  unsigned quanta;   /* quanta released (0: a failure) */
  double amplitude;  /* peak of its own noise-free response, signed */
  double linear;     /* the same for a linear membrane (no driving-force
                      * change); equals amplitude in voltage clamp */
  double rise_s, decay_s; /* its conductance kinetics */
  /* quantal_sim_run_amplitudes, evoked events: the noise alone, N(0,
   * noise_sd^2), what an amplitude measured where no release can be
   * gives (evoked's sham windows); NaN otherwise. */
  double sham;
} quantal_sim_event;

/* Receives n interleaved frames of 2 channels (signal in unit, TTL in V);
 * the pointer is valid during the call only. */
typedef quantal_status (*quantal_sim_frames_fn)(void *ctx,
                                                const double *frames,
                                                size_t n, quantal_diag *diag);
/* Receives one event; events arrive in order of onset_s. */
typedef quantal_status (*quantal_sim_event_fn)(void *ctx,
                                               const quantal_sim_event *ev,
                                               quantal_diag *diag);

/* Simulate the recording of o, streaming: on_frames gets successive
 * blocks of o->block_frames, on_events (may be NULL) each release event
 * with onset inside the recording. Memory does not grow with duration.
 * A callback's non-OK status stops the run and is returned. Deterministic
 * for a given o->seed; thread-safe. */
quantal_status quantal_sim_run(const quantal_sim_options *o,
                               quantal_sim_frames_fn on_frames,
                               quantal_sim_event_fn on_event, void *ctx,
                               quantal_diag *diag);

/* The same release process without waveforms: on_event receives every
 * evoked pulse (failures included) and spontaneous event, with amplitude
 * = the linear sum of its quantal sizes (q taken as an amplitude; a
 * conductance q is converted at rest) plus Gaussian noise of SD
 * release.noise_sd; peak_s = onset_s. Amplitudes carry the sign of the
 * response (negative for inward currents). Without plasticity the evoked
 * amplitudes equal quantal_sim_amplitudes(&o->release, o->seed, ...)
 * with release.q given that sign. */
quantal_status quantal_sim_run_amplitudes(const quantal_sim_options *o,
                                          quantal_sim_event_fn on_event,
                                          void *ctx, quantal_diag *diag);
/* ---- end sim ---- */

/* detect module: declarations owned by src/detect.c, filter.c, template.c,
 * measure.c */
/* -- filter (src/filter.c): pre-processing of one block of a trace ------ */

/* Pre-processing options. Blocks are described by the absolute index of
 * their first frame so that every statistic is computed on a grid fixed
 * to the recording (frame 0), never to the block: the same sample gets the
 * same value whatever the block size, as long as the block holds
 * quantal_filter_context() frames of context on each side. */
typedef struct quantal_filter_options {
  double baseline_window_s;  /* running-median window; 0 = no baseline
                                removal. Default 0.5 s */
  double baseline_segment_s; /* grid step of the running median. Default
                                0.02 s (one 50 Hz cycle) */
  double mains_hz;           /* 50 or 60 removes that hum and harmonics,
                                0 = off. Default 50 */
  unsigned mains_harmonics;  /* harmonics removed (1 = fundamental only).
                                Default 5 */
  double mains_window_s;     /* grid step of the hum fit. Default 1 s */
  double lowpass_hz;         /* Gaussian low-pass -3 dB corner, 0 = off.
                                Default 0 */
} quantal_filter_options;

quantal_filter_options quantal_filter_options_default(void);

/* Frames of context a block needs on each side for its inner samples to
 * be independent of the block boundaries. */
size_t quantal_filter_context(const quantal_filter_options *opt,
                              double rate_hz);

/* Robust baseline of x[0..n) (first frame first_frame of the recording):
 * the median of each grid segment (every second sample), then the running
 * median of those over window_s, linearly interpolated between segment
 * centres. Robust to drift and to events occupying less than half of a
 * window. NaN samples are ignored. baseline[] receives n values. */
quantal_status quantal_filter_baseline(const double *x, size_t n,
                                       uint64_t first_frame, double rate_hz,
                                       double window_s, double segment_s,
                                       double *baseline, quantal_diag *diag);

/* Remove mains hum in place: per grid window of window_s a least-squares
 * fit of cos/sin at mains_hz * h (h = 1..harmonics) with phase referenced
 * to frame 0, coefficients linearly interpolated between window centres
 * and subtracted. x should already be baseline-free. */
quantal_status quantal_filter_mains(double *x, size_t n, uint64_t first_frame,
                                    double rate_hz, double mains_hz,
                                    unsigned harmonics, double window_s,
                                    quantal_diag *diag);

/* Gaussian low-pass (FIR, sigma = 0.1325 / fc, kernel to +-4 sigma; edges
 * repeat the end samples): y may equal x only when n is 0; y gets n
 * values. */
quantal_status quantal_filter_lowpass(const double *x, double *y, size_t n,
                                      double rate_hz, double fc_hz,
                                      quantal_diag *diag);

/* The whole chain in place: subtract the baseline (written to baseline[]
 * when not NULL), remove hum, low-pass. */
quantal_status quantal_filter_block(double *x, size_t n, uint64_t first_frame,
                                    double rate_hz,
                                    const quantal_filter_options *opt,
                                    double *baseline, quantal_diag *diag);

/* Robust SD of x: 1.4826 * MAD about the median, NaN skipped (x is not
 * changed). QUANTAL_ENODATA for fewer than 3 finite samples. */
quantal_status quantal_filter_noise_sd(const double *x, size_t n, double *sd);

/* -- template (src/template.c): optimally scaled template --------------- */

/* A sampled event waveform. y has n samples at rate_hz, scaled so that its
 * extreme is +1 at peak_index; onset_index is the event onset (samples
 * before it are the template's own pre-event baseline). rise_s/decay_s are
 * the bi-exponential time constants, NaN for a waveform from a table. */
typedef struct quantal_template {
  double rate_hz;
  size_t n;
  double *y;
  size_t onset_index;
  size_t peak_index;
  double rise_s;
  double decay_s;
} quantal_template;

/* Bi-exponential (Clements & Bekkers 1997, eq. 1) f(t) = (1 - exp(-t /
 * rise)) * exp(-t / decay) rescaled to peak 1, with a pre-onset baseline
 * of max(1 ms, 2 t_peak) and a tail to t_peak + 3 decay. Needs 0 < rise <
 * decay. *out is malloc'ed; free with quantal_template_free. */
quantal_status quantal_template_biexp(double rise_s, double decay_s,
                                      double rate_hz, quantal_template **out,
                                      quantal_diag *diag);

/* A template from n samples of a waveform (any sign, any scale): rescaled
 * so its largest |value| is +1, onset taken where it first passes 5 % of
 * the peak. */
quantal_status quantal_template_from_samples(const double *w, size_t n,
                                             double rate_hz,
                                             quantal_template **out,
                                             quantal_diag *diag);

void quantal_template_free(quantal_template *t);

/* Value of the unit-peak bi-exponential at t seconds after onset. */
double quantal_template_biexp_value(double t_s, double rise_s,
                                    double decay_s);

/* The optimally scaled template fitted at one latency: data x[i + k] ~
 * scale * T[k] + offset, k = 0..L-1 (Clements & Bekkers 1997, eqs. 2-4),
 * sse its sum of squared residuals, se = sqrt(sse / (L - 1)) and criterion
 * = scale / se (their detection criterion). scale_se is the standard
 * error of scale under white noise, se / sqrt(sum (T - mean T)^2). */
typedef struct quantal_template_fit {
  size_t index;      /* latency: the template starts at x[index] */
  double scale;      /* in the unit of x, = event amplitude (T peaks at 1) */
  double offset;     /* in the unit of x */
  double sse;
  double se;
  double scale_se;
  double criterion;
} quantal_template_fit;

/* Fit at latency index (double precision, direct sum). x must hold
 * index + t->n samples. */
quantal_status quantal_template_fit_at(const quantal_template *t,
                                       const double *x, size_t n,
                                       size_t index,
                                       quantal_template_fit *fit,
                                       quantal_diag *diag);

/* Free latency: the fit in [lo, hi] with the largest polarity * criterion
 * (polarity +1 or -1). */
quantal_status quantal_template_fit_best(const quantal_template *t,
                                         const double *x, size_t n,
                                         size_t lo, size_t hi, int polarity,
                                         quantal_template_fit *fit,
                                         quantal_diag *diag);

/* Detection criterion at every latency. The cross-correlation of a
 * bi-exponential template (quantal_template_biexp) is a recursion over
 * its two exponentials in double precision; any other template's is FFT
 * overlap-save in single precision (FFTW). Double running sums for sum x
 * and sum x^2; a per-piece constant removed first so that large offsets
 * do not cancel. A reusable workspace; allocation creates the FFTW plans
 * (under a mutex: plan creation is not thread-safe). */
typedef struct quantal_matcher quantal_matcher;

quantal_status quantal_template_matcher_alloc(const quantal_template *t,
                                              quantal_matcher **out,
                                              quantal_diag *diag);
void quantal_template_matcher_free(quantal_matcher *m);

/* crit[i] (and scale[i] when scale is not NULL) for i = 0..n-L, L the
 * template length: n - L + 1 values. n must be at least L. */
quantal_status quantal_template_criterion(quantal_matcher *m, const double *x,
                                          size_t n, double *crit,
                                          double *scale, quantal_diag *diag);

/* Direct O(n L) double-precision criterion, the reference for tests and
 * benchmarks (what Stimfit computes). */
quantal_status quantal_template_criterion_direct(const quantal_template *t,
                                                 const double *x, size_t n,
                                                 double *crit,
                                                 quantal_diag *diag);

/* Kinetics of an (averaged) event by non-linear least squares (GSL
 * multifit_nlinear, trust region): y[k] = base + amp * f(k / rate - t0)
 * with f the unit-peak bi-exponential, f = 0 before onset. rise_s and
 * decay_s on input are the starting guesses; the fit keeps decay >
 * rise. */
typedef struct quantal_kinetics {
  double baseline;
  double amplitude;
  double onset_s;   /* from y[0] */
  double rise_s;
  double decay_s;
  double rise_10_90_s;
  double sse;
  size_t iterations;
} quantal_kinetics;

quantal_status quantal_template_fit_kinetics(const double *y, size_t n,
                                             double rate_hz, double rise_s,
                                             double decay_s, double onset_s,
                                             quantal_kinetics *out,
                                             quantal_diag *diag);

/* -- measure (src/measure.c): one event --------------------------------- */

/* One detected event. Amplitudes, baselines and areas are in the
 * recording's unit; times in seconds from the start of the recording. */
typedef struct quantal_event {
  double onset_s;
  double peak_s;
  double amplitude;     /* signed: peak minus local baseline */
  double baseline;      /* the local baseline under the peak */
  double rise_10_90_s;
  double decay_tau_s;   /* exponential fit of the decay, NaN if it failed */
  double half_width_s;
  double area;          /* unit * s, of the baseline-subtracted event */
  double criterion;     /* detection score of the method */
  int overlap;          /* 1 when on the decay of the previous event */
} quantal_event;

typedef struct quantal_measure_options {
  double lowpass_hz;     /* smoothing for peak/rise/half-width; default
                            2000 Hz (0 = none) */
  double baseline_s;     /* pre-onset window for the local baseline;
                            default 0.002 s */
  double peak_window_s;  /* onset-to-peak search window; default: from
                            the template, else 0.01 s */
  double decay_window_s; /* decay fit window after the peak; default: 3
                            decay taus of the template, else 0.03 s */
  int fixed_onset;       /* 1: fit the template at the given onset only
                            (it is already a fitted latency); default 0:
                            search +-(t_peak / 2 + 2 samples) */
} quantal_measure_options;

quantal_measure_options quantal_measure_options_default(void);

/* Measure one event in x[0..n) (baseline-free trace, frame 0 of x at
 * first_s seconds) whose onset is at sample onset. polarity +1/-1.
 * end (> onset, <= n) bounds the event (the next event's onset); a
 * previous event's tail must already be subtracted from x. The template
 * (may be NULL) gives amplitude and baseline by the optimally scaled fit
 * near onset (Clements & Bekkers 1997); without it they come from the
 * smoothed peak and the pre-onset mean. */
quantal_status quantal_measure_event(const double *x, size_t n,
                                     double rate_hz, double first_s,
                                     size_t onset, size_t end, int polarity,
                                     const quantal_template *t,
                                     const quantal_measure_options *opt,
                                     quantal_event *ev, quantal_diag *diag);

/* -- detect (src/detect.c): streaming detection ------------------------- */

typedef enum quantal_detect_method {
  QUANTAL_DETECT_TEMPLATE = 0,  /* Clements & Bekkers 1997 criterion */
  QUANTAL_DETECT_DECONV = 1,    /* Pernia-Andrade et al. 2012 */
  QUANTAL_DETECT_THRESHOLD = 2, /* amplitude on the filtered trace */
  QUANTAL_DETECT_SLOPE = 3,     /* slope on the filtered trace */
  /* Template-criterion candidates at a permissive threshold, each
   * confirmed by its criterion once the fitted neighbours are subtracted
   * (so both events of a close pair are kept); the default. */
  QUANTAL_DETECT_COMBINED = 4
} quantal_detect_method;

struct quantal_detect_summary;

typedef struct quantal_detect_options {
  quantal_detect_method method;  /* default QUANTAL_DETECT_COMBINED */
  int polarity;                  /* +1, -1, 0 = decide from the data */
  double threshold;              /* in SDs of the method's score; NaN =
                                    the method's default */
  double rise_s, decay_s;        /* template guess; default 0.5, 5 ms */
  const double *waveform;        /* user template samples, or NULL */
  size_t waveform_n;
  int refine;                    /* refit kinetics from the data (1) */
  double from_s, to_s;           /* analysed span; to_s <= 0 = the end */
  size_t block_frames;           /* frames per block; 0 = 2^20 */
  quantal_filter_options filter;
  quantal_measure_options measure;
  /* Called for every event in time order, once each; a non-zero return
   * stops the run with QUANTAL_EFAILED. */
  int (*on_event)(const quantal_event *ev, void *user);
  /* Called once, after calibration and before the first event, with the
   * method, polarity, threshold and kinetics that will be used (the
   * counts are still 0); a non-zero return stops the run. May be NULL. */
  int (*on_ready)(const struct quantal_detect_summary *s, void *user);
  /* Called after each block with frames done and total; may be NULL. */
  void (*on_progress)(uint64_t done, uint64_t total, void *user);
  void *user;
} quantal_detect_options;

quantal_detect_options quantal_detect_options_default(void);

/* What a run found besides the events. */
typedef struct quantal_detect_summary {
  uint64_t n_events;
  double duration_s;        /* analysed, excluding gaps */
  double rate_hz;           /* n_events / duration_s */
  double noise_sd;          /* robust SD of the pre-processed trace */
  double score_sd;          /* robust SD of the detection score */
  double threshold;         /* used, in score SDs */
  int polarity;             /* used: +1 or -1 */
  quantal_detect_method method;
  double rise_s, decay_s;   /* template kinetics used (NaN: waveform) */
  int refined;              /* 1 when the kinetics came from the data */
  uint64_t n_gaps;          /* stretches of NaN/Inf samples skipped */
  double gap_s;             /* their total length */
  double first_gap_s;       /* start of the first one, or NaN */
} quantal_detect_summary;

/* Detect, measure and report events of channel ch of rec through
 * opt->on_event, streaming in blocks (memory does not grow with the
 * file). Events are attributed to the block holding their onset, so each
 * is reported exactly once and the result does not depend on
 * block_frames. */
quantal_status quantal_detect_run(quantal_recording *rec, size_t ch,
                                  const quantal_detect_options *opt,
                                  quantal_detect_summary *summary,
                                  quantal_diag *diag);

/* The same on an array in memory (first sample at time 0). */
quantal_status quantal_detect_array(const double *x, size_t n,
                                    double rate_hz,
                                    const quantal_detect_options *opt,
                                    quantal_detect_summary *summary,
                                    quantal_diag *diag);

/* Name of a method ("template", ...) and the reverse (-1 if unknown). */
const char *quantal_detect_method_name(quantal_detect_method m);
int quantal_detect_method_parse(const char *name);

/* ---- end detect ---- */

/* evoked module */

/* Rising edges of a trigger channel ch: threshold NAN = half-way between
 * the channel's minimum and maximum (returned in *lo, *hi, may be NULL);
 * edges closer than min_interval_s to the previous one are ignored.
 * *times_s (seconds, malloc'ed, caller frees) may be empty (n = 0). */
quantal_status quantal_stimuli_from_ttl(quantal_recording *rec, size_t ch,
                                        double threshold,
                                        double min_interval_s,
                                        double **times_s, size_t *n,
                                        double *lo, double *hi,
                                        quantal_diag *diag);
/* Stimulus artefacts on channel ch: a sample-to-sample step larger than
 * k_sd robust SDs of ordinary steps marks a stimulus. */
quantal_status quantal_stimuli_from_artefact(quantal_recording *rec,
                                             size_t ch, double k_sd,
                                             double min_interval_s,
                                             double **times_s, size_t *n,
                                             quantal_diag *diag);
/* A regular protocol: count stimuli (0 = as many as fit in duration_s)
 * every period_s from first_s, each a train of train_n pulses at
 * train_hz (train_n 0 or 1: single pulses). *pulse gets the 1-based
 * index within the train. Both arrays malloc'ed; caller frees. */
quantal_status quantal_stimuli_protocol(double first_s, double period_s,
                                        size_t count, unsigned train_n,
                                        double train_hz, double duration_s,
                                        double **times_s, unsigned **pulse,
                                        size_t *n, quantal_diag *diag);
/* Pulse index within trains for sorted stimulus times: a stimulus less
 * than gap_s after the previous one continues its train. */
quantal_status quantal_stimuli_pulse_index(const double *times_s, size_t n,
                                           double gap_s, unsigned *pulse);

/* How stimulus-locked responses are measured (all times in seconds). */
typedef struct quantal_evoked_options {
  double baseline_s; /* baseline window before each stimulus (5 ms) */
  double blank_s;    /* artefact blanking after the stimulus (1 ms) */
  double window_s;   /* response window, from the stimulus (30 ms) */
  double jitter_s;   /* latency search around the template's (1 ms) */
  int polarity;      /* +1, -1, or 0 = from the average response (0) */
  double alpha;      /* false-response rate of the failure test (0.001) */
} quantal_evoked_options;

quantal_evoked_options quantal_evoked_options_default(void);

/* One stimulus's response. amplitude and baseline in the recording's
 * unit, signed; area in unit x seconds; latencies from the stimulus. */
typedef struct quantal_evoked_response {
  double stim_s;
  double amplitude;       /* template-equivalent peak above baseline */
  double baseline;        /* median of the baseline window */
  double noise_sd;        /* robust SD of the baseline window */
  double latency_s;       /* to the 10 % point of the rise; NAN if failure */
  double peak_latency_s;  /* to the peak; NAN for a failure */
  double area;            /* integral over the response window */
  double z;               /* (scale - null mean) / null SD */
  int failure;            /* 1 when z < z_crit */
  int late_event;         /* 1: a spontaneous event late in the window
                           * (template best over 2 ms past the jitter) was
                           * removed before the test */
  /* The scales of the sham windows before this stimulus and after its
   * response (NaN where there was none): the amplitude estimator on noise
   * alone, what quantal_fit_options.shams takes. */
  double sham, sham_after;
} quantal_evoked_response;

/* What the measurement learned about the whole recording. */
typedef struct quantal_evoked_summary {
  int polarity;             /* +1 or -1 */
  size_t n_failures;
  double template_peak;     /* peak of the average response (unit) */
  double template_onset_s;  /* its 10 % rise point after the stimulus */
  double template_peak_s;   /* its peak after the stimulus */
  double null_mean, null_sd; /* of the amplitude under no response */
  size_t n_shams;           /* sham windows behind the null */
  int null_from_shams;      /* 0: white-noise formula used instead */
  double white_noise_sd;    /* the same under white noise, for comparison */
  double tail_tau_s;        /* decay used to extrapolate tails (NAN) */
  double z_crit;            /* one-sided threshold for alpha */
  /* |template_peak| over the SE of a mean of the first pulses' windows
   * (baseline noise SD / sqrt(n)): below about 5 the mean response does
   * not show the sign of the responses (little or no release). */
  double template_snr;
  /* With auto polarity and template_snr under 5: 1 when the polarity is
   * that of the spontaneous events of the channel (as detect's
   * calibration decides it) rather than the mean response's. */
  int polarity_from_minis;
  size_t n_late_events;     /* responses with late_event set */
} quantal_evoked_summary;

/* Measure the response to each of n_stim stimuli (sorted, seconds) on
 * channel ch, filling out[n_stim] and *sum. pulse (NULL: all single) is
 * the 1-based index within a train: later pulses have the tails of the
 * earlier ones of their train removed. Streams: memory does not grow with
 * the recording's length. */
quantal_status quantal_evoked_measure(quantal_recording *rec, size_t ch,
                                      const double *stim_s,
                                      const unsigned *pulse, size_t n_stim,
                                      const quantal_evoked_options *opt,
                                      quantal_evoked_response *out,
                                      quantal_evoked_summary *sum,
                                      quantal_diag *diag);
/* Minis between evoked responses: whether an event (onset and peak, s)
 * falls in the exclusion window [t - before_s, t + after_s] of a stimulus
 * t of the sorted stim_s. The event overlaps a window when it peaks after
 * the window's start (its onset, estimated from a smoothed trace, may come
 * a few ms before the stimulus). Events must come in time order; *next
 * (0 at the start) carries the walk over the stimuli from call to call. */
int quantal_evoked_near_stimulus(const double *stim_s, size_t n_stim,
                                 double before_s, double after_s,
                                 size_t *next, double onset_s,
                                 double peak_s);

/* Kinetics of the mean response to the first pulses (of trains) on
 * channel ch: the baseline-subtracted traces from opt->baseline_s before
 * each stimulus to opt->window_s after it are averaged and fitted with
 * the bi-exponential of quantal_template_fit_kinetics (no artefact
 * blanking). out->onset_s is from the stimulus; rise_s, decay_s are the
 * time constants of (1 - exp(-t / rise)) exp(-t / decay). */
quantal_status quantal_evoked_kinetics(quantal_recording *rec, size_t ch,
                                       const double *stim_s,
                                       const unsigned *pulse, size_t n_stim,
                                       const quantal_evoked_options *opt,
                                       quantal_kinetics *out,
                                       quantal_diag *diag);
/* ---- end evoked ---- */

/* fit module: model.c, fit.c, fit_shared.c, classic.c, mpfa.c, gof.c */

/* An estimate with a confidence interval. lo/hi are NaN when theory gives
 * no interval; hi is INFINITY when only a lower bound exists. */
typedef struct quantal_estimate {
  double value, lo, hi;
} quantal_estimate;

/* Classical estimators of the mean quantal content m (del Castillo & Katz
 * 1954). level is the confidence level (0.95). */

/* Method of failures: m = ln(N / N0), with the Clopper-Pearson interval
 * of the failure probability N0/N mapped through -ln. No failures: lower
 * bound only (value and hi INFINITY); all failures: m = 0. */
quantal_status quantal_classic_failures(size_t n_trials, size_t n_failures,
                                        double level, quantal_estimate *m,
                                        quantal_diag *diag);

/* Direct method: m = mean EPP / mean MEPP, with a delta-method interval
 * from the standard errors of both means (se = 0: treated as exact). */
quantal_status quantal_classic_direct(double mean_epp, double se_epp,
                                      double mean_mepp, double se_mepp,
                                      double level, quantal_estimate *m,
                                      quantal_diag *diag);

/* Coefficient-of-variation method: m = (1 + cv_q^2) / CV^2 with
 * CV^2 = (sd_epp^2 - noise_sd^2) / mean_epp^2; the interval comes from the
 * chi-square interval of the EPP variance over n_trials trials. */
quantal_status quantal_classic_cv(double mean_epp, double sd_epp,
                                  size_t n_trials, double cv_q,
                                  double noise_sd, double level,
                                  quantal_estimate *m, quantal_diag *diag);

/* Martin's (1955) correction for non-linear summation of a potential v
 * (same unit as driving_force E = E_rev - V_rest): v' = v / (1 - f v / E),
 * f = 1 for Martin's form, f < 1 for the improved form of McLachlan &
 * Martin (1981). Fails (EINVAL) when f v / E >= 1. */
quantal_status quantal_martin_correct(double v, double driving_force,
                                      double f, double *corrected,
                                      quantal_diag *diag);

/* Maximum-likelihood mixture models of evoked amplitudes. */
typedef enum quantal_fit_model {
  QUANTAL_FIT_POISSON = 0,      /* m, q, sigma_q, sigma_0 */
  QUANTAL_FIT_BINOMIAL = 1,     /* n (profiled), p, q, sigma_q, sigma_0 */
  QUANTAL_FIT_BETABINOMIAL = 2, /* n, p, cv_p, q, sigma_q, sigma_0 */
  QUANTAL_FIT_MIXTURE = 3,      /* free weights at 0, q, 2q, ... */
  QUANTAL_FIT_MIXTURE_NOFAIL = 4, /* free weights at q, 2q, ... (k >= 1) */
  QUANTAL_FIT_N_MODELS = 5
} quantal_fit_model;

#define QUANTAL_FIT_BIT(model) (1u << (model))

/* Parameters reported for each model (NaN value: not in that model). */
typedef enum quantal_fit_par {
  QUANTAL_PAR_M = 0,       /* mean quanta per trial (n p for binomial) */
  QUANTAL_PAR_N = 1,       /* release sites */
  QUANTAL_PAR_P = 2,       /* release probability (mean) */
  QUANTAL_PAR_CV_P = 3,    /* CV of p (beta-binomial) */
  QUANTAL_PAR_Q = 4,       /* mean quantal size, in the table's sign */
  QUANTAL_PAR_SIGMA_Q = 5, /* SD of quantal size */
  QUANTAL_PAR_CV_Q = 6,    /* sigma_q / |q| */
  QUANTAL_PAR_SIGMA_0 = 7, /* recording noise SD */
  QUANTAL_PAR_COUNT = 8
} quantal_fit_par;

/* Name of a parameter ("m", "n", "p", "cv_p", "q", "sigma_q", "cv_q",
 * "sigma_0") and of a model ("poisson", "binomial", "betabinomial",
 * "mixture", "mixture_nofail"). */
const char *quantal_fit_par_name(quantal_fit_par par);
const char *quantal_fit_model_name(quantal_fit_model model);

/* How well the data pin down n (Gontier & Pfister 2020). */
typedef enum quantal_n_verdict {
  QUANTAL_N_NA = 0,          /* model without n */
  QUANTAL_N_IDENTIFIED = 1,  /* the profile of n has a closed interval */
  QUANTAL_N_LOWER_BOUND = 2, /* the profile is flat up to n_max: only the
                              * lower bound of n is supported */
  QUANTAL_N_FLAT = 3         /* flat everywhere: n not identifiable */
} quantal_n_verdict;

typedef struct quantal_fit_options {
  unsigned models;      /* QUANTAL_FIT_BIT set; default Poisson|binomial */
  quantal_qshape shape; /* GAUSSIAN (default) or GAMMA quantal sizes */
  unsigned n_max;       /* largest n profiled; default 200 */
  double level;         /* confidence level; default 0.95 */
  int profile_ci;       /* 1 (default): profile-likelihood intervals */
  double noise_sd;      /* > 0: sigma_0 fixed; 0 (default): estimated */
  double noise_hint;    /* > 0: starting value of sigma_0 (noise column) */
  /* Sham amplitudes: the amplitude estimator applied where no release can
   * be (quantal evoked's sham_<unit> column), each N(0, sigma_0^2) in the
   * likelihood, in the table's sign or not (only their squares enter);
   * NaN entries mean no sham there and are skipped. NULL / 0 (default):
   * none. Not used when noise_sd fixes sigma_0. */
  const double *shams;
  size_t n_shams;
  unsigned bootstrap;   /* parametric bootstrap replicates; default 0 */
  unsigned threads;     /* bootstrap threads; 0 = online processors */
  uint64_t seed;        /* bootstrap seed; default 1 */
  unsigned gof_bins;    /* bins of the observed/expected table; 0 = auto */
  /* Called as bootstrap replicates start (done, total); may be NULL. Runs
   * under a lock, from any worker thread. */
  void (*on_progress)(size_t done, size_t total, void *user);
  void *user;
} quantal_fit_options;

quantal_fit_options quantal_fit_options_default(void);

/* One parameter: maximum-likelihood value, profile-likelihood (Wilks)
 * interval, parametric-bootstrap percentile interval, and the
 * bootstrap-calibrated profile interval: the profile-likelihood interval
 * whose threshold cal_lr on 2 (l_max - l) is the level quantile of that
 * statistic at the fitted value over the bootstrap replicates (Beran
 * 1988's prepivoting) instead of the chi-square quantile (NaN when not
 * computed). */
typedef struct quantal_fit_param {
  double value, lo, hi, boot_lo, boot_hi;
  double cal_lo, cal_hi, cal_lr;
} quantal_fit_param;

/* The fit of one model. Amplitudes and q carry the table's sign. */
typedef struct quantal_model_fit {
  int fitted;                  /* 1 when the model was fitted */
  quantal_status status;       /* why not, when fitted == 0 */
  quantal_fit_param par[QUANTAL_PAR_COUNT];
  double loglik, aic, bic;
  unsigned n_params;           /* free parameters counted in AIC/BIC */
  quantal_n_verdict n_verdict;
  size_t n_profile;            /* profile of n: n values and max loglik */
  unsigned *profile_n;
  double *profile_loglik;
  size_t n_weights;            /* mixture models: weights of k = 0.. */
  double *weights;
  double ks, ks_p, ad, ad_p;   /* GOF statistics; p NaN without bootstrap */
  size_t n_bins;               /* observed vs expected counts per bin */
  double *bin_lo, *bin_hi, *bin_expected;
  size_t *bin_observed;
  unsigned boot_ok;            /* bootstrap replicates that converged */
} quantal_model_fit;

typedef struct quantal_fit_result {
  size_t n_amplitudes, n_minis;
  size_t n_shams;              /* shams in the likelihood */
  int sign;                    /* -1 when amplitudes were negative */
  quantal_model_fit model[QUANTAL_FIT_N_MODELS];
  int best;                    /* lowest AIC among fitted, or -1 */
  double lrt_stat, lrt_p;      /* binomial vs Poisson (NaN if not both) */
  double mixture_lrt_stat;     /* no-failure mixture vs one component */
} quantal_fit_result;

/* Fit the models selected in opt (NULL: defaults) to n amplitudes (the
 * table's sign; NaN not allowed; n >= 10), with optional minis amplitudes
 * sharing q and sigma_q. *out is allocated; free with
 * quantal_fit_result_free. A model that fails is reported with fitted = 0
 * and its status; the call fails only when no model could be fitted or
 * the input is unusable. */
quantal_status quantal_fit_run(const double *amplitudes, size_t n,
                               const double *minis, size_t n_minis,
                               const quantal_fit_options *opt,
                               quantal_fit_result **out, quantal_diag *diag);
void quantal_fit_result_free(quantal_fit_result *r);

/* Log-likelihood of amplitudes (sign-corrected, positive q) under one
 * model at given parameters: rp->model selects Poisson/binomial/
 * beta-binomial, rp->shape Gaussian or gamma. For tests and scripts. */
quantal_status quantal_fit_loglik(const quantal_release_params *rp,
                                  const double *amplitudes, size_t n,
                                  const double *minis, size_t n_minis,
                                  double *loglik, quantal_diag *diag);

/* Variance-mean (multiple-probability fluctuation) analysis, Silver 2003:
 * per condition j, mean I_j, variance s2_j over n_j trials; weighted fit of
 * s2 = A I - B I^2 with weights (n_j - 1) / (2 s2_j^2); q = A / (1 +
 * cv_q^2), N = 1 / B ... see quantal-fit(1). */
typedef struct quantal_mpfa_result {
  quantal_estimate q, n_sites, a, b;
  size_t n_conditions;
  quantal_estimate *p;        /* per condition */
  double chi2;                /* weighted residual sum of squares */
  int df;
} quantal_mpfa_result;

quantal_status quantal_mpfa_fit(const double *mean, const double *var,
                                const size_t *n_trials, size_t n_conditions,
                                double cv_q, double level,
                                quantal_mpfa_result **out,
                                quantal_diag *diag);
void quantal_mpfa_result_free(quantal_mpfa_result *r);

/* Shared-q binomial model across conditions (fit_shared.c): the
 * maximum-likelihood form of multiple-probability fluctuation analysis.
 * Condition g's amplitudes follow the binomial-Gaussian mixture with
 * its own release probability p_g; the number of sites n, the quantal
 * size q, its SD sigma_q and the noise SD sigma_0 are common (sigma_0
 * fixed at opt->noise_sd when > 0). Minis, when given, enter the
 * likelihood once and share q and sigma_q. n is profiled over
 * 1..opt->n_max; intervals (opt->profile_ci) are profile-likelihood
 * (Wilks) intervals over every other parameter and n; m_g = n p_g is
 * reported with its profile interval too. The conditions are also fitted
 * one by one (binomial, each its own n, q, sigma_q, sigma_0), and the
 * likelihood-ratio test of the shared model against them is reported
 * (NaN with minis: the separate fits would each use them). With
 * opt->bootstrap B > 0 (opt->threads, opt->seed, opt->on_progress as in
 * quantal_fit_run): percentile intervals (boot_lo, boot_hi) of every
 * parameter and the bootstrap p-value of the likelihood-ratio statistic,
 * from B data sets simulated at the maximum, each refitted without
 * intervals. Gaussian quantal sizes only. */
typedef struct quantal_shared_fit {
  size_t n_groups, n_minis;
  size_t *n_amplitudes;             /* per condition */
  int sign;                         /* -1 when amplitudes are negative */
  quantal_fit_param n, q, sigma_q, cv_q, sigma_0; /* cv_q: value only */
  quantal_fit_param *p, *m;         /* per condition */
  quantal_n_verdict n_verdict;
  double loglik, aic, bic;
  unsigned n_params;                /* G + 3, + 1 when sigma_0 is fitted */
  double *loglik_group;             /* each condition's share of loglik */
  size_t n_profile;                 /* profile of n */
  unsigned *profile_n;
  double *profile_loglik;
  double loglik_separate;           /* sum of the separate maxima */
  unsigned n_params_separate;
  double lrt_stat, lrt_df, lrt_p;   /* shared vs separate, chi-square p */
  double lrt_boot_p;                /* its parametric-bootstrap p (NaN) */
  unsigned boot_ok;                 /* bootstrap replicates fitted */
} quantal_shared_fit;

quantal_status quantal_fit_shared(const double *const *amplitudes,
                                  const size_t *n, size_t n_groups,
                                  const double *minis, size_t n_minis,
                                  const quantal_fit_options *opt,
                                  quantal_shared_fit **out,
                                  quantal_diag *diag);
void quantal_shared_fit_free(quantal_shared_fit *r);
/* ---- end fit ---- */

/* formats module: abf.c, atf.c, biosig.c, nwb.c */
/* ---- end formats ---- */

/* compare module */

/* Detections scored against true events (times in seconds, amplitudes in
 * any one unit). */
typedef struct quantal_match_result {
  size_t n_true, n_detected;
  size_t true_positives, false_positives, false_negatives;
  double precision, recall, f1;  /* NAN when undefined (no events) */
  double onset_error_mean_s;     /* detected - true, over matches */
  double onset_error_sd_s;
  double onset_error_median_abs_s;
  size_t n_amplitudes;           /* matches with both amplitudes finite */
  double amplitude_error_mean;   /* detected - true */
  double amplitude_error_rms;
  double amplitude_error_median_rel; /* median |error / true| */
} quantal_match_result;

/* Match n_det detections to n_true true events: a pair matches when the
 * times differ by at most tolerance_s, each used at most once; the
 * matching has the largest possible number of pairs (true events in time
 * order each take the earliest unused detection within reach, so a
 * detection equidistant from two events goes to the earlier one and a
 * second detection of an event is a false positive). Inputs need not be
 * sorted. Amplitude arrays may be NULL. match (n_det entries, may be
 * NULL) receives the index of the matched true event or (size_t)-1. */
quantal_status quantal_compare_events(const double *det_s,
                                      const double *det_amp, size_t n_det,
                                      const double *true_s,
                                      const double *true_amp, size_t n_true,
                                      double tolerance_s, size_t *match,
                                      quantal_match_result *r,
                                      quantal_diag *diag);

/* Recovery and calibration (Gontier & Pfister 2020's question: could these
 * numbers have been recovered?): simulate replicates of an experiment with
 * known release parameters at the amplitude level (quantal_sim_amplitudes),
 * analyse each exactly like the data (quantal_fit_run) and compare the
 * estimates and intervals with the truth. */
/* The shape of a whole-recording experiment, for recovery through the
 * waveform path: each replicate simulates a recording like this one
 * (quantal_sim_run), measures its evoked responses
 * (quantal_evoked_measure) and, with detect_minis, detects the minis
 * between them (quantal_detect_run), then fits as the amplitude path
 * does. Arrays are borrowed for the call. */
typedef struct quantal_waveform_shape {
  double rate_hz;          /* sample rate */
  double duration_s;       /* recording length */
  const double *stim_s;    /* n_stim sorted stimulus (pulse) times, s */
  const unsigned *pulse;   /* 1-based pulse within a train; NULL = single */
  size_t n_stim;
  quantal_sim_clamp clamp; /* current clamp: the driving force of a
                            * conductance synapse (quantal-simulate(1));
                            * voltage clamp: responses sum linearly */
  const char *unit;        /* the recording's unit, for messages ("mV") */
  double resting;          /* baseline level (unit); in current clamp
                            * with the unit mV and a level in [-150, -20]
                            * also the resting potential */
  double noise_sd;         /* white noise SD of the trace (unit) */
  double rise_s, decay_s;  /* kinetics of one response: the time
                            * constants of (1 - exp(-t / rise)) exp(-t /
                            * decay), as from quantal_evoked_kinetics */
  double delay_s;          /* stimulus to the onset of the response */
  double mini_rate_hz;     /* spontaneous quanta per second */
  quantal_evoked_options evoked; /* the measurement of the responses */
  int detect_minis;        /* detect minis and fit them jointly */
  double minis_before_s;   /* minis excluded from this long before each */
  double minis_after_s;    /* stimulus to this long after it */
} quantal_waveform_shape;

/* Per-replicate numbers of the waveform path, at [i * QUANTAL_WAVE_COUNT
 * + j] of quantal_recovery_result.wave (NaN on the amplitude path or a
 * failed replicate). */
typedef enum quantal_wave_stat {
  QUANTAL_WAVE_TRUE_FAILURES = 0,   /* stimuli that released no quantum */
  QUANTAL_WAVE_FLAGGED_FAILURES = 1, /* responses flagged as failures */
  QUANTAL_WAVE_MISCLASSIFIED = 2,   /* flag differs from the truth */
  QUANTAL_WAVE_MINIS_SIMULATED = 3, /* spontaneous events outside the
                                     * excluded windows */
  QUANTAL_WAVE_MINIS_DETECTED = 4,  /* minis detected there */
  QUANTAL_WAVE_COUNT = 5
} quantal_wave_stat;

typedef struct quantal_recovery_options {
  quantal_release_params truth; /* the parameters simulated */
  size_t n_trials;              /* stimuli per experiment (300) */
  size_t n_minis;               /* minis per experiment (0) */
  /* Shams per experiment (0), each N(0, truth.noise_sd^2), in the fit's
   * likelihood (quantal_fit_options.shams; fit.shams is ignored). On the
   * waveform path any value above 0 means the shams evoked measures in
   * each simulated recording. */
  size_t n_shams;
  quantal_fit_options fit;      /* the analysis (fit defaults) */
  quantal_fit_model score_model; /* whose estimates are scored (binomial) */
  size_t replicates;            /* experiments simulated (200) */
  unsigned threads;             /* 0 = online processors */
  uint64_t seed;                /* replicate i uses quantal_seed_mix(seed,
                                   i): results do not depend on threads */
  void (*on_progress)(size_t done, size_t total, void *user);
  void *user;
  /* NULL: the amplitude path (quantal_sim_amplitudes). Otherwise the
   * waveform path on recordings of this shape, with truth.q the peak of
   * one quantum's response in the recording's unit (its sign the
   * response's) and truth.noise_sd unused for the simulation (the trace
   * noise is waveform->noise_sd); n_minis is then ignored (the minis
   * are detected). */
  const quantal_waveform_shape *waveform;
} quantal_recovery_options;

quantal_recovery_options quantal_recovery_options_default(void);

/* One parameter over the replicates whose fit converged. */
typedef struct quantal_recovery_param {
  double truth;               /* NaN: the simulated model has none */
  size_t n_estimates;         /* finite estimates */
  double mean, sd, bias, rmse;
  size_t n_intervals;         /* replicates with an interval */
  size_t n_covered;           /* ... containing the truth */
  size_t n_unbounded;         /* ... whose upper bound is infinite */
  double coverage;            /* n_covered / n_intervals */
} quantal_recovery_param;

typedef struct quantal_recovery_result {
  size_t replicates, n_ok;    /* simulated; fits that converged */
  double truth[QUANTAL_PAR_COUNT];
  quantal_recovery_param par[QUANTAL_PAR_COUNT];
  /* Per replicate i and parameter k at [i * QUANTAL_PAR_COUNT + k]. */
  double *estimates, *lower, *upper;
  unsigned char *ok;          /* replicates entries */
  /* Per replicate i, statistic j at [i * QUANTAL_STAT_COUNT + j]: the
   * simulated data's summary statistics, for predictive checks. */
  double *stats;
  /* The waveform path: per replicate i, statistic j at
   * [i * QUANTAL_WAVE_COUNT + j] (NULL on the amplitude path). A
   * replicate whose recording could not be analysed (the evoked
   * measurement or the detection failed) has ok 0 and is counted in
   * n_failed, the first such replicate's reason in failure (empty when
   * none) and its index in failed_replicate. */
  double *wave;
  size_t n_failed;
  size_t failed_replicate;
  quantal_diag failure;
} quantal_recovery_result;

/* Summary statistics of an amplitude sample (sign-corrected so that
 * responses are positive), compared between data and simulations. */
typedef enum quantal_stat {
  QUANTAL_STAT_MEAN = 0,
  QUANTAL_STAT_CV = 1,
  QUANTAL_STAT_SKEW = 2,
  QUANTAL_STAT_LOW = 3,  /* fraction below half the quantal size */
  QUANTAL_STAT_KS = 4,   /* KS statistic of the scored model's own fit */
  QUANTAL_STAT_COUNT = 5
} quantal_stat;

/* Name of a statistic ("mean", "cv", "skew", "low_fraction", "ks"). */
const char *quantal_stat_name(quantal_stat s);

/* The statistics of amplitudes x (n values, in the sign of q) given the
 * quantal size q; the KS entry is left NaN. */
void quantal_amplitude_stats(const double *x, size_t n, double q,
                             double *stats);

quantal_status quantal_compare_recovery(const quantal_recovery_options *opt,
                                        quantal_recovery_result **out,
                                        quantal_diag *diag);
void quantal_recovery_result_free(quantal_recovery_result *r);
/* ---- end compare ---- */

/* plot module */

/* Figures drawn with PLplot's cairo and SVG devices into a file, never a
 * window. Every call is self-contained (its own PLplot stream, begun and
 * ended inside the call), prints nothing, and checks the file it wrote.
 * PLplot itself is not thread-safe: call from one thread at a time. The
 * file is written in place; callers wanting atomicity draw to a temporary
 * name and rename. Amplitudes are in the recording's unit (unit string). */

typedef enum quantal_plot_format {
  QUANTAL_PLOT_AUTO = 0, /* from the file name's extension */
  QUANTAL_PLOT_PNG = 1,  /* pngcairo */
  QUANTAL_PLOT_SVG = 2,  /* svg (text as <text>, one file per figure) */
  QUANTAL_PLOT_PDF = 3   /* pdfcairo */
} quantal_plot_format;

typedef struct quantal_plot_options {
  quantal_plot_format format; /* AUTO */
  double width_px;            /* 0 = the figure's default (1200) */
  double height_px;           /* 0 = the figure's default */
  const char *title;          /* figure title, or NULL */
} quantal_plot_options;

quantal_plot_options quantal_plot_options_default(void);

/* The drawing library and its version ("PLplot 5.15.0") into buf. */
void quantal_plot_backend(char *buf, size_t size);

/* Format from a path's extension (.png, .svg, .pdf, any case); EINVAL
 * naming the path otherwise. */
quantal_status quantal_plot_format_from_path(const char *path,
                                             quantal_plot_format *format,
                                             quantal_diag *diag);

/* Min/max decimation for long traces: column c of n_cols covers frames
 * [c T / n_cols, (c + 1) T / n_cols) of a trace of T = total_frames.
 * Feed successive blocks x[0..n) starting at first_frame; lo/hi (n_cols
 * each) must start at +INFINITY/-INFINITY. NaN samples are skipped. */
void quantal_plot_minmax(const double *x, size_t n, uint64_t first_frame,
                         uint64_t total_frames, size_t n_cols, double *lo,
                         double *hi);

/* Histogram bin width by the Freedman-Diaconis rule, 2 IQR n^(-1/3)
 * (Freedman & Diaconis 1981), falling back to range / sqrt(n) when the
 * IQR is 0; NaN values are skipped. Returns NaN for fewer than 2 finite
 * values, 1 when they are all equal. */
double quantal_plot_bin_width(const double *x, size_t n);

/* The detection figure: overview, zoomed strip, average event, amplitude
 * and inter-event-interval histograms. Arrays may be NULL with a zero
 * count; panels without data are left out. */
typedef struct quantal_plot_detect_data {
  const char *unit;          /* "mV", "pA" */
  /* Overview: n_cols min/max columns from env_t0_s, env_dt_s wide. */
  const double *env_lo, *env_hi;
  size_t n_cols;
  double env_t0_s, env_dt_s;
  /* Zoomed strip: n_strip samples at rate_hz from strip_t0_s. */
  const double *strip;
  size_t n_strip;
  double strip_t0_s, rate_hz;
  /* Events: onset and peak (s), amplitude above baseline (signed), level
   * at the peak (baseline + amplitude, where the markers go). */
  const double *onset_s, *peak_s, *amplitude, *peak_level;
  size_t n_events;
  /* Average event, baseline-subtracted, sampled at rate_hz, avg[0] at
   * avg_t0_s from the onset (negative); n_averaged events went in. */
  const double *avg;
  size_t n_avg, n_averaged;
  double avg_t0_s;
  /* Template kinetics (bi-exponential time constants, s; NaN = none),
   * drawn over the average with its least-squares amplitude. */
  double rise_s, decay_s;
} quantal_plot_detect_data;

quantal_status quantal_plot_detect(const quantal_plot_detect_data *d,
                                   const char *path,
                                   const quantal_plot_options *opt,
                                   quantal_diag *diag);

/* The evoked figure: responses aligned on the stimulus (failures in
 * another colour), amplitude against stimulus number, histogram. */
typedef struct quantal_plot_evoked_data {
  const char *unit;
  /* Traces: n_traces x n_samples, row-major, baseline-subtracted, sample
   * 0 at t0_s from the stimulus (all responses or a subset of them). At
   * most 400 are drawn; the mean of the successes uses them all. */
  size_t n_traces, n_samples;
  const double *traces;      /* NULL = no panel */
  const int *trace_failure;  /* n_traces, 1 = failure; may be NULL */
  double rate_hz, t0_s;
  /* Every response: */
  size_t n_resp;
  const double *amplitude;   /* n_resp (NaN allowed) */
  const int *failure;        /* n_resp, 1 = failure; may be NULL */
  const double *stimulus;    /* n_resp stimulus numbers; NULL = 1.. */
} quantal_plot_evoked_data;

quantal_status quantal_plot_evoked(const quantal_plot_evoked_data *d,
                                   const char *path,
                                   const quantal_plot_options *opt,
                                   quantal_diag *diag);

/* The fit figure: amplitude histogram (as a density) with the fitted
 * mixture and its components, the profile log-likelihood of n, the minis
 * histogram with its fitted density. The caller computes the curves on
 * its own grids. */
typedef struct quantal_plot_fit_data {
  const char *unit;
  const char *model;          /* e.g. "binomial" */
  const char *summary;        /* one line of estimates, or NULL */
  const double *amplitudes;
  size_t n_amplitudes;
  const double *grid;         /* n_grid abscissae (unit) */
  size_t n_grid;
  const double *density;      /* n_grid: the mixture density (1/unit) */
  size_t n_components;        /* component j holds k = component_k[j] */
  const unsigned *component_k;
  const double *components;   /* n_components x n_grid, weighted */
  const unsigned *profile_n;  /* profile of n: n_profile points */
  const double *profile_loglik;
  size_t n_profile;
  const double *minis;
  size_t n_minis;
  const double *minis_grid, *minis_density; /* n_minis_grid each */
  size_t n_minis_grid;
} quantal_plot_fit_data;

quantal_status quantal_plot_fit(const quantal_plot_fit_data *d,
                                const char *path,
                                const quantal_plot_options *opt,
                                quantal_diag *diag);

/* The detection-scoring figure of compare: true and detected events on
 * a time line (matched, missed, false), detected against true amplitude,
 * onset errors. match[i] is the true event of detection i or (size_t)-1,
 * as from quantal_compare_events. */
typedef struct quantal_plot_score_data {
  const char *unit;
  const double *det_s, *det_amp;   /* n_det; det_amp may be NULL */
  size_t n_det;
  const double *true_s, *true_amp; /* n_true; true_amp may be NULL */
  size_t n_true;
  const size_t *match;             /* n_det */
  const quantal_match_result *result;
} quantal_plot_score_data;

quantal_status quantal_plot_score(const quantal_plot_score_data *d,
                                  const char *path,
                                  const quantal_plot_options *opt,
                                  quantal_diag *diag);

/* Estimates against truth across replicates, one panel per parameter:
 * each replicate's estimate with its interval, the true value, and the
 * coverage (fraction of intervals holding the truth). */
typedef struct quantal_plot_recovery_param {
  const char *name;              /* "p", "q (mV)" */
  double truth;
  size_t n;                      /* replicates */
  const double *value, *lo, *hi; /* lo/hi may be NULL; NaN = none */
} quantal_plot_recovery_param;

quantal_status quantal_plot_recovery(const quantal_plot_recovery_param *par,
                                     size_t n_par, const char *path,
                                     const quantal_plot_options *opt,
                                     quantal_diag *diag);
/* ---- end plot ---- */

#ifdef __cplusplus
}
#endif
#endif /* QUANTAL_H */
