/* fuzz_table.c - the TSV table reader. SPDX-License-Identifier: GPL-3.0-or-later */
#include "fuzz.h"
#include "quantal.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  quantal_table *t;
  quantal_diag d;
  const char *path = fuzz_scratch_file(data, size, ".tsv");
  if (quantal_table_read(path, &t, &d) == QUANTAL_OK) {
    size_t i, j, rows = quantal_table_rows(t), cols = quantal_table_cols(t);
    volatile double sink = 0.0;
    for (j = 0; j < cols; j++) {
      const double *c = quantal_table_column(t, j);
      if (strlen(quantal_table_colname(t, j)) > size)
        abort();
      for (i = 0; c != NULL && i < rows; i++)
        sink += c[i];
      for (i = 0; i < rows; i++)
        if (quantal_table_cell(t, i, j) == NULL)
          abort();
    }
    (void)quantal_table_find_prefix(t, "amplitude_");
    for (i = 0; i < quantal_table_n_comments(t); i++)
      (void)quantal_table_comment(t, i);
    (void)sink;
    quantal_table_free(t);
  }
  unlink(path);
  return 0;
}
