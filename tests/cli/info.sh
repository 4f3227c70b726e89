#!/bin/sh
# info.sh - quantal info: output, and every kind of bad input.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
q=$QUANTAL

# A text export: mean 2.5, SD sqrt(5/3), 4 frames at 1 kHz.
printf 'Vm (mV)\n1\n2\n3\n4\n' > t.txt
run 0 "$q" info --rate 1000 t.txt
expect_out_match '^file	format	encoding	rate_hz	frames	duration_s	sweeps	channel	name	unit	unit_source	mean	sd	noise_sd	min	max	nonfinite$'
expect_out_match '^t.txt	text	text	1000	4	0.004	1	1	Vm	mV	file	2.5	1.29099445	0	1	4	0$'
expect_err ''

run 0 "$q" info --json --rate 1000 --units pA t.txt
checks=$((checks + 1))
python3 -c 'import json,sys; d=json.load(open("out")); assert d[0]["channels"][0]["unit"]=="pA", d; assert d[0]["frames"]==4' ||
  fail "--json output is not the expected JSON"

# Float WAV and 16-bit PCM made by sox.
sox -q -n -r 20000 -c 2 -e floating-point -b 32 f.wav synth 0.5 sine 50 vol 0.5
run 0 "$q" info f.wav
expect_out_match '^f.wav	WAV	float32	20000	10000	0.5	1	2	ch2	au	default	'
sox -q -n -r 8000 -c 1 -b 16 i.wav synth 0.1 sine 50
run 0 "$q" info i.wav
expect_err "quantal: info: warning: i.wav: channel 1: integer samples with no unit; values are raw counts (give --units and --scale)"
run 0 "$q" info --units mV --scale 0.001 i.wav
expect_err ''
expect_out_match '	mV	option	'

# Bad input: message naming the file, documented exit code, no stdout.
run 3 "$q" info nope.wav
expect_err "quantal: info: nope.wav: No such file or directory"
expect_no_out
mkdir d
run 3 "$q" info d
expect_err "quantal: info: d: is a directory"
expect_no_out
: > empty.wav
run 3 "$q" info empty.wav
expect_err "quantal: info: empty.wav: empty file"
expect_no_out
echo 'hello, not audio' > text.wav
run 3 "$q" info text.wav
expect_err "quantal: info: text.wav: not a recording: the file is plain text (give --rate to read it as a text export)"
expect_no_out
head -c 3000 /dev/urandom | tr '\000' '\001' > garbage.bin
printf '\000' >> garbage.bin
run 3 "$q" info garbage.bin
expect_err_match '^quantal: info: garbage.bin: not a recording quantal can read \(.*\)$'
expect_no_out
head -c 20000 f.wav > cut.wav
run 3 "$q" info cut.wav
expect_err_match '^quantal: info: cut.wav: truncated data: the header declares 80000 bytes of samples but only [0-9]+ are present$'
expect_no_out
head -c 30 f.wav > header.wav
run 3 "$q" info header.wav
expect_err_match '^quantal: info: header.wav: not a recording quantal can read'
sox -q -n -r 1000 -c 1 zero.wav trim 0 0
run 3 "$q" info zero.wav
expect_err "quantal: info: zero.wav: the recording has zero frames"
expect_no_out
printf '1\nnan\n3\ninf\n' > nan.txt
run 1 "$q" info --rate 10 nan.txt
expect_err "quantal: info: nan.txt: channel 1 has 2 NaN/Inf samples"
expect_out_match '	2$'
run 2 "$q" info t.txt
expect_err "quantal: info: t.txt: a plain-text recording needs its sample rate (--rate)"
expect_no_out
printf '1 2\n3\n' > ragged.txt
run 3 "$q" info --rate 10 ragged.txt
expect_err "quantal: info: ragged.txt: line 2 has 1 column, expected 2"
run 2 "$q" info --rate 10 --units mV,pA t.txt
expect_err "quantal: info: t.txt: 2 units given but the file has 1 channel"

# One bad file does not stop the others; the exit code is the worst.
run 3 "$q" info --rate 1000 t.txt nope.wav
expect_out_match '^t.txt	'
expect_err "quantal: info: nope.wav: No such file or directory"

# Usage errors.
run 2 "$q" info --bogus t.txt
expect_err "quantal: info: unknown option '--bogus'
Try 'quantal info --help' for more information."
run 2 "$q" info
expect_err "quantal: info: no recording given
Try 'quantal info --help' for more information."
for bad in abc -5 0 nan inf; do
  run 2 "$q" info --rate "$bad" t.txt
  expect_no_out
done
run 2 "$q" info --rate
expect_err_match "needs a value"
run 2 "$q" info --scale 0 --rate 10 t.txt
expect_err_match "scale of 0"

# A full disk is a write error.
run 3 sh -c "\"$q\" info --rate 1000 t.txt > /dev/full"
expect_err "quantal: info: write error: No space left on device"

# Help and version.
run 0 "$q" info --help
expect_out_match '^Usage: quantal info'
run 0 "$q" --version
expect_out_match '^quantal [0-9]+\.[0-9]+\.[0-9]+$'
run 2 "$q" frobnicate
expect_err "quantal: 'frobnicate' is not a quantal command
Try 'quantal --help' for the list of commands."
run 3 sh -c "\"$q\" --help > /dev/full"

# Inputs are never modified.
sum=$(md5sum f.wav)
"$q" info f.wav > /dev/null
checks=$((checks + 1))
[ "$(md5sum f.wav)" = "$sum" ] || fail "info modified its input"

# Unreadable files (root reads everything, so only as a normal user).
if [ "$(id -u)" != 0 ]; then
  cp f.wav locked.wav
  chmod 000 locked.wav
  run 3 "$q" info locked.wav
  expect_err "quantal: info: locked.wav: Permission denied"
fi
finish
