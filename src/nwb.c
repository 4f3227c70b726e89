/* nwb.c - Neurodata Without Borders 2.x intracellular recordings (HDF5). SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

/* libhdf5 is opened on first use (dl.c): the symbols used here. */
#define NWB_H5_SYMS(X) \
  X(H5Aclose) X(H5Aexists) X(H5Aget_space) X(H5Aget_type) X(H5Aopen) \
  X(H5Aread) X(H5Dclose) X(H5Dget_space) X(H5Dget_type) X(H5Dopen2) \
  X(H5Dread) X(H5Eclear2) X(H5Eset_auto2) X(H5Ewalk2) X(H5Fopen) \
  X(H5Gget_info) X(H5Gopen2) X(H5Iget_type) X(H5Lexists) X(H5Lget_info) \
  X(H5Lget_name_by_idx) X(H5Lget_val) X(H5Oclose) X(H5Oopen) \
  X(H5P_CLS_FILE_ACCESS_ID_g) X(H5Pcreate) X(H5Pset_file_locking) \
  X(H5Sclose) X(H5Sget_simple_extent_dims) X(H5Sget_simple_extent_ndims) \
  X(H5Sget_simple_extent_npoints) X(H5T_C_S1_g) X(H5T_NATIVE_DOUBLE_g) \
  X(H5T_NATIVE_LLONG_g) X(H5Tclose) X(H5Tcopy) X(H5Tget_class) \
  X(H5Tget_cset) X(H5Tget_sign) X(H5Tget_size) X(H5Tis_variable_str) \
  X(H5Tset_cset) X(H5Tset_size) X(H5check_version) X(H5free_memory) \
  X(H5open)
QTL_DL_LIB(h5lib, NWB_H5_SYMS, QTL_HDF5_SONAME, "NWB recordings");
#define H5Aclose QTL_DL_SYM(h5lib, H5Aclose)
#define H5Aexists QTL_DL_SYM(h5lib, H5Aexists)
#define H5Aget_space QTL_DL_SYM(h5lib, H5Aget_space)
#define H5Aget_type QTL_DL_SYM(h5lib, H5Aget_type)
#define H5Aopen QTL_DL_SYM(h5lib, H5Aopen)
#define H5Aread QTL_DL_SYM(h5lib, H5Aread)
#define H5Dclose QTL_DL_SYM(h5lib, H5Dclose)
#define H5Dget_space QTL_DL_SYM(h5lib, H5Dget_space)
#define H5Dget_type QTL_DL_SYM(h5lib, H5Dget_type)
#define H5Dopen2 QTL_DL_SYM(h5lib, H5Dopen2)
#define H5Dread QTL_DL_SYM(h5lib, H5Dread)
#define H5Eclear2 QTL_DL_SYM(h5lib, H5Eclear2)
#define H5Eset_auto2 QTL_DL_SYM(h5lib, H5Eset_auto2)
#define H5Ewalk2 QTL_DL_SYM(h5lib, H5Ewalk2)
#define H5Fopen QTL_DL_SYM(h5lib, H5Fopen)
#define H5Gget_info QTL_DL_SYM(h5lib, H5Gget_info)
#define H5Gopen2 QTL_DL_SYM(h5lib, H5Gopen2)
#define H5Iget_type QTL_DL_SYM(h5lib, H5Iget_type)
#define H5Lexists QTL_DL_SYM(h5lib, H5Lexists)
#define H5Lget_info QTL_DL_SYM(h5lib, H5Lget_info)
#define H5Lget_name_by_idx QTL_DL_SYM(h5lib, H5Lget_name_by_idx)
#define H5Lget_val QTL_DL_SYM(h5lib, H5Lget_val)
#define H5Oclose QTL_DL_SYM(h5lib, H5Oclose)
#define H5Oopen QTL_DL_SYM(h5lib, H5Oopen)
#define H5P_CLS_FILE_ACCESS_ID_g QTL_DL_SYM(h5lib, H5P_CLS_FILE_ACCESS_ID_g)
#define H5Pcreate QTL_DL_SYM(h5lib, H5Pcreate)
#define H5Pset_file_locking QTL_DL_SYM(h5lib, H5Pset_file_locking)
#define H5Sclose QTL_DL_SYM(h5lib, H5Sclose)
#define H5Sget_simple_extent_dims QTL_DL_SYM(h5lib, H5Sget_simple_extent_dims)
#define H5Sget_simple_extent_ndims QTL_DL_SYM(h5lib, H5Sget_simple_extent_ndims)
#define H5Sget_simple_extent_npoints QTL_DL_SYM(h5lib, H5Sget_simple_extent_npoints)
#define H5T_C_S1_g QTL_DL_SYM(h5lib, H5T_C_S1_g)
#define H5T_NATIVE_DOUBLE_g QTL_DL_SYM(h5lib, H5T_NATIVE_DOUBLE_g)
#define H5T_NATIVE_LLONG_g QTL_DL_SYM(h5lib, H5T_NATIVE_LLONG_g)
#define H5Tclose QTL_DL_SYM(h5lib, H5Tclose)
#define H5Tcopy QTL_DL_SYM(h5lib, H5Tcopy)
#define H5Tget_class QTL_DL_SYM(h5lib, H5Tget_class)
#define H5Tget_cset QTL_DL_SYM(h5lib, H5Tget_cset)
#define H5Tget_sign QTL_DL_SYM(h5lib, H5Tget_sign)
#define H5Tget_size QTL_DL_SYM(h5lib, H5Tget_size)
#define H5Tis_variable_str QTL_DL_SYM(h5lib, H5Tis_variable_str)
#define H5Tset_cset QTL_DL_SYM(h5lib, H5Tset_cset)
#define H5Tset_size QTL_DL_SYM(h5lib, H5Tset_size)
#define H5check_version QTL_DL_SYM(h5lib, H5check_version)
#define H5free_memory QTL_DL_SYM(h5lib, H5free_memory)
#define H5open QTL_DL_SYM(h5lib, H5open)

/*
 * NWB 2.x (nwb-schema, core/nwb.base.yaml and core/nwb.icephys.yaml) keeps
 * each sweep of each electrode as one PatchClampSeries group: a
 * one-dimensional `data` dataset whose physical value is
 * data * conversion + offset in the `unit` of its attributes, a scalar
 * `starting_time` dataset with a `rate` attribute (Hz), a `sweep_number`
 * attribute (a dataset in some writers) and a soft link `electrode` to the
 * IntracellularElectrode. The responses we analyse are under /acquisition:
 * CurrentClampSeries (volts, read as mV), VoltageClampSeries (amperes, read
 * as pA), IZeroClampSeries and plain PatchClampSeries. Stimulus series are
 * not read.
 *
 * A quantal recording is frames by channels with shared sweeps, so the
 * series are laid out as a grid: channels are the electrodes (the series
 * name without its trailing number when there is no electrode link),
 * sweeps the distinct sweep numbers, and every sweep must hold exactly one
 * series of each channel, all of one length within the sweep, all at one
 * rate. Anything else is refused with the series and field named.
 *
 * libhdf5's parsers are not hardened against malformed files (its CVE list
 * is long), so, as with libbiosig, HDF5 runs in a child process: it checks
 * the layout, then sends the samples sweep by sweep down a pipe, and a
 * crash there is a message here. Some damaged files make libhdf5 loop
 * forever (the fuzzer found one), so the child also has a CPU time budget
 * for each step, generous for what the step has to do. The samples are
 * held in memory and handed out by the memory backend.
 */

#define NWB_MSG 400
#define NWB_MAX_LINKS 1000000u      /* members of /acquisition looked at */
#define NWB_MAX_SERIES 100000u      /* icephys series in one file */
#define NWB_MAX_NAME 255            /* bytes of a member name */
#define NWB_MAX_TEXT 4096           /* bytes of a fixed-length text attr */
#define NWB_MAX_SAMPLES (1ull << 28) /* all channels, 2 GiB as double */
#define NWB_MAX_RATE 1e9
/* receive(): the pipe closed early (the child died); not a real status. */
#define NWB_BROKEN ((quantal_status)99)

static const unsigned char hdf5_sig[8] = {0x89, 'H', 'D', 'F',
                                          '\r', '\n', 0x1a, '\n'};

int
qtl_nwb_magic(const char *path, const unsigned char *head, size_t n)
{
  /* The superblock is at byte 0 or, after a user block, at 512, 1024,
   * 2048, ... (HDF5 File Format Specification, "Format Signature"). */
  struct stat sb;
  uint64_t off;
  int fd, found = 0;
  if (n >= 8 && memcmp(head, hdf5_sig, 8) == 0)
    return 1;
  fd = open(path, O_RDONLY);
  if (fd < 0)
    return 0;
  if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
    for (off = 512; !found && off + 8 <= (uint64_t)sb.st_size &&
                    off <= ((uint64_t)1 << 40);
         off *= 2) {
      unsigned char b[8];
      if (pread(fd, b, 8, (off_t)off) == 8 && memcmp(b, hdf5_sig, 8) == 0)
        found = 1;
    }
  close(fd);
  return found;
}

/* ---- what the child sends --------------------------------------------- */

typedef struct nwb_head {
  int status;          /* quantal_status */
  char msg[NWB_MSG];   /* reason when status != OK */
  size_t n_channels, n_sweeps;
  uint64_t frames;
  double rate_hz;
  int integer_samples;
  char format[32];
  char encoding[32];
  char protocol[128];
} nwb_head;

typedef struct nwb_chan {
  char name[QUANTAL_NAME_MAX];
  char unit[QUANTAL_UNIT_MAX];
  double scale, offset; /* stored value -> unit */
} nwb_chan;

/* Each sweep is preceded by a status word; a failure is followed by its
 * message instead of the samples. */


/* ---- the reading child: HDF5 helpers ---------------------------------- */

/* Let the child use seconds more of CPU time (RLIMIT_CPU, counted from
 * its start), after which the kernel ends it with SIGXCPU. */
static void
cpu_budget(double seconds)
{
  struct rusage ru;
  struct rlimit rl;
  double used = 0.0, want;
  if (getrusage(RUSAGE_SELF, &ru) == 0)
    used = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  if (getrlimit(RLIMIT_CPU, &rl) != 0)
    return;
  want = ceil(used + seconds);
  if (want > 1e9)
    want = 1e9;
  if (rl.rlim_max != RLIM_INFINITY && want > (double)rl.rlim_max)
    want = (double)rl.rlim_max;
  rl.rlim_cur = (rlim_t)want;
  setrlimit(RLIMIT_CPU, &rl);
}

/* One icephys series under /acquisition. */
typedef struct nwb_series {
  char name[NWB_MAX_NAME + 1];
  char channel[QUANTAL_NAME_MAX]; /* electrode name or name stem */
  char unit[QUANTAL_UNIT_MAX];    /* quantal's unit (mV, pA, or the file's) */
  double factor;                  /* the file's unit -> unit */
  double conversion, offset;      /* attributes of data */
  double rate_hz;
  uint64_t n;
  long long sweep;                /* -1: no sweep_number */
  int is_int;
  char encoding[16];
  char stim[128];
  hid_t data;                     /* the open data dataset */
} nwb_series;

typedef struct nwb_child {
  char msg[NWB_MSG];
  nwb_series *s;
  size_t n, cap;
} nwb_child;

/* Keep a reason (cut at NWB_MSG bytes: names can be long) and return
 * the status. */
static quantal_status child_fail(nwb_child *cx, quantal_status code,
                                 const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

static quantal_status
child_fail(nwb_child *cx, quantal_status code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cx->msg, sizeof cx->msg, fmt, ap);
  va_end(ap);
  return code;
}

#define FAIL(code, ...) child_fail(cx, code, __VA_ARGS__)

/* The innermost message on HDF5's error stack (the most specific one),
 * then the stack is cleared. */
static herr_t
first_error(unsigned n, const H5E_error2_t *err, void *data)
{
  char *buf = data;
  if (n == 0 && err != NULL && err->desc != NULL)
    snprintf(buf, 160, "%s", err->desc);
  return 0;
}

static const char *
h5_reason(char *buf)
{
  buf[0] = '\0';
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, first_error, buf);
  H5Eclear2(H5E_DEFAULT);
  if (buf[0] == '\0')
    snprintf(buf, 160, "no reason given");
  return buf;
}

/* Text from the file, made safe for TSV and messages: printable ASCII,
 * the UTF-8 micro sign as 'u', anything else '?'; blanks trimmed. */
static void
clean_text(char *dst, size_t size, const char *src, size_t len)
{
  size_t i = 0, k = 0;
  while (len > 0 && (src[len - 1] == ' ' || src[len - 1] == '\0'))
    len--;
  while (i < len && src[i] == ' ')
    i++;
  for (; i < len && k + 1 < size; i++) {
    unsigned char ch = (unsigned char)src[i];
    if (ch == '\0')
      break;
    if (ch == 0xc2 && i + 1 < len && (unsigned char)src[i + 1] == 0xb5) {
      ch = 'u';
      i++;
    } else if (ch < 0x20 || ch >= 0x7f)
      ch = '?';
    dst[k++] = (char)ch;
  }
  dst[k] = '\0';
}

/* A text attribute of obj: 1 read, 0 absent, -1 not one text value. */
static int
attr_text(hid_t obj, const char *name, char *buf, size_t size)
{
  hid_t a, t = -1, sp = -1, m = -1;
  int r = -1;
  htri_t ex = H5Aexists(obj, name);
  buf[0] = '\0';
  if (ex == 0)
    return 0;
  if (ex < 0 || (a = H5Aopen(obj, name, H5P_DEFAULT)) < 0)
    return -1;
  t = H5Aget_type(a);
  sp = H5Aget_space(a);
  if (t < 0 || sp < 0 || H5Tget_class(t) != H5T_STRING ||
      H5Sget_simple_extent_npoints(sp) != 1)
    goto out;
  if (H5Tis_variable_str(t) > 0) {
    char *p = NULL;
    m = H5Tcopy(H5T_C_S1);
    if (m < 0 || H5Tset_size(m, H5T_VARIABLE) < 0 ||
        H5Tset_cset(m, H5Tget_cset(t)) < 0 || H5Aread(a, m, &p) < 0)
      goto out;
    if (p != NULL)
      clean_text(buf, size, p, strnlen(p, NWB_MAX_TEXT));
    H5free_memory(p);
    r = 1;
  } else {
    size_t len = H5Tget_size(t);
    char *p;
    if (len == 0 || len > NWB_MAX_TEXT || (p = calloc(1, len + 1)) == NULL)
      goto out;
    if (H5Aread(a, t, p) >= 0) {
      clean_text(buf, size, p, len);
      r = 1;
    }
    free(p);
  }
out:
  if (m >= 0)
    H5Tclose(m);
  if (t >= 0)
    H5Tclose(t);
  if (sp >= 0)
    H5Sclose(sp);
  H5Aclose(a);
  return r;
}

/* One number of class cls (H5T_INTEGER, or H5T_FLOAT meaning either) from
 * an attribute (is_attr) or a dataset of obj, converted to memtype:
 * 1 read, 0 absent, -1 not one number. */
static int
read_number(hid_t obj, const char *name, int is_attr, H5T_class_t cls,
            hid_t memtype, void *out)
{
  hid_t o, t, sp;
  H5T_class_t c;
  int r = -1;
  if (is_attr) {
    htri_t ex = H5Aexists(obj, name);
    if (ex == 0)
      return 0;
    if (ex < 0 || (o = H5Aopen(obj, name, H5P_DEFAULT)) < 0)
      return -1;
    t = H5Aget_type(o);
    sp = H5Aget_space(o);
  } else {
    H5L_info_t li;
    htri_t ex = H5Lexists(obj, name, H5P_DEFAULT);
    if (ex == 0)
      return 0;
    if (ex < 0 || H5Lget_info(obj, name, &li, H5P_DEFAULT) < 0 ||
        (li.type != H5L_TYPE_HARD && li.type != H5L_TYPE_SOFT) ||
        (o = H5Dopen2(obj, name, H5P_DEFAULT)) < 0)
      return -1;
    t = H5Dget_type(o);
    sp = H5Dget_space(o);
  }
  c = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
  if (sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1 &&
      (c == cls || (cls == H5T_FLOAT && c == H5T_INTEGER)))
    r = (is_attr ? H5Aread(o, memtype, out)
                 : H5Dread(o, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out)) <
                0
            ? -1
            : 1;
  if (t >= 0)
    H5Tclose(t);
  if (sp >= 0)
    H5Sclose(sp);
  if (is_attr)
    H5Aclose(o);
  else
    H5Dclose(o);
  return r;
}

/* The kind of link name in obj: 1 hard or soft (followed), 0 none, -1
 * external or user-defined (never followed: it would open other files). */
static int
link_kind(hid_t obj, const char *name, H5L_info_t *li)
{
  htri_t ex = H5Lexists(obj, name, H5P_DEFAULT);
  if (ex == 0)
    return 0;
  if (ex < 0 || H5Lget_info(obj, name, li, H5P_DEFAULT) < 0)
    return -1;
  return li->type == H5L_TYPE_HARD || li->type == H5L_TYPE_SOFT ? 1 : -1;
}

/* NWB's SI units to the ones quantal analyses in. */
static void
map_unit(const char *file_unit, char *unit, double *factor)
{
  static const struct {
    const char *name, *unit;
    double factor;
  } map[] = {{"volts", "mV", 1e3},      {"volt", "mV", 1e3},
             {"V", "mV", 1e3},          {"millivolts", "mV", 1.0},
             {"mV", "mV", 1.0},         {"amperes", "pA", 1e12},
             {"ampere", "pA", 1e12},    {"amps", "pA", 1e12},
             {"A", "pA", 1e12},         {"picoamperes", "pA", 1.0},
             {"pA", "pA", 1.0}};
  size_t i;
  for (i = 0; i < sizeof map / sizeof map[0]; i++)
    if (strcasecmp(file_unit, map[i].name) == 0 &&
        (strlen(map[i].name) > 2 || strcmp(file_unit, map[i].name) == 0)) {
      qtl_strlcpy(unit, map[i].unit, QUANTAL_UNIT_MAX);
      *factor = map[i].factor;
      return;
    }
  qtl_strlcpy(unit, file_unit, QUANTAL_UNIT_MAX);
  *factor = 1.0;
}

/* A series name without its trailing number ("ccs_sweep12" -> "ccs_sweep",
 * "Vm-003" -> "Vm"): the channel of a series without an electrode link. */
static void
name_stem(char *dst, size_t size, const char *name)
{
  size_t n = strlen(name);
  while (n > 0 && name[n - 1] >= '0' && name[n - 1] <= '9')
    n--;
  while (n > 0 && strchr("_-. ", name[n - 1]) != NULL)
    n--;
  if (n == 0)
    n = strlen(name);
  clean_text(dst, size, name, n);
}

static void
type_name(hid_t t, char *buf, size_t size, int *is_int)
{
  size_t bits = H5Tget_size(t) * 8;
  *is_int = H5Tget_class(t) == H5T_INTEGER;
  if (*is_int)
    snprintf(buf, size, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "",
             bits);
  else
    snprintf(buf, size, "float%zu", bits);
}

/* Everything about one series but its samples; the data dataset is left
 * open in s->data. */
static quantal_status
read_series(nwb_child *cx, hid_t g, const char *name, nwb_series *s)
{
  char file_unit[64], text[NWB_MAX_NAME + 1], h5[160];
  H5L_info_t li;
  hid_t t, sp;
  hsize_t dims[1];
  H5T_class_t cls;
  int rank, k;
  long long sweep;

  memset(s, 0, sizeof *s);
  s->data = -1;
  s->sweep = -1;
  qtl_strlcpy(s->name, name, sizeof s->name);

  /* data: one dimension of integers or floats. */
  k = link_kind(g, "data", &li);
  if (k == 0)
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s has no data", name);
  if (k < 0)
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data is an external link "
                                 "(not followed)", name);
  s->data = H5Dopen2(g, "data", H5P_DEFAULT);
  if (s->data < 0)
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data cannot be opened: %s",
                name, h5_reason(h5));
  t = H5Dget_type(s->data);
  cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
  if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
    if (t >= 0)
      H5Tclose(t);
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data is not numeric", name);
  }
  type_name(t, s->encoding, sizeof s->encoding, &s->is_int);
  H5Tclose(t);
  sp = H5Dget_space(s->data);
  rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
  if (rank != 1) {
    if (sp >= 0)
      H5Sclose(sp);
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data has rank %d (a "
                "series must be one-dimensional)", name, rank);
  }
  H5Sget_simple_extent_dims(sp, dims, NULL);
  H5Sclose(sp);
  if (dims[0] == 0)
    return FAIL(QUANTAL_ENODATA, "/acquisition/%s/data is empty", name);
  if (dims[0] > NWB_MAX_SAMPLES)
    return FAIL(QUANTAL_EUNSUPPORTED, "/acquisition/%s/data has %llu "
                "samples (at most %llu supported)", name,
                (unsigned long long)dims[0], NWB_MAX_SAMPLES);
  s->n = dims[0];

  /* unit, conversion and offset: the physical value is
   * data * conversion + offset, in unit. */
  k = attr_text(s->data, "unit", file_unit, sizeof file_unit);
  if (k == 0)
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data has no unit "
                                 "attribute", name);
  if (k < 0 || file_unit[0] == '\0')
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data: the unit attribute "
                                 "is not a text", name);
  if (strlen(file_unit) >= QUANTAL_UNIT_MAX)
    return FAIL(QUANTAL_EUNSUPPORTED, "/acquisition/%s/data: unit '%s' is "
                                      "too long", name, file_unit);
  map_unit(file_unit, s->unit, &s->factor);
  s->conversion = 1.0;
  k = read_number(s->data, "conversion", 1, H5T_FLOAT, H5T_NATIVE_DOUBLE,
                  &s->conversion);
  if (k < 0)
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data: conversion is not a "
                                 "number", name);
  if (!isfinite(s->conversion) || s->conversion == 0.0)
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data: conversion is %g "
                "(must be finite and not 0)", name, s->conversion);
  s->offset = 0.0;
  k = read_number(s->data, "offset", 1, H5T_FLOAT, H5T_NATIVE_DOUBLE,
                  &s->offset);
  if (k < 0)
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data: offset is not a "
                                 "number", name);
  if (!isfinite(s->offset))
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data: offset is %g (must "
                                 "be finite)", name, s->offset);

  /* starting_time and its rate; timestamps (irregular sampling) are not
   * a sweep of frames. */
  k = link_kind(g, "starting_time", &li);
  if (k == 0) {
    if (H5Lexists(g, "timestamps", H5P_DEFAULT) > 0)
      return FAIL(QUANTAL_EUNSUPPORTED, "/acquisition/%s has timestamps "
                  "instead of starting_time and rate (only regularly "
                  "sampled series are supported)", name);
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s has no starting_time",
                name);
  } else {
    double t0 = 0.0;
    hid_t st;
    if (k < 0 || read_number(g, "starting_time", 0, H5T_FLOAT,
                             H5T_NATIVE_DOUBLE, &t0) < 0 || !isfinite(t0))
      return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/starting_time is not a "
                                   "finite number", name);
    st = H5Dopen2(g, "starting_time", H5P_DEFAULT);
    if (st < 0)
      return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/starting_time cannot be "
                  "opened: %s", name, h5_reason(h5));
    k = read_number(st, "rate", 1, H5T_FLOAT, H5T_NATIVE_DOUBLE, &s->rate_hz);
    H5Dclose(st);
    if (k == 0)
      return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/starting_time has no "
                                   "rate attribute", name);
    if (k < 0)
      return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/starting_time: rate is "
                                   "not a number", name);
    if (!(isfinite(s->rate_hz) && s->rate_hz > 0.0 &&
          s->rate_hz <= NWB_MAX_RATE))
      return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/starting_time: rate is "
                  "%g Hz (must be positive, finite and at most %g)", name,
                  s->rate_hz, NWB_MAX_RATE);
  }

  /* sweep_number: an attribute of the series in NWB 2.x, a dataset in
   * some writers. */
  k = read_number(g, "sweep_number", 1, H5T_INTEGER, H5T_NATIVE_LLONG,
                  &sweep);
  if (k == 0)
    k = read_number(g, "sweep_number", 0, H5T_INTEGER, H5T_NATIVE_LLONG,
                    &sweep);
  if (k < 0)
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s: sweep_number is not an "
                                 "integer", name);
  if (k > 0) {
    if (sweep < 0 || sweep > 4294967295LL)
      return FAIL(QUANTAL_EFORMAT, "/acquisition/%s: sweep_number is %lld "
                  "(must be 0 to 4294967295)", name, sweep);
    s->sweep = sweep;
  }

  /* The channel: the electrode the soft link names, else the stem. */
  k = link_kind(g, "electrode", &li);
  if (k > 0 && li.type == H5L_TYPE_SOFT && li.u.val_size > 1 &&
      li.u.val_size <= sizeof text &&
      H5Lget_val(g, "electrode", text, sizeof text, H5P_DEFAULT) >= 0) {
    const char *b;
    text[sizeof text - 1] = '\0';
    b = strrchr(text, '/');
    b = b ? b + 1 : text;
    clean_text(s->channel, sizeof s->channel, b, strlen(b));
  }
  if (s->channel[0] == '\0')
    name_stem(s->channel, sizeof s->channel, name);
  if (attr_text(g, "stimulus_description", s->stim, sizeof s->stim) < 0)
    s->stim[0] = '\0';
  H5Eclear2(H5E_DEFAULT);
  return QUANTAL_OK;
}

/* The neurodata_type attribute of a group names an icephys response. */
static int
is_response(hid_t g)
{
  static const char *const types[] = {"CurrentClampSeries",
                                      "VoltageClampSeries",
                                      "PatchClampSeries", "IZeroClampSeries"};
  char t[64];
  size_t i;
  if (attr_text(g, "neurodata_type", t, sizeof t) != 1)
    return 0;
  for (i = 0; i < sizeof types / sizeof types[0]; i++)
    if (strcmp(t, types[i]) == 0)
      return 1;
  return 0;
}

/* Find and describe every response series under /acquisition. */
static quantal_status
scan(nwb_child *cx, const char *path, nwb_head *hd)
{
  char text[64], h5[160];
  hid_t fapl, file, acq;
  H5G_info_t gi;
  H5L_info_t li;
  hsize_t i;
  quantal_status st = QUANTAL_OK;

  fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
  /* Lock, but read from file systems without locks too. */
  if (fapl >= 0)
    H5Pset_file_locking(fapl, 1, 1);
#endif
  file = H5Fopen(path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
  if (file < 0)
    return FAIL(QUANTAL_EFORMAT, "HDF5 cannot open it: %s", h5_reason(h5));
  if (attr_text(file, "neurodata_type", text, sizeof text) != 1)
    return FAIL(QUANTAL_EFORMAT, "an HDF5 file, but not NWB 2.x: the root "
                                 "group has no neurodata_type attribute");
  if (strcmp(text, "NWBFile") != 0)
    return FAIL(QUANTAL_EFORMAT, "an HDF5 file, but not NWB: the root "
                                 "neurodata_type is '%s', not NWBFile", text);
  if (attr_text(file, "nwb_version", text, sizeof text) == 1 &&
      text[0] != '\0' && strlen(text) < sizeof hd->format - 5)
    snprintf(hd->format, sizeof hd->format, "NWB %s", text);
  else
    qtl_strlcpy(hd->format, "NWB", sizeof hd->format);

  if (link_kind(file, "acquisition", &li) != 1 ||
      (acq = H5Gopen2(file, "acquisition", H5P_DEFAULT)) < 0)
    return FAIL(QUANTAL_ENODATA, "the file has no /acquisition group");
  if (H5Gget_info(acq, &gi) < 0)
    return FAIL(QUANTAL_EFORMAT, "/acquisition cannot be listed: %s",
                h5_reason(h5));
  if (gi.nlinks > NWB_MAX_LINKS)
    return FAIL(QUANTAL_EFORMAT, "/acquisition has %llu members (at most %u "
                "supported)", (unsigned long long)gi.nlinks, NWB_MAX_LINKS);
  cpu_budget(2.0 + 1e-3 * (double)gi.nlinks);
  for (i = 0; st == QUANTAL_OK && i < gi.nlinks; i++) {
    char name[NWB_MAX_NAME + 1];
    ssize_t len = H5Lget_name_by_idx(acq, ".", H5_INDEX_NAME, H5_ITER_INC, i,
                                     NULL, 0, H5P_DEFAULT);
    hid_t g;
    if (len <= 0)
      return FAIL(QUANTAL_EFORMAT, "/acquisition: member %llu has no name: "
                  "%s", (unsigned long long)i + 1, h5_reason(h5));
    if (len > NWB_MAX_NAME)
      return FAIL(QUANTAL_EUNSUPPORTED, "/acquisition: member %llu has a "
                  "name of %zd bytes (at most %d supported)",
                  (unsigned long long)i + 1, len, NWB_MAX_NAME);
    if (H5Lget_name_by_idx(acq, ".", H5_INDEX_NAME, H5_ITER_INC, i, name,
                           sizeof name, H5P_DEFAULT) != len)
      return FAIL(QUANTAL_EFORMAT, "/acquisition: member %llu cannot be "
                  "read: %s", (unsigned long long)i + 1, h5_reason(h5));
    name[len] = '\0';
    /* Only links inside this file; only groups that are responses. */
    if (link_kind(acq, name, &li) != 1) {
      H5Eclear2(H5E_DEFAULT);
      continue;
    }
    g = H5Oopen(acq, name, H5P_DEFAULT);
    if (g < 0 || H5Iget_type(g) != H5I_GROUP || !is_response(g)) {
      if (g >= 0)
        H5Oclose(g);
      H5Eclear2(H5E_DEFAULT);
      continue;
    }
    if (cx->n == cx->cap) {
      size_t cap = cx->cap ? 2 * cx->cap : 16;
      nwb_series *p;
      if (cx->n >= NWB_MAX_SERIES) {
        H5Oclose(g);
        return FAIL(QUANTAL_EUNSUPPORTED, "/acquisition has more than %u "
                    "series", NWB_MAX_SERIES);
      }
      p = realloc(cx->s, cap * sizeof *p);
      if (p == NULL) {
        H5Oclose(g);
        return FAIL(QUANTAL_ENOMEM, "out of memory for %zu series", cap);
      }
      cx->s = p;
      cx->cap = cap;
    }
    st = read_series(cx, g, name, &cx->s[cx->n]);
    cx->n++;
    H5Oclose(g);
  }
  if (st == QUANTAL_OK && cx->n == 0)
    st = FAIL(QUANTAL_ENODATA, "no intracellular responses: /acquisition "
              "holds no CurrentClampSeries, VoltageClampSeries, "
              "PatchClampSeries or IZeroClampSeries");
  return st;
}

/* The grid of series: grid[sweep * nc + channel] indexes cx->s. */
typedef struct nwb_grid {
  size_t nc, ns;
  size_t *grid;
  size_t *chan_first;      /* a series of each channel */
  long long *sweep;        /* the sweep numbers, ascending */
  size_t *chan_of;         /* the channel of each series */
  int raw;                 /* 1: stored values sent, scaled per channel */
} nwb_grid;

static int
cmp_ll(const void *a, const void *b)
{
  long long x = *(const long long *)a, y = *(const long long *)b;
  return (x > y) - (x < y);
}

static quantal_status
layout(nwb_child *cx, nwb_grid *G, nwb_head *hd, nwb_chan **chans,
       uint64_t **sweep_frames)
{
  size_t i, j, c, n = cx->n, with = 0, *chan_of;
  /* The child exits after one file: what is allocated here is not
   * freed. */
  long long count[QUANTAL_MAX_CHANNELS];
  nwb_series *s = cx->s;
  uint64_t frames = 0;
  const size_t none = (size_t)-1;

  /* Sweep numbers are all there or all missing; missing, the series of
   * each channel are its sweeps in name order. */
  for (i = 0; i < n; i++)
    with += s[i].sweep >= 0;
  chan_of = G->chan_of = malloc(n * sizeof *chan_of);
  G->chan_first = malloc(n * sizeof *G->chan_first);
  G->sweep = malloc(n * sizeof *G->sweep);
  if (chan_of == NULL || G->chan_first == NULL || G->sweep == NULL)
    return FAIL(QUANTAL_ENOMEM, "out of memory for %zu series", n);
  if (with > 0 && with < n) {
    for (i = 0; i < n && s[i].sweep >= 0; i++)
      ;
    for (j = 0; j < n && s[j].sweep < 0; j++)
      ;
    return FAIL(QUANTAL_EFORMAT, "/acquisition/%s has no sweep_number but "
                "/acquisition/%s has one", s[i].name, s[j].name);
  }
  G->nc = 0;
  memset(count, 0, sizeof count);
  for (i = 0; i < n; i++) {
    for (c = 0; c < G->nc; c++)
      if (strcmp(s[G->chan_first[c]].channel, s[i].channel) == 0)
        break;
    if (c == G->nc) {
      if (G->nc == QUANTAL_MAX_CHANNELS)
        return FAIL(QUANTAL_EUNSUPPORTED, "more than %d channels (electrodes "
                    "or series names)", QUANTAL_MAX_CHANNELS);
      G->chan_first[G->nc++] = i;
    }
    chan_of[i] = c;
    if (with == 0)
      s[i].sweep = count[c]++;
  }
  /* The distinct sweep numbers, ascending. */
  for (i = 0; i < n; i++)
    G->sweep[i] = s[i].sweep;
  qsort(G->sweep, n, sizeof *G->sweep, cmp_ll);
  for (i = 0, G->ns = 0; i < n; i++)
    if (G->ns == 0 || G->sweep[G->ns - 1] != G->sweep[i])
      G->sweep[G->ns++] = G->sweep[i];
  /* Each series fills one cell of the grid: more cells than series means
   * sweeps without some channel (and a hostile grid is not allocated). */
  if (G->ns * G->nc > n && G->ns * G->nc > NWB_MAX_SERIES)
    return FAIL(QUANTAL_EFORMAT, "%zu sweeps of %zu channels but %zu series "
                "(every sweep needs one series per channel)", G->ns, G->nc,
                n);
  G->grid = malloc(G->ns * G->nc * sizeof *G->grid);
  *chans = calloc(G->nc, sizeof **chans);
  *sweep_frames = malloc(G->ns * sizeof **sweep_frames);
  if (G->grid == NULL || *chans == NULL || *sweep_frames == NULL)
    return FAIL(QUANTAL_ENOMEM, "out of memory for %zu sweeps", G->ns);
  for (i = 0; i < G->ns * G->nc; i++)
    G->grid[i] = none;
  for (i = 0; i < n; i++) {
    long long *p = bsearch(&s[i].sweep, G->sweep, G->ns, sizeof *G->sweep,
                           cmp_ll);
    size_t *cell = &G->grid[(size_t)(p - G->sweep) * G->nc + chan_of[i]];
    if (*cell != none)
      return FAIL(QUANTAL_EFORMAT, "sweep %lld has two series of channel "
                  "%s: /acquisition/%s and /acquisition/%s", s[i].sweep,
                  s[i].channel, s[*cell].name, s[i].name);
    *cell = i;
  }

  /* One rate; one length per sweep; one unit per channel. */
  for (i = 1; i < n; i++)
    if (s[i].rate_hz != s[0].rate_hz)
      return FAIL(QUANTAL_EUNSUPPORTED, "/acquisition/%s is sampled at %.10g "
                  "Hz but /acquisition/%s at %.10g Hz (one rate per "
                  "recording is supported)", s[0].name, s[0].rate_hz,
                  s[i].name, s[i].rate_hz);
  for (j = 0; j < G->ns; j++) {
    const nwb_series *a;
    for (c = 0; c < G->nc; c++)
      if (G->grid[j * G->nc + c] == none)
        return FAIL(QUANTAL_EFORMAT, "sweep %lld has no series of channel %s "
                    "(every sweep needs one series per channel)",
                    G->sweep[j], s[G->chan_first[c]].channel);
    a = &s[G->grid[j * G->nc]];
    for (c = 1; c < G->nc; c++) {
      const nwb_series *b = &s[G->grid[j * G->nc + c]];
      if (b->n != a->n)
        return FAIL(QUANTAL_EFORMAT, "sweep %lld: /acquisition/%s/data has "
                    "%llu samples but /acquisition/%s/data %llu (the "
                    "channels of a sweep must have the same length)",
                    G->sweep[j], a->name, (unsigned long long)a->n, b->name,
                    (unsigned long long)b->n);
    }
    (*sweep_frames)[j] = a->n;
    frames += a->n;
    if (frames > NWB_MAX_SAMPLES / G->nc)
      return FAIL(QUANTAL_EUNSUPPORTED, "more than %llu samples in all "
                  "(the recording is held in memory)", NWB_MAX_SAMPLES);
  }
  /* Stored values go out as they are, scaled per channel as ABF's counts
   * are, when every series of a channel has the same conversion and
   * offset; otherwise they are converted here. */
  G->raw = 1;
  for (i = 0; i < n; i++) {
    const nwb_series *f = &s[G->chan_first[chan_of[i]]];
    if (strcmp(f->unit, s[i].unit) != 0)
      return FAIL(QUANTAL_EUNSUPPORTED, "channel %s: /acquisition/%s is in "
                  "%s but /acquisition/%s in %s (one unit per channel)",
                  f->channel, f->name, f->unit, s[i].name, s[i].unit);
    if (f->conversion != s[i].conversion || f->offset != s[i].offset)
      G->raw = 0;
  }
  /* The stored types, each once ("int16,float32"), or "mixed" when they
   * do not fit. */
  hd->integer_samples = 1;
  hd->encoding[0] = '\0';
  for (i = 0; i < n; i++) {
    size_t used = strlen(hd->encoding), len = strlen(s[i].encoding);
    hd->integer_samples &= s[i].is_int;
    for (j = 0; j < i; j++)
      if (strcmp(s[j].encoding, s[i].encoding) == 0)
        break;
    if (j < i || strcmp(hd->encoding, "mixed") == 0)
      continue;
    if (used + len + 2 > sizeof hd->encoding)
      qtl_strlcpy(hd->encoding, "mixed", sizeof hd->encoding);
    else
      snprintf(hd->encoding + used, sizeof hd->encoding - used, "%s%s",
               used ? "," : "", s[i].encoding);
  }
  for (c = 0; c < G->nc; c++) {
    const nwb_series *f = &s[G->chan_first[c]];
    qtl_strlcpy((*chans)[c].name, f->channel, sizeof (*chans)[c].name);
    qtl_strlcpy((*chans)[c].unit, f->unit, sizeof (*chans)[c].unit);
    (*chans)[c].scale = G->raw ? f->conversion * f->factor : 1.0;
    (*chans)[c].offset = G->raw ? f->offset * f->factor : 0.0;
    if (!isfinite((*chans)[c].scale) || (*chans)[c].scale == 0.0 ||
        !isfinite((*chans)[c].offset))
      return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data: conversion %g and "
                  "offset %g overflow in %s", f->name, f->conversion,
                  f->offset, f->unit);
  }
  /* The protocol: the stimulus descriptions, each once. */
  hd->protocol[0] = '\0';
  for (i = 0; i < n; i++) {
    size_t used = strlen(hd->protocol);
    if (s[i].stim[0] == '\0' || strcmp(s[i].stim, "N/A") == 0)
      continue;
    for (j = 0; j < i; j++)
      if (strcmp(s[j].stim, s[i].stim) == 0)
        break;
    if (j < i)
      continue;
    snprintf(hd->protocol + used, sizeof hd->protocol - used, "%s%s",
             used ? "," : "", s[i].stim);
  }
  hd->n_channels = G->nc;
  hd->n_sweeps = G->ns;
  hd->frames = frames;
  hd->rate_hz = s[0].rate_hz;
  return QUANTAL_OK;
}

/* Read one sweep (all channels) into rows, interleaved. */
static quantal_status
read_sweep(nwb_child *cx, const nwb_grid *G, size_t j, double *tmp,
           double *rows)
{
  char h5[160];
  size_t c, i, nc = G->nc;
  for (c = 0; c < nc; c++) {
    const nwb_series *s = &cx->s[G->grid[j * nc + c]];
    double a = s->conversion * s->factor, b = s->offset * s->factor;
    if (H5Dread(s->data, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                tmp) < 0)
      return FAIL(QUANTAL_EFORMAT, "/acquisition/%s/data cannot be read: %s",
                  s->name, h5_reason(h5));
    if (G->raw)
      for (i = 0; i < s->n; i++)
        rows[i * nc + c] = tmp[i];
    else
      for (i = 0; i < s->n; i++)
        rows[i * nc + c] = tmp[i] * a + b;
  }
  return QUANTAL_OK;
}

static void
child_read(const char *path, int fd)
{
  nwb_child cxs, *cx = &cxs;
  nwb_head hd;
  nwb_grid G;
  nwb_chan *chans = NULL;
  uint64_t *sweep_frames = NULL, longest = 0;
  double *tmp = NULL, *rows = NULL;
  size_t j;
  quantal_status st;

  memset(cx, 0, sizeof *cx);
  memset(&hd, 0, sizeof hd);
  memset(&G, 0, sizeof G);
  /* HDF5 prints its error stack on stderr by default. */
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  /* A crash or the CPU limit leaves no core file beside the user's. */
  {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
  }
  cpu_budget(2.0);
  st = scan(cx, path, &hd);
  if (st == QUANTAL_OK)
    st = layout(cx, &G, &hd, &chans, &sweep_frames);
  if (st == QUANTAL_OK) {
    for (j = 0; j < G.ns; j++)
      if (sweep_frames[j] > longest)
        longest = sweep_frames[j];
    tmp = malloc((size_t)longest * sizeof *tmp);
    rows = malloc((size_t)longest * G.nc * sizeof *rows);
    if (tmp == NULL || rows == NULL)
      st = FAIL(QUANTAL_ENOMEM, "out of memory for a sweep of %llu frames",
                (unsigned long long)longest);
  }
  hd.status = st;
  memcpy(hd.msg, cx->msg, sizeof hd.msg);
  if (qtl_write_all(fd, &hd, sizeof hd) != 0 || st != QUANTAL_OK ||
      qtl_write_all(fd, chans, G.nc * sizeof *chans) != 0 ||
      qtl_write_all(fd, sweep_frames, G.ns * sizeof *sweep_frames) != 0)
    _exit(0);
  /* libhdf5 converts some 1e8 samples a second. */
  cpu_budget(2.0 + 1e-6 * (double)hd.frames * (double)G.nc);
  for (j = 0; j < G.ns; j++) {
    int sst = read_sweep(cx, &G, j, tmp, rows);
    if (qtl_write_all(fd, &sst, sizeof sst) != 0)
      break;
    if (sst != QUANTAL_OK) {
      qtl_write_all(fd, cx->msg, sizeof cx->msg);
      break;
    }
    if (qtl_write_all(fd, rows, (size_t)sweep_frames[j] * G.nc * sizeof *rows))
      break;
  }
  close(fd);
  _exit(0);
}

/* ---- the parent ------------------------------------------------------- */

static quantal_status
receive(quantal_recording *rec, int fd, nwb_head *hd, double **data,
        quantal_diag *diag)
{
  nwb_chan *ch = NULL;
  uint64_t *sf = NULL, sum = 0, *first = NULL;
  size_t nc = hd->n_channels, ns = hd->n_sweeps, j, k;
  quantal_status st = QUANTAL_OK;
  double *p;

  if (nc == 0 || nc > QUANTAL_MAX_CHANNELS || ns == 0 ||
      ns > NWB_MAX_SERIES || hd->frames == 0 ||
      hd->frames > NWB_MAX_SAMPLES / nc)
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "the NWB reader sent an impossible layout");
  ch = calloc(nc, sizeof *ch);
  sf = malloc(ns * sizeof *sf);
  first = malloc(ns * sizeof *first);
  *data = malloc((size_t)hd->frames * nc * sizeof **data);
  if (ch == NULL || sf == NULL || first == NULL || *data == NULL) {
    st = qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                  "out of memory for %llu samples",
                  (unsigned long long)(hd->frames * nc));
    goto out;
  }
  if (qtl_read_all(fd, ch, nc * sizeof *ch) != 0 ||
      qtl_read_all(fd, sf, ns * sizeof *sf) != 0) {
    st = NWB_BROKEN;
    goto out;
  }
  for (j = 0; j < ns; j++) {
    if (sf[j] == 0 || sf[j] > hd->frames - sum) {
      st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "the NWB reader sent an impossible sweep length");
      goto out;
    }
    first[j] = sum;
    sum += sf[j];
  }
  if (sum != hd->frames) {
    st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                  "the NWB reader sent an impossible sweep length");
    goto out;
  }
  for (j = 0, p = *data; j < ns; j++) {
    int sst;
    if (qtl_read_all(fd, &sst, sizeof sst) != 0) {
      st = NWB_BROKEN;
      goto out;
    }
    if (sst != QUANTAL_OK) {
      char msg[NWB_MSG];
      if (qtl_read_all(fd, msg, sizeof msg) != 0) {
        st = NWB_BROKEN;
        goto out;
      }
      msg[sizeof msg - 1] = '\0';
      st = qtl_fail(diag, (quantal_status)sst, rec->path, -1,
                    (long long)first[j], "%s", msg);
      goto out;
    }
    if (qtl_read_all(fd, p, (size_t)sf[j] * nc * sizeof *p) != 0) {
      st = NWB_BROKEN;
      goto out;
    }
    p += (size_t)sf[j] * nc;
  }
  rec->info.frames = hd->frames;
  st = qtl_recording_alloc_layout(rec, nc, diag);
  if (st == QUANTAL_OK)
    st = qtl_recording_set_sweeps(rec, ns, first, sf, diag);
  if (st != QUANTAL_OK)
    goto out;
  rec->info.rate_hz = hd->rate_hz;
  rec->info.integer_samples = hd->integer_samples;
  hd->format[sizeof hd->format - 1] = '\0';
  hd->encoding[sizeof hd->encoding - 1] = '\0';
  hd->protocol[sizeof hd->protocol - 1] = '\0';
  qtl_strlcpy(rec->info.format, hd->format, sizeof rec->info.format);
  qtl_strlcpy(rec->info.encoding, hd->encoding, sizeof rec->info.encoding);
  qtl_strlcpy(rec->info.protocol, hd->protocol, sizeof rec->info.protocol);
  for (k = 0; k < nc; k++) {
    ch[k].name[sizeof ch[k].name - 1] = '\0';
    ch[k].unit[sizeof ch[k].unit - 1] = '\0';
    if (!isfinite(ch[k].scale) || ch[k].scale == 0.0 ||
        !isfinite(ch[k].offset)) {
      st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, (long)k, -1,
                    "the NWB reader sent an impossible scale");
      goto out;
    }
    if (ch[k].name[0])
      qtl_strlcpy(rec->channels[k].name, ch[k].name,
                  sizeof rec->channels[k].name);
    qtl_strlcpy(rec->channels[k].unit, ch[k].unit,
                sizeof rec->channels[k].unit);
    rec->channels[k].scale = ch[k].scale;
    rec->channels[k].offset = ch[k].offset;
    rec->channels[k].unit_source = QUANTAL_UNIT_FILE;
  }
out:
  free(ch);
  free(sf);
  free(first);
  return st;
}

quantal_status
qtl_nwb_open(quantal_recording *rec, quantal_diag *diag)
{
  int fd, wst;
  pid_t pid;
  nwb_head hd;
  double *data = NULL;
  quantal_status st;

  /* Loaded here, so that the child has it and a missing library is
   * reported as such. */
  st = qtl_dl_load(&h5lib, rec->path, diag);
  if (st != QUANTAL_OK)
    return st;
  st = qtl_child_start(rec->path, child_read, &fd, &pid, diag);
  if (st != QUANTAL_OK)
    return st;
  memset(&hd, 0, sizeof hd);
  if (qtl_read_all(fd, &hd, sizeof hd) != 0)
    st = NWB_BROKEN;
  else if (hd.status != QUANTAL_OK) {
    hd.msg[sizeof hd.msg - 1] = '\0';
    st = qtl_fail(diag, (quantal_status)hd.status, rec->path, -1, -1, "%s",
                  hd.msg);
  } else
    st = receive(rec, fd, &hd, &data, diag);
  wst = qtl_child_finish(fd, pid);
  if ((st == NWB_BROKEN || st == QUANTAL_OK) && WIFSIGNALED(wst) &&
      WTERMSIG(wst) == SIGXCPU)
    st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                  "the HDF5 reader used up its CPU time limit: a damaged "
                  "file (libhdf5 loops on some)");
  else if (st == NWB_BROKEN || (st == QUANTAL_OK && WIFSIGNALED(wst)))
    st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                  "the HDF5 reader failed on it (%s %d): a damaged or "
                  "unsupported file",
                  WIFSIGNALED(wst) ? "signal" : "exit status",
                  WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
  if (st != QUANTAL_OK) {
    free(data);
    return st;
  }
  return qtl_memory_backend(rec, data, rec->info.n_channels, diag);
}
