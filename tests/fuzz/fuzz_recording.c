/* fuzz_recording.c - every reader behind quantal_recording_open. SPDX-License-Identifier: GPL-3.0-or-later */
#include "fuzz.h"
#include "quantal.h"

#include <stdlib.h>
#include <unistd.h>

/* The first byte picks the file name's extension (which selects the text
 * reader) and whether a rate is given; the rest is the file. Everything
 * that opens is read to the end in odd-sized blocks, one channel and all
 * channels, and every sweep is asked for. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char *suffix[] = {".wav", ".flac", ".txt", ".abf",
                                 ".atf", ".csv", ".bin", ".aiff"};
  quantal_open_options o = quantal_open_options_default();
  quantal_recording *rec = NULL;
  quantal_recording_info info;
  quantal_diag d;
  const char *path;
  double buf[4096];
  uint64_t pos;
  size_t i;
  if (size < 1)
    return 0;
  o.rate_hz = (data[0] & 8) ? 1000.0 : 0.0;
  path = fuzz_scratch_file(data + 1, size - 1, suffix[data[0] & 7]);
  if (quantal_recording_open(path, &o, &rec, &d) == QUANTAL_OK) {
    quantal_recording_get_info(rec, &info);
    for (i = 0; i < info.n_sweeps; i++) {
      uint64_t f0, n;
      if (quantal_recording_get_sweep(rec, i, &f0, &n) != QUANTAL_OK ||
          f0 + n > info.frames)
        abort(); /* a sweep outside the recording is a reader bug */
    }
    for (pos = 0; pos < info.frames && pos < 200000;) {
      size_t m = 4096 / info.n_channels;
      if (m > 777)
        m = 777;
      if (m > info.frames - pos)
        m = (size_t)(info.frames - pos);
      if (m == 0)
        break;
      if (quantal_recording_read_frames(rec, pos, m, buf, &d) != QUANTAL_OK)
        break;
      if (quantal_recording_read(rec, info.n_channels - 1, pos, m, buf,
                                 &d) != QUANTAL_OK)
        break;
      pos += m;
    }
    quantal_recording_close(rec);
  }
  unlink(path);
  return 0;
}
