/* driver.c - replay saved fuzz inputs without libFuzzer (make check). SPDX-License-Identifier: GPL-3.0-or-later */
#include "fuzz.h"

#include <dirent.h>
#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every file of tests/fuzz/corpus/TARGET and tests/fuzz/regress/TARGET
 * (inputs that once crashed the target) goes through the target in the
 * ordinary and the sanitizer builds, reported as TAP. Files named on the
 * command line are replayed instead. FUZZ_TARGET is set by Makefile.am. */

static int
replay(const char *path, int num)
{
  FILE *f = fopen(path, "rb");
  unsigned char *buf;
  long n;
  if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    printf("not ok %d - %s: cannot read\n", num, path);
    if (f)
      fclose(f);
    return 1;
  }
  buf = malloc((size_t)n + 1);
  if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
    printf("not ok %d - %s: cannot read\n", num, path);
    fclose(f);
    free(buf);
    return 1;
  }
  fclose(f);
  LLVMFuzzerTestOneInput(buf, (size_t)n);
  free(buf);
  printf("ok %d - %s\n", num, path);
  fflush(stdout);
  return 0;
}

static int
cmp(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
  const char *top = getenv("top_srcdir"), *sub[] = {"corpus", "regress"};
  char **files = NULL, path[4096];
  size_t n = 0, cap = 0, i;
  int s, bad = 0;
  gsl_set_error_handler_off();
  if (argc > 1) {
    printf("1..%d\n", argc - 1);
    for (i = 1; i < (size_t)argc; i++)
      bad += replay(argv[i], (int)i);
    return bad ? 1 : 0;
  }
  if (top == NULL)
    top = ".";
  for (s = 0; s < 2; s++) {
    DIR *d;
    struct dirent *e;
    snprintf(path, sizeof path, "%s/tests/fuzz/%s/%s", top, sub[s],
             FUZZ_TARGET);
    if ((d = opendir(path)) == NULL)
      continue;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      if (n == cap) {
        cap = cap ? 2 * cap : 64;
        files = realloc(files, cap * sizeof *files);
        if (files == NULL)
          return 99;
      }
      files[n] = malloc(strlen(path) + strlen(e->d_name) + 2);
      if (files[n] == NULL)
        return 99;
      sprintf(files[n], "%s/%s", path, e->d_name);
      n++;
    }
    closedir(d);
  }
  if (n == 0) {
    printf("1..0 # SKIP no saved inputs for %s\n", FUZZ_TARGET);
    return 0;
  }
  qsort(files, n, sizeof *files, cmp);
  printf("1..%zu\n", n);
  for (i = 0; i < n; i++) {
    bad += replay(files[i], (int)i + 1);
    free(files[i]);
  }
  free(files);
  return bad ? 1 : 0;
}
