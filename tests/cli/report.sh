#!/bin/sh
# report.sh - quantal report: a whole report or none, and its page.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
D="$top_srcdir/data"
[ -e "$D/minis.flac" ] || { echo "no data/"; exit 77; }
cp "$D/minis.flac" "$D/minis.truth.tsv" .

run 0 "$QUANTAL" report -q minis.flac -o rep
expect_no_out
expect_err "quantal: report: rep/index.html: 5 steps"
for f in index.html info.tsv events.tsv detect.svg compare.txt compare.svg; do
  checks=$((checks + 1))
  [ -s "rep/$f" ] || fail "rep/$f missing"
done
checks=$((checks + 1))
[ "$(grep -c '<svg' rep/index.html)" = 2 ] || fail "two inline figures"
checks=$((checks + 1))
grep -q '^quantal detect -c 1 .*minis.flac -o events.tsv$' rep/index.html ||
  fail "the detect command is not on the page"
checks=$((checks + 1))
ls -a | grep -q '\.tmp' && fail "temporary folder left behind"

# An existing folder is kept unless --force; a bad recording leaves none.
run 3 "$QUANTAL" report minis.flac -o rep
expect_err "quantal: report: rep: already exists (remove it or give --force)"
run 0 "$QUANTAL" report -q --force minis.flac -o rep
run 3 "$QUANTAL" report "$top_srcdir/tests/bad/garbage.wav" -o bad
expect_err_match "^quantal: report: .*garbage.wav: "
no_file bad
run 2 "$QUANTAL" report minis.flac
expect_err "quantal: report: no report folder given (-o DIR)
Try 'quantal report --help' for more information."
run 1 "$QUANTAL" report --mode evoked minis.flac -o ev
expect_err "quantal: report: minis.flac: no trigger channel found (give --stim-channel)"
no_file ev
checks=$((checks + 1))
ls -a | grep -q '\.tmp' && fail "temporary folder left behind"
finish
