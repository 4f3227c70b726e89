/* filter.c - baseline, mains hum and low-pass of a block. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Samples per grid segment that enter a segment median: enough for a
 * robust value, few enough that the selection stays cheap. */
#define SEG_MEDIAN_MAX 96
/* Segment medians computed together (baseline_grid_make). */
#define SEG_BATCH 32

quantal_filter_options
quantal_filter_options_default(void)
{
  quantal_filter_options o;
  o.baseline_window_s = 0.5;
  o.baseline_segment_s = 0.02;
  o.mains_hz = 50.0;
  o.mains_harmonics = 5;
  o.mains_window_s = 0.5;
  o.lowpass_hz = 0.0;
  return o;
}

static size_t
frames_of(double s, double rate_hz)
{
  double v = floor(s * rate_hz + 0.5);
  return v < 1.0 ? 1 : (size_t)v;
}

size_t
quantal_filter_context(const quantal_filter_options *o, double rate_hz)
{
  size_t c = 0, seg, half;
  if (o->baseline_window_s > 0.0) {
    seg = frames_of(o->baseline_segment_s, rate_hz);
    half = frames_of(o->baseline_window_s, rate_hz) / seg / 2;
    c += (half + 3) * seg;
  }
  if (o->mains_hz > 0.0)
    c += 2 * frames_of(o->mains_window_s, rate_hz) + 1;
  if (o->lowpass_hz > 0.0)
    c += (size_t)ceil(4.0 * 0.1325 * rate_hz / o->lowpass_hz) + 1;
  return c;
}

/* The running median of the segment medians over the grid segments
 * g0 .. g0 + ng - 1 that a block touches: run[g] belongs to segment
 * g0 + g, whose centre is frame (g0 + g + 1/2) seg - 1/2. */
typedef qtl_baseline_grid baseline_grid;

/* Median of the finite samples of grid segment G (frames [G seg,
 * (G + 1) seg) within the block [first_frame, last]) at the grid
 * positions G seg + j stride: the grid, not the block, decides which
 * samples are pooled, so that the choice does not depend on the block.
 * NaN when none is finite. */
static double
segment_median(const double *x, uint64_t first_frame, uint64_t last,
               size_t G, size_t seg, size_t stride)
{
  double tmp[SEG_MEDIAN_MAX + 1];
  uint64_t a = (uint64_t)G * seg, b = a + seg, f;
  size_t m = 0;
  if (a < first_frame)
    a = first_frame;
  if (b > last + 1)
    b = last + 1;
  f = (uint64_t)G * seg;
  if (f < a)
    f += ((a - f + stride - 1) / stride) * stride;
  /* a NaN is stored and then overwritten: no branch per sample */
  for (; f < b && m < SEG_MEDIAN_MAX + 1; f += stride) {
    double v = x[f - first_frame];
    tmp[m] = v;
    m += isfinite(v) != 0;
  }
  return m ? qtl_median(tmp, m) : NAN;
}

/* Insert v into the sorted w[0..m), after any equal values; returns
 * m + 1. The place is found by counting, without a branch per value. */
static size_t
sorted_insert(double *w, size_t m, double v)
{
  size_t p = 0, i;
  for (i = 0; i < m; i++)
    p += w[i] <= v;
  memmove(w + p + 1, w + p, (m - p) * sizeof *w);
  w[p] = v;
  return m + 1;
}

/* Remove one value equal to v (there is one) from the sorted w[0..m);
 * returns m - 1. */
static size_t
sorted_remove(double *w, size_t m, double v)
{
  size_t p = 0, i;
  for (i = 0; i < m; i++)
    p += w[i] < v;
  memmove(w + p, w + p + 1, (m - p - 1) * sizeof *w);
  return m - 1;
}

static quantal_status
baseline_grid_make(const double *x, size_t n, uint64_t first_frame,
                   double rate_hz, double window_s, double segment_s,
                   baseline_grid *bg, quantal_diag *diag)
{
  size_t seg, half, g0, g1, ng, g, stride, clo, chi, m;
  double *med = NULL, *run = NULL, *win = NULL;
  uint64_t last;

  if (!(rate_hz > 0.0) || !(window_s > 0.0) || !(segment_s > 0.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "baseline: rate, window and segment must be positive");
  seg = frames_of(segment_s, rate_hz);
  half = frames_of(window_s, rate_hz) / seg / 2;
  /* Segments of the absolute grid [g * seg, (g + 1) * seg) that the block
   * touches: the grid, not the block, decides which samples are pooled,
   * so a sample far from the block ends gets the same baseline whatever
   * the block. */
  last = first_frame + n - 1;
  g0 = (size_t)(first_frame / seg);
  g1 = (size_t)(last / seg);
  ng = g1 - g0 + 1;
  med = malloc(ng * sizeof *med);
  run = malloc(ng * sizeof *run);
  win = malloc((2 * half + 1) * sizeof *win);
  if (med == NULL || run == NULL || win == NULL) {
    free(med);
    free(run);
    free(win);
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  }
  stride = (seg + SEG_MEDIAN_MAX - 1) / SEG_MEDIAN_MAX;
  {
    /* Whole segments whose samples are all finite have mf of them each:
     * their medians go through the sorting network SEG_BATCH at a time
     * (exactly as qtl_median, a quarter of the time of one selection
     * each); the others, at the block ends or with gaps, one by one. */
    size_t mf = (seg + stride - 1) / stride, nb, j, idx[SEG_BATCH];
    double *tab = malloc(mf * SEG_BATCH * sizeof *tab), bm[SEG_BATCH];
    if (tab == NULL) {
      free(med);
      free(run);
      free(win);
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    }
    for (g = 0; g < ng;) {
      for (nb = 0; g < ng && nb < SEG_BATCH; g++) {
        uint64_t a = (uint64_t)(g0 + g) * seg;
        int ok = a >= first_frame && a + seg - 1 <= last;
        if (ok) {
          const double *xp = x + (a - first_frame);
          for (j = 0; j < mf; j++) {
            double v = xp[j * stride];
            tab[j * SEG_BATCH + nb] = v;
            ok &= isfinite(v) != 0;
          }
        }
        if (ok)
          idx[nb++] = g;
        else
          med[g] = segment_median(x, first_frame, last, g0 + g, seg, stride);
      }
      if (nb > 0 && qtl_median_columns(tab, mf, nb, SEG_BATCH, bm) == 0) {
        for (j = 0; j < nb; j++)
          med[idx[j]] = bm[j];
      } else {
        for (j = 0; j < nb; j++)
          med[idx[j]] = segment_median(x, first_frame, last, g0 + idx[j],
                                       seg, stride);
      }
    }
    free(tab);
  }
  /* Running median of the segment medians (Tukey's running median): a
   * segment hit by an event, or two, does not move it. The window's
   * finite values are kept sorted in win[0..m): each step drops the
   * values that left it and inserts those that entered. */
  clo = chi = 0;
  m = 0;
  for (g = 0; g < ng; g++) {
    size_t hw = half, lo, hi;
    /* Near the block ends the window shrinks symmetrically (Tukey's end
     * rule), so a drifting baseline is not pulled towards the inside.
     * Both ends only move forward. */
    if (hw > g)
      hw = g;
    if (hw > ng - 1 - g)
      hw = ng - 1 - g;
    lo = g - hw;
    hi = g + hw;
    for (; clo < lo; clo++)
      if (isfinite(med[clo]))
        m = sorted_remove(win, m, med[clo]);
    for (; chi <= hi; chi++)
      if (isfinite(med[chi]))
        m = sorted_insert(win, m, med[chi]);
    run[g] = m == 0       ? NAN
             : m % 2 == 1 ? win[m / 2]
                          : 0.5 * (win[m / 2 - 1] + win[m / 2]);
  }
  /* Fill segments without finite samples from their neighbours. */
  for (g = 1; g < ng; g++)
    if (!isfinite(run[g]))
      run[g] = run[g - 1];
  for (g = ng - 1; g-- > 0;)
    if (!isfinite(run[g]))
      run[g] = run[g + 1];
  free(med);
  free(win);
  bg->seg = seg;
  bg->g0 = g0;
  bg->ng = ng;
  bg->run = run;
  return QUANTAL_OK;
}

/* ---- interpolation between grid centres ------------------------------
 *
 * The baseline (cells of seg frames) and the hum (windows of w frames)
 * are linear between the centres of their grid cells and constant before
 * the first centre and after the last. Each frame's position on the grid,
 * pos = (f + 1/2) / L - 1/2 - g0, and from it the weight u = pos - k of
 * the right-hand cell k + 1, are computed as they always were, to the
 * last bit; the work is to do it without a division or a branch per
 * frame. The block is cut at the centres, where k changes, so that each
 * stretch is one loop over consecutive values. */

/* Inner loops run a constant VEC times, which compilers vectorise even
 * at -O2; the rest of a stretch is done one value at a time. */
#define VEC 8

/* out[j] = r and/or x[j] -= r, j < len (out or x may be NULL). */
static inline __attribute__((always_inline)) void
const_span(double *restrict out, double *restrict x, size_t len, double r)
{
  size_t j;
  if (out != NULL)
    for (j = 0; j < len; j++)
      out[j] = r;
  if (x != NULL)
    for (j = 0; j < len; j++)
      x[j] -= r;
}

/* out[j] = r0 + u_j dr and/or x[j] -= that, u_j = c + frac[j], j < len
 * (out or x may be NULL, not both). */
static inline __attribute__((always_inline)) void
ramp_span(double *restrict out, double *restrict x,
               const double *restrict frac, size_t len, double c, double r0,
               double dr)
{
  size_t j = 0;
  int q;
  for (; j + VEC <= len; j += VEC) {
    if (out != NULL && x != NULL)
      for (q = 0; q < VEC; q++) {
        double b = r0 + (c + frac[j + q]) * dr;
        out[j + q] = b;
        x[j + q] -= b;
      }
    else if (out != NULL)
      for (q = 0; q < VEC; q++)
        out[j + q] = r0 + (c + frac[j + q]) * dr;
    else
      for (q = 0; q < VEC; q++)
        x[j + q] -= r0 + (c + frac[j + q]) * dr;
  }
  for (; j < len; j++) {
    double b = r0 + (c + frac[j]) * dr;
    if (out != NULL)
      out[j] = b;
    if (x != NULL)
      x[j] -= b;
  }
}

/* The fractional part of q = fl((f + 1/2) / seg) for f = G seg + r, r <
 * seg, is the same for every G of one binade [2^e, 2^(e+1)) (ulp(G) is
 * then fixed and G a multiple of it), and every later step of the
 * baseline's pos and u is exact (a difference of multiples of ulp(G) that
 * stays below 2 G): so u = (G - g0 - k - 1/2) + frac[r] exactly, with one
 * table of seg values per binade instead of a division per frame. G = 0
 * has its own table (binade -1). */
typedef struct frac_table {
  int binade;
  double *frac;
} frac_table;

static int
binade_of(uint64_t G)
{
  int e = -1;
  while (G != 0) {
    G >>= 1;
    e++;
  }
  return e;
}

/* The table of G's binade: slot[0] is the one used last, slot[1] the one
 * before, refilled when neither fits. */
static const double *
frac_for(frac_table *slot, size_t seg, uint64_t G)
{
  int e = binade_of(G);
  frac_table tmp;
  if (slot[0].binade != e) {
    if (slot[1].binade != e) {
      double Gr = e < 0 ? 0.0 : ldexp(1.0, e);
      size_t r;
      slot[1].binade = e;
      /* the frame's own expression, minus G (exact: Sterbenz) */
      for (r = 0; r < seg; r++)
        slot[1].frac[r] =
            ((Gr * (double)seg + (double)r) + 0.5) / (double)seg - Gr;
    }
    tmp = slot[0];
    slot[0] = slot[1];
    slot[1] = tmp;
  }
  return slot[0].frac;
}

/* Frames from here on (2^40: 1.7 years at 20 kHz) are done with the
 * per-frame expressions themselves: the shortcuts' exactness needs the
 * ulp of the position well below one frame. */
#define EXACT_FRAME_MAX ((uint64_t)1 << 40)

/* The baseline of the block's frames into out and/or subtracted from x
 * (either may be NULL; they must not overlap): pos <= 0 takes run[0],
 * pos >= ng - 1 run[ng - 1], else run[k] + u (run[k + 1] - run[k]) with
 * k = (size_t)pos. With pos exact (above), k changes at the first frame
 * at or after each segment centre (G + 1/2) seg - 1/2, that is at
 * floor((2G + 1) seg / 2). */
static inline __attribute__((always_inline)) void
baseline_spans_body(const baseline_grid *bg, uint64_t first_frame, size_t n,
                    double *out, double *x, frac_table *slot)
{
  const size_t seg = bg->seg, g0 = bg->g0, ng = bg->ng;
  const double *run = bg->run;
  uint64_t f = first_frame, end = first_frame + n, e;
  size_t k;
#define CENTRE_FRAME(G) ((2 * (uint64_t)(G) + 1) * seg / 2)
#define AT(ptr, frame) ((ptr) ? (ptr) + (size_t)((frame)-first_frame) : NULL)
  e = CENTRE_FRAME(g0) < end ? CENTRE_FRAME(g0) : end;
  if (f < e) {
    const_span(out, x, (size_t)(e - f), run[0]);
    f = e;
  }
  for (k = 0; k + 1 < ng && f < end; k++) {
    /* the stretch between the centres of segments G0 = g0 + k and
     * G0 + 1: u = -1/2 + frac[r] in G0, 1/2 + frac[r] in G0 + 1 */
    uint64_t G0 = (uint64_t)(g0 + k), mid = (G0 + 1) * seg;
    double dr = run[k + 1] - run[k];
    e = CENTRE_FRAME(G0 + 1) < end ? CENTRE_FRAME(G0 + 1) : end;
    if (mid + seg >= EXACT_FRAME_MAX) {
      for (; f < e; f++) {
        double pos = ((double)f + 0.5) / (double)seg - 0.5 - (double)g0;
        double b = run[k] + (pos - (double)k) * dr;
        if (out != NULL)
          out[f - first_frame] = b;
        if (x != NULL)
          x[f - first_frame] -= b;
      }
      continue;
    }
    if (f < mid && f < e) {
      uint64_t e1 = mid < e ? mid : e;
      ramp_span(AT(out, f), AT(x, f),
                frac_for(slot, seg, G0) + (f - G0 * seg), (size_t)(e1 - f),
                -0.5, run[k], dr);
      f = e1;
    }
    if (f < e) {
      ramp_span(AT(out, f), AT(x, f),
                frac_for(slot, seg, G0 + 1) + (f - mid), (size_t)(e - f), 0.5,
                run[k], dr);
      f = e;
    }
  }
  if (f < end)
    const_span(AT(out, f), AT(x, f), (size_t)(end - f), run[ng - 1]);
#undef AT
#undef CENTRE_FRAME
}

/* The loops compiled once more for AVX2 (four doubles a vector instead of
 * SSE2's two; no FMA, so the same bits), chosen at run time. The same for
 * hum_span below. */
#ifdef QTL_X86_SIMD
__attribute__((target("avx2"))) static void
baseline_spans_avx2(const baseline_grid *bg, uint64_t first_frame, size_t n,
                    double *out, double *x, frac_table *slot)
{
  baseline_spans_body(bg, first_frame, n, out, x, slot);
}
#endif

static quantal_status
baseline_apply(const baseline_grid *bg, uint64_t first_frame, size_t n,
               double *out, double *x, quantal_diag *diag)
{
  frac_table slot[2];
  double *mem = malloc(2 * bg->seg * sizeof *mem);
  if (mem == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  slot[0].binade = slot[1].binade = -2;
  slot[0].frac = mem;
  slot[1].frac = mem + bg->seg;
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2())
    baseline_spans_avx2(bg, first_frame, n, out, x, slot);
  else
#endif
    baseline_spans_body(bg, first_frame, n, out, x, slot);
  free(mem);
  return QUANTAL_OK;
}

/* The baseline at frame f of the grid's block, as baseline_apply
 * writes it there, to the bit: the same k, the same u (frac of the same
 * binade's table, here one entry of it) and the same expression. */
double
qtl_baseline_at(const qtl_baseline_grid *bg, uint64_t f)
{
  const size_t seg = bg->seg, g0 = bg->g0, ng = bg->ng;
  uint64_t G0, mid;
  size_t k;
  double dr, c, fr, Gr;
  int e;
  if (bg->run == NULL)
    return 0.0;
  if (f < (2 * (uint64_t)g0 + 1) * seg / 2 || ng < 2)
    return bg->run[0];
  /* the last centre at or before f */
  k = (size_t)((2 * f + 2) / (2 * (uint64_t)seg)); /* candidate G */
  while (k > g0 && (2 * (uint64_t)k + 1) * seg / 2 > f)
    k--;
  while ((2 * (uint64_t)(k + 1) + 1) * seg / 2 <= f)
    k++;
  k -= g0;
  if (k + 1 >= ng)
    return bg->run[ng - 1];
  G0 = (uint64_t)(g0 + k);
  mid = (G0 + 1) * seg;
  dr = bg->run[k + 1] - bg->run[k];
  if (mid + seg >= EXACT_FRAME_MAX) {
    double pos = ((double)f + 0.5) / (double)seg - 0.5 - (double)g0;
    return bg->run[k] + (pos - (double)k) * dr;
  }
  if (f < mid) {
    c = -0.5;
    e = binade_of(G0);
    Gr = e < 0 ? 0.0 : ldexp(1.0, e);
    fr = ((Gr * (double)seg + (double)(f - G0 * seg)) + 0.5) / (double)seg -
         Gr;
  } else {
    c = 0.5;
    e = binade_of(G0 + 1);
    Gr = e < 0 ? 0.0 : ldexp(1.0, e);
    fr = ((Gr * (double)seg + (double)(f - mid)) + 0.5) / (double)seg - Gr;
  }
  return bg->run[k] + (c + fr) * dr;
}

quantal_status
quantal_filter_baseline(const double *x, size_t n, uint64_t first_frame,
                        double rate_hz, double window_s, double segment_s,
                        double *baseline, quantal_diag *diag)
{
  baseline_grid bg;
  quantal_status st;
  if (n == 0)
    return QUANTAL_OK;
  st = baseline_grid_make(x, n, first_frame, rate_hz, window_s, segment_s,
                          &bg, diag);
  if (st != QUANTAL_OK)
    return st;
  st = baseline_apply(&bg, first_frame, n, baseline, NULL, diag);
  free(bg.run);
  return st;
}

/* Hum of one grid window: cos/sin coefficients of each harmonic. */
typedef struct hum_coef {
  double a[16], b[16];
} hum_coef;

/* Add the sum and the count of the finite values of xp[0..len) to *fs
 * and *fc. A NaN or an infinity makes the plain sum non-finite, and only
 * then are the values tested one by one; the sum is the same either way,
 * in the same order. */
static void
fold_cell(const double *xp, size_t len, double *fs, double *fc)
{
  double sum = 0.0, cn = (double)len;
  size_t j;
  for (j = 0; j < len; j++)
    sum += xp[j];
  if (!isfinite(sum)) {
    sum = 0.0;
    cn = 0.0;
    for (j = 0; j < len; j++)
      if (isfinite(xp[j])) {
        sum += xp[j];
        cn += 1.0;
      }
  }
  *fs += sum;
  *fc += cn;
}

/* fold_cell on ncell consecutive cells of bw values, four at a time so
 * that four sums progress together (each still in order: one sum alone
 * waits for each addition). Scalars, not an array of sums, which
 * compilers vectorise badly here. */
static void
fold_cells(const double *xp, size_t ncell, size_t bw, double *fs, double *fc)
{
  size_t c = 0, j;
  for (; c + 4 <= ncell; c += 4) {
    const double *p = xp + c * bw;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    for (j = 0; j < bw; j++) {
      s0 += p[j];
      s1 += p[bw + j];
      s2 += p[2 * bw + j];
      s3 += p[3 * bw + j];
    }
    if (isfinite(s0 + s1 + s2 + s3)) {
      fs[c] += s0;
      fs[c + 1] += s1;
      fs[c + 2] += s2;
      fs[c + 3] += s3;
      fc[c] += (double)bw;
      fc[c + 1] += (double)bw;
      fc[c + 2] += (double)bw;
      fc[c + 3] += (double)bw;
    } else {
      for (j = 0; j < 4; j++)
        fold_cell(p + j * bw, bw, fs + c + j, fc + c + j);
    }
  }
  for (; c < ncell; c++)
    fold_cell(xp + c * bw, bw, fs + c, fc + c);
}

/* fs[k] /= fc[k], k < n: the mean of each cell (NaN for an empty one). */
static void
cell_means(double *restrict fs, const double *restrict fc, size_t n)
{
  size_t k = 0;
  int q;
  for (; k + VEC <= n; k += VEC)
    for (q = 0; q < VEC; q++)
      fs[k + q] /= fc[k + q];
  for (; k < n; k++)
    fs[k] /= fc[k];
}

/* wave[p] += a ct[p] + b st[p], p < P: one harmonic of a window's hum. */
static void
hum_add_harmonic(double *restrict wave, const double *restrict ct,
                 const double *restrict st, size_t P, double a, double b)
{
  size_t p = 0;
  int q;
  for (; p + VEC <= P; p += VEC)
    for (q = 0; q < VEC; q++)
      wave[p + q] += a * ct[p + q] + b * st[p + q];
  for (; p < P; p++)
    wave[p] += a * ct[p] + b * st[p];
}

/* The hum's position of frame f on the window grid, as it always was:
 * with a multiplication by the rounded 1 / w. */
static double
hum_pos(double fd, double inv_w, double g0d)
{
  return (fd + 0.5) * inv_w - 0.5 - g0d;
}

/* x[j] -= h0[j] + u_j (h1[j] - h0[j]), u_j = hum_pos(f_j) - k, for the
 * frames f_j = f + j (fh = f + 1/2 as a double, exact), j < len. Where
 * u is used (pos > 0), (f + 1/2) / w rounded lies on the grid of its
 * ulp, which also holds 1/2, g0 and k: each subtraction of hum_pos and
 * the one of k is exact, and one subtraction of K = 1/2 + g0 + k (an
 * exact sum) gives the same u to the last bit. */
static inline __attribute__((always_inline)) void
hum_ramp(double *restrict x, const double *restrict h0,
              const double *restrict h1, size_t len, double fh,
              double inv_w, double K)
{
  size_t j = 0;
  int q;
  for (; j + VEC <= len; j += VEC) {
    double fj = fh + (double)j;
    for (q = 0; q < VEC; q++) {
      double u = (fj + (double)q) * inv_w - K;
      x[j + q] -= h0[j + q] + u * (h1[j + q] - h0[j + q]);
    }
  }
  for (; j < len; j++) {
    double u = (fh + (double)j) * inv_w - K;
    x[j] -= h0[j] + u * (h1[j] - h0[j]);
  }
}

/* x[j] -= h[j], j < len. */
static inline __attribute__((always_inline)) void
hum_const(double *restrict x, const double *restrict h, size_t len)
{
  size_t j = 0;
  int q;
  for (; j + VEC <= len; j += VEC)
    for (q = 0; q < VEC; q++)
      x[j + q] -= h[j + q];
  for (; j < len; j++)
    x[j] -= h[j];
}

/* The first i in [i0, n] whose position is at least thr (above it when
 * strict). Positions grow with i (each step of hum_pos is monotonic), so
 * this starts from the exact crossing, which rounding moves by a frame at
 * most, and steps to the computed one. */
static size_t
hum_first(uint64_t first_frame, size_t i0, size_t n, size_t w, double inv_w,
          double g0d, double thr, int strict)
{
  double est = ceil((thr + 0.5 + g0d) * (double)w - 0.5) -
               (double)first_frame;
  size_t i = est <= (double)i0 ? i0 : est >= (double)n ? n : (size_t)est;
#define PAST(j)                                                              \
  (strict ? hum_pos((double)(first_frame + (j)), inv_w, g0d) > thr            \
          : hum_pos((double)(first_frame + (j)), inv_w, g0d) >= thr)
  while (i > i0 && PAST(i - 1))
    i--;
  while (i < n && !PAST(i))
    i++;
#undef PAST
  return i;
}

/* x[i0..i1) -= the hum of window k (k1 == k) or the interpolation from
 * window k to k1 = k + 1, cut where the phase wraps so each loop runs
 * over consecutive table entries. */
static inline __attribute__((always_inline)) void
hum_span_body(double *x, size_t i0, size_t i1, uint64_t first_frame,
              const double *hw, size_t P, size_t k, size_t k1, double inv_w,
              double g0d)
{
  size_t i = i0, p = (size_t)((first_frame + i0) % P);
  while (i < i1) {
    size_t len = i1 - i < P - p ? i1 - i : P - p;
    const double *h0 = hw + k * P + p;
    if (k1 == k) {
      hum_const(x + i, h0, len);
    } else if (first_frame + i1 < EXACT_FRAME_MAX) {
      hum_ramp(x + i, h0, hw + k1 * P + p, len,
               (double)(first_frame + i) + 0.5, inv_w, 0.5 + g0d + (double)k);
    } else {
      const double *h1 = hw + k1 * P + p;
      size_t j;
      for (j = 0; j < len; j++) {
        double u = hum_pos((double)(first_frame + i + j), inv_w, g0d) -
                   (double)k;
        x[i + j] -= h0[j] + u * (h1[j] - h0[j]);
      }
    }
    i += len;
    p = 0;
  }
}

#ifdef QTL_X86_SIMD
__attribute__((target("avx2"))) static void
hum_span_avx2(double *x, size_t i0, size_t i1, uint64_t first_frame,
              const double *hw, size_t P, size_t k, size_t k1, double inv_w,
              double g0d)
{
  hum_span_body(x, i0, i1, first_frame, hw, P, k, k1, inv_w, g0d);
}
#endif

static void
hum_span(double *x, size_t i0, size_t i1, uint64_t first_frame,
         const double *hw, size_t P, size_t k, size_t k1, double inv_w,
         double g0d)
{
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2()) {
    hum_span_avx2(x, i0, i1, first_frame, hw, P, k, k1, inv_w, g0d);
    return;
  }
#endif
  hum_span_body(x, i0, i1, first_frame, hw, P, k, k1, inv_w, g0d);
}

/* Subtract from x[0..n) the hum of the windows g0 .. g0 + ng - 1 of w
 * frames (waveforms over one cycle of P frames in hw, P per window):
 * pos <= 0 takes window 0, pos >= ng - 1 the last, else windows
 * k = (size_t)pos and k + 1 with u = pos - k. */
static void
hum_subtract(double *x, size_t n, uint64_t first_frame, const double *hw,
             size_t P, size_t w, size_t g0, size_t ng)
{
  double inv_w = 1.0 / (double)w, g0d = (double)g0;
  size_t i = hum_first(first_frame, 0, n, w, inv_w, g0d, 0.0, 1), e, k;
  hum_span(x, 0, i, first_frame, hw, P, 0, 0, inv_w, g0d);
  for (k = 0; k + 1 < ng && i < n; k++) {
    e = hum_first(first_frame, i, n, w, inv_w, g0d, (double)(k + 1), 0);
    hum_span(x, i, e, first_frame, hw, P, k, k + 1, inv_w, g0d);
    i = e;
  }
  hum_span(x, i, n, first_frame, hw, P, ng - 1, ng - 1, inv_w, g0d);
}

/* Add bin bn's value v, times each harmonic's cos and sin at the bin's
 * phase, to a window's projections. */
static void
hum_add_bin(hum_coef *cg, double v, const double *bcos, const double *bsin,
            size_t nbin, size_t bn, unsigned harmonics)
{
  unsigned h;
  for (h = 0; h < harmonics; h++) {
    cg->a[h] += v * bcos[h * nbin + bn];
    cg->b[h] += v * bsin[h * nbin + bn];
  }
}

quantal_status
quantal_filter_mains(double *x, size_t n, uint64_t first_frame,
                     double rate_hz, double mains_hz, unsigned harmonics,
                     double window_s, quantal_diag *diag)
{
  size_t w, g0, g1, ng, g, i;
  unsigned h;
  hum_coef *c;
  uint64_t last;
  double period;
  int integer_period;
  double *prof = NULL, *cnt = NULL, *hp = NULL, *fold = NULL;
  double *bcos = NULL, *bsin = NULL, *hcos = NULL, *hsin = NULL, gain[16];
  size_t P = 0, nbin = 1, bw = 1;

  if (n == 0 || mains_hz <= 0.0)
    return QUANTAL_OK;
  if (!(rate_hz > 0.0) || !(window_s > 0.0) || harmonics == 0 ||
      harmonics > 16)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "mains: bad rate, window or harmonics (1 to 16)");
  if (mains_hz * harmonics >= rate_hz / 2.0)
    harmonics = (unsigned)floor((rate_hz / 2.0 - 1e-9) / mains_hz);
  if (harmonics == 0)
    return QUANTAL_OK;
  w = frames_of(window_s, rate_hz);
  last = first_frame + n - 1;
  g0 = (size_t)(first_frame / w);
  g1 = (size_t)(last / w);
  ng = g1 - g0 + 1;
  period = rate_hz / mains_hz;
  integer_period = fabs(period - floor(period + 0.5)) < 1e-9;
  c = calloc(ng, sizeof *c);
  if (c == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  if (integer_period) {
    size_t ncyc_max, bn, m;
    P = (size_t)floor(period + 0.5);
    /* bins: the largest divisor of P up to 64, if it still samples the
     * highest harmonic at least 4 times per period */
    for (nbin = P < 64 ? P : 64; nbin > 1 && P % nbin != 0; nbin--)
      ;
    if (nbin < 4 * harmonics)
      nbin = P;
    bw = P / nbin;
    ncyc_max = w / P + 2;
    prof = malloc((ncyc_max > P ? ncyc_max : P) * sizeof *prof);
    cnt = malloc(P * sizeof *cnt);
    /* cos and sin of 2 pi m / P, then per harmonic h of 2 pi (h + 1) p / P
     * (the same values, gathered) */
    hp = malloc(2 * (harmonics + 1) * P * sizeof *hp);
    fold = malloc(2 * ncyc_max * nbin * sizeof *fold);
    bcos = malloc(2 * harmonics * nbin * sizeof *bcos);
    if (prof == NULL || cnt == NULL || hp == NULL || fold == NULL ||
        bcos == NULL) {
      free(c);
      free(prof);
      free(cnt);
      free(hp);
      free(fold);
      free(bcos);
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    }
    bsin = bcos + harmonics * nbin;
    /* cos and sin of 2 pi m / P, m = 0..P-1, once */
    for (m = 0; m < P; m++) {
      hp[2 * m] = cos(2.0 * M_PI * (double)m / (double)P);
      hp[2 * m + 1] = sin(2.0 * M_PI * (double)m / (double)P);
    }
    hcos = hp + 2 * P;
    hsin = hcos + harmonics * P;
    for (h = 0; h < harmonics; h++)
      for (m = 0; m < P; m++) {
        size_t mm = (h + 1) * m % P;
        hcos[h * P + m] = hp[2 * mm];
        hsin[h * P + m] = hp[2 * mm + 1];
      }
    for (h = 0; h < harmonics; h++) {
      double u = M_PI * (double)(h + 1) / (double)P;
      gain[h] = bw > 1 ? sin(u * (double)bw) / ((double)bw * sin(u)) : 1.0;
      for (bn = 0; bn < nbin; bn++) {
        /* a bin's phase: the mean of its samples' phases */
        double ph = 2.0 * M_PI * (double)(h + 1) *
                    ((double)(bn * bw) + 0.5 * (double)(bw - 1)) / (double)P;
        bcos[h * nbin + bn] = cos(ph);
        bsin[h * nbin + bn] = sin(ph);
      }
    }
  }
  /* Coefficients per window by projection onto cos/sin with the phase
   * of the absolute time f / rate. When the mains period is a whole
   * number of samples, the window is first folded into one cycle (the
   * mean waveform of the hum), which makes the projection cost P per
   * harmonic instead of a multiply-add per sample and harmonic. */
  for (g = 0; g < ng; g++) {
    uint64_t a = (uint64_t)(g0 + g) * w, b = a + w, f;
    double nused = 0.0;
    if (a < first_frame)
      a = first_frame;
    if (b > last + 1)
      b = last + 1;
    if (integer_period) {
      /* The hum's waveform over one cycle is the median, bin by bin, of
       * the window's cycles: events (a few cycles of the window) do not
       * leak into it as they do into a mean, which would subtract a
       * piece of each event's own 50-250 Hz content from it. Each cycle
       * is first averaged in nbin bins of bw samples (a cheap pass), so
       * that only nbin medians are taken per window. */
      size_t c0 = (size_t)(a / P), ncyc = (size_t)((b - 1) / P) + 1 - c0;
      size_t k, bn, ph = (size_t)(a % P), in_bin = ph % bw;
      int whole;
      double *fs = fold, *fc = fold + ncyc * nbin;
      memset(fold, 0, 2 * ncyc * nbin * sizeof *fold);
      /* k: the (cycle, bin) cell; cells of bw samples follow each other
       * through the cycles, so only the first and last can be partial */
      k = ph / bw;
      f = a;
      if (in_bin > 0) {
        size_t len = (size_t)(b - f < bw - in_bin ? b - f : bw - in_bin);
        fold_cell(x + (f - first_frame), len, fs + k, fc + k);
        f += len;
        k++;
      }
      if (f < b) {
        size_t full = (size_t)((b - f) / bw);
        fold_cells(x + (f - first_frame), full, bw, fs + k, fc + k);
        f += (uint64_t)full * bw;
        k += full;
      }
      if (f < b)
        fold_cell(x + (f - first_frame), (size_t)(b - f), fs + k, fc + k);
      cell_means(fs, fc, ncyc * nbin);
      /* When every cell has samples (the window is whole cycles, no
       * NaN), all bins have ncyc values and their medians are taken
       * together; otherwise bin by bin, over the cells with samples. */
      whole = 1;
      for (k = 0; k < ncyc * nbin; k++)
        whole &= fc[k] > 0.0;
      if (whole && qtl_median_columns(fs, ncyc, nbin, nbin, cnt) == 0) {
        for (bn = 0; bn < nbin; bn++)
          hum_add_bin(&c[g], cnt[bn], bcos, bsin, nbin, bn, harmonics);
        nused = (double)nbin;
      } else {
        for (bn = 0; bn < nbin; bn++) {
          size_t m = 0, cy;
          for (cy = 0; cy < ncyc; cy++) {
            /* an empty cell (0 / 0) is stored and then overwritten */
            prof[m] = fs[cy * nbin + bn];
            m += fc[cy * nbin + bn] > 0.0;
          }
          if (m == 0)
            continue;
          cnt[bn] = qtl_median(prof, m);
          nused += 1.0;
          hum_add_bin(&c[g], cnt[bn], bcos, bsin, nbin, bn, harmonics);
        }
      }
    } else {
      for (f = a; f < b; f++) {
        double v = x[f - first_frame], t;
        if (!isfinite(v))
          continue;
        nused += 1.0;
        t = (double)f / period;
        t -= floor(t);
        for (h = 0; h < harmonics; h++) {
          double ph = 2.0 * M_PI * t * (h + 1);
          c[g].a[h] += v * cos(ph);
          c[g].b[h] += v * sin(ph);
        }
      }
    }
    /* Over whole cycles cos and sin are orthogonal with mean square 1/2,
     * so the least-squares coefficient is 2/N times the projection;
     * averaging bw samples per bin attenuated harmonic h by the
     * Dirichlet kernel gain[h], undone here. */
    for (h = 0; h < harmonics; h++) {
      double gh = integer_period ? gain[h] : 1.0;
      c[g].a[h] = nused > 0 ? 2.0 * c[g].a[h] / nused / gh : 0.0;
      c[g].b[h] = nused > 0 ? 2.0 * c[g].b[h] / nused / gh : 0.0;
    }
  }
  /* Subtract, interpolating the coefficients linearly between window
   * centres so that slow changes of hum amplitude and phase follow. */
  if (integer_period) {
    /* The hum waveform of each window over one cycle. */
    double *hw = malloc(ng * P * sizeof *hw);
    if (hw == NULL) {
      free(c);
      free(prof);
      free(cnt);
      free(hp);
      free(fold);
      free(bcos);
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    }
    /* harmonic by harmonic over the whole cycle (each entry still sums
     * the harmonics in order) */
    memset(hw, 0, ng * P * sizeof *hw);
    for (g = 0; g < ng; g++)
      for (h = 0; h < harmonics; h++)
        hum_add_harmonic(hw + g * P, hcos + h * P, hsin + h * P, P,
                         c[g].a[h], c[g].b[h]);
    hum_subtract(x, n, first_frame, hw, P, w, g0, ng);
    free(hw);
  } else {
    for (i = 0; i < n; i++) {
      double pos = ((double)(first_frame + i) + 0.5) / (double)w - 0.5 -
                   (double)g0, u = 0.0, t, hum = 0.0;
      size_t k = 0, k1 = 0;
      if (pos > 0.0) {
        k = (size_t)pos;
        if (k + 1 >= ng)
          k = k1 = ng - 1;
        else {
          k1 = k + 1;
          u = pos - (double)k;
        }
      }
      t = (double)(first_frame + i) / period;
      t -= floor(t);
      for (h = 0; h < harmonics; h++) {
        double ph = 2.0 * M_PI * t * (h + 1);
        double ca = c[k].a[h] + u * (c[k1].a[h] - c[k].a[h]);
        double cb = c[k].b[h] + u * (c[k1].b[h] - c[k].b[h]);
        hum += ca * cos(ph) + cb * sin(ph);
      }
      x[i] -= hum;
    }
  }
  free(c);
  free(prof);
  free(cnt);
  free(hp);
  free(fold);
  free(bcos);
  return QUANTAL_OK;
}

/* y[i] for i in [from, to): the Gaussian's taps k[0..2 half] about i,
 * the trace held at its end values beyond its ends. */
static void
lowpass_range(const double *x, double *y, size_t n, const double *k,
              long half, size_t from, size_t to)
{
  size_t i;
  long j;
  for (i = from; i < to; i++) {
    double acc = 0.0;
    if (i >= (size_t)half && i + (size_t)half < n) {
      const double *xp = x + i - half;
      for (j = 0; j <= 2 * half; j++)
        acc += k[j] * xp[j];
    } else {
      for (j = -half; j <= half; j++) {
        long idx = (long)i + j;
        if (idx < 0)
          idx = 0;
        if (idx >= (long)n)
          idx = (long)n - 1;
        acc += k[j + half] * x[idx];
      }
    }
    y[i] = acc;
  }
}

#ifdef QTL_X86_SIMD
#include <immintrin.h>
/* The interior outputs y[from..) sixteen at a time while they stay below
 * to, one output per lane: the same products added in the same order as
 * lowpass_range (no FMA). Returns where it stopped. */
__attribute__((target("avx2"))) static size_t
lowpass_interior_avx2(const double *x, double *y, const double *k, long half,
                      size_t from, size_t to)
{
  size_t i, j, nk = (size_t)(2 * half + 1);
  for (i = from; i + 16 <= to; i += 16) {
    const double *xp = x + i - half;
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    for (j = 0; j < nk; j++) {
      __m256d g = _mm256_broadcast_sd(k + j);
      a0 = _mm256_add_pd(a0, _mm256_mul_pd(g, _mm256_loadu_pd(xp + j)));
      a1 = _mm256_add_pd(a1, _mm256_mul_pd(g, _mm256_loadu_pd(xp + j + 4)));
      a2 = _mm256_add_pd(a2, _mm256_mul_pd(g, _mm256_loadu_pd(xp + j + 8)));
      a3 = _mm256_add_pd(a3, _mm256_mul_pd(g, _mm256_loadu_pd(xp + j + 12)));
    }
    _mm256_storeu_pd(y + i, a0);
    _mm256_storeu_pd(y + i + 4, a1);
    _mm256_storeu_pd(y + i + 8, a2);
    _mm256_storeu_pd(y + i + 12, a3);
  }
  return i;
}
#endif

quantal_status
quantal_filter_lowpass(const double *x, double *y, size_t n, double rate_hz,
                       double fc_hz, quantal_diag *diag)
{
  double sigma, *k, sum = 0.0;
  long half, j;
  size_t i;
  if (n == 0)
    return QUANTAL_OK;
  if (!(rate_hz > 0.0) || !(fc_hz > 0.0))
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "low-pass: rate and corner frequency must be positive");
  if (x == y)
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                    "low-pass: input and output must differ");
  /* The Gaussian filter's -3 dB corner fc and the SD of its impulse
   * response are related by sigma = 0.1325 / fc (Colquhoun & Sigworth
   * 1995, in Single-Channel Recording, eq. A3.5). */
  sigma = 0.1325 * rate_hz / fc_hz;
  if (sigma < 0.25) {
    memcpy(y, x, n * sizeof *y);
    return QUANTAL_OK;
  }
  half = (long)ceil(4.0 * sigma);
  k = malloc((size_t)(2 * half + 1) * sizeof *k);
  if (k == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
  for (j = -half; j <= half; j++) {
    k[j + half] = exp(-0.5 * (double)(j * j) / (sigma * sigma));
    sum += k[j + half];
  }
  for (j = 0; j <= 2 * half; j++)
    k[j] /= sum;
  i = 0;
#ifdef QTL_X86_SIMD
  /* the interior sixteen outputs a step where the CPU has AVX2 */
  if (qtl_have_avx2() && n > 2 * (size_t)half) {
    lowpass_range(x, y, n, k, half, 0, (size_t)half);
    i = lowpass_interior_avx2(x, y, k, half, (size_t)half,
                              n - (size_t)half);
  }
#endif
  lowpass_range(x, y, n, k, half, i, n);
  free(k);
  return QUANTAL_OK;
}

quantal_status
quantal_filter_block(double *x, size_t n, uint64_t first_frame,
                     double rate_hz, const quantal_filter_options *o,
                     double *baseline, quantal_diag *diag)
{
  return qtl_filter_block_grid(x, n, first_frame, rate_hz, o, baseline,
                               NULL, diag);
}

quantal_status
qtl_filter_block_grid(double *x, size_t n, uint64_t first_frame,
                      double rate_hz, const quantal_filter_options *o,
                      double *baseline, qtl_baseline_grid *keep,
                      quantal_diag *diag)
{
  quantal_status st;
  double *tmp;
  if (keep != NULL)
    memset(keep, 0, sizeof *keep);
  if (n == 0)
    return QUANTAL_OK;
  if (o->baseline_window_s > 0.0) {
    /* the baseline subtracted as it is evaluated: one pass, and no
     * array when the caller does not want it */
    baseline_grid bg;
    st = baseline_grid_make(x, n, first_frame, rate_hz, o->baseline_window_s,
                            o->baseline_segment_s, &bg, diag);
    if (st != QUANTAL_OK)
      return st;
    if (baseline != x) {
      st = baseline_apply(&bg, first_frame, n, baseline, x, diag);
    } else {
      /* the same array (an odd call): as before, the baseline minus
       * itself */
      size_t i;
      st = baseline_apply(&bg, first_frame, n, baseline, NULL, diag);
      for (i = 0; st == QUANTAL_OK && i < n; i++)
        x[i] -= baseline[i];
    }
    if (st == QUANTAL_OK && keep != NULL)
      *keep = bg;
    else
      free(bg.run);
    if (st != QUANTAL_OK)
      return st;
  } else if (baseline != NULL) {
    memset(baseline, 0, n * sizeof *baseline);
  }
  st = quantal_filter_mains(x, n, first_frame, rate_hz, o->mains_hz,
                            o->mains_harmonics, o->mains_window_s, diag);
  if (st != QUANTAL_OK)
    return st;
  if (o->lowpass_hz > 0.0) {
    tmp = malloc(n * sizeof *tmp);
    if (tmp == NULL)
      return qtl_fail(diag, QUANTAL_ENOMEM, NULL, -1, -1, "out of memory");
    st = quantal_filter_lowpass(x, tmp, n, rate_hz, o->lowpass_hz, diag);
    if (st == QUANTAL_OK)
      memcpy(x, tmp, n * sizeof *x);
    free(tmp);
  }
  return st;
}

quantal_status
quantal_filter_noise_sd(const double *x, size_t n, double *sd)
{
  double *v;
  size_t i, m = 0;
  v = malloc((n ? n : 1) * sizeof *v);
  if (v == NULL)
    return QUANTAL_ENOMEM;
  for (i = 0; i < n; i++)
    if (isfinite(x[i]))
      v[m++] = x[i];
  if (m < 3) {
    free(v);
    return QUANTAL_ENODATA;
  }
  *sd = qtl_mad_sd(v, m);
  free(v);
  return QUANTAL_OK;
}
