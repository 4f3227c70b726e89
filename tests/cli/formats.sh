#!/bin/sh
# formats.sh - quantal convert, and Axon files through info and convert.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
Q=$QUANTAL

# --help and usage errors.
run 0 "$Q" convert --help
expect_out_match '^Usage: quantal convert'
run 2 "$Q" convert
expect_no_out
expect_err "quantal: convert: give an input and an output file
Try 'quantal convert --help' for more information."
run 2 "$Q" convert --bogus a b
expect_err "quantal: convert: unknown option '--bogus'
Try 'quantal convert --help' for more information."
run 2 "$Q" convert --format ogg a b
expect_err "quantal: convert: --format: 'ogg' is not wav or flac
Try 'quantal convert --help' for more information."
run 2 "$Q" convert a b c
expect_err_match 'too many files'

# A text recording converts to WAV and FLAC with its units kept.
printf 'Vm (mV)\tI (pA)\n-70.5\t1\n-70.25\t2\n-70\t-3\n' > t.txt
run 0 "$Q" convert --rate 10000 t.txt t.wav
expect_no_out
run 0 "$Q" info t.wav
expect_out_match "	10000	3	0.0003	1	1	Vm	mV	file	-70.25	"
expect_out_match "	10000	3	0.0003	1	2	I	pA	file	0	"
run 0 "$Q" convert --rate 10000 --channels 2 t.txt t.flac
run 0 "$Q" info --json t.flac
expect_out_match '"name": "I", "unit": "pA"'
expect_out_match '"min": -3, "max": 2'
run 0 "$Q" convert --format flac --rate 10000 --units V,A t.txt t2.wav
run 0 "$Q" info t2.wav
expect_out_match '	FLAC	pcm24	'
expect_out_match '	Vm	V	file	'

# Bad lists, the input as output, rates WAV cannot hold: exit 2 or 3 and
# no file left behind.
run 2 "$Q" convert --rate 10000 --sweeps 2 t.txt o.wav
expect_err "quantal: convert: t.txt: sweeps '2' asks for 2-2, but there is only 1"
run 2 "$Q" convert --rate 10000 --channels 1,x t.txt o.wav
expect_err "quantal: convert: --channels: '1,x' is not a list like 1-10,12
Try 'quantal convert --help' for more information."
run 2 "$Q" convert --rate 10000 --channels 2-1 t.txt o.wav
expect_err "quantal: convert: --channels: '2-1' has a backwards range 2-1
Try 'quantal convert --help' for more information."
run 2 "$Q" convert --rate 10000 t.txt t.txt
expect_err "quantal: convert: the output 't.txt' is the input file
Try 'quantal convert --help' for more information."
run 2 "$Q" convert --rate 10000 t.txt -
run 3 "$Q" convert --rate 10000.5 t.txt o.wav
expect_err "quantal: convert: t.txt: the sample rate 10000.5 Hz is not a whole number of Hz, which WAV and FLAC cannot store"
run 3 "$Q" convert missing.abf o.wav
expect_err "quantal: convert: missing.abf: No such file or directory"
no_file o.wav

# Malformed Axon files are refused with the field named.
printf 'ABF2xxxxxxxxxxxx' > short.abf
run 3 "$Q" convert short.abf o.wav
expect_err "quantal: convert: short.abf: ABF2 header: the file has 16 bytes, fewer than the 512 of the header"
{ printf 'ABF '; head -c 3000 /dev/zero; } > zero.abf
run 3 "$Q" info zero.abf
expect_no_out
expect_err "quantal: info: zero.abf: ABF1 header: fFileVersionNumber is 0 (must be 1.x)"
no_file o.wav

# Real files, when the shared folder is there.
REAL="$top_srcdir/../shared/real-recordings"
if [ -d "$REAL" ]; then
  run 0 "$Q" info --json "$REAL/20112011-EJC_test.abf"
  expect_out_match '"format": "ABF1", "encoding": "int16", "rate_hz": 10000, "frames": 800000, "duration_s": 80, "sweeps": 40, "protocol": "STEP08 with stim \(for EJC\) V1 I2 long \(2\)-2"'
  expect_out_match '"name": "I2", "unit": "nA", "unit_source": "file"'
  run 0 "$Q" info "$REAL/17o05026_vc_stim.abf"
  expect_out_match '	ABF2	int16	20000	1600000	80	8	1	IN 0	pA	file	'
  run 0 "$Q" convert --sweeps 3-4,40 --channels 2 "$REAL/20112011-EJC_test.abf" ejc.flac
  run 0 "$Q" info ejc.flac
  expect_out_match '	FLAC	pcm24	10000	60000	6	1	1	I2	nA	file	'
  # --sweeps on the analysis commands: the selected sweeps end to end,
  # with the same samples as the converted ones.
  run 0 "$Q" info --sweeps 3-4,40 "$REAL/20112011-EJC_test.abf"
  expect_out_match '	ABF1	int16	10000	60000	6	3	2	I2	nA	file	'
  run 0 "$Q" evoked -c 2 --sweep-stim 0.0345 --sweeps 3-4,40 "$REAL/20112011-EJC_test.abf" -o ejc3.tsv
  expect_err_match ': 3 stimuli, '
  checks=$((checks + 1))
  [ "$(grep -v '^#' ejc3.tsv | awk -F '\t' 'NR > 1 { printf "%s ", $3 }')" = "0.034500 2.034500 4.034500 " ] ||
    fail "evoked --sweeps: stimulus times $(grep -v '^#' ejc3.tsv | cut -f 3 | tr '\n' ' ')"
  # All 40 sweeps, and the fit with evoked's shams: each sweep's sham
  # window after its response (the stimulus at 34.5 ms leaves no room
  # before it), so 40, less any beyond 5 robust SDs.
  run 0 "$Q" evoked -c 2 --sweep-stim 0.0345 "$REAL/20112011-EJC_test.abf" \
    -o ejc40.tsv --minis ejc40m.tsv
  checks=$((checks + 1))
  [ "$(grep -v '^#' ejc40.tsv | awk -F '\t' 'NR > 1 && $13 == "nan" && $14 != "nan"' | wc -l)" = 40 ] ||
    fail "evoked on 40 sweeps: not one sham after each response: $(cut -f 13,14 ejc40.tsv | tr '\n' ' ')"
  run 0 "$Q" fit --no-ci ejc40.tsv --minis ejc40m.tsv
  expect_out_match '^# input: ejc40.tsv column amplitude_nA \(40 amplitudes\); minis: ejc40m.tsv column amplitude_nA \([0-9]+\); shams: (40|3[0-9] of 40 \(the rest beyond 5 robust SDs\))$'
  run 0 "$Q" convert --sweeps 3-4,40 --channels 2 "$REAL/20112011-EJC_test.abf" ejc.wav
  run 0 "$Q" evoked -c 1 --first 0.0345 --period 2 ejc.wav -o ejcw.tsv
  checks=$((checks + 1))
  grep -v '^#' ejc3.tsv | cut -f 4 > a3.txt
  grep -v '^#' ejcw.tsv | cut -f 4 > aw.txt
  cmp -s a3.txt aw.txt ||
    fail "evoked --sweeps differs from evoked on the converted sweeps: $(tr '\n' ' ' < a3.txt) vs $(tr '\n' ' ' < aw.txt)"
  run 2 "$Q" detect -c 2 --sweeps 41 "$REAL/20112011-EJC_test.abf"
  expect_err "quantal: detect: $REAL/20112011-EJC_test.abf: sweeps '41' asks for 41-41, but there are only 40"
  run 0 "$Q" convert "$REAL/171116sh_0020_saved.abf" saved.wav
  run 0 "$Q" info saved.wav
  expect_out_match '	WAV	float32	20000	1400000	70	1	1	IN 0	pA	file	'
fi
finish
