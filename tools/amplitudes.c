/* amplitudes.c - loading amplitude tables for fit and compare. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "amplitudes.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
qt_amplitudes_free(qt_amplitudes *a)
{
  free(a->x);
  free(a->sham);
  memset(a, 0, sizeof *a);
}

int
qt_shams_read(const quantal_table *t, const char *name, const char *unit,
              long amp_col, double **sham)
{
  static const char *const pre[2] = {"sham_", "sham_after_"};
  size_t i, rows = quantal_table_rows(t);
  int h;
  *sham = NULL;
  for (h = 0; h < 2; h++) {
    char sn[160];
    long js;
    const double *sv;
    snprintf(sn, sizeof sn, "%s%s", pre[h], unit);
    js = quantal_table_find(t, sn);
    if (js < 0 || js == amp_col)
      continue;
    if (*sham == NULL) {
      *sham = malloc((2 * rows + 1) * sizeof **sham);
      if (*sham == NULL) {
        qt_error("%s: out of memory", name);
        return QT_EXIT_ANALYSIS;
      }
      for (i = 0; i < 2 * rows; i++)
        (*sham)[i] = NAN;
    }
    sv = quantal_table_column(t, (size_t)js);
    for (i = 0; i < rows; i++) {
      /* nan (or an empty cell): no sham there. */
      const char *cell = quantal_table_cell(t, i, (size_t)js);
      if (!isfinite(sv[i]) && cell[0] != '\0' &&
          strcasecmp(cell, "nan") != 0) {
        qt_error("%s: row %zu: %s is not a number ('%s')", name, i + 1, sn,
                 cell);
        free(*sham);
        *sham = NULL;
        return QT_EXIT_IO;
      }
      (*sham)[2 * i + h] = isfinite(sv[i]) ? sv[i] : NAN;
    }
  }
  return 0;
}

int
qt_amplitudes_load(const char *path, const char *column, qt_amplitudes *a)
{
  quantal_table *t;
  quantal_diag d;
  quantal_status st;
  const double *col;
  const char *name = strcmp(path, "-") == 0 ? "(standard input)" : path;
  size_t i, rows;
  long c;
  memset(a, 0, sizeof *a);
  st = quantal_table_read(path, &t, &d);
  if (st != QUANTAL_OK) {
    qt_diag_error(&d, st);
    return qt_exit_code(st);
  }
  c = column ? quantal_table_find(t, column)
             : quantal_table_find_prefix(t, "amplitude_");
  if (c < 0) {
    if (column)
      qt_error("%s: no column '%s'", name, column);
    else
      qt_error("%s: no amplitude column (amplitude_<unit>); name one with "
               "--column",
               name);
    quantal_table_free(t);
    return QT_EXIT_IO;
  }
  snprintf(a->column, sizeof a->column, "%s",
           quantal_table_colname(t, (size_t)c));
  if (strncmp(a->column, "amplitude_", 10) == 0)
    snprintf(a->unit, sizeof a->unit, "%s", a->column + 10);
  rows = quantal_table_rows(t);
  col = quantal_table_column(t, (size_t)c);
  a->x = malloc((rows + 1) * sizeof *a->x);
  if (a->x == NULL) {
    quantal_table_free(t);
    qt_error("%s: out of memory", name);
    return QT_EXIT_ANALYSIS;
  }
  for (i = 0; i < rows; i++) {
    if (!isfinite(col[i])) {
      qt_error("%s: row %zu: %s '%s' is not a finite number", name, i + 1,
               a->column, quantal_table_cell(t, i, (size_t)c));
      quantal_table_free(t);
      qt_amplitudes_free(a);
      return QT_EXIT_IO;
    }
    a->x[i] = col[i];
  }
  a->n = rows;
  {
    int code = qt_shams_read(t, name, a->unit, c, &a->sham);
    if (code != 0) {
      quantal_table_free(t);
      qt_amplitudes_free(a);
      return code;
    }
    a->n_sham = a->sham ? 2 * rows : 0;
  }
  quantal_table_free(t);
  return 0;
}
