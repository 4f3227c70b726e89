/* table.c - reading TSV tables (event, amplitude and truth tables). SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct quantal_table {
  size_t rows, cols;
  char **names;     /* cols */
  char **cells;     /* rows * cols, text */
  double *values;   /* cols * rows, column-major numeric view */
  char **comments;
  size_t n_comments;
};

void
quantal_table_free(quantal_table *t)
{
  size_t i;
  if (t == NULL)
    return;
  for (i = 0; i < t->cols; i++)
    free(t->names ? t->names[i] : NULL);
  for (i = 0; t->cells && i < t->rows * t->cols; i++)
    free(t->cells[i]);
  for (i = 0; i < t->n_comments; i++)
    free(t->comments[i]);
  free(t->names);
  free(t->cells);
  free(t->values);
  free(t->comments);
  free(t);
}

/* Split on tabs in place; returns the field count. */
static size_t
split_tabs(char *line, char ***fields, size_t *cap)
{
  size_t k = 0;
  char *p = line;
  for (;;) {
    char *tab = strchr(p, '\t');
    if (k == *cap) {
      size_t nc = *cap ? 2 * *cap : 16;
      char **nf = realloc(*fields, nc * sizeof *nf);
      if (nf == NULL)
        return (size_t)-1;
      *fields = nf;
      *cap = nc;
    }
    (*fields)[k++] = p;
    if (tab == NULL)
      break;
    *tab = '\0';
    p = tab + 1;
  }
  return k;
}

static int
append_ptr(char ***arr, size_t *n, size_t *cap, char *s)
{
  if (*n == *cap) {
    size_t nc = *cap ? 2 * *cap : 64;
    char **na = realloc(*arr, nc * sizeof *na);
    if (na == NULL)
      return -1;
    *arr = na;
    *cap = nc;
  }
  (*arr)[(*n)++] = s;
  return 0;
}

static double
cell_value(const char *s)
{
  char *end;
  double v;
  while (*s == ' ')
    s++;
  if (*s == '\0')
    return NAN;
  v = strtod(s, &end);
  while (*end == ' ' || *end == '\r')
    end++;
  return (end != s && *end == '\0') ? v : NAN;
}

quantal_status
quantal_table_read(const char *path, quantal_table **out, quantal_diag *diag)
{
  FILE *f;
  int use_stdin = strcmp(path, "-") == 0;
  char *line = NULL, **fields = NULL;
  size_t cap = 0, fcap = 0, lineno = 0, ncells = 0, cellcap = 0,
         comcap = 0, i, j;
  ssize_t len;
  quantal_table *t;
  quantal_status st = QUANTAL_OK;
  const char *name = use_stdin ? "(standard input)" : path;

  quantal_diag_clear(diag);
  *out = NULL;
  t = calloc(1, sizeof *t);
  if (t == NULL)
    return qtl_fail(diag, QUANTAL_ENOMEM, name, -1, -1, "out of memory");
  f = use_stdin ? stdin : fopen(path, "r");
  if (f == NULL) {
    int e = errno;
    free(t);
    return qtl_fail(diag, QUANTAL_EIO, name, -1, -1, "%s", strerror(e));
  }
  while ((len = getline(&line, &cap, f)) >= 0) {
    size_t k;
    lineno++;
    if ((size_t)len != strlen(line)) {
      st = qtl_fail(diag, QUANTAL_EFORMAT, name, -1, -1,
                    "line %zu contains a NUL byte: not a text table", lineno);
      break;
    }
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = '\0';
    if (len == 0)
      continue;
    if (line[0] == '#') {
      char *c = strdup(line + 1);
      if (c == NULL ||
          append_ptr(&t->comments, &t->n_comments, &comcap, c) != 0) {
        free(c);
        st = qtl_fail(diag, QUANTAL_ENOMEM, name, -1, -1, "out of memory");
        break;
      }
      continue;
    }
    k = split_tabs(line, &fields, &fcap);
    if (k == (size_t)-1) {
      st = qtl_fail(diag, QUANTAL_ENOMEM, name, -1, -1, "out of memory");
      break;
    }
    if (t->names == NULL) {
      t->names = calloc(k, sizeof *t->names);
      if (t->names == NULL) {
        st = qtl_fail(diag, QUANTAL_ENOMEM, name, -1, -1, "out of memory");
        break;
      }
      t->cols = k;
      for (j = 0; j < k; j++)
        if ((t->names[j] = strdup(fields[j])) == NULL) {
          st = qtl_fail(diag, QUANTAL_ENOMEM, name, -1, -1, "out of memory");
          break;
        }
      if (st != QUANTAL_OK)
        break;
      continue;
    }
    if (k != t->cols) {
      st = qtl_fail(diag, QUANTAL_EFORMAT, name, -1, (long long)t->rows,
                    "line %zu has %zu field%s, the header has %zu", lineno, k,
                    k == 1 ? "" : "s", t->cols);
      break;
    }
    for (j = 0; j < k; j++) {
      char *c = strdup(fields[j]);
      if (c == NULL || append_ptr(&t->cells, &ncells, &cellcap, c) != 0) {
        free(c);
        st = qtl_fail(diag, QUANTAL_ENOMEM, name, -1, -1, "out of memory");
        break;
      }
    }
    if (st != QUANTAL_OK)
      break;
    t->rows++;
  }
  if (st == QUANTAL_OK && ferror(f))
    st = qtl_fail(diag, QUANTAL_EIO, name, -1, -1, "read error: %s",
                  strerror(errno));
  if (!use_stdin)
    fclose(f);
  free(line);
  free(fields);
  if (st == QUANTAL_OK && t->names == NULL)
    st = qtl_fail(diag, QUANTAL_ENODATA, name, -1, -1,
                  "no header row: the table is empty");
  if (st == QUANTAL_OK && t->rows > 0) {
    t->values = malloc(t->rows * t->cols * sizeof *t->values);
    if (t->values == NULL)
      st = qtl_fail(diag, QUANTAL_ENOMEM, name, -1, -1, "out of memory");
    else
      for (i = 0; i < t->rows; i++)
        for (j = 0; j < t->cols; j++)
          t->values[j * t->rows + i] = cell_value(t->cells[i * t->cols + j]);
  }
  if (st != QUANTAL_OK) {
    /* Cells of a partial last row are counted in ncells, not in rows. */
    for (i = t->rows * t->cols; i < ncells; i++)
      free(t->cells[i]);
    quantal_table_free(t);
    return st;
  }
  *out = t;
  return QUANTAL_OK;
}

size_t
quantal_table_rows(const quantal_table *t)
{
  return t->rows;
}

size_t
quantal_table_cols(const quantal_table *t)
{
  return t->cols;
}

const char *
quantal_table_colname(const quantal_table *t, size_t j)
{
  return j < t->cols ? t->names[j] : NULL;
}

long
quantal_table_find(const quantal_table *t, const char *name)
{
  size_t j;
  for (j = 0; j < t->cols; j++)
    if (strcmp(t->names[j], name) == 0)
      return (long)j;
  return -1;
}

long
quantal_table_find_prefix(const quantal_table *t, const char *prefix)
{
  size_t j, n = strlen(prefix);
  for (j = 0; j < t->cols; j++)
    if (strncmp(t->names[j], prefix, n) == 0)
      return (long)j;
  return -1;
}

const double *
quantal_table_column(const quantal_table *t, size_t j)
{
  if (j >= t->cols || t->values == NULL)
    return NULL;
  return t->values + j * t->rows;
}

const char *
quantal_table_cell(const quantal_table *t, size_t i, size_t j)
{
  if (i >= t->rows || j >= t->cols)
    return NULL;
  return t->cells[i * t->cols + j];
}

size_t
quantal_table_n_comments(const quantal_table *t)
{
  return t->n_comments;
}

const char *
quantal_table_comment(const quantal_table *t, size_t i)
{
  return i < t->n_comments ? t->comments[i] : NULL;
}
