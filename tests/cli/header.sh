#!/bin/sh
# header.sh - the public header compiles alone as strict C99 and C11.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
printf '#include "quantal.h"\nint main(void) { return QUANTAL_OK; }\n' > h.c
for std in c99 c11; do
  run 0 ${CC:-cc} -std=$std -pedantic -Wall -Wextra -Werror \
    -I"$top_srcdir/src" -c h.c -o h.o
done
finish
