#!/bin/sh
# evoked.sh - quantal evoked: output, stimulus sources and bad input.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
q=$QUANTAL

# A 10 kHz text recording, 20.5 s: Vm with 0.1 mV noise and, at every
# stimulus (0.5 s, 1.5 s, ...), a response of 2 mV (odd stimuli) or none
# (even ones); TTL pulses of 1 ms on channel 2.
awk 'BEGIN {
  srand(3); print "Vm (mV)\tTTL (V)"
  for (i = 0; i < 205000; i++) {
    t = i / 10000; s = int(t - 0.5 + 1e-9); ds = t - 0.5 - s
    n = (rand() + rand() + rand() + rand() - 2) * 0.17
    v = -70 + n; ttl = 0
    if (t >= 0.5 && ds >= 0 && ds < 0.001) ttl = 5
    u = ds - 0.002
    if (t >= 0.5 && s % 2 == 0 && u > 0 && u < 0.05)
      v += 2 * (exp(-u / 0.005) - exp(-u / 0.0005)) / 0.7
    printf "%.5f\t%g\n", v, ttl
  }
}' > rec.txt

run 0 "$q" evoked --rate 10000 --stim-channel 2 rec.txt -o ev.tsv
expect_no_out
expect_err_match '^quantal: evoked: rec.txt: 20 stimuli, 10 failures \(50.0 %\); '
checks=$((checks + 1))
grep -q '^stimulus	pulse	stim_s	amplitude_mV	latency_ms	peak_ms	baseline_mV	noise_sd_mV	amplitude_sd_mV	area_mV_ms	z	failure	sham_mV	sham_after_mV$' ev.tsv ||
  fail "evoked header row"
checks=$((checks + 1))
[ "$(grep -vc '^#' ev.tsv)" = 21 ] || fail "expected 20 rows and a header"
# Odd stimuli respond (about 2 mV), even ones fail.
checks=$((checks + 1))
awk -F'\t' '!/^#/ && NR > 1 && $1 != "stimulus" {
  want = ($1 % 2 == 1) ? 0 : 1
  if ($12 != want) bad++
  if (!want && ($4 < 1.8 || $4 > 2.2)) bad++
} END { exit bad > 0 }' ev.tsv || fail "failures or amplitudes wrong: $(cat ev.tsv)"

# The same stimuli as a protocol and as a table give the same table body.
run 0 "$q" evoked --rate 10000 --first 0.5 --period 1 rec.txt -o proto.tsv
checks=$((checks + 1))
[ "$(grep -v '^#' proto.tsv)" = "$(grep -v '^#' ev.tsv)" ] ||
  fail "protocol and trigger channel disagree"
printf 'stim_s\n' > times.tsv
seq 0.5 1 19.5 >> times.tsv
run 0 "$q" evoked --rate 10000 --stimuli times.tsv rec.txt -o table.tsv
checks=$((checks + 1))
[ "$(grep -v '^#' table.tsv)" = "$(grep -v '^#' ev.tsv)" ] ||
  fail "stimulus table and trigger channel disagree"

run 0 "$q" evoked --rate 10000 --stim-channel 2 --json rec.txt
checks=$((checks + 1))
python3 -c 'import json; d = json.load(open("out")); assert len(d["responses"]) == 20; assert d["summary"]["failures"] == 10' ||
  fail "--json output"
# The shams of the table are those behind the null: as many as the
# summary counts, and their 1.4826 x MAD is amplitude_sd (to the 4
# digits it is printed with; the shams have 6).
checks=$((checks + 1))
python3 - ev.tsv out << 'EOF' || fail "shams: $(cut -f 9,13,14 ev.tsv)"
import json, math, sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if not l.startswith('#')]
h = rows[0]
s = [float(r[h.index(c)]) for r in rows[1:] for c in ('sham_mV', 'sham_after_mV')]
s = [v for v in s if not math.isnan(v)]
med = lambda v: (sorted(v)[(len(v) - 1) // 2] + sorted(v)[len(v) // 2]) / 2
m = med(s)
sd = 1.4826 * med([abs(v - m) for v in s])
want = float(rows[1][h.index('amplitude_sd_mV')])
d = json.load(open(sys.argv[2]))
assert len(s) == d['summary']['shams'] and len(s) >= 10, (len(s), d['summary'])
assert abs(sd - want) <= 1e-3 * want, (sd, want)
EOF

# Stimuli 100 ms apart: between the end of one 30 ms response window and
# the next 5 ms baseline there are at most 65 ms, too little for the sham
# window after one response and the one before the next stimulus (35 ms
# each, baseline included) without overlap. The null uses both; the table
# writes only shams that do not overlap (independent draws of the noise,
# as quantal fit takes them): never the second of such a pair, but one in
# every gap.
awk 'BEGIN { srand(5); print "Vm (mV)"
  for (i = 0; i < 20000; i++) printf "%.5f\n", -70 + (rand() + rand() + rand() + rand() - 2) * 0.17 }' > dense.txt
run 0 "$q" evoked --rate 10000 --first 0.05 --period 0.1 --polarity positive dense.txt -o dense.tsv
checks=$((checks + 1))
awk -F'\t' '!/^#/ && $1 != "stimulus" {
    if (prev_after != "nan" && prev_after != "" && $13 != "nan") bad++
    n += ($13 != "nan") + ($14 != "nan"); prev_after = $14; rows++ }
  END { exit bad > 0 || n < rows - 1 }' dense.tsv ||
  fail "dense stimuli: overlapping or missing shams: $(cut -f 1,13,14 dense.tsv | tr '\n' ' ')"

# Minis between the responses go to their own table.
run 0 "$q" evoked --rate 10000 --stim-channel 2 rec.txt -o ev2.tsv --minis minis.tsv
expect_err_match '^quantal: evoked: rec.txt: [0-9]+ minis between the responses, mean amplitude '
checks=$((checks + 1))
grep -q '^onset_s	peak_s	amplitude_mV	baseline_mV	rise_10_90_ms	decay_tau_ms	half_width_ms	area_mV_ms	criterion	overlap$' minis.tsv ||
  fail "minis table header"
checks=$((checks + 1))
[ "$(grep -v '^#' ev2.tsv)" = "$(grep -v '^#' ev.tsv)" ] || fail "--minis changed the evoked table"

# A figure next to the table.
if "$q" --help | grep -q '^  plot '; then
  run 0 "$q" evoked --rate 10000 --stim-channel 2 rec.txt -o ev3.tsv --plot ev.svg
  checks=$((checks + 1))
  grep -q '<svg' ev.svg || fail "--plot wrote no SVG"
  run 2 "$q" evoked --rate 10000 --stim-channel 2 rec.txt --plot ev.png
  expect_err_match 'give -o FILE'
  no_file ev.png
fi

# Bad input.
run 2 "$q" evoked --rate 10000 rec.txt
expect_err "quantal: evoked: say where the stimuli are: --stim-channel, --stimuli, --first/--period, --stim-from-artefact or --sweep-stim
Try 'quantal evoked --help' for more information."
run 2 "$q" evoked --rate 10000 --stim-channel 2 --first 0.5 --period 1 rec.txt
expect_err_match "only one source"
run 2 "$q" evoked --rate 10000 --stim-channel 3 rec.txt -o x.tsv
expect_err "quantal: evoked: rec.txt: channel 3 does not exist (the file has 2)"
no_file x.tsv
run 1 "$q" evoked --rate 10000 --stim-channel 2 --stim-threshold 10 rec.txt -o x.tsv
expect_err "quantal: evoked: rec.txt: no stimuli found: no rising edge crossed 10 on channel 2 (range 0 to 5)"
no_file x.tsv
cut -f1 rec.txt | sed '1!s/$/\t0/; 1s/$/\tTTL/' > flat.txt
run 1 "$q" evoked --rate 10000 --stim-channel 2 flat.txt -o x.tsv
expect_err "quantal: evoked: flat.txt: no stimuli found: trigger channel 2 is flat (0)"
no_file x.tsv
run 2 "$q" evoked --rate 10000 --first 0.5 --period 0.02 rec.txt -o x.tsv
expect_err "quantal: evoked: rec.txt: stimuli 1 and 2 are 20 ms apart, closer than the response window (30 ms)"
no_file x.tsv
run 2 "$q" evoked --rate 10000 --stim-channel 2 --blank 40 rec.txt
expect_err "quantal: evoked: rec.txt: the artefact blanking (40 ms) is not shorter than the response window (30 ms)"
run 2 "$q" evoked --rate 10000 --stim-channel 2 --alpha 2 rec.txt
expect_err_match "^quantal: evoked: --alpha: 2 is outside"
run 2 "$q" evoked --rate 10000 --stim-channel 2 --polarity up rec.txt
expect_err_match "is not auto, positive or negative"
run 3 "$q" evoked --stim-channel 2 missing.wav -o x.tsv
expect_err "quantal: evoked: missing.wav: No such file or directory"
no_file x.tsv
run 3 "$q" evoked --rate 10000 --stimuli nope.tsv rec.txt
expect_err "quantal: evoked: nope.tsv: No such file or directory"
printf 'stim_s\n1.5\n0.5\n' > back.tsv
run 3 "$q" evoked --rate 10000 --stimuli back.tsv rec.txt
expect_err "quantal: evoked: back.tsv: stimulus times must increase (row 2)"
printf 'stim_s\nsoon\n' > text.tsv
run 3 "$q" evoked --rate 10000 --stimuli text.tsv rec.txt
expect_err "quantal: evoked: text.tsv: row 1: 'soon' is not a time in seconds"
run 2 "$q" evoked --rate 10000 --sweep-stim 30 rec.txt
expect_err_match "beyond sweep 1"

# A device or pipe is written in place, never replaced by a renamed file
# (as root, renaming over /dev/null would turn it into a regular file). A
# FIFO of our own stands in for the device, so a faulty build cannot harm
# the machine's /dev/null.
mkfifo pipe
cat pipe > piped.tsv &
run 0 "$q" evoked --rate 10000 --stim-channel 2 rec.txt -o pipe
wait
checks=$((checks + 1))
[ -p pipe ] || fail "the FIFO was replaced by a file"
checks=$((checks + 1))
[ "$(grep -v '^#' piped.tsv)" = "$(grep -v '^#' ev.tsv)" ] ||
  fail "the table did not come through the FIFO"

# An existing output is replaced only by a complete new one.
echo previous > keep.tsv
run 2 "$q" evoked --rate 10000 --first 0.5 --period 0.02 rec.txt -o keep.tsv
checks=$((checks + 1))
[ "$(cat keep.tsv)" = previous ] || fail "failed run touched the old output"
run 3 sh -c "\"$q\" evoked --rate 10000 --stim-channel 2 rec.txt > /dev/full"
expect_err_match "write error: No space left on device"
finish
