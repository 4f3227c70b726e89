#!/usr/bin/env python3
# evoked_score.py - score quantal evoked's table against simulate's truth.
# SPDX-License-Identifier: GPL-3.0-or-later
# Usage: evoked_score.py NAME EVOKED.tsv TRUTH.tsv MINIS.json NOISE_SD
#        [MINIS-BETWEEN-RESPONSES.json]
import json, sys
import numpy as np

def table(path):
    rows = [l.rstrip('\n').split('\t') for l in open(path)
            if not l.startswith('#')]
    return {k: [r[i] for r in rows[1:]] for i, k in enumerate(rows[0])}

name, ev_path, truth_path, minis_path, noise = sys.argv[1:6]
isi_path = sys.argv[6] if len(sys.argv) > 6 else None
noise = float(noise)
e = table(ev_path)
t = table(truth_path)
amp_col = [k for k in e if k.startswith('amplitude_') and '_sd_' not in k][0]
est_fail = np.array(e['failure'], dtype=int)
est_amp = np.array(e[amp_col], dtype=float)
truth_amp = np.zeros(len(est_amp))
truth_fail = np.ones(len(est_amp), dtype=int)
tcol = [k for k in t if k.startswith('amplitude_')][0]
# Truth rows are keyed by stimulus time: simulate numbers trains, not
# pulses, in its stimulus column.
index = {round(float(s) * 1e4): i for i, s in enumerate(e['stim_s'])}
for kind, ts, k, a in zip(t['kind'], t['stim_s'], t['quanta'], t[tcol]):
    if kind != 'evoked':
        continue
    i = index.get(round(float(ts) * 1e4))
    if i is not None:
        truth_amp[i] = float(a)
        truth_fail[i] = int(int(k) == 0)
acc = float((est_fail == truth_fail).mean())
rms = float(np.sqrt(np.mean((est_amp - truth_amp) ** 2)))
m = json.load(open(minis_path))
rows = [
    ('failure_accuracy', '%.4f' % acc, '', 'target >= 0.98; %d stimuli, %d true failures, %d called'
     % (len(est_fail), truth_fail.sum(), est_fail.sum())),
    ('amplitude_rms_error', '%.3f' % (rms / noise), 'x noise SD',
     'target <= 1.2; RMS %.4g mV' % rms),
    ('minis_recall_all', '%.4f' % m['recall'], '',
     'of all %d true minis, those inside response windows too; precision %.4f'
     % (m['true_events'], m['precision'])),
]
if isi_path:
    mi = json.load(open(isi_path))
    rows.append(('minis_recall', '%.4f' % mi['recall'], '',
                 'target >= 0.95; of the %d true minis peaking between the '
                 'response windows' % mi['true_events']))
for metric, value, unit, note in rows:
    print('\t'.join(['evoked-accuracy', name + ':' + metric, value, unit, note]))
