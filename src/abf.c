/* abf.c - Axon Binary Format recordings (ABF1 1.x, ABF2 2.x). SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * pClamp/Clampex write ABF files: a header, then the samples of all ADC
 * channels interleaved (int16 counts or float32 values), sweeps stored one
 * after the other. Facts about the layout come from Axon's ABF file support
 * pack documentation (abfheadr.h for ABF 1.x, "ABF2 file format" for 2.x)
 * and pyABF's format notes; the byte offsets used below are listed next to
 * each field. Every number in the header is treated as hostile: sizes,
 * offsets and counts are checked against the file size before anything is
 * read, and a bad value is reported by its field name.
 *
 * The data are never loaded whole: read() converts one block of the span it
 * is asked for at a time, straight from the file with pread().
 */

#define ABF_BLOCK 512          /* ABF pointers count 512-byte blocks */
#define ABF1_OLD_HEADER 2048   /* ABF 1.x header before version 1.6 */
#define ABF_ADC_COUNT 16       /* physical ADC channels a header describes */
#define ABF_READ_BYTES 262144u /* raw bytes converted per pread() */

typedef struct abf_ctx {
  int fd;
  const char *path;
  uint64_t data_off;    /* byte offset of frame 0 */
  size_t n_channels;
  size_t sample_bytes;  /* 2 (int16) or 4 (float32) */
  unsigned char *raw;   /* ABF_READ_BYTES bytes */
} abf_ctx;

/* ---- little-endian decoding (ABF files are little-endian) ------------- */

static int16_t
le16s(const unsigned char *p)
{
  return (int16_t)(uint16_t)((unsigned)p[0] | (unsigned)p[1] << 8);
}

static uint32_t
le32u(const unsigned char *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static int32_t
le32s(const unsigned char *p)
{
  return (int32_t)le32u(p);
}

static int64_t
le64s(const unsigned char *p)
{
  return (int64_t)((uint64_t)le32u(p) | (uint64_t)le32u(p + 4) << 32);
}

static float
le32f(const unsigned char *p)
{
  uint32_t u = le32u(p);
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* ---- the reading backend ---------------------------------------------- */

static quantal_status
read_exact(int fd, const char *path, uint64_t off, void *dst, size_t len,
           quantal_diag *diag)
{
  unsigned char *p = dst;
  while (len > 0) {
    ssize_t k = pread(fd, p, len, (off_t)off);
    if (k < 0) {
      if (errno == EINTR)
        continue;
      return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "%s", strerror(errno));
    }
    if (k == 0)
      return qtl_fail(diag, QUANTAL_EFORMAT, path, -1, -1,
                      "truncated: the file ends at byte %llu",
                      (unsigned long long)off);
    p += k;
    off += (uint64_t)k;
    len -= (size_t)k;
  }
  return QUANTAL_OK;
}

static quantal_status
abf_read(void *vctx, uint64_t first, size_t n, double *out,
         quantal_diag *diag)
{
  abf_ctx *c = vctx;
  size_t total = n * c->n_channels, done = 0;
  size_t per_block = ABF_READ_BYTES / c->sample_bytes;
  uint64_t off = c->data_off + first * c->n_channels * c->sample_bytes;

  while (done < total) {
    size_t m = total - done < per_block ? total - done : per_block, i;
    const unsigned char *p = c->raw;
    quantal_status st = read_exact(c->fd, c->path, off, c->raw,
                                   m * c->sample_bytes, diag);
    if (st != QUANTAL_OK) {
      if (diag != NULL)
        diag->frame = (long long)(first + done / c->n_channels);
      return st;
    }
    if (c->sample_bytes == 2)
      for (i = 0; i < m; i++, p += 2)
        out[done + i] = (double)le16s(p);
    else
      for (i = 0; i < m; i++, p += 4)
        out[done + i] = (double)le32f(p);
    done += m;
    off += m * c->sample_bytes;
  }
  return QUANTAL_OK;
}

static void
abf_close(void *vctx)
{
  abf_ctx *c = vctx;
  if (c == NULL)
    return;
  if (c->fd >= 0)
    close(c->fd);
  free(c->raw);
  free(c);
}

static const qtl_backend_ops abf_ops = {abf_read, abf_close, NULL, NULL,
                                        NULL};

/* ---- header helpers --------------------------------------------------- */

/* Everything the two header versions have in common once parsed. */
typedef struct abf_layout {
  int version_major;
  int mode;               /* nOperationMode */
  int is_float;           /* nDataFormat */
  size_t n_channels;
  double rate_hz;
  uint64_t data_off;      /* bytes */
  uint64_t n_points;      /* samples of all channels together */
  uint64_t synch_off;     /* bytes; 0 = no synch array */
  uint64_t synch_count;
  int64_t samples_per_episode; /* all channels; 0 = unknown */
  int64_t episodes;
} abf_layout;

/* Copy a fixed-width header string: trailing blanks and NULs dropped,
 * non-ASCII bytes made safe for TSV headers (the micro sign, 0xB5 in
 * Windows-1252, becomes 'u' as in "uA"). */
static void
header_string(char *dst, size_t size, const unsigned char *src, size_t len,
              int drop_blanks)
{
  size_t i, k = 0, end = len;
  while (end > 0 && (src[end - 1] == ' ' || src[end - 1] == '\0'))
    end--;
  i = 0;
  while (i < end && src[i] == ' ')
    i++;
  for (; i < end && k + 1 < size; i++) {
    unsigned char ch = src[i];
    if (ch == '\0')
      break;
    if (drop_blanks && ch == ' ')
      continue;
    if (ch == 0xB5)
      ch = 'u';
    else if (ch < 0x20 || ch >= 0x7f || ch == '\t')
      ch = '?';
    dst[k++] = (char)ch;
  }
  dst[k] = '\0';
}

/* Protocol name from a protocol path: the file name without ".pro". */
static void
protocol_name(char *dst, size_t size, const char *path)
{
  const char *b = path, *p;
  size_t n;
  for (p = path; *p; p++)
    if (*p == '\\' || *p == '/')
      b = p + 1;
  n = strlen(b);
  if (n > 4 && (strcmp(b + n - 4, ".pro") == 0 ||
                strcmp(b + n - 4, ".PRO") == 0))
    n -= 4;
  if (n >= size)
    n = size - 1;
  memcpy(dst, b, n);
  dst[n] = '\0';
}

/* The int16 -> physical factor of one channel (ABF1 and ABF2 alike):
 *   scale = fADCRange / (fInstrumentScaleFactor * fSignalGain
 *           * fADCProgrammableGain * lADCResolution [* fTelegraphAdditGain])
 * and offset = fInstrumentOffset - fSignalOffset. The divisions are done
 * one after another in double, in the order of Axon's abfload and neo, so
 * both readers give bit-identical factors. */
static quantal_status
channel_scale(quantal_recording *rec, size_t ch, double range,
              double resolution, double isf, double sg, double pg,
              int telegraph, double tg, double *scale, quantal_diag *diag)
{
  struct {
    const char *name;
    double v;
  } f[5];
  size_t i, nf = 4;
  double s = range;
  f[0].name = "fInstrumentScaleFactor";
  f[0].v = isf;
  f[1].name = "fSignalGain";
  f[1].v = sg;
  f[2].name = "fADCProgrammableGain";
  f[2].v = pg;
  f[3].name = "lADCResolution";
  f[3].v = resolution;
  f[4].name = "fTelegraphAdditGain";
  f[4].v = tg;
  if (telegraph)
    nf = 5;
  if (!(isfinite(range) && range > 0.0))
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "fADCRange is %g (must be a positive number of volts)",
                    range);
  for (i = 0; i < nf; i++) {
    if (!isfinite(f[i].v) || f[i].v == 0.0)
      return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, (long)ch, -1,
                      "%s of channel %zu is %g (must be finite and not 0)",
                      f[i].name, ch + 1, f[i].v);
    s /= f[i].v;
  }
  if (!isfinite(s) || s == 0.0)
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, (long)ch, -1,
                    "the scale of channel %zu is not a usable number (%g)",
                    ch + 1, s);
  *scale = s;
  return QUANTAL_OK;
}

static void
set_channel_text(quantal_recording *rec, size_t ch, const char *name,
                 const char *unit, int adc)
{
  if (name[0] != '\0')
    qtl_strlcpy(rec->channels[ch].name, name, QUANTAL_NAME_MAX);
  else
    /* Clampex names an unnamed input after its ADC: "IN 0". */
    snprintf(rec->channels[ch].name, QUANTAL_NAME_MAX, "IN %d", adc);
  if (unit[0] != '\0') {
    qtl_strlcpy(rec->channels[ch].unit, unit, QUANTAL_UNIT_MAX);
    rec->channels[ch].unit_source = QUANTAL_UNIT_FILE;
  }
}

/* Sweeps from the synch array (start, length in samples of all channels),
 * else from the fixed episode length, else one sweep. Sets info.frames. */
static quantal_status
build_sweeps(quantal_recording *rec, abf_ctx *c, const abf_layout *L,
             quantal_diag *diag)
{
  uint64_t *first = NULL, *len = NULL, n = 0, i, pos = 0;
  size_t nc = L->n_channels;
  quantal_status st;

  if (L->synch_count > 0) {
    unsigned char *raw;
    n = L->synch_count;
    if (n > L->n_points / nc)
      return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                      "synch array: %llu sweeps for %llu frames of data",
                      (unsigned long long)n,
                      (unsigned long long)(L->n_points / nc));
    raw = malloc((size_t)n * 8);
    first = malloc((size_t)n * sizeof *first);
    len = malloc((size_t)n * sizeof *len);
    if (raw == NULL || first == NULL || len == NULL) {
      free(raw);
      free(first);
      free(len);
      return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                      "out of memory for %llu sweeps", (unsigned long long)n);
    }
    st = read_exact(c->fd, rec->path, L->synch_off, raw, (size_t)n * 8, diag);
    for (i = 0; st == QUANTAL_OK && i < n; i++) {
      int32_t l = le32s(raw + 8 * i + 4);
      if (l <= 0 || (uint64_t)l % nc != 0 ||
          (uint64_t)l > L->n_points - pos)
        st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                      "synch array: sweep %llu has length %ld samples "
                      "(must be a positive multiple of %zu channels within "
                      "the %llu samples of data)",
                      (unsigned long long)(i + 1), (long)l, nc,
                      (unsigned long long)L->n_points);
      else {
        first[i] = pos / nc;
        len[i] = (uint64_t)l / nc;
        pos += (uint64_t)l;
      }
    }
    free(raw);
  } else if ((L->mode == 2 || L->mode == 5) && L->samples_per_episode > 0 &&
             (uint64_t)L->samples_per_episode % nc == 0 &&
             L->n_points % (uint64_t)L->samples_per_episode == 0 &&
             L->n_points / (uint64_t)L->samples_per_episode > 1) {
    /* Fixed-length episodes without a synch array (pyABF's ABF1 writer). */
    uint64_t per = (uint64_t)L->samples_per_episode / nc;
    n = L->n_points / (uint64_t)L->samples_per_episode;
    first = malloc((size_t)n * sizeof *first);
    len = malloc((size_t)n * sizeof *len);
    if (first == NULL || len == NULL) {
      free(first);
      free(len);
      return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                      "out of memory for %llu sweeps", (unsigned long long)n);
    }
    for (i = 0; i < n; i++) {
      first[i] = i * per;
      len[i] = per;
    }
    pos = n * per * nc;
    st = QUANTAL_OK;
  } else {
    rec->info.frames = L->n_points / nc;
    return qtl_recording_set_sweeps(rec, 1, NULL, NULL, diag);
  }
  if (st == QUANTAL_OK) {
    rec->info.frames = pos / nc;
    st = qtl_recording_set_sweeps(rec, (size_t)n, first, len, diag);
  }
  free(first);
  free(len);
  return st;
}

/* Check that [off, off + len) lies in a file of fsz bytes. */
static int
fits(uint64_t off, uint64_t len, uint64_t fsz)
{
  return off <= fsz && len <= fsz - off;
}

static quantal_status
finish_layout(quantal_recording *rec, abf_ctx *c, abf_layout *L,
              uint64_t fsz, quantal_diag *diag)
{
  size_t sb = L->is_float ? 4 : 2;
  if (L->n_points == 0)
    return qtl_fail(diag, QUANTAL_ENODATA, rec->path, -1, -1,
                    "the recording has zero frames");
  if (L->n_points % L->n_channels != 0)
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "%llu samples are not a whole number of frames of %zu "
                    "channels",
                    (unsigned long long)L->n_points, L->n_channels);
  if (L->n_points > UINT64_MAX / 8 || !fits(L->data_off, L->n_points * sb,
                                            fsz))
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "data section: %llu samples of %zu bytes from byte %llu "
                    "do not fit in the file (%llu bytes)",
                    (unsigned long long)L->n_points, sb,
                    (unsigned long long)L->data_off,
                    (unsigned long long)fsz);
  if (L->synch_count > 0 &&
      (L->synch_count > fsz / 8 ||
       !fits(L->synch_off, L->synch_count * 8, fsz)))
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "synch array: %llu entries from byte %llu do not fit "
                    "in the file (%llu bytes)",
                    (unsigned long long)L->synch_count,
                    (unsigned long long)L->synch_off,
                    (unsigned long long)fsz);
  if (!(isfinite(L->rate_hz) && L->rate_hz > 0.0 && L->rate_hz <= 1e9))
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "the sample interval gives an invalid rate of %g Hz",
                    L->rate_hz);
  c->data_off = L->data_off;
  c->sample_bytes = sb;
  c->n_channels = L->n_channels;
  rec->info.rate_hz = L->rate_hz;
  rec->info.integer_samples = !L->is_float;
  qtl_strlcpy(rec->info.encoding, L->is_float ? "float32" : "int16",
              sizeof rec->info.encoding);
  return build_sweeps(rec, c, L, diag);
}

/* ---- ABF 1.x ---------------------------------------------------------- */

/* Byte offsets in the ABF 1.x header (abfheadr.h, version 1.8). */
enum {
  V1_VERSION = 4, V1_MODE = 8, V1_ACQ_LENGTH = 10, V1_POINTS_IGNORED = 14,
  V1_EPISODES = 16, V1_DATA_PTR = 40, V1_SYNCH_PTR = 92, V1_SYNCH_SIZE = 96,
  V1_DATA_FORMAT = 100, V1_N_CHANNELS = 120, V1_SAMPLE_INTERVAL = 122,
  V1_SAMPLES_PER_EPISODE = 138, V1_ADC_RANGE = 244, V1_ADC_RESOLUTION = 252,
  V1_AUTOSAMPLE_ENABLE = 262, V1_AUTOSAMPLE_ADC = 264,
  V1_AUTOSAMPLE_GAIN = 268, V1_SAMPLING_SEQ = 410, V1_CHANNEL_NAME = 442,
  V1_UNITS = 602, V1_PROGRAMMABLE_GAIN = 730, V1_INSTRUMENT_SCALE = 922,
  V1_INSTRUMENT_OFFSET = 986, V1_SIGNAL_GAIN = 1050, V1_SIGNAL_OFFSET = 1114,
  /* The extended header of versions 1.6 and later. */
  V1_TELEGRAPH_ENABLE = 4512, V1_TELEGRAPH_GAIN = 4576,
  V1_PROTOCOL_PATH = 4898, V1_PROTOCOL_PATH_LEN = 384,
  V1_HEADER_MAX = 6144
};

static quantal_status
open_abf1(quantal_recording *rec, abf_ctx *c, uint64_t fsz,
          quantal_diag *diag)
{
  unsigned char h[V1_HEADER_MAX];
  size_t nh, ch;
  abf_layout L;
  float version, interval;
  int32_t acq, ptr, synch_ptr, synch_size, nspe, episodes;
  int16_t ignored, nch, fmt, mode;
  uint64_t header_end;
  int extended;
  quantal_status st;

  memset(&L, 0, sizeof L);
  memset(h, 0, sizeof h);
  if (fsz < ABF1_OLD_HEADER)
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "ABF1 header: the file has %llu bytes, fewer than the "
                    "%d of the header",
                    (unsigned long long)fsz, ABF1_OLD_HEADER);
  nh = fsz < V1_HEADER_MAX ? (size_t)fsz : V1_HEADER_MAX;
  st = read_exact(c->fd, rec->path, 0, h, nh, diag);
  if (st != QUANTAL_OK)
    return st;
  version = le32f(h + V1_VERSION);
  mode = le16s(h + V1_MODE);
  acq = le32s(h + V1_ACQ_LENGTH);
  ignored = le16s(h + V1_POINTS_IGNORED);
  episodes = le32s(h + V1_EPISODES);
  ptr = le32s(h + V1_DATA_PTR);
  synch_ptr = le32s(h + V1_SYNCH_PTR);
  synch_size = le32s(h + V1_SYNCH_SIZE);
  fmt = le16s(h + V1_DATA_FORMAT);
  nch = le16s(h + V1_N_CHANNELS);
  interval = le32f(h + V1_SAMPLE_INTERVAL);
  nspe = le32s(h + V1_SAMPLES_PER_EPISODE);

#define BAD(...)                                                            \
  qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1, __VA_ARGS__)
  if (!(version >= 1.0f && version < 2.0f))
    return BAD("ABF1 header: fFileVersionNumber is %g (must be 1.x)",
               (double)version);
  if (mode != 1 && mode != 2 && mode != 3 && mode != 5)
    return BAD("ABF1 header: nOperationMode is %d (supported: 1, 2 and 5 "
               "episodic, 3 gap-free)", mode);
  if (fmt != 0 && fmt != 1)
    return BAD("ABF1 header: nDataFormat is %d (must be 0 for int16 or 1 "
               "for float32)", fmt);
  if (nch < 1 || nch > ABF_ADC_COUNT)
    return BAD("ABF1 header: nADCNumChannels is %d (must be 1 to %d)", nch,
               ABF_ADC_COUNT);
  if (acq < 0)
    return BAD("ABF1 header: lActualAcqLength is %ld (negative)", (long)acq);
  if (ignored < 0)
    return BAD("ABF1 header: nNumPointsIgnored is %d (negative)", ignored);
  if (ptr < ABF1_OLD_HEADER / ABF_BLOCK)
    return BAD("ABF1 header: lDataSectionPtr is %ld blocks (the data cannot "
               "start inside the %d-byte header)", (long)ptr,
               ABF1_OLD_HEADER);
  if (synch_size < 0 || (synch_size > 0 && synch_ptr <= 0))
    return BAD("ABF1 header: lSynchArraySize %ld at lSynchArrayPtr %ld is "
               "not a valid synch array", (long)synch_size, (long)synch_ptr);
  if (!(isfinite(interval) && interval > 0.0f))
    return BAD("ABF1 header: fADCSampleInterval is %g us (must be positive)",
               (double)interval);

  /* Header fields beyond the 2048 bytes of old headers exist only from
   * version 1.6 on, and only where the data do not start yet. */
  header_end = (uint64_t)ptr * ABF_BLOCK;
  extended = version >= 1.6f;
  L.version_major = 1;
  L.mode = mode;
  L.is_float = fmt == 1;
  L.n_channels = (size_t)nch;
  /* fADCSampleInterval is the time between two samples of any channel. */
  L.rate_hz = 1.0 / ((double)interval * (double)nch * 1e-6);
  L.data_off = (uint64_t)ptr * ABF_BLOCK +
               (uint64_t)ignored * (L.is_float ? 4u : 2u);
  L.n_points = (uint64_t)acq;
  L.synch_off = (uint64_t)(synch_size > 0 ? synch_ptr : 0) * ABF_BLOCK;
  L.synch_count = (uint64_t)synch_size;
  L.samples_per_episode = nspe;
  L.episodes = episodes;

  st = qtl_recording_alloc_layout(rec, (size_t)nch, diag);
  if (st != QUANTAL_OK)
    return st;
  for (ch = 0; ch < (size_t)nch; ch++) {
    int adc = le16s(h + V1_SAMPLING_SEQ + 2 * ch);
    char name[16], unit[16];
    int telegraph = 0;
    double tg = 1.0, scale = 1.0;
    if (adc < 0 || adc >= ABF_ADC_COUNT)
      return BAD("ABF1 header: nADCSamplingSeq[%zu] is %d (must be 0 to %d)",
                 ch, adc, ABF_ADC_COUNT - 1);
    header_string(name, sizeof name, h + V1_CHANNEL_NAME + 10 * adc, 10, 0);
    header_string(unit, sizeof unit, h + V1_UNITS + 8 * adc, 8, 1);
    set_channel_text(rec, ch, name, unit, adc);
    if (extended && header_end >= V1_TELEGRAPH_GAIN + 4 * ABF_ADC_COUNT &&
        nh >= V1_TELEGRAPH_GAIN + 4 * ABF_ADC_COUNT) {
      /* neo and Axon's abfload apply the telegraphed gain only when the
       * flag is exactly 1; other values are left alone, as there. */
      telegraph = le16s(h + V1_TELEGRAPH_ENABLE + 2 * adc) == 1;
      tg = le32f(h + V1_TELEGRAPH_GAIN + 4 * adc);
    } else if (!extended) {
      /* Old headers carry one telegraphed ("autosample") channel. */
      telegraph = le16s(h + V1_AUTOSAMPLE_ENABLE) == 1 &&
                  le16s(h + V1_AUTOSAMPLE_ADC) == adc;
      tg = le32f(h + V1_AUTOSAMPLE_GAIN);
    }
    if (!L.is_float) {
      st = channel_scale(rec, ch, le32f(h + V1_ADC_RANGE),
                         (double)le32s(h + V1_ADC_RESOLUTION),
                         le32f(h + V1_INSTRUMENT_SCALE + 4 * adc),
                         le32f(h + V1_SIGNAL_GAIN + 4 * adc),
                         le32f(h + V1_PROGRAMMABLE_GAIN + 4 * adc),
                         telegraph, tg, &scale, diag);
      if (st != QUANTAL_OK)
        return st;
      rec->channels[ch].scale = scale;
      rec->channels[ch].offset =
          (double)le32f(h + V1_INSTRUMENT_OFFSET + 4 * adc) -
          (double)le32f(h + V1_SIGNAL_OFFSET + 4 * adc);
      if (!isfinite(rec->channels[ch].offset))
        return BAD("ABF1 header: fInstrumentOffset or fSignalOffset of "
                   "channel %zu is not finite", ch + 1);
    }
  }
  if (extended &&
      header_end >= V1_PROTOCOL_PATH + V1_PROTOCOL_PATH_LEN &&
      nh >= V1_PROTOCOL_PATH + V1_PROTOCOL_PATH_LEN) {
    char path[V1_PROTOCOL_PATH_LEN + 1];
    header_string(path, sizeof path, h + V1_PROTOCOL_PATH,
                  V1_PROTOCOL_PATH_LEN, 0);
    protocol_name(rec->info.protocol, sizeof rec->info.protocol, path);
  }
#undef BAD
  qtl_strlcpy(rec->info.format, "ABF1", sizeof rec->info.format);
  return finish_layout(rec, c, &L, fsz, diag);
}

/* ---- ABF 2.x ---------------------------------------------------------- */

/* Sections of the ABF2 header: 16-byte entries from byte 76 (uBlockIndex,
 * uBytes, llNumEntries). */
enum {
  V2_SEC_PROTOCOL = 0, V2_SEC_ADC = 1, V2_SEC_STRINGS = 9, V2_SEC_DATA = 10,
  V2_SEC_SYNCH = 15, V2_SECTIONS = 18
};
/* Header, protocol section and ADC section byte offsets (packed). */
enum {
  V2_VERSION = 4, V2_EPISODES = 12, V2_DATA_FORMAT = 30,
  V2_PROTOCOL_PATH_INDEX = 72, V2_SECTION_TABLE = 76,
  P_MODE = 0, P_SEQUENCE_INTERVAL = 2, P_COMPRESSION = 6,
  P_SAMPLES_PER_EPISODE = 22,
  P_ADC_RANGE = 110, P_ADC_RESOLUTION = 118, P_MIN_BYTES = 122,
  A_ADC_NUM = 0, A_TELEGRAPH_ENABLE = 2, A_TELEGRAPH_GAIN = 6,
  A_PROGRAMMABLE_GAIN = 28, A_INSTRUMENT_SCALE = 40,
  A_INSTRUMENT_OFFSET = 44, A_SIGNAL_GAIN = 48, A_SIGNAL_OFFSET = 52,
  A_NAME_INDEX = 74, A_UNITS_INDEX = 78, A_MIN_BYTES = 82
};

typedef struct abf2_section {
  uint64_t off, bytes, count;
} abf2_section;

static const char *const section_names[V2_SECTIONS] = {
    "ProtocolSection", "ADCSection", "DACSection", "EpochSection",
    "ADCPerDACSection", "EpochPerDACSection", "UserListSection",
    "StatsRegionSection", "MathSection", "StringsSection", "DataSection",
    "TagSection", "ScopeSection", "DeltaSection", "VoiceTagSection",
    "SynchArraySection", "AnnotationSection", "StatsSection"};

/* The indexed strings: pointers into buf (1-based index i -> str[i-1]). */
typedef struct abf2_strings {
  char *buf;
  const char **str;
  size_t n;
} abf2_strings;

static void
strings_free(abf2_strings *s)
{
  free(s->buf);
  free(s->str);
}

static const char *
string_at(const abf2_strings *s, int32_t index)
{
  if (index < 1 || (uint64_t)index > s->n)
    return "";
  return s->str[index - 1];
}

/* The strings section holds a 44-byte "SSCH" header and then NUL-separated
 * strings, the first being the creator ("Clampex"). Files without the
 * header are searched for the creator name, as neo does. */
static quantal_status
read_strings(quantal_recording *rec, abf_ctx *c, const abf2_section *sec,
             abf2_strings *s, quantal_diag *diag)
{
  static const char *const creators[] = {"AXENGN", "clampex", "Clampex",
                                         "EDR3", "CLAMPEX", "axoscope",
                                         "AxoScope", "Clampfit"};
  size_t len, start = 0, i, k;
  quantal_status st;
  memset(s, 0, sizeof *s);
  if (sec->count == 0 || sec->bytes == 0)
    return QUANTAL_OK;
  if (sec->bytes > (1u << 24))
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "StringsSection: uBytes is %llu (implausibly large)",
                    (unsigned long long)sec->bytes);
  len = (size_t)sec->bytes;
  s->buf = malloc(len + 1);
  if (s->buf == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1, "out of memory");
  st = read_exact(c->fd, rec->path, sec->off, s->buf, len, diag);
  if (st != QUANTAL_OK)
    return st;
  s->buf[len] = '\0';
  if (len >= 44 && memcmp(s->buf, "SSCH", 4) == 0) {
    start = 44;
  } else {
    start = len;
    for (k = 0; k < sizeof creators / sizeof creators[0]; k++) {
      size_t cl = strlen(creators[k]);
      for (i = 0; i + cl < len; i++)
        if (s->buf[i] == '\0' && memcmp(s->buf + i + 1, creators[k], cl) == 0)
          break;
      if (i + cl < len) {
        start = i + 1;
        break;
      }
    }
  }
  s->str = malloc((len - start + 1) * sizeof *s->str);
  if (s->str == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1, "out of memory");
  for (i = start; i < len;) {
    s->str[s->n++] = s->buf + i;
    i += strlen(s->buf + i) + 1;
  }
  return QUANTAL_OK;
}

static quantal_status
open_abf2(quantal_recording *rec, abf_ctx *c, uint64_t fsz,
          quantal_diag *diag)
{
  unsigned char h[512], p[P_MIN_BYTES], a[A_MIN_BYTES];
  abf2_section sec[V2_SECTIONS];
  abf2_strings strs;
  abf_layout L;
  size_t i, ch;
  int fmt, mode;
  float seq_interval;
  quantal_status st;
  char text[256];

  memset(&L, 0, sizeof L);
  memset(&strs, 0, sizeof strs);
#define BAD(...)                                                            \
  qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1, __VA_ARGS__)
  if (fsz < sizeof h)
    return BAD("ABF2 header: the file has %llu bytes, fewer than the 512 of "
               "the header", (unsigned long long)fsz);
  st = read_exact(c->fd, rec->path, 0, h, sizeof h, diag);
  if (st != QUANTAL_OK)
    return st;
  if (h[V2_VERSION + 3] != 2)
    return BAD("ABF2 header: fFileVersionNumber is %d.%d.%d.%d (must be 2.x)",
               h[V2_VERSION + 3], h[V2_VERSION + 2], h[V2_VERSION + 1],
               h[V2_VERSION]);
  fmt = le16s(h + V2_DATA_FORMAT);
  if (fmt != 0 && fmt != 1)
    return BAD("ABF2 header: nDataFormat is %d (must be 0 for int16 or 1 "
               "for float32)", fmt);
  for (i = 0; i < V2_SECTIONS; i++) {
    const unsigned char *e = h + V2_SECTION_TABLE + 16 * i;
    int64_t count = le64s(e + 8);
    sec[i].off = (uint64_t)le32u(e) * ABF_BLOCK;
    sec[i].bytes = le32u(e + 4);
    if (count < 0)
      return BAD("ABF2 header: %s has llNumEntries %lld (negative)",
                 section_names[i], (long long)count);
    sec[i].count = (uint64_t)count;
    /* A section's entries must lie inside the file; the data section is
     * checked with the data format below. */
    if (i != V2_SEC_DATA && sec[i].count > 0 && sec[i].bytes > 0 &&
        (sec[i].count > fsz / sec[i].bytes ||
         !fits(sec[i].off, sec[i].bytes * sec[i].count, fsz)))
      return BAD("ABF2 header: %s (%llu entries of %llu bytes at block %lu) "
                 "extends past the end of the file (%llu bytes)",
                 section_names[i], (unsigned long long)sec[i].count,
                 (unsigned long long)sec[i].bytes,
                 (unsigned long)(sec[i].off / ABF_BLOCK),
                 (unsigned long long)fsz);
  }
  if (sec[V2_SEC_PROTOCOL].count < 1 ||
      sec[V2_SEC_PROTOCOL].bytes < P_MIN_BYTES)
    return BAD("ABF2 header: ProtocolSection is missing or shorter than %d "
               "bytes", P_MIN_BYTES);
  if (sec[V2_SEC_ADC].count < 1 || sec[V2_SEC_ADC].count > ABF_ADC_COUNT)
    return BAD("ABF2 header: ADCSection has %llu entries (must be 1 to %d "
               "channels)", (unsigned long long)sec[V2_SEC_ADC].count,
               ABF_ADC_COUNT);
  if (sec[V2_SEC_ADC].bytes < A_MIN_BYTES)
    return BAD("ABF2 header: ADCSection entries have %llu bytes (at least "
               "%d needed)", (unsigned long long)sec[V2_SEC_ADC].bytes,
               A_MIN_BYTES);
  if (sec[V2_SEC_DATA].off == 0 && sec[V2_SEC_DATA].count > 0)
    return BAD("ABF2 header: DataSection starts at block 0, inside the "
               "header");
  if (sec[V2_SEC_DATA].bytes != (fmt ? 4u : 2u))
    return BAD("ABF2 header: DataSection has %llu-byte samples but "
               "nDataFormat %d means %u", (unsigned long long)
               sec[V2_SEC_DATA].bytes, fmt, fmt ? 4u : 2u);
  if (sec[V2_SEC_SYNCH].count > 0 && sec[V2_SEC_SYNCH].bytes != 8)
    return BAD("ABF2 header: SynchArraySection entries have %llu bytes "
               "(must be 8)", (unsigned long long)sec[V2_SEC_SYNCH].bytes);

  st = read_exact(c->fd, rec->path, sec[V2_SEC_PROTOCOL].off, p, sizeof p,
                  diag);
  if (st != QUANTAL_OK)
    return st;
  mode = le16s(p + P_MODE);
  seq_interval = le32f(p + P_SEQUENCE_INTERVAL);
  if (mode != 1 && mode != 2 && mode != 3 && mode != 5)
    return BAD("ABF2 protocol: nOperationMode is %d (supported: 1, 2 and 5 "
               "episodic, 3 gap-free)", mode);
  if (!(isfinite(seq_interval) && seq_interval > 0.0f))
    return BAD("ABF2 protocol: fADCSequenceInterval is %g us (must be "
               "positive)", (double)seq_interval);
  if (p[P_COMPRESSION] != 0)
    return qtl_fail(diag, QUANTAL_EUNSUPPORTED, rec->path, -1, -1,
                    "ABF2 protocol: bEnableFileCompression is set; "
                    "compressed ABF files are not supported");

  L.version_major = 2;
  L.mode = mode;
  L.is_float = fmt == 1;
  L.n_channels = (size_t)sec[V2_SEC_ADC].count;
  /* fADCSequenceInterval is the time between two frames. */
  L.rate_hz = 1e6 / (double)seq_interval;
  L.data_off = sec[V2_SEC_DATA].off;
  L.n_points = sec[V2_SEC_DATA].count;
  L.synch_off = sec[V2_SEC_SYNCH].off;
  L.synch_count = sec[V2_SEC_SYNCH].count;
  L.samples_per_episode = le32s(p + P_SAMPLES_PER_EPISODE);
  L.episodes = le32s(h + V2_EPISODES);

  st = read_strings(rec, c, &sec[V2_SEC_STRINGS], &strs, diag);
  if (st == QUANTAL_OK)
    st = qtl_recording_alloc_layout(rec, L.n_channels, diag);
  for (ch = 0; st == QUANTAL_OK && ch < L.n_channels; ch++) {
    char name[QUANTAL_NAME_MAX], unit[QUANTAL_UNIT_MAX];
    const char *sn, *su;
    double scale = 1.0;
    int adc;
    st = read_exact(c->fd, rec->path,
                    sec[V2_SEC_ADC].off + ch * sec[V2_SEC_ADC].bytes, a,
                    sizeof a, diag);
    if (st != QUANTAL_OK)
      break;
    adc = le16s(a + A_ADC_NUM);
    sn = string_at(&strs, le32s(a + A_NAME_INDEX));
    su = string_at(&strs, le32s(a + A_UNITS_INDEX));
    header_string(name, sizeof name, (const unsigned char *)sn, strlen(sn),
                  0);
    header_string(unit, sizeof unit, (const unsigned char *)su, strlen(su),
                  1);
    set_channel_text(rec, ch, name, unit, adc);
    if (!L.is_float) {
      st = channel_scale(rec, ch, le32f(p + P_ADC_RANGE),
                         (double)le32s(p + P_ADC_RESOLUTION),
                         le32f(a + A_INSTRUMENT_SCALE),
                         le32f(a + A_SIGNAL_GAIN),
                         le32f(a + A_PROGRAMMABLE_GAIN),
                         le16s(a + A_TELEGRAPH_ENABLE) != 0,
                         le32f(a + A_TELEGRAPH_GAIN), &scale, diag);
      if (st != QUANTAL_OK)
        break;
      rec->channels[ch].scale = scale;
      rec->channels[ch].offset = (double)le32f(a + A_INSTRUMENT_OFFSET) -
                                 (double)le32f(a + A_SIGNAL_OFFSET);
      if (!isfinite(rec->channels[ch].offset))
        st = BAD("ABF2 ADCSection: fInstrumentOffset or fSignalOffset of "
                 "channel %zu is not finite", ch + 1);
    }
  }
  if (st == QUANTAL_OK) {
    const char *pp = string_at(&strs, le32s(h + V2_PROTOCOL_PATH_INDEX));
    header_string(text, sizeof text, (const unsigned char *)pp, strlen(pp),
                  0);
    protocol_name(rec->info.protocol, sizeof rec->info.protocol, text);
  }
  strings_free(&strs);
#undef BAD
  if (st != QUANTAL_OK)
    return st;
  qtl_strlcpy(rec->info.format, "ABF2", sizeof rec->info.format);
  return finish_layout(rec, c, &L, fsz, diag);
}

/* ---- entry point ------------------------------------------------------ */

quantal_status
qtl_abf_open(quantal_recording *rec, quantal_diag *diag)
{
  abf_ctx *c;
  struct stat sb;
  unsigned char sig[4];
  quantal_status st;

  c = calloc(1, sizeof *c);
  if (c == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1, "out of memory");
  c->path = rec->path;
  c->fd = open(rec->path, O_RDONLY);
  if (c->fd < 0) {
    int e = errno;
    free(c);
    return qtl_fail(diag, QUANTAL_EIO, rec->path, -1, -1, "%s", strerror(e));
  }
  rec->ctx = c;
  rec->ops = &abf_ops;
  c->raw = malloc(ABF_READ_BYTES);
  if (c->raw == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1, "out of memory");
  if (fstat(c->fd, &sb) != 0)
    return qtl_fail(diag, QUANTAL_EIO, rec->path, -1, -1, "%s",
                    strerror(errno));
  st = read_exact(c->fd, rec->path, 0, sig, sizeof sig, diag);
  if (st != QUANTAL_OK)
    return st;
  if (memcmp(sig, "ABF ", 4) == 0)
    return open_abf1(rec, c, (uint64_t)sb.st_size, diag);
  if (memcmp(sig, "ABF2", 4) == 0)
    return open_abf2(rec, c, (uint64_t)sb.st_size, diag);
  return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                  "not an ABF file (no \"ABF \" or \"ABF2\" signature)");
}
