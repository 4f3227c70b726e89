/* test_formats.c - Axon ABF1/ABF2, ATF and NWB readers on hand-made files. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "../nwb/nwbgen.h"
#include "internal.h"
#include "quantal.h"

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Every file here is built byte by byte in the test from the published
 * header layouts, so the expected numbers are known exactly: a stored int16
 * count k reads back as k * scale + offset with
 * scale = fADCRange / (fInstrumentScaleFactor * fSignalGain
 *         * fADCProgrammableGain * lADCResolution [* fTelegraphAdditGain]).
 */

static char dir[] = "/tmp/quantal-test-formats.XXXXXX";

static void
setup(void)
{
  gsl_set_error_handler_off();
  cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(formats, .init = setup, .fini = teardown);

static const char *
path_in(const char *name)
{
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

/* ---- little-endian writers -------------------------------------------- */

static void
put16(unsigned char *b, size_t off, int v)
{
  b[off] = (unsigned char)(v & 0xff);
  b[off + 1] = (unsigned char)((v >> 8) & 0xff);
}

static void
put32(unsigned char *b, size_t off, long v)
{
  unsigned long u = (unsigned long)v;
  b[off] = (unsigned char)(u & 0xff);
  b[off + 1] = (unsigned char)((u >> 8) & 0xff);
  b[off + 2] = (unsigned char)((u >> 16) & 0xff);
  b[off + 3] = (unsigned char)((u >> 24) & 0xff);
}

static void
putf(unsigned char *b, size_t off, float f)
{
  uint32_t u;
  memcpy(&u, &f, 4);
  put32(b, off, (long)u);
}

static void
put64(unsigned char *b, size_t off, long long v)
{
  put32(b, off, (long)(v & 0xffffffffLL));
  put32(b, off + 4, (long)((unsigned long long)v >> 32));
}

static void
write_file(const char *path, const unsigned char *b, size_t n)
{
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(b, 1, n, f), n);
  cr_assert_eq(fclose(f), 0);
}

/* The stored count of sample i of channel c: distinct, signed, and
 * spanning the int16 range. */
static int
count_at(size_t i, size_t c)
{
  return (int)((long)(i * 7919 + c * 104729) % 65536) - 32768;
}

/* ---- ABF1 ------------------------------------------------------------- */

typedef struct abf1_spec {
  float version;       /* 1.3 (2048-byte header) or 1.83 (extended) */
  int mode;            /* nOperationMode */
  int is_float;
  int n_channels;
  int seq[4];          /* physical ADC of each channel */
  size_t n_sweeps;
  size_t sweep_frames[4];
  int synch;           /* write a synch array */
  float isf[16];       /* fInstrumentScaleFactor per ADC */
  float ioff[16];      /* fInstrumentOffset per ADC */
  int telegraph_adc;   /* ADC with telegraph gain 5, or -1 */
} abf1_spec;

/* Build an ABF1 file in memory (caller frees); *n gets its size. */
static unsigned char *
build_abf1(const abf1_spec *s, size_t *n)
{
  int extended = s->version >= 1.6f;
  size_t header = extended ? 6144 : 2048, frames = 0, i, c, k;
  size_t sb = s->is_float ? 4 : 2, points, data_blocks, synch_blocks;
  unsigned char *b;
  for (k = 0; k < s->n_sweeps; k++)
    frames += s->sweep_frames[k];
  points = frames * (size_t)s->n_channels;
  data_blocks = (points * sb + 511) / 512;
  synch_blocks = s->synch ? 1 : 0;
  *n = header + (data_blocks + synch_blocks) * 512;
  b = calloc(1, *n);
  cr_assert_not_null(b);
  memcpy(b, "ABF ", 4);
  putf(b, 4, s->version);
  put16(b, 8, s->mode);
  put32(b, 10, (long)points);
  put32(b, 16, (long)s->n_sweeps);
  put32(b, 40, (long)(header / 512));
  if (s->synch) {
    put32(b, 92, (long)(header / 512 + data_blocks));
    put32(b, 96, (long)s->n_sweeps);
  }
  put16(b, 100, s->is_float);
  put16(b, 120, s->n_channels);
  putf(b, 122, 50.0f / (float)s->n_channels); /* 20 kHz per channel */
  put32(b, 138, (long)(s->sweep_frames[0] * (size_t)s->n_channels));
  putf(b, 244, 10.0f);
  put32(b, 252, 32768);
  for (i = 0; i < 16; i++) {
    put16(b, 410 + 2 * i, i < (size_t)s->n_channels ? s->seq[i] : -1);
    putf(b, 922 + 4 * i, s->isf[i] != 0.0f ? s->isf[i] : 1.0f);
    putf(b, 986 + 4 * i, s->ioff[i]);
    putf(b, 1050 + 4 * i, 1.0f);
    putf(b, 730 + 4 * i, 1.0f);
    memcpy(b + 602 + 8 * i, "pA      ", 8);
  }
  memcpy(b + 442 + 10 * 2, "Vm  prim  ", 10); /* ADC 2 has a name */
  memcpy(b + 602 + 8 * 2, "mV      ", 8);
  if (extended) {
    if (s->telegraph_adc >= 0) {
      put16(b, 4512 + 2 * s->telegraph_adc, 1);
      putf(b, 4576 + 4 * s->telegraph_adc, 5.0f);
    }
    memcpy(b + 4898, "C:\\Axon\\Params\\My protocol.pro", 30);
  } else if (s->telegraph_adc >= 0) {
    put16(b, 262, 1);
    put16(b, 264, s->telegraph_adc);
    putf(b, 268, 5.0f);
  }
  for (i = 0; i < frames; i++)
    for (c = 0; c < (size_t)s->n_channels; c++) {
      size_t off = header + (i * (size_t)s->n_channels + c) * sb;
      if (s->is_float)
        putf(b, off, (float)count_at(i, c) * 0.25f);
      else
        put16(b, off, count_at(i, c));
    }
  if (s->synch) {
    size_t off = header + data_blocks * 512, start = 0;
    for (k = 0; k < s->n_sweeps; k++) {
      put32(b, off + 8 * k, (long)start);
      put32(b, off + 8 * k + 4,
            (long)(s->sweep_frames[k] * (size_t)s->n_channels));
      start += s->sweep_frames[k] * (size_t)s->n_channels;
    }
  }
  return b;
}

static abf1_spec
minimal_abf1(void)
{
  /* What pyABF's ABF1 writer produces: version 1.3, episodic, one
   * channel, no synch array, empty channel name. */
  abf1_spec s;
  memset(&s, 0, sizeof s);
  s.version = 1.3f;
  s.mode = 5;
  s.n_channels = 1;
  s.n_sweeps = 3;
  s.sweep_frames[0] = s.sweep_frames[1] = s.sweep_frames[2] = 5;
  s.isf[0] = 0.01f;
  s.telegraph_adc = -1;
  return s;
}

static quantal_recording *
open_ok(const char *path)
{
  quantal_recording *rec = NULL;
  quantal_diag d;
  quantal_status st = quantal_recording_open(path, NULL, &rec, &d);
  cr_assert_eq(st, QUANTAL_OK, "open %s: %s", path, d.reason);
  return rec;
}

Test(formats, abf1_minimal_pyabf_layout)
{
  abf1_spec s = minimal_abf1();
  size_t n, i;
  unsigned char *b = build_abf1(&s, &n);
  quantal_recording *rec;
  quantal_recording_info info;
  quantal_channel_info ch;
  double x[15];
  /* The factor is computed in double from the float32 header fields. */
  double scale = 10.0 / (double)0.01f / 1.0 / 1.0 / 32768.0;
  quantal_diag d;

  write_file(path_in("min.abf"), b, n);
  free(b);
  rec = open_ok(path_in("min.abf"));
  quantal_recording_get_info(rec, &info);
  cr_expect_str_eq(info.format, "ABF1");
  cr_expect_str_eq(info.encoding, "int16");
  cr_expect_eq(info.n_channels, 1);
  cr_expect_eq(info.n_sweeps, 3);
  cr_expect_eq(info.frames, 15);
  cr_expect_float_eq(info.rate_hz, 20000.0, 1e-9);
  cr_expect_eq(info.integer_samples, 1);
  cr_expect_str_eq(info.protocol, "");
  cr_assert_eq(quantal_recording_get_channel(rec, 0, &ch), QUANTAL_OK);
  cr_expect_str_eq(ch.name, "IN 0");
  cr_expect_str_eq(ch.unit, "pA");
  cr_expect_eq(ch.unit_source, QUANTAL_UNIT_FILE);
  cr_expect_eq(ch.scale, scale);
  for (i = 0; i < 3; i++) {
    uint64_t first, len;
    cr_assert_eq(quantal_recording_get_sweep(rec, i, &first, &len),
                 QUANTAL_OK);
    cr_expect_eq(first, 5 * i);
    cr_expect_eq(len, 5);
  }
  cr_assert_eq(quantal_recording_read(rec, 0, 0, 15, x, &d), QUANTAL_OK);
  for (i = 0; i < 15; i++)
    cr_expect_eq(x[i], (double)count_at(i, 0) * scale, "sample %zu", i);
  quantal_recording_close(rec);
}

Test(formats, abf1_extended_multichannel_synch_telegraph)
{
  abf1_spec s;
  size_t n, i, c;
  unsigned char *b;
  quantal_recording *rec;
  quantal_recording_info info;
  quantal_channel_info ch0, ch1;
  double x[2 * 10];
  uint64_t first, len;
  quantal_diag d;
  double s_adc2, s_adc0;

  memset(&s, 0, sizeof s);
  s.version = 1.83f;
  s.mode = 1; /* variable-length sweeps */
  s.n_channels = 2;
  s.seq[0] = 2; /* interleave order differs from ADC numbering */
  s.seq[1] = 0;
  s.n_sweeps = 2;
  s.sweep_frames[0] = 4;
  s.sweep_frames[1] = 6;
  s.synch = 1;
  s.isf[2] = 0.1f;
  s.isf[0] = 0.5f;
  s.ioff[2] = 1.5f;
  s.telegraph_adc = 2;
  b = build_abf1(&s, &n);
  write_file(path_in("multi.abf"), b, n);
  free(b);
  rec = open_ok(path_in("multi.abf"));
  quantal_recording_get_info(rec, &info);
  cr_expect_eq(info.n_channels, 2);
  cr_expect_eq(info.frames, 10);
  cr_expect_eq(info.n_sweeps, 2);
  cr_expect_float_eq(info.rate_hz, 20000.0, 1e-6);
  cr_expect_str_eq(info.protocol, "My protocol");
  cr_assert_eq(quantal_recording_get_sweep(rec, 1, &first, &len),
               QUANTAL_OK);
  cr_expect_eq(first, 4);
  cr_expect_eq(len, 6);
  quantal_recording_get_channel(rec, 0, &ch0);
  quantal_recording_get_channel(rec, 1, &ch1);
  /* Inner blanks of a name are kept, trailing ones dropped. */
  cr_expect_str_eq(ch0.name, "Vm  prim");
  cr_expect_str_eq(ch0.unit, "mV");
  cr_expect_str_eq(ch1.name, "IN 0");
  s_adc2 = 10.0 / (double)0.1f / 1.0 / 1.0 / 32768.0 / 5.0;
  s_adc0 = 10.0 / (double)0.5f / 1.0 / 1.0 / 32768.0;
  cr_expect_eq(ch0.scale, s_adc2);
  cr_expect_eq(ch0.offset, 1.5);
  cr_expect_eq(ch1.scale, s_adc0);
  cr_assert_eq(quantal_recording_read_frames(rec, 0, 10, x, &d), QUANTAL_OK);
  for (i = 0; i < 10; i++)
    for (c = 0; c < 2; c++) {
      double want = (double)count_at(i, c) * (c ? s_adc0 : s_adc2) +
                    (c ? 0.0 : 1.5);
      cr_expect_eq(x[2 * i + c], want, "frame %zu channel %zu", i, c);
    }
  quantal_recording_close(rec);
}

Test(formats, abf1_old_header_autosample_telegraph)
{
  abf1_spec s = minimal_abf1();
  size_t n;
  unsigned char *b;
  quantal_recording *rec;
  quantal_channel_info ch;
  s.telegraph_adc = 0;
  b = build_abf1(&s, &n);
  write_file(path_in("auto.abf"), b, n);
  free(b);
  rec = open_ok(path_in("auto.abf"));
  quantal_recording_get_channel(rec, 0, &ch);
  cr_expect_eq(ch.scale, 10.0 / (double)0.01f / 32768.0 / 5.0);
  quantal_recording_close(rec);
}

Test(formats, abf1_float_gap_free)
{
  abf1_spec s = minimal_abf1();
  size_t n, i;
  unsigned char *b;
  quantal_recording *rec;
  quantal_recording_info info;
  quantal_channel_info ch;
  double x[15];
  quantal_diag d;
  s.mode = 3;
  s.is_float = 1;
  b = build_abf1(&s, &n);
  write_file(path_in("float.abf"), b, n);
  free(b);
  rec = open_ok(path_in("float.abf"));
  quantal_recording_get_info(rec, &info);
  cr_expect_str_eq(info.encoding, "float32");
  cr_expect_eq(info.integer_samples, 0);
  cr_expect_eq(info.n_sweeps, 1);
  cr_expect_eq(info.frames, 15);
  quantal_recording_get_channel(rec, 0, &ch);
  cr_expect_eq(ch.scale, 1.0);
  cr_assert_eq(quantal_recording_read(rec, 0, 0, 15, x, &d), QUANTAL_OK);
  for (i = 0; i < 15; i++)
    cr_expect_eq(x[i], (double)count_at(i, 0) * 0.25);
  quantal_recording_close(rec);
}

/* ---- ABF2 ------------------------------------------------------------- */

typedef struct abf2_spec {
  int is_float;
  int n_channels;
  size_t n_sweeps, sweep_frames;
  int synch;
  int telegraph; /* channel 2 telegraphed with gain 2 */
} abf2_spec;

enum { B_PROTO = 1, B_ADC = 2, B_STRINGS = 3, B_DATA = 4 };

static void
section(unsigned char *b, int index, long block, long bytes, long long count)
{
  put32(b, 76 + 16 * (size_t)index, block);
  put32(b, 76 + 16 * (size_t)index + 4, bytes);
  put64(b, 76 + 16 * (size_t)index + 8, count);
}

static unsigned char *
build_abf2(const abf2_spec *s, size_t *n)
{
  static const char strings[] =
      "Clampex\0D:\\p\\0406 VC 10s.pro\0IN 0\0pA\0Im sec\0\xb5" "A";
  size_t sb = s->is_float ? 4 : 2, nc = (size_t)s->n_channels;
  size_t frames = s->n_sweeps * s->sweep_frames, points = frames * nc;
  size_t data_blocks = (points * sb + 511) / 512, i, c, k;
  size_t synch_block = B_DATA + data_blocks;
  unsigned char *b;
  *n = (synch_block + 1) * 512;
  b = calloc(1, *n);
  cr_assert_not_null(b);
  memcpy(b, "ABF2", 4);
  b[4] = 0; b[5] = 0; b[6] = 6; b[7] = 2; /* 2.6.0.0 */
  put32(b, 8, 512);
  put32(b, 12, (long)s->n_sweeps);
  put16(b, 30, s->is_float);
  put32(b, 72, 2); /* protocol path is string 2 */
  section(b, 0, B_PROTO, 512, 1);
  section(b, 1, B_ADC, 128, (long long)nc);
  section(b, 9, B_STRINGS, 44 + (long)sizeof strings, 6);
  section(b, 10, B_DATA, (long)sb, (long long)points);
  if (s->synch)
    section(b, 15, (long)synch_block, 8, (long long)s->n_sweeps);
  /* protocol */
  put16(b, 512 * B_PROTO + 0, 5);
  putf(b, 512 * B_PROTO + 2, 40.0f); /* 25 kHz */
  put32(b, 512 * B_PROTO + 22, (long)(s->sweep_frames * nc));
  putf(b, 512 * B_PROTO + 110, 10.0f);
  put32(b, 512 * B_PROTO + 118, 32768);
  /* ADC entries */
  for (c = 0; c < nc; c++) {
    size_t a = 512 * B_ADC + 128 * c;
    put16(b, a + 0, (int)c);
    putf(b, a + 28, 1.0f);
    putf(b, a + 40, c ? 0.02f : 0.0005f);
    putf(b, a + 48, 1.0f);
    putf(b, a + 52, c ? 0.25f : 0.0f); /* fSignalOffset */
    if (c == 1 && s->telegraph) {
      put16(b, a + 2, 1);
      putf(b, a + 6, 2.0f);
    }
    put32(b, a + 74, c ? 5 : 3);
    put32(b, a + 78, c ? 6 : 4);
  }
  memcpy(b + 512 * B_STRINGS, "SSCH", 4);
  put32(b, 512 * B_STRINGS + 4, 1);
  put32(b, 512 * B_STRINGS + 8, 6);
  memcpy(b + 512 * B_STRINGS + 44, strings, sizeof strings);
  for (i = 0; i < frames; i++)
    for (c = 0; c < nc; c++) {
      size_t off = 512 * B_DATA + (i * nc + c) * sb;
      if (s->is_float)
        putf(b, off, (float)count_at(i, c) * 0.5f);
      else
        put16(b, off, count_at(i, c));
    }
  for (k = 0; s->synch && k < s->n_sweeps; k++) {
    put32(b, synch_block * 512 + 8 * k, (long)(k * 100000));
    put32(b, synch_block * 512 + 8 * k + 4, (long)(s->sweep_frames * nc));
  }
  return b;
}

static abf2_spec
default_abf2(void)
{
  abf2_spec s;
  memset(&s, 0, sizeof s);
  s.n_channels = 2;
  s.n_sweeps = 3;
  s.sweep_frames = 7;
  s.synch = 1;
  s.telegraph = 1;
  return s;
}

Test(formats, abf2_episodic_two_channels)
{
  abf2_spec s = default_abf2();
  size_t n, i, c;
  unsigned char *b = build_abf2(&s, &n);
  quantal_recording *rec;
  quantal_recording_info info;
  quantal_channel_info ch0, ch1;
  double x[2 * 21], s0, s1;
  quantal_diag d;

  write_file(path_in("a2.abf"), b, n);
  free(b);
  rec = open_ok(path_in("a2.abf"));
  quantal_recording_get_info(rec, &info);
  cr_expect_str_eq(info.format, "ABF2");
  cr_expect_eq(info.n_channels, 2);
  cr_expect_eq(info.n_sweeps, 3);
  cr_expect_eq(info.frames, 21);
  cr_expect_float_eq(info.rate_hz, 25000.0, 1e-9);
  cr_expect_str_eq(info.protocol, "0406 VC 10s");
  quantal_recording_get_channel(rec, 0, &ch0);
  quantal_recording_get_channel(rec, 1, &ch1);
  cr_expect_str_eq(ch0.name, "IN 0");
  cr_expect_str_eq(ch0.unit, "pA");
  cr_expect_str_eq(ch1.name, "Im sec");
  cr_expect_str_eq(ch1.unit, "uA"); /* micro sign 0xB5 */
  s0 = 10.0 / (double)0.0005f / 32768.0;
  s1 = 10.0 / (double)0.02f / 32768.0 / 2.0;
  cr_expect_eq(ch0.scale, s0);
  cr_expect_eq(ch1.scale, s1);
  cr_expect_eq(ch1.offset, -0.25);
  cr_assert_eq(quantal_recording_read_frames(rec, 0, 21, x, &d), QUANTAL_OK);
  for (i = 0; i < 21; i++)
    for (c = 0; c < 2; c++)
      cr_expect_eq(x[2 * i + c],
                   (double)count_at(i, c) * (c ? s1 : s0) - (c ? 0.25 : 0),
                   "frame %zu channel %zu", i, c);
  quantal_recording_close(rec);
}

Test(formats, abf2_float_without_synch_uses_episode_length)
{
  abf2_spec s = default_abf2();
  size_t n, i;
  unsigned char *b;
  quantal_recording *rec;
  quantal_recording_info info;
  double x[21];
  quantal_diag d;
  s.is_float = 1;
  s.synch = 0;
  b = build_abf2(&s, &n);
  write_file(path_in("f2.abf"), b, n);
  free(b);
  rec = open_ok(path_in("f2.abf"));
  quantal_recording_get_info(rec, &info);
  cr_expect_str_eq(info.encoding, "float32");
  cr_expect_eq(info.n_sweeps, 3);
  cr_assert_eq(quantal_recording_read(rec, 1, 0, 21, x, &d), QUANTAL_OK);
  for (i = 0; i < 21; i++)
    cr_expect_eq(x[i], (double)count_at(i, 1) * 0.5);
  quantal_recording_close(rec);
}

/* Spans that cross the reader's internal 256 KiB blocks read the same as
 * one whole read. */
Test(formats, abf2_block_reads_match_whole_read)
{
  abf2_spec s = default_abf2();
  size_t n, nf, i, k;
  unsigned char *b;
  quantal_recording *rec;
  double *all, *part;
  quantal_diag d;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  s.n_sweeps = 2;
  s.sweep_frames = 90001;
  b = build_abf2(&s, &n);
  write_file(path_in("big.abf"), b, n);
  free(b);
  rec = open_ok(path_in("big.abf"));
  nf = 2 * 90001;
  all = malloc(2 * nf * sizeof *all);
  part = malloc(2 * nf * sizeof *part);
  cr_assert(all != NULL && part != NULL && r != NULL);
  cr_assert_eq(quantal_recording_read_frames(rec, 0, nf, all, &d),
               QUANTAL_OK);
  gsl_rng_set(r, 8);
  for (k = 0; k < 50; k++) {
    size_t first = gsl_rng_uniform_int(r, nf);
    size_t m = 1 + gsl_rng_uniform_int(r, nf - first);
    cr_assert_eq(quantal_recording_read_frames(rec, first, m, part, &d),
                 QUANTAL_OK);
    for (i = 0; i < 2 * m; i++)
      cr_assert_eq(part[i], all[2 * first + i]);
  }
  cr_expect_eq(quantal_recording_read_frames(rec, nf - 1, 2, part, &d),
               QUANTAL_ERANGE);
  gsl_rng_free(r);
  free(all);
  free(part);
  quantal_recording_close(rec);
}

/* ---- hostile headers -------------------------------------------------- */

typedef struct mutation {
  int abf2;
  size_t off;
  int width;       /* 2, 4 (int), 5 (float), 8 bytes */
  double value;
  const char *field; /* must appear in the reason */
} mutation;

static void
apply(unsigned char *b, const mutation *m)
{
  switch (m->width) {
  case 2: put16(b, m->off, (int)m->value); break;
  case 4: put32(b, m->off, (long)m->value); break;
  case 5: putf(b, m->off, (float)m->value); break;
  default: put64(b, m->off, (long long)m->value); break;
  }
}

Test(formats, hostile_fields_are_rejected_by_name)
{
  static const mutation muts[] = {
      {0, 4, 5, 3.5, "fFileVersionNumber"},
      {0, 8, 2, 4, "nOperationMode"},
      {0, 10, 4, 2000000000, "data section"},
      {0, 10, 4, -5, "lActualAcqLength"},
      {0, 10, 4, 14, "synch array: sweep 3"},
      {0, 14, 2, -3, "nNumPointsIgnored"},
      {0, 40, 4, 1, "lDataSectionPtr"},
      {0, 40, 4, 100000, "data section"},
      {0, 92, 4, 0, "lSynchArraySize"},
      {0, 96, 4, 1000000, "synch array"},
      {0, 100, 2, 7, "nDataFormat"},
      {0, 120, 2, 0, "nADCNumChannels"},
      {0, 120, 2, 17, "nADCNumChannels"},
      {0, 122, 5, 0.0, "fADCSampleInterval"},
      {0, 122, 5, NAN, "fADCSampleInterval"},
      {0, 122, 5, 1e-30, "rate"},
      {0, 244, 5, 0.0, "fADCRange"},
      {0, 252, 4, 0, "lADCResolution"},
      {0, 410, 2, 16, "nADCSamplingSeq"},
      {0, 922, 5, 0.0, "fInstrumentScaleFactor"},
      {0, 1050, 5, INFINITY, "fSignalGain"},
      {0, 6656 + 4, 4, -8, "synch array: sweep 1"},
      {0, 6656 + 8 + 4, 4, 0, "synch array: sweep 2"},
      {1, 7, 1, 3, "fFileVersionNumber"},
      {1, 30, 2, 9, "nDataFormat"},
      {1, 76 + 8, 8, 0, "ProtocolSection"},
      {1, 76 + 16 + 8, 8, 17, "ADCSection"},
      {1, 76 + 16 + 8, 8, 1000000000LL, "ADCSection"},
      {1, 76 + 16 + 4, 4, 40, "ADCSection"},
      {1, 76 + 16 * 9 + 4, 4, 4000000000.0, "StringsSection"},
      {1, 76 + 16 * 10, 4, 0, "DataSection"},
      {1, 76 + 16 * 10 + 4, 4, 4, "DataSection"},
      {1, 76 + 16 * 10 + 8, 8, 5000000, "data section"},
      {1, 76 + 16 * 10 + 8, 8, -1, "DataSection"},
      {1, 76 + 16 * 15 + 4, 4, 16, "SynchArraySection"},
      {1, 76 + 16 * 15, 4, 99999, "SynchArraySection"},
      {1, 512 + 0, 2, 0, "nOperationMode"},
      {1, 512 + 2, 5, -40.0, "fADCSequenceInterval"},
      {1, 512 + 110, 5, NAN, "fADCRange"},
      {1, 1024 + 40, 5, 0.0, "fInstrumentScaleFactor"},
  };
  size_t k;
  for (k = 0; k < sizeof muts / sizeof muts[0]; k++) {
    const mutation *m = &muts[k];
    size_t n;
    unsigned char *b;
    quantal_recording *rec = NULL;
    quantal_diag d;
    quantal_status st;
    if (m->abf2) {
      abf2_spec s = default_abf2();
      b = build_abf2(&s, &n);
    } else {
      abf1_spec s = minimal_abf1();
      s.version = 1.83f;
      s.synch = 1;
      b = build_abf1(&s, &n);
    }
    if (m->width == 1)
      b[m->off] = (unsigned char)m->value;
    else
      apply(b, m);
    write_file(path_in("bad.abf"), b, n);
    free(b);
    st = quantal_recording_open(path_in("bad.abf"), NULL, &rec, &d);
    cr_expect_eq(st, QUANTAL_EFORMAT, "mutation %zu (%s): status %d (%s)", k,
                 m->field, st, d.reason);
    cr_expect_not_null(strstr(d.reason, m->field),
                       "mutation %zu: reason '%s' does not name %s", k,
                       d.reason, m->field);
    cr_expect_null(rec);
    quantal_recording_close(rec);
  }
}

Test(formats, truncated_files_are_rejected)
{
  abf2_spec s2 = default_abf2();
  abf1_spec s1 = minimal_abf1();
  size_t n1, n2, cut;
  unsigned char *b1 = build_abf1(&s1, &n1), *b2 = build_abf2(&s2, &n2);
  /* Cut anywhere before the last byte in use: the 15 int16 samples after
   * the 2048-byte ABF1 header; the synch array (3 entries) at block 5 of
   * the ABF2 file. */
  size_t need1 = 2048 + 15 * 2, need2 = 5 * 512 + 3 * 8;
  for (cut = 0; cut < 8; cut++) {
    size_t len1 = cut * need1 / 8 + (cut == 7 ? need1 / 8 - 1 : 0);
    size_t len2 = cut * need2 / 8 + (cut == 7 ? need2 / 8 - 1 : 0);
    quantal_recording *rec = NULL;
    quantal_diag d;
    quantal_status st;
    write_file(path_in("t1.abf"), b1, len1 > 4 ? len1 : 4);
    st = quantal_recording_open(path_in("t1.abf"), NULL, &rec, &d);
    cr_expect_eq(st, QUANTAL_EFORMAT, "ABF1 cut at %zu: %s", len1, d.reason);
    quantal_recording_close(rec);
    rec = NULL;
    write_file(path_in("t2.abf"), b2, len2 > 4 ? len2 : 4);
    st = quantal_recording_open(path_in("t2.abf"), NULL, &rec, &d);
    cr_expect_eq(st, QUANTAL_EFORMAT, "ABF2 cut at %zu: %s", len2, d.reason);
    quantal_recording_close(rec);
  }
  free(b1);
  free(b2);
}

/* Random byte changes in the headers: every open either fails cleanly or
 * gives a recording whose every frame can be read (run under
 * --enable-sanitize to catch any out-of-bounds access). */
Test(formats, random_header_damage_never_reads_out_of_bounds)
{
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  size_t trial;
  cr_assert_not_null(r);
  gsl_rng_set(r, 20240611);
  for (trial = 0; trial < 400; trial++) {
    int abf2 = (int)(trial & 1);
    size_t n, k, hdr;
    unsigned char *b;
    quantal_recording *rec = NULL;
    quantal_diag d;
    if (abf2) {
      abf2_spec s = default_abf2();
      b = build_abf2(&s, &n);
      hdr = 512 * B_DATA;
    } else {
      abf1_spec s = minimal_abf1();
      s.version = 1.83f;
      s.synch = 1;
      s.n_channels = 2;
      b = build_abf1(&s, &n);
      hdr = 6144;
    }
    for (k = 0; k < 1 + gsl_rng_uniform_int(r, 6); k++)
      b[gsl_rng_uniform_int(r, hdr)] = (unsigned char)gsl_rng_get(r);
    write_file(path_in("fuzz.abf"), b, n);
    free(b);
    if (quantal_recording_open(path_in("fuzz.abf"), NULL, &rec, &d) ==
        QUANTAL_OK) {
      quantal_recording_info info;
      double *x;
      quantal_recording_get_info(rec, &info);
      cr_assert(info.frames * info.n_channels * 2 <= n,
                "trial %zu: %llu frames claimed in %zu bytes", trial,
                (unsigned long long)info.frames, n);
      x = malloc(info.frames * info.n_channels * sizeof *x);
      cr_assert_not_null(x);
      cr_expect_eq(quantal_recording_read_frames(rec, 0, info.frames, x, &d),
                   QUANTAL_OK, "trial %zu: %s", trial, d.reason);
      free(x);
    }
    quantal_recording_close(rec);
  }
  gsl_rng_free(r);
}

/* ---- ATF -------------------------------------------------------------- */

static void
write_text(const char *path, const char *text)
{
  write_file(path, (const unsigned char *)text, strlen(text));
}

Test(formats, atf_episodic_two_signals_variable_sweeps)
{
  /* Two signals, two sweeps, interleaved columns; sweep 2 is one row
   * shorter (empty cells). Time in ms: 0.05 ms steps = 20 kHz. */
  static const char text[] =
      "ATF\t1.0\r\n"
      "3\t5\r\n"
      "\"AcquisitionMode=Episodic Stimulation\"\r\n"
      "\"Comment=\"\r\n"
      "\"Signals=\"\t\"IN 0\"\t\"IN 1\"\t\"IN 0\"\t\"IN 1\"\r\n"
      "\"Time (ms)\"\t\"Trace #1 (pA)\"\t\"Trace #1 (mV)\"\t\"Trace #2 (pA)\""
      "\t\"Trace #2 (mV)\"\r\n"
      "0\t1.5\t-70\t2.5\t-71\r\n"
      "0.05\t1.25\t-70.5\t2.25\t-71.5\r\n"
      "0.1\t1\t-69\t\t\r\n";
  quantal_recording *rec;
  quantal_recording_info info;
  quantal_channel_info ch;
  uint64_t first, len;
  double x[10], want[10] = {1.5, -70, 1.25, -70.5, 1, -69,
                            2.5, -71, 2.25, -71.5};
  quantal_diag d;
  size_t i;
  write_text(path_in("e.atf"), text);
  rec = open_ok(path_in("e.atf"));
  quantal_recording_get_info(rec, &info);
  cr_expect_str_eq(info.format, "ATF");
  cr_expect_eq(info.n_channels, 2);
  cr_expect_eq(info.n_sweeps, 2);
  cr_expect_eq(info.frames, 5);
  /* (rows - 1) / (t_last - t_first) = 2 / 0.1 ms. */
  cr_expect_float_eq(info.rate_hz, 20000.0, 1e-6);
  quantal_recording_get_channel(rec, 1, &ch);
  cr_expect_str_eq(ch.name, "IN 1");
  cr_expect_str_eq(ch.unit, "mV");
  cr_assert_eq(quantal_recording_get_sweep(rec, 1, &first, &len),
               QUANTAL_OK);
  cr_expect_eq(first, 3);
  cr_expect_eq(len, 2);
  cr_assert_eq(quantal_recording_read_frames(rec, 0, 5, x, &d), QUANTAL_OK);
  for (i = 0; i < 10; i++)
    cr_expect_eq(x[i], want[i], "value %zu", i);
  quantal_recording_close(rec);
}

Test(formats, sweep_selection_view)
{
  /* Three sweeps of one signal, two rows each; keeping 1 and 3 gives
   * their rows end to end, also through a read that crosses from one to
   * the other, and through the open option. */
  static const char text[] =
      "ATF\t1.0\n1\t4\n\"Signals=\"\t\"IN 0\"\t\"IN 0\"\t\"IN 0\"\n"
      "\"Time (ms)\"\t\"Trace #1 (pA)\"\t\"Trace #2 (pA)\"\t\"Trace #3 (pA)\"\n"
      "0\t1\t3\t5\n0.05\t2\t4\t6\n";
  quantal_recording *rec;
  quantal_recording_info info;
  quantal_open_options oo = quantal_open_options_default();
  unsigned char sel[3] = {1, 0, 1};
  uint64_t first, len;
  double x[4], want[4] = {1, 2, 5, 6};
  quantal_diag d;
  size_t i;
  write_text(path_in("s.atf"), text);
  rec = open_ok(path_in("s.atf"));
  quantal_recording_get_info(rec, &info);
  cr_assert_eq(info.n_sweeps, 3);
  cr_assert_eq(info.frames, 6);
  cr_assert_eq(quantal_recording_select_sweeps(rec, sel, &d), QUANTAL_OK);
  quantal_recording_get_info(rec, &info);
  cr_expect_eq(info.n_sweeps, 2);
  cr_expect_eq(info.frames, 4);
  cr_assert_eq(quantal_recording_get_sweep(rec, 1, &first, &len),
               QUANTAL_OK);
  cr_expect_eq(first, 2);
  cr_expect_eq(len, 2);
  cr_assert_eq(quantal_recording_read(rec, 0, 0, 4, x, &d), QUANTAL_OK);
  for (i = 0; i < 4; i++)
    cr_expect_eq(x[i], want[i], "value %zu", i);
  cr_assert_eq(quantal_recording_read(rec, 0, 1, 2, x, &d), QUANTAL_OK);
  cr_expect_eq(x[0], 2.0);
  cr_expect_eq(x[1], 5.0);
  cr_expect_eq(quantal_recording_read(rec, 0, 3, 2, x, &d), QUANTAL_ERANGE);
  memset(sel, 0, sizeof sel);
  cr_expect_eq(quantal_recording_select_sweeps(rec, sel, &d), QUANTAL_EINVAL);
  quantal_recording_close(rec);

  oo.sweeps = "3,1";
  cr_assert_eq(quantal_recording_open(path_in("s.atf"), &oo, &rec, &d),
               QUANTAL_OK);
  quantal_recording_get_info(rec, &info);
  cr_expect_eq(info.frames, 4, "a list keeps the file's order");
  cr_assert_eq(quantal_recording_read(rec, 0, 0, 4, x, &d), QUANTAL_OK);
  for (i = 0; i < 4; i++)
    cr_expect_eq(x[i], want[i], "value %zu", i);
  quantal_recording_close(rec);
  oo.sweeps = "2-4";
  cr_expect_eq(quantal_recording_open(path_in("s.atf"), &oo, &rec, &d),
               QUANTAL_EINVAL);
  cr_expect_str_eq(d.reason, "sweeps '2-4' asks for 2-4, but there are only 3");
  oo.sweeps = "1-";
  cr_expect_eq(quantal_recording_open(path_in("s.atf"), &oo, &rec, &d),
               QUANTAL_EINVAL);
  cr_expect_str_eq(d.reason, "sweeps '1-' is not a list like 1-10,12");
}

Test(formats, atf_gap_free_without_signals_record)
{
  static const char text[] = "ATF 1.0\n0 3\n"
                             "\"Time (s)\" \"Vm (mV)\" \"Im (nA)\"\n"
                             "0 -70 0.1\n1e-4 -70.5 0.2\n2e-4 -71 0.3\n";
  quantal_recording *rec;
  quantal_recording_info info;
  quantal_channel_info ch;
  write_text(path_in("g.atf"), text);
  rec = open_ok(path_in("g.atf"));
  quantal_recording_get_info(rec, &info);
  cr_expect_eq(info.n_channels, 2);
  cr_expect_eq(info.n_sweeps, 1);
  cr_expect_eq(info.frames, 3);
  cr_expect_float_eq(info.rate_hz, 10000.0, 1e-6);
  quantal_recording_get_channel(rec, 1, &ch);
  cr_expect_str_eq(ch.name, "Im");
  cr_expect_str_eq(ch.unit, "nA");
  quantal_recording_close(rec);
}

Test(formats, atf_malformed_files_are_rejected)
{
  static const struct {
    const char *text, *reason;
  } bad[] = {
      {"ATF\t1.0\nx\n", "line 2"},
      {"ATF\t1.0\n0\t0\n", "0 columns"},
      {"ATF\t1.0\n5\t2\n\"A=1\"\n", "ends inside"},
      {"ATF\t1.0\n0\t2\n\"Time (s)\"\t\"a (mV)\"\t\"b\"\n", "column titles"},
      {"ATF\t1.0\n0\t2\n\"Time (s)\"\t\"a (mV)\"\n", "no data rows"},
      {"ATF\t1.0\n0\t2\n\"Time (s)\"\t\"a (mV)\"\n0\t1\n0.1\tx\n",
       "not a number"},
      {"ATF\t1.0\n0\t2\n\"Time (s)\"\t\"a (mV)\"\n0\t1\n0\t2\n",
       "does not increase"},
      {"ATF\t1.0\n0\t2\n\"Time (s)\"\t\"a (mV)\"\n0\t1\n0.1\t\n0.2\t3\n",
       "after an empty cell"},
      {"ATF\t1.0\n1\t3\n\"Signals=\"\t\"A\"\n"
       "\"Time (s)\"\t\"a\"\t\"b\"\n0\t1\t2\n",
       "Signals record"},
      {"ATF\t1.0\n1\t4\n\"Signals=\"\t\"A\"\t\"A\"\t\"B\"\n"
       "\"Time (s)\"\t\"a\"\t\"b\"\t\"c\"\n0\t1\t2\t3\n1\t1\t2\t3\n",
       "one column per sweep"},
  };
  size_t k;
  for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    quantal_recording *rec = NULL;
    quantal_diag d;
    quantal_status st;
    write_text(path_in("bad.atf"), bad[k].text);
    st = quantal_recording_open(path_in("bad.atf"), NULL, &rec, &d);
    cr_expect_eq(st, QUANTAL_EFORMAT, "case %zu: status %d (%s)", k, st,
                 d.reason);
    cr_expect_not_null(strstr(d.reason, bad[k].reason),
                       "case %zu: reason '%s' lacks '%s'", k, d.reason,
                       bad[k].reason);
    quantal_recording_close(rec);
  }
}

/* ---- NWB (files written by tests/nwb/nwbgen.c with libhdf5) ----------- */

/* Open path and compare every sample of every sweep with what the
 * generator stored, as NWB defines it (data * conversion + offset, then
 * volts to mV and amperes to pA). */
static void
expect_nwb_samples(const char *path, const nwbgen_spec *spec)
{
  quantal_recording *rec = open_ok(path);
  quantal_recording_info info;
  quantal_diag d;
  uint64_t first = 0;
  size_t s, c, i, n;
  double *x;

  quantal_recording_get_info(rec, &info);
  cr_assert_eq(info.n_sweeps, spec->n_sweeps);
  cr_assert_eq(info.n_channels, spec->n_channels);
  for (s = 0; s < spec->n_sweeps; s++) {
    uint64_t f0, len;
    n = nwbgen_sweep_frames(spec, s);
    cr_assert_eq(quantal_recording_get_sweep(rec, s, &f0, &len), QUANTAL_OK);
    cr_expect_eq(f0, first, "sweep %zu", s);
    cr_assert_eq(len, n, "sweep %zu", s);
    x = malloc(n * sizeof *x);
    cr_assert_not_null(x);
    for (c = 0; c < spec->n_channels; c++) {
      cr_assert_eq(quantal_recording_read(rec, c, f0, n, x, &d), QUANTAL_OK,
                   "%s", d.reason);
      for (i = 0; i < n; i++) {
        double want = nwbgen_expected(spec, c, s, i);
        /* Two roundings apart at most: the reader folds the unit factor
         * into one scale. */
        cr_assert(fabs(x[i] - want) <= 1e-12 * fabs(want) + 1e-12,
                  "sweep %zu channel %zu sample %zu: %.17g, want %.17g", s,
                  c, i, x[i], want);
      }
    }
    free(x);
    first += n;
  }
  cr_expect_eq(info.frames, first);
  quantal_recording_close(rec);
}

Test(formats, nwb_two_electrodes_sample_for_sample)
{
  nwbgen_spec spec = nwbgen_default();
  quantal_recording *rec;
  quantal_recording_info info;
  quantal_channel_info ch;

  cr_assert_eq(nwbgen_write(path_in("t.nwb"), &spec), 0);
  rec = open_ok(path_in("t.nwb"));
  quantal_recording_get_info(rec, &info);
  cr_expect_str_eq(info.format, "NWB 2.6.0");
  cr_expect_str_eq(info.encoding, "int16,float32");
  cr_expect_str_eq(info.protocol, "step_ramp,hold-70");
  cr_expect_eq(info.rate_hz, 10000.0);
  cr_expect_eq(info.frames, 6000);
  cr_expect_eq(info.integer_samples, 0);
  cr_assert_eq(quantal_recording_get_channel(rec, 0, &ch), QUANTAL_OK);
  cr_expect_str_eq(ch.name, "elec0");
  cr_expect_str_eq(ch.unit, "mV");
  cr_expect_eq(ch.unit_source, QUANTAL_UNIT_FILE);
  /* int16 counts scaled per channel, as ABF's: conversion (float32) to
   * volts, then to mV; the offset likewise. */
  cr_expect_eq(ch.scale, (double)1e-5f * 1e3);
  cr_expect_eq(ch.offset, (double)-0.065f * 1e3);
  cr_assert_eq(quantal_recording_get_channel(rec, 1, &ch), QUANTAL_OK);
  cr_expect_str_eq(ch.name, "elec1");
  cr_expect_str_eq(ch.unit, "pA");
  cr_expect_eq(ch.scale, (double)1e-9f * 1e12);
  quantal_recording_close(rec);
  expect_nwb_samples(path_in("t.nwb"), &spec);
}

Test(formats, nwb_variable_sweeps_userblock_names_as_channels)
{
  nwbgen_spec spec = nwbgen_default();
  quantal_recording *rec;
  quantal_channel_info ch;
  spec.variable = 1;
  spec.userblock = 1;
  spec.sweep_dataset = 1;
  spec.no_electrode = 1;
  cr_assert_eq(nwbgen_write(path_in("v.nwb"), &spec), 0);
  expect_nwb_samples(path_in("v.nwb"), &spec);
  rec = open_ok(path_in("v.nwb"));
  cr_assert_eq(quantal_recording_get_channel(rec, 1, &ch), QUANTAL_OK);
  cr_expect_str_eq(ch.name, "VoltageClampSeries");
  quantal_recording_close(rec);
  /* One electrode, no sweep numbers: its series in name order. */
  spec = nwbgen_default();
  spec.n_channels = 1;
  spec.no_sweep = 1;
  spec.compact = 1;
  cr_assert_eq(nwbgen_write(path_in("ns.nwb"), &spec), 0);
  expect_nwb_samples(path_in("ns.nwb"), &spec);
}

Test(formats, nwb_malformed_files_are_rejected_by_name)
{
  size_t k;
  for (k = 0; nwbgen_bad_kinds[k] != NULL; k++) {
    const char *kind = nwbgen_bad_kinds[k];
    nwbgen_spec spec = nwbgen_default();
    quantal_recording *rec = NULL;
    quantal_diag d;
    quantal_status st, want = QUANTAL_EFORMAT;
    spec.bad = kind;
    cr_assert_eq(nwbgen_write(path_in("bad.nwb"), &spec), 0, "%s", kind);
    st = quantal_recording_open(path_in("bad.nwb"), NULL, &rec, &d);
    if (strcmp(kind, "timestamps") == 0 || strcmp(kind, "mixed-rate") == 0)
      want = QUANTAL_EUNSUPPORTED;
    if (strcmp(kind, "no-series") == 0)
      want = QUANTAL_ENODATA;
    cr_expect_eq(st, want, "%s: status %d: %s", kind, st, d.reason);
    cr_expect_null(rec, "%s", kind);
    cr_expect_str_eq(d.file, path_in("bad.nwb"), "%s", kind);
    /* The series, the sweep or the root group is named. */
    cr_expect(strstr(d.reason, "/acquisition") != NULL ||
                  strstr(d.reason, "sweep 1 ") != NULL ||
                  strstr(d.reason, "root group") != NULL,
              "%s: %s", kind, d.reason);
  }
}

static unsigned char *
slurp(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  unsigned char *b;
  long len;
  cr_assert_not_null(f);
  cr_assert_eq(fseek(f, 0, SEEK_END), 0);
  len = ftell(f);
  cr_assert_gt(len, 0);
  rewind(f);
  b = malloc((size_t)len);
  cr_assert_not_null(b);
  cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return b;
}

/* Cut files, and random bytes changed anywhere: every open fails with a
 * reason or gives a recording whose every frame can be read. libhdf5
 * runs in a child, so a crash in it is a failure here, not a crash. */
Test(formats, nwb_truncated_or_damaged_files_fail_cleanly)
{
  nwbgen_spec spec = nwbgen_default();
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  unsigned char *b, *m;
  size_t n, cut, trial;
  spec.n_sweeps = 2;
  spec.frames = 200;
  spec.compact = 1;
  cr_assert_eq(nwbgen_write(path_in("d.nwb"), &spec), 0);
  b = slurp(path_in("d.nwb"), &n);
  m = malloc(n);
  cr_assert_not_null(m);
  for (cut = 1; cut < 16; cut++) {
    quantal_recording *rec = NULL;
    quantal_diag d;
    quantal_status st;
    write_file(path_in("cut.nwb"), b, cut * n / 16);
    st = quantal_recording_open(path_in("cut.nwb"), NULL, &rec, &d);
    cr_expect_eq(st, QUANTAL_EFORMAT, "cut at %zu of %zu: %s", cut * n / 16,
                 n, d.reason);
    cr_expect_neq(d.reason[0], '\0');
    quantal_recording_close(rec);
  }
  gsl_rng_set(r, 8);
  for (trial = 0; trial < 60; trial++) {
    quantal_recording *rec = NULL;
    quantal_recording_info info;
    quantal_diag d;
    size_t k, hits = 1 + gsl_rng_uniform_int(r, 8);
    memcpy(m, b, n);
    for (k = 0; k < hits; k++)
      m[8 + gsl_rng_uniform_int(r, n - 8)] ^=
          (unsigned char)(1 + gsl_rng_uniform_int(r, 255));
    write_file(path_in("dmg.nwb"), m, n);
    if (quantal_recording_open(path_in("dmg.nwb"), NULL, &rec, &d) !=
        QUANTAL_OK) {
      cr_expect_neq(d.reason[0], '\0', "trial %zu", trial);
      continue;
    }
    quantal_recording_get_info(rec, &info);
    {
      double *x = malloc(info.frames * info.n_channels * sizeof *x);
      cr_assert_not_null(x);
      cr_expect_eq(quantal_recording_read_frames(rec, 0, info.frames, x, &d),
                   QUANTAL_OK, "trial %zu: %s", trial, d.reason);
      free(x);
    }
    quantal_recording_close(rec);
  }
  gsl_rng_free(r);
  free(m);
  free(b);
}

/* With QUANTAL_FUZZ_SEEDS set to a folder, write small ABF files made by
 * the builders above there: the seed corpus of the recording fuzz target
 * (scripts/fuzz) is made from our own generated files. */
Test(formats, writes_fuzz_seeds)
{
  const char *out = getenv("QUANTAL_FUZZ_SEEDS");
  abf1_spec s1 = minimal_abf1();
  abf2_spec s2 = default_abf2();
  unsigned char *b1, *b2;
  size_t n1, n2;
  b1 = build_abf1(&s1, &n1);
  b2 = build_abf2(&s2, &n2);
  cr_assert_gt(n1, 2048);
  cr_assert_gt(n2, 512);
  if (out != NULL) {
    char path[1024];
    unsigned char sel = 3; /* fuzz_recording: ".abf" */
    FILE *f;
    snprintf(path, sizeof path, "%s/abf1-minimal", out);
    f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(&sel, 1, 1, f);
    fwrite(b1, 1, n1, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/abf2-two-channels", out);
    f = fopen(path, "wb");
    cr_assert_not_null(f);
    fwrite(&sel, 1, 1, f);
    fwrite(b2, 1, n2, f);
    fclose(f);
  }
  {
    /* Two sweeps of two electrodes, 50 samples each, in the compact
     * HDF5 format: 16 KB. */
    nwbgen_spec spec = nwbgen_default();
    spec.n_sweeps = 2;
    spec.frames = 50;
    spec.compact = 1;
    cr_assert_eq(nwbgen_write(path_in("seed.nwb"), &spec), 0);
    if (out != NULL) {
      char path[1024];
      unsigned char sel = 6, *b; /* fuzz_recording: ".bin" */
      size_t n;
      FILE *f;
      b = slurp(path_in("seed.nwb"), &n);
      cr_assert_lt(n, 20000);
      snprintf(path, sizeof path, "%s/nwb-two-electrodes", out);
      f = fopen(path, "wb");
      cr_assert_not_null(f);
      fwrite(&sel, 1, 1, f);
      fwrite(b, 1, n, f);
      fclose(f);
      free(b);
    }
  }
  free(b1);
  free(b2);
}

/* A library opened on first use that cannot be loaded: the file, the
 * library and what needed it are named, and nothing is half-loaded (a
 * second try says the same). A library without a symbol asked of it is
 * refused likewise. */
Test(dl, missing_library_or_symbol_is_named)
{
  static const char *const names[] = {"qtl_no_such_function"};
  void *addr[1] = {NULL};
  qtl_dl_lib gone = {"libquantal-no-such-library.so.7", "Test files", names,
                     addr, 1, 0, {0}};
  qtl_dl_lib libm6 = {"libm.so.6", "Test files", names, addr, 1, 0, {0}};
  quantal_diag d;
  int k;
  for (k = 0; k < 2; k++) {
    memset(&d, 0, sizeof d);
    cr_assert_eq(qtl_dl_load(&gone, "x.nwb", &d), QUANTAL_EUNSUPPORTED);
    cr_assert_str_eq(d.file, "x.nwb");
    cr_assert_not_null(strstr(d.reason, "Test files need "
                                        "libquantal-no-such-library.so.7"),
                       "%s", d.reason);
  }
  memset(&d, 0, sizeof d);
  cr_assert_eq(qtl_dl_load(&libm6, NULL, &d), QUANTAL_EUNSUPPORTED);
  cr_assert_not_null(strstr(d.reason, "no symbol qtl_no_such_function"),
                     "%s", d.reason);
  cr_assert_null(addr[0]);
}
