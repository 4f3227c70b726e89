#!/bin/sh
# compare.sh - quantal compare: detection scoring on hand-made tables.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
q=$QUANTAL

printf '# truth\nonset_s\tkind\tamplitude_mV\n1.0\tspontaneous\t1.0\n2.0\tspontaneous\t2.0\n3.0\tevoked\t3.0\n' > truth.tsv
printf 'onset_s\tamplitude_mV\n1.001\t1.1\n1.0015\t5\n2.5\t1\n' > det.tsv
run 0 "$q" compare --events det.tsv --truth truth.tsv
expect_err ''
expect_out_match '^true events +3$'
expect_out_match '^matched +1$'
expect_out_match '^false positives +2$'
expect_out_match '^missed +2$'
expect_out_match '^F1 +0.3333$'
expect_out_match '^amplitude error +mean 0.1 mV, RMS 0.1 mV, median relative 10 % \(1 matches\)$'

# Only the spontaneous events of the truth.
run 0 "$q" compare --events det.tsv --truth truth.tsv --kind spontaneous --json
checks=$((checks + 1))
python3 -c 'import json; d = json.load(open("out")); assert d["true_events"] == 2 and d["matched"] == 1 and d["missed"] == 1, d' ||
  fail "--kind/--json"

# A wider tolerance matches the detection at 2.5 s to the event at 2 s...
run 0 "$q" compare --events det.tsv --truth truth.tsv --tolerance-ms 600 -o rep.txt
expect_no_out
checks=$((checks + 1))
grep -Eq '^matched +2$' rep.txt || fail "tolerance 600 ms: $(cat rep.txt)"

# Bad input.
printf 'peak\tamplitude_mV\n1\t2\n' > notime.tsv
run 3 "$q" compare --events notime.tsv --truth truth.tsv -o rep2.txt
expect_err "quantal: compare: notime.tsv: no time column (onset_s, peak_s, time_s or stim_s)"
no_file rep2.txt
printf 'onset_s\tamplitude_pA\n1\t2\n' > pa.tsv
run 3 "$q" compare --events pa.tsv --truth truth.tsv
expect_err "quantal: compare: pa.tsv: amplitudes are in pA but truth.tsv has mV"
printf 'onset_s\nsoon\n' > text.tsv
run 3 "$q" compare --events text.tsv --truth truth.tsv
expect_err "quantal: compare: text.tsv: row 1: 'soon' is not a time in seconds"
run 3 "$q" compare --events nope.tsv --truth truth.tsv
expect_err "quantal: compare: nope.tsv: No such file or directory"
run 3 "$q" compare --events det.tsv --truth det.tsv --kind evoked
expect_err "quantal: compare: det.tsv: --kind given but the table has no 'kind' column"
run 2 "$q" compare --events det.tsv
expect_err "quantal: compare: --events and --truth go together
Try 'quantal compare --help' for more information."
run 2 "$q" compare --events det.tsv --truth truth.tsv --tolerance-ms -1
expect_err_match "tolerance-ms: -1 is outside"
# Recovery from a fit's JSON result (it names its tables and n_max).
cp "$top_srcdir/data/amplitudes.tsv" "$top_srcdir/data/amplitudes.minis.tsv" .
"$q" fit amplitudes.tsv --minis amplitudes.minis.tsv --n-max 30 --json -o fit.json 2> /dev/null
run 0 "$q" compare fit.json --replicates 4 --quiet
expect_out_match '^quantal compare: amplitudes.tsv \(300 amplitudes, 309 minis, 300 shams\), model binomial$'
expect_out_match '^4 simulated experiments of 300 trials, seed 1; 4 fits converged$'
# The verdict on a pipe (where ftell fails): the all-clear only when no
# problem is listed. Four replicates are few enough for n to look
# unidentified or biased.
"$q" compare fit.json --replicates 4 --quiet | cat > piped.txt
checks=$((checks + 1))
if sed -n '/^verdict:/,/^$/p' piped.txt | grep -q 'biased\|too narrow\|unbounded\|conservative'; then
  ! grep -q 'every parameter is recovered' piped.txt ||
    fail "compare on a pipe: the all-clear under a list of problems"
else
  grep -q 'every parameter is recovered' piped.txt ||
    fail "compare on a pipe: neither problems nor the all-clear"
fi
run 0 "$q" compare amplitudes.tsv --minis amplitudes.minis.tsv --n-max 30 --replicates 4 --quiet --json -o direct.json
run 0 "$q" compare fit.json --replicates 4 --quiet --json -o via.json
checks=$((checks + 1))
[ "$(grep -v '"input"' direct.json)" = "$(grep -v '"input"' via.json)" ] || fail "fit.json and the tables gave different results"
# Shams (simulate's sham_mV column, one per trial) enter the fit of the
# data and, as as many noise draws, every replicate's. N of them alone
# estimate sigma_0 with SD sigma_0 / sqrt(2 N); the amplitudes add to
# that, so the replicates' SD may exceed it only by the sampling error
# of an SD over 50 replicates (10 %, 3 of them allowed).
"$q" simulate --amplitudes-only --seed 5 --duration 300.5 --stim-period 1 \
  --model binomial --n 20 --p 0.6 --q 0.5 --cv-q 0.25 --noise 0.1 \
  --mini-rate 1 -o hi.tsv 2> /dev/null || fail "simulate with shams"
run 0 "$q" compare hi.tsv --minis hi.minis.tsv --model binomial --n-max 60 \
  --replicates 50 --quiet --json -o hi.json
checks=$((checks + 1))
python3 -c 'import json, math; d = json.load(open("hi.json")); s = d["parameters"]["sigma_0"]
assert d["shams"] == 300, d["shams"]
assert s["sd"] <= 1.3 * s["truth"] / math.sqrt(600), s' ||
  fail "compare with shams: $(grep -o '"shams": [0-9]*' hi.json) $(grep -o '"sigma_0": {[^}]*' hi.json)"
run 0 "$q" compare hi.tsv --minis hi.minis.tsv --model binomial --n-max 60 \
  --replicates 2 --quiet
expect_out_match '^quantal compare: hi.tsv \(300 amplitudes, 304 minis, 300 shams\), model binomial$'
# Without them, given or as the fit's JSON says.
run 0 "$q" compare hi.tsv --minis hi.minis.tsv --model binomial --n-max 60 \
  --replicates 2 --quiet --no-shams
expect_out_match '^quantal compare: hi.tsv \(300 amplitudes, 304 minis\), model binomial$'
"$q" fit --model binomial --n-max 60 --no-shams --json -o hi-nosh.json \
  --minis hi.minis.tsv hi.tsv 2> /dev/null
run 0 "$q" compare hi-nosh.json --replicates 2 --quiet
expect_out_match '^quantal compare: hi.tsv \(300 amplitudes, 304 minis\), model binomial$'
# sigma_0 known: fixed in every fit and in the simulations, given or
# taken from a fit that fixed it.
run 0 "$q" compare amplitudes.tsv --minis amplitudes.minis.tsv --n-max 30 --noise-sd 0.1 --replicates 4 --quiet --json -o s0.json
checks=$((checks + 1))
grep -q '"sigma_0": {"truth": 0.1, "mean": 0.1, "sd": 0' s0.json ||
  fail "compare --noise-sd: sigma_0 not fixed: $(grep -o '"sigma_0": {[^}]*' s0.json)"
"$q" fit amplitudes.tsv --minis amplitudes.minis.tsv --n-max 30 --noise-sd 0.1 --json -o fit01.json 2> /dev/null
run 0 "$q" compare fit01.json --replicates 4 --quiet --json -o s0b.json
checks=$((checks + 1))
[ "$(grep -v '"input"' s0.json)" = "$(grep -v '"input"' s0b.json)" ] ||
  fail "compare FIT.json did not take the fit's fixed sigma_0"
run 2 "$q" compare amplitudes.tsv --noise-sd -1
expect_err_match "noise-sd"
echo '{"models": {}}' > notfit.json
run 3 "$q" compare notfit.json
expect_err "quantal: compare: notfit.json: not a result of quantal fit --json (no input.file)"
echo '{"input": ' > broken.json
run 3 "$q" compare broken.json
expect_err_match '^quantal: compare: broken.json: not valid JSON: line 2: '
finish
