/* amplitudes.h - loading amplitude tables for fit and compare. SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_TOOLS_AMPLITUDES_H
#define QUANTAL_TOOLS_AMPLITUDES_H

#include "quantal.h"

/* One column of amplitudes from a table. */
typedef struct qt_amplitudes {
  double *x;
  size_t n;
  char column[64];
  char unit[QUANTAL_UNIT_MAX]; /* suffix of amplitude_<unit>, or "" */
  double *sham;   /* n_sham values, 2 per row (qt_shams_read); NaN: none */
  size_t n_sham;
} qt_amplitudes;

/* Load column (NULL: the first column named amplitude_<unit>) of the
 * table at path ("-" = stdin). Every value must be a finite number:
 * otherwise the message names the row. Returns 0 or an exit code after
 * printing the error. */
int qt_amplitudes_load(const char *path, const char *column,
                       qt_amplitudes *a);
void qt_amplitudes_free(qt_amplitudes *a);

/* The shams of table t (read from name) for amplitudes in unit, unless
 * one of them is column amp_col itself: sham_<unit> and
 * sham_after_<unit>, quantal evoked's sham windows before each stimulus
 * and after its response (simulate --amplitudes-only writes the first).
 * *sham receives 2 per row, row i at [2 i] and [2 i + 1], NaN where a
 * cell is nan or empty or the column is missing; NULL when neither
 * column exists. Other text is an error naming the row. Returns 0 or an
 * exit code after printing the error. */
int qt_shams_read(const quantal_table *t, const char *name, const char *unit,
                  long amp_col, double **sham);

#endif
