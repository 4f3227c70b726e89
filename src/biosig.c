/* biosig.c - recordings in the formats libbiosig reads (EDF, BDF, GDF, HEKA, CFS, ...). SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

/* biosig-dev.h has a struct member named VERSION, automake's macro. */
#undef VERSION
#include <biosig.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* libbiosig is opened on first use (dl.c): the symbols used here. */
#define BIOSIG_SYMS(X) \
  X(biosig_channel_get_label) X(biosig_channel_get_physdim) \
  X(biosig_check_error) X(biosig_get_channel) X(biosig_get_datablock) \
  X(biosig_get_errormsg) X(biosig_get_filetype) \
  X(biosig_get_number_of_channels) X(biosig_get_number_of_records) \
  X(biosig_get_number_of_samples) X(biosig_get_samplerate) \
  X(biosig_reset_flag) X(sopen) X(sread) X(GetFileTypeString)
QTL_DL_LIB(bslib, BIOSIG_SYMS, QTL_BIOSIG_SONAME, "Recordings read through libbiosig");
#define biosig_channel_get_label QTL_DL_SYM(bslib, biosig_channel_get_label)
#define biosig_channel_get_physdim QTL_DL_SYM(bslib, biosig_channel_get_physdim)
#define biosig_check_error QTL_DL_SYM(bslib, biosig_check_error)
#define biosig_get_channel QTL_DL_SYM(bslib, biosig_get_channel)
#define biosig_get_datablock QTL_DL_SYM(bslib, biosig_get_datablock)
#define biosig_get_errormsg QTL_DL_SYM(bslib, biosig_get_errormsg)
#define biosig_get_filetype QTL_DL_SYM(bslib, biosig_get_filetype)
#define biosig_get_number_of_channels QTL_DL_SYM(bslib, biosig_get_number_of_channels)
#define biosig_get_number_of_records QTL_DL_SYM(bslib, biosig_get_number_of_records)
#define biosig_get_number_of_samples QTL_DL_SYM(bslib, biosig_get_number_of_samples)
#define biosig_get_samplerate QTL_DL_SYM(bslib, biosig_get_samplerate)
#define biosig_reset_flag QTL_DL_SYM(bslib, biosig_reset_flag)
#define sopen QTL_DL_SYM(bslib, sopen)
#define sread QTL_DL_SYM(bslib, sread)
#define GetFileTypeString QTL_DL_SYM(bslib, GetFileTypeString)

/*
 * libbiosig (Schlögl et al.; biosig.sourceforge.net) reads some fifty
 * biosignal and electrophysiology formats. quantal reads ABF, ATF, text
 * and libsndfile's formats itself; recordings whose first bytes name one
 * of the formats below come here. The whole recording is read into
 * memory at open (scaled to physical values by libbiosig), frames by
 * channels, and handed out by the memory backend, as ATF's are. Sweeps of
 * episodic files (HEKA, CFS; any GDF that marks them) come from
 * libbiosig's event table: an event of type 0x7ffe marks the start of a
 * new sweep (segment). libbiosig runs in a child process (see
 * qtl_biosig_open).
 */

/* An EDF header: "0" and seven spaces, then at byte 184 the header length
 * in ASCII, 256 (1 + number of signals), the number at byte 252. A text
 * export that happens to start with a 0 and spaces does not pass. */
static int
edf_header(const unsigned char *head, size_t n)
{
  char a[9], b[5];
  long hl, ns;
  if (n < 256 || memcmp(head, "0       ", 8) != 0)
    return 0;
  memcpy(a, head + 184, 8);
  a[8] = '\0';
  memcpy(b, head + 252, 4);
  b[4] = '\0';
  hl = strtol(a, NULL, 10);
  ns = strtol(b, NULL, 10);
  return ns > 0 && hl == 256 * (ns + 1);
}

int
qtl_biosig_magic(const unsigned char *head, size_t n)
{
  /* EDF/EDF+, BDF (0xff "BIOSEMI"), GDF ("GDF "), HEKA PatchMaster
   * bundles ("DAT1", "DAT2"), CED CFS ("CEDFILE\""). */
  return edf_header(head, n) ||
         (n >= 8 && head[0] == 0xff && memcmp(head + 1, "BIOSEMI", 7) == 0) ||
         (n >= 4 && memcmp(head, "GDF ", 4) == 0) ||
         (n >= 4 && (memcmp(head, "DAT1", 4) == 0 ||
                     memcmp(head, "DAT2", 4) == 0)) ||
         (n >= 8 && memcmp(head, "CEDFILE\"", 8) == 0);
}

/* libbiosig's unit names to quantal's: micro as "u". */
static void
unit_of(const char *phys, char *unit, size_t size)
{
  if (phys == NULL || phys[0] == '\0' || strcmp(phys, "?") == 0) {
    qtl_strlcpy(unit, "au", size);
    return;
  }
  if (strncmp(phys, "\xc2\xb5", 2) == 0) { /* UTF-8 micro sign */
    snprintf(unit, size, "u%s", phys + 2);
    return;
  }
  qtl_strlcpy(unit, phys, size);
}

/* What the reading child sends before the samples. */
typedef struct bio_head {
  int status;        /* quantal_status */
  char msg[400];     /* reason when status != OK */
  size_t ns, rows;
  size_t n_breaks;   /* sweep starts after the first, sent after channels */
  double fs;
  char format[32];
} bio_head;

/* libbiosig's event type for a sweep (segment) break. */
#define SWEEP_BREAK 0x7ffe
#define MAX_SWEEPS 1000000

static int
cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

typedef struct bio_chan {
  char name[QUANTAL_NAME_MAX];
  char unit[QUANTAL_UNIT_MAX];
} bio_chan;


#define CHILD_FAIL(code, ...)                                              \
  do {                                                                     \
    hd.status = (code);                                                    \
    snprintf(hd.msg, sizeof hd.msg, __VA_ARGS__);                          \
    goto out;                                                              \
  } while (0)

/* The reading child: libbiosig on path, the result down fd. */
static void
child_read(const char *path, int fd)
{
  HDRTYPE *h = sopen(path, "r", NULL);
  biosig_data_type *block = NULL;
  size_t rows = 0, cols = 0, ns = 0, i, k, expect;
  bio_head hd;
  bio_chan *ch = NULL;
  uint64_t *brk = NULL;
  memset(&hd, 0, sizeof hd);
  if (h == NULL)
    CHILD_FAIL(QUANTAL_EFORMAT, "libbiosig cannot open it");
  if (biosig_check_error(h)) {
    char *m = biosig_get_errormsg(h);
    CHILD_FAIL(QUANTAL_EFORMAT, "libbiosig: %s",
               m ? m : "not a format it reads");
  }
  ns = (size_t)biosig_get_number_of_channels(h);
  if (ns == 0 || ns > QUANTAL_MAX_CHANNELS)
    CHILD_FAIL(QUANTAL_EFORMAT, "libbiosig: %zu channels", ns);
  /* A truncated file: libbiosig would read what is there with a warning
   * on stderr. For the record-based formats the header says how long the
   * file must be. */
  {
    enum FileFormat t = biosig_get_filetype(h);
    struct stat sb;
    if ((t == EDF || t == BDF || t == GDF || t == GDF1) && h->NRec > 0 &&
        stat(path, &sb) == 0 &&
        (uint64_t)sb.st_size <
            (uint64_t)h->HeadLen + (uint64_t)h->NRec * h->AS.bpb)
      CHILD_FAIL(QUANTAL_EFORMAT,
                 "truncated: the header announces %lld records of %u bytes "
                 "after %u bytes of header, the file has %lld bytes",
                 (long long)h->NRec, h->AS.bpb, h->HeadLen,
                 (long long)sb.st_size);
  }
  expect = biosig_get_number_of_samples(h);
  hd.fs = biosig_get_samplerate(h);
  snprintf(hd.format, sizeof hd.format, "%s (libbiosig)",
           GetFileTypeString(biosig_get_filetype(h)));
  /* Physical values, one channel per column. */
  biosig_reset_flag(h, BIOSIG_FLAG_UCAL | BIOSIG_FLAG_ROW_BASED_CHANNELS);
  sread(NULL, 0, biosig_get_number_of_records(h), h);
  if (biosig_check_error(h) ||
      biosig_get_datablock(h, &block, &rows, &cols) != 0 || block == NULL) {
    char *m = biosig_get_errormsg(h);
    CHILD_FAIL(QUANTAL_EFORMAT, "libbiosig cannot read the samples%s%s",
               m ? ": " : "", m ? m : "");
  }
  if (expect > 0 && rows < expect)
    CHILD_FAIL(QUANTAL_EFORMAT, "truncated: %zu of %zu samples per channel "
                                "read",
               rows, expect);
  if (cols != ns)
    CHILD_FAIL(QUANTAL_EUNSUPPORTED,
               "libbiosig returned %zu columns for %zu channels (channels "
               "at different rates are not supported)",
               cols, ns);
  if (rows == 0)
    CHILD_FAIL(QUANTAL_ENODATA, "the recording has zero frames");
  for (k = 0; k < ns; k++)
    for (i = 0; i < rows; i++)
      if (!isfinite(block[k * rows + i]))
        CHILD_FAIL(QUANTAL_ENUMERIC, "channel %zu, sample %zu is not a number",
                   k + 1, i + 1);
  ch = calloc(ns, sizeof *ch);
  if (ch == NULL)
    CHILD_FAIL(QUANTAL_ENOMEM, "out of memory");
  for (k = 0; k < ns; k++) {
    CHANNEL_TYPE *c = biosig_get_channel(h, (int)k);
    const char *label = c ? biosig_channel_get_label(c) : NULL;
    snprintf(ch[k].name, sizeof ch[k].name, "%s",
             label && label[0] ? label : "");
    unit_of(c ? biosig_channel_get_physdim(c) : NULL, ch[k].unit,
            sizeof ch[k].unit);
  }
  /* Sweep starts: the breaks strictly inside the recording, in samples
   * of the signals (the event table may count at another rate), sorted,
   * each once. */
  if (h->EVENT.N > 0 && h->EVENT.TYP != NULL && h->EVENT.POS != NULL) {
    double er = h->EVENT.SampleRate > 0.0 ? h->EVENT.SampleRate : hd.fs;
    size_t n = 0;
    brk = malloc((h->EVENT.N + 1) * sizeof *brk);
    if (brk == NULL)
      CHILD_FAIL(QUANTAL_ENOMEM, "out of memory");
    for (i = 0; i < h->EVENT.N; i++) {
      double p;
      if (h->EVENT.TYP[i] != SWEEP_BREAK)
        continue;
      p = floor((double)h->EVENT.POS[i] * hd.fs / er + 0.5);
      if (p > 0.0 && p < (double)rows)
        brk[n++] = (uint64_t)p;
    }
    qsort(brk, n, sizeof *brk, cmp_u64);
    for (i = 0, k = 0; i < n; i++)
      if (k == 0 || brk[i] != brk[k - 1])
        brk[k++] = brk[i];
    if (k + 1 > MAX_SWEEPS)
      CHILD_FAIL(QUANTAL_EFORMAT, "libbiosig: %zu sweeps", k + 1);
    hd.n_breaks = k;
  }
  hd.ns = ns;
  hd.rows = rows;
  hd.status = QUANTAL_OK;
out:
  if (qtl_write_all(fd, &hd, sizeof hd) == 0 && hd.status == QUANTAL_OK &&
      qtl_write_all(fd, ch, ns * sizeof *ch) == 0 &&
      qtl_write_all(fd, brk, hd.n_breaks * sizeof *brk) == 0) {
    /* Frames interleaved, as the readers hand them out. */
    double *row = malloc(ns * sizeof *row);
    for (i = 0; row != NULL && i < rows; i++) {
      for (k = 0; k < ns; k++)
        row[k] = block[k * rows + i];
      if (qtl_write_all(fd, row, ns * sizeof *row) != 0)
        break;
    }
    free(row);
  }
  close(fd);
  _exit(0);
}

quantal_status
qtl_biosig_open(quantal_recording *rec, quantal_diag *diag)
{
  /* libbiosig's parsers are not hardened against malformed files (the
   * fuzzer crashed its CFS reader within seconds): it runs in a child
   * process, and a crash there is a clear message here. */
  int fd, wst;
  pid_t pid;
  bio_head hd;
  bio_chan *ch = NULL;
  double *data = NULL;
  uint64_t *first = NULL, *len = NULL;
  quantal_status st = QUANTAL_OK;
  size_t k;

  st = qtl_dl_load(&bslib, rec->path, diag);
  if (st != QUANTAL_OK)
    return st;
  st = qtl_child_start(rec->path, child_read, &fd, &pid, diag);
  if (st != QUANTAL_OK)
    return st;
  memset(&hd, 0, sizeof hd);
  if (qtl_read_all(fd, &hd, sizeof hd) != 0)
    hd.status = -1;
  if (hd.status == QUANTAL_OK) {
    if (hd.ns == 0 || hd.ns > QUANTAL_MAX_CHANNELS || hd.rows == 0 ||
        hd.n_breaks >= MAX_SWEEPS || hd.n_breaks >= hd.rows) {
      st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "libbiosig: no data");
      goto done;
    }
    ch = calloc(hd.ns, sizeof *ch);
    data = malloc(hd.rows * hd.ns * sizeof *data);
    first = malloc((hd.n_breaks + 1) * sizeof *first);
    len = malloc((hd.n_breaks + 1) * sizeof *len);
    if (ch == NULL || data == NULL || first == NULL || len == NULL) {
      st = qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                    "out of memory for %zu samples", hd.rows * hd.ns);
      goto done;
    }
    first[0] = 0;
    if (qtl_read_all(fd, ch, hd.ns * sizeof *ch) != 0 ||
        qtl_read_all(fd, first + 1, hd.n_breaks * sizeof *first) != 0 ||
        qtl_read_all(fd, data, hd.rows * hd.ns * sizeof *data) != 0)
      hd.status = -1;
  }
done:
  wst = qtl_child_finish(fd, pid);
  if (st != QUANTAL_OK)
    goto out;
  if (WIFSIGNALED(wst) || hd.status < 0) {
    st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                  "libbiosig failed on it (%s %d): a damaged or unsupported "
                  "file",
                  WIFSIGNALED(wst) ? "signal" : "exit status",
                  WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
    goto out;
  }
  if (hd.status != QUANTAL_OK) {
    hd.msg[sizeof hd.msg - 1] = '\0';
    st = qtl_fail(diag, (quantal_status)hd.status, rec->path, -1, -1, "%s",
                  hd.msg);
    goto out;
  }
  rec->info.frames = hd.rows;
  st = qtl_recording_alloc_layout(rec, hd.ns, diag);
  if (st != QUANTAL_OK)
    goto out;
  rec->info.rate_hz = hd.fs;
  rec->info.integer_samples = 0;
  hd.format[sizeof hd.format - 1] = '\0';
  qtl_strlcpy(rec->info.format, hd.format, sizeof rec->info.format);
  qtl_strlcpy(rec->info.encoding, "float64", sizeof rec->info.encoding);
  for (k = 0; k < hd.ns; k++) {
    ch[k].name[sizeof ch[k].name - 1] = '\0';
    ch[k].unit[sizeof ch[k].unit - 1] = '\0';
    if (ch[k].name[0])
      qtl_strlcpy(rec->channels[k].name, ch[k].name,
                  sizeof rec->channels[k].name);
    qtl_strlcpy(rec->channels[k].unit, ch[k].unit,
                sizeof rec->channels[k].unit);
    rec->channels[k].unit_source = QUANTAL_UNIT_FILE;
  }
  /* The sweep table, checked again on this side of the pipe. */
  for (k = 0; k <= hd.n_breaks; k++) {
    uint64_t end = k < hd.n_breaks ? first[k + 1] : hd.rows;
    if (end <= first[k] || end > hd.rows) {
      st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "libbiosig: sweep %zu has no samples", k + 1);
      goto out;
    }
    len[k] = end - first[k];
  }
  if (hd.n_breaks > 0) {
    st = qtl_recording_set_sweeps(rec, hd.n_breaks + 1, first, len, diag);
    if (st != QUANTAL_OK)
      goto out;
  }
  st = qtl_memory_backend(rec, data, hd.ns, diag);
  data = NULL;
out:
  free(ch);
  free(data);
  free(first);
  free(len);
  return st;
}
