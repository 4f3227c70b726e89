#!/bin/sh
# fit.sh - quantal fit: exit codes, stdout, exact stderr, no partial output.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
D="$top_srcdir/data"

run 0 "$QUANTAL" fit --help
expect_out_match '^Usage: quantal fit'

# The bundled binomial synapse (n = 20, p = 0.3, q = 0.5 mV).
run 0 "$QUANTAL" fit --no-ci "$D/amplitudes.tsv"
expect_out_match '^kind	model	name	value	ci_low	ci_high	boot_low	boot_high	cal_low	cal_high	unit$'
expect_out_match '^parameter	binomial	q	0\.[0-9]+	NA'
expect_out_match '^# best model \(lowest AIC\): '
run 0 "$QUANTAL" fit --model poisson --no-ci --json -o res.json "$D/amplitudes.tsv"
expect_no_out
checks=$((checks + 1))
grep -q '"best_model": "poisson"' res.json || fail "json lacks best_model"

# The bootstrap-calibrated intervals: a threshold for every continuous
# parameter of the model (none for n and cv_q), and an interval that holds
# the Wilks interval.
run 0 "$QUANTAL" fit --model poisson --bootstrap 40 --quiet "$D/amplitudes.tsv"
checks=$((checks + 1))
awk -F'\t' '$1 == "parameter" { n++
    if ($3 == "cv_q") { if ($9 != "NA" || $10 != "NA") bad = 1; next }
    if (!($9 <= $5 && $10 >= $6 && $9 < $4 && $4 < $10)) bad = 1 }
  END { exit bad || n != 5 }' out || fail "calibrated intervals: $(cat out)"
run 0 "$QUANTAL" fit --model poisson --bootstrap 40 --quiet --json "$D/amplitudes.tsv"
checks=$((checks + 1))
[ "$(grep -o '"cal_threshold": [0-9]' out | wc -l)" = 4 ] ||
  fail "JSON: no calibrated thresholds: $(cat out)"

# Joint fit with minis, profile intervals.
run 0 "$QUANTAL" fit --model binomial --n-max 40 --minis "$D/amplitudes.minis.tsv" "$D/amplitudes.tsv"
expect_out_match '^classical	direct	m	'
expect_out_match '^parameter	binomial	n	'

# Shams (the noise alone, one per trial: simulate's sham_mV column) enter
# the likelihood. The shams alone give sigma_0 an interval of width
# about 2 z s / sqrt(2 N) (N s^2 / sigma_0^2 is chi-square with N
# degrees); the amplitudes can only add information, so the joint
# interval may exceed that only by the difference between observed and
# expected information (25 % allowed). Without the shams, at p 0.6 (no
# failures), the interval is wider.
"$QUANTAL" simulate --amplitudes-only --seed 5 --duration 300.5 \
  --stim-period 1 --model binomial --n 20 --p 0.6 --q 0.5 --cv-q 0.25 \
  --noise 0.1 --mini-rate 1 -o sh.tsv 2> /dev/null ||
  fail "simulate with shams"
run 0 "$QUANTAL" fit --model binomial --n-max 60 --minis sh.minis.tsv sh.tsv
expect_out_match '; shams: 300$'
cp out with.out
checks=$((checks + 1))
s=$(awk -F'\t' '!/^#/ && NR > 1 && $6 != "sham_mV" { n++; ss += $6 * $6 }
  END { printf "%.9g", sqrt(ss / n) }' sh.tsv)
awk -F'\t' -v s="$s" '$2 == "binomial" && $3 == "sigma_0" {
    w = $6 - $5; th = 2 * 1.959964 * s / sqrt(600)
    exit !(w > 0 && w <= 1.25 * th) }' with.out ||
  fail "sigma_0 interval with shams wider than theirs ($s): $(cat with.out)"
cut -f 1-5 sh.tsv > nosh.tsv
run 0 "$QUANTAL" fit --model binomial --n-max 60 --minis sh.minis.tsv nosh.tsv
checks=$((checks + 1))
awk -F'\t' 'FNR == 1 { f++ } $2 == "binomial" && $3 == "sigma_0" {
    w[f] = $6 - $5 } END { exit !(w[2] > w[1]) }' with.out out ||
  fail "sigma_0 no narrower with shams: $(cat out)"
# --no-shams: the same fit as the table without the column.
grep -v '^#' out > nosh.body
run 0 "$QUANTAL" fit --model binomial --n-max 60 --no-shams --minis sh.minis.tsv sh.tsv
checks=$((checks + 1))
grep -v '^#' out | cmp -s - nosh.body || fail "--no-shams differs from no sham column"
# sigma_0 fixed: the shams would add a constant, and are left out.
run 0 "$QUANTAL" fit --model binomial --n-max 60 --noise-sd 0.1 --json \
  --minis sh.minis.tsv sh.tsv
checks=$((checks + 1))
grep -q '"n_shams": 300, "n_shams_used": 0' out ||
  fail "shams used with sigma_0 fixed: $(cat out)"
# nan: no sham at that stimulus; text is an error; all 0 cannot be noise.
awk -F'\t' -v OFS='\t' '!/^#/ && NR > 1 && $6 != "sham_mV" && $1 % 2 { $6 = "nan" }
  { print }' sh.tsv > half.tsv
run 0 "$QUANTAL" fit --model binomial --n-max 60 --no-ci half.tsv
expect_out_match '; shams: 150$'
awk -F'\t' -v OFS='\t' '$1 == "7" { $6 = "x1" } { print }' sh.tsv > shtext.tsv
run 3 "$QUANTAL" fit -o out.tsv shtext.tsv
expect_err "quantal: fit: shtext.tsv: row 7: sham_mV is not a number ('x1')"
no_file out.tsv
awk -F'\t' -v OFS='\t' '!/^#/ && $6 != "sham_mV" { $6 = 0 } { print }' \
  sh.tsv > shzero.tsv
run 1 "$QUANTAL" fit -o out.tsv shzero.tsv
expect_err "quantal: fit: shzero.tsv: the shams are all 0: they carry no noise"
no_file out.tsv

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
printf 'tiny\t1\t1\t0\t1.5\t3\tnan\n' >> grouped.tsv
run 1 "$QUANTAL" fit --group-by cell --model poisson --no-ci grouped.tsv
expect_err "quantal: fit: grouped.tsv [cell tiny]: need at least 10 amplitudes, got 1"
expect_out_match '^odd	parameter	poisson	m	'
expect_out_match '^even	parameter	poisson	m	'
expect_out_match '^# tiny: no fit'
run 3 "$QUANTAL" fit --group-by nope grouped.tsv
expect_err "quantal: fit: grouped.tsv: no column 'nope' (--group-by)"
run 2 "$QUANTAL" fit --group-by cell --bins b.tsv grouped.tsv
expect_err_match "take one ungrouped table"
# Several tables: each one a group, labelled by its path, with the same
# rows as fitting it alone.
run 0 "$QUANTAL" fit --model poisson --no-ci even.tsv odd.tsv
checks=$((checks + 1))
grep -v '^#' out | tail -n +2 > got
sed 's/^even	/even.tsv	/' even.expected > both.expected
sed 's/^odd	/odd.tsv	/' odd.expected >> both.expected
cmp -s both.expected got || fail "fit of two tables differs from each alone"
run 2 "$QUANTAL" fit --group-by cell even.tsv odd.tsv
expect_err_match "group-by takes one table"
# --shared-q: three conditions of one synapse (n = 6, q = 1 mV, p = 0.2,
# 0.5, 0.8), one table each or one table with a condition column: the
# same fit either way; n and q inside their 99.9 % intervals (a miss is
# a 1 in 1000 event for calibrated intervals; scripts/bench/fit-shared
# measures the calibration).
for c in 1 2 3; do
  p=$(echo "0.2 0.5 0.8" | cut -d' ' -f"$c")
  "$QUANTAL" simulate --amplitudes-only --seed "$c" --duration 150.5 \
    --stim-period 1 --model binomial --n 6 --p "$p" --q 1 --cv-q 0.15 \
    --noise 0.3 --mini-rate 0 -o "c$c.tsv" 2>/dev/null ||
    fail "simulate condition $c"
done
run 0 "$QUANTAL" fit --shared-q --n-max 20 --level 0.999 c1.tsv c2.tsv c3.tsv
expect_out_match '^group	kind	name	value	ci_low	ci_high	boot_low	boot_high	unit$'
expect_out_match '^all	parameter	q	'
expect_out_match '^c3.tsv	parameter	p	'
expect_out_match '^all	compare	lrt_df	8	'
checks=$((checks + 1))
awk -F '\t' '$1 == "all" && $3 == "n" && !($5 <= 6 && 6 <= $6) { print "n", $0 }
  $1 == "all" && $3 == "q" && !($5 <= 1 && 1 <= $6) { print "q", $0 }' out > miss
[ -s miss ] && fail "shared-q intervals miss the truth: $(cat miss)"
grep -v '^#' out | cut -f 2- > tables.rows
awk -F '\t' 'BEGIN { OFS = "\t" } FNR == 1 { f++ } /^#/ { next }
  /^stimulus/ { if (f == 1) print "condition", $0; next }
  { print "k" f, $0 }' c1.tsv c2.tsv c3.tsv > conditions.tsv
run 0 "$QUANTAL" fit --shared-q --n-max 20 --level 0.999 --group-by condition conditions.tsv
expect_out_match '^k2	parameter	m	'
checks=$((checks + 1))
grep -v '^#' out | cut -f 2- | cmp -s - tables.rows ||
  fail "fit --shared-q: --group-by and one table a condition differ"
run 0 "$QUANTAL" fit --shared-q --n-max 20 --no-ci --json c1.tsv c2.tsv c3.tsv
expect_out_match '"model": "binomial_shared_q"'
expect_out_match '"p_chisq": [0-9]'
run 2 "$QUANTAL" fit --shared-q c1.tsv
expect_err_match "shared-q needs groups"
run 2 "$QUANTAL" fit --shared-q --model poisson c1.tsv c2.tsv
expect_err_match "binomial model only"
head -n 12 c2.tsv > short.tsv
run 1 "$QUANTAL" fit --shared-q --n-max 20 -o shared.tsv c1.tsv short.tsv
expect_err_match "^quantal: fit: short.tsv: need at least 10 amplitudes, got"
no_file shared.tsv
# --noise-sd column: sigma_0 is the amplitude's own SD (amplitude_sd_*,
# as evoked writes it) rather than the baseline trace's (noise_sd_*).
awk -F '\t' 'BEGIN { OFS = "\t" } /^#/ { next }
  !h { print $0, "noise_sd_mV", "amplitude_sd_mV"; h = 1; next }
  { print $0, 0.5, 0.1 }' "$D/amplitudes.tsv" > sd.tsv
run 0 "$QUANTAL" fit --model poisson --no-ci --noise-sd column --json sd.tsv
checks=$((checks + 1))
grep -q '"noise_sd_fixed": 0.1[,}]' out || fail "--noise-sd column did not take amplitude_sd_mV: $(grep -o '"noise_sd_fixed": [^,]*' out)"
# sigma_q's lower end for seed SEED of scripts/bench/fit-coverage's cell
# p 0.6, 300 trials (sigma_0 joint, without the shams): between LO and HI
# (mV), else MSG.
sq_low_end() {
  "$QUANTAL" simulate --amplitudes-only --seed "$1" --duration 300.5 \
    --stim-period 1 --model binomial --n 20 --p 0.6 --q 0.5 --cv-q 0.25 \
    --noise 0.1 --mini-rate 1 -o "r$1.sh.tsv" 2> /dev/null
  cut -f 1-5 "r$1.sh.tsv" > "r$1.tsv"
  run 0 "$QUANTAL" fit --model binomial --n-max 60 "r$1.tsv" --minis "r$1.sh.minis.tsv"
  checks=$((checks + 1))
  lo=$(awk -F '\t' '$1 == "parameter" && $3 == "sigma_q" { print $5 }' out)
  awk -v l="$lo" -v a="$2" -v b="$3" 'BEGIN { exit !(l != "" && l + 0 >= a && l + 0 < b) }' ||
    fail "seed $1: sigma_q's lower end $lo, not $4"
}
# An interval end beyond a second mode. Seed 98: the profile of sigma_q
# falls from its maximum at 0.161 mV and rises again to a mode with
# resolved peaks near 0, where it is 0.93 below the maximum (scipy, 3 x 2
# starts per n), well inside the 95 % threshold of 1.92: the lower end is
# the edge, 0. The search had stopped at 0.0109 when its warm start at
# each point was the latest solution at that n (an outside point's) alone.
sq_low_end 98 0 0.001 "the edge (0)"
# An interval end where the likelihood over n has two modes. Seed 317: at
# fixed sigma_q the best n near the lower end is 27, and n = 23, where the
# walk over n from the maximum stops, is a local maximum in n. scipy
# (every n, 6 starts each) has the profile at sigma_q = 0.0215 mV 1.867
# below the maximum, inside the threshold, and the end at 0.0207; before
# the end was checked from every n of n's interval it was reported at
# 0.0228.
sq_low_end 317 0.0195 0.0215 "0.0207 (scipy)"
# The likelihood's sums run eight points a vector where AVX-512 runs and
# four elsewhere (QUANTAL_NO_AVX512 forces four): the same terms added in
# another order, so the fits agree to rounding. Every number of the
# table with intervals, to 1e-6 relative, or to 1e-10 absolute, or (an
# estimate) to 1e-5 of its interval's width. The sums leave out terms by
# their size, which depends on the points sharing a vector, and an
# estimate in a flat direction stops where the optimiser does: with the
# gain left below 1e-10 log-likelihood units, within about
# sqrt(2e-10) = 1.4e-5 standard errors of the maximum, 4e-6 of the
# width (seen: sigma_0 at its 1e-6 mV floor, 9.98241e-07 against
# 9.98215e-07; the Poisson sigma_q, 0.00743325 against 0.00743323 mV
# with the interval 1e-6 to 0.11).
"$QUANTAL" fit "$D/amplitudes.tsv" --minis "$D/amplitudes.minis.tsv" \
  -o lanes8.tsv 2> /dev/null
QUANTAL_NO_AVX512=1 "$QUANTAL" fit "$D/amplitudes.tsv" \
  --minis "$D/amplitudes.minis.tsv" -o lanes4.tsv 2> /dev/null
checks=$((checks + 1))
grep -v '^#' lanes8.tsv > lanes8.body
grep -v '^#' lanes4.tsv > lanes4.body
[ "$(wc -l < lanes8.body)" -gt 10 ] && [ "$(wc -l < lanes8.body)" = "$(wc -l < lanes4.body)" ] ||
  fail "lane widths: the tables differ in length"
paste lanes8.body lanes4.body | awk -F '\t' '
  { h = NF / 2
    for (i = 1; i <= h; i++) {
      a = $i; b = $(i + h)
      if (a == b) continue
      if (a + 0 == a && b + 0 == b && a != "" && b != "") {
        d = a - b; if (d < 0) d = -d
        s = a < 0 ? -a : a; if (s < 1e-300) s = 1e-300
        if (d / s <= 1e-6 || d <= 1e-10) continue
        if (i == 4 && $(i + 1) + 0 == $(i + 1) && $(i + 2) + 0 == $(i + 2)) {
          w = $(i + 2) - $(i + 1); if (w < 0) w = -w
          if (d <= 1e-5 * w) continue
        }
      }
      print "line " NR ", field " i ": " a " against " b; bad = 1
    } }
  END { exit bad }' > lanes.diff || fail "lane widths differ: $(head -n 3 lanes.diff)"
# A figure of the fit.
if "$QUANTAL" --help | grep -q '^  plot '; then
  run 0 "$QUANTAL" fit "$top_srcdir/data/amplitudes.tsv" --minis "$top_srcdir/data/amplitudes.minis.tsv" --plot fit.svg -o fit.tsv
  checks=$((checks + 1))
  grep -q '<svg' fit.svg || fail "fit --plot wrote no SVG"
fi
finish
