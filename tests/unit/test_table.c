/* test_table.c - reading TSV tables. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "quantal.h"

#include <criterion/criterion.h>
#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[] = "/tmp/quantal-test-table.XXXXXX";

static void
setup(void)
{
  int fd;
  gsl_set_error_handler_off();
  fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
}

static void
teardown(void)
{
  remove(path);
}

TestSuite(table, .init = setup, .fini = teardown);

static void
put(const char *text)
{
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

Test(table, reads_columns_comments_and_text)
{
  quantal_table *t;
  quantal_diag d;
  const double *a;
  put("# quantal 0.1.0\n# input: x.wav\nstimulus\tamplitude_mV\tkind\n"
      "1\t0.52\tevoked\n2\t-0.1\tspontaneous\n\n3\tnan\tevoked\n"
      "4\tabc\tevoked\n");
  cr_assert_eq(quantal_table_read(path, &t, &d), QUANTAL_OK, "%s", d.reason);
  cr_assert_eq(quantal_table_rows(t), 4);
  cr_assert_eq(quantal_table_cols(t), 3);
  cr_assert_eq(quantal_table_n_comments(t), 2);
  cr_assert_str_eq(quantal_table_comment(t, 1), " input: x.wav");
  cr_assert_eq(quantal_table_find(t, "kind"), 2);
  cr_assert_eq(quantal_table_find(t, "nope"), -1);
  cr_assert_eq(quantal_table_find_prefix(t, "amplitude_"), 1);
  a = quantal_table_column(t, 1);
  cr_assert_eq(a[0], 0.52);
  cr_assert_eq(a[1], -0.1);
  cr_assert(isnan(a[2]));
  cr_assert(isnan(a[3]), "text reads as NaN");
  cr_assert_str_eq(quantal_table_cell(t, 3, 1), "abc");
  cr_assert_str_eq(quantal_table_cell(t, 1, 2), "spontaneous");
  cr_assert_null(quantal_table_cell(t, 4, 0));
  quantal_table_free(t);
  quantal_table_free(NULL);
}

Test(table, ragged_rows_are_refused)
{
  quantal_table *t;
  quantal_diag d;
  put("a\tb\n1\t2\n3\n");
  cr_assert_eq(quantal_table_read(path, &t, &d), QUANTAL_EFORMAT);
  cr_assert_null(t);
  cr_assert_str_eq(d.reason, "line 3 has 1 field, the header has 2");
}

Test(table, empty_and_missing_tables)
{
  quantal_table *t;
  quantal_diag d;
  put("# only a comment\n");
  cr_assert_eq(quantal_table_read(path, &t, &d), QUANTAL_ENODATA);
  cr_assert_eq(quantal_table_read("/nonexistent/x.tsv", &t, &d),
               QUANTAL_EIO);
  cr_assert_str_eq(d.reason, "No such file or directory");
  put("a\tb\n");
  cr_assert_eq(quantal_table_read(path, &t, &d), QUANTAL_OK);
  cr_assert_eq(quantal_table_rows(t), 0);
  cr_assert_null(quantal_table_column(t, 0));
  quantal_table_free(t);
}

Test(table, binary_garbage_is_refused)
{
  quantal_table *t;
  quantal_diag d;
  FILE *f = fopen(path, "wb");
  fwrite("a\tb\n1\t\0\x01\n", 1, 10, f);
  fclose(f);
  cr_assert_eq(quantal_table_read(path, &t, &d), QUANTAL_EFORMAT);
  cr_assert(strstr(d.reason, "NUL byte") != NULL, "%s", d.reason);
}
