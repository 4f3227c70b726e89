/* text.c - plain-text (ASCII export) recordings. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Amplifier software exports columns of numbers, one column per channel,
 * separated by blanks, tabs, commas or semicolons, sometimes under a header
 * row such as "Vm (mV)  I (pA)". Text files are small next to binary ones
 * (a 10 min 20 kHz export is already ~100 MB), so the whole file is parsed
 * at open into memory and blocks are served from there. */

typedef struct text_ctx {
  double *data; /* frames * n_channels, interleaved */
  size_t n_channels;
} text_ctx;

static quantal_status
text_read(void *vctx, uint64_t first, size_t n, double *out,
          quantal_diag *diag)
{
  text_ctx *c = vctx;
  (void)diag;
  memcpy(out, c->data + first * c->n_channels,
         n * c->n_channels * sizeof *out);
  return QUANTAL_OK;
}

static void
text_close(void *vctx)
{
  text_ctx *c = vctx;
  if (c == NULL)
    return;
  free(c->data);
  free(c);
}

static const qtl_backend_ops text_ops = {text_read, text_close, NULL, NULL,
                                         NULL};

static int
is_sep(int ch)
{
  return ch == ' ' || ch == '\t' || ch == ',' || ch == ';' || ch == '\r';
}

/* Split line in place into at most max fields; returns the count (which may
 * exceed max, meaning more fields than stored). */
static size_t
split_fields(char *line, char **fields, size_t max)
{
  size_t k = 0;
  char *p = line;
  for (;;) {
    while (*p && is_sep((unsigned char)*p))
      p++;
    if (*p == '\0')
      break;
    if (k < max)
      fields[k] = p;
    k++;
    while (*p && !is_sep((unsigned char)*p))
      p++;
    if (*p == '\0')
      break;
    *p++ = '\0';
  }
  return k;
}

/* A header row may hold names with blanks ("Vm (mV)"): when it has tabs,
 * commas or semicolons, only those separate fields, and blanks around a
 * field are trimmed. */
static size_t
split_header(char *line, char **fields, size_t max)
{
  size_t k = 0;
  char *p = line;
  if (strpbrk(line, "\t,;") == NULL) {
    /* Blank-separated: "(unit)" joins the name before it. */
    size_t n = split_fields(line, fields, max), i;
    for (i = 0; i < n && i < max; i++) {
      if (k > 0 && (fields[i][0] == '(' || fields[i][0] == '[')) {
        char *prev = fields[k - 1];
        size_t l = strlen(prev);
        while (prev + l < fields[i])
          prev[l++] = ' ';
        continue;
      }
      fields[k++] = fields[i];
    }
    return n > max ? n : k;
  }
  for (;;) {
    char *end = p + strcspn(p, "\t,;"), *last = end;
    int more = *end != '\0';
    while (*p == ' ')
      p++;
    while (last > p && (last[-1] == ' ' || last[-1] == '\r'))
      last--;
    *last = '\0';
    if (k < max)
      fields[k] = p;
    k++;
    if (!more)
      break;
    p = end + 1;
  }
  return k;
}

static int
parse_number(const char *s, double *v)
{
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  return end != s && *end == '\0';
}

/* Does the line start with a number (a data row rather than a header)? */
static int
looks_numeric(const char *line)
{
  char *end;
  while (*line && is_sep((unsigned char)*line))
    line++;
  (void)strtod(line, &end);
  return end != line;
}

/* "Vm (mV)" or "Vm[mV]" -> name "Vm", unit "mV". */
static void
set_header(quantal_channel_info *ch, const char *field)
{
  const char *open = strpbrk(field, "([");
  if (open != NULL) {
    const char *close = strpbrk(open, ")]");
    size_t nl = (size_t)(open - field), ul;
    if (close != NULL && close > open + 1) {
      ul = (size_t)(close - open - 1);
      if (ul < QUANTAL_UNIT_MAX) {
        memcpy(ch->unit, open + 1, ul);
        ch->unit[ul] = '\0';
        ch->unit_source = QUANTAL_UNIT_FILE;
      }
      while (nl > 0 && field[nl - 1] == ' ')
        nl--;
      if (nl >= QUANTAL_NAME_MAX)
        nl = QUANTAL_NAME_MAX - 1;
      if (nl > 0) {
        memcpy(ch->name, field, nl);
        ch->name[nl] = '\0';
      }
      return;
    }
  }
  qtl_strlcpy(ch->name, field, QUANTAL_NAME_MAX);
}

quantal_status
qtl_text_open(quantal_recording *rec, double rate_hz, quantal_diag *diag)
{
  FILE *f;
  char *line = NULL, *fields[QUANTAL_MAX_CHANNELS];
  size_t cap = 0, nc = 0, frames = 0, alloc = 0, lineno = 0, i;
  ssize_t len;
  double *data = NULL;
  text_ctx *c;
  quantal_status st = QUANTAL_OK;
  char header[QUANTAL_MAX_CHANNELS][QUANTAL_NAME_MAX];
  int have_header = 0;

  if (!(rate_hz > 0.0) || !isfinite(rate_hz))
    return qtl_fail(diag, QUANTAL_EINVAL, rec->path, -1, -1,
                    "a plain-text recording needs its sample rate (--rate)");
  f = fopen(rec->path, "r");
  if (f == NULL)
    return qtl_fail(diag, QUANTAL_EIO, rec->path, -1, -1, "%s",
                    strerror(errno));
  while ((len = getline(&line, &cap, f)) >= 0) {
    size_t k;
    lineno++;
    if ((size_t)len != strlen(line)) {
      st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "line %zu contains a NUL byte: not a text table",
                    lineno);
      break;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    {
      char *p = line;
      while (*p && is_sep((unsigned char)*p))
        p++;
      if (*p == '\0' || *p == '#' || *p == '%')
        continue;
    }
    if (nc == 0 && !looks_numeric(line))
      k = split_header(line, fields, QUANTAL_MAX_CHANNELS);
    else
      k = split_fields(line, fields, QUANTAL_MAX_CHANNELS);
    if (k > QUANTAL_MAX_CHANNELS) {
      st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "line %zu has %zu columns (at most %d supported)", lineno,
                    k, QUANTAL_MAX_CHANNELS);
      break;
    }
    if (nc == 0) {
      double v;
      nc = k;
      if (!parse_number(fields[0], &v)) {
        /* A header row names the channels. */
        for (i = 0; i < k; i++)
          qtl_strlcpy(header[i], fields[i], QUANTAL_NAME_MAX);
        have_header = 1;
        continue;
      }
    }
    if (k != nc) {
      st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, (long long)frames,
                    "line %zu has %zu column%s, expected %zu", lineno, k,
                    k == 1 ? "" : "s", nc);
      break;
    }
    if (frames == alloc) {
      size_t na = alloc ? 2 * alloc : 4096;
      double *nd = realloc(data, na * nc * sizeof *nd);
      if (nd == NULL) {
        st = qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                      "out of memory at line %zu", lineno);
        break;
      }
      data = nd;
      alloc = na;
    }
    for (i = 0; i < k; i++)
      if (!parse_number(fields[i], &data[frames * nc + i])) {
        st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, (long)i,
                      (long long)frames,
                      "line %zu, column %zu: '%.40s' is not a number", lineno,
                      i + 1, fields[i]);
        break;
      }
    if (st != QUANTAL_OK)
      break;
    frames++;
  }
  if (st == QUANTAL_OK && ferror(f))
    st = qtl_fail(diag, QUANTAL_EIO, rec->path, -1, -1, "read error: %s",
                  strerror(errno));
  fclose(f);
  free(line);
  if (st == QUANTAL_OK && frames == 0)
    st = qtl_fail(diag, QUANTAL_ENODATA, rec->path, -1, -1,
                  "the text file holds no rows of numbers");
  if (st != QUANTAL_OK) {
    free(data);
    return st;
  }
  c = calloc(1, sizeof *c);
  if (c == NULL) {
    free(data);
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1, "out of memory");
  }
  c->data = data;
  c->n_channels = nc;
  rec->ctx = c;
  rec->ops = &text_ops;
  rec->info.frames = frames;
  rec->info.rate_hz = rate_hz;
  qtl_strlcpy(rec->info.format, "text", sizeof rec->info.format);
  qtl_strlcpy(rec->info.encoding, "text", sizeof rec->info.encoding);
  st = qtl_recording_alloc_layout(rec, nc, diag);
  if (st != QUANTAL_OK)
    return st;
  if (have_header)
    for (i = 0; i < nc; i++)
      set_header(&rec->channels[i], header[i]);
  return QUANTAL_OK;
}
