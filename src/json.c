/* json.c - a small JSON reader for quantal's own result files. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* RFC 8259 JSON, read into a tree. Enough for the files quantal writes
 * (fit results read by compare and summarize): objects, arrays, strings
 * with escapes (\u escapes outside ASCII become '?'), numbers, true,
 * false, null. Depth is limited so hostile input cannot exhaust the
 * stack. */

#define MAX_DEPTH 64

struct qtl_json {
  qtl_json_type type;
  double number;
  char *string;      /* string value, or member name in an object */
  char *key;
  qtl_json **items;  /* array elements or object members */
  size_t n;
};

typedef struct parser {
  const char *s, *end;
  size_t line;
  char err[200];
} parser;

void
qtl_json_free(qtl_json *j)
{
  size_t i;
  if (j == NULL)
    return;
  for (i = 0; i < j->n; i++)
    qtl_json_free(j->items[i]);
  free(j->items);
  free(j->string);
  free(j->key);
  free(j);
}

static void
skip_ws(parser *p)
{
  while (p->s < p->end &&
         (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) {
    if (*p->s == '\n')
      p->line++;
    p->s++;
  }
}

static qtl_json *parse_value(parser *p, int depth);

static char *
parse_string(parser *p)
{
  size_t cap = 32, n = 0;
  char *out = malloc(cap);
  if (out == NULL)
    return NULL;
  p->s++; /* opening quote */
  while (p->s < p->end && *p->s != '"') {
    char c = *p->s++;
    if ((unsigned char)c < 0x20) {
      snprintf(p->err, sizeof p->err, "control character in a string");
      free(out);
      return NULL;
    }
    if (c == '\\') {
      if (p->s >= p->end)
        break;
      c = *p->s++;
      switch (c) {
      case '"': case '\\': case '/': break;
      case 'b': c = '\b'; break;
      case 'f': c = '\f'; break;
      case 'n': c = '\n'; break;
      case 'r': c = '\r'; break;
      case 't': c = '\t'; break;
      case 'u': {
        unsigned v = 0;
        int k;
        for (k = 0; k < 4; k++) {
          char h = p->s < p->end ? *p->s++ : '\0';
          v <<= 4;
          if (h >= '0' && h <= '9')
            v |= (unsigned)(h - '0');
          else if (h >= 'a' && h <= 'f')
            v |= (unsigned)(h - 'a' + 10);
          else if (h >= 'A' && h <= 'F')
            v |= (unsigned)(h - 'A' + 10);
          else {
            snprintf(p->err, sizeof p->err, "bad \\u escape");
            free(out);
            return NULL;
          }
        }
        c = v < 0x80 && v > 0 ? (char)v : '?';
        break;
      }
      default:
        snprintf(p->err, sizeof p->err, "bad escape '\\%c'", c);
        free(out);
        return NULL;
      }
    }
    if (n + 1 >= cap) {
      char *no = realloc(out, cap *= 2);
      if (no == NULL) {
        free(out);
        return NULL;
      }
      out = no;
    }
    out[n++] = c;
  }
  if (p->s >= p->end) {
    snprintf(p->err, sizeof p->err, "unterminated string");
    free(out);
    return NULL;
  }
  p->s++; /* closing quote */
  out[n] = '\0';
  return out;
}

static int
push(qtl_json *j, qtl_json *item, size_t *cap)
{
  if (j->n == *cap) {
    size_t nc = *cap ? 2 * *cap : 8;
    qtl_json **ni = realloc(j->items, nc * sizeof *ni);
    if (ni == NULL)
      return -1;
    j->items = ni;
    *cap = nc;
  }
  j->items[j->n++] = item;
  return 0;
}

static qtl_json *
parse_container(parser *p, int depth, int object)
{
  qtl_json *j = calloc(1, sizeof *j);
  size_t cap = 0;
  char close = object ? '}' : ']';
  if (j == NULL)
    return NULL;
  j->type = object ? QTL_JSON_OBJECT : QTL_JSON_ARRAY;
  p->s++;
  skip_ws(p);
  if (p->s < p->end && *p->s == close) {
    p->s++;
    return j;
  }
  for (;;) {
    char *key = NULL;
    qtl_json *v;
    skip_ws(p);
    if (object) {
      if (p->s >= p->end || *p->s != '"') {
        snprintf(p->err, sizeof p->err, "expected a member name");
        qtl_json_free(j);
        return NULL;
      }
      if ((key = parse_string(p)) == NULL) {
        qtl_json_free(j);
        return NULL;
      }
      skip_ws(p);
      if (p->s >= p->end || *p->s != ':') {
        snprintf(p->err, sizeof p->err, "expected ':' after \"%.40s\"",
                 key);
        free(key);
        qtl_json_free(j);
        return NULL;
      }
      p->s++;
    }
    v = parse_value(p, depth + 1);
    if (v == NULL) {
      free(key);
      qtl_json_free(j);
      return NULL;
    }
    v->key = key;
    if (push(j, v, &cap) != 0) {
      qtl_json_free(v);
      qtl_json_free(j);
      return NULL;
    }
    skip_ws(p);
    if (p->s < p->end && *p->s == ',') {
      p->s++;
      continue;
    }
    if (p->s < p->end && *p->s == close) {
      p->s++;
      return j;
    }
    snprintf(p->err, sizeof p->err, "expected ',' or '%c'", close);
    qtl_json_free(j);
    return NULL;
  }
}

static qtl_json *
parse_value(parser *p, int depth)
{
  qtl_json *j;
  skip_ws(p);
  if (depth > MAX_DEPTH) {
    snprintf(p->err, sizeof p->err, "nested more than %d deep", MAX_DEPTH);
    return NULL;
  }
  if (p->s >= p->end) {
    snprintf(p->err, sizeof p->err, "unexpected end of file");
    return NULL;
  }
  if (*p->s == '{' || *p->s == '[')
    return parse_container(p, depth, *p->s == '{');
  j = calloc(1, sizeof *j);
  if (j == NULL)
    return NULL;
  if (*p->s == '"') {
    j->type = QTL_JSON_STRING;
    if ((j->string = parse_string(p)) == NULL) {
      free(j);
      return NULL;
    }
    return j;
  }
  if ((size_t)(p->end - p->s) >= 4 && strncmp(p->s, "true", 4) == 0) {
    j->type = QTL_JSON_BOOL;
    j->number = 1.0;
    p->s += 4;
    return j;
  }
  if ((size_t)(p->end - p->s) >= 5 && strncmp(p->s, "false", 5) == 0) {
    j->type = QTL_JSON_BOOL;
    p->s += 5;
    return j;
  }
  if ((size_t)(p->end - p->s) >= 4 && strncmp(p->s, "null", 4) == 0) {
    j->type = QTL_JSON_NULL;
    j->number = NAN;
    p->s += 4;
    return j;
  }
  if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) {
    char buf[64], *e;
    size_t k = 0;
    while (p->s + k < p->end && k + 1 < sizeof buf &&
           strchr("+-0123456789.eE", p->s[k]) != NULL)
      k++;
    memcpy(buf, p->s, k);
    buf[k] = '\0';
    j->type = QTL_JSON_NUMBER;
    j->number = strtod(buf, &e);
    if (e == buf || *e != '\0') {
      snprintf(p->err, sizeof p->err, "bad number '%.30s'", buf);
      free(j);
      return NULL;
    }
    p->s += k;
    return j;
  }
  snprintf(p->err, sizeof p->err, "unexpected character '%c'",
           (*p->s >= 0x20 && *p->s < 0x7f) ? *p->s : '?');
  free(j);
  return NULL;
}

quantal_status
qtl_json_parse(const char *text, size_t len, const char *name,
               qtl_json **out, quantal_diag *diag)
{
  parser p;
  qtl_json *j;
  p.s = text;
  p.end = text + len;
  p.line = 1;
  p.err[0] = '\0';
  *out = NULL;
  j = parse_value(&p, 0);
  if (j != NULL) {
    skip_ws(&p);
    if (p.s != p.end) {
      snprintf(p.err, sizeof p.err, "text after the JSON value");
      qtl_json_free(j);
      j = NULL;
    }
  }
  if (j == NULL)
    return qtl_fail(diag, QUANTAL_EFORMAT, name, -1, -1,
                    "not valid JSON: line %zu: %s", p.line,
                    p.err[0] ? p.err : "out of memory");
  *out = j;
  return QUANTAL_OK;
}

quantal_status
qtl_json_read_file(const char *path, qtl_json **out, quantal_diag *diag)
{
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  size_t n = 0, cap = 0;
  quantal_status st;
  *out = NULL;
  if (f == NULL)
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "%s", strerror(errno));
  for (;;) {
    size_t got;
    if (n + 4096 > cap) {
      char *nb;
      cap = cap ? 2 * cap : 65536;
      if (cap > (64u << 20)) {
        fclose(f);
        free(buf);
        return qtl_fail(diag, QUANTAL_EFORMAT, path, -1, -1,
                        "larger than 64 MiB: not a quantal result file");
      }
      nb = realloc(buf, cap);
      if (nb == NULL) {
        fclose(f);
        free(buf);
        return qtl_fail(diag, QUANTAL_ENOMEM, path, -1, -1, "out of memory");
      }
      buf = nb;
    }
    got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  if (ferror(f)) {
    int e = errno;
    fclose(f);
    free(buf);
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "%s", strerror(e));
  }
  fclose(f);
  st = qtl_json_parse(buf ? buf : "", n, path, out, diag);
  free(buf);
  return st;
}

qtl_json_type
qtl_json_kind(const qtl_json *j)
{
  return j ? j->type : QTL_JSON_NONE;
}

const qtl_json *
qtl_json_get(const qtl_json *j, const char *key)
{
  size_t i;
  if (j == NULL || j->type != QTL_JSON_OBJECT)
    return NULL;
  for (i = 0; i < j->n; i++)
    if (strcmp(j->items[i]->key, key) == 0)
      return j->items[i];
  return NULL;
}

const qtl_json *
qtl_json_path(const qtl_json *j, const char *path)
{
  char key[128];
  while (j != NULL && *path != '\0') {
    size_t k = strcspn(path, ".");
    if (k >= sizeof key)
      return NULL;
    memcpy(key, path, k);
    key[k] = '\0';
    j = qtl_json_get(j, key);
    path += k;
    if (*path == '.')
      path++;
  }
  return j;
}

size_t
qtl_json_size(const qtl_json *j)
{
  return j && (j->type == QTL_JSON_ARRAY || j->type == QTL_JSON_OBJECT)
             ? j->n
             : 0;
}

const qtl_json *
qtl_json_at(const qtl_json *j, size_t i)
{
  return i < qtl_json_size(j) ? j->items[i] : NULL;
}

double
qtl_json_number(const qtl_json *j)
{
  if (j == NULL)
    return NAN;
  if (j->type == QTL_JSON_NUMBER || j->type == QTL_JSON_BOOL)
    return j->number;
  return NAN;
}

const char *
qtl_json_string(const qtl_json *j)
{
  return j && j->type == QTL_JSON_STRING ? j->string : NULL;
}

const char *
qtl_json_key(const qtl_json *j)
{
  return j ? j->key : NULL;
}
