#!/bin/sh
# man.sh - every man page lints clean and every EXAMPLES command runs.
# SPDX-License-Identifier: GPL-3.0-or-later
# Example lines in a page's EXAMPLES section start with "$ "; they run in a
# scratch folder holding a copy of data/, with "quantal" being the built
# program. An example that must fail is written "$ ! quantal ...".
. "$top_srcdir/tests/cli/lib.sh"
command -v groff >/dev/null || { echo "groff missing: skipped"; exit 77; }
cp -R "$top_srcdir/data" data
chmod -R u+w data
mkdir bin
ln -s "$QUANTAL" bin/quantal
for page in "$top_srcdir"/man/*.1 "$top_srcdir"/man/*.7; do
  [ -e "$page" ] || continue
  checks=$((checks + 1))
  lint=$(groff -man -ww -z "$page" 2>&1)
  [ -z "$lint" ] || fail "$(basename "$page"): $lint"
  awk '/^\.SH/ { ex = ($2 == "EXAMPLES") } ex && /^\$ / { sub(/^\$ /, ""); print }' \
    "$page" | sed 's/\\-/-/g; s/\\e/\\/g' > examples.txt
  while IFS= read -r cmd; do
    checks=$((checks + 1))
    if ! PATH="$T/bin:$PATH" sh -c "$cmd" >ex.out 2>ex.err; then
      fail "$(basename "$page") example failed: $cmd"
      sed 's/^/  /' ex.err >&2
    fi
  done < examples.txt
done
finish
