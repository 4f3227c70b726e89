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
run 2 "$QUANTAL" report --mode detect --sweep-stim 0.03 minis.flac -o sw
expect_err_match "sweep-stim asks for an evoked analysis"
# An episodic file with one stimulus per sweep: the real EJC recording,
# when the shared folder is there.
real="$top_srcdir/../shared/real-recordings/20112011-EJC_test.abf"
if [ -r "$real" ] && "$QUANTAL" info "$real" > /dev/null 2>&1; then
  run 0 "$QUANTAL" report -q -c 2 --sweep-stim 0.0345 "$real" -o ejc
  for f in ejc/index.html ejc/evoked.tsv ejc/evoked.svg ejc/fit.tsv; do
    checks=$((checks + 1))
    [ -s "$f" ] || fail "report --sweep-stim: $f missing"
  done
  checks=$((checks + 1))
  grep -q 'one stimulus 0.0345 s into each sweep' ejc/index.html ||
    fail "report --sweep-stim: the page does not say how stimuli were found"
  checks=$((checks + 1))
  [ "$(grep -v '^#' ejc/evoked.tsv | awk 'NR > 1' | wc -l)" = 40 ] ||
    fail "report --sweep-stim: not 40 responses"
  # --sweeps reaches every step, and the commands to reproduce.
  run 0 "$QUANTAL" report -q -c 2 --sweep-stim 0.0345 --sweeps 1-10 "$real" -o ejc10
  checks=$((checks + 1))
  [ "$(grep -v '^#' ejc10/evoked.tsv | awk 'NR > 1' | wc -l)" = 10 ] ||
    fail "report --sweeps 1-10: not 10 responses"
  checks=$((checks + 1))
  grep -q 'evoked.tsv --minis minis.tsv --sweeps 1-10' ejc10/index.html ||
    fail "report --sweeps: the evoked command shown lacks --sweeps"
  checks=$((checks + 1))
  grep -q 'evoked.svg --sweeps 1-10' ejc10/index.html ||
    fail "report --sweeps: the plot command shown lacks --sweeps"
fi
checks=$((checks + 1))
ls -a | grep -q '\.tmp' && fail "temporary folder left behind"
finish
