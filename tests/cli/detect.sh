#!/bin/sh
# detect.sh - quantal detect: output, exit codes, messages, no partial files.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
Q=$QUANTAL

# A 2 s, 10 kHz text trace at -70 mV with 7 events of 1 mV (at 0.25 s
# intervals) on 0.05 mV noise; awk's seeded rand keeps it reproducible.
awk 'BEGIN { srand(5)
  for (i = 0; i < 20000; i++) {
    t = i / 10000
    x = -70 + 0.05 * (rand() + rand() + rand() + rand() - 2) * 1.732
    for (k = 1; k <= 8; k++) {
      o = k * 0.25
      if (t > o) { u = t - o; x += (1 - exp(-u / 0.0005)) * exp(-u / 0.005) / 0.7 }
    }
    print x } }' > tr.txt
awk 'NR >= 5000 && NR < 6000 { print "nan"; next } { print }' tr.txt > gap.txt
awk 'NR <= 20000 { print -70 }' tr.txt > flat.txt
awk 'NR <= 200 { print }' tr.txt > short.txt

run 0 "$Q" detect --help
expect_out_match '^Usage: quantal detect'

# The seven events, at the right times, as TSV with units in the header.
run 0 "$Q" detect --rate 10000 --units mV tr.txt
expect_out_match '^onset_s	peak_s	amplitude_mV	baseline_mV	rise_10_90_ms	decay_tau_ms	half_width_ms	area_mV_ms	criterion	overlap$'
expect_out_match '^# method: combined, polarity: positive, threshold: 4 SD'
expect_out_match '^# template: rise .* ms \(refined from the data\)$'
checks=$((checks + 1))
got=$(grep -v '^#' out | awk 'NR > 1 { printf "%s ", $1 }')
[ "$got" = "0.250000 0.500000 0.750000 1.000000 1.250000 1.500000 1.750000 " ] ||
  fail "onsets were '$got'"
checks=$((checks + 1))
grep -v '^#' out | awk 'NR > 1 && ($3 < 0.9 || $3 > 1.1) { bad = 1 } END { exit bad }' ||
  fail "amplitudes not within 10 % of 1 mV"
expect_err_match '^quantal: detect: tr.txt: 7 events in 2 s \(3.5 Hz\), median amplitude 1.0[0-9]* mV, noise SD 0.05[0-9]* mV$'

# JSON, quiet, to a file: stdout stays empty.
run 0 "$Q" detect --json -q -o ev.json --rate 10000 tr.txt
expect_no_out
checks=$((checks + 1))
[ ! -s err ] || fail "--quiet printed: $(cat err)"
checks=$((checks + 1))
grep -q '"summary": {"events": 7,' ev.json || fail "bad JSON: $(head -c 300 ev.json)"

# Every method runs and finds the seven (deconvolution may add a small
# event on a decay: its side lobe is not re-tested).
for m in combined template deconvolution threshold slope; do
  run 0 "$Q" detect -q -m "$m" --rate 10000 tr.txt
  checks=$((checks + 1))
  n=$(grep -v '^#' out | awk 'NR > 1 && $3 > 0.5' | wc -l)
  [ "$n" -eq 7 ] || fail "method $m found $n events above 0.5"
done

# Same events with the polarity flipped and a negative trace.
awk '{ print -$1 }' tr.txt > neg.txt
run 0 "$Q" detect -q --rate 10000 neg.txt
expect_out_match '^# method: combined, polarity: negative'
checks=$((checks + 1))
grep -v '^#' out | awk 'NR > 1 && $3 >= 0 { bad = 1 } END { exit bad }' ||
  fail "negative events with positive amplitudes"

# A NaN gap is skipped and reported.
run 0 "$Q" detect --rate 10000 gap.txt
expect_err_match 'skipped 1 gap of NaN/Inf samples \(0.1 s in all, the first at 0.4999 s\)$'

# Bad input: exact messages, exit codes, nothing written.
run 2 "$Q" detect --threshold -1 tr.txt
expect_err "quantal: detect: --threshold: -1 is outside [0.5, 1000]
Try 'quantal detect --help' for more information."
run 2 "$Q" detect --threshold nan tr.txt
expect_err "quantal: detect: --threshold: 'nan' is not a number
Try 'quantal detect --help' for more information."
run 2 "$Q" detect --decay 0 tr.txt
expect_err "quantal: detect: --decay: 0 is outside [0.01, 10000]
Try 'quantal detect --help' for more information."
run 2 "$Q" detect --rise 6 --decay 5 tr.txt
expect_err "quantal: detect: --rise (6 ms) must be shorter than --decay (5 ms)
Try 'quantal detect --help' for more information."
run 2 "$Q" detect --method magic tr.txt
expect_err "quantal: detect: --method: 'magic' is not combined, template, deconvolution, threshold or slope
Try 'quantal detect --help' for more information."
run 2 "$Q" detect --from 2 --to 1 tr.txt
expect_err "quantal: detect: --to (1 s) must be after --from (2 s)
Try 'quantal detect --help' for more information."
run 2 "$Q" detect
expect_err "quantal: detect: no recording given
Try 'quantal detect --help' for more information."
run 2 "$Q" detect -o x.tsv --rate 10000 -c 2 tr.txt
expect_err "quantal: detect: --channel: tr.txt has 1 channel, not 2
Try 'quantal detect --help' for more information."
no_file x.tsv
run 3 "$Q" detect -o x.tsv missing.wav
expect_no_out
expect_err_match '^quantal: detect: missing.wav: '
no_file x.tsv
run 1 "$Q" detect -o x.tsv --rate 10000 flat.txt
expect_err "quantal: detect: flat.txt: the trace is constant: nothing to detect"
no_file x.tsv
run 1 "$Q" detect --rate 10000 flat.txt
expect_no_out
run 3 "$Q" detect -o x.tsv --rate 10000 short.txt
expect_err_match '^quantal: detect: short.txt: the trace \(200 samples\) is shorter than 4 templates'
no_file x.tsv
run 2 "$Q" detect --from 5 --rate 10000 tr.txt
expect_err_match '^quantal: detect: tr.txt: the time span 5-0 s lies outside the recording \(2 s\)$'
run 3 sh -c "'$Q' detect --rate 10000 tr.txt >/dev/full"
expect_err_match 'write error'

# Real data, when the shared folder is there and the ABF reader is built:
# mEJCs in the current channel (nA), negative.
real="$top_srcdir/../shared/real-recordings/19911002-2.abf"
if [ -r "$real" ] && "$Q" info "$real" >/dev/null 2>&1; then
  run 0 "$Q" detect -q -c 2 "$real"
  expect_out_match '^# method: combined, polarity: negative'
  checks=$((checks + 1))
  n=$(grep -v '^#' out | awk 'NR > 1' | wc -l)
  [ "$n" -ge 30 ] || fail "only $n events in 19911002-2.abf"
fi
# The vector paths (AVX2, where the CPU has it) find the same events with
# the same measurements as the scalar ones (QUANTAL_NO_SIMD): the scans
# and fits add the same terms in the same order; only the deconvolution
# filter runs in float there, which may move its score column.
for m in combined template deconvolution; do
  "$Q" detect -q -m "$m" "$top_srcdir/data/minis.flac" > simd.tsv
  QUANTAL_NO_SIMD=1 "$Q" detect -q -m "$m" "$top_srcdir/data/minis.flac" > scalar.tsv
  checks=$((checks + 1))
  if [ "$m" = deconvolution ]; then cols=1-8; else cols=1-10; fi
  [ "$(cut -f "$cols" simd.tsv)" = "$(cut -f "$cols" scalar.tsv)" ] ||
    fail "method $m: vector and scalar paths differ"
  checks=$((checks + 1))
  [ "$(grep -vc '^#' simd.tsv)" -gt 20 ] || fail "method $m: few events in minis.flac"
done

# A figure next to the table.
if "$Q" --help | grep -q '^  plot '; then
  run 0 "$Q" detect "$top_srcdir/data/minis.flac" -o ev.tsv --plot ev.png
  checks=$((checks + 1))
  [ "$(head -c 4 ev.png | od -An -c | tr -d ' ')" = "211PNG" ] || fail "--plot wrote no PNG"
  run 2 "$Q" detect "$top_srcdir/data/minis.flac" --plot ev2.png
  expect_err_match 'give -o FILE'
fi
finish
