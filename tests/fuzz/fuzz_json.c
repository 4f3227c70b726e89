/* fuzz_json.c - the JSON reader of result files. SPDX-License-Identifier: GPL-3.0-or-later */
#include "fuzz.h"
#include "internal.h"

#include <stdlib.h>

/* Whatever the bytes, parsing either fails cleanly or gives a tree that
 * can be walked to the bottom. */
static void
walk(const qtl_json *j, int depth)
{
  size_t i;
  if (depth > 100)
    abort();
  (void)qtl_json_number(j);
  (void)qtl_json_string(j);
  (void)qtl_json_key(j);
  for (i = 0; i < qtl_json_size(j); i++)
    walk(qtl_json_at(j, i), depth + 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  qtl_json *j = NULL;
  quantal_diag d;
  if (qtl_json_parse((const char *)data, size, "fuzz", &j, &d) ==
      QUANTAL_OK) {
    walk(j, 0);
    (void)qtl_json_path(j, "models.binomial.n");
  }
  qtl_json_free(j);
  return 0;
}
