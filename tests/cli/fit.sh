#!/bin/sh
# fit.sh - quantal fit: exit codes, stdout, exact stderr, no partial output.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
D="$top_srcdir/data"

run 0 "$QUANTAL" fit --help
expect_out_match '^Usage: quantal fit'

# The bundled binomial synapse (n = 20, p = 0.3, q = 0.5 mV).
run 0 "$QUANTAL" fit --no-ci "$D/amplitudes.tsv"
expect_out_match '^kind	model	name	value	ci_low	ci_high	boot_low	boot_high	unit$'
expect_out_match '^parameter	binomial	q	0\.[0-9]+	NA'
expect_out_match '^# best model \(lowest AIC\): '
run 0 "$QUANTAL" fit --model poisson --no-ci --json -o res.json "$D/amplitudes.tsv"
expect_no_out
checks=$((checks + 1))
grep -q '"best_model": "poisson"' res.json || fail "json lacks best_model"

# Joint fit with minis, profile intervals.
run 0 "$QUANTAL" fit --model binomial --n-max 40 --minis "$D/amplitudes.minis.tsv" "$D/amplitudes.tsv"
expect_out_match '^classical	direct	m	'
expect_out_match '^parameter	binomial	n	'

# Bad input.
printf 'amplitude_mV\n1\n2\n3\n' > few.tsv
run 1 "$QUANTAL" fit -o out.tsv few.tsv
expect_err "quantal: fit: few.tsv: need at least 10 amplitudes, got 3"
no_file out.tsv
printf 'amplitude_mV\n1\n2\nabc\n' > text.tsv
run 3 "$QUANTAL" fit text.tsv
expect_err "quantal: fit: text.tsv: row 3: amplitude_mV is not a number ('abc')"
printf 'x\ty\n1\t2\n' > nocol.tsv
run 3 "$QUANTAL" fit nocol.tsv
expect_err "quantal: fit: nocol.tsv: no amplitude_<unit> column"
run 3 "$QUANTAL" fit --column amplitude_pA "$D/amplitudes.tsv"
expect_err "quantal: fit: $D/amplitudes.tsv: no column 'amplitude_pA'"
printf 'amplitude_mV\n' > c.tsv
for i in 1 2 3 4 5 6 7 8 9 10 11; do echo 0.5 >> c.tsv; done
run 1 "$QUANTAL" fit c.tsv
expect_err "quantal: fit: c.tsv: all 11 amplitudes equal 0.5: nothing to fit"
printf 'amplitude_pA\n1\n2\n' > minis_pA.tsv
run 3 "$QUANTAL" fit --minis minis_pA.tsv "$D/amplitudes.tsv"
expect_err "quantal: fit: minis_pA.tsv: minis are in 'pA' but the amplitudes in 'mV'"
printf 'amplitude_mV\tfailure\n' > fail.tsv
for i in 1 2 3 4 5 6 7 8 9 10 11 12; do printf '0.0%s\t1\n' "$i" >> fail.tsv; done
run 1 "$QUANTAL" fit fail.tsv
expect_err "quantal: fit: fail.tsv: all 12 trials are failures: only the failures estimate (m = 0) is reported"
expect_out_match '^classical	failures	m	0	0	'
run 2 "$QUANTAL" fit --model binomal "$D/amplitudes.tsv"
expect_err_match "unknown model 'binomal'"
run 2 "$QUANTAL" fit --level 2 "$D/amplitudes.tsv"
run 2 "$QUANTAL" fit --bootstrap -1 "$D/amplitudes.tsv"
run 2 "$QUANTAL" fit
expect_err_match "no amplitude table given"
run 3 "$QUANTAL" fit missing.tsv
no_file missing.tsv
run 3 "$QUANTAL" fit --no-ci --model poisson -o /dev/full "$D/amplitudes.tsv"
# --group-by: each group's rows are exactly what a fit of that group's
# table alone reports (same data, same options), in one table with a group
# column; a group too small to fit is reported by name and skipped, the
# others kept. Groups come in order of first appearance (even: row 1).
awk -F '\t' 'BEGIN { OFS = "\t" } /^#/ { next }
  !h { print "cell", $0; h = 1; next }
  { g = (NR % 2) ? "odd" : "even"; print g, $0 > (g ".tsv.body"); print g, $0 }' \
  "$D/amplitudes.tsv" > grouped.tsv
for g in odd even; do
  { head -n 1 grouped.tsv; cat "$g.tsv.body"; } > "$g.tsv"
  "$QUANTAL" fit --model poisson --no-ci "$g.tsv" | grep -v '^#' | tail -n +2 |
    sed "s/^/$g	/" > "$g.expected"
done
run 0 "$QUANTAL" fit --group-by cell --model poisson --no-ci grouped.tsv
expect_out_match '^group	kind	model	name	value	'
checks=$((checks + 1))
grep -v '^#' out | tail -n +2 > got
cat even.expected odd.expected | cmp -s - got ||
  fail "fit --group-by rows differ from the fits of each group alone"
printf 'tiny\t1\t1\t0\t1.5\t3\n' >> grouped.tsv
run 1 "$QUANTAL" fit --group-by cell --model poisson --no-ci grouped.tsv
expect_err "quantal: fit: grouped.tsv [cell tiny]: need at least 10 amplitudes, got 1"
expect_out_match '^odd	parameter	poisson	m	'
expect_out_match '^even	parameter	poisson	m	'
expect_out_match '^# tiny: no fit'
run 3 "$QUANTAL" fit --group-by nope grouped.tsv
expect_err "quantal: fit: grouped.tsv: no column 'nope' (--group-by)"
run 2 "$QUANTAL" fit --group-by cell --bins b.tsv grouped.tsv
expect_err_match "group-by does not go with"
# --noise-sd column: sigma_0 is the amplitude's own SD (amplitude_sd_*,
# as evoked writes it) rather than the baseline trace's (noise_sd_*).
awk -F '\t' 'BEGIN { OFS = "\t" } /^#/ { next }
  !h { print $0, "noise_sd_mV", "amplitude_sd_mV"; h = 1; next }
  { print $0, 0.5, 0.1 }' "$D/amplitudes.tsv" > sd.tsv
run 0 "$QUANTAL" fit --model poisson --no-ci --noise-sd column --json sd.tsv
checks=$((checks + 1))
grep -q '"noise_sd_fixed": 0.1[,}]' out || fail "--noise-sd column did not take amplitude_sd_mV: $(grep -o '"noise_sd_fixed": [^,]*' out)"
# A figure of the fit.
if "$QUANTAL" --help | grep -q '^  plot '; then
  run 0 "$QUANTAL" fit "$top_srcdir/data/amplitudes.tsv" --minis "$top_srcdir/data/amplitudes.minis.tsv" --plot fit.svg -o fit.tsv
  checks=$((checks + 1))
  grep -q '<svg' fit.svg || fail "fit --plot wrote no SVG"
fi
finish
