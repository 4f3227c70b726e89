#!/bin/sh
# atomic.sh - interrupted runs leave no partial output, and an existing
# output file stays intact; the same inputs and seed give the same bytes.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
q=$QUANTAL
"$q" --help | grep -q '^  simulate ' || { echo "no simulate: skipped"; exit 77; }

# interrupt SIGNAL: start a long simulation, signal it mid-way, check.
interrupt() {
  sig=$1
  "$q" simulate --seed 1 --duration 3600 --rate 20000 -o long.wav 2> err &
  pid=$!
  # Wait until it is writing (its temporary file exists), then signal.
  i=0
  while [ $i -lt 100 ] && ! ls -a | grep -q '^\.long\.wav\.tmp'; do
    sleep 0.05
    i=$((i + 1))
  done
  checks=$((checks + 1))
  kill -0 "$pid" 2> /dev/null || fail "simulate ended before the $sig"
  kill -"$sig" "$pid"
  wait "$pid"
  code=$?
  checks=$((checks + 1))
  [ "$code" -gt 128 ] || fail "$sig: exit status $code, expected death by signal"
  checks=$((checks + 1))
  if ls -a | grep -q '\.tmp'; then
    fail "$sig: temporary files left: $(ls -a | tr '\n' ' ')"
  fi
}

interrupt INT
no_file long.wav long.truth.tsv long.truth.json
interrupt TERM
no_file long.wav

# With a previous result in place, an interrupted run keeps it.
echo previous > long.wav
interrupt INT
checks=$((checks + 1))
[ "$(cat long.wav)" = previous ] || fail "the previous long.wav was damaged"

# Determinism: same seed, same bytes; evoked on it, same table.
for i in 1 2; do
  "$q" simulate --seed 7 --duration 5 --mini-rate 2 -o "s$i.wav" 2> /dev/null
  "$q" evoked --stim-channel 2 "s$i.wav" 2> /dev/null | grep -v '^#' > "e$i.tsv"
done
checks=$((checks + 1))
cmp -s s1.wav s2.wav || fail "simulate --seed 7 gave different recordings"
checks=$((checks + 1))
checks=$((checks + 1))
grep -q spontaneous s1.truth.tsv || fail "no truth table written"
# (the comment lines name the output file, which differs)
[ "$(grep -v '^#' s1.truth.tsv)" = "$(grep -v '^#' s2.truth.tsv)" ] ||
  fail "different truth tables"
checks=$((checks + 1))
cmp -s e1.tsv e2.tsv || fail "evoked gave different tables"
finish
