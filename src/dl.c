/* dl.c - libraries opened on first use rather than at start-up. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <dlfcn.h>
#include <pthread.h>

/*
 * HDF5 (NWB files), libbiosig (other formats) and PLplot (figures) bring
 * some 50 further shared libraries with them (curl, Kerberos, ICU,
 * DCMTK...). Linked, they were loaded and relocated by every run of every
 * command: 31 ms of the 41 ms that `quantal --version` took, most of a
 * `quantal fit` of 300 amplitudes (65 ms). Each is now opened by its
 * soname (found by configure) the first time a file or figure needs it.
 */

static pthread_mutex_t dl_lock = PTHREAD_MUTEX_INITIALIZER;

quantal_status
qtl_dl_load(qtl_dl_lib *lib, const char *file, quantal_diag *diag)
{
  quantal_status st = QUANTAL_OK;
  size_t i;
  pthread_mutex_lock(&dl_lock);
  if (lib->state == 0) {
    void *h = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    const char *bad = NULL;
    if (h == NULL) {
      const char *e = dlerror();
      qtl_strlcpy(lib->err, e ? e : lib->soname, sizeof lib->err);
    } else {
      for (i = 0; i < lib->n && bad == NULL; i++) {
        /* A program that also links the library (the tests that write
         * NWB files link HDF5) has its own copies of the library's data
         * (copy relocations), and the library itself uses those: they
         * come first, the library's own definitions otherwise. */
        (void)dlerror();
        lib->addr[i] = dlsym(RTLD_DEFAULT, lib->names[i]);
        if (lib->addr[i] == NULL)
          lib->addr[i] = dlsym(h, lib->names[i]);
        if (lib->addr[i] == NULL)
          bad = lib->names[i];
      }
      if (bad != NULL) {
        snprintf(lib->err, sizeof lib->err, "%s has no symbol %s",
                 lib->soname, bad);
        dlclose(h);
      }
    }
    lib->state = h != NULL && bad == NULL ? 1 : -1;
  }
  if (lib->state < 0)
    st = qtl_fail(diag, QUANTAL_EUNSUPPORTED, file, -1, -1,
                  "%s need %s, which cannot be loaded: %s", lib->purpose,
                  lib->soname, lib->err);
  pthread_mutex_unlock(&dl_lock);
  return st;
}
