#!/usr/bin/env python3
# make-inputs.py - regenerate the hostile inputs in tests/bad/.
# SPDX-License-Identifier: GPL-3.0-or-later
# Each file is small and deliberately broken in one way; tests/cli/bad.sh
# runs every subcommand on every file. Run from tests/bad/.
import math, os, random, struct

random.seed(20261125)
out = {}

def wav(channels=1, rate=10000, bits=32, fmt=3, data=b'', riff=None,
        data_len=None):
    block = (channels * bits // 8) & 0xFFFF
    f = struct.pack('<HHIIHH', fmt, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    d = data_len if data_len is not None else len(data)
    body = b'WAVE' + b'fmt ' + struct.pack('<I', len(f)) + f
    body += b'data' + struct.pack('<I', d) + data
    size = riff if riff is not None else len(body)
    return b'RIFF' + struct.pack('<I', size) + body

def floats(xs):
    return b''.join(struct.pack('<f', x) for x in xs)

good = floats([-70 + 0.1 * math.sin(i / 5) for i in range(4000)])
out['empty.wav'] = b''
out['zero-frames.wav'] = wav()
out['truncated-header.wav'] = wav(data=good)[:20]
out['truncated-data.wav'] = wav(data=good)[:3000]
out['text-named.wav'] = b'this is a note, not a recording\n'
out['garbage.wav'] = bytes(random.randrange(256) for _ in range(3000))
out['riff-huge-sizes.wav'] = wav(data=good[:400], riff=0xFFFFFFF0,
                                 data_len=0xFFFFFFF0)
out['zero-channels.wav'] = wav(channels=0, data=good[:400])
out['zero-rate.wav'] = wav(rate=0, data=good[:400])
out['huge-channels.wav'] = wav(channels=65535, data=good[:400])
out['nan-samples.wav'] = wav(data=floats([0.0, float('nan'), 1.0] * 300))
out['inf-samples.wav'] = wav(data=floats([0.0, float('inf'), -1.0] * 300))
out['all-nan.wav'] = wav(data=floats([float('nan')] * 1000))
out['constant.wav'] = wav(channels=2, data=floats([-70.0, 0.0] * 20000))
out['three-samples.wav'] = wav(data=floats([1.0, 2.0, 3.0]))
out['truncated.flac'] = b'fLaC' + b'\x00\x00\x00\x22' + bytes(20)
out['garbage.flac'] = b'fLaC' + bytes(random.randrange(256)
                                     for _ in range(500))
out['truncated.aiff'] = b'FORM\x00\x00\x10\x00AIFFCOMM\x00\x00\x00\x12'
# Axon files: the magic with nothing sensible after it.
out['abf1-header-only.abf'] = b'ABF ' + struct.pack('<f', 1.83) + bytes(92)
abf1 = bytearray(2048 + 512)
abf1[0:4] = b'ABF '
abf1[4:8] = struct.pack('<f', 1.3)
struct.pack_into('<h', abf1, 8, 5)             # episodic
struct.pack_into('<i', abf1, 10, -1000)        # negative sample count
struct.pack_into('<i', abf1, 16, 3)
struct.pack_into('<i', abf1, 40, 4)
struct.pack_into('<h', abf1, 120, 1)
struct.pack_into('<f', abf1, 122, 50.0)
out['abf1-negative-count.abf'] = bytes(abf1)
struct.pack_into('<i', abf1, 10, 256)
struct.pack_into('<h', abf1, 120, 0)           # zero channels
out['abf1-zero-channels.abf'] = bytes(abf1)
struct.pack_into('<h', abf1, 120, 1)
struct.pack_into('<i', abf1, 40, 0x7FFFFFFF)   # data block past the end
out['abf1-data-past-end.abf'] = bytes(abf1)
abf2 = bytearray(1024)
abf2[0:4] = b'ABF2'
abf2[4:8] = bytes([0, 0, 6, 2])
for i in range(18):                            # every section far away
    struct.pack_into('<IIq', abf2, 76 + 16 * i, 0x7FFFFFF0, 0x7FFFFFF0,
                     2 ** 62)
out['abf2-sections-past-end.abf'] = bytes(abf2)
out['atf-garbage.atf'] = b'ATF\t1.0\n\x01\x02 what\n'
out['atf-ragged.atf'] = (b'ATF\t1.0\n0\t3\n"Time (s)"\t"Vm (mV)"\t"I (pA)"\n'
                         b'0\t-70\t1\n0.0001\t-70.1\n')
# Plain-text recordings (read with --rate).
out['ragged.txt'] = b'1 2\n3 4\n5\n'
out['letters.txt'] = b'1 2\n3 four\n'
out['comments-only.txt'] = b'# nothing but a comment\n% and another\n'
out['nul-bytes.txt'] = b'1 2\n3\x00 4\n'
out['nan-column.txt'] = b'nan\nnan\nnan\nnan\n'
out['too-many-columns.txt'] = (' '.join(['1'] * 300) + '\n').encode() * 3
# Tables.
out['table-empty.tsv'] = b''
out['table-comments-only.tsv'] = b'# quantal 0.1.0\n'
out['table-header-only.tsv'] = b'stimulus\tamplitude_mV\n'
out['table-ragged.tsv'] = b'stimulus\tamplitude_mV\n1\t0.5\n2\n'
out['table-binary.tsv'] = b'a\tb\n' + bytes(random.randrange(256)
                                             for _ in range(300))
out['table-no-amplitude.tsv'] = b'stimulus\tlatency_ms\n1\t2\n2\t3\n' * 1
out['table-text-amplitudes.tsv'] = b'stimulus\tamplitude_mV\n' + b''.join(
    b'%d\tbig\n' % i for i in range(30))
out['table-nan-amplitudes.tsv'] = b'stimulus\tamplitude_mV\n' + b''.join(
    b'%d\tnan\n' % i for i in range(30))
out['table-constant.tsv'] = b'stimulus\tamplitude_mV\n' + b''.join(
    b'%d\t0.5\n' % i for i in range(30))
out['table-five-rows.tsv'] = b'stimulus\tamplitude_mV\n' + b''.join(
    b'%d\t%.2f\n' % (i, 0.5 * i) for i in range(5))
out['table-decreasing-times.tsv'] = b'stim_s\n3\n2\n1\n'
out['table-negative-times.tsv'] = b'stim_s\n-1\n2\n'
out['table-huge-line.tsv'] = b'amplitude_mV\n' + b'1' * 1000000 + b'\n'

for name, data in sorted(out.items()):
    with open(name, 'wb') as f:
        f.write(data)
print(len(out), 'files')
