/* recording.c - opening, reading and describing recordings. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Frames per block when a single channel is read out of interleaved data:
 * large enough to amortise the backend call, small enough to stay in L2. */
#define SCRATCH_FRAMES 8192

quantal_open_options
quantal_open_options_default(void)
{
  quantal_open_options o;
  memset(&o, 0, sizeof o);
  return o;
}

quantal_status
qtl_recording_alloc_layout(quantal_recording *rec, size_t n,
                           quantal_diag *diag)
{
  size_t i;
  if (n == 0)
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "the file has no channels");
  if (n > QUANTAL_MAX_CHANNELS)
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "the file claims %zu channels (at most %d supported)", n,
                    QUANTAL_MAX_CHANNELS);
  free(rec->channels);
  rec->channels = calloc(n, sizeof *rec->channels);
  if (rec->channels == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                    "out of memory for %zu channels", n);
  rec->info.n_channels = n;
  for (i = 0; i < n; i++) {
    snprintf(rec->channels[i].name, QUANTAL_NAME_MAX, "ch%zu", i + 1);
    qtl_strlcpy(rec->channels[i].unit, "au", QUANTAL_UNIT_MAX);
    rec->channels[i].scale = 1.0;
    rec->channels[i].offset = 0.0;
    rec->channels[i].unit_source = QUANTAL_UNIT_DEFAULT;
  }
  return qtl_recording_set_sweeps(rec, 1, NULL, NULL, diag);
}

/* Samples held in memory (ATF, libbiosig): frames by channels,
 * interleaved, sweeps concatenated. */
typedef struct mem_ctx {
  double *data;
  size_t n_channels;
} mem_ctx;

static quantal_status
mem_read(void *vctx, uint64_t first, size_t n, double *out,
         quantal_diag *diag)
{
  mem_ctx *c = vctx;
  (void)diag;
  memcpy(out, c->data + first * c->n_channels,
         n * c->n_channels * sizeof *out);
  return QUANTAL_OK;
}

static void
mem_close(void *vctx)
{
  mem_ctx *c = vctx;
  if (c == NULL)
    return;
  free(c->data);
  free(c);
}

static const qtl_backend_ops mem_ops = {mem_read, mem_close, NULL, NULL,
                                        NULL};

quantal_status
qtl_memory_backend(quantal_recording *rec, double *data, size_t n_channels,
                   quantal_diag *diag)
{
  mem_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) {
    free(data);
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                    "out of memory");
  }
  c->data = data;
  c->n_channels = n_channels;
  rec->ctx = c;
  rec->ops = &mem_ops;
  return QUANTAL_OK;
}

/* The end of an open: the scratch block for single-channel reads, then
 * rec handed out, or closed when st (or that allocation) failed. */
static quantal_status
finish_open(quantal_recording *rec, quantal_status st, const char *path,
            quantal_recording **out, quantal_diag *diag)
{
  if (st == QUANTAL_OK) {
    rec->scratch_frames = SCRATCH_FRAMES;
    rec->scratch =
        malloc(rec->scratch_frames * rec->info.n_channels * sizeof(double));
    if (rec->scratch == NULL)
      st = qtl_fail(diag, QUANTAL_ENOMEM, path, -1, -1, "out of memory");
  }
  if (st != QUANTAL_OK) {
    quantal_recording_close(rec);
    return st;
  }
  *out = rec;
  return QUANTAL_OK;
}

quantal_status
qtl_recording_from_memory(const char *path, double *data, uint64_t frames,
                          double rate_hz, const char *name, const char *unit,
                          quantal_recording **out, quantal_diag *diag)
{
  quantal_recording *rec;
  quantal_status st;
  *out = NULL;
  rec = calloc(1, sizeof *rec);
  if (rec == NULL) {
    free(data);
    return qtl_fail(diag, QUANTAL_ENOMEM, path, -1, -1, "out of memory");
  }
  qtl_strlcpy(rec->path, path, sizeof rec->path);
  qtl_strlcpy(rec->info.format, "memory", sizeof rec->info.format);
  qtl_strlcpy(rec->info.encoding, "float64", sizeof rec->info.encoding);
  rec->info.frames = frames;
  rec->info.rate_hz = rate_hz;
  st = qtl_recording_alloc_layout(rec, 1, diag);
  if (st != QUANTAL_OK) {
    free(data);
    quantal_recording_close(rec);
    return st;
  }
  qtl_strlcpy(rec->channels[0].name, name, QUANTAL_NAME_MAX);
  qtl_strlcpy(rec->channels[0].unit, unit, QUANTAL_UNIT_MAX);
  rec->channels[0].unit_source = QUANTAL_UNIT_OPTION;
  st = qtl_memory_backend(rec, data, 1, diag);
  return finish_open(rec, st, path, out, diag);
}

quantal_status
qtl_recording_set_sweeps(quantal_recording *rec, size_t n,
                         const uint64_t *first, const uint64_t *frames,
                         quantal_diag *diag)
{
  uint64_t *f, *l;
  if (n == 0)
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "the file has no sweeps");
  f = malloc(n * sizeof *f);
  l = malloc(n * sizeof *l);
  if (f == NULL || l == NULL) {
    free(f);
    free(l);
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                    "out of memory for %zu sweeps", n);
  }
  if (first == NULL) {
    f[0] = 0;
    l[0] = rec->info.frames;
  } else {
    memcpy(f, first, n * sizeof *f);
    memcpy(l, frames, n * sizeof *l);
  }
  free(rec->sweep_first);
  free(rec->sweep_frames);
  rec->sweep_first = f;
  rec->sweep_frames = l;
  rec->info.n_sweeps = n;
  return QUANTAL_OK;
}

static int
looks_like_text(const unsigned char *buf, size_t n)
{
  size_t i;
  if (n == 0)
    return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = buf[i];
    if (c == '\n' || c == '\r' || c == '\t' || (c >= 0x20 && c < 0x7f))
      continue;
    return 0;
  }
  return 1;
}

typedef quantal_status (*probe_fn)(quantal_recording *, const unsigned char *,
                                   size_t, quantal_diag *);

quantal_status
quantal_parse_list(const char *spec, size_t n, unsigned char *sel,
                   quantal_diag *diag)
{
  const char *p = spec;
  memset(sel, 0, n);
  if (p == NULL || *p == '\0')
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1, "empty list");
  while (*p != '\0') {
    char *end;
    unsigned long a, b;
    if (*p < '0' || *p > '9')
      goto bad;
    a = strtoul(p, &end, 10);
    b = a;
    p = end;
    if (*p == '-') {
      p++;
      if (*p < '0' || *p > '9')
        goto bad;
      b = strtoul(p, &end, 10);
      p = end;
    }
    if (*p == ',')
      p++;
    else if (*p != '\0')
      goto bad;
    if (b < a)
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "'%s' has a backwards range %lu-%lu", spec, a, b);
    if (a < 1)
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "'%s': the numbering starts at 1", spec);
    if (b > n)
      return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                      "'%s' asks for %lu-%lu, but there %s only %zu", spec,
                      a, b, n == 1 ? "is" : "are", n);
    for (; a <= b; a++)
      sel[a - 1] = 1;
  }
  return QUANTAL_OK;
bad:
  return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1,
                  "'%s' is not a list like 1-10,12", spec);
}

/* Apply the caller's units, scales and sweep selection over what the file
 * said. */
static quantal_status
apply_options(quantal_recording *rec, const quantal_open_options *opt,
              quantal_diag *diag)
{
  size_t i;
  if (opt == NULL)
    return QUANTAL_OK;
  if (opt->sweeps != NULL) {
    unsigned char *sel = malloc(rec->info.n_sweeps + 1);
    quantal_status st;
    if (sel == NULL)
      return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                      "out of memory");
    st = quantal_parse_list(opt->sweeps, rec->info.n_sweeps, sel, diag);
    if (st != QUANTAL_OK) {
      char why[sizeof diag->reason];
      if (diag) {
        snprintf(why, sizeof why, "%s", diag->reason);
        qtl_fail(diag, st, rec->path, -1, -1, "sweeps %s", why);
      }
      free(sel);
      return st;
    }
    st = quantal_recording_select_sweeps(rec, sel, diag);
    free(sel);
    if (st != QUANTAL_OK)
      return st;
  }
  if (opt->n_units > rec->info.n_channels)
    return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "%zu units given but the file has %zu channel%s",
                    opt->n_units, rec->info.n_channels,
                    rec->info.n_channels == 1 ? "" : "s");
  if (opt->n_scales > rec->info.n_channels)
    return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "%zu scales given but the file has %zu channel%s",
                    opt->n_scales, rec->info.n_channels,
                    rec->info.n_channels == 1 ? "" : "s");
  for (i = 0; i < opt->n_units && opt->units; i++) {
    const char *u = opt->units[i];
    if (u == NULL || *u == '\0')
      continue;
    if (strlen(u) >= QUANTAL_UNIT_MAX)
      return qtl_fail(diag, QUANTAL_EINVAL, rec->path, (long)i, -1,
                      "unit '%s' is too long", u);
    qtl_strlcpy(rec->channels[i].unit, u, QUANTAL_UNIT_MAX);
    rec->channels[i].unit_source = QUANTAL_UNIT_OPTION;
  }
  for (i = 0; i < opt->n_scales && opt->scales; i++) {
    double s = opt->scales[i];
    if (s == 0.0 || isnan(s))
      continue;
    if (!isfinite(s))
      return qtl_fail(diag, QUANTAL_EINVAL, rec->path, (long)i, -1,
                      "scale for channel %zu is not finite", i + 1);
    rec->channels[i].scale = s;
    rec->channels[i].offset = 0.0;
    rec->channels[i].unit_source = QUANTAL_UNIT_OPTION;
  }
  return QUANTAL_OK;
}

quantal_status
quantal_recording_open(const char *path, const quantal_open_options *opt,
                       quantal_recording **out, quantal_diag *diag)
{
  quantal_recording *rec;
  quantal_status st;
  struct stat sb;
  unsigned char head[512];
  size_t nhead;
  FILE *f;

  quantal_diag_clear(diag);
  if (out == NULL || path == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1, "no file given");
  *out = NULL;
  if (stat(path, &sb) != 0)
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "%s", strerror(errno));
  if (S_ISDIR(sb.st_mode))
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "is a directory");
  f = fopen(path, "rb");
  if (f == NULL)
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "%s", strerror(errno));
  nhead = fread(head, 1, sizeof head, f);
  if (ferror(f)) {
    int e = errno;
    fclose(f);
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "%s", strerror(e));
  }
  fclose(f);
  if (nhead == 0)
    return qtl_fail(diag, QUANTAL_EFORMAT, path, -1, -1, "empty file");

  rec = calloc(1, sizeof *rec);
  if (rec == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, path, -1, -1, "out of memory");
  qtl_strlcpy(rec->path, path, sizeof rec->path);

  /* formats: Axon files, libbiosig's and NWB (HDF5) are recognised by
   * their magic bytes. */
  if (nhead >= 4 && (memcmp(head, "ABF ", 4) == 0 ||
                     memcmp(head, "ABF2", 4) == 0))
    st = qtl_abf_open(rec, diag);
  else if (nhead >= 4 && memcmp(head, "ATF", 3) == 0 &&
           (head[3] == ' ' || head[3] == '\t'))
    st = qtl_atf_open(rec, opt ? opt->rate_hz : 0.0, diag);
  else if (qtl_biosig_magic(head, nhead))
    st = qtl_biosig_open(rec, diag);
  else if (qtl_nwb_magic(path, head, nhead))
    st = qtl_nwb_open(rec, diag);
  else if (qtl_has_suffix(path, ".txt") || qtl_has_suffix(path, ".csv") ||
      qtl_has_suffix(path, ".tsv") || qtl_has_suffix(path, ".dat") ||
      qtl_has_suffix(path, ".asc"))
    st = qtl_text_open(rec, opt ? opt->rate_hz : 0.0, diag);
  else if (looks_like_text(head, nhead)) {
    /* Plain text under another name (a .wav that is really a table, or an
     * export without a known extension): read it as text only when the
     * caller gave a rate, which shows they meant it. */
    if (opt != NULL && opt->rate_hz > 0.0)
      st = qtl_text_open(rec, opt->rate_hz, diag);
    else
      st = qtl_fail(diag, QUANTAL_EFORMAT, path, -1, -1,
                    "not a recording: the file is plain text (give --rate "
                    "to read it as a text export)");
  } else
    st = qtl_sndfile_open(rec, diag);
  if (st == QUANTAL_OK && rec->info.frames == 0)
    st = qtl_fail(diag, QUANTAL_ENODATA, path, -1, -1,
                  "the recording has zero frames");
  if (st == QUANTAL_OK && !(rec->info.rate_hz > 0.0 &&
                            isfinite(rec->info.rate_hz)))
    st = qtl_fail(diag, QUANTAL_EFORMAT, path, -1, -1,
                  "invalid sample rate %g Hz", rec->info.rate_hz);
  if (st == QUANTAL_OK)
    st = apply_options(rec, opt, diag);
  return finish_open(rec, st, path, out, diag);
}

/* A selection of sweeps, laid end to end: frame f of the view is frame
 * src[k] + (f - at[k]) of the file, k the selected sweep holding f. */
typedef struct view_ctx {
  const qtl_backend_ops *ops;
  void *ctx;
  size_t n, nc;
  uint64_t *src, *at, *len;
} view_ctx;

static quantal_status
view_read(void *vctx, uint64_t first, size_t n, double *out,
          quantal_diag *diag)
{
  view_ctx *v = vctx;
  size_t lo = 0, hi = v->n;
  /* the last sweep starting at or before first */
  while (hi - lo > 1) {
    size_t mid = lo + (hi - lo) / 2;
    if (v->at[mid] <= first)
      lo = mid;
    else
      hi = mid;
  }
  while (n > 0) {
    uint64_t off = first - v->at[lo], m = v->len[lo] - off;
    quantal_status st;
    if (m > n)
      m = n;
    st = v->ops->read(v->ctx, v->src[lo] + off, (size_t)m, out, diag);
    if (st != QUANTAL_OK)
      return st;
    out += m * v->nc;
    first += m;
    n -= (size_t)m;
    lo++;
  }
  return QUANTAL_OK;
}

static void
view_close(void *vctx)
{
  view_ctx *v = vctx;
  if (v == NULL)
    return;
  if (v->ops != NULL && v->ops->close != NULL)
    v->ops->close(v->ctx);
  free(v->src);
  free(v->at);
  free(v->len);
  free(v);
}

static const qtl_backend_ops view_ops = {view_read, view_close, NULL, NULL,
                                         NULL};

quantal_status
quantal_recording_select_sweeps(quantal_recording *rec,
                                const unsigned char *sel,
                                quantal_diag *diag)
{
  view_ctx *v;
  size_t i, k = 0, ns = rec->info.n_sweeps;
  uint64_t pos = 0;
  quantal_status st;
  for (i = 0; i < ns; i++)
    k += sel[i] != 0;
  if (k == 0)
    return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "no sweep selected");
  if (k == ns)
    return QUANTAL_OK;
  v = calloc(1, sizeof *v);
  if (v != NULL) {
    v->src = malloc(k * sizeof *v->src);
    v->at = malloc(k * sizeof *v->at);
    v->len = malloc(k * sizeof *v->len);
  }
  if (v == NULL || v->src == NULL || v->at == NULL || v->len == NULL) {
    view_close(v);
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                    "out of memory");
  }
  for (i = 0, k = 0; i < ns; i++)
    if (sel[i]) {
      v->src[k] = rec->sweep_first[i];
      v->len[k] = rec->sweep_frames[i];
      v->at[k] = pos;
      pos += rec->sweep_frames[i];
      k++;
    }
  v->n = k;
  v->nc = rec->info.n_channels;
  /* The new sweep table first: on failure rec is left as it was. */
  st = qtl_recording_set_sweeps(rec, k, v->at, v->len, diag);
  if (st != QUANTAL_OK) {
    view_close(v);
    return st;
  }
  v->ops = rec->ops;
  v->ctx = rec->ctx;
  rec->ops = &view_ops;
  rec->ctx = v;
  rec->info.frames = pos;
  return QUANTAL_OK;
}

void
quantal_recording_close(quantal_recording *rec)
{
  if (rec == NULL)
    return;
  if (rec->ops != NULL && rec->ops->close != NULL)
    rec->ops->close(rec->ctx);
  free(rec->channels);
  free(rec->sweep_first);
  free(rec->sweep_frames);
  free(rec->scratch);
  free(rec);
}

void
quantal_recording_get_info(const quantal_recording *rec,
                           quantal_recording_info *info)
{
  *info = rec->info;
}

quantal_status
quantal_recording_get_channel(const quantal_recording *rec, size_t ch,
                              quantal_channel_info *info)
{
  if (ch >= rec->info.n_channels)
    return QUANTAL_ERANGE;
  *info = rec->channels[ch];
  return QUANTAL_OK;
}

quantal_status
quantal_recording_get_sweep(const quantal_recording *rec, size_t i,
                            uint64_t *first_frame, uint64_t *n_frames)
{
  if (i >= rec->info.n_sweeps)
    return QUANTAL_ERANGE;
  if (first_frame)
    *first_frame = rec->sweep_first[i];
  if (n_frames)
    *n_frames = rec->sweep_frames[i];
  return QUANTAL_OK;
}

static quantal_status
check_span(const quantal_recording *rec, uint64_t first, size_t n,
           quantal_diag *diag)
{
  if (first > rec->info.frames || n > rec->info.frames - first)
    return qtl_fail(diag, QUANTAL_ERANGE, rec->path, -1, (long long)first,
                    "frames %llu..%llu lie outside the recording (%llu "
                    "frames)",
                    (unsigned long long)first,
                    (unsigned long long)(first + n),
                    (unsigned long long)rec->info.frames);
  return QUANTAL_OK;
}

quantal_status
quantal_recording_read_frames(quantal_recording *rec, uint64_t first_frame,
                              size_t n, double *buf, quantal_diag *diag)
{
  size_t nc = rec->info.n_channels, i, c;
  quantal_status st = check_span(rec, first_frame, n, diag);
  rec->last_ch = (size_t)-1; /* the backend's note is of every channel */
  if (st != QUANTAL_OK || n == 0)
    return st;
  st = rec->ops->read(rec->ctx, first_frame, n, buf, diag);
  if (st != QUANTAL_OK)
    return st;
  for (c = 0; c < nc; c++) {
    double s = rec->channels[c].scale, o = rec->channels[c].offset;
    if (s == 1.0 && o == 0.0)
      continue;
    for (i = 0; i < n; i++)
      buf[i * nc + c] = buf[i * nc + c] * s + o;
  }
  return QUANTAL_OK;
}

int
qtl_recording_read_finite(const quantal_recording *rec)
{
  const quantal_channel_info *c = NULL;
  if (rec->ops->last_finite == NULL || rec->last_ch >= rec->info.n_channels)
    return 0;
  c = &rec->channels[rec->last_ch];
  /* x s + o of a finite x is finite unless it overflows: with s = 1 and
   * o = 0 it is x */
  if (c->scale != 1.0 || c->offset != 0.0)
    return 0;
  return rec->ops->last_finite(rec->ctx);
}

quantal_status
quantal_recording_read(quantal_recording *rec, size_t ch,
                       uint64_t first_frame, size_t n, double *buf,
                       quantal_diag *diag)
{
  size_t nc = rec->info.n_channels, done = 0;
  double s, o;
  quantal_status st;
  if (ch >= nc)
    return qtl_fail(diag, QUANTAL_ERANGE, rec->path, (long)ch, -1,
                    "channel %zu does not exist (the file has %zu)", ch + 1,
                    nc);
  rec->last_ch = (size_t)-1;
  st = check_span(rec, first_frame, n, diag);
  if (st != QUANTAL_OK)
    return st;
  s = rec->channels[ch].scale;
  o = rec->channels[ch].offset;
  if (nc == 1) {
    st = rec->ops->read(rec->ctx, first_frame, n, buf, diag);
    if (st != QUANTAL_OK)
      return st;
    rec->last_ch = ch; /* one read of this channel alone */
    if (s != 1.0 || o != 0.0)
      for (size_t i = 0; i < n; i++)
        buf[i] = buf[i] * s + o;
    return QUANTAL_OK;
  }
  if (rec->ops->read_channel) {
    /* scaled as the loop below does, in the same pass */
    st = rec->ops->read_channel(rec->ctx, ch, first_frame, n, s, o, buf,
                                diag);
    if (st == QUANTAL_OK)
      rec->last_ch = ch;
    return st;
  }
  while (done < n) {
    size_t m = n - done, i;
    if (m > rec->scratch_frames)
      m = rec->scratch_frames;
    st = rec->ops->read(rec->ctx, first_frame + done, m, rec->scratch, diag);
    if (st != QUANTAL_OK)
      return st;
    for (i = 0; i < m; i++)
      buf[done + i] = rec->scratch[i * nc + ch] * s + o;
    done += m;
  }
  return QUANTAL_OK;
}

quantal_status
quantal_recording_load(quantal_recording *rec, size_t ch, double **out,
                       size_t *n, quantal_diag *diag)
{
  double *x;
  quantal_status st;
  uint64_t frames = rec->info.frames;
  *out = NULL;
  *n = 0;
  if (frames > (uint64_t)(SIZE_MAX / sizeof(double)))
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, (long)ch, -1,
                    "the recording is too long to load at once");
  x = malloc((size_t)frames * sizeof *x);
  if (x == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, (long)ch, -1,
                    "out of memory loading %llu frames",
                    (unsigned long long)frames);
  st = quantal_recording_read(rec, ch, 0, (size_t)frames, x, diag);
  if (st != QUANTAL_OK) {
    free(x);
    return st;
  }
  *out = x;
  *n = (size_t)frames;
  return QUANTAL_OK;
}

/* ---- quantal's own metadata ------------------------------------------- */

/* Metadata is one line of `key=v1,v2,...;` pairs stored in the file's
 * comment string, so that any libsndfile container that keeps strings
 * (WAV LIST/INFO, FLAC Vorbis comments, ...) carries it. */
#define META_TAG "quantal-meta-1;"

static void
split_list(const char *val, size_t len, char items[][QUANTAL_NAME_MAX],
           size_t max, size_t *count)
{
  size_t k = 0, start = 0, i;
  for (i = 0; i <= len && k < max; i++) {
    if (i == len || val[i] == ',') {
      size_t m = i - start;
      if (m >= QUANTAL_NAME_MAX)
        m = QUANTAL_NAME_MAX - 1;
      memcpy(items[k], val + start, m);
      items[k][m] = '\0';
      k++;
      start = i + 1;
    }
  }
  *count = k;
}

int
qtl_metadata_parse(quantal_recording *rec, const char *text)
{
  const char *p;
  char(*items)[QUANTAL_NAME_MAX];
  size_t nc = rec->info.n_channels;
  if (text == NULL || (p = strstr(text, META_TAG)) == NULL)
    return 0;
  items = malloc(QUANTAL_MAX_CHANNELS * sizeof *items);
  if (items == NULL)
    return 0;
  p += strlen(META_TAG);
  while (*p != '\0') {
    const char *eq = strchr(p, '='), *end = strchr(p, ';');
    size_t count, i;
    if (eq == NULL || end == NULL || eq > end)
      break;
    split_list(eq + 1, (size_t)(end - eq - 1), items, QUANTAL_MAX_CHANNELS,
               &count);
    for (i = 0; i < count && i < nc; i++) {
      if ((size_t)(eq - p) == 5 && strncmp(p, "units", 5) == 0) {
        qtl_strlcpy(rec->channels[i].unit, items[i], QUANTAL_UNIT_MAX);
        rec->channels[i].unit_source = QUANTAL_UNIT_FILE;
      } else if ((size_t)(eq - p) == 5 && strncmp(p, "names", 5) == 0) {
        qtl_strlcpy(rec->channels[i].name, items[i], QUANTAL_NAME_MAX);
      } else if ((size_t)(eq - p) == 6 && strncmp(p, "scales", 6) == 0) {
        char *e;
        double s = strtod(items[i], &e);
        if (e != items[i] && isfinite(s) && s != 0.0) {
          rec->channels[i].scale = s;
          rec->channels[i].unit_source = QUANTAL_UNIT_FILE;
        }
      }
    }
    p = end + 1;
    while (*p == ' ')
      p++;
    if (strncmp(p, "comment=", 8) == 0)
      break;
  }
  free(items);
  return 1;
}

static int
safe_item(const char *s)
{
  return s != NULL && strpbrk(s, ",;=") == NULL &&
         strlen(s) < QUANTAL_NAME_MAX;
}

quantal_status
qtl_metadata_format(char *buf, size_t size, size_t n,
                    const char *const *names, const char *const *units,
                    const double *scales, const char *comment)
{
  size_t used, i;
  int k;
  k = snprintf(buf, size, "%s", META_TAG);
  if (k < 0 || (size_t)k >= size)
    return QUANTAL_EINVAL;
  used = (size_t)k;
#define APPEND(...)                                                         \
  do {                                                                      \
    k = snprintf(buf + used, size - used, __VA_ARGS__);                     \
    if (k < 0 || (size_t)k >= size - used)                                  \
      return QUANTAL_EINVAL;                                                \
    used += (size_t)k;                                                      \
  } while (0)
  APPEND("units=");
  for (i = 0; i < n; i++) {
    if (!safe_item(units[i]))
      return QUANTAL_EINVAL;
    APPEND("%s%s", i ? "," : "", units[i]);
  }
  APPEND(";names=");
  for (i = 0; i < n; i++) {
    if (!safe_item(names[i]))
      return QUANTAL_EINVAL;
    APPEND("%s%s", i ? "," : "", names[i]);
  }
  APPEND(";");
  if (scales != NULL) {
    APPEND("scales=");
    for (i = 0; i < n; i++)
      APPEND("%s%.17g", i ? "," : "", scales[i]);
    APPEND(";");
  }
  if (comment != NULL)
    APPEND(" comment=%s", comment);
#undef APPEND
  return QUANTAL_OK;
}
