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
} qt_amplitudes;

/* Load column (NULL: the first column named amplitude_<unit>) of the
 * table at path ("-" = stdin). Every value must be a finite number:
 * otherwise the message names the row. Returns 0 or an exit code after
 * printing the error. */
int qt_amplitudes_load(const char *path, const char *column,
                       qt_amplitudes *a);
void qt_amplitudes_free(qt_amplitudes *a);

#endif
