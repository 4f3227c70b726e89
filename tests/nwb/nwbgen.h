/* nwbgen.h - NWB-shaped test files written with libhdf5. SPDX-License-Identifier: GPL-3.0-or-later */
#ifndef QUANTAL_NWBGEN_H
#define QUANTAL_NWBGEN_H

#include <stddef.h>

/*
 * A recording of two electrodes following the NWB 2.x schema
 * (core/nwb.file.yaml, nwb.base.yaml, nwb.icephys.yaml): per sweep a
 * CurrentClampSeries of electrode elec0 (int16 counts, conversion and
 * offset to volts) and a VoltageClampSeries of elec1 (float32 in nA,
 * conversion to amperes), each with starting_time + rate, sweep_number
 * and a soft link to its IntracellularElectrode. Beside them, an
 * ordinary TimeSeries in /acquisition and a stimulus series in
 * /stimulus/presentation, which a reader of responses skips.
 */
typedef struct nwbgen_spec {
  double rate_hz;     /* 10000 */
  size_t n_sweeps;    /* 3 */
  size_t frames;      /* samples per sweep, 2000 */
  size_t n_channels;  /* 2; 1 writes elec0 only */
  int variable;       /* sweep s has frames + 100 s samples */
  int userblock;      /* 1: a 512-byte user block before the superblock */
  int sweep_dataset;  /* 1: sweep_number as a dataset, not an attribute */
  int no_electrode;   /* 1: no electrode links (channels from names) */
  int no_sweep;       /* 1: no sweep_number at all */
  int compact;        /* 1: the newest HDF5 format (smaller files) */
  const char *bad;    /* NULL, or one damage (see nwbgen_bad_kinds) */
} nwbgen_spec;

/* The defaults above. */
nwbgen_spec nwbgen_default(void);

/* The names of the damages nwbgen_write can make, NULL-terminated. */
extern const char *const nwbgen_bad_kinds[];

/* Write the file; 0 on success, -1 (with a message on stderr) on error. */
int nwbgen_write(const char *path, const nwbgen_spec *spec);

/* Samples in sweep s (of sweep_frames(s)), the physical value quantal
 * should read for channel ch at sample i: mV for elec0, pA for elec1,
 * computed as NWB defines it (data * conversion + offset, in volts or
 * amperes) and then scaled. */
size_t nwbgen_sweep_frames(const nwbgen_spec *spec, size_t s);
double nwbgen_expected(const nwbgen_spec *spec, size_t ch, size_t s,
                       size_t i);

#endif /* QUANTAL_NWBGEN_H */
