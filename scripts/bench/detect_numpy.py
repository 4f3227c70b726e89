#!/usr/bin/env python3
# detect_numpy.py - numpy/scipy baselines for the detect-speed benchmark.
# SPDX-License-Identifier: GPL-3.0-or-later
"""Event detection as one would write it with numpy/scipy, to compare the
speed of `quantal detect` against:

  template  Clements & Bekkers (1997) criterion with the template-data
            cross-correlation by scipy.signal.oaconvolve (overlap-add FFT)
            and cumulative sums for sum(d) and sum(d^2), threshold and
            local maxima; blockwise over the file.
  deconv    Pernia-Andrade et al. (2012): FFT of each block divided by the
            template's, Gaussian band limit, inverse FFT, threshold at 4 SD.
  direct    the O(N L) direct sum of the CB criterion (what Stimfit does),
            in double precision, on a short excerpt.

Usage: detect_numpy.py WAV [SECONDS] ; prints TSV lines
"method<TAB>samples_per_s<TAB>events".
"""
import sys
import time

import numpy as np
import scipy.io.wavfile as wavfile
import scipy.signal as signal


def biexp(rise, decay, fs):
    tp = rise * np.log((rise + decay) / rise)
    pre = max(1e-3, 2 * tp)
    t = np.arange(int(np.ceil((pre + tp + 3 * decay) * fs)) + 1) / fs - pre
    y = np.where(t > 0, -np.expm1(-t / rise) * np.exp(-t / decay), 0.0)
    return y / ((1 - np.exp(-tp / rise)) * np.exp(-tp / decay))


def cb_criterion(x, tpl):
    L = len(tpl)
    x = x - x.mean()
    corr = signal.oaconvolve(x, tpl[::-1], mode="valid")
    c1 = np.concatenate(([0.0], np.cumsum(x)))
    c2 = np.concatenate(([0.0], np.cumsum(x * x)))
    s1 = c1[L:] - c1[:-L]
    s2 = c2[L:] - c2[:-L]
    st = tpl.sum()
    stt = (tpl * tpl).sum() - st * st / L
    std = corr - st * s1 / L
    scale = std / stt
    sse = np.maximum(s2 - s1 * s1 / L - scale * std, 1e-300)
    return scale / np.sqrt(sse / (L - 1))


def peaks(z, thr, sep):
    idx, _ = signal.find_peaks(z, height=thr, distance=max(sep, 1))
    return len(idx)


def run_template(x, fs, tpl, block):
    L = len(tpl)
    n = len(x)
    events = 0
    sd = None
    for s in range(0, n - L + 1, block):
        seg = np.asarray(x[s:min(n, s + block + L - 1)], dtype=np.float64)
        if len(seg) < L:
            break
        c = cb_criterion(seg, tpl)
        if sd is None:
            sd = 1.4826 * np.median(np.abs(c - np.median(c)))
        events += peaks(c / sd, 4.0, int(0.001 * fs))
    return events


def run_deconv(x, fs, tpl, block):
    n = len(x)
    events = 0
    sd = None
    nfft = 1 << int(np.ceil(np.log2(block + 2 * len(tpl))))
    e = np.zeros(nfft)
    on = int(np.argmax(tpl > 0))
    e[: len(tpl) - on] = tpl[on:]
    E = np.fft.rfft(e)
    f = np.fft.rfftfreq(nfft, 1.0 / fs)
    sig_f = 1.0 / (2 * np.pi * 0.5e-3)
    H = np.exp(-0.5 * (f / sig_f) ** 2) / E
    for s in range(0, n, block):
        seg = np.asarray(x[s:min(n, s + block)], dtype=np.float64)
        seg = seg - seg.mean()
        d = np.fft.irfft(np.fft.rfft(seg, nfft) * H, nfft)[: len(seg)]
        if sd is None:
            sd = 1.4826 * np.median(np.abs(d - np.median(d)))
        events += peaks(d / sd, 4.0, int(0.001 * fs))
    return events


def run_direct(x, tpl):
    L = len(tpl)
    x = np.asarray(x, dtype=np.float64)
    w = np.lib.stride_tricks.sliding_window_view(x, L)
    tc = tpl - tpl.mean()
    stt = (tc * tc).sum()
    out = np.empty(len(w))
    # the direct sum, in rows of windows to bound the memory
    for s in range(0, len(w), 4096):
        ww = w[s:s + 4096]
        m = ww.mean(axis=1)
        std = ww @ tc
        scale = std / stt
        sdd = ((ww - m[:, None]) ** 2).sum(axis=1)
        sse = np.maximum(sdd - scale * std, 1e-300)
        out[s:s + 4096] = scale / np.sqrt(sse / (L - 1))
    return out


def main():
    path = sys.argv[1]
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    fs, data = wavfile.read(path, mmap=True)
    n = min(len(data), int(secs * fs))
    x = data[:n]
    tpl = biexp(0.0005, 0.005, fs)
    block = 1 << 20
    t0 = time.process_time()
    ev = run_template(x, fs, tpl, block)
    dt = time.process_time() - t0
    print("template\t%.6g\t%d" % (n / dt, ev))
    t0 = time.process_time()
    ev = run_deconv(x, fs, tpl, block)
    dt = time.process_time() - t0
    print("deconv\t%.6g\t%d" % (n / dt, ev))
    nd = min(n, int(10 * fs))
    t0 = time.process_time()
    run_direct(x[:nd], tpl)
    dt = time.process_time() - t0
    print("direct\t%.6g\t0" % (nd / dt))


if __name__ == "__main__":
    main()
