/* test_filter.c - unit tests of the exact medians and the pre-processing filters against plain references. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include <criterion/criterion.h>
#include <float.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void
suite_init(void)
{
  gsl_set_error_handler_off();
}

TestSuite(median, .init = suite_init);
TestSuite(filter, .init = suite_init);

/* ---- exact medians ----------------------------------------------------- */

/* gsl_stats_median of a copy: the value every median must reproduce,
 * bit for bit (an order statistic, or the mean of two, has one value
 * whatever the algorithm). */
static double
gsl_median_of(const double *v, size_t n)
{
  double *c = malloc(n * sizeof *c), m;
  cr_assert_not_null(c);
  memcpy(c, v, n * sizeof *c);
  m = gsl_stats_median(c, 1, n);
  free(c);
  return m;
}

/* Kinds of data: the cases a selection gets wrong (ties, runs, sorted
 * input, outliers that push a sample's bracket off). */
enum { K_GAUSS, K_TIES, K_FEW, K_CONST, K_UP, K_DOWN, K_OUTLIERS, K_BIG_TIE,
       K_N };

static void
fill(double *v, size_t n, int kind, gsl_rng *r)
{
  size_t i;
  for (i = 0; i < n; i++) {
    double g = gsl_ran_gaussian(r, 1.0);
    switch (kind) {
    case K_GAUSS: v[i] = g; break;
    case K_TIES: v[i] = floor(3.0 * g); break;     /* quantised trace */
    case K_FEW: v[i] = (double)(i % 3); break;     /* three values */
    case K_CONST: v[i] = 5.25; break;
    case K_UP: v[i] = (double)i * 0.5; break;
    case K_DOWN: v[i] = -(double)i; break;
    case K_OUTLIERS: v[i] = i % 3 ? 1e12 * (1.0 + g * g) : g; break;
    default: v[i] = i % 5 < 2 ? 0.125 : g; break; /* 40 % tied near 0 */
    }
  }
}

Test(median, equals_gsl_on_every_kind_and_size)
{
  static const size_t sizes[] = {1,    2,    3,    4,     5,     7,    8,
                                 9,    15,   16,   17,    25,    26,   40,
                                 63,   64,   80,   81,    96,    97,   255,
                                 256,  257,  1000, 8191,  8192,  8193, 10007,
                                 65536, 100001};
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  size_t is, bad = 0;
  int kind, rep;
  gsl_rng_set(r, 7);
  for (is = 0; is < sizeof sizes / sizeof *sizes; is++)
    for (kind = 0; kind < K_N; kind++)
      for (rep = 0; rep < (sizes[is] < 1000 ? 20 : 2); rep++) {
        size_t n = sizes[is];
        double *v = malloc(n * sizeof *v), *keep = malloc(n * sizeof *v);
        double want, got;
        cr_assert(v != NULL && keep != NULL);
        fill(v, n, kind, r);
        memcpy(keep, v, n * sizeof *v);
        want = gsl_median_of(v, n);
        got = qtl_median(v, n);
        if (!(got == want)) {
          bad++;
          cr_log_error("n %zu kind %d: %.17g, gsl %.17g", n, kind, got, want);
        }
        /* the values are left in place */
        cr_expect(memcmp(v, keep, n * sizeof *v) == 0, "n %zu kind %d", n,
                  kind);
        free(v);
        free(keep);
      }
  cr_expect_eq(bad, 0, "%zu medians differ from gsl_stats_median", bad);
  cr_expect(isnan(qtl_median(NULL, 0)));
  gsl_rng_free(r);
}

/* A million values, as in the detector's calibration: the sampled
 * bracket's path, and its tie and fallback paths. */
Test(median, equals_gsl_on_a_million_values)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  size_t n = ((size_t)1 << 20) + 3;
  double *v = malloc(n * sizeof *v);
  int kind;
  cr_assert_not_null(v);
  gsl_rng_set(r, 11);
  for (kind = 0; kind < K_N; kind++) {
    size_t m = kind % 2 ? n : n - 1; /* odd and even */
    fill(v, m, kind, r);
    cr_expect_eq(qtl_median(v, m), gsl_median_of(v, m), "kind %d", kind);
  }
  free(v);
  gsl_rng_free(r);
}

Test(median, mad_sd_equals_gsl_reference)
{
  static const size_t sizes[] = {1, 2, 3, 4, 80, 1001, 20000, 300001};
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  size_t is, i;
  int kind;
  gsl_rng_set(r, 13);
  for (is = 0; is < sizeof sizes / sizeof *sizes; is++)
    for (kind = 0; kind < K_N; kind++) {
      size_t n = sizes[is];
      double *v = malloc(n * sizeof *v), *d = malloc(n * sizeof *d);
      double med, want;
      cr_assert(v != NULL && d != NULL);
      fill(v, n, kind, r);
      med = gsl_median_of(v, n);
      for (i = 0; i < n; i++)
        d[i] = fabs(v[i] - med);
      want = 1.482602218505602 * gsl_median_of(d, n);
      cr_expect_eq(qtl_mad_sd(v, n), want, "n %zu kind %d", n, kind);
      free(v);
      free(d);
    }
  gsl_rng_free(r);
}

Test(median, columns_equal_one_by_one)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  size_t m, j, i, ncol = 21;
  int kind;
  gsl_rng_set(r, 17);
  for (m = 1; m <= 128; m += m < 30 ? 1 : 7)
    for (kind = 0; kind < K_N; kind++) {
      double *t = malloc(m * ncol * sizeof *t);
      double *med = malloc(ncol * sizeof *med);
      double col[128];
      cr_assert(t != NULL && med != NULL);
      fill(t, m * ncol, kind, r);
      for (j = 0; j < ncol; j++) {
        for (i = 0; i < m; i++)
          col[i] = t[i * ncol + j];
        med[j] = gsl_median_of(col, m);
      }
      {
        double *got = malloc(ncol * sizeof *got);
        cr_assert_eq(qtl_median_columns(t, m, ncol, ncol, got), 0);
        for (j = 0; j < ncol; j++)
          cr_expect_eq(got[j], med[j], "m %zu kind %d column %zu", m, kind,
                       j);
        free(got);
      }
      free(t);
      free(med);
    }
  {
    double t[129];
    cr_expect_eq(qtl_median_columns(t, 129, 1, 1, t), -1);
    cr_expect_eq(qtl_median_columns(t, 0, 1, 1, t), -1);
  }
  gsl_rng_free(r);
}

/* ---- references of the filters, as plain as they come ----------------- */

static size_t
frames_of(double s, double rate_hz)
{
  double v = floor(s * rate_hz + 0.5);
  return v < 1.0 ? 1 : (size_t)v;
}

/* The baseline as the filter documents it: per grid segment the median
 * of its finite samples at every stride-th grid frame (stride so that at
 * most 96 enter), Tukey's running median of those with the window shrunk
 * symmetrically at the block ends, gaps filled from the neighbours, then
 * linear between segment centres with a division per frame. */
static void
ref_baseline(const double *x, size_t n, uint64_t f0, double rate,
             double window_s, double segment_s, double *out)
{
  size_t seg = frames_of(segment_s, rate);
  size_t half = frames_of(window_s, rate) / seg / 2;
  size_t g0 = (size_t)(f0 / seg), g1 = (size_t)((f0 + n - 1) / seg);
  size_t ng = g1 - g0 + 1, stride = (seg + 95) / 96, g, i;
  double *med = malloc(ng * sizeof *med), *run = malloc(ng * sizeof *run);
  double *tmp = malloc((seg + 2 * half + 1) * sizeof *tmp);
  cr_assert(med != NULL && run != NULL && tmp != NULL);
  for (g = 0; g < ng; g++) {
    uint64_t a = (uint64_t)(g0 + g) * seg, f;
    size_t m = 0;
    for (f = a; f < a + seg; f += stride)
      if (f >= f0 && f < f0 + n && isfinite(x[f - f0]))
        tmp[m++] = x[f - f0];
    med[g] = m ? gsl_median_of(tmp, m) : NAN;
  }
  for (g = 0; g < ng; g++) {
    size_t hw = half, k, m = 0;
    if (hw > g)
      hw = g;
    if (hw > ng - 1 - g)
      hw = ng - 1 - g;
    for (k = g - hw; k <= g + hw; k++)
      if (isfinite(med[k]))
        tmp[m++] = med[k];
    run[g] = m ? gsl_median_of(tmp, m) : NAN;
  }
  for (g = 1; g < ng; g++)
    if (!isfinite(run[g]))
      run[g] = run[g - 1];
  for (g = ng - 1; g-- > 0;)
    if (!isfinite(run[g]))
      run[g] = run[g + 1];
  for (i = 0; i < n; i++) {
    double pos = ((double)(f0 + i) + 0.5) / (double)seg - 0.5 - (double)g0;
    size_t k = pos > 0.0 ? (size_t)pos : 0;
    if (pos <= 0.0)
      out[i] = run[0];
    else if (k + 1 >= ng)
      out[i] = run[ng - 1];
    else
      out[i] = run[k] + (pos - (double)k) * (run[k + 1] - run[k]);
  }
  free(med);
  free(run);
  free(tmp);
}

/* The hum removal for a whole number P of samples per mains cycle, as the
 * filter documents it: per grid window each cycle averaged in nbin bins,
 * the median of each bin over the window's cycles, projected on cos/sin of
 * each harmonic (the bin averaging's Dirichlet gain undone), the waveforms
 * linear between window centres. */
static void
ref_mains(double *x, size_t n, uint64_t f0, double rate, double mains_hz,
          unsigned H, double window_s)
{
  size_t w = frames_of(window_s, rate);
  size_t P = (size_t)floor(rate / mains_hz + 0.5);
  size_t g0 = (size_t)(f0 / w), ng = (size_t)((f0 + n - 1) / w) - g0 + 1;
  size_t nbin, bw, g, i, bn, p;
  unsigned h;
  double(*ca)[16] = calloc(ng, sizeof *ca);
  double(*cb)[16] = calloc(ng, sizeof *cb);
  double *hw = malloc(ng * P * sizeof *hw), inv_w = 1.0 / (double)w;
  cr_assert(ca != NULL && cb != NULL && hw != NULL);
  cr_assert(fabs(rate / mains_hz - (double)P) < 1e-9);
  if (mains_hz * H >= rate / 2.0)
    H = (unsigned)floor((rate / 2.0 - 1e-9) / mains_hz);
  for (nbin = P < 64 ? P : 64; nbin > 1 && P % nbin != 0; nbin--)
    ;
  if (nbin < 4 * H)
    nbin = P;
  bw = P / nbin;
  for (g = 0; g < ng; g++) {
    uint64_t a = (uint64_t)(g0 + g) * w, b = a + w, f;
    size_t ncyc, c0;
    double *s, *c, *vals, nused = 0.0;
    if (a < f0)
      a = f0;
    if (b > f0 + n)
      b = f0 + n;
    c0 = (size_t)(a / P);
    ncyc = (size_t)((b - 1) / P) + 1 - c0;
    s = calloc(ncyc * nbin, sizeof *s);
    c = calloc(ncyc * nbin, sizeof *c);
    vals = malloc(ncyc * sizeof *vals);
    cr_assert(s != NULL && c != NULL && vals != NULL);
    for (f = a; f < b; f++) {
      size_t cell = (size_t)(f / P - c0) * nbin + (size_t)(f % P) / bw;
      if (isfinite(x[f - f0])) {
        s[cell] += x[f - f0];
        c[cell] += 1.0;
      }
    }
    for (bn = 0; bn < nbin; bn++) {
      size_t m = 0, cy;
      double med;
      for (cy = 0; cy < ncyc; cy++)
        if (c[cy * nbin + bn] > 0.0)
          vals[m++] = s[cy * nbin + bn] / c[cy * nbin + bn];
      if (m == 0)
        continue;
      med = gsl_median_of(vals, m);
      nused += 1.0;
      for (h = 0; h < H; h++) {
        double ph = 2.0 * M_PI * (double)(h + 1) *
                    ((double)(bn * bw) + 0.5 * (double)(bw - 1)) / (double)P;
        ca[g][h] += med * cos(ph);
        cb[g][h] += med * sin(ph);
      }
    }
    for (h = 0; h < H; h++) {
      double u = M_PI * (double)(h + 1) / (double)P;
      double gain = bw > 1 ? sin(u * (double)bw) / ((double)bw * sin(u)) : 1.0;
      ca[g][h] = nused > 0 ? 2.0 * ca[g][h] / nused / gain : 0.0;
      cb[g][h] = nused > 0 ? 2.0 * cb[g][h] / nused / gain : 0.0;
    }
    free(s);
    free(c);
    free(vals);
  }
  for (g = 0; g < ng; g++)
    for (p = 0; p < P; p++) {
      double v = 0.0;
      for (h = 0; h < H; h++) {
        size_t mm = (h + 1) * p % P;
        v += ca[g][h] * cos(2.0 * M_PI * (double)mm / (double)P) +
             cb[g][h] * sin(2.0 * M_PI * (double)mm / (double)P);
      }
      hw[g * P + p] = v;
    }
  for (i = 0; i < n; i++) {
    double pos = ((double)(f0 + i) + 0.5) * inv_w - 0.5 - (double)g0;
    size_t k = pos > 0.0 ? (size_t)pos : 0, ph = (size_t)((f0 + i) % P);
    if (pos <= 0.0)
      x[i] -= hw[ph];
    else if (k + 1 >= ng)
      x[i] -= hw[(ng - 1) * P + ph];
    else
      x[i] -= hw[k * P + ph] +
              (pos - (double)k) * (hw[(k + 1) * P + ph] - hw[k * P + ph]);
  }
  free(ca);
  free(cb);
  free(hw);
}

/* 10 s at 20 kHz: -60 mV, drift, 50 Hz hum with harmonics, noise,
 * events; optionally quantised to 0.05 mV and with NaN runs. */
static double *
trace(size_t n, double rate, int quantise, int gaps, unsigned long seed)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  double *x = malloc(n * sizeof *x);
  size_t i;
  cr_assert_not_null(x);
  gsl_rng_set(r, seed);
  for (i = 0; i < n; i++) {
    double t = (double)i / rate;
    x[i] = -60.0 + 0.4 * t + 0.3 * sin(2 * M_PI * 50 * t + 0.4) +
           0.1 * cos(2 * M_PI * 150 * t) + gsl_ran_gaussian(r, 0.05);
  }
  for (i = 0; i < n; i += 1000 + gsl_rng_uniform_int(r, 4000)) {
    size_t k;
    for (k = 0; k < 2000 && i + k < n; k++)
      x[i + k] += 2.0 * exp(-(double)k / 200.0) * (1 - exp(-(double)k / 10.0));
  }
  if (quantise)
    for (i = 0; i < n; i++)
      x[i] = 0.05 * floor(x[i] / 0.05);
  if (gaps) {
    for (i = 5000; i < n; i += 17011)
      x[i] = NAN;
    for (i = 60000; i < 60000 + 900 && i < n; i++)
      x[i] = NAN; /* over two segments */
  }
  gsl_rng_free(r);
  return x;
}

/* How far a filter may be from its reference, for a trace of largest
 * magnitude scale whose frames lie up to cells grid cells (segments or
 * windows) from frame 0. The filters compute every frame's position and
 * weight as the references do, to the last bit, so the match is exact
 * where double arithmetic rounds once per operation. Where the compiler
 * may fuse a multiply and an add (FMA) or keep more precision, the two
 * may round differently: the reference's hum position, near cells, then
 * rounds once at that magnitude and the filter's weight does not, a
 * difference of about cells 2^-52, times the change of the hum from one
 * window to the next. */
static double
tolerance(double scale, double cells)
{
#if FLT_EVAL_METHOD == 0 && !defined(__FP_FAST_FMA)
  (void)scale;
  (void)cells;
  return 0.0;
#else
  return scale * (1e-12 + cells * DBL_EPSILON);
#endif
}

static double
max_abs(const double *x, size_t n)
{
  double m = 0.0;
  size_t i;
  for (i = 0; i < n; i++)
    if (fabs(x[i]) > m)
      m = fabs(x[i]);
  return m;
}

/* Largest |a - b| over n values, NaN in both counting as equal, NaN in
 * one as infinitely far. */
static double
worst_diff(const double *a, const double *b, size_t n)
{
  double m = 0.0;
  size_t i;
  for (i = 0; i < n; i++) {
    double d = isnan(a[i]) && isnan(b[i]) ? 0.0 : fabs(a[i] - b[i]);
    if (!(d <= m))
      m = isnan(d) ? INFINITY : d;
  }
  return m;
}

/* Blocks starting anywhere on the grids (segment 400, window 10000 and
 * cycle 400 frames at 20 kHz), far from frame 0 too, with lengths that
 * end inside a segment. */
static const uint64_t block_start[] = {0, 1, 399, 4321, 10000, 1234567,
                                       ((uint64_t)1 << 33) + 5};
static const size_t block_len[] = {1, 399, 10001, 77777, 200000};

Test(filter, baseline_equals_reference)
{
  const double rate = 20000.0;
  size_t n = 200000, il, ib;
  int kind;
  for (kind = 0; kind < 3; kind++) {
    double *x = trace(n, rate, kind == 1, kind == 2, 21 + kind);
    double *b = malloc(n * sizeof *b), *ref = malloc(n * sizeof *ref);
    double scale = max_abs(x, n);
    cr_assert(b != NULL && ref != NULL);
    for (ib = 0; ib < sizeof block_start / sizeof *block_start; ib++)
      for (il = 0; il < sizeof block_len / sizeof *block_len; il++) {
        size_t m = block_len[il];
        double d;
        cr_assert_eq(quantal_filter_baseline(x, m, block_start[ib], rate,
                                             0.5, 0.02, b, NULL),
                     QUANTAL_OK);
        ref_baseline(x, m, block_start[ib], rate, 0.5, 0.02, ref);
        d = worst_diff(b, ref, m);
        cr_expect_leq(d, tolerance(scale, (double)(block_start[ib] + m)),
                      "kind %d start %llu length %zu: off by %g", kind,
                      (unsigned long long)block_start[ib], m, d);
      }
    free(x);
    free(b);
    free(ref);
  }
}

Test(filter, baseline_equals_reference_on_odd_grids)
{
  /* an odd segment (centres on a frame), a segment of one frame, a
   * segment pooled with a stride, and a long window */
  static const double cfg[][3] = {{9999.0, 0.5, 0.0201},
                                  {1000.0, 0.004, 0.001},
                                  {20000.0, 0.5, 0.25},
                                  {20000.0, 3.0, 0.007}};
  size_t n = 60000, c, ib;
  for (c = 0; c < sizeof cfg / sizeof *cfg; c++) {
    double *x = trace(n, cfg[c][0], 0, 1, 31);
    double *b = malloc(n * sizeof *b), *ref = malloc(n * sizeof *ref);
    double scale = max_abs(x, n);
    cr_assert(b != NULL && ref != NULL);
    for (ib = 0; ib < sizeof block_start / sizeof *block_start; ib++) {
      double d;
      cr_assert_eq(quantal_filter_baseline(x, n, block_start[ib], cfg[c][0],
                                           cfg[c][1], cfg[c][2], b, NULL),
                   QUANTAL_OK);
      ref_baseline(x, n, block_start[ib], cfg[c][0], cfg[c][1], cfg[c][2],
                   ref);
      d = worst_diff(b, ref, n);
      cr_expect_leq(d, tolerance(scale, (double)(block_start[ib] + n)),
                    "grid %zu start %llu: off by %g", c,
                    (unsigned long long)block_start[ib], d);
    }
    free(x);
    free(b);
    free(ref);
  }
}

/* The baseline of single frames from the kept grid (what detect reports
 * in its baseline column) is the array's value to the bit, on ordinary
 * and odd grids, blocks anywhere (one far out, where the exact shortcut
 * ends), NaN gaps included. */
Test(filter, baseline_at_a_frame_equals_the_array)
{
  static const double cfg[][3] = {{20000.0, 0.5, 0.02},
                                  {9999.0, 0.5, 0.0201},
                                  {1000.0, 0.004, 0.001},
                                  {20000.0, 3.0, 0.007}};
  static const uint64_t starts[] = {0, 1, 399, 1234567,
                                    ((uint64_t)1 << 40) - 30000};
  size_t n = 60000, c, ib, i;
  for (c = 0; c < sizeof cfg / sizeof *cfg; c++) {
    double *x = trace(n, cfg[c][0], c == 0, 1, 41 + (int)c);
    double *y = malloc(n * sizeof *y), *b = malloc(n * sizeof *b);
    quantal_filter_options o = quantal_filter_options_default();
    o.baseline_window_s = cfg[c][1];
    o.baseline_segment_s = cfg[c][2];
    o.mains_hz = 0.0;
    cr_assert(y != NULL && b != NULL);
    for (ib = 0; ib < sizeof starts / sizeof *starts; ib++) {
      qtl_baseline_grid g;
      memcpy(y, x, n * sizeof *y);
      cr_assert_eq(qtl_filter_block_grid(y, n, starts[ib], cfg[c][0], &o, b,
                                         &g, NULL),
                   QUANTAL_OK);
      cr_assert_not_null(g.run);
      for (i = 0; i < n; i++) {
        double v = qtl_baseline_at(&g, starts[ib] + i);
        cr_assert(memcmp(&v, &b[i], sizeof v) == 0,
                  "grid %zu start %llu frame %zu: %.17g, array %.17g", c,
                  (unsigned long long)starts[ib], i, v, b[i]);
      }
      free(g.run);
    }
    free(x);
    free(y);
    free(b);
  }
}

Test(filter, mains_equals_reference)
{
  /* 20 kHz and 50 Hz (400 frames a cycle, 50 bins of 8); 44.1 kHz and
   * 60 Hz (735, 49 bins of 15); 1 kHz and 50 Hz (20 bins of 1, harmonics
   * cut to 9); windows of 6.5 cycles (partial cycles in every window) */
  static const double cfg[][4] = {{20000.0, 50.0, 5, 0.5},
                                  {44100.0, 60.0, 5, 0.5},
                                  {1000.0, 50.0, 12, 0.5},
                                  {20000.0, 50.0, 3, 0.13}};
  size_t n = 200000, c, ib, il, i;
  int kind;
  for (c = 0; c < sizeof cfg / sizeof *cfg; c++)
    for (kind = 0; kind < 2; kind++) {
      double *x = trace(n, cfg[c][0], 0, kind, 41);
      double *y = malloc(n * sizeof *y), *ref = malloc(n * sizeof *ref);
      double scale;
      cr_assert(y != NULL && ref != NULL);
      /* baseline-free, as the hum removal expects */
      ref_baseline(x, n, 0, cfg[c][0], 0.5, 0.02, y);
      for (i = 0; i < n; i++)
        x[i] -= y[i];
      scale = max_abs(x, n);
      for (ib = 0; ib < sizeof block_start / sizeof *block_start; ib++)
        for (il = 0; il < sizeof block_len / sizeof *block_len; il++) {
          size_t m = block_len[il];
          double d;
          memcpy(y, x, m * sizeof *y);
          memcpy(ref, x, m * sizeof *ref);
          cr_assert_eq(quantal_filter_mains(y, m, block_start[ib], cfg[c][0],
                                            cfg[c][1], (unsigned)cfg[c][2],
                                            cfg[c][3], NULL),
                       QUANTAL_OK);
          ref_mains(ref, m, block_start[ib], cfg[c][0], cfg[c][1],
                    (unsigned)cfg[c][2], cfg[c][3]);
          d = worst_diff(y, ref, m);
          cr_expect_leq(d,
                        tolerance(scale, (double)(block_start[ib] + m) /
                                             (cfg[c][0] * cfg[c][3])),
                        "config %zu gaps %d start %llu length %zu: off by %g",
                        c, kind, (unsigned long long)block_start[ib], m, d);
        }
      free(x);
      free(y);
      free(ref);
    }
}

Test(filter, block_is_baseline_then_mains)
{
  const double rate = 20000.0;
  quantal_filter_options o = quantal_filter_options_default();
  size_t n = 200000, ib;
  double *x = trace(n, rate, 0, 1, 51), scale = max_abs(x, n);
  double *y = malloc(n * sizeof *y), *ref = malloc(n * sizeof *ref);
  double *b = malloc(n * sizeof *b), *rb = malloc(n * sizeof *rb);
  cr_assert(y != NULL && ref != NULL && b != NULL && rb != NULL);
  for (ib = 0; ib < sizeof block_start / sizeof *block_start; ib++) {
    uint64_t f0 = block_start[ib];
    size_t i;
    memcpy(y, x, n * sizeof *y);
    cr_assert_eq(quantal_filter_block(y, n, f0, rate, &o, b, NULL),
                 QUANTAL_OK);
    ref_baseline(x, n, f0, rate, o.baseline_window_s, o.baseline_segment_s,
                 rb);
    for (i = 0; i < n; i++)
      ref[i] = x[i] - rb[i];
    ref_mains(ref, n, f0, rate, o.mains_hz, o.mains_harmonics,
              o.mains_window_s);
    cr_expect_leq(worst_diff(b, rb, n), tolerance(scale, (double)(f0 + n)),
                  "start %llu",
                  (unsigned long long)f0);
    cr_expect_leq(worst_diff(y, ref, n), tolerance(scale, (double)(f0 + n)),
                  "start %llu",
                  (unsigned long long)f0);
    /* and without the baseline array */
    memcpy(ref, y, n * sizeof *ref);
    memcpy(y, x, n * sizeof *y);
    cr_assert_eq(quantal_filter_block(y, n, f0, rate, &o, NULL, NULL),
                 QUANTAL_OK);
    cr_expect_leq(worst_diff(y, ref, n), 0.0, "start %llu",
                  (unsigned long long)f0);
  }
  free(x);
  free(y);
  free(ref);
  free(b);
  free(rb);
}

/* The property the grid is there for: with quantal_filter_context()
 * frames of context on each side, a block's inner frames get the same
 * values as in one pass over the whole trace. */
Test(filter, inner_frames_do_not_depend_on_the_block)
{
  const double rate = 20000.0;
  quantal_filter_options o = quantal_filter_options_default();
  size_t n = 200000, ctx = quantal_filter_context(&o, rate), c0;
  double *x = trace(n, rate, 0, 1, 61), scale = max_abs(x, n);
  double *all = malloc(n * sizeof *all), *ball = malloc(n * sizeof *ball);
  double *y = malloc(n * sizeof *y), *b = malloc(n * sizeof *b);
  cr_assert(all != NULL && ball != NULL && y != NULL && b != NULL);
  memcpy(all, x, n * sizeof *all);
  cr_assert_eq(quantal_filter_block(all, n, 0, rate, &o, ball, NULL),
               QUANTAL_OK);
  for (c0 = ctx; c0 + 7001 + ctx <= n; c0 += 23457) {
    size_t a = c0 - ctx, m = 7001 + 2 * ctx;
    memcpy(y, x + a, m * sizeof *y);
    cr_assert_eq(quantal_filter_block(y, m, a, rate, &o, b, NULL),
                 QUANTAL_OK);
    cr_expect_leq(worst_diff(y + ctx, all + c0, 7001), tolerance(scale, 500),
                  "block at %zu", c0);
    cr_expect_leq(worst_diff(b + ctx, ball + c0, 7001), tolerance(scale, 500),
                  "baseline of the block at %zu", c0);
  }
  free(x);
  free(all);
  free(ball);
  free(y);
  free(b);
}
