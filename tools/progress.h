/* progress.h - a progress bar with ETA on a terminal's stderr. SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_TOOLS_PROGRESS_H
#define QUANTAL_TOOLS_PROGRESS_H

#include <stdint.h>

/* A bar is drawn only when stderr is a terminal (and TERM is not "dumb")
 * and quiet is 0; otherwise every call is a no-op, so nothing of it ever
 * reaches stdout, a file or a pipe. Redrawn at most ten times a second. */
typedef struct qt_progress {
  int active;
  const char *label;
  uint64_t total;
  double t_start, t_last;
  int drawn;
} qt_progress;

void qt_progress_begin(qt_progress *p, const char *label, uint64_t total,
                       int quiet);
/* done of total units finished. */
void qt_progress_update(qt_progress *p, uint64_t done);
/* Erase the bar (the line is left empty for the next message). */
void qt_progress_end(qt_progress *p);

#endif
