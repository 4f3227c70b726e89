#!/bin/sh
# neo-compare.sh - every real ABF file reads sample-for-sample as python3-neo
# reads it; the pyABF-written ABF1 (which neo cannot open) matches the ABF2
# it was saved from to within one int16 step.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
REAL="$top_srcdir/../shared/real-recordings"
[ -d "$REAL" ] || { echo "no $REAL: skipped"; exit 77; }
PY=
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import neo.rawio.axonrawio, numpy' 2>/dev/null; then
    PY=$p
    break
  fi
done
[ -n "$PY" ] || { echo "python3-neo missing: skipped"; exit 77; }
DUMP="$top_srcdir/scripts/neo_dump.py"

# convert_sweeps ABF PREFIX: PREFIX<i>.wav for every sweep i.
convert_sweeps() {
  "$QUANTAL" info --json "$1" > "$2.json" || return 1
  n=$(sed -n 's/.*"sweeps": \([0-9]*\).*/\1/p' "$2.json" | head -n 1)
  [ -n "$n" ] || return 1
  i=1
  while [ "$i" -le "$n" ]; do
    "$QUANTAL" convert --sweeps "$i" "$1" "$2$i.wav" || return 1
    i=$((i + 1))
  done
}

printf 'file\tchannel\tname\tunit\trate_hz\tsweeps\tsweep_frames\tmax_abs_diff\tmax_abs\tresult\n'
for f in "$REAL"/*.abf; do
  b=$(basename "$f" .abf)
  case $b in
    *_saved) continue ;; # neo raises AssertionError on it: see below
  esac
  checks=$((checks + 1))
  if ! convert_sweeps "$f" "$b"; then
    fail "$b.abf: quantal could not read or convert it"
    continue
  fi
  "$PY" "$DUMP" compare "$f" "$b.json" "$b" || fail "$b.abf differs from neo"
  rm -f "$b"*.wav
done

# The minimal ABF1 that pyABF wrote from 171116sh_0020.abf: same layout,
# values equal up to its int16 step (pyABF truncates toward zero).
if [ -e "$REAL/171116sh_0020_saved.abf" ] && [ -e "$REAL/171116sh_0020.abf" ]
then
  checks=$((checks + 1))
  run 0 "$QUANTAL" convert "$REAL/171116sh_0020_saved.abf" saved.wav
  run 0 "$QUANTAL" convert "$REAL/171116sh_0020.abf" orig.wav
  "$QUANTAL" info --json "$REAL/171116sh_0020_saved.abf" > saved.json
  step=$(sed -n 's/.*"scale": \([0-9.e+-]*\).*/\1/p' saved.json | head -n 1)
  grep -q '"sweeps": 7' saved.json || fail "saved ABF1: not 7 sweeps"
  grep -q '"unit": "pA"' saved.json || fail "saved ABF1: unit is not pA"
  d=$("$PY" "$DUMP" pair saved.wav orig.wav "$step") ||
    fail "saved ABF1 differs from its ABF2 by $d (step $step)"
  printf '171116sh_0020_saved\t1\t-\tpA\t20000\t7\t200000\t%s\t-\tmatch ABF2 within step %s\n' \
    "$d" "$step"
fi
finish
