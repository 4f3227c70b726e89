/* stats.c - robust statistics shared by the analysis modules. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

quantal_status
quantal_noise_sd(const double *x, size_t n, double *sd)
{
  double *d;
  size_t i, m = 0;
  if (n < 3)
    return QUANTAL_ENODATA;
  d = malloc((n - 1) * sizeof *d);
  if (d == NULL)
    return QUANTAL_ENOMEM;
  for (i = 1; i < n; i++)
    if (isfinite(x[i]) && isfinite(x[i - 1]))
      d[m++] = x[i] - x[i - 1];
  if (m < 2) {
    free(d);
    return QUANTAL_ENODATA;
  }
  *sd = qtl_mad_sd(d, m) / sqrt(2.0);
  free(d);
  return QUANTAL_OK;
}

/* ---- exact order statistics -------------------------------------------
 *
 * The median is the k-th smallest value whatever the algorithm, so these
 * give the same value as gsl_stats_median (for even n the mean of the two
 * middle values, 0.5 * (a + b)); only the work differs. Noise makes the
 * comparison of a value with a pivot a coin toss, which costs a branch
 * misprediction per value in a textbook quickselect (most of the time of
 * the filter's many small medians), so the partitions below are written
 * without a branch on it. Large arrays (the calibration's million score
 * values) are first narrowed to the values between two order statistics
 * of a sample bracketing the median (Floyd & Rivest 1975, Commun. ACM 18:
 * 165-172, algorithm SELECT), one pass over the data. NaN must not be
 * passed. */

/* Arrays up to this size are selected in buffers on the stack. */
#define SELECT_STACK 256
/* From this size on the sample bracket pays for its extra pass. */
#define SELECT_SAMPLE 8192
/* Values passed between checks of the bracket's buffer. */
#define SELECT_CHUNK 4096

/* Partition src[lo..hi) into dst[lo..hi): the values below pivot (or not
 * above it, when le) from lo up, the others from hi - 1 down. Returns how
 * many went below. Each value is stored on both sides and only the side
 * it belongs to advances; the other copy lands on a slot that is written
 * again before the end. */
static size_t
partition_below(const double *restrict src, double *restrict dst, size_t lo,
                size_t hi, double pivot, int le)
{
  size_t l = lo, r = hi - 1, i;
  if (le) {
    for (i = lo; i < hi; i++) {
      double x = src[i];
      size_t c = !(x > pivot);
      dst[l] = x;
      dst[r] = x;
      l += c;
      r -= 1 - c;
    }
  } else {
    for (i = lo; i < hi; i++) {
      double x = src[i];
      size_t c = x < pivot;
      dst[l] = x;
      dst[r] = x;
      l += c;
      r -= 1 - c;
    }
  }
  return l - lo;
}

/* min and max as the compiler turns them into minsd / maxsd: no branch */
static double
min2(double a, double b)
{
  return b < a ? b : a;
}

static double
max2(double a, double b)
{
  return a < b ? b : a;
}

static double
median3(double a, double b, double c)
{
  return max2(min2(a, b), min2(max2(a, b), c));
}

static double
max_of(const double *v, size_t n)
{
  double m = v[0];
  size_t i;
  for (i = 1; i < n; i++)
    m = max2(m, v[i]);
  return m;
}

/* Sort t[0..8) with Batcher's odd-even merge network (19 comparators,
 * Knuth, TAOCP 3, 5.3.4): a fixed sequence of min/max, so no branch. */
static void
sort8(double *t)
{
#define CX(i, j)                                                             \
  do {                                                                       \
    double p_ = t[i], q_ = t[j];                                             \
    t[i] = min2(p_, q_);                                                     \
    t[j] = max2(p_, q_);                                                     \
  } while (0)
  CX(0, 1);
  CX(2, 3);
  CX(4, 5);
  CX(6, 7);
  CX(0, 2);
  CX(1, 3);
  CX(4, 6);
  CX(5, 7);
  CX(1, 2);
  CX(5, 6);
  CX(0, 4);
  CX(1, 5);
  CX(2, 6);
  CX(3, 7);
  CX(2, 4);
  CX(3, 5);
  CX(1, 2);
  CX(3, 4);
  CX(5, 6);
#undef CX
}

/* The k-th smallest (0-based) of v[0..n), and the (k-1)-th into *lower
 * when lower is not NULL (k > 0). v is only read; a and b are scratch of
 * n values each, and a may be v itself when v may be overwritten. The
 * range holding rank k shrinks by a partition from one buffer into the
 * other each step, until at most 8 values are left for a sorting
 * network. */
static double
select_pingpong(const double *v, size_t n, size_t k, double *lower,
                double *a, double *b)
{
  const double *src = v, *left = NULL;
  double *dst = b, t[8];
  size_t lo = 0, hi = n, nleft = 0, i;
  while (hi - lo > 8) {
    size_t len = hi - lo, e = len / 8, nl, mid;
    const double *z = src + lo;
    int go_left;
    /* the pivot: median of 3, or from 40 values on Tukey's ninther
     * (median of three medians of 3), which splits closer to the middle
     * and saves more than it costs */
    double p = len < 40 ? median3(z[0], z[len / 2], z[len - 1])
                        : median3(median3(z[0], z[e], z[2 * e]),
                                  median3(z[3 * e], z[4 * e], z[5 * e]),
                                  median3(z[6 * e], z[7 * e], z[len - 1]));
    nl = partition_below(src, dst, lo, hi, p, 0);
    if (nl == 0) {
      /* p is the smallest value left: split off the values equal to it,
       * so that ties (a quantised trace) cannot stall the search */
      nl = partition_below(src, dst, lo, hi, p, 1);
      if (k < lo + nl) {
        if (lower != NULL)
          *lower = k > lo ? p : max_of(left, nleft);
        return p;
      }
    }
    /* Every value dropped below is smaller than those kept, and each
     * drop from a later, narrower range exceeds the earlier ones: the
     * (k-1)-th, if it falls out of the range, is the largest of the last
     * drop, which no later step overwrites. The side is chosen without
     * a branch: it is a coin toss too. */
    mid = lo + nl;
    go_left = k < mid;
    left = go_left ? left : dst + lo;
    nleft = go_left ? nleft : nl;
    hi = go_left ? mid : hi;
    lo = go_left ? lo : mid;
    src = dst;
    dst = dst == b ? a : b;
  }
  /* pad with +inf, which sorts after the values */
  for (i = 0; i < 8; i++)
    t[i] = lo + i < hi ? src[lo + i] : INFINITY;
  sort8(t);
  if (lower != NULL)
    *lower = k > lo ? t[k - lo - 1] : max_of(left, nleft);
  return t[k - lo];
}

/* Hoare's quickselect in place (v reordered): the fallback when memory
 * for the scratch buffers cannot be had. */
static double
select_inplace(double *v, size_t n, size_t k, double *lower)
{
  size_t lo = 0, hi = n - 1;
  while (hi > lo) {
    double pivot = v[lo + (hi - lo) / 2];
    size_t i = lo, j = hi;
    while (i <= j) {
      while (v[i] < pivot)
        i++;
      while (v[j] > pivot)
        j--;
      if (i <= j) {
        double t = v[i];
        v[i] = v[j];
        v[j] = t;
        i++;
        if (j == 0)
          break;
        j--;
      }
    }
    if (k <= j)
      hi = j;
    else if (k >= i)
      lo = i;
    else
      break;
  }
  /* v[0..k) now holds the values not above v[k] */
  if (lower != NULL)
    *lower = max_of(v, k);
  return v[k];
}

static double select_rank(double *v, size_t n, size_t k, double *lower);

/* The gathering pass of select_sampled over v[i..e): counts of the values
 * below lo and at most hi into *below and *upto, those in [lo, hi]
 * appended to in[m..] in the order of v (in needs room for 4 more);
 * returns the new m. Four values a step where AVX2 runs, with the same
 * comparisons and the same values in the same order as the scalar loop. */
static size_t
gather_scalar(const double *v, size_t i, size_t e, double lo, double hi,
              double *in, size_t m, size_t *below, size_t *upto)
{
  for (; i < e; i++) {
    double x = v[i];
    size_t lt = x < lo, le = x <= hi;
    *below += lt;
    *upto += le;
    in[m] = x;
    m += le & (lt ^ 1);
  }
  return m;
}

#ifdef QTL_X86_SIMD
#include <immintrin.h>
__attribute__((target("avx2,popcnt"))) static size_t
gather_avx2(const double *v, size_t i, size_t e, double lo, double hi,
            double *in, size_t m, size_t *below, size_t *upto)
{
  /* for each 4-bit mask, the 32-bit lanes that move the kept doubles to
   * the front, in order */
  static const int idx[16][8] = {
      {0, 1, 2, 3, 4, 5, 6, 7}, {0, 1, 2, 3, 4, 5, 6, 7},
      {2, 3, 0, 1, 4, 5, 6, 7}, {0, 1, 2, 3, 4, 5, 6, 7},
      {4, 5, 0, 1, 2, 3, 6, 7}, {0, 1, 4, 5, 2, 3, 6, 7},
      {2, 3, 4, 5, 0, 1, 6, 7}, {0, 1, 2, 3, 4, 5, 6, 7},
      {6, 7, 0, 1, 2, 3, 4, 5}, {0, 1, 6, 7, 2, 3, 4, 5},
      {2, 3, 6, 7, 0, 1, 4, 5}, {0, 1, 2, 3, 6, 7, 4, 5},
      {4, 5, 6, 7, 0, 1, 2, 3}, {0, 1, 4, 5, 6, 7, 2, 3},
      {2, 3, 4, 5, 6, 7, 0, 1}, {0, 1, 2, 3, 4, 5, 6, 7}};
  const __m256d vlo = _mm256_set1_pd(lo), vhi = _mm256_set1_pd(hi);
  size_t nb = 0, nu = 0;
  for (; i + 4 <= e; i += 4) {
    __m256d x = _mm256_loadu_pd(v + i);
    int lt = _mm256_movemask_pd(_mm256_cmp_pd(x, vlo, _CMP_LT_OQ));
    int le = _mm256_movemask_pd(_mm256_cmp_pd(x, vhi, _CMP_LE_OQ));
    int keep = le & ~lt;
    __m256i p = _mm256_loadu_si256((const __m256i *)(const void *)idx[keep]);
    nb += (size_t)__builtin_popcount((unsigned)lt);
    nu += (size_t)__builtin_popcount((unsigned)le);
    _mm256_storeu_pd(in + m, _mm256_castps_pd(_mm256_permutevar8x32_ps(
                                 _mm256_castpd_ps(x), p)));
    m += (size_t)__builtin_popcount((unsigned)keep);
  }
  *below += nb;
  *upto += nu;
  return gather_scalar(v, i, e, lo, hi, in, m, below, upto);
}
#endif

/* Floyd-Rivest narrowing of a large v: two order statistics of a sample
 * of s values whose ranks bracket k by 2 sqrt(s) on each side (4 SD of the
 * sample rank), then one pass that counts the values below the bracket
 * and gathers those inside it, ends included (about 4 n / sqrt(s) of
 * them), and a selection among those. Two comparisons per value, and no
 * branch on them. Returns 0, or -1 when the bracket missed rank k or k-1
 * (an unlucky sample, or many ties at its ends) or memory ran out; the
 * caller then selects on the whole array. */
static int
select_sampled(const double *v, size_t n, size_t k, double *kth,
               double *lower)
{
  size_t s, w, i, rlo, rhi, cap, m = 0, below = 0, upto = 0;
  size_t kl = lower != NULL ? k - 1 : k;
  double *smp, *in, lo_val, hi_val, cen, d;
  uint64_t state = 0x9e3779b97f4a7c15u;
  /* s = (2n)^(2/3) balances the selection in the sample against the
   * selection among the gathered values */
  s = (size_t)pow(2.0 * (double)n, 2.0 / 3.0);
  w = n / s;
  smp = malloc(3 * s * sizeof *smp);
  if (smp == NULL)
    return -1;
  /* one value from each of s strata of w values, at a pseudo-random
   * place (xorshift64), so that a period in the data cannot bias it */
  for (i = 0; i < s; i++) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    smp[i] = v[i * w + (size_t)(state % w)];
  }
  cen = ((double)k + 0.5) * (double)s / (double)n;
  d = 2.0 * sqrt((double)s) + 1.0;
  rlo = cen - d > 0.0 ? (size_t)(cen - d) : 0;
  rhi = cen + d < (double)(s - 1) ? (size_t)(cen + d) : s - 1;
  lo_val = select_pingpong(smp, s, rlo, NULL, smp + s, smp + 2 * s);
  hi_val = select_pingpong(smp, s, rhi, NULL, smp + s, smp + 2 * s);
  free(smp);
  if (lo_val == hi_val) {
    /* a tie over the whole bracket (quantised data): the answer if the
     * tied values span ranks kl .. k */
    for (i = 0; i < n; i++) {
      below += v[i] < lo_val;
      upto += v[i] <= lo_val;
    }
    if (below > kl || k >= upto)
      return -1;
    *kth = lo_val;
    if (lower != NULL)
      *lower = lo_val;
    return 0;
  }
  cap = 2 * (size_t)((double)(rhi - rlo + 1) / (double)s * (double)n) +
        SELECT_CHUNK;
  if (cap > n)
    cap = n;
  in = malloc((cap + SELECT_CHUNK + 4) * sizeof *in); /* gather_avx2 */
  if (in == NULL)
    return -1;
  for (i = 0; i < n;) {
    size_t e = i + SELECT_CHUNK < n ? i + SELECT_CHUNK : n;
#ifdef QTL_X86_SIMD
    if (qtl_have_avx2())
      m = gather_avx2(v, i, e, lo_val, hi_val, in, m, &below, &upto);
    else
#endif
      m = gather_scalar(v, i, e, lo_val, hi_val, in, m, &below, &upto);
    i = e;
    if (m > cap) {
      free(in);
      return -1;
    }
  }
  /* ranks [below, upto) hold the m gathered values, in some order */
  if (below > kl || k >= upto) {
    free(in);
    return -1;
  }
  *kth = select_rank(in, m, k - below, lower);
  free(in);
  return 0;
}

/* The k-th smallest of v[0..n) (and the (k-1)-th into *lower when not
 * NULL). v is left unchanged, unless memory runs out, when it is
 * reordered. */
static double
select_rank(double *v, size_t n, size_t k, double *lower)
{
  double kth, *buf;
  if (n <= SELECT_STACK) {
    double a[SELECT_STACK], b[SELECT_STACK];
    return select_pingpong(v, n, k, lower, a, b);
  }
  if (n >= SELECT_SAMPLE && select_sampled(v, n, k, &kth, lower) == 0)
    return kth;
  buf = malloc(2 * n * sizeof *buf);
  if (buf == NULL)
    return select_inplace(v, n, k, lower);
  kth = select_pingpong(v, n, k, lower, buf, buf + n);
  free(buf);
  return kth;
}

/* ---- medians of many small columns at once ----------------------------
 *
 * Many medians of the same small size (the hum's bins over a window's
 * cycles, the baseline's segments) are cheaper through a sorting network
 * applied to all of them together: a fixed sequence of compare-exchanges
 * of whole rows, min and max without a branch, over consecutive memory
 * that the compiler vectorises. The network is Batcher's odd-even merge
 * in the form of Knuth's merge exchange (TAOCP 3, 5.2.2, Algorithm M),
 * which sorts any m, pruned to the comparators that lead to the two
 * middle outputs. */

/* Largest column for the network, and room for its comparators (Batcher
 * needs 1471 for 128). */
#define NET_MAX_M 128
#define NET_MAX_CX 1536

/* The comparators of the pruned network into cx; returns their number. */
static size_t
median_network(size_t m, unsigned char (*cx)[2])
{
  size_t t = 0, p, q, r, d, i, ncx = 0, c, keep;
  unsigned char need[NET_MAX_M];
  if (m < 2)
    return 0;
  while (((size_t)1 << t) < m)
    t++;
  for (p = (size_t)1 << (t - 1); p > 0; p >>= 1) {
    q = (size_t)1 << (t - 1);
    r = 0;
    d = p;
    for (;;) {
      for (i = 0; i + d < m; i++)
        if ((i & p) == r) {
          cx[ncx][0] = (unsigned char)i;
          cx[ncx][1] = (unsigned char)(i + d);
          ncx++;
        }
      if (q == p)
        break;
      d = q - p;
      q >>= 1;
      r = p;
    }
  }
  /* backwards from the middle outputs: a comparator matters if it
   * writes a wire that a kept one (or an output) reads */
  memset(need, 0, m);
  need[(m - 1) / 2] = need[m / 2] = 1;
  keep = ncx;
  for (c = ncx; c-- > 0;)
    if (need[cx[c][0]] || need[cx[c][1]]) {
      need[cx[c][0]] = need[cx[c][1]] = 1;
      keep--;
      cx[keep][0] = cx[c][0];
      cx[keep][1] = cx[c][1];
    }
  memmove(cx, cx + keep, (ncx - keep) * sizeof *cx);
  return ncx - keep;
}

#ifdef QTL_X86_SIMD
#include <immintrin.h>
/* exchange_rows four values a step: min_pd(b, a) is b < a ? b : a, as
 * min2 (a, b), and max_pd(b, a) is b > a ? b : a, as max2 (a, b), so
 * the same values, signed zeros included. */
__attribute__((target("avx2"))) static void
exchange_rows_avx2(double *restrict a, double *restrict b, size_t n)
{
  size_t j = 0;
  for (; j + 4 <= n; j += 4) {
    __m256d x = _mm256_loadu_pd(a + j), y = _mm256_loadu_pd(b + j);
    _mm256_storeu_pd(a + j, _mm256_min_pd(y, x));
    _mm256_storeu_pd(b + j, _mm256_max_pd(y, x));
  }
  for (; j < n; j++) {
    double x = a[j], y = b[j];
    a[j] = min2(x, y);
    b[j] = max2(x, y);
  }
}
#endif

/* a[j], b[j] = min, max of the two, j < n. */
static void
exchange_rows(double *restrict a, double *restrict b, size_t n)
{
  size_t j = 0;
  int q;
  for (; j + 8 <= n; j += 8)
    for (q = 0; q < 8; q++) {
      double x = a[j + q], y = b[j + q];
      a[j + q] = min2(x, y);
      b[j + q] = max2(x, y);
    }
  for (; j < n; j++) {
    double x = a[j], y = b[j];
    a[j] = min2(x, y);
    b[j] = max2(x, y);
  }
}

int
qtl_median_columns(double *t, size_t m, size_t ncol, size_t ld, double *med)
{
  /* The network of the last m, per thread: the baseline and the hum ask
   * for the same m over and over, and building it was a third of the
   * cost of a call. */
  static _Thread_local unsigned char cx[NET_MAX_CX][2];
  static _Thread_local size_t cx_m, cx_n;
  size_t ncx, c, j;
  if (m == 0 || m > NET_MAX_M)
    return -1;
  if (cx_m != m) {
    cx_n = median_network(m, cx);
    cx_m = m;
  }
  ncx = cx_n;
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2())
    for (c = 0; c < ncx; c++)
      exchange_rows_avx2(t + cx[c][0] * ld, t + cx[c][1] * ld, ncol);
  else
#endif
    for (c = 0; c < ncx; c++)
      exchange_rows(t + cx[c][0] * ld, t + cx[c][1] * ld, ncol);
  for (j = 0; j < ncol; j++)
    med[j] = m % 2 ? t[m / 2 * ld + j]
                   : 0.5 * (t[(m / 2 - 1) * ld + j] + t[m / 2 * ld + j]);
  return 0;
}

double
qtl_median(double *v, size_t n)
{
  double a, b;
  if (n == 0)
    return NAN;
  if (n % 2)
    return select_rank(v, n, n / 2, NULL);
  b = select_rank(v, n, n / 2, &a);
  /* as gsl_stats_median: the lower middle plus the upper */
  return 0.5 * (a + b);
}

double
qtl_mad_sd(double *v, size_t n)
{
  return qtl_mad_sd_med(v, n, NULL);
}

double
qtl_mad_sd_med(double *v, size_t n, double *median)
{
  /* 1.4826 * MAD estimates the SD of a Gaussian (1 / Phi^-1(3/4)); the
   * median of first differences ignores slow drift, and the MAD ignores
   * the few large differences at event onsets. */
  double med = qtl_median(v, n);
  if (median != NULL)
    *median = med;
  size_t i;
  for (i = 0; i < n; i++)
    v[i] = fabs(v[i] - med);
  return 1.482602218505602 * qtl_median(v, n);
}

int
qtl_cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

unsigned
qtl_claim_next(pthread_mutex_t *mu, unsigned *next, unsigned B,
               void (*on_progress)(size_t done, size_t total, void *user),
               void *user)
{
  unsigned b;
  pthread_mutex_lock(mu);
  b = (*next)++;
  if (on_progress != NULL && b < B)
    on_progress(b, B, user);
  pthread_mutex_unlock(mu);
  return b;
}

double
qtl_percentile_sorted(const double *v, size_t n, double f)
{
  double h = (n - 1) * f;
  size_t i = (size_t)floor(h);
  if (n == 0)
    return NAN;
  if (i + 1 >= n)
    return v[n - 1];
  return v[i] + (h - i) * (v[i + 1] - v[i]);
}
