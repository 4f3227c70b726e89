/* main.c - the quantal program: dispatch to subcommands. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "cmds.h"
#include "util.h"

#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <string.h>

struct command {
  const char *name;
  int (*run)(int, char **);
  const char *summary;
};

static const struct command commands[] = {
    {"info", cmd_info, "describe recordings: format, channels, units, noise"},
    {"summarize", cmd_summarize, "one table of many recordings' results"},
    /* command: simulate */
    {"simulate", cmd_simulate, "simulate release and response, with truth"},
    /* command: detect */
    {"detect", cmd_detect, "find and measure spontaneous events (minis)"},
    /* command: evoked */
    {"evoked", cmd_evoked, "per-stimulus response amplitudes, failures"},
    /* command: fit */
    {"fit", cmd_fit, "quantal parameters by maximum likelihood, with CIs"},
    /* command: compare */
    {"compare", cmd_compare, "check results against the simulator and truth"},
    /* command: plot */
    {"plot", cmd_plot, "figures of events, responses, fits (PNG/SVG/PDF)"},
    {"report", cmd_report, "run the pipeline, write an HTML report"},
    /* command: formats */
    {"convert", cmd_convert, "write a recording as WAV or FLAC, units kept"},
};

static void
usage(FILE *fp)
{
  size_t i;
  fprintf(fp, "Usage: quantal COMMAND [OPTION]... [FILE]...\n"
              "Statistics of synaptic transmission: events, quantal "
              "parameters, simulation.\n\nCommands:\n");
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(fp, "\nOptions:\n"
              "  -h, --help     show this help and exit\n"
              "  -V, --version  show the version and exit\n\n"
              "'quantal COMMAND --help' describes a command; 'man quantal' "
              "the exit codes.\n");
}

int
main(int argc, char **argv)
{
  size_t i;
  /* GSL aborts on error by default; the library checks every status. */
  gsl_set_error_handler_off();
  qt_install_signal_handlers();
  if (argc < 2) {
    usage(stderr);
    return QT_EXIT_USAGE;
  }
  if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return qt_finish_stdout(QT_EXIT_OK);
  }
  if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
    printf("quantal %s\n", quantal_version());
    return qt_finish_stdout(QT_EXIT_OK);
  }
  for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0) {
      qt_cmd = commands[i].name;
      return commands[i].run(argc - 1, argv + 1);
    }
  fprintf(stderr, "quantal: '%s' is not a quantal command\n", argv[1]);
  fprintf(stderr, "Try 'quantal --help' for the list of commands.\n");
  return QT_EXIT_USAGE;
}
