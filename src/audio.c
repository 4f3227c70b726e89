/* audio.c - recordings in libsndfile containers: reading and writing. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <sndfile.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct sf_ctx {
  SNDFILE *sf;
  const char *path;
  int subtype;
  double int_factor; /* libsndfile value -> stored integer count */
  size_t n_channels;
  uint64_t pos;      /* current read position, to skip needless seeks */
  /* A RIFF WAV of 32-bit floats is read from a read-only mapping of its
   * data chunk: libsndfile copies it out of the kernel in small pieces
   * and converts it a second time, which was most of the cost of reading
   * (an hour at 20 kHz: 0.12-0.19 CPU s against 0.04-0.06 mapped). */
  int fd;
  const unsigned char *map;
  size_t map_len;
  uint64_t data_off;            /* where the samples start in the file */
  long page;                     /* the page size */
  uintptr_t span_lo, span_hi;    /* pages touched since the last drop */
  unsigned char *small;          /* MAP_SMALL bytes for short reads */
  int last_fin;                  /* the last read's values all finite */
} sf_ctx;

/* Mapped pages stay in the process's resident set until dropped, so an
 * hour's file would count in full against the memory a streaming reader
 * promises. The pages touched since the last drop are tracked as one span
 * and dropped (MADV_DONTNEED: they stay in the page cache, and a later
 * read faults them in again) once it passes MAP_SPAN_MAX bytes. */
#define MAP_SPAN_MAX ((uintptr_t)1 << 20)

static void
map_touched(sf_ctx *c, const unsigned char *p, size_t len)
{
  uintptr_t pg = (uintptr_t)c->page, a, b;
  a = (uintptr_t)p & ~(pg - 1);
  b = ((uintptr_t)p + len + pg - 1) & ~(pg - 1);
  if (c->span_hi == 0) {
    c->span_lo = a;
    c->span_hi = b;
  } else {
    if (a < c->span_lo)
      c->span_lo = a;
    if (b > c->span_hi)
      c->span_hi = b;
  }
  if (c->span_hi - c->span_lo > MAP_SPAN_MAX) {
    madvise((void *)c->span_lo, c->span_hi - c->span_lo, MADV_DONTNEED);
    c->span_lo = c->span_hi = 0;
  }
}

/* Reads of at most this many bytes are copied out of the file with pread
 * rather than faulted into the mapping: a fault maps (and the later drop
 * unmaps) 64 kB around the page it needs, which for evoked's short
 * windows, two per stimulus, was most of the kernel's time. */
#define MAP_SMALL ((size_t)1 << 15)

/* Frames first..first+n (every channel), after checking the file's size:
 * a file cut short while open would otherwise fault instead of failing.
 * In the mapping (*mapped = 1), or for a short read in c->small. NULL
 * (diag set) when the file shrank or cannot be read. */
static const unsigned char *
map_frames(sf_ctx *c, uint64_t first, size_t n, int *mapped,
           quantal_diag *diag)
{
  struct stat sb;
  uint64_t off = c->data_off + first * c->n_channels * 4;
  size_t bytes = n * c->n_channels * 4, got = 0;
  if (fstat(c->fd, &sb) != 0 || (uint64_t)sb.st_size < off + bytes) {
    qtl_fail(diag, QUANTAL_EFORMAT, c->path, -1, (long long)first,
             "truncated data: the file shrank while it was read");
    return NULL;
  }
  *mapped = 1;
  if (bytes > MAP_SMALL) {
    /* The block's page-table entries in one call (Linux 5.14) rather
     * than a fault per 64 kB as the conversion walks it: in a VM each
     * fault exits to the hypervisor (detect's system time on an hour's
     * WAV, median of 9: 0.18 -> 0.15 s). Refused by an older kernel:
     * the faults do it. */
#ifdef MADV_POPULATE_READ
    uintptr_t pg = (uintptr_t)c->page,
              a = (uintptr_t)(c->map + off) & ~(pg - 1),
              b = ((uintptr_t)(c->map + off) + bytes + pg - 1) & ~(pg - 1);
    (void)madvise((void *)a, b - a, MADV_POPULATE_READ);
#endif
    return c->map + off;
  }
  if (c->small == NULL && (c->small = malloc(MAP_SMALL)) == NULL)
    return c->map + off; /* no buffer: the mapping will do */
  while (got < bytes) {
    ssize_t r = pread(c->fd, c->small + got, bytes - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      qtl_fail(diag, QUANTAL_EFORMAT, c->path, -1, (long long)first,
               "truncated data: the file shrank while it was read");
      return NULL;
    }
    got += (size_t)r;
  }
  *mapped = 0;
  return c->small;
}

#ifdef QTL_X86_SIMD
#include <immintrin.h>
/* out[i] = (double)f[i], i < m, eight a step (exact, as the scalar
 * loop: GCC leaves that one unvectorised, the bytes of the mapping
 * possibly aliasing out); 1 when every value is finite, noted in the
 * same pass for qtl_recording_read_finite. */
__attribute__((target("avx2"))) static int
widen_avx2(const unsigned char *p, size_t m, double *out)
{
  const __m256 big = _mm256_set1_ps(FLT_MAX),
               absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 fin = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  size_t i;
  int ok;
  for (i = 0; i + 8 <= m; i += 8) {
    __m256 v = _mm256_loadu_ps((const float *)(const void *)(p + 4 * i));
    fin = _mm256_and_ps(
        fin, _mm256_cmp_ps(_mm256_and_ps(v, absm), big, _CMP_LE_OQ));
    _mm256_storeu_pd(out + i, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    _mm256_storeu_pd(out + i + 4,
                     _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  ok = _mm256_movemask_ps(fin) == 0xff;
  for (; i < m; i++) {
    float v;
    memcpy(&v, p + 4 * i, sizeof v);
    out[i] = (double)v;
    ok &= fabsf(v) <= FLT_MAX;
  }
  return ok; /* every value finite */
}

/* out[i] = (double)f[2 i + ch] * scale + offset, i < n: channel ch of
 * two, four frames a step, the product and the sum rounded apart (no
 * FMA) as in the scalar loop, so the same bits. */
__attribute__((target("avx2"))) static int
channel_of_two_avx2(const unsigned char *p, size_t ch, size_t n,
                    double scale, double offset, double *out)
{
  const __m128 big = _mm_set1_ps(FLT_MAX),
               absm = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
  __m128 fin = _mm_castsi128_ps(_mm_set1_epi32(-1));
  int ok;
  const __m256i pick = ch == 0 ? _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6)
                               : _mm256_setr_epi32(1, 3, 5, 7, 1, 3, 5, 7);
  const __m256d s = _mm256_set1_pd(scale), o = _mm256_set1_pd(offset);
  size_t i;
  for (i = 0; i + 4 <= n; i += 4) {
    __m256 v = _mm256_loadu_ps((const float *)(const void *)(p + 8 * i));
    __m128 c = _mm256_castps256_ps128(_mm256_permutevar8x32_ps(v, pick));
    __m256d d = _mm256_cvtps_pd(c);
    fin = _mm_and_ps(fin, _mm_cmp_ps(_mm_and_ps(c, absm), big, _CMP_LE_OQ));
    _mm256_storeu_pd(out + i, _mm256_add_pd(_mm256_mul_pd(d, s), o));
  }
  ok = _mm_movemask_ps(fin) == 0xf;
  for (; i < n; i++) {
    float v;
    memcpy(&v, p + 4 * (2 * i + ch), sizeof v);
    out[i] = (double)v * scale + offset;
    ok &= fabsf(v) <= FLT_MAX;
  }
  return ok; /* every value of the channel finite */
}
#endif

/* Frames first..first+n of every channel from the mapping, as doubles
 * (float to double is exact). */
static quantal_status
map_read(sf_ctx *c, uint64_t first, size_t n, double *out,
         quantal_diag *diag)
{
  size_t i, m = n * c->n_channels;
  int mapped;
  const unsigned char *p = map_frames(c, first, n, &mapped, diag);
  if (p == NULL)
    return QUANTAL_EFORMAT;
  c->last_fin = 0;
#ifdef QTL_X86_SIMD
  if (qtl_have_avx2())
    c->last_fin = widen_avx2(p, m, out);
  else
#endif
    for (i = 0; i < m; i++) {
      float v;
      memcpy(&v, p + 4 * i, sizeof v);
      out[i] = (double)v;
    }
  if (mapped)
    map_touched(c, p, 4 * m);
  return QUANTAL_OK;
}

/* Channel ch alone from the mapping (evoked reads a trigger channel and
 * a recorded one of the same file: converting both each time doubled
 * the work). */
static quantal_status
map_read_channel(void *vctx, size_t ch, uint64_t first, size_t n,
                 double scale, double offset, double *out,
                 quantal_diag *diag)
{
  sf_ctx *c = vctx;
  size_t i, nc = c->n_channels;
  int mapped;
  const unsigned char *p = map_frames(c, first, n, &mapped, diag);
  if (p == NULL)
    return QUANTAL_EFORMAT;
  c->last_fin = 0;
#ifdef QTL_X86_SIMD
  if (nc == 2 && qtl_have_avx2())
    c->last_fin = channel_of_two_avx2(p, ch, n, scale, offset, out);
  else
#endif
    for (i = 0; i < n; i++) {
      float v;
      memcpy(&v, p + 4 * (nc * i + ch), sizeof v);
      out[i] = (double)v * scale + offset;
    }
  if (mapped)
    map_touched(c, p, 4 * nc * n);
  return QUANTAL_OK;
}

/* Range of the finite floats p[0], p[nc], ... (n of them). */
static void
range_scalar(const unsigned char *p, size_t nc, size_t n, float *lo,
             float *hi)
{
  float a = INFINITY, b = -INFINITY;
  size_t i;
  for (i = 0; i < n; i++) {
    float v;
    memcpy(&v, p + 4 * nc * i, sizeof v);
    if (fabsf(v) <= FLT_MAX) {
      a = v < a ? v : a;
      b = v > b ? v : b;
    }
  }
  *lo = a;
  *hi = b;
}

#ifdef QTL_X86_SIMD
/* The same for one or two channels (ch of them), eight floats a step:
 * non-finite values enter as +inf to the minimum and -inf to the
 * maximum, and the lanes of the other channel are dropped at the end.
 * Minimum and maximum are exact, so the result is the scalar loop's. */
__attribute__((target("avx2"))) static void
range_avx2(const unsigned char *p, size_t nc, size_t ch, size_t n, float *lo,
           float *hi)
{
  const __m256 big = _mm256_set1_ps(FLT_MAX), pinf = _mm256_set1_ps(INFINITY),
               ninf = _mm256_set1_ps(-INFINITY),
               absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 a = pinf, b = ninf;
  size_t i, m = n * nc, k;
  float la[8], lb[8], ta, tb;
  for (i = 0; i + 8 <= m; i += 8) {
    __m256 v = _mm256_loadu_ps((const float *)(const void *)(p + 4 * i));
    __m256 ok = _mm256_cmp_ps(_mm256_and_ps(v, absm), big, _CMP_LE_OQ);
    a = _mm256_min_ps(a, _mm256_blendv_ps(pinf, v, ok));
    b = _mm256_max_ps(b, _mm256_blendv_ps(ninf, v, ok));
  }
  _mm256_storeu_ps(la, a);
  _mm256_storeu_ps(lb, b);
  ta = INFINITY;
  tb = -INFINITY;
  for (k = ch; k < 8; k += nc) {
    ta = la[k] < ta ? la[k] : ta;
    tb = lb[k] > tb ? lb[k] : tb;
  }
  /* the frames past the last full step (i is a whole number of frames) */
  range_scalar(p + 4 * (i + ch), nc, (m - i) / nc, la, lb);
  *lo = la[0] < ta ? la[0] : ta;
  *hi = lb[0] > tb ? lb[0] : tb;
}
#endif

static quantal_status
map_channel_range(void *vctx, size_t ch, uint64_t first, size_t n, size_t sub,
                  float *lo, float *hi, quantal_diag *diag)
{
  sf_ctx *c = vctx;
  size_t nc = c->n_channels, r, i;
  int mapped;
  const unsigned char *p = map_frames(c, first, n, &mapped, diag);
  if (p == NULL)
    return QUANTAL_EFORMAT;
  for (r = 0, i = 0; i < n; i += sub, r++) {
    size_t m = n - i < sub ? n - i : sub;
    const unsigned char *q = p + 4 * nc * i;
#ifdef QTL_X86_SIMD
    if (nc <= 2 && qtl_have_avx2())
      range_avx2(q, nc, ch, m, lo + r, hi + r);
    else
#endif
      range_scalar(q + 4 * ch, nc, m, lo + r, hi + r);
  }
  if (mapped)
    map_touched(c, p, 4 * nc * n);
  return QUANTAL_OK;
}

/* The byte range of the samples of a little-endian RIFF WAVE file, from
 * its chunks: "RIFF" size "WAVE", then id-size chunks, padded to even
 * sizes, up to "data". 0 when the file is anything else (RIFX, RF64,
 * no data chunk). */
static int
riff_data_range(int fd, uint64_t *off, uint64_t *len)
{
  unsigned char h[12];
  uint64_t pos = 12;
  int k;
  if (pread(fd, h, 12, 0) != 12 || memcmp(h, "RIFF", 4) != 0 ||
      memcmp(h + 8, "WAVE", 4) != 0)
    return 0;
  for (k = 0; k < 1000; k++) {
    unsigned char c[8];
    uint64_t sz;
    if (pread(fd, c, 8, (off_t)pos) != 8)
      return 0;
    sz = (uint64_t)c[4] | (uint64_t)c[5] << 8 | (uint64_t)c[6] << 16 |
         (uint64_t)c[7] << 24;
    if (memcmp(c, "data", 4) == 0) {
      *off = pos + 8;
      *len = sz;
      return 1;
    }
    pos += 8 + sz + (sz & 1);
  }
  return 0;
}

/* Map the data chunk of a float32 RIFF WAV whose data chunk holds every
 * frame libsndfile reports; otherwise leave c->map NULL (libsndfile
 * reads it). */
static void
map_float_wav(sf_ctx *c, const SF_INFO *info, const char *path)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  uint64_t off, len, need;
  struct stat sb;
  void *m;
  int type = info->format & SF_FORMAT_TYPEMASK;
  if ((type != SF_FORMAT_WAV && type != SF_FORMAT_WAVEX) ||
      (info->format & SF_FORMAT_SUBMASK) != SF_FORMAT_FLOAT ||
      (info->format & SF_FORMAT_ENDMASK) == SF_ENDIAN_BIG || info->frames <= 0)
    return;
  c->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (c->fd < 0)
    return;
  need = (uint64_t)info->frames * c->n_channels * 4;
  if (!riff_data_range(c->fd, &off, &len) || len < need ||
      fstat(c->fd, &sb) != 0 || (uint64_t)sb.st_size < off + need ||
      off + need > (uint64_t)SIZE_MAX) {
    close(c->fd);
    c->fd = -1;
    return;
  }
  m = mmap(NULL, (size_t)(off + need), PROT_READ, MAP_PRIVATE, c->fd, 0);
  if (m == MAP_FAILED) {
    close(c->fd);
    c->fd = -1;
    return;
  }
  madvise(m, (size_t)(off + need), MADV_SEQUENTIAL);
  c->page = sysconf(_SC_PAGESIZE);
  if (c->page <= 0 || (c->page & (c->page - 1)) != 0)
    c->page = 4096;
  c->map = m;
  c->map_len = (size_t)(off + need);
  c->data_off = off;
#else
  (void)c;
  (void)info;
  (void)path;
#endif
}

static quantal_status
sf_backend_read(void *vctx, uint64_t first, size_t n, double *out,
                quantal_diag *diag)
{
  sf_ctx *c = vctx;
  sf_count_t got;
  if (c->map)
    return map_read(c, first, n, out, diag);
  if (c->pos != first) {
    if (sf_seek(c->sf, (sf_count_t)first, SEEK_SET) < 0)
      return qtl_fail(diag, QUANTAL_EIO, c->path, -1, (long long)first,
                      "cannot seek to frame %llu: %s",
                      (unsigned long long)first, sf_strerror(c->sf));
    c->pos = first;
  }
  got = sf_readf_double(c->sf, out, (sf_count_t)n);
  if (got < 0 || (size_t)got != n) {
    c->pos = (uint64_t)-1;
    return qtl_fail(diag, QUANTAL_EFORMAT, c->path, -1,
                    (long long)(first + (got > 0 ? (uint64_t)got : 0)),
                    "truncated data: only %lld of %zu frames could be read "
                    "from frame %llu",
                    (long long)(got > 0 ? got : 0), n,
                    (unsigned long long)first);
  }
  c->pos = first + n;
  if (c->int_factor != 1.0) {
    size_t i, m = n * c->n_channels;
    for (i = 0; i < m; i++)
      out[i] *= c->int_factor;
  }
  return QUANTAL_OK;
}

static void
sf_backend_close(void *vctx)
{
  sf_ctx *c = vctx;
  if (c == NULL)
    return;
  if (c->sf != NULL)
    sf_close(c->sf);
  if (c->map)
    munmap((void *)c->map, c->map_len);
  free(c->small);
  if (c->fd >= 0)
    close(c->fd);
  free(c);
}

static int
map_last_finite(void *vctx)
{
  return ((const sf_ctx *)vctx)->last_fin;
}

static const qtl_backend_ops sf_ops = {sf_backend_read, sf_backend_close,
                                       NULL, NULL, NULL};
static const qtl_backend_ops sf_map_ops = {sf_backend_read, sf_backend_close,
                                           map_read_channel,
                                           map_channel_range,
                                           map_last_finite};

static const char *
subtype_name(int subtype, int *is_int)
{
  *is_int = 1;
  switch (subtype) {
  case SF_FORMAT_PCM_S8: return "pcm8";
  case SF_FORMAT_PCM_U8: return "pcm8u";
  case SF_FORMAT_PCM_16: return "pcm16";
  case SF_FORMAT_PCM_24: return "pcm24";
  case SF_FORMAT_PCM_32: return "pcm32";
  case SF_FORMAT_FLOAT: *is_int = 0; return "float32";
  case SF_FORMAT_DOUBLE: *is_int = 0; return "float64";
  case SF_FORMAT_ULAW: return "ulaw";
  case SF_FORMAT_ALAW: return "alaw";
  default: *is_int = 0; return "compressed";
  }
}

/* Integer counts per full scale, so stored values are the integers the
 * digitiser produced. libsndfile with normalisation off hands back PCM as
 * the integer left-aligned in a 32-bit int for some containers; we ask for
 * normalised doubles instead and multiply back by the native full scale,
 * which is exact for every integer width up to 24 bits (and within 1 ulp of
 * the 32-bit count). */
static double
full_scale(int subtype)
{
  switch (subtype) {
  case SF_FORMAT_PCM_S8:
  case SF_FORMAT_PCM_U8: return 128.0;
  case SF_FORMAT_PCM_16:
  case SF_FORMAT_ULAW:
  case SF_FORMAT_ALAW: return 32768.0;
  case SF_FORMAT_PCM_24: return 8388608.0;
  case SF_FORMAT_PCM_32: return 2147483648.0;
  default: return 1.0;
  }
}

/* libsndfile quietly shortens a recording whose data chunk is cut off (a
 * copy interrupted, a disk that filled up during acquisition) and only says
 * so in its log ("data : 8000 (should be 4828)"). A shortened recording
 * read as if complete would bias every rate and count, so refuse it. */
static quantal_status
check_truncation(SNDFILE *sf, const char *path, quantal_diag *diag)
{
  char log[8192];
  const char *p = log;
  if (sf_command(sf, SFC_GET_LOG_INFO, log, sizeof log) <= 0)
    return QUANTAL_OK;
  while ((p = strstr(p, "(should be ")) != NULL) {
    const char *bol = p;
    while (bol > log && bol[-1] != '\n')
      bol--;
    if (strncmp(bol, "data", 4) == 0 || strncmp(bol, "SSND", 4) == 0) {
      long long declared = 0, present = 0;
      if (sscanf(bol + 4, " : %lld (should be %lld)", &declared,
                 &present) == 2 && present < declared)
        return qtl_fail(diag, QUANTAL_EFORMAT, path, -1, -1,
                        "truncated data: the header declares %lld bytes of "
                        "samples but only %lld are present",
                        declared, present);
    }
    p++;
  }
  return QUANTAL_OK;
}

quantal_status
qtl_sndfile_open(quantal_recording *rec, quantal_diag *diag)
{
  SF_INFO info;
  SF_FORMAT_INFO fi;
  sf_ctx *c;
  const char *comment;
  int is_int;
  quantal_status st;

  memset(&info, 0, sizeof info);
  c = calloc(1, sizeof *c);
  if (c == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1, "out of memory");
  c->path = rec->path;
  c->fd = -1;
  c->sf = sf_open(rec->path, SFM_READ, &info);
  if (c->sf == NULL) {
    /* sf_strerror(NULL) is process-wide: copy it at once. */
    char why[256];
    qtl_strlcpy(why, sf_strerror(NULL), sizeof why);
    free(c);
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "not a recording quantal can read (%s)", why);
  }
  rec->ctx = c;
  rec->ops = &sf_ops;
  if (info.channels <= 0)
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "the file has no channels");
  c->n_channels = (size_t)info.channels;
  c->subtype = info.format & SF_FORMAT_SUBMASK;
  rec->info.frames = info.frames > 0 ? (uint64_t)info.frames : 0;
  rec->info.rate_hz = (double)info.samplerate;
  st = qtl_recording_alloc_layout(rec, (size_t)info.channels, diag);
  if (st != QUANTAL_OK)
    return st;

  fi.format = info.format & SF_FORMAT_TYPEMASK;
  if (sf_command(NULL, SFC_GET_FORMAT_INFO, &fi, sizeof fi) == 0 &&
      fi.extension != NULL) {
    size_t i;
    qtl_strlcpy(rec->info.format, fi.extension, sizeof rec->info.format);
    for (i = 0; rec->info.format[i]; i++)
      if (rec->info.format[i] >= 'a' && rec->info.format[i] <= 'z')
        rec->info.format[i] = (char)(rec->info.format[i] - 'a' + 'A');
  } else {
    qtl_strlcpy(rec->info.format, "audio", sizeof rec->info.format);
  }
  qtl_strlcpy(rec->info.encoding, subtype_name(c->subtype, &is_int),
              sizeof rec->info.encoding);
  rec->info.integer_samples = is_int;

  /* Never let libsndfile rescale silently: integer PCM is read normalised
   * and scaled back to its integer counts; float data are read as stored. */
  if (is_int) {
    sf_command(c->sf, SFC_SET_NORM_DOUBLE, NULL, SF_TRUE);
    c->int_factor = full_scale(c->subtype);
  } else {
    sf_command(c->sf, SFC_SET_NORM_DOUBLE, NULL, SF_FALSE);
    c->int_factor = 1.0;
  }
  st = check_truncation(c->sf, rec->path, diag);
  if (st != QUANTAL_OK)
    return st;
  map_float_wav(c, &info, rec->path);
  if (c->map)
    rec->ops = &sf_map_ops;
  comment = sf_get_string(c->sf, SF_STR_COMMENT);
  qtl_metadata_parse(rec, comment);
  return QUANTAL_OK;
}

/* ---- writer ------------------------------------------------------------ */

struct quantal_writer {
  SNDFILE *sf;
  char path[1024];
  char tmp[1100];
  size_t n_channels;
  int flac;
  double *inv_scale; /* FLAC: 1 / scale per channel */
  int *ibuf;
  size_t ibuf_frames;
  int direct; /* writing an existing device in place: nothing to rename */
};

void
quantal_writer_abort(quantal_writer *w)
{
  if (w == NULL)
    return;
  if (w->sf != NULL)
    sf_close(w->sf);
  if (w->tmp[0] != '\0')
    unlink(w->tmp);
  free(w->inv_scale);
  free(w->ibuf);
  free(w);
}

quantal_status
quantal_writer_open(const char *path, const quantal_write_options *opt,
                    quantal_writer **out, quantal_diag *diag)
{
  quantal_writer *w;
  SF_INFO info;
  char meta[8192];
  double *scales = NULL;
  int fd;
  size_t i;
  quantal_container ct;

  quantal_diag_clear(diag);
  *out = NULL;
  if (opt == NULL || opt->n_channels == 0 ||
      opt->n_channels > QUANTAL_MAX_CHANNELS)
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1,
                    "a recording needs 1 to %d channels",
                    QUANTAL_MAX_CHANNELS);
  if (!(opt->rate_hz >= 1.0 && opt->rate_hz <= 1e9) ||
      opt->rate_hz != floor(opt->rate_hz))
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1,
                    "sample rate must be a whole number of Hz between 1 "
                    "and 1e9, not %g",
                    opt->rate_hz);
  ct = opt->container;
  if (ct == QUANTAL_CONTAINER_AUTO)
    ct = qtl_has_suffix(path, ".flac") ? QUANTAL_CONTAINER_FLAC
                                       : QUANTAL_CONTAINER_WAV;
  w = calloc(1, sizeof *w);
  if (w == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, path, -1, -1, "out of memory");
  qtl_strlcpy(w->path, path, sizeof w->path);
  w->n_channels = opt->n_channels;
  w->flac = ct == QUANTAL_CONTAINER_FLAC;
  if (w->flac) {
    w->inv_scale = malloc(opt->n_channels * sizeof *w->inv_scale);
    scales = malloc(opt->n_channels * sizeof *scales);
    if (w->inv_scale == NULL || scales == NULL) {
      free(scales);
      quantal_writer_abort(w);
      return qtl_fail(diag, QUANTAL_ENOMEM, path, -1, -1, "out of memory");
    }
    for (i = 0; i < opt->n_channels; i++) {
      double s = opt->scales ? opt->scales[i] : 1e-6;
      if (!(s > 0.0) || !isfinite(s)) {
        free(scales);
        quantal_writer_abort(w);
        return qtl_fail(diag, QUANTAL_EINVAL, path, (long)i, -1,
                        "FLAC scale for channel %zu must be positive", i + 1);
      }
      scales[i] = s;
      w->inv_scale[i] = 1.0 / s;
    }
  }
  if (qtl_metadata_format(meta, sizeof meta, opt->n_channels, opt->names,
                          opt->units, scales, opt->comment) != QUANTAL_OK) {
    free(scales);
    quantal_writer_abort(w);
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1,
                    "channel names and units must be short and free of "
                    "',', ';' and '='");
  }
  free(scales);

  {
    /* An existing device (/dev/null) is written in place: renaming a
     * temporary file over it would replace the device node. */
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
      quantal_writer_abort(w);
      return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "is a directory");
    }
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
      fd = open(path, O_WRONLY);
      w->tmp[0] = '\0';
      w->direct = 1;
    } else {
      fd = qtl_tmpfile_near(path, w->tmp, sizeof w->tmp);
    }
  }
  if (fd < 0) {
    int e = errno, direct = w->direct;
    w->tmp[0] = '\0';
    quantal_writer_abort(w);
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1,
                    direct ? "%s" : "cannot create a file in its folder: %s",
                    strerror(e));
  }
  memset(&info, 0, sizeof info);
  info.samplerate = (int)opt->rate_hz;
  info.channels = (int)opt->n_channels;
  if (w->flac) {
    info.format = SF_FORMAT_FLAC | SF_FORMAT_PCM_24;
  } else {
    /* RF64 is written as plain WAV when the data stay under 4 GiB. */
    info.format = SF_FORMAT_RF64 | SF_FORMAT_FLOAT;
  }
  w->sf = sf_open_fd(fd, SFM_WRITE, &info, SF_TRUE);
  if (w->sf == NULL) {
    char why[256];
    qtl_strlcpy(why, sf_strerror(NULL), sizeof why);
    close(fd);
    quantal_writer_abort(w);
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "cannot write: %s",
                    why);
  }
  if (!w->flac)
    sf_command(w->sf, SFC_RF64_AUTO_DOWNGRADE, NULL, SF_TRUE);
  sf_command(w->sf, SFC_SET_NORM_DOUBLE, NULL, SF_FALSE);
  if (sf_set_string(w->sf, SF_STR_COMMENT, meta) != 0) {
    char why[256];
    qtl_strlcpy(why, sf_strerror(w->sf), sizeof why);
    quantal_writer_abort(w);
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1,
                    "cannot store units metadata: %s", why);
  }
  *out = w;
  return QUANTAL_OK;
}

quantal_status
quantal_writer_write(quantal_writer *w, const double *frames, size_t n,
                     quantal_diag *diag)
{
  sf_count_t put;
  size_t nc = w->n_channels;
  if (!w->flac) {
    put = sf_writef_double(w->sf, frames, (sf_count_t)n);
    if (put < 0 || (size_t)put != n)
      return qtl_fail(diag, QUANTAL_EIO, w->path, -1, -1, "write failed: %s",
                      sf_strerror(w->sf));
    return QUANTAL_OK;
  }
  while (n > 0) {
    size_t m = n > 4096 ? 4096 : n, i, c;
    if (w->ibuf == NULL) {
      w->ibuf = malloc(4096 * nc * sizeof *w->ibuf);
      if (w->ibuf == NULL)
        return qtl_fail(diag, QUANTAL_ENOMEM, w->path, -1, -1,
                        "out of memory");
    }
    for (i = 0; i < m; i++)
      for (c = 0; c < nc; c++) {
        double v = frames[i * nc + c];
        long iv;
        if (!isfinite(v))
          return qtl_fail(diag, QUANTAL_ENUMERIC, w->path, (long)c, -1,
                          "FLAC cannot store NaN or Inf samples");
        v = nearbyint(v * w->inv_scale[c]);
        if (v > 8388607.0)
          v = 8388607.0;
        else if (v < -8388608.0)
          v = -8388608.0;
        iv = (long)v;
        /* libsndfile's int interface is left-aligned 32-bit. */
        w->ibuf[i * nc + c] = (int)(iv * 256L);
      }
    put = sf_writef_int(w->sf, w->ibuf, (sf_count_t)m);
    if (put < 0 || (size_t)put != m)
      return qtl_fail(diag, QUANTAL_EIO, w->path, -1, -1, "write failed: %s",
                      sf_strerror(w->sf));
    frames += m * nc;
    n -= m;
  }
  return QUANTAL_OK;
}

quantal_status
quantal_writer_commit(quantal_writer *w, quantal_diag *diag)
{
  int rc;
  char why[256];
  sf_write_sync(w->sf);
  qtl_strlcpy(why, sf_strerror(w->sf), sizeof why);
  rc = sf_close(w->sf);
  w->sf = NULL;
  if (rc != 0) {
    qtl_fail(diag, QUANTAL_EIO, w->path, -1, -1, "closing failed: %s", why);
    quantal_writer_abort(w);
    return QUANTAL_EIO;
  }
  if (!w->direct && rename(w->tmp, w->path) != 0) {
    int e = errno;
    qtl_fail(diag, QUANTAL_EIO, w->path, -1, -1, "cannot rename into place: %s",
             strerror(e));
    quantal_writer_abort(w);
    return QUANTAL_EIO;
  }
  w->tmp[0] = '\0';
  quantal_writer_abort(w);
  return QUANTAL_OK;
}

const char *
quantal_writer_temp_path(const quantal_writer *w)
{
  return w->tmp;
}
