/* events.h - event tables shared by detect and evoked. SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_TOOLS_EVENTS_H
#define QUANTAL_TOOLS_EVENTS_H

#include "quantal.h"

#include <stdio.h>

/* The header row of an event table, amplitudes in unit. */
void qt_event_tsv_header(FILE *fp, const char *unit);
/* One event as a row of that table. */
void qt_event_tsv_row(FILE *fp, const quantal_event *ev);

#endif
