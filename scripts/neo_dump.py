#!/usr/bin/python3
# neo_dump.py - cross-check quantal's Axon readers against python3-neo.
# SPDX-License-Identifier: GPL-3.0-or-later
"""Compare what quantal reads from an ABF file with neo's raw Axon reader.

Usage:
  neo_dump.py header ABF
      neo's view as JSON: rate, channels (name, units, gain, offset) and
      sweep (segment) lengths.
  neo_dump.py compare ABF INFO_JSON PREFIX
      INFO_JSON is `quantal info --json ABF`; PREFIX<i>.wav (i = 1..sweeps)
      are `quantal convert --sweeps i ABF PREFIX<i>.wav`. Checks channel
      names, units, rate, sweep count and lengths, and every sample after
      scaling (neo's float32 rescaling against quantal's float32 WAV), and
      prints one TSV row per channel with the largest absolute difference.
  neo_dump.py bench ABF [REPEATS]
      Seconds neo takes to read every sweep and scale it to float32 (best
      of REPEATS, default 3), as "seconds samples".
  neo_dump.py pair WAV_A WAV_B TOL
      Largest absolute difference between two float32 WAVs of the same
      shape; fails when it exceeds TOL (for the pyABF-written ABF1, which
      neo cannot open, against the ABF2 it was saved from).

Exit status: 0 all checks pass, 1 a mismatch, 2 neo cannot read the file
or bad usage.
"""
import json
import struct
import sys

import numpy as np


def read_wav_f32(path):
    """Frames x channels float32 array from a RIFF/WAVE IEEE-float file."""
    with open(path, 'rb') as f:
        data = f.read()
    if data[:4] != b'RIFF' or data[8:12] != b'WAVE':
        raise ValueError('%s: not a RIFF/WAVE file' % path)
    pos, nch, samples = 12, None, None
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        size = struct.unpack('<I', data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b'fmt ':
            tag, nch = struct.unpack('<HH', body[:4])
            bits = struct.unpack('<H', body[14:16])[0]
            if tag == 0xFFFE:
                tag = struct.unpack('<H', body[24:26])[0]
            if tag != 3 or bits != 32:
                raise ValueError('%s: not float32 (format %d, %d bits)'
                                 % (path, tag, bits))
        elif cid == b'data':
            samples = np.frombuffer(body, dtype='<f4')
        pos += 8 + size + (size & 1)
    if nch is None or samples is None:
        raise ValueError('%s: no fmt or data chunk' % path)
    return samples.reshape(-1, nch)


def neo_open(path):
    from neo.rawio.axonrawio import AxonRawIO
    r = AxonRawIO(filename=path)
    r.parse_header()
    return r


def neo_header(r):
    chans = r.header['signal_channels']
    nseg = r.header['nb_segment'][0]
    return {
        'rate_hz': float(r.get_signal_sampling_rate(0)),
        'channels': [{'name': str(c['name']), 'units': str(c['units']),
                      'gain': float(c['gain']), 'offset': float(c['offset'])}
                     for c in chans],
        'sweeps': [int(r.get_signal_size(0, s, 0)) for s in range(nseg)],
    }


def cmd_header(path):
    json.dump(neo_header(neo_open(path)), sys.stdout, indent=1)
    sys.stdout.write('\n')
    return 0


def cmd_compare(path, info_path, prefix):
    r = neo_open(path)
    h = neo_header(r)
    with open(info_path) as f:
        ours = json.load(f)[0]
    problems = []
    if abs(ours['rate_hz'] - h['rate_hz']) > 1e-9 * h['rate_hz']:
        problems.append('rate %r vs neo %r' % (ours['rate_hz'], h['rate_hz']))
    if ours['sweeps'] != len(h['sweeps']):
        problems.append('%d sweeps vs neo %d' % (ours['sweeps'],
                                                 len(h['sweeps'])))
    if len(ours['channels']) != len(h['channels']):
        problems.append('%d channels vs neo %d' % (len(ours['channels']),
                                                   len(h['channels'])))
    for oc, nc in zip(ours['channels'], h['channels']):
        # neo drops every blank from names and units ("IN 2" -> "IN2").
        if oc['name'].replace(' ', '') != nc['name']:
            problems.append('name %r vs neo %r' % (oc['name'], nc['name']))
        if oc['unit'] != nc['units']:
            problems.append('unit %r vs neo %r' % (oc['unit'], nc['units']))
    nchan = len(h['channels'])
    maxdiff = np.zeros(nchan)
    maxabs = np.zeros(nchan)
    nsamp = 0
    if not problems:
        for s, length in enumerate(h['sweeps']):
            mine = read_wav_f32('%s%d.wav' % (prefix, s + 1))
            if mine.shape != (length, nchan):
                problems.append('sweep %d: shape %s vs neo %s'
                                % (s + 1, mine.shape, (length, nchan)))
                continue
            raw = r.get_analogsignal_chunk(0, s, None, None, 0)
            theirs = r.rescale_signal_raw_to_float(raw, dtype='float32')
            d = np.abs(mine.astype(np.float64) - theirs.astype(np.float64))
            # float32 precision: two units in the last place of the value.
            tol = 2 * np.spacing(np.abs(theirs)).astype(np.float64)
            if np.any(d > tol):
                i = np.unravel_index(np.argmax(d - tol), d.shape)
                problems.append('sweep %d frame %d channel %d: %r vs neo %r'
                                % (s + 1, i[0], i[1] + 1, mine[i], theirs[i]))
            maxdiff = np.maximum(maxdiff, d.max(axis=0))
            maxabs = np.maximum(maxabs, np.abs(theirs).max(axis=0))
            nsamp += d.size
    for c in range(nchan):
        oc = ours['channels'][c] if c < len(ours['channels']) else {}
        print('%s\t%d\t%s\t%s\t%.10g\t%d\t%s\t%.3g\t%.6g\t%s' % (
            path.rsplit('/', 1)[-1], c + 1, oc.get('name', '?'),
            oc.get('unit', '?'), h['rate_hz'], len(h['sweeps']),
            ','.join(str(n) for n in sorted(set(h['sweeps']))),
            maxdiff[c], maxabs[c], 'match' if not problems else 'MISMATCH'))
    for p in problems:
        print('# %s: %s' % (path, p), file=sys.stderr)
    return 1 if problems else 0


def cmd_pair(a, b, tol):
    x, y = read_wav_f32(a), read_wav_f32(b)
    if x.shape != y.shape:
        print('# shapes differ: %s vs %s' % (x.shape, y.shape),
              file=sys.stderr)
        return 1
    d = np.abs(x.astype(np.float64) - y.astype(np.float64)).max(axis=0)
    print('\t'.join('%.3g' % v for v in d))
    return 0 if np.all(d <= float(tol)) else 1


def cmd_bench(path, repeats):
    import time
    best, n = None, 0
    for _ in range(int(repeats)):
        t0 = time.perf_counter()
        r = neo_open(path)
        n = 0
        for s in range(r.header['nb_segment'][0]):
            raw = r.get_analogsignal_chunk(0, s, None, None, 0)
            sig = r.rescale_signal_raw_to_float(raw, dtype='float32')
            n += sig.size
        t = time.perf_counter() - t0
        best = t if best is None or t < best else best
    print('%.6f %d' % (best, n))
    return 0


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == 'header':
            return cmd_header(argv[2])
        if len(argv) == 5 and argv[1] == 'compare':
            return cmd_compare(argv[2], argv[3], argv[4])
        if len(argv) in (3, 4) and argv[1] == 'bench':
            return cmd_bench(argv[2], argv[3] if len(argv) == 4 else 3)
        if len(argv) == 5 and argv[1] == 'pair':
            return cmd_pair(argv[2], argv[3], argv[4])
    except (AssertionError, ValueError, OSError) as e:
        print('neo_dump.py: %s: %s' % (type(e).__name__, e), file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
