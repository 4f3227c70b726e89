/* status.c - status codes, diagnostics, small shared helpers. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *
quantal_status_str(quantal_status status)
{
  switch (status) {
  case QUANTAL_OK: return "success";
  case QUANTAL_EINVAL: return "invalid argument";
  case QUANTAL_ENOMEM: return "out of memory";
  case QUANTAL_EIO: return "input/output error";
  case QUANTAL_EFORMAT: return "unrecognised or malformed format";
  case QUANTAL_ERANGE: return "out of range";
  case QUANTAL_ENODATA: return "no data";
  case QUANTAL_ENUMERIC: return "numerical failure";
  case QUANTAL_EFAILED: return "analysis failed";
  case QUANTAL_EUNSUPPORTED: return "not supported";
  }
  return "unknown status";
}

void
quantal_diag_clear(quantal_diag *diag)
{
  if (diag == NULL)
    return;
  diag->file[0] = '\0';
  diag->channel = -1;
  diag->frame = -1;
  diag->reason[0] = '\0';
}

const char *
quantal_version(void)
{
  return PACKAGE_VERSION;
}

void
qtl_strlcpy(char *dst, const char *src, size_t size)
{
  size_t n;
  if (size == 0)
    return;
  n = src ? strlen(src) : 0;
  if (n >= size)
    n = size - 1;
  if (n > 0)
    memcpy(dst, src, n);
  dst[n] = '\0';
}

quantal_status
qtl_fail(quantal_diag *diag, quantal_status status, const char *file,
         long channel, long long frame, const char *fmt, ...)
{
  va_list ap;
  if (diag == NULL)
    return status;
  if (file != NULL)
    qtl_strlcpy(diag->file, file, sizeof diag->file);
  diag->channel = channel;
  diag->frame = frame;
  va_start(ap, fmt);
  vsnprintf(diag->reason, sizeof diag->reason, fmt, ap);
  va_end(ap);
  return status;
}

int
qtl_has_suffix(const char *path, const char *suffix)
{
  size_t n = strlen(path), m = strlen(suffix), i;
  if (m > n)
    return 0;
  for (i = 0; i < m; i++)
    if (tolower((unsigned char)path[n - m + i]) !=
        tolower((unsigned char)suffix[i]))
      return 0;
  return 1;
}

int
qtl_tmpfile_near(const char *path, char *tmp, size_t size)
{
  const char *slash = strrchr(path, '/');
  size_t dirlen = slash ? (size_t)(slash - path + 1) : 0;
  const char *base = slash ? slash + 1 : path;
  int n = snprintf(tmp, size, "%.*s.%s.tmpXXXXXX", (int)dirlen, path, base);
  if (n < 0 || (size_t)n >= size) {
    errno = ENAMETOOLONG;
    return -1;
  }
  {
    int fd = mkstemp(tmp);
    mode_t mask;
    if (fd < 0)
      return -1;
    /* mkstemp makes the file 0600; give the result the permissions an
     * ordinary open() would, so a renamed output is not surprisingly
     * private. */
    mask = umask(0);
    umask(mask);
    (void)fchmod(fd, 0666 & ~mask);
    return fd;
  }
}

uint64_t
quantal_seed_mix(uint64_t seed, uint64_t stream)
{
  /* SplitMix64 (Steele, Lea & Flood 2014): a bijective finaliser, so
   * distinct streams of one seed never collide. */
  uint64_t z = seed + (stream + 1) * UINT64_C(0x9E3779B97F4A7C15);
  z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
  z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
  return z ^ (z >> 31);
}
