/* child.c - running a fragile library in a child process. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * libbiosig and libhdf5 are not hardened against damaged files (both
 * crashed under the fuzzer, libhdf5 also loops): their readers run in a
 * forked child that sends what it read down a pipe, so a crash is a
 * message in the parent rather than the end of the program.
 */

quantal_status
qtl_child_start(const char *path, void (*child)(const char *path, int fd),
                int *fd, pid_t *pid, quantal_diag *diag)
{
  int fds[2];
  if (pipe(fds) != 0)
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "pipe: %s",
                    strerror(errno));
  fflush(NULL);
  *pid = fork();
  if (*pid < 0) {
    int e = errno;
    close(fds[0]);
    close(fds[1]);
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1, "fork: %s",
                    strerror(e));
  }
  if (*pid == 0) {
    close(fds[0]);
    child(path, fds[1]); /* does not return */
    _exit(1);
  }
  close(fds[1]);
  *fd = fds[0];
  return QUANTAL_OK;
}

int
qtl_child_finish(int fd, pid_t pid)
{
  int wst = 0;
  close(fd);
  while (waitpid(pid, &wst, 0) < 0 && errno == EINTR)
    ;
  return wst;
}

int
qtl_write_all(int fd, const void *buf, size_t n)
{
  const char *p = buf;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int
qtl_read_all(int fd, void *buf, size_t n)
{
  char *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}
