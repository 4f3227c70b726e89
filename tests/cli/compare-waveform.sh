#!/bin/sh
# compare-waveform.sh - quantal compare --waveform: recovery through
# simulated recordings shaped like the bundled evoked recording.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
q=$QUANTAL

cp "$top_srcdir/data/evoked.flac" "$top_srcdir/data/amplitudes.tsv" .
"$q" evoked --stim-channel 2 evoked.flac -o ev.tsv --minis mi.tsv --quiet 2> /dev/null
"$q" fit ev.tsv --minis mi.tsv --json -o fit.json 2> /dev/null

# Three replicates, with one thread and with two: the same numbers.
run 0 "$q" compare fit.json --waveform --replicates 3 --threads 1 --quiet --json -o w1.json
expect_no_out
expect_err ''
run 0 "$q" compare fit.json --waveform --replicates 3 --threads 2 --quiet --json -o w2.json
checks=$((checks + 1))
cmp -s w1.json w2.json || fail "--waveform: --threads 1 and 2 differ"

# Structure: the path, the shape taken from the recording, coverage a
# fraction (or null where a parameter has no interval).
checks=$((checks + 1))
python3 - w1.json <<'PY' || fail "--waveform JSON: $(cat w1.json)"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["path"] == "waveform", d["path"]
assert d["replicates"] == 3 and 0 <= d["converged"] <= 3
w = d["waveform"]
assert w["recording"] == "evoked.flac" and w["recording_read"] is True
assert w["clamp"] == "current" and w["rate_hz"] == 10000
assert w["duration_s"] == 60 and w["stimuli"] == 60
assert w["kinetics_from"] == "mean_response"
assert 0 < w["rise_ms"] < w["decay_ms"]
assert w["evoked"]["window_ms"] == 30 and w["evoked"]["polarity"] == "auto"
assert d["converged"] + w["failed"] <= 3
for k in ("misclassified_mean", "minis_simulated_mean", "minis_detected_mean"):
    assert w[k] is None or w[k] >= 0, k
for name, p in d["parameters"].items():
    c = p["coverage"]
    assert c is None or 0 <= c <= 1, (name, c)
    assert p["covered"] <= p["intervals"] <= p["estimates"] <= 3, name
PY

# The readable report says which path it took.
run 0 "$q" compare fit.json --waveform --replicates 2 --quiet
expect_out_match '^2 simulated experiments of 60 trials, seed 1; [0-2] fits converged$'
expect_out_match '^path: waveform: each replicate a 60 s recording at 10000 Hz \(current clamp\)'
run 0 "$q" compare amplitudes.tsv --replicates 2 --n-max 30 --quiet
expect_out_match '^path: amplitudes \(simulated at the amplitude level\)$'

# A table without the provenance of quantal evoked.
run 3 "$q" compare amplitudes.tsv --waveform --replicates 2 --quiet -o no.txt
expect_err "quantal: compare: amplitudes.tsv: --waveform needs the table of quantal evoked, whose '# command: evoked' and '# input:' lines say how the recording was made and measured; this table has no '# command: evoked' line"
no_file no.txt
# An evoked table that lost its noise column.
cut -f 1-7,9- ev.tsv > nonoise.tsv
run 3 "$q" compare nonoise.tsv --waveform --replicates 2 --quiet
expect_err "quantal: compare: nonoise.tsv: --waveform needs the column noise_sd_mV"
# The recording is gone: the kinetics and the rate must be given...
mkdir moved
mv evoked.flac moved/
run 3 "$q" compare fit.json --waveform --replicates 2 --quiet
expect_err_match "^quantal: compare: ev.tsv: --waveform: the recording evoked.flac it was measured from cannot be read \(.*\): give --rise MS, --decay MS and --rate HZ$"
run 3 "$q" compare fit.json --waveform --rise 2 --decay 10 --replicates 2 --quiet
expect_err_match "give --rate HZ$"
# ... and then they are used.
run 0 "$q" compare fit.json --waveform --rise 2 --decay 10 --rate 10000 --replicates 2 --quiet --json -o given.json
checks=$((checks + 1))
python3 -c '
import json; w = json.load(open("given.json"))["waveform"]
assert w["recording_read"] is False and w["kinetics_from"] == "options"
assert w["rise_ms"] == 2 and w["decay_ms"] == 10 and w["rate_hz"] == 10000
assert 59.5 < w["duration_s"] <= 60.5, w["duration_s"]' || fail "--rise/--decay/--rate: $(cat given.json)"

# Usage.
run 2 "$q" compare fit.json --waveform --rise 2
expect_err "quantal: compare: --rise and --decay go together
Try 'quantal compare --help' for more information."
run 2 "$q" compare fit.json --waveform --rise 5 --decay 2
expect_err_match "decay \(2 ms\) must be longer than --rise"
run 2 "$q" compare fit.json --rise 2 --decay 10
expect_err_match "go with --waveform"
run 2 "$q" compare fit.json --waveform --trials 100
expect_err_match "amplitude path only"
finish
