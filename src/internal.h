/* internal.h - shared, non-exported libquantal internals. SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_INTERNAL_H
#define QUANTAL_INTERNAL_H

#include "quantal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/types.h>

/* Fill diag (may be NULL) and return status: the one way library code
 * reports a failure. file may be NULL; channel/frame -1 when not known. */
quantal_status qtl_fail(quantal_diag *diag, quantal_status status,
                        const char *file, long channel, long long frame,
                        const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

/*
 * A library opened on first use (dl.c). A file that calls it lists the
 * symbols it uses (functions and data) in an X-macro and declares the
 * library with QTL_DL_LIB after including the library's header; then it
 * redirects each symbol to the loaded address with QTL_DL_SYM, e.g.
 *   #define H5Fopen QTL_DL_SYM(h5lib, H5Fopen)
 * and calls qtl_dl_load before the first use. The symbol's own
 * declaration gives the type (__typeof__), so a call or a read is
 * checked as if linked. A symbol used but not listed fails to link.
 */
typedef struct qtl_dl_lib {
  const char *soname;       /* "libhdf5_serial.so.103" */
  const char *purpose;      /* "NWB recordings", for the message */
  const char *const *names; /* n symbols */
  void **addr;              /* their addresses, once loaded */
  size_t n;
  int state;                /* 0 not tried, 1 loaded, -1 failed */
  char err[256];
} qtl_dl_lib;

/* Load lib once (any thread); QUANTAL_EUNSUPPORTED naming file (may be
 * NULL), the library and the reason when it cannot be. */
quantal_status qtl_dl_load(qtl_dl_lib *lib, const char *file,
                           quantal_diag *diag);

#define QTL_DL_ENUM_(s) QTL_DLX_##s,
#define QTL_DL_NAME_(s) #s,
#define QTL_DL_LIB(var, LIST, soname, purpose)                               \
  enum { LIST(QTL_DL_ENUM_) QTL_DLX_N_##var };                               \
  static const char *const var##_names[] = {LIST(QTL_DL_NAME_)};             \
  static void *var##_addr[QTL_DLX_N_##var];                                  \
  static qtl_dl_lib var = {soname, purpose, var##_names, var##_addr,         \
                           QTL_DLX_N_##var, 0, {0}}
#define QTL_DL_SYM(var, s) (*(__typeof__(s) *)var##_addr[QTL_DLX_##s])

/* Bounded string copy that always terminates dst. */
void qtl_strlcpy(char *dst, const char *src, size_t size);

/* Case-insensitive check that path ends with suffix (".wav"). */
int qtl_has_suffix(const char *path, const char *suffix);

/*
 * A reading backend. A backend's open function fills the recording's info,
 * channels and sweeps, and sets ops and ctx. read() returns *stored*
 * values (before the recording layer applies scale and offset) of all
 * channels, interleaved, for frames [first, first + n), which the caller
 * has checked lie inside the recording.
 */
typedef struct qtl_backend_ops {
  quantal_status (*read)(void *ctx, uint64_t first, size_t n, double *out,
                         quantal_diag *diag);
  void (*close)(void *ctx);
  /* Optional: frames first..first+n of channel ch alone, as stored
   * times scale plus offset (a backend that can pick one channel
   * cheaply; NULL: read takes all). */
  quantal_status (*read_channel)(void *ctx, size_t ch, uint64_t first,
                                 size_t n, double scale, double offset,
                                 double *out, quantal_diag *diag);
  /* Optional: for each run of sub frames of frames first..first+n of
   * channel ch (the last run may be shorter), the smallest and largest
   * finite value as stored (before scale and offset); lo > hi for a run
   * without one. Lets a trigger search find its levels without
   * converting every sample. */
  quantal_status (*channel_range)(void *ctx, size_t ch, uint64_t first,
                                  size_t n, size_t sub, float *lo, float *hi,
                                  quantal_diag *diag);
  /* Optional: 1 when every value the last read or read_channel returned
   * is finite, 0 when one may not be (or it is not known). */
  int (*last_finite)(void *ctx);
} qtl_backend_ops;

struct quantal_recording {
  char path[1024];
  quantal_recording_info info;
  quantal_channel_info *channels; /* info.n_channels entries */
  uint64_t *sweep_first;          /* info.n_sweeps entries */
  uint64_t *sweep_frames;         /* info.n_sweeps entries */
  const qtl_backend_ops *ops;
  void *ctx;
  double *scratch;                /* interleaved block for single-channel reads */
  size_t scratch_frames;
  size_t last_ch;                 /* channel of the last read (see
                                     qtl_recording_read_finite) */
};

/* Allocate channels (n) and a single sweep covering frames; sets
 * info.n_channels, info.n_sweeps = 1 and default channel descriptions
 * ("ch1", "au", scale 1). */
quantal_status qtl_recording_alloc_layout(quantal_recording *rec, size_t n,
                                          quantal_diag *diag);

/* Set the sweep table to n sweeps (arrays are copied). */
quantal_status qtl_recording_set_sweeps(quantal_recording *rec, size_t n,
                                        const uint64_t *first,
                                        const uint64_t *frames,
                                        quantal_diag *diag);

/* Make data (frames x n_channels doubles, interleaved, sweeps
 * concatenated; taken over, freed on close or failure) the backend of
 * rec. */
quantal_status qtl_memory_backend(quantal_recording *rec, double *data,
                                  size_t n_channels, quantal_diag *diag);

/* A recording held in memory: one channel of frames samples at rate_hz
 * (data taken over, freed on close or failure), named name with unit.
 * path is only used in messages. For analysing simulated traces with the
 * functions that read recordings. */
quantal_status qtl_recording_from_memory(const char *path, double *data,
                                         uint64_t frames, double rate_hz,
                                         const char *name, const char *unit,
                                         quantal_recording **out,
                                         quantal_diag *diag);

/* Backends. Each returns QUANTAL_EFORMAT with a reason when the file is not
 * in its format. */
quantal_status qtl_sndfile_open(quantal_recording *rec, quantal_diag *diag);
quantal_status qtl_text_open(quantal_recording *rec, double rate_hz,
                             quantal_diag *diag);

/* Parse quantal's own metadata string ("quantal-units=mV,V;
 * quantal-scales=1,1; quantal-names=Vm,TTL") into the channel table. Returns
 * 1 when the string was quantal metadata, 0 otherwise. */
int qtl_metadata_parse(quantal_recording *rec, const char *text);
/* Format metadata for n channels into buf. */
quantal_status qtl_metadata_format(char *buf, size_t size, size_t n,
                                   const char *const *names,
                                   const char *const *units,
                                   const double *scales, const char *comment);

/* 1.4826 * median absolute deviation of v (n > 0, no NaN); v is
 * overwritten with the absolute deviations. */
double qtl_mad_sd(double *v, size_t n);
/* qtl_mad_sd, also giving the median it found (when median is not NULL). */
double qtl_mad_sd_med(double *v, size_t n, double *median);

/* Atomic output: open a temporary file next to path (mkstemp), returning
 * its name in tmp (size bytes) and its descriptor. */
int qtl_tmpfile_near(const char *path, char *tmp, size_t size);

/* ---- fit module (model.c, fit.c, gof.c) ---- */

/* Release distribution of a mixture. */
typedef enum qtl_release {
  QTL_REL_POISSON = 0,  /* P(k) Poisson(m) */
  QTL_REL_BINOMIAL = 1, /* Binomial(n, p) */
  QTL_REL_BETABIN = 2,  /* beta-binomial(n, mean p, intra-class rho) */
  QTL_REL_FREE = 3      /* free weights w[k], k = k_first..n */
} qtl_release;

/* One quantal mixture, on sign-corrected (positive q) amplitudes. */
typedef struct qtl_mix {
  qtl_release release;
  quantal_qshape shape; /* GAUSSIAN or GAMMA */
  unsigned n;           /* sites, or the largest k of a free mixture */
  unsigned k_first;     /* free mixture: 0, or 1 without failures */
  double m, p, rho;
  const double *w;      /* free weights w[0..n] */
  double q, sigma_q, sigma0;
  /* Noise-only amplitudes (shams) known to hold no release, each
   * N(0, sigma0^2): their count and sum of squares (0, 0: none). */
  double sham_n, sham_ss;
} qtl_mix;

/* Reusable workspace of per-component arrays (grown on demand). */
typedef struct qtl_lik_ws {
  size_t kcap;
  double *logp, *c, *h, *mu, *v, *lbuf, *rk, *ga, *gc; /* kcap each */
  double *bpre, *bsuf; /* bounds on dropped terms, kcap + 1 each */
  double *rk4;         /* responsibilities per vector lane, 8 kcap */
  double *kc8;         /* constants of each component, 8 kcap (model.c) */
  double *lgam;                                        /* ln k!, kcap+1 */
  /* > 0: the trims of the vector sums (TRIM_T and TRIM_D of model.c)
   * used instead of the defaults; the interval search of fit.c loosens
   * them. */
  double trim_t, trim_d;
} qtl_lik_ws;

/* QTL_LIK_HESS (Gaussian components; Poisson, binomial or free release)
 * adds the gradient and Hessian in theta = (release: m or p, q,
 * sigma_0^2, sigma_q^2); implies QTL_LIK_GRAD. */
enum { QTL_LIK_GRAD = 1, QTL_LIK_EM = 2, QTL_LIK_HESS = 4 };
enum { QTL_TH_REL = 0, QTL_TH_Q = 1, QTL_TH_V0 = 2, QTL_TH_VQ = 3, QTL_NTH = 4 };

/* Log-likelihood and, on request, its gradient in q, sigma_0, sigma_q
 * (ws->rk[k] then holds the responsibilities summed over points, from
 * which release-parameter gradients follow) and EM sums. */
typedef struct qtl_lik_out {
  double loglik;
  unsigned kmax;
  double d_q, d_sigma0, d_sigma_q;
  double em_r, em_rk, em_rk2, em_e2, em_ke2, em_b;
  double g_th[QTL_NTH], h_th[QTL_NTH][QTL_NTH]; /* QTL_LIK_HESS */
} qtl_lik_out;

qtl_lik_ws *qtl_lik_ws_alloc(void);
void qtl_lik_ws_free(qtl_lik_ws *ws);
unsigned qtl_mix_kmax(const qtl_mix *mix);
quantal_status qtl_mix_logpmf(const qtl_mix *mix, qtl_lik_ws *ws,
                              unsigned *kmax);
quantal_status qtl_mix_loglik(const qtl_mix *mix, const double *x, size_t nx,
                              const double *minis, size_t nm, qtl_lik_ws *ws,
                              int flags, qtl_lik_out *out);
/* CDF and density at x; ws must hold the constants of a qtl_mix_loglik
 * call with the same mix (K = out.kmax). */
double qtl_mix_cdf(const qtl_mix *mix, const qtl_lik_ws *ws, unsigned K,
                   double x);
double qtl_mix_density(const qtl_mix *mix, const qtl_lik_ws *ws, unsigned K,
                       double x);

/* KS and AD statistics of sorted data against the mixture (gof.c). */
void qtl_gof_stats(const qtl_mix *mix, const qtl_lik_ws *ws, unsigned K,
                   const double *sorted, size_t n, double *ks, double *ad);
/* Observed and expected counts in nbins equal-width bins over the data. */
quantal_status qtl_gof_bins(const qtl_mix *mix, const qtl_lik_ws *ws,
                            unsigned K, const double *sorted, size_t n,
                            size_t nbins, double *lo, double *hi,
                            size_t *obs, double *expect);

/* ---- end fit module ---- */

/* ---- formats module (abf.c, atf.c) ---- */

/* Axon Binary Format, ABF1 (1.x) and ABF2 (2.x): rec->path starts with
 * "ABF " or "ABF2". Sweeps, channel names, units and int16 scaling come
 * from the header; the data are read block by block. */
quantal_status qtl_abf_open(quantal_recording *rec, quantal_diag *diag);
/* libbiosig's formats (biosig.c): 1 when the first bytes name one. */
int qtl_biosig_magic(const unsigned char *head, size_t n);
quantal_status qtl_biosig_open(quantal_recording *rec, quantal_diag *diag);

/* Neurodata Without Borders 2.x (nwb.c): 1 when the file starts with the
 * HDF5 signature, at byte 0 or after a user block (512, 1024, ...). */
int qtl_nwb_magic(const char *path, const unsigned char *head, size_t n);
/* The icephys responses under /acquisition: sweeps from sweep_number,
 * channels from the electrodes, units as mV and pA. Read whole into
 * memory by a child process running libhdf5. */
quantal_status qtl_nwb_open(quantal_recording *rec, quantal_diag *diag);

/* Axon Text File (first line "ATF 1.0"): sweeps from the "Signals="
 * record, units from the column titles, the rate from the Time column
 * (else rate_hz, 0 = none). Parsed whole into memory. */
quantal_status qtl_atf_open(quantal_recording *rec, double rate_hz,
                            quantal_diag *diag);

/* ---- end formats module ---- */

/* ---- detect module (filter.c, template.c, detect.c, measure.c) ---- */

/* Median of v[0..n) (the mean of the two middle values for even n, as
 * gsl_stats_median); NaN for n = 0. v is left as it was (reordered only
 * when memory runs out). v must hold no NaN. */
double qtl_median(double *v, size_t n);
/* Medians of the ncol columns of an m-row table (row i at t + i * ld)
 * into med[0..ncol), exactly as qtl_median of each; t is overwritten.
 * -1 (nothing done) when m is 0 or above 128. t must hold no NaN. */
int qtl_median_columns(double *t, size_t m, size_t ncol, size_t ld,
                       double *med);
/* qsort comparison of doubles (NaN-free), ascending. */
int qtl_cmp_double(const void *a, const void *b);
/* Percentile f of sorted v[0..n-1], linear between order statistics
 * (type 7); NaN for n = 0. */
double qtl_percentile_sorted(const double *v, size_t n, double f);
/* The next of B replicates for a worker thread of a bootstrap: *next
 * taken and advanced under mu, the claim reported to on_progress (may be
 * NULL); B or more when none is left. */
unsigned qtl_claim_next(pthread_mutex_t *mu, unsigned *next, unsigned B,
                        void (*on_progress)(size_t done, size_t total,
                                            void *user),
                        void *user);
/* child.c: a reader that runs a library in a child process. Start
 * child(path, write end) in a forked process (it must _exit); *fd is the
 * read end. Finish: close fd, reap the child and return its wait
 * status. */
quantal_status qtl_child_start(const char *path,
                               void (*child)(const char *path, int fd),
                               int *fd, pid_t *pid, quantal_diag *diag);
int qtl_child_finish(int fd, pid_t pid);
/* Write or read exactly n bytes on a pipe, through EINTR; -1 on error or
 * end of file. */
int qtl_write_all(int fd, const void *buf, size_t n);
int qtl_read_all(int fd, void *buf, size_t n);

/* Single-precision FFT overlap-save correlation with a fixed kernel k:
 * out[i] = sum_j k[j] (x[i + j] - c_b), i = 0..n-klen, c_b the mean of
 * the FFT block that computes out[i] (written to block_shift[i] when not
 * NULL). Plans are made once, under a lock, at allocation. A kernel of at
 * most direct_max taps is summed directly instead (c_b = 0), in single
 * precision where the CPU has AVX2 and FMA, in double elsewhere. */
typedef struct qtl_xcorr qtl_xcorr;
quantal_status qtl_xcorr_alloc(const double *k, size_t klen,
                               size_t direct_max, qtl_xcorr **out,
                               quantal_diag *diag);
void qtl_xcorr_run(qtl_xcorr *c, const double *x, size_t n, double *out,
                   double *block_shift);
size_t qtl_xcorr_klen(const qtl_xcorr *c);
/* The frame of x[0] for the next runs (default 0): the FFT segments and
 * direct-sum chunks are cut at fixed frames, so that the float rounding
 * of an output depends on its frame alone, not on where the run starts,
 * except within qtl_xcorr_margin frames of either end of the run. */
void qtl_xcorr_set_phase(qtl_xcorr *c, uint64_t phase);
size_t qtl_xcorr_margin(const qtl_xcorr *c);
/* 1 when the last quantal_recording_read of rec is known to have
 * returned only finite values (the backend saw them as it read, and
 * neither scale nor offset can have overflowed), else 0. */
int qtl_recording_read_finite(const quantal_recording *rec);
/* The baseline of a filtered block (filter.c): the running median of
 * the segment medians of the grid segments g0 .. g0 + ng - 1 (seg frames
 * each), run[g] for segment g0 + g; run is NULL when no baseline was
 * removed. */
typedef struct qtl_baseline_grid {
  size_t seg, g0, ng;
  double *run;
} qtl_baseline_grid;
/* quantal_filter_block, also keeping the baseline's grid in *keep (when
 * not NULL; free keep->run), so that the baseline of single frames can be
 * had later without the array. */
quantal_status qtl_filter_block_grid(double *x, size_t n, uint64_t first_frame,
                                     double rate_hz,
                                     const quantal_filter_options *o,
                                     double *baseline, qtl_baseline_grid *keep,
                                     quantal_diag *diag);
/* The baseline that quantal_filter_block removed at frame f of the block
 * (bit for bit the value it writes); 0 when it removed none. */
double qtl_baseline_at(const qtl_baseline_grid *bg, uint64_t f);
/* Whether this CPU runs AVX2 and FMA (the vector paths of the detector's
 * scans, criterion and short filters); 0 off x86-64. Those paths are
 * compiled where QTL_X86_SIMD is defined (x86-64 with GCC or Clang, whose
 * target attributes they use). */
#if defined(__x86_64__) && defined(__GNUC__)
#define QTL_X86_SIMD 1
#endif
int qtl_have_avx2(void);
void qtl_xcorr_free(qtl_xcorr *c);

/* Lock around FFTW plan creation and destruction (not thread-safe). */
void qtl_plan_lock(void);
void qtl_plan_unlock(void);

/* Peak time and 10-90 % rise time of the unit-peak bi-exponential
 * (1 - exp(-t / rise)) exp(-t / decay). */
double qtl_biexp_tpeak(double rise_s, double decay_s);
double qtl_biexp_rise_10_90(double rise_s, double decay_s);

/* Make quantal_template_criterion compute the criterion only where
 * polarity * criterion >= thr (raw criterion units) and write NaN
 * elsewhere: the test is a comparison of squares, so the division and
 * square root are skipped for the samples under the threshold (most of
 * them). thr <= 0 turns the screen off. */
void qtl_template_matcher_screen(quantal_matcher *m, double thr,
                                 int polarity);
/* A span [lo, hi) of indices. */
typedef struct qtl_span {
  size_t lo, hi;
} qtl_span;
/* After a screened quantal_template_criterion: the sorted spans of its
 * outputs (indices into its crit array) where the screen passed, so
 * that every value that is not NaN lies in one. -1 when unscreened or
 * when they could not be kept (memory). */
int qtl_template_matcher_hits(const quantal_matcher *m, const qtl_span **hit,
                              size_t *nhit);
/* out[i] = (double)f[i], i < n (exact; AVX2 where it runs). */
void qtl_widen_float(double *out, const float *f, size_t n);
/* Make qtl_xcorr_run record the spans of its outputs that hold every
 * output with pol out >= thr (thr <= 0: off), and read them after a run:
 * -1 when off or not recorded (the FFT and scalar paths do not). */
void qtl_xcorr_screen(qtl_xcorr *c, double thr, int pol);
int qtl_xcorr_hits(const qtl_xcorr *c, const qtl_span **hit, size_t *nhit);
/* Make quantal_template_criterion write the criterion times s (1 until
 * called): the product the caller would otherwise form in a pass of its
 * own, the same bits. */
void qtl_template_matcher_scale(quantal_matcher *m, double s);
/* qtl_xcorr_set_phase and qtl_xcorr_margin of the matcher's correlation. */
void qtl_template_matcher_phase(quantal_matcher *m, uint64_t phase);
size_t qtl_template_matcher_margin(const quantal_matcher *m);

/* ---- end detect module ---- */

/* ---- compare module (compare.c, compare_waveform.c) ---- */

/* The waveform path's per-thread workspace (a replicate's recording, its
 * responses and minis), for waveform shape w (borrowed while in use). */
typedef struct qtl_wave_ws qtl_wave_ws;
qtl_wave_ws *qtl_wave_ws_alloc(const quantal_waveform_shape *w);
void qtl_wave_ws_free(qtl_wave_ws *ws);

/* Check w and the simulator's parameters it implies with truth. */
quantal_status qtl_wave_check(const quantal_waveform_shape *w,
                              const quantal_release_params *truth,
                              quantal_diag *diag);

/* One replicate: simulate the recording (seed), measure the responses
 * into amps (w->n_stim values) and their finite shams into shams (room
 * for 2 w->n_stim; *n_shams of them) and detect the minis (*minis points
 * into ws, valid until the next call); wave gets QUANTAL_WAVE_COUNT
 * numbers.
 * A status other than QUANTAL_OK and QUANTAL_ENOMEM means this
 * recording could not be analysed. */
quantal_status qtl_wave_replicate(const quantal_waveform_shape *w,
                                  const quantal_release_params *truth,
                                  uint64_t seed, size_t replicate,
                                  qtl_wave_ws *ws, double *amps,
                                  double *shams, size_t *n_shams,
                                  const double **minis, size_t *n_minis,
                                  double *wave, quantal_diag *diag);

/* ---- end compare module ---- */

/* ---- json module (json.c) ---- */

/* A parsed JSON value (a small reader for quantal's own result files). */
typedef struct qtl_json qtl_json;
typedef enum qtl_json_type {
  QTL_JSON_NONE = 0,
  QTL_JSON_NULL,
  QTL_JSON_BOOL,
  QTL_JSON_NUMBER,
  QTL_JSON_STRING,
  QTL_JSON_ARRAY,
  QTL_JSON_OBJECT
} qtl_json_type;

/* Parse len bytes of text (name is used in messages). */
quantal_status qtl_json_parse(const char *text, size_t len, const char *name,
                              qtl_json **out, quantal_diag *diag);
/* Read and parse a file (at most 64 MiB). */
quantal_status qtl_json_read_file(const char *path, qtl_json **out,
                                  quantal_diag *diag);
void qtl_json_free(qtl_json *j);
qtl_json_type qtl_json_kind(const qtl_json *j);
/* Member of an object, or NULL. */
const qtl_json *qtl_json_get(const qtl_json *j, const char *key);
/* Nested members by a dotted path ("settings.n_max"), or NULL. */
const qtl_json *qtl_json_path(const qtl_json *j, const char *path);
/* Elements of an array or members of an object. */
size_t qtl_json_size(const qtl_json *j);
const qtl_json *qtl_json_at(const qtl_json *j, size_t i);
/* The member name of an object's member. */
const char *qtl_json_key(const qtl_json *j);
/* A number (true = 1, false = 0), else NaN; null is NaN. */
double qtl_json_number(const qtl_json *j);
/* A string, else NULL. */
const char *qtl_json_string(const qtl_json *j);

/* ---- end json module ---- */

#endif /* QUANTAL_INTERNAL_H */
