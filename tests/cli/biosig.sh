#!/bin/sh
# biosig.sh - recordings read through libbiosig: an EDF file written here
# sample by sample (Kemp et al. 1992), its physical values checked against
# the same arithmetic in Python; a truncated one refused by name.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
command -v python3 > /dev/null || { echo "python3 missing: skipped"; exit 77; }
cat > mkedf.py << 'PYEOF'
import math, struct, sys
# Two channels at 1 kHz, 5 records of 1 s; int16 samples d, physical value
# (d - dmin) (pmax - pmin) / (dmax - dmin) + pmin. Prints, per channel,
# the mean, minimum and maximum of the physical values.
fs, nrec = 1000, 5
chans = [("Vm", "mV", -100.0, 100.0), ("Im", "pA", -2000.0, 2000.0)]
dmin, dmax = -32768, 32767
def f(s, n):
    return s.ljust(n)[:n].encode("ascii")
ns = len(chans)
h = f("0", 8) + f("X X X X", 80) + f("Startdate 01-JAN-2026 X X X", 80)
h += f("01.01.26", 8) + f("00.00.00", 8) + f(str(256 * (ns + 1)), 8)
h += f("", 44) + f(str(nrec), 8) + f("1", 8) + f(str(ns), 4)
for fld in (lambda c: f(c[0], 16), lambda c: f("", 80), lambda c: f(c[1], 8),
            lambda c: f("%g" % c[2], 8), lambda c: f("%g" % c[3], 8),
            lambda c: f(str(dmin), 8), lambda c: f(str(dmax), 8),
            lambda c: f("", 80), lambda c: f(str(fs), 8), lambda c: f("", 32)):
    for c in chans:
        h += fld(c)
vals = [[] for _ in chans]
data = b""
for r in range(nrec):
    for k, (_, _, pmin, pmax) in enumerate(chans):
        for i in range(fs):
            t = r * fs + i
            d = int(round(20000 * math.sin(2 * math.pi * (k + 1) * t / 250.0))) + t % 7
            data += struct.pack("<h", d)
            vals[k].append((d - dmin) * (pmax - pmin) / (dmax - dmin) + pmin)
open(sys.argv[1], "wb").write(h + data)
for v in vals:
    print("%.17g %.17g %.17g" % (sum(v) / len(v), min(v), max(v)))
PYEOF
python3 mkedf.py t.edf > expected.txt || fail "could not write the EDF file"
run 0 "$QUANTAL" info t.edf
expect_out_match '	EDF \(libbiosig\)	float64	1000	5000	5	1	1	Vm	mV	file	'
expect_out_match '	2	Im	pA	file	'
# mean, min and max of each channel to 1e-8 relative (info prints nine
# significant digits).
checks=$((checks + 1))
awk -F '\t' 'NR == FNR { m[FNR] = $1; lo[FNR] = $2; hi[FNR] = $3; next }
  FNR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
  { k = FNR - 1
    if (!near($c["mean"], m[k]) || !near($c["min"], lo[k]) || !near($c["max"], hi[k])) bad = 1 }
  function near(a, b) { return (a - b) ^ 2 <= (1e-8 * (b > 0 ? b : -b) + 1e-9) ^ 2 }
  END { exit bad }' FS=' ' expected.txt FS='\t' out ||
  fail "EDF values differ from the file's: $(cat out)"
# The samples go through every command like any recording.
run 0 "$QUANTAL" convert t.edf t.wav
run 0 "$QUANTAL" info t.wav
expect_out_match '	1	Vm	mV	'
head -c 15000 t.edf > trunc.edf
run 3 "$QUANTAL" info trunc.edf
expect_err "quantal: info: trunc.edf: truncated: the header announces 5 records of 4000 bytes after 768 bytes of header, the file has 15000 bytes"
# Cut inside the header: libbiosig's own message, under the file's name.
head -c 300 t.edf > short.edf
run 3 "$QUANTAL" info short.edf
expect_err_match '^quantal: info: short.edf: libbiosig: '
# A file on which libbiosig itself crashes (its CFS reader, found by the
# fuzzer): the crash stays in the reading child, the command reports it.
tail -c +2 "$top_srcdir/tests/fuzz/regress/recording/biosig-cfs-crash" > crash.cfs
run 3 "$QUANTAL" info crash.cfs
expect_err_match 'quantal: info: crash.cfs: libbiosig failed on it \((signal|exit status) [0-9]+\): a damaged or unsupported file'
# Sweeps: a GDF written by libbiosig itself with two sweep-break events
# (type 0x7ffe) holds three sweeps of 100 samples, each constant (10, 20,
# 30 mV on channel 1): a misplaced boundary would mix two values.
cat > mkgdf.c << 'CEOF'
#include <biosig.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  unsigned k, e, r, spr = 100, nsw = 3;
  double *d = malloc(sizeof *d * 2 * spr * nsw);
  HDRTYPE *h = constructHDR(2, nsw - 1);
  biosig_set_filetype(h, argc > 2 ? BDF : GDF);
  biosig_set_samplerate(h, 1000.0);
  biosig_set_number_of_samples(h, nsw, spr);
  for (k = 0; k < 2; k++) {
    CHANNEL_TYPE *c = biosig_get_channel(h, (int)k);
    biosig_channel_set_label(c, k ? "Im" : "Vm");
    biosig_channel_set_physdim(c, k ? "pA" : "mV");
    if (argc > 2)
      biosig_channel_set_datatype(c, 255 + 24); /* BDF: 24-bit integers */
    else
      biosig_channel_set_datatype_to_int16(c);
    biosig_channel_set_scaling(c, 32767.0, -32768.0, 32767, -32768);
    biosig_channel_set_samples_per_record(c, spr);
    c->OnOff = 1;
  }
  biosig_set_eventtable_samplerate(h, 1000.0);
  for (e = 0; e + 1 < nsw; e++) {
    uint16_t typ = 0x7ffe, chn = 0;
    uint32_t pos = (e + 1) * spr, dur = 0;
    biosig_set_nth_event(h, e, &typ, &pos, &chn, &dur, NULL, NULL);
  }
  h = sopen(argv[1], "w", h);
  if (h == NULL || biosig_check_error(h))
    return 1;
  for (r = 0; r < nsw * spr; r++)
    for (k = 0; k < 2; k++)
      d[k * nsw * spr + r] = (k + 1) * 10.0 * (r / spr + 1);
  if (swrite(d, nsw, h) != nsw)
    return 1;
  sclose(h);
  destructHDR(h);
  return 0;
}
CEOF
if ${CC:-cc} -o mkgdf mkgdf.c -lbiosig -lm 2> cc.err && ./mkgdf t.gdf; then
  run 0 "$QUANTAL" info t.gdf
  expect_out_match '	GDF \(libbiosig\)	float64	1000	300	0.3	3	1	Vm	mV	file	'
  for s in 1 2 3; do
    run 0 "$QUANTAL" info --sweeps "$s" t.gdf
    expect_out_match "	1000	100	0.1	1	1	Vm	mV	file	${s}0	0	0	${s}0	${s}0	0\$"
  done
  # The same samples as 24-bit BDF (no event table there: one sweep):
  # every value exact.
  run 0 ./mkgdf t.bdf bdf
  run 0 "$QUANTAL" info t.bdf
  expect_out_match '	BDF \(libbiosig\)	float64	1000	300	0.3	1	1	Vm	mV	file	20	8.1786082	0	10	30	0$'
  expect_out_match '	BDF \(libbiosig\)	float64	1000	300	0.3	1	2	Im	pA	file	40	16.3572164	0	20	60	0$'
  run 0 "$QUANTAL" convert --sweeps 3 --channels 2 t.gdf g3.wav
  run 0 "$QUANTAL" info g3.wav
  expect_out_match '	1000	100	0.1	1	1	Im	pA	file	60	0	0	60	60	0$'
else
  fail "could not build or run the GDF writer: $(cat cc.err)"
fi
# Text that merely starts like EDF is not taken for it.
printf '0       1.5\n0.001   1.6\n' > notedf.txt
run 0 "$QUANTAL" info --rate 1000 notedf.txt
expect_out_match '	text	'
finish
