/* mknwb.c - write NWB-shaped test files; check what quantal reads back. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "nwbgen.h"
#include "quantal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * mknwb [OPTION]... FILE              write FILE (see nwbgen.h)
 * mknwb --compare [OPTION]... FILE    read FILE (an NWB file or its
 *                                     conversion) with libquantal and
 *                                     compare every sample with what the
 *                                     options would write
 * Options: --sweeps N --frames N --rate HZ --channels 1|2 --variable
 * --userblock --sweep-dataset --no-electrode --no-sweep --compact --bad KIND
 * --tolerance REL (compare: |got - want| <= REL * max(|want|, 1)).
 */

static int
usage(void)
{
  fprintf(stderr, "usage: mknwb [--compare] [--sweeps N] [--frames N] "
                  "[--rate HZ] [--channels 1|2] [--variable] [--userblock] "
                  "[--sweep-dataset] [--no-electrode] [--no-sweep] "
                  "[--compact] "
                  "[--bad KIND] [--tolerance REL] FILE\n");
  return 2;
}

static int
compare(const char *path, const nwbgen_spec *spec, double tol)
{
  quantal_recording *rec;
  quantal_recording_info info;
  quantal_diag d;
  uint64_t frame = 0;
  size_t s, c, i, checked = 0;
  double *x = NULL;

  if (quantal_recording_open(path, NULL, &rec, &d) != QUANTAL_OK) {
    fprintf(stderr, "mknwb: %s: %s\n", path, d.reason);
    return 1;
  }
  quantal_recording_get_info(rec, &info);
  if (info.n_channels != spec->n_channels) {
    fprintf(stderr, "mknwb: %s: %zu channels, expected %zu\n", path,
            info.n_channels, spec->n_channels);
    return 1;
  }
  for (s = 0; s < spec->n_sweeps; s++) {
    size_t n = nwbgen_sweep_frames(spec, s);
    x = realloc(x, n * sizeof *x);
    for (c = 0; c < spec->n_channels; c++) {
      if (quantal_recording_read(rec, c, frame, n, x, &d) != QUANTAL_OK) {
        fprintf(stderr, "mknwb: %s: %s\n", path, d.reason);
        return 1;
      }
      for (i = 0; i < n; i++) {
        double want = nwbgen_expected(spec, c, s, i);
        double lim = tol * (fabs(want) > 1.0 ? fabs(want) : 1.0);
        if (!(fabs(x[i] - want) <= lim)) {
          fprintf(stderr, "mknwb: %s: sweep %zu, channel %zu, sample %zu: "
                          "read %.17g, expected %.17g\n",
                  path, s + 1, c + 1, i, x[i], want);
          return 1;
        }
        checked++;
      }
    }
    frame += n;
  }
  if (frame != info.frames) {
    fprintf(stderr, "mknwb: %s: %llu frames, expected %llu\n", path,
            (unsigned long long)info.frames, (unsigned long long)frame);
    return 1;
  }
  free(x);
  quantal_recording_close(rec);
  printf("%zu samples match\n", checked);
  return 0;
}

int
main(int argc, char **argv)
{
  nwbgen_spec spec = nwbgen_default();
  int i, do_compare = 0;
  double tol = 0.0;
  const char *path = NULL;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--compare") == 0)
      do_compare = 1;
    else if (strcmp(a, "--variable") == 0)
      spec.variable = 1;
    else if (strcmp(a, "--userblock") == 0)
      spec.userblock = 1;
    else if (strcmp(a, "--sweep-dataset") == 0)
      spec.sweep_dataset = 1;
    else if (strcmp(a, "--no-electrode") == 0)
      spec.no_electrode = 1;
    else if (strcmp(a, "--no-sweep") == 0)
      spec.no_sweep = 1;
    else if (strcmp(a, "--compact") == 0)
      spec.compact = 1;
    else if (v != NULL && strcmp(a, "--sweeps") == 0 && ++i)
      spec.n_sweeps = (size_t)strtoul(v, NULL, 10);
    else if (v != NULL && strcmp(a, "--frames") == 0 && ++i)
      spec.frames = (size_t)strtoul(v, NULL, 10);
    else if (v != NULL && strcmp(a, "--channels") == 0 && ++i)
      spec.n_channels = (size_t)strtoul(v, NULL, 10);
    else if (v != NULL && strcmp(a, "--rate") == 0 && ++i)
      spec.rate_hz = strtod(v, NULL);
    else if (v != NULL && strcmp(a, "--bad") == 0 && ++i)
      spec.bad = v;
    else if (v != NULL && strcmp(a, "--tolerance") == 0 && ++i)
      tol = strtod(v, NULL);
    else if (a[0] == '-' || path != NULL)
      return usage();
    else
      path = a;
  }
  if (path == NULL || spec.n_sweeps == 0 || spec.frames < 20 ||
      spec.n_channels < 1 || spec.n_channels > 2 || !(spec.rate_hz > 0.0))
    return usage();
  if (do_compare)
    return compare(path, &spec, tol);
  return nwbgen_write(path, &spec) == 0 ? 0 : 1;
}
