/* cmds.h - the subcommands of the quantal program. SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_TOOLS_CMDS_H
#define QUANTAL_TOOLS_CMDS_H

/* Each takes argv with argv[0] = the subcommand name and returns the exit
 * code. */
int cmd_info(int argc, char **argv);
int cmd_summarize(int argc, char **argv);
/* cmd: simulate */
int cmd_simulate(int argc, char **argv);
/* cmd: detect */
int cmd_detect(int argc, char **argv);
/* cmd: evoked */
int cmd_evoked(int argc, char **argv);
/* cmd: fit */
int cmd_fit(int argc, char **argv);
/* cmd: compare */
int cmd_compare(int argc, char **argv);
/* cmd: plot */
int cmd_plot(int argc, char **argv);
int cmd_report(int argc, char **argv);
/* cmd: formats */
int cmd_convert(int argc, char **argv);

#endif
