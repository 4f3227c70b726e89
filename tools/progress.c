/* progress.c - a progress bar with ETA on a terminal's stderr. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BAR_WIDTH 30

static double
now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void
qt_progress_begin(qt_progress *p, const char *label, uint64_t total,
                  int quiet)
{
  const char *term = getenv("TERM");
  memset(p, 0, sizeof *p);
  p->label = label ? label : "";
  p->total = total;
  p->active = !quiet && total > 0 && isatty(STDERR_FILENO) &&
              !(term != NULL && strcmp(term, "dumb") == 0);
  p->t_start = p->t_last = now_s();
}

static void
fmt_time(char *buf, size_t size, double s)
{
  long t = s < 0 ? 0 : (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, size, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, size, "%ld:%02ld", t / 60, t % 60);
}

void
qt_progress_update(qt_progress *p, uint64_t done)
{
  double t, frac, elapsed;
  char bar[BAR_WIDTH + 1], eta[32];
  int i, fill;
  if (!p->active)
    return;
  t = now_s();
  if (p->drawn && t - p->t_last < 0.1 && done < p->total)
    return;
  /* Stay silent for the first half second: short jobs draw nothing. */
  if (!p->drawn && t - p->t_start < 0.5)
    return;
  p->t_last = t;
  frac = done >= p->total ? 1.0 : (double)done / (double)p->total;
  fill = (int)(frac * BAR_WIDTH);
  for (i = 0; i < BAR_WIDTH; i++)
    bar[i] = i < fill ? '#' : '.';
  bar[BAR_WIDTH] = '\0';
  elapsed = t - p->t_start;
  /* Remaining time at the mean rate so far. */
  if (frac > 0.0)
    fmt_time(eta, sizeof eta, elapsed * (1.0 - frac) / frac);
  else
    snprintf(eta, sizeof eta, "?");
  fprintf(stderr, "\r%s [%s] %3d%% ETA %s\033[K", p->label, bar,
          (int)(100.0 * frac), eta);
  fflush(stderr);
  p->drawn = 1;
}

void
qt_progress_end(qt_progress *p)
{
  if (p->active && p->drawn) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
  }
  p->active = 0;
}
