/* scratch.c - scratch files for fuzz targets whose API takes a path. SPDX-License-Identifier: GPL-3.0-or-later */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *
fuzz_scratch_file(const uint8_t *data, size_t size, const char *suffix)
{
  static char path[256];
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  FILE *f;
  snprintf(path, sizeof path, "%s/quantal-fuzz-%ld%s", dir, (long)getpid(),
           suffix);
  f = fopen(path, "wb");
  if (f == NULL)
    abort();
  if (size > 0 && fwrite(data, 1, size, f) != size)
    abort();
  if (fclose(f) != 0)
    abort();
  return path;
}
