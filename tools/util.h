/* util.h - shared helpers of the quantal program. SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_TOOLS_UTIL_H
#define QUANTAL_TOOLS_UTIL_H

#include "quantal.h"

#include <stdio.h>

/* Exit codes, documented in quantal(1). */
enum {
  QT_EXIT_OK = 0,       /* success */
  QT_EXIT_ANALYSIS = 1, /* analysis failed or data unusable */
  QT_EXIT_USAGE = 2,    /* bad command line */
  QT_EXIT_IO = 3        /* cannot read/write a file, or bad format */
};

/* The running subcommand's name, for messages ("info"). */
extern const char *qt_cmd;

/* "quantal: CMD: message" on stderr. */
void qt_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* "quantal: CMD: FILE: reason" from a library diagnostic. */
void qt_diag_error(const quantal_diag *diag, quantal_status st);
/* Exit code for a library status. */
int qt_exit_code(quantal_status st);
/* Print the usage error and the "Try 'quantal CMD --help'" hint; returns
 * QT_EXIT_USAGE. */
int qt_usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Parse a finite number for option opt within [min, max]; on failure print
 * a usage error and return -1. */
int qt_parse_double(const char *opt, const char *s, double min, double max,
                    double *v);
/* Parse an integer in [min, max] likewise. */
int qt_parse_long(const char *opt, const char *s, long min, long max,
                  long *v);

/* Options shared by every subcommand that opens recordings. */
typedef struct qt_recopts {
  double rate_hz;
  size_t n_units, n_scales;
  char *units[QUANTAL_MAX_CHANNELS];
  double scales[QUANTAL_MAX_CHANNELS];
  char units_buf[1024];
  const char *sweeps; /* --sweeps LIST, or NULL */
} qt_recopts;

enum {
  QT_OPT_RATE = 1000,
  QT_OPT_UNITS,
  QT_OPT_SCALE,
  QT_OPT_SWEEPS,
  QT_OPT_FIRST_FREE
};
/* getopt_long entries for --rate, --units, --scale, --sweeps (no
 * terminator). */
#define QT_RECORDING_LONGOPTS                                               \
  {"rate", required_argument, NULL, QT_OPT_RATE},                           \
      {"units", required_argument, NULL, QT_OPT_UNITS},                     \
      {"scale", required_argument, NULL, QT_OPT_SCALE},                     \
  {                                                                         \
    "sweeps", required_argument, NULL, QT_OPT_SWEEPS                        \
  }

/* Handle one of the recording options; returns 0, or -1 after printing a
 * usage error. */
int qt_recopts_parse(qt_recopts *ro, int opt, const char *arg);
/* The end of every subcommand's option switch: --rate/--units/--scale/
 * --sweeps
 * into ro (when not NULL), else the usage error for a missing value
 * (getopt's ':') or an unknown option. Returns 0 to go on, else the exit
 * code (the error printed). */
int qt_common_option(int opt, qt_recopts *ro, char **argv);

/* Fill library open options from ro (pointers into ro). */
quantal_open_options qt_recopts_get(const qt_recopts *ro);

/* Output that appears whole or not at all: "-" is stdout, an existing
 * device or pipe (/dev/null) is written in place, anything else is
 * written to a temporary file in the same folder and renamed by
 * qt_out_commit. SIGINT/SIGTERM remove pending temporary files. */
typedef struct qt_out {
  FILE *fp;
  char path[1024];
  char tmp[1100];
  int is_stdout;
  int is_direct; /* an existing device or pipe, written in place */
} qt_out;

int qt_out_open(qt_out *o, const char *path);
/* Flush, check for write errors, rename; prints the error and returns
 * QT_EXIT_IO on failure (and removes the temporary file). */
int qt_out_commit(qt_out *o);
void qt_out_abort(qt_out *o);
/* Track a temporary file (e.g. from the library writer) so signals remove
 * it; qt_forget_tmp when done. */
void qt_track_tmp(const char *tmp);
void qt_forget_tmp(const char *tmp);

/* Hold SIGINT/SIGTERM/SIGHUP while a temporary file is created and
 * tracked (so a signal cannot come in between), then release them. */
void qt_signals_hold(void);
void qt_signals_release(void);

/* Install SIGINT/SIGTERM handlers that unlink tracked temporaries. */
void qt_install_signal_handlers(void);

/* Flush stdout and report a write error (e.g. to /dev/full): returns
 * QT_EXIT_IO on failure, else code. */
int qt_finish_stdout(int code);

/* Split a comma-separated list in place; returns the count or -1 when it
 * has more than max items. */
int qt_split_commas(char *s, char **items, size_t max);

/* JSON string with escapes. */
void qt_json_string(FILE *fp, const char *s);
/* JSON number, or null when not finite. */
void qt_json_number(FILE *fp, double v);
/* One more member of an open JSON object: `, "key": number`. */
void qt_json_field(FILE *fp, const char *key, double v);

/* Print a provenance comment block ("# quantal VERSION ...") */
void qt_print_provenance(FILE *fp, int argc, char **argv);

#endif /* QUANTAL_TOOLS_UTIL_H */
