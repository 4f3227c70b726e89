/* atf.c - Axon Text File (ATF 1.0) recordings. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/*
 * Clampfit exports sweeps as ATF, a tab-separated text file (Axon's "ATF
 * file format" note):
 *
 *   ATF <tab> 1.0
 *   R <tab> C                   optional header records, data columns
 *   "AcquisitionMode=..."       R records, one per line, quoted key=value;
 *   "Signals=" <tab> "IN 0" ... the signal of each data column
 *   "Time (s)" <tab> "Trace #1 (pA)" <tab> ...   C column titles
 *   0 <tab> -12.5 <tab> ...     data rows
 *
 * Episodic exports have one column per sweep and signal; a column's sweep
 * is the number of columns of the same signal before it. Sweeps of unequal
 * length end in empty cells. The file is parsed whole at open (text is
 * small next to binary data) and served from memory.
 */

#define ATF_MAX_COLUMNS 65536
#define ATF_MAX_RECORDS 65536


/* A whole file in memory, handed out line by line. */
typedef struct lines {
  char *buf, *pos;
  size_t line_no;
} lines;

static char *
next_line(lines *L)
{
  char *s = L->pos, *e;
  if (s == NULL || *s == '\0')
    return NULL;
  e = strchr(s, '\n');
  if (e != NULL) {
    *e = '\0';
    L->pos = e + 1;
  } else {
    L->pos = s + strlen(s);
  }
  if (e != NULL && e > s && e[-1] == '\r')
    e[-1] = '\0';
  else if (e == NULL && *s && s[strlen(s) - 1] == '\r')
    s[strlen(s) - 1] = '\0';
  L->line_no++;
  return s;
}

/* Split line in place into at most max cells, keeping empty cells:
 * tab-separated, else comma-separated, else blank-separated. A cell in
 * double quotes may hold separators; the quotes are removed. Trailing
 * separators are dropped (a missing cell reads as empty). Returns the cell
 * count (may exceed max). */
static size_t
split_cells(char *line, char **cells, size_t max)
{
  char sep = strchr(line, '\t') ? '\t' : strchr(line, ',') ? ',' : ' ';
  size_t k = 0, n = strlen(line);
  char *p = line;
  while (n > 0 && (line[n - 1] == sep || line[n - 1] == ' '))
    line[--n] = '\0';
  if (n == 0)
    return 0;
  for (;;) {
    char *start, *end;
    int at_end;
    while (*p == ' ')
      p++;
    if (*p == '"') {
      start = ++p;
      while (*p && *p != '"')
        p++;
      end = p;
      if (*p == '"')
        p++;
      while (*p && *p != sep)
        p++;
    } else {
      start = p;
      while (*p && *p != sep)
        p++;
      end = p;
      while (end > start && end[-1] == ' ')
        end--;
    }
    at_end = *p == '\0';
    if (!at_end)
      p++;
    *end = '\0';
    if (k < max)
      cells[k] = start;
    k++;
    if (at_end)
      break;
    if (sep == ' ')
      while (*p == ' ')
        p++;
  }
  return k;
}

/* "Trace #1 (pA)" -> unit "pA"; name without the parentheses. */
static void
title_parts(const char *title, char *name, size_t nsize, char *unit,
            size_t usize)
{
  const char *open = strrchr(title, '('), *close = strrchr(title, ')');
  size_t n;
  unit[0] = '\0';
  n = strlen(title);
  if (open != NULL && close != NULL && close > open) {
    size_t u = (size_t)(close - open - 1);
    if (u >= usize)
      u = usize - 1;
    memcpy(unit, open + 1, u);
    unit[u] = '\0';
    n = (size_t)(open - title);
  }
  while (n > 0 && title[n - 1] == ' ')
    n--;
  if (n >= nsize)
    n = nsize - 1;
  memcpy(name, title, n);
  name[n] = '\0';
}

static int
parse_cell(const char *s, double *v)
{
  char *end;
  if (*s == '\0')
    return 0;
  errno = 0;
  *v = strtod(s, &end);
  while (*end == ' ')
    end++;
  return end != s && *end == '\0';
}

typedef struct atf_parse {
  size_t n_cols;          /* data columns, the time column excluded */
  char **signal_of;       /* per data column: its signal name */
  char (*titles)[QUANTAL_NAME_MAX + QUANTAL_UNIT_MAX + 8];
  size_t *chan_of, *sweep_of, n_chan, n_sweeps;
  int have_time;
  double time_factor;     /* time column unit -> seconds */
} atf_parse;

static void
parse_free(atf_parse *P)
{
  free(P->signal_of);
  free(P->titles);
  free(P->chan_of);
  free(P->sweep_of);
}

quantal_status
qtl_atf_open(quantal_recording *rec, double rate_hz, quantal_diag *diag)
{
  FILE *f;
  lines L;
  long size;
  char *line, **cells = NULL, *signals_line = NULL;
  char **sig_cells = NULL;
  size_t n_sig = 0, i, k, rows_cap = 0, n_rows = 0, total_cols;
  long n_records, n_columns;
  double *rows = NULL, t0 = 0.0, t_last = 0.0;
  atf_parse P;
  uint64_t *sw_first = NULL, *sw_len = NULL;
  quantal_status st = QUANTAL_OK;

  memset(&P, 0, sizeof P);
  memset(&L, 0, sizeof L);
#define BAD(...)                                                            \
  do {                                                                      \
    st = qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1, __VA_ARGS__);   \
    goto done;                                                              \
  } while (0)
  f = fopen(rec->path, "rb");
  if (f == NULL)
    return qtl_fail(diag, QUANTAL_EIO, rec->path, -1, -1, "%s",
                    strerror(errno));
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return qtl_fail(diag, QUANTAL_EIO, rec->path, -1, -1, "cannot size");
  }
  L.buf = malloc((size_t)size + 1);
  if (L.buf == NULL) {
    fclose(f);
    return qtl_fail(diag, QUANTAL_ENOMEM, rec->path, -1, -1,
                    "out of memory for a %ld-byte text file", size);
  }
  if (fread(L.buf, 1, (size_t)size, f) != (size_t)size) {
    fclose(f);
    free(L.buf);
    return qtl_fail(diag, QUANTAL_EIO, rec->path, -1, -1, "read failed");
  }
  fclose(f);
  L.buf[size] = '\0';
  if (memchr(L.buf, '\0', (size_t)size) != NULL) {
    free(L.buf);
    return qtl_fail(diag, QUANTAL_EFORMAT, rec->path, -1, -1,
                    "ATF: the file holds NUL bytes, so it is not text");
  }
  L.pos = L.buf;

  line = next_line(&L);
  if (line == NULL || strncmp(line, "ATF", 3) != 0)
    BAD("ATF: the first line does not start with \"ATF\"");
  line = next_line(&L);
  if (line == NULL || sscanf(line, "%ld %ld", &n_records, &n_columns) != 2)
    BAD("ATF line 2: expected the number of header records and of columns");
  if (n_records < 0 || n_records > ATF_MAX_RECORDS)
    BAD("ATF line 2: %ld header records (must be 0 to %d)", n_records,
        ATF_MAX_RECORDS);
  if (n_columns < 1 || n_columns > ATF_MAX_COLUMNS)
    BAD("ATF line 2: %ld columns (must be 1 to %d)", n_columns,
        ATF_MAX_COLUMNS);
  total_cols = (size_t)n_columns;
  cells = malloc((total_cols + 1) * sizeof *cells);
  if (cells == NULL)
    BAD("out of memory");
  for (i = 0; i < (size_t)n_records; i++) {
    line = next_line(&L);
    if (line == NULL)
      BAD("ATF: the file ends inside the %ld header records", n_records);
    if (strncmp(line, "\"Signals=", 9) == 0)
      signals_line = line;
  }
  /* Column titles. */
  line = next_line(&L);
  if (line == NULL)
    BAD("ATF: no column titles after the header records");
  if (split_cells(line, cells, total_cols) != total_cols)
    BAD("ATF line %zu: %zu column titles, but line 2 says %zu columns",
        L.line_no, split_cells(line, cells, 0), total_cols);
  P.have_time = strncmp(cells[0], "Time", 4) == 0;
  P.time_factor = strstr(cells[0], "(ms)") ? 1e-3
                  : strstr(cells[0], "(us)") ? 1e-6 : 1.0;
  P.n_cols = total_cols - (P.have_time ? 1 : 0);
  if (P.n_cols == 0)
    BAD("ATF: only a time column, no data");
  P.titles = calloc(P.n_cols, sizeof *P.titles);
  P.signal_of = calloc(P.n_cols, sizeof *P.signal_of);
  P.chan_of = calloc(P.n_cols, sizeof *P.chan_of);
  P.sweep_of = calloc(P.n_cols, sizeof *P.sweep_of);
  if (!P.titles || !P.signal_of || !P.chan_of || !P.sweep_of)
    BAD("out of memory");
  for (k = 0; k < P.n_cols; k++)
    qtl_strlcpy(P.titles[k], cells[k + (P.have_time ? 1 : 0)],
                sizeof P.titles[k]);
  /* The signal of each data column: the "Signals=" record, else the
   * column title (so each column is its own channel). */
  if (signals_line != NULL) {
    sig_cells = malloc((P.n_cols + 2) * sizeof *sig_cells);
    if (sig_cells == NULL)
      BAD("out of memory");
    n_sig = split_cells(signals_line, sig_cells, P.n_cols + 1);
    /* The first cell is "Signals=" itself (possibly with the first name
     * after the '='). */
    if (n_sig == P.n_cols + 1 && strcmp(sig_cells[0], "Signals=") == 0)
      for (k = 0; k < P.n_cols; k++)
        P.signal_of[k] = sig_cells[k + 1];
    else if (n_sig == P.n_cols && strncmp(sig_cells[0], "Signals=", 8) == 0 &&
             sig_cells[0][8] != '\0')
      for (k = 0; k < P.n_cols; k++)
        P.signal_of[k] = k ? sig_cells[k] : sig_cells[0] + 8;
    else
      BAD("ATF: the Signals record names %zu signals for %zu data columns",
          n_sig > 0 ? n_sig - 1 : 0, P.n_cols);
  }
  for (k = 0; k < P.n_cols; k++) {
    size_t j;
    const char *sig = P.signal_of[k] ? P.signal_of[k] : P.titles[k];
    for (j = 0; j < k; j++) {
      const char *o = P.signal_of[j] ? P.signal_of[j] : P.titles[j];
      if (strcmp(o, sig) == 0)
        break;
    }
    if (j < k) {
      P.chan_of[k] = P.chan_of[j];
      P.sweep_of[k] = 0;
      for (j = 0; j < k; j++)
        if (P.chan_of[j] == P.chan_of[k])
          P.sweep_of[k]++;
    } else {
      P.chan_of[k] = P.n_chan++;
      P.sweep_of[k] = 0;
    }
    if (P.sweep_of[k] + 1 > P.n_sweeps)
      P.n_sweeps = P.sweep_of[k] + 1;
  }
  for (i = 0; i < P.n_chan; i++) {
    size_t count = 0;
    for (k = 0; k < P.n_cols; k++)
      count += P.chan_of[k] == i;
    if (count != P.n_sweeps)
      BAD("ATF: signal %zu has %zu columns but another has %zu; every "
          "signal needs one column per sweep", i + 1, count, P.n_sweeps);
  }
  if (P.n_chan > QUANTAL_MAX_CHANNELS)
    BAD("ATF: %zu signals (at most %d supported)", P.n_chan,
        QUANTAL_MAX_CHANNELS);

  /* Data rows, kept as read (rows x total_cols, NaN for empty cells). */
  while ((line = next_line(&L)) != NULL) {
    size_t got;
    if (line[0] == '\0')
      continue;
    got = split_cells(line, cells, total_cols);
    if (got > total_cols)
      BAD("ATF line %zu: %zu cells, but there are %zu columns", L.line_no,
          got, total_cols);
    if (n_rows == rows_cap) {
      size_t cap = rows_cap ? 2 * rows_cap : 1024;
      double *r;
      if (cap > SIZE_MAX / total_cols / sizeof *rows)
        BAD("ATF: too many rows");
      r = realloc(rows, cap * total_cols * sizeof *rows);
      if (r == NULL)
        BAD("out of memory after %zu rows", n_rows);
      rows = r;
      rows_cap = cap;
    }
    for (k = 0; k < total_cols; k++) {
      double v = NAN;
      if (k < got && cells[k][0] != '\0' && !parse_cell(cells[k], &v))
        BAD("ATF line %zu, column %zu: '%s' is not a number", L.line_no,
            k + 1, cells[k]);
      if (k == 0 && P.have_time && isnan(v))
        BAD("ATF line %zu: the time cell is empty", L.line_no);
      rows[n_rows * total_cols + k] = v;
    }
    n_rows++;
  }
  if (n_rows == 0)
    BAD("ATF: no data rows");

  /* Sample rate from the time column, else from the caller. */
  if (P.have_time) {
    t0 = rows[0] * P.time_factor;
    t_last = rows[(n_rows - 1) * total_cols] * P.time_factor;
    if (n_rows < 2 || !(t_last > t0))
      BAD("ATF: the Time column does not increase, so there is no sample "
          "rate");
    rec->info.rate_hz = (double)(n_rows - 1) / (t_last - t0);
  } else if (rate_hz > 0.0) {
    rec->info.rate_hz = rate_hz;
  } else {
    BAD("ATF: no Time column, so the sample rate is unknown (give --rate)");
  }

  /* Sweep lengths: a sweep ends at its first empty cell; every channel of
   * a sweep must have the same length. */
  sw_first = calloc(P.n_sweeps, sizeof *sw_first);
  sw_len = calloc(P.n_sweeps, sizeof *sw_len);
  if (sw_first == NULL || sw_len == NULL)
    BAD("out of memory");
  for (k = 0; k < P.n_cols; k++) {
    size_t col = k + (P.have_time ? 1 : 0), len = 0, r;
    while (len < n_rows && !isnan(rows[len * total_cols + col]))
      len++;
    for (r = len; r < n_rows; r++)
      if (!isnan(rows[r * total_cols + col]))
        BAD("ATF column %zu: a number after an empty cell at row %zu",
            col + 1, len + 1);
    if (P.chan_of[k] == 0)
      sw_len[P.sweep_of[k]] = len;
    else if (sw_len[P.sweep_of[k]] != len)
      BAD("ATF column %zu: %zu rows, but sweep %zu of signal 1 has %llu",
          col + 1, len, P.sweep_of[k] + 1,
          (unsigned long long)sw_len[P.sweep_of[k]]);
  }
  for (i = 0; i < P.n_sweeps; i++) {
    if (sw_len[i] == 0)
      BAD("ATF: sweep %zu is empty", i + 1);
    sw_first[i] = i ? sw_first[i - 1] + sw_len[i - 1] : 0;
  }
  rec->info.frames = sw_first[P.n_sweeps - 1] + sw_len[P.n_sweeps - 1];

  {
    double *data =
        malloc((size_t)rec->info.frames * P.n_chan * sizeof *data);
    if (data == NULL)
      BAD("out of memory");
    for (k = 0; k < P.n_cols; k++) {
      size_t col = k + (P.have_time ? 1 : 0), r, s = P.sweep_of[k];
      for (r = 0; r < sw_len[s]; r++)
        data[(sw_first[s] + r) * P.n_chan + P.chan_of[k]] =
            rows[r * total_cols + col];
    }
    st = qtl_memory_backend(rec, data, P.n_chan, diag);
    if (st != QUANTAL_OK)
      goto done;
  }
  st = qtl_recording_alloc_layout(rec, P.n_chan, diag);
  if (st != QUANTAL_OK)
    goto done;
  for (k = 0; k < P.n_cols; k++) {
    char name[QUANTAL_NAME_MAX], unit[QUANTAL_UNIT_MAX];
    size_t ch = P.chan_of[k];
    if (P.sweep_of[k] != 0)
      continue;
    title_parts(P.titles[k], name, sizeof name, unit, sizeof unit);
    if (P.signal_of[k] != NULL && P.signal_of[k][0] != '\0')
      qtl_strlcpy(name, P.signal_of[k], sizeof name);
    if (name[0] != '\0')
      qtl_strlcpy(rec->channels[ch].name, name, QUANTAL_NAME_MAX);
    if (unit[0] != '\0') {
      qtl_strlcpy(rec->channels[ch].unit, unit, QUANTAL_UNIT_MAX);
      rec->channels[ch].unit_source = QUANTAL_UNIT_FILE;
    }
  }
  st = qtl_recording_set_sweeps(rec, P.n_sweeps, sw_first, sw_len, diag);
  qtl_strlcpy(rec->info.format, "ATF", sizeof rec->info.format);
  qtl_strlcpy(rec->info.encoding, "text", sizeof rec->info.encoding);
  rec->info.integer_samples = 0;
#undef BAD
done:
  free(L.buf);
  free(cells);
  free(sig_cells);
  free(rows);
  free(sw_first);
  free(sw_len);
  parse_free(&P);
  return st;
}
