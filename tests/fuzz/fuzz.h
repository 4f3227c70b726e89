/* fuzz.h - shared by the fuzz targets. SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_FUZZ_H
#define QUANTAL_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* libFuzzer's entry point, also called by driver.c on saved inputs. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Write data to a scratch file named with suffix (in /dev/shm when it
 * exists), returning its path (static storage). */
const char *fuzz_scratch_file(const uint8_t *data, size_t size,
                              const char *suffix);

#endif
