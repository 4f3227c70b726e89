#!/usr/bin/env python3
# simulate_numpy.py - numpy/scipy baseline of `quantal simulate`'s model.
# SPDX-License-Identifier: GPL-3.0-or-later
"""The model of quantal simulate, in vectorised numpy/scipy, streaming in
blocks to a float32 WAV: binomial release at periodic stimuli plus Poisson
MEPPs, Gaussian quantal conductances (truncated at 0), bi-exponential
conductance per quantum, the passive current-clamp membrane
C dV/dt = -g_L (V - E_rest) - g (V - E_syn) integrated by the same
exponential-Euler scheme (S sub-steps per sample, conductance at the
sub-step midpoint), white + 1/f (same interlaced pole-zero filter, as
second-order sections) + mains hum, and a TTL channel.

Only the membrane near synaptic events is integrated step by step (as
the C code does); the time-varying linear recurrence
u[j+1] = a[j] u[j] + b[j] is solved vectorised, by cumulative products
over short chunks and a short sequential pass over the chunk ends. No
truth table is written. Used by scripts/bench/simulate only.
"""
import argparse
import math
import struct
import sys

import numpy as np
from scipy import signal


def wav_header(n_frames, n_ch, rate):
    """44-byte header of an IEEE-float WAV."""
    data = n_frames * n_ch * 4
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 3, n_ch, rate, rate * n_ch * 4,
                          n_ch * 4, 32)
            + b"data" + struct.pack("<I", data))


def pink_sos(fmin, rate):
    """Poles two per decade from fmin, zeros half-way: as SOS."""
    step = math.sqrt(10.0)
    poles, zeros = [], []
    f = fmin
    while f < rate / 2:
        poles.append(math.exp(-2 * math.pi * f / rate))
        zeros.append(math.exp(-2 * math.pi * f * math.sqrt(step) / rate))
        f *= step
    sos = [[1.0, -z, 0.0, 1.0, -p, 0.0] for p, z in zip(poles, zeros)]
    return np.array(sos)


def recurrence(a, b, u0, chunk=64):
    """u[0] = u0, u[j+1] = a[j] u[j] + b[j]; returns u[1..m]."""
    m = len(a)
    pad = (-m) % chunk
    if pad:
        a = np.concatenate([a, np.ones(pad)])
        b = np.concatenate([b, np.zeros(pad)])
    A = a.reshape(-1, chunk)
    B = b.reshape(-1, chunk)
    P = np.cumprod(A, axis=1)
    # Within a chunk from u = 0: u_k = P_k sum_{i<=k} b_i / P_i.
    local = P * np.cumsum(B / P, axis=1)
    out = np.empty_like(local)
    carry = u0
    ends_p = P[:, -1]
    ends_l = local[:, -1]
    starts = np.empty(len(P))
    for c in range(len(P)):
        starts[c] = carry
        carry = ends_p[c] * carry + ends_l[c]
    out = local + P * starts[:, None]
    return out.reshape(-1)[:m]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--rate", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--qg", type=float, required=True,
                    help="peak conductance of a mean quantum, S")
    ap.add_argument("--pink", type=float, default=0.05)
    ap.add_argument("--hum", type=float, default=0.05)
    ap.add_argument("--noise", type=float, default=0.05)
    args = ap.parse_args()

    rate = args.rate
    dt = 1.0 / rate
    n_total = int(round(args.duration * rate))
    block = 65536
    # quantal simulate's defaults.
    n_sites, p, cv_q = 20, 0.3, 0.25
    rise, decay, tau_m, r_in = 0.0003, 0.0015, 0.010, 1e6
    e_rest, e_syn, delay = -0.080, 0.0, 0.0005
    stim_start, stim_period, mini_rate = 0.5, 1.0, 1.0
    g_l = 1.0 / r_in
    c_m = tau_m * g_l
    de = e_syn - e_rest
    tp = rise * decay / (decay - rise) * math.log(decay / rise)
    norm = 1.0 / (math.exp(-tp / decay) - math.exp(-tp / rise))
    S = max(2, math.ceil(16 * dt / min(rise, decay, tau_m)))
    h = dt / S
    active_s = decay * math.log(1e7 * norm * n_sites)  # decay to 1e-7 q_g

    rng = np.random.default_rng(args.seed)
    r_white = np.random.default_rng(args.seed + 1)
    r_pink = np.random.default_rng(args.seed + 2)
    sos = pink_sos(0.1, rate)
    # Scale to SD args.pink: the output variance of unit white noise is the
    # sum of the squared impulse response (it decays within 10 time
    # constants of the slowest pole).
    imp = np.zeros(int(10 * rate / (2 * math.pi * 0.1)) + 1)
    imp[0] = 1.0
    pink_gain = args.pink / math.sqrt(np.sum(signal.sosfilt(sos, imp) ** 2))
    # Start the filter in its stationary state.
    _, zi = signal.sosfilt(sos, r_pink.standard_normal(len(imp)),
                           zi=np.zeros((len(sos), 2)))
    phases = rng.uniform(0, 2 * math.pi, 4)

    quanta_t = np.empty(0)
    quanta_g = np.empty(0)
    next_stim = stim_start
    next_mini = rng.exponential(1.0 / mini_rate)
    u = 0.0
    with open(args.out, "wb") as fp:
        fp.write(wav_header(n_total, 2, rate))
        for n0 in range(0, n_total, block):
            n = min(block, n_total - n0)
            t0 = n0 * dt
            t_end = (n0 + n) * dt
            ttl = np.zeros(n)
            new_t, new_g = [], []
            while next_stim < t_end:
                k = rng.binomial(n_sites, p)
                g = args.qg * (1 + cv_q * rng.standard_normal(k))
                while np.any(g <= 0):
                    bad = g <= 0
                    g[bad] = args.qg * (1 + cv_q *
                                        rng.standard_normal(bad.sum()))
                new_t.append(np.full(k, next_stim + delay))
                new_g.append(g)
                i0 = math.ceil(next_stim * rate - 1e-6) - n0
                ttl[max(i0, 0):max(i0 + int(0.001 * rate), 0)] = 5.0
                next_stim += stim_period
            while next_mini < t_end:
                g = -1.0
                while g <= 0:
                    g = args.qg * (1 + cv_q * rng.standard_normal())
                new_t.append(np.array([next_mini]))
                new_g.append(np.array([g]))
                next_mini += rng.exponential(1.0 / mini_rate)
            if new_t:
                quanta_t = np.concatenate([quanta_t] + new_t)
                quanta_g = np.concatenate([quanta_g] + new_g)
            keep = quanta_t > t0 - active_s
            quanta_t, quanta_g = quanta_t[keep], quanta_g[keep]
            # Active windows: from a quantum's release to active_s later.
            sig = np.empty(n)
            starts = np.clip(np.floor(quanta_t * rate) - n0, 0, n)
            ends = np.clip(np.ceil((quanta_t + active_s) * rate) - n0, 0, n)
            order = np.argsort(starts)
            wins = []
            for s, e in zip(starts[order], ends[order]):
                if e <= s:
                    continue
                if wins and s <= wins[-1][1]:
                    wins[-1][1] = max(wins[-1][1], e)
                else:
                    wins.append([s, e])
            pos = 0
            for s, e in wins + [[n, n]]:
                s, e = int(s), int(e)
                if s > pos:
                    # Passive relaxation, closed form.
                    sig[pos:s] = u * np.exp(-np.arange(s - pos) * dt / tau_m)
                    u = u * math.exp(-(s - pos) * dt / tau_m)
                if e <= s:
                    pos = max(pos, s)
                    continue
                m = (e - s) * S
                tm = (n0 + s) * dt + (np.arange(m) + 0.5) * h
                near = (quanta_t < tm[-1]) & (quanta_t > tm[0] - active_s)
                x = tm[None, :] - quanta_t[near][:, None]
                gk = np.where(x > 0, np.exp(-np.maximum(x, 0) / decay)
                              - np.exp(-np.maximum(x, 0) / rise), 0.0)
                gm = norm * (quanta_g[near][:, None] * gk).sum(axis=0)
                gt = g_l + gm
                a = np.exp(-gt / c_m * h)
                uinf = gm * de / gt
                us = recurrence(a, uinf * (1 - a), u)
                sig[s] = u
                sig[s + 1:e] = us[S - 1:-1:S][: e - s - 1]
                u = us[-1]
                pos = e
            sig = e_rest * 1e3 + sig * 1e3
            sig += args.noise * r_white.standard_normal(n)
            x, zi = signal.sosfilt(sos, r_pink.standard_normal(n), zi=zi)
            sig += pink_gain * x
            tt = (n0 + np.arange(n)) * dt
            for hh in range(1, 4):
                sig += (args.hum / hh) * np.sin(2 * math.pi * 50.0 * hh * tt
                                                + phases[hh])
            fr = np.empty((n, 2), dtype="<f4")
            fr[:, 0] = sig
            fr[:, 1] = ttl
            fp.write(fr.tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
