/* util.c - shared helpers of the quantal program. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *qt_cmd = NULL;

static void
vprefix(void)
{
  if (qt_cmd != NULL)
    fprintf(stderr, "quantal: %s: ", qt_cmd);
  else
    fprintf(stderr, "quantal: ");
}

void
qt_error(const char *fmt, ...)
{
  va_list ap;
  fflush(stdout);
  vprefix();
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int
qt_usage_error(const char *fmt, ...)
{
  va_list ap;
  vprefix();
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fprintf(stderr, "Try 'quantal %s --help' for more information.\n",
          qt_cmd ? qt_cmd : "");
  return QT_EXIT_USAGE;
}

int
qt_exit_code(quantal_status st)
{
  switch (st) {
  case QUANTAL_OK: return QT_EXIT_OK;
  case QUANTAL_EINVAL:
  case QUANTAL_ERANGE: return QT_EXIT_USAGE;
  case QUANTAL_EIO:
  case QUANTAL_EFORMAT:
  case QUANTAL_ENODATA:
  case QUANTAL_EUNSUPPORTED: return QT_EXIT_IO;
  case QUANTAL_ENOMEM:
  case QUANTAL_ENUMERIC:
  case QUANTAL_EFAILED: return QT_EXIT_ANALYSIS;
  }
  return QT_EXIT_ANALYSIS;
}

void
qt_diag_error(const quantal_diag *diag, quantal_status st)
{
  const char *reason =
      diag && diag->reason[0] ? diag->reason : quantal_status_str(st);
  if (diag && diag->file[0])
    qt_error("%s: %s", diag->file, reason);
  else
    qt_error("%s", reason);
}

int
qt_parse_double(const char *opt, const char *s, double min, double max,
                double *v)
{
  char *end;
  errno = 0;
  *v = strtod(s, &end);
  if (end == s || *end != '\0' || errno == ERANGE || !isfinite(*v)) {
    qt_usage_error("%s: '%s' is not a number", opt, s);
    return -1;
  }
  if (*v < min || *v > max) {
    qt_usage_error("%s: %s is outside [%g, %g]", opt, s, min, max);
    return -1;
  }
  return 0;
}

int
qt_parse_long(const char *opt, const char *s, long min, long max, long *v)
{
  char *end;
  errno = 0;
  *v = strtol(s, &end, 10);
  if (end == s || *end != '\0' || errno == ERANGE) {
    qt_usage_error("%s: '%s' is not a whole number", opt, s);
    return -1;
  }
  if (*v < min || *v > max) {
    qt_usage_error("%s: %s is outside [%ld, %ld]", opt, s, min, max);
    return -1;
  }
  return 0;
}

int
qt_split_commas(char *s, char **items, size_t max)
{
  size_t k = 0;
  char *p = s;
  for (;;) {
    char *comma = strchr(p, ',');
    if (k == max)
      return -1;
    items[k++] = p;
    if (comma == NULL)
      break;
    *comma = '\0';
    p = comma + 1;
  }
  return (int)k;
}

int
qt_recopts_parse(qt_recopts *ro, int opt, const char *arg)
{
  char *items[QUANTAL_MAX_CHANNELS];
  char buf[4096];
  int k, i;
  switch (opt) {
  case QT_OPT_RATE:
    return qt_parse_double("--rate", arg, 1e-3, 1e9, &ro->rate_hz);
  case QT_OPT_UNITS:
    if (strlen(arg) >= sizeof ro->units_buf) {
      qt_usage_error("--units: list too long");
      return -1;
    }
    strcpy(ro->units_buf, arg);
    k = qt_split_commas(ro->units_buf, ro->units, QUANTAL_MAX_CHANNELS);
    if (k < 0) {
      qt_usage_error("--units: more than %d channels", QUANTAL_MAX_CHANNELS);
      return -1;
    }
    for (i = 0; i < k; i++)
      if (strlen(ro->units[i]) >= QUANTAL_UNIT_MAX) {
        qt_usage_error("--units: '%s' is too long for a unit", ro->units[i]);
        return -1;
      }
    ro->n_units = (size_t)k;
    return 0;
  case QT_OPT_SCALE:
    if (strlen(arg) >= sizeof buf) {
      qt_usage_error("--scale: list too long");
      return -1;
    }
    strcpy(buf, arg);
    k = qt_split_commas(buf, items, QUANTAL_MAX_CHANNELS);
    if (k < 0) {
      qt_usage_error("--scale: more than %d channels", QUANTAL_MAX_CHANNELS);
      return -1;
    }
    for (i = 0; i < k; i++) {
      if (items[i][0] == '\0') {
        ro->scales[i] = 0.0; /* keep the file's scale */
        continue;
      }
      if (qt_parse_double("--scale", items[i], -1e300, 1e300,
                          &ro->scales[i]) != 0)
        return -1;
      if (ro->scales[i] == 0.0) {
        qt_usage_error("--scale: a scale of 0 would erase the signal");
        return -1;
      }
    }
    ro->n_scales = (size_t)k;
    return 0;
  case QT_OPT_SWEEPS:
    /* Checked against the recording when it is opened. */
    if (arg[0] == '\0') {
      qt_usage_error("--sweeps: empty list");
      return -1;
    }
    ro->sweeps = arg;
    return 0;
  default:
    return -1;
  }
}

int
qt_common_option(int opt, qt_recopts *ro, char **argv)
{
  if (ro != NULL &&
      (opt == QT_OPT_RATE || opt == QT_OPT_UNITS || opt == QT_OPT_SCALE ||
       opt == QT_OPT_SWEEPS))
    return qt_recopts_parse(ro, opt, optarg) != 0 ? QT_EXIT_USAGE : 0;
  if (opt == ':')
    return qt_usage_error("option '%s' needs a value", argv[optind - 1]);
  return qt_usage_error("unknown option '%s'", argv[optind - 1]);
}

quantal_open_options
qt_recopts_get(const qt_recopts *ro)
{
  quantal_open_options o = quantal_open_options_default();
  o.rate_hz = ro->rate_hz;
  o.n_units = ro->n_units;
  o.units = (const char *const *)ro->units;
  o.n_scales = ro->n_scales;
  o.scales = ro->scales;
  o.sweeps = ro->sweeps;
  return o;
}

/* ---- atomic outputs and signals --------------------------------------- */

#define MAX_TRACKED 16
static char tracked[MAX_TRACKED][1100];
static volatile sig_atomic_t tracked_used[MAX_TRACKED];

void
qt_track_tmp(const char *tmp)
{
  int i;
  for (i = 0; i < MAX_TRACKED; i++)
    if (!tracked_used[i]) {
      snprintf(tracked[i], sizeof tracked[i], "%s", tmp);
      tracked_used[i] = 1;
      return;
    }
}

void
qt_forget_tmp(const char *tmp)
{
  int i;
  for (i = 0; i < MAX_TRACKED; i++)
    if (tracked_used[i] && strcmp(tracked[i], tmp) == 0)
      tracked_used[i] = 0;
}

static void
on_signal(int sig)
{
  int i;
  for (i = 0; i < MAX_TRACKED; i++)
    if (tracked_used[i])
      unlink(tracked[i]);
  signal(sig, SIG_DFL);
  raise(sig);
}

static sigset_t held_old;

void
qt_signals_hold(void)
{
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigprocmask(SIG_BLOCK, &set, &held_old);
}

void
qt_signals_release(void)
{
  sigprocmask(SIG_SETMASK, &held_old, NULL);
}

void
qt_install_signal_handlers(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
}

int
qt_out_open(qt_out *o, const char *path)
{
  const char *slash;
  size_t dirlen;
  int fd, n;
  mode_t mask;
  memset(o, 0, sizeof *o);
  if (strcmp(path, "-") == 0) {
    o->fp = stdout;
    o->is_stdout = 1;
    return 0;
  }
  snprintf(o->path, sizeof o->path, "%s", path);
  {
    /* A device or a pipe (/dev/null, a FIFO) is written directly: renaming
     * a temporary file over it would replace the device node itself. */
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
      qt_error("%s: is a directory", path);
      return QT_EXIT_IO;
    }
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
      o->fp = fopen(path, "w");
      if (o->fp == NULL) {
        qt_error("%s: %s", path, strerror(errno));
        return QT_EXIT_IO;
      }
      o->is_direct = 1;
      return 0;
    }
  }
  slash = strrchr(path, '/');
  dirlen = slash ? (size_t)(slash - path + 1) : 0;
  n = snprintf(o->tmp, sizeof o->tmp, "%.*s.%s.tmpXXXXXX", (int)dirlen, path,
               slash ? slash + 1 : path);
  if (n < 0 || (size_t)n >= sizeof o->tmp) {
    qt_error("%s: file name too long", path);
    return QT_EXIT_IO;
  }
  /* A signal between creating the temporary file and tracking it would
   * leave it behind: hold signals until it is tracked. */
  qt_signals_hold();
  fd = mkstemp(o->tmp);
  if (fd < 0) {
    int e = errno;
    qt_signals_release();
    qt_error("%s: cannot create a file in its folder: %s", path,
             strerror(e));
    o->tmp[0] = '\0';
    return QT_EXIT_IO;
  }
  qt_track_tmp(o->tmp);
  qt_signals_release();
  mask = umask(0);
  umask(mask);
  (void)fchmod(fd, 0666 & ~mask);
  o->fp = fdopen(fd, "w");
  if (o->fp == NULL) {
    qt_error("%s: %s", path, strerror(errno));
    close(fd);
    qt_out_abort(o);
    return QT_EXIT_IO;
  }
  return 0;
}

void
qt_out_abort(qt_out *o)
{
  if (o->is_stdout)
    return;
  if (o->is_direct) {
    if (o->fp != NULL)
      fclose(o->fp);
    o->fp = NULL;
    return;
  }
  if (o->fp != NULL)
    fclose(o->fp);
  o->fp = NULL;
  if (o->tmp[0] != '\0') {
    unlink(o->tmp);
    qt_forget_tmp(o->tmp);
    o->tmp[0] = '\0';
  }
}

int
qt_out_commit(qt_out *o)
{
  int failed;
  if (o->is_stdout) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
      qt_error("write error: %s", strerror(errno ? errno : EIO));
      return QT_EXIT_IO;
    }
    return 0;
  }
  if (o->is_direct) {
    failed = fflush(o->fp) != 0 || ferror(o->fp);
    if (fclose(o->fp) != 0)
      failed = 1;
    o->fp = NULL;
    if (failed) {
      qt_error("%s: write error: %s", o->path, strerror(errno));
      return QT_EXIT_IO;
    }
    return 0;
  }
  failed = fflush(o->fp) != 0 || ferror(o->fp);
  if (!failed && fsync(fileno(o->fp)) != 0 && errno != EINVAL)
    failed = 1;
  if (failed) {
    qt_error("%s: write error: %s", o->path, strerror(errno));
    qt_out_abort(o);
    return QT_EXIT_IO;
  }
  if (fclose(o->fp) != 0) {
    o->fp = NULL;
    qt_error("%s: write error: %s", o->path, strerror(errno));
    qt_out_abort(o);
    return QT_EXIT_IO;
  }
  o->fp = NULL;
  if (rename(o->tmp, o->path) != 0) {
    qt_error("%s: cannot rename into place: %s", o->path, strerror(errno));
    qt_out_abort(o);
    return QT_EXIT_IO;
  }
  qt_forget_tmp(o->tmp);
  o->tmp[0] = '\0';
  return 0;
}

int
qt_finish_stdout(int code)
{
  if (fflush(stdout) != 0 || ferror(stdout)) {
    int e = errno;
    qt_error("write error: %s", strerror(e ? e : EIO));
    return QT_EXIT_IO;
  }
  return code;
}

void
qt_json_string(FILE *fp, const char *s)
{
  fputc('"', fp);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(fp, "\\%c", c);
    else if (c == '\n')
      fputs("\\n", fp);
    else if (c == '\t')
      fputs("\\t", fp);
    else if (c < 0x20)
      fprintf(fp, "\\u%04x", c);
    else
      fputc(c, fp);
  }
  fputc('"', fp);
}

void
qt_json_number(FILE *fp, double v)
{
  /* The shortest of 15 or 17 significant digits that reads back as the
   * same double: scripts comparing log-likelihoods to 1e-6 need all of
   * them, while 0.1 stays 0.1. */
  if (isfinite(v)) {
    char b[40];
    snprintf(b, sizeof b, "%.15g", v);
    if (strtod(b, NULL) != v)
      snprintf(b, sizeof b, "%.17g", v);
    fputs(b, fp);
  } else
    fputs("null", fp);
}

void
qt_json_field(FILE *fp, const char *key, double v)
{
  fprintf(fp, ", \"%s\": ", key);
  qt_json_number(fp, v);
}

void
qt_print_provenance(FILE *fp, int argc, char **argv)
{
  int i;
  fprintf(fp, "# quantal %s\n# command:", quantal_version());
  for (i = 0; i < argc; i++)
    fprintf(fp, " %s", argv[i]);
  fputc('\n', fp);
}
