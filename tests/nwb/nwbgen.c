/* nwbgen.c - NWB-shaped test files written with libhdf5. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "nwbgen.h"

#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The stored -> volts and -> amperes attributes, float32 as the schema
 * types them; the reader sees exactly these float values. */
static const float conv0 = 1.0e-5f, offset0 = -0.065f; /* elec0: counts */
static const float conv1 = 1.0e-9f;                     /* elec1: nA */

const char *const nwbgen_bad_kinds[] = {
    "rank2",        "no-rate",    "rate-zero",     "rate-nan",
    "length",       "no-unit",    "conversion-inf", "timestamps",
    "not-nwb",      "mixed-rate", "text-data",     "no-series",
    "duplicate-sweep", "missing-channel", NULL};

nwbgen_spec
nwbgen_default(void)
{
  nwbgen_spec s;
  memset(&s, 0, sizeof s);
  s.rate_hz = 10000.0;
  s.n_sweeps = 3;
  s.frames = 2000;
  s.n_channels = 2;
  return s;
}

size_t
nwbgen_sweep_frames(const nwbgen_spec *spec, size_t s)
{
  return spec->frames + (spec->variable ? 100 * s : 0);
}

static int16_t
count0(size_t s, size_t i)
{
  double v = 8000.0 * sin(2.0 * M_PI * (double)(i + 37 * s) / 97.0);
  return (int16_t)(lround(v) + (long)((i * 7 + s * 3) % 11) - 5);
}

static float
value1(size_t s, size_t i)
{
  return (float)(-50.0 * exp(-(double)(i % 400) / 40.0) + 0.25 * (double)s +
                 0.001 * (double)i);
}

double
nwbgen_expected(const nwbgen_spec *spec, size_t ch, size_t s, size_t i)
{
  (void)spec;
  if (ch == 0)
    return ((double)count0(s, i) * (double)conv0 + (double)offset0) * 1e3;
  return ((double)value1(s, i) * (double)conv1) * 1e12;
}

/* ---- small HDF5 writers ------------------------------------------------ */

static int failed;

static void
check(herr_t e, const char *what)
{
  if (e < 0 && !failed) {
    fprintf(stderr, "nwbgen: HDF5 failed: %s\n", what);
    failed = 1;
  }
}

/* Text as h5py writes it: variable-length UTF-8 (fixed = 0), or fixed
 * length ASCII. */
static void
attr_text(hid_t obj, const char *name, const char *value, int fixed)
{
  hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a;
  if (fixed) {
    H5Tset_size(t, strlen(value) ? strlen(value) : 1);
  } else {
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
  }
  a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  check(a, name);
  check(fixed ? H5Awrite(a, t, value) : H5Awrite(a, t, &value), name);
  H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
}

static void
attr_num(hid_t obj, const char *name, hid_t ftype, hid_t mtype,
         const void *v)
{
  hid_t sp = H5Screate(H5S_SCALAR), a;
  a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
  check(a, name);
  check(H5Awrite(a, mtype, v), name);
  H5Aclose(a);
  H5Sclose(sp);
}

static void
attr_f32(hid_t obj, const char *name, float v)
{
  attr_num(obj, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &v);
}

static void
dset_text(hid_t obj, const char *name, const char *value)
{
  hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), d;
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  d = H5Dcreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  check(d, name);
  check(H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value), name);
  H5Dclose(d);
  H5Sclose(sp);
  H5Tclose(t);
}

static hid_t
dset_scalar(hid_t obj, const char *name, hid_t ftype, hid_t mtype,
            const void *v)
{
  hid_t sp = H5Screate(H5S_SCALAR), d;
  d = H5Dcreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT,
                 H5P_DEFAULT);
  check(d, name);
  check(H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v), name);
  H5Sclose(sp);
  return d;
}

static hid_t
group(hid_t parent, const char *name, const char *type)
{
  hid_t g = H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  check(g, name);
  if (type != NULL) {
    attr_text(g, "neurodata_type", type, 0);
    attr_text(g, "namespace", "core", 0);
  }
  return g;
}

static int
is_bad(const nwbgen_spec *spec, const char *kind)
{
  return spec->bad != NULL && strcmp(spec->bad, kind) == 0;
}

/* One PatchClampSeries of channel ch in sweep s. */
static void
write_series(hid_t acq, const nwbgen_spec *spec, size_t ch, size_t s,
             int damaged)
{
  char name[64];
  size_t n = nwbgen_sweep_frames(spec, s), i;
  hsize_t dims[2];
  hid_t g, d, sp, st;
  double t0 = (double)s * 2.0, rate = spec->rate_hz;
  uint32_t sweep = (uint32_t)s;

  if (damaged && is_bad(spec, "duplicate-sweep"))
    sweep = 0;
  snprintf(name, sizeof name, "%s%03zu",
           ch == 0 ? "CurrentClampSeries" : "VoltageClampSeries",
           damaged && is_bad(spec, "duplicate-sweep") ? (size_t)900 : s);
  g = group(acq, name, ch == 0 ? "CurrentClampSeries" : "VoltageClampSeries");
  attr_text(g, "description", "no description", 0);
  attr_text(g, "comments", "no comments", 0);
  attr_text(g, "stimulus_description", ch == 0 ? "step_ramp" : "hold-70",
            0);
  if (!spec->no_sweep) {
    if (spec->sweep_dataset)
      H5Dclose(dset_scalar(g, "sweep_number", H5T_STD_U64LE,
                           H5T_NATIVE_UINT32, &sweep));
    else
      attr_num(g, "sweep_number", H5T_STD_U32LE, H5T_NATIVE_UINT32, &sweep);
  }
  if (!spec->no_electrode)
    check(H5Lcreate_soft(ch == 0 ? "/general/intracellular_ephys/elec0"
                                 : "/general/intracellular_ephys/elec1",
                         g, "electrode", H5P_DEFAULT, H5P_DEFAULT),
          "electrode");

  if (damaged && is_bad(spec, "length"))
    n -= 10;
  dims[0] = n;
  dims[1] = 1;
  if (damaged && is_bad(spec, "rank2")) {
    dims[0] = n / 2;
    dims[1] = 2;
  }
  sp = H5Screate_simple(dims[1] == 2 ? 2 : 1, dims, NULL);
  if (damaged && is_bad(spec, "text-data")) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 4);
    d = H5Dcreate2(g, "data", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Tclose(t);
  } else if (ch == 0) {
    int16_t *x = malloc(n * sizeof *x);
    for (i = 0; i < n; i++)
      x[i] = count0(s, i);
    d = H5Dcreate2(g, "data", H5T_STD_I16LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                   H5P_DEFAULT);
    check(H5Dwrite(d, H5T_NATIVE_INT16, H5S_ALL, H5S_ALL, H5P_DEFAULT, x),
          "data");
    free(x);
  } else {
    float *x = malloc(n * sizeof *x);
    for (i = 0; i < n; i++)
      x[i] = value1(s, i);
    d = H5Dcreate2(g, "data", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                   H5P_DEFAULT);
    check(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x),
          "data");
    free(x);
  }
  check(d, "data");
  H5Sclose(sp);
  if (!(damaged && is_bad(spec, "no-unit")))
    /* One fixed-length text, as some writers store it. */
    attr_text(d, "unit", ch == 0 ? "volts" : "amperes", ch == 1);
  attr_f32(d, "conversion", damaged && is_bad(spec, "conversion-inf")
                                ? (float)HUGE_VAL
                                : ch == 0 ? conv0 : conv1);
  attr_f32(d, "resolution", -1.0f);
  if (ch == 0)
    attr_f32(d, "offset", offset0);
  H5Dclose(d);

  if (damaged && is_bad(spec, "timestamps")) {
    double *ts = malloc(n * sizeof *ts);
    hsize_t tn = n;
    for (i = 0; i < n; i++)
      ts[i] = t0 + (double)i / rate;
    sp = H5Screate_simple(1, &tn, NULL);
    d = H5Dcreate2(g, "timestamps", H5T_IEEE_F64LE, sp, H5P_DEFAULT,
                   H5P_DEFAULT, H5P_DEFAULT);
    check(H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, ts),
          "timestamps");
    H5Dclose(d);
    H5Sclose(sp);
    free(ts);
  } else {
    st = dset_scalar(g, "starting_time", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                     &t0);
    attr_text(st, "unit", "seconds", 0);
    if (damaged && is_bad(spec, "rate-zero"))
      rate = 0.0;
    if (damaged && is_bad(spec, "rate-nan"))
      rate = NAN;
    if (damaged && is_bad(spec, "mixed-rate"))
      rate = spec->rate_hz / 2;
    if (!(damaged && is_bad(spec, "no-rate")))
      attr_f32(st, "rate", (float)rate);
    H5Dclose(st);
  }
  H5Gclose(g);
}

int
nwbgen_write(const char *path, const nwbgen_spec *spec)
{
  hid_t fcpl, fapl, f, g, ie, acq, stim, d;
  size_t s, ch, damaged_sweep = spec->n_sweeps > 1 ? 1 : 0;
  const char *bad = spec->bad;
  int known = bad == NULL;
  float speed[4] = {0.5f, 0.25f, 0.0f, 1.0f};
  hsize_t four = 4;
  hid_t sp;

  for (s = 0; nwbgen_bad_kinds[s] != NULL && !known; s++)
    known = strcmp(bad, nwbgen_bad_kinds[s]) == 0;
  if (!known) {
    fprintf(stderr, "nwbgen: unknown damage '%s'\n", bad);
    return -1;
  }
  failed = 0;
  fcpl = H5Pcreate(H5P_FILE_CREATE);
  if (spec->userblock)
    H5Pset_userblock(fcpl, 512);
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (spec->compact)
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl);
  H5Pclose(fcpl);
  H5Pclose(fapl);
  if (f < 0) {
    fprintf(stderr, "nwbgen: cannot create %s\n", path);
    return -1;
  }
  if (!is_bad(spec, "not-nwb")) {
    attr_text(f, "neurodata_type", "NWBFile", 0);
    attr_text(f, "namespace", "core", 0);
  }
  attr_text(f, "nwb_version", "2.6.0", 0);
  attr_text(f, "object_id", "6f1e1a4e-0000-4000-8000-000000000000", 0);
  dset_text(f, "identifier", "quantal-nwbgen");
  dset_text(f, "session_description", "generated by quantal's tests");
  dset_text(f, "session_start_time", "2026-01-01T00:00:00+00:00");
  dset_text(f, "timestamps_reference_time", "2026-01-01T00:00:00+00:00");

  g = group(f, "general", NULL);
  H5Gclose(group(g, "devices", NULL));
  ie = group(g, "intracellular_ephys", NULL);
  for (ch = 0; ch < 2; ch++) {
    hid_t e = group(ie, ch ? "elec1" : "elec0", "IntracellularElectrode");
    dset_text(e, "description", ch ? "whole-cell, voltage clamp"
                                   : "whole-cell, current clamp");
    H5Gclose(e);
  }
  H5Gclose(ie);
  H5Gclose(g);

  acq = group(f, "acquisition", NULL);
  /* A TimeSeries that is not a patch-clamp response. */
  g = group(acq, "running_speed", "TimeSeries");
  sp = H5Screate_simple(1, &four, NULL);
  d = H5Dcreate2(g, "data", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                 H5P_DEFAULT);
  check(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, speed),
        "speed");
  attr_text(d, "unit", "m/s", 0);
  H5Dclose(d);
  H5Sclose(sp);
  H5Gclose(g);
  if (!is_bad(spec, "no-series"))
    for (s = 0; s < spec->n_sweeps; s++)
      for (ch = 0; ch < spec->n_channels; ch++) {
        int damaged = s == damaged_sweep &&
                      ch == (is_bad(spec, "length") ||
                                     is_bad(spec, "missing-channel")
                                 ? 1u
                                 : 0u);
        if (damaged && is_bad(spec, "missing-channel"))
          continue;
        write_series(acq, spec, ch, s, damaged);
        if (damaged && is_bad(spec, "duplicate-sweep"))
          write_series(acq, spec, ch, s, 0);
      }
  H5Gclose(acq);

  /* The stimulus that was applied: not a response, not read. */
  g = group(f, "stimulus", NULL);
  stim = group(g, "presentation", NULL);
  H5Gclose(group(stim, "CurrentClampStimulusSeries000",
                 "CurrentClampStimulusSeries"));
  H5Gclose(stim);
  H5Gclose(g);
  if (H5Fclose(f) < 0)
    failed = 1;
  return failed ? -1 : 0;
}
