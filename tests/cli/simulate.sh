#!/bin/sh
# simulate.sh - quantal simulate: outputs, determinism, bad input.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
Q=$QUANTAL
try="Try 'quantal simulate --help' for more information."

# --- help ---
run 0 "$Q" simulate --help
expect_out_match '^Usage: quantal simulate'
expect_out_match '--kinetics-jitter'

# --- a recording with its truth ---
run 0 "$Q" simulate --seed 5 --duration 3 -o a.wav
expect_no_out
for f in a.wav a.truth.tsv a.truth.json; do
  checks=$((checks + 1))
  [ -s "$f" ] || fail "$f missing"
done
run 0 "$Q" info a.wav
expect_out_match "$(printf 'a.wav\tWAV\tfloat32\t20000\t60000\t3\t1\t1\tVm\tmV\tfile')"
expect_out_match "$(printf '\t2\tTTL\tV\tfile')"
checks=$((checks + 1))
grep -q "$(printf '^onset_s\tpeak_s\tkind\tstimulus\tpulse\tstim_s\tquanta\tamplitude_mV\tlinear_mV\trise_ms\tdecay_ms$')" \
  a.truth.tsv || fail "truth header"
# Stimuli at 0.5, 1.5 and 2.5 s: three evoked rows, numbered 1..3.
checks=$((checks + 1))
[ "$(grep -c "$(printf '\tevoked\t')" a.truth.tsv)" = 3 ] ||
  fail "expected 3 evoked rows"
checks=$((checks + 1))
grep -q "$(printf '\tevoked\t3\t1\t2.500000000\t')" a.truth.tsv ||
  fail "third stimulus row"
checks=$((checks + 1))
grep -q '"seed": 5,' a.truth.json || fail "seed not in the JSON"
checks=$((checks + 1))
grep -q '"m": 6,' a.truth.json || fail "derived m not in the JSON"

# --- same seed, same bytes; another seed, other bytes ---
mkdir again
(cd again && "$Q" simulate --seed 5 --duration 3 -o a.wav) ||
  fail "second run failed"
for f in a.wav a.truth.tsv a.truth.json; do
  checks=$((checks + 1))
  cmp -s "$f" "again/$f" || fail "$f differs between runs with one seed"
done
run 0 "$Q" simulate --seed 6 --duration 3 -o b.wav
checks=$((checks + 1))
cmp -s a.wav b.wav && fail "seeds 5 and 6 gave the same recording"
# Without --seed a seed is chosen and recorded.
run 0 "$Q" simulate --duration 1 -o c.wav
checks=$((checks + 1))
grep -q '"seed": [0-9][0-9]*,' c.truth.json || fail "chosen seed not recorded"

# --- FLAC, voltage clamp, presets, episodic ---
run 0 "$Q" simulate --seed 1 --duration 1 --clamp voltage --pink 1 \
  --hum 0.5 --drift 1 -o vc.flac
run 0 "$Q" info vc.flac
expect_out_match "$(printf 'vc.flac\tFLAC\tpcm24\t20000\t20000\t1\t1\t1\tIm\tpA')"
for p in frog-nmj-low-ca mammal-nmj cns-mepsc; do
  run 0 "$Q" simulate --seed 2 --duration 1 --preset "$p" -o "p-$p.wav"
done
checks=$((checks + 1))
grep -q 'amplitude_pA' p-cns-mepsc.truth.tsv || fail "cns-mepsc not in pA"
# An option overrides its preset wherever it stands.
run 0 "$Q" simulate --q 0.3 --seed 2 --duration 1 --preset frog-nmj-low-ca \
  -o over.wav
checks=$((checks + 1))
grep -q '"q": 0.3,' over.truth.json || fail "--q did not override preset"
run 0 "$Q" simulate --seed 3 --sweeps 3 --sweep-length 0.5 --sweep-stim 0.1 \
  -o ep.wav
checks=$((checks + 1))
[ "$(grep -c "$(printf '\tevoked\t')" ep.truth.tsv)" = 3 ] ||
  fail "episodic: expected 3 evoked rows"
checks=$((checks + 1))
grep -q "$(printf '\tevoked\t2\t1\t0.600000000\t')" ep.truth.tsv ||
  fail "episodic: stimulus 2 at 0.6 s"
printf 'stim_s\n0.2\n0.25\n0.7\n' > stims.tsv
run 0 "$Q" simulate --seed 3 --duration 1 --stim-table stims.tsv --train 2 \
  --train-interval 10 -o tab.wav
checks=$((checks + 1))
[ "$(grep -c "$(printf '\tevoked\t')" tab.truth.tsv)" = 6 ] ||
  fail "stimulus table: expected 6 evoked rows"

# --- amplitudes only ---
run 0 "$Q" simulate --seed 9 --amplitudes-only --duration 20 -o amp.tsv
expect_no_out
checks=$((checks + 1))
grep -q "$(printf '^stimulus\tpulse\tstim_s\tamplitude_mV\tquanta\tsham_mV$')" amp.tsv ||
  fail "amplitude table header"
# The shams are N(0, noise^2): over 2000 of them the mean within 3 SE
# (0.1 / sqrt(2000)) of 0 and the SD within 3 SE (0.1 / sqrt(4000)) of 0.1.
# (Seeds 1-30 put the SD at z = -0.1, 1.5, ..., one of them, seed 9, at
# -3.3: a 3 SE test fails for 0.3 % of seeds.)
run 0 "$Q" simulate --seed 1 --amplitudes-only --duration 2000 \
  --stim-period 1 --noise 0.1 --mini-rate 0 -o shams.tsv
checks=$((checks + 1))
awk -F'\t' '!/^#/ && $6 != "sham_mV" { n++; s += $6; ss += $6 * $6 }
  END { m = s / n; sd = sqrt(ss / n - m * m)
        exit !(n == 2000 && m * m < (3 * 0.1 / sqrt(2000)) ^ 2 &&
               (sd - 0.1) ^ 2 < (3 * 0.1 / sqrt(4000)) ^ 2) }' shams.tsv ||
  fail "shams not N(0, 0.1^2)"
checks=$((checks + 1))
[ "$(grep -vc '^#' amp.tsv)" = 21 ] || fail "expected 20 stimuli"
checks=$((checks + 1))
grep -q "$(printf '^onset_s\tamplitude_mV$')" amp.minis.tsv ||
  fail "minis table header"
run 0 "$Q" simulate --seed 9 --amplitudes-only --duration 5 --mini-rate 0 \
  -o -
expect_out_match "$(printf '^1\t1\t0.500000000\t')"
checks=$((checks + 1))
[ ! -e ./-.minis.tsv ] || fail "stdout run wrote a minis table"

# --- bad input: exact message, exit 2, nothing written ---
run 2 "$Q" simulate --p 1.5 -o bad.wav
expect_err "$(printf 'quantal: simulate: --p: 1.5 is outside [0, 1]\n%s' "$try")"
no_file bad.wav bad.truth.tsv bad.truth.json
run 2 "$Q" simulate --n 0 -o bad.wav
expect_err "$(printf 'quantal: simulate: --n: 0 is outside [1, 10000000]\n%s' "$try")"
run 2 "$Q" simulate --duration 0 -o bad.wav
expect_err "$(printf 'quantal: simulate: --duration: must be positive\n%s' "$try")"
run 2 "$Q" simulate --duration -1 -o bad.wav
expect_err "$(printf 'quantal: simulate: --duration: -1 is outside [0, 1e+07]\n%s' "$try")"
run 2 "$Q" simulate --mini-rate -1 -o bad.wav
expect_err "$(printf 'quantal: simulate: --mini-rate: -1 is outside [0, 100000]\n%s' "$try")"
run 2 "$Q" simulate --p nan -o bad.wav
expect_err "$(printf "quantal: simulate: --p: 'nan' is not a number\n%s" "$try")"
run 2 "$Q" simulate --rise 2 --decay 1 -o bad.wav
expect_err "$(printf 'quantal: simulate: --decay (1 ms) must be longer than --rise (2 ms)\n%s' "$try")"
run 2 "$Q" simulate --preset toad -o bad.wav
expect_err "$(printf "quantal: simulate: unknown preset 'toad' (frog-nmj-low-ca, mammal-nmj, cns-mepsc)\n%s" "$try")"
run 2 "$Q" simulate --frobnicate -o bad.wav
expect_err "$(printf "quantal: simulate: unknown option '--frobnicate'\n%s" "$try")"
run 2 "$Q" simulate --seed
expect_err "$(printf "quantal: simulate: option '--seed' needs a value\n%s" "$try")"
run 2 "$Q" simulate --seed -4 -o bad.wav
expect_err "$(printf "quantal: simulate: --seed: '-4' is not a whole number >= 0\n%s" "$try")"
run 2 "$Q" simulate --duration 1
expect_err "$(printf 'quantal: simulate: no output file given (-o OUT.wav|OUT.flac)\n%s' "$try")"
run 2 "$Q" simulate --duration 1 -o bad.txt
expect_err "$(printf "quantal: simulate: output 'bad.txt' must end in .wav or .flac (or give --amplitudes-only)\n%s" "$try")"
run 2 "$Q" simulate --q 90 -o bad.wav
expect_err 'quantal: simulate: quantal amplitude 90 mV is not below the driving force |E_syn - E_rest| = 80 mV'
run 2 "$Q" simulate --model poisson --tau-d 100 -o bad.wav
expect_err 'quantal: simulate: short-term plasticity needs release sites: use the binomial or beta-binomial model'
run 2 "$Q" simulate --model betabinomial --p 0.5 --cv-p 1.5 -o bad.wav
expect_err_match 'cv_p = 1.5 is too large for p = 0.5'
run 2 "$Q" simulate --amplitudes-only -o -
expect_err_match 'cannot also write the minis table'
no_file bad.wav bad.truth.tsv bad.truth.json
printf 'stim_s\n0.5\n0.2\n' > unsorted.tsv
run 3 "$Q" simulate --stim-table unsorted.tsv -o bad.wav
expect_err "quantal: simulate: unsorted.tsv: row 2: stimulus time '0.2' is not a number >= 0 and >= the one before"
run 3 "$Q" simulate --stim-table missing.tsv -o bad.wav
expect_err_match '^quantal: simulate: missing.tsv: '
no_file bad.wav bad.truth.tsv bad.truth.json

# --- unwritable outputs: exit 3, nothing left behind ---
run 3 "$Q" simulate --duration 1 -o nodir/x.wav
expect_err_match '^quantal: simulate: nodir/x.wav: cannot create a file in its folder'
# When the last file cannot be renamed into place, the first two go too.
mkdir blocked.truth.json
run 3 "$Q" simulate --seed 1 --duration 1 -o blocked.wav
expect_err_match '^quantal: simulate: blocked.truth.json: is a directory'
no_file blocked.wav blocked.truth.tsv
checks=$((checks + 1))
[ -z "$(ls -a | grep '^\.blocked')" ] || fail "temporary files left: $(ls -a)"
if [ -w /dev/full ]; then
  "$Q" simulate --amplitudes-only --mini-rate 0 --duration 2 -o - \
    >/dev/full 2>err
  rc=$?
  checks=$((checks + 1))
  [ "$rc" = 3 ] || fail "writing to /dev/full exited $rc, not 3"
  expect_err_match '^quantal: simulate: write error: No space left on device'
fi

finish
