#!/usr/bin/env python3
# fit_scipy.py - baseline for fit-speed: the same binomial mixture
# likelihood (Stricker & Redman 1994) maximised with scipy's L-BFGS-B,
# several starts per n, n profiled over a grid like quantal's (every n up
# to 12, then steps of 20 %, plus every integer within 3 of the best).
# SPDX-License-Identifier: GPL-3.0-or-later
# Usage: fit_scipy.py AMPLITUDES.tsv NMAX -> "loglik n seconds"
import sys
import time

import numpy as np
from scipy.optimize import minimize
from scipy.special import gammaln, logsumexp


def read(path):
    rows = [l.rstrip("\n").split("\t") for l in open(path) if not l.startswith("#")]
    j = [i for i, c in enumerate(rows[0]) if c.startswith("amplitude_")][0]
    x = np.array([float(r[j]) for r in rows[1:]])
    return x if x.mean() > 0 else -x


def negll(theta, x, n):
    p, q, sq, s0 = theta
    k = np.arange(n + 1)
    logp = (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
            + k * np.log(p) + (n - k) * np.log1p(-p))
    v = s0 * s0 + k * sq * sq
    lc = logp - 0.5 * np.log(2 * np.pi * v)
    d = x[:, None] - k[None, :] * q
    return -logsumexp(lc[None, :] - d * d / (2 * v[None, :]), axis=1).sum()


def fit_n(x, n, starts):
    best = (np.inf, None)
    sd = x.std()
    for q0 in starts:
        p0 = min(max(x.mean() / (n * q0), 1e-3), 0.99)
        r = minimize(negll, [p0, q0, 0.25 * q0, 0.1 * sd], args=(x, n),
                     method="L-BFGS-B",
                     bounds=[(1e-9, 1 - 1e-9), (1e-6, None), (1e-9, None),
                             (1e-9, None)])
        if r.fun < best[0]:
            best = (r.fun, r.x)
    return -best[0]


def main():
    x = read(sys.argv[1])
    nmax = int(sys.argv[2])
    t0 = time.time()
    grid, n = [], 1
    while n <= nmax:
        grid.append(n)
        n = n + 1 if n < 12 else max(n + 1, int(n * 1.2))
    if grid[-1] != nmax:
        grid.append(nmax)
    mean = x.mean()
    starts = [mean / 2, mean / 6, mean / 12]
    prof = {n: fit_n(x, n, starts) for n in grid}
    nb = max(prof, key=prof.get)
    for n in range(max(1, nb - 3), min(nmax, nb + 3) + 1):
        if n not in prof:
            prof[n] = fit_n(x, n, starts)
    nb = max(prof, key=prof.get)
    print("%.9f %d %.3f" % (prof[nb], nb, time.time() - t0))


main()
