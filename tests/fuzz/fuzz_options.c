/* fuzz_options.c - the program's parsing of option values. SPDX-License-Identifier: GPL-3.0-or-later */
#include "fuzz.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Numbers, whole numbers and the --rate/--units/--scale lists: whatever
 * the text, a value is either refused or finite and inside its range.
 * (scripts/fuzz runs this target with -close_fd_mask=2: the usage
 * messages would flood the fuzzer's output.) */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  char *s;
  double v;
  long l;
  qt_recopts ro;
  s = malloc(size + 1);
  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  qt_cmd = "fuzz";
  if (qt_parse_double("--x", s, -1e3, 1e3, &v) == 0 &&
      !(isfinite(v) && v >= -1e3 && v <= 1e3))
    abort();
  if (qt_parse_long("--n", s, -5, 100, &l) == 0 && (l < -5 || l > 100))
    abort();
  memset(&ro, 0, sizeof ro);
  if (qt_recopts_parse(&ro, QT_OPT_UNITS, s) == 0 &&
      ro.n_units > QUANTAL_MAX_CHANNELS)
    abort();
  if (qt_recopts_parse(&ro, QT_OPT_SCALE, s) == 0) {
    size_t i;
    for (i = 0; i < ro.n_scales; i++)
      if (!isfinite(ro.scales[i]))
        abort();
  }
  if (qt_recopts_parse(&ro, QT_OPT_RATE, s) == 0 && !(ro.rate_hz > 0.0))
    abort();
  free(s);
  return 0;
}
