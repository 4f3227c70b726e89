#!/bin/sh
# nwb.sh - NWB 2.x recordings: files written here with libhdf5 by mknwb
# (tests/nwb/nwbgen.c) after the NWB schema, read back sample for sample
# through info, convert and the library; malformed ones refused by name.
# No file from DANDI or another NWB writer was available: what is checked
# is the schema as nwbgen writes it.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
: "${MKNWB:?MKNWB must point at tests/nwb/mknwb}"
Q=$QUANTAL

# Three sweeps of two electrodes: elec0 in current clamp (int16 counts,
# conversion 1e-5 V, offset -0.065 V), elec1 in voltage clamp (float32 nA,
# conversion 1e-9 A), 2000 samples each at 10 kHz.
run 0 "$MKNWB" t.nwb
run 0 "$Q" info t.nwb
expect_out_match '^t.nwb	NWB 2.6.0	int16,float32	10000	6000	0.6	3	1	elec0	mV	file	-64.8342143	'
expect_out_match '^t.nwb	NWB 2.6.0	int16,float32	10000	6000	0.6	3	2	elec1	pA	file	-3813.03045	'
expect_err ""
run 0 "$Q" info --json t.nwb
expect_out_match '"sweeps": 3, "protocol": "step_ramp,hold-70"'
expect_out_match '"name": "elec0", "unit": "mV", "unit_source": "file", "scale": 0.0099999997473787516,'
expect_out_match '"name": "elec1", "unit": "pA", "unit_source": "file", "scale": 999.99997171806854,'
# Every sample against data * conversion + offset computed by the writer.
run 0 "$MKNWB" --compare --tolerance 1e-12 t.nwb
expect_out_match '^12000 samples match$'
# Converted to float32 WAV: names and units kept, samples to float32.
run 0 "$Q" convert t.nwb t.wav
expect_no_out
run 0 "$Q" info t.wav
expect_out_match '	WAV	float32	10000	6000	0.6	1	1	elec0	mV	file	'
expect_out_match '	2	elec1	pA	file	'
run 0 "$MKNWB" --compare --tolerance 1e-7 t.wav
expect_out_match '^12000 samples match$'
# Sweeps select series: sweep 2 of elec1 alone.
run 0 "$Q" convert --sweeps 2 --channels 2 t.nwb s2.wav
run 0 "$Q" info s2.wav
expect_out_match '	WAV	float32	10000	2000	0.2	1	1	elec1	pA	file	'

# A user block before the superblock; sweeps of different lengths (as
# ATF's), sweep_number as a dataset and no electrode links, so channels
# are named after the series; no sweep_number at all (name order).
run 0 "$MKNWB" --userblock ub.nwb
run 0 "$MKNWB" --compare --userblock --tolerance 1e-12 ub.nwb
run 0 "$MKNWB" --variable --sweep-dataset --no-electrode v.nwb
run 0 "$Q" info v.nwb
expect_out_match '	10000	6300	0.63	3	1	CurrentClampSeries	mV	file	'
expect_out_match '	2	VoltageClampSeries	pA	file	'
run 0 "$MKNWB" --compare --variable --tolerance 1e-12 v.nwb
run 0 "$MKNWB" --no-sweep --channels 1 ns.nwb
run 0 "$Q" info ns.nwb
expect_out_match '	NWB 2.6.0	int16	10000	6000	0.6	3	1	elec0	mV	file	'

# Malformed files: exit 3, nothing on stdout, the series and field named.
bad() {
  run 0 "$MKNWB" --bad "$1" "$1.nwb"
  run 3 "$Q" info "$1.nwb"
  expect_no_out
  expect_err "quantal: info: $1.nwb: $2"
}
bad rank2 "/acquisition/CurrentClampSeries001/data has rank 2 (a series must be one-dimensional)"
bad no-rate "/acquisition/CurrentClampSeries001/starting_time has no rate attribute"
bad rate-zero "/acquisition/CurrentClampSeries001/starting_time: rate is 0 Hz (must be positive, finite and at most 1e+09)"
bad rate-nan "/acquisition/CurrentClampSeries001/starting_time: rate is nan Hz (must be positive, finite and at most 1e+09)"
bad length "sweep 1: /acquisition/CurrentClampSeries001/data has 2000 samples but /acquisition/VoltageClampSeries001/data 1990 (the channels of a sweep must have the same length)"
bad no-unit "/acquisition/CurrentClampSeries001/data has no unit attribute"
bad conversion-inf "/acquisition/CurrentClampSeries001/data: conversion is inf (must be finite and not 0)"
bad timestamps "/acquisition/CurrentClampSeries001 has timestamps instead of starting_time and rate (only regularly sampled series are supported)"
bad not-nwb "an HDF5 file, but not NWB 2.x: the root group has no neurodata_type attribute"
bad mixed-rate "/acquisition/CurrentClampSeries000 is sampled at 10000 Hz but /acquisition/CurrentClampSeries001 at 5000 Hz (one rate per recording is supported)"
bad text-data "/acquisition/CurrentClampSeries001/data is not numeric"
bad no-series "no intracellular responses: /acquisition holds no CurrentClampSeries, VoltageClampSeries, PatchClampSeries or IZeroClampSeries"
bad duplicate-sweep "sweep 0 has two series of channel elec0: /acquisition/CurrentClampSeries000 and /acquisition/CurrentClampSeries900"
bad missing-channel "sweep 1 has no series of channel elec1 (every sweep needs one series per channel)"

# Truncated files and a bare signature: HDF5's own reason, under the
# file's name; convert leaves nothing behind.
size=$(wc -c < t.nwb)
head -c 30000 t.nwb > trunc.nwb
run 3 "$Q" info trunc.nwb
expect_no_out
expect_err "quantal: info: trunc.nwb: HDF5 cannot open it: truncated file: eof = 30000, sblock->base_addr = 0, stored_eof = $size"
run 3 "$Q" convert trunc.nwb o.wav
no_file o.wav
{ printf '\211HDF\r\n\032\n'; head -c 3000 /dev/zero; } > junk.nwb
run 3 "$Q" info junk.nwb
expect_err_match '^quantal: info: junk.nwb: HDF5 cannot open it: .+'
# A damaged file on which libhdf5 1.10.8 loops forever (found by random
# byte changes): the reading child's CPU time limit ends it.
tail -c +2 "$top_srcdir/tests/fuzz/regress/recording/nwb-hdf5-loop" > loop.nwb
run 3 "$Q" info loop.nwb
expect_no_out
expect_err "quantal: info: loop.nwb: the HDF5 reader used up its CPU time limit: a damaged file (libhdf5 loops on some)"
finish
