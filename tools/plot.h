/* plot.h - figures for the subcommands (quantal plot, --plot). SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_TOOLS_PLOT_H
#define QUANTAL_TOOLS_PLOT_H

#include "quantal.h"

/*
 * One call per figure kind, for `quantal plot KIND` and for any command's
 * `--plot FILE`: each reads what it needs, draws with src/plot.c into a
 * temporary file beside out_path and renames it into place (nothing
 * half-written; "-" writes to stdout and then needs qt_plot_format).
 * The format comes from out_path's extension (.png, .svg, .pdf). Each
 * returns a QT_EXIT_* code and has printed its error ("quantal: CMD: ...").
 * title may be NULL (then the input's name). Channels are 0-based.
 */

/* Settings shared by the figures (quantal plot's --width, --height,
 * --format, --quiet); the defaults are all zero. */
typedef struct qt_plot_settings {
  double width_px, height_px;  /* 0: the figure's default */
  quantal_plot_format format;  /* AUTO: from out_path */
  int quiet;                   /* no progress bar */
} qt_plot_settings;

extern qt_plot_settings qt_plot_defaults;

/* detect: the recording (opened with oo, may be NULL), the events table
 * that `quantal detect` wrote for channel ch. */
int qt_plot_detect(const char *rec_path, const quantal_open_options *oo,
                   size_t ch, const char *events_tsv, const char *out_path,
                   const char *title);

/* evoked: the recording and the table that `quantal evoked` wrote. */
int qt_plot_evoked(const char *rec_path, const quantal_open_options *oo,
                   size_t ch, const char *evoked_tsv, const char *out_path,
                   const char *title);

/* fit, from a fit already made: amplitudes (table sign), optional minis,
 * the result and the model to draw (-1: the best by AIC). unit names the
 * amplitudes' unit. */
int qt_plot_fit_result(const double *amplitudes, size_t n,
                       const double *minis, size_t n_minis,
                       const quantal_fit_result *fit, int model,
                       const char *unit, const char *out_path,
                       const char *title);

/* fit, from tables: fits the amplitude column of amps_tsv (and minis_tsv,
 * may be NULL) with quantal_fit_run's defaults plus model (-1: default
 * models, best drawn). */
int qt_plot_fit(const char *amps_tsv, const char *minis_tsv, int model,
                const char *out_path, const char *title);

/* compare, detection scoring: detected against true events; kind (may be
 * NULL) keeps truth rows of that kind only. */
int qt_plot_compare(const char *events_tsv, const char *truth_tsv,
                    double tolerance_s, const char *kind,
                    const char *out_path, const char *title);

/* compare, recovery: estimates against truth over the replicates, every
 * parameter with a true value. */
int qt_plot_recovery(const quantal_recovery_result *r, const char *unit,
                     const char *out_path, const char *title);

#endif
