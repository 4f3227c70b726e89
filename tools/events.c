/* events.c - event tables shared by detect and evoked. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "events.h"

#include <math.h>

static void
num(FILE *fp, double v, const char *sep)
{
  if (isfinite(v))
    fprintf(fp, "%.9g%s", v, sep);
  else
    fprintf(fp, "nan%s", sep);
}

void
qt_event_tsv_header(FILE *fp, const char *u)
{
  fprintf(fp,
          "onset_s\tpeak_s\tamplitude_%s\tbaseline_%s\trise_10_90_ms\t"
          "decay_tau_ms\thalf_width_ms\tarea_%s_ms\tcriterion\toverlap\n",
          u, u, u);
}

void
qt_event_tsv_row(FILE *fp, const quantal_event *ev)
{
  fprintf(fp, "%.6f\t%.6f\t", ev->onset_s, ev->peak_s);
  num(fp, ev->amplitude, "\t");
  num(fp, ev->baseline, "\t");
  num(fp, ev->rise_10_90_s * 1e3, "\t");
  num(fp, ev->decay_tau_s * 1e3, "\t");
  num(fp, ev->half_width_s * 1e3, "\t");
  num(fp, ev->area * 1e3, "\t");
  fprintf(fp, "%.4f\t%d\n", ev->criterion, ev->overlap);
}
