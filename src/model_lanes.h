/* model_lanes.h - the sum over points of model.c, VN points at a time. SPDX-License-Identifier: GPL-3.0-or-later */
/* Included by model.c once per vector width, with VN (lanes), VD and VL
 * (the vector types' names), VFN(name) (the functions' names) and
 * VTARGET (the target attribute) defined, which it undefines at its end:
 * 4 lanes for AVX2 with FMA, 8 for AVX-512. The code is the same; the
 * lanes are points. */

typedef double VD __attribute__((vector_size(8 * VN)));
typedef long long VL __attribute__((vector_size(8 * VN)));
/* The helpers carry the target too: clang refuses AVX vectors across a
 * call into code without it, even when inlined. */
#define VINLINE static inline __attribute__((always_inline)) VTARGET

VINLINE VD
VFN(set1)(double a)
{
  VD v = {0};
  return v + a;
}

VINLINE VD
VFN(sel)(VL m, VD a, VD b)
{
  return (VD)(((VL)a & m) | ((VL)b & ~m));
}

/* The larger, lane by lane (vmaxpd: one instruction where the select
 * of a compare took three). */
VINLINE VD
VFN(max)(VD a, VD b)
{
#if VN == 4
  return (VD)_mm256_max_pd((__m256d)a, (__m256d)b);
#else
  return (VD)_mm512_max_pd((__m512d)a, (__m512d)b);
#endif
}

/* Whether every lane of the VN values at p lies below b. */
VINLINE int
VFN(below)(const double *p, VD b)
{
  VD a;
  memcpy(&a, p, sizeof a);
#if VN == 4
  return _mm256_movemask_pd(
             _mm256_cmp_pd((__m256d)a, (__m256d)b, _CMP_LT_OQ)) == 0xF;
#else
  return _mm512_cmp_pd_mask((__m512d)a, (__m512d)b, _CMP_LT_OQ) == 0xFF;
#endif
}

/* Narrow [*a, *b] from both ends while every lane of the log term of
 * component k (at eb + VN (k - lo)) lies below cut; one component stays. */
VINLINE void
VFN(trim)(const double *eb, unsigned lo, VD cut, unsigned *a, unsigned *b)
{
  while (*a < *b && VFN(below)(eb + VN * (size_t)(*a - lo), cut))
    (*a)++;
  while (*b > *a && VFN(below)(eb + VN * (size_t)(*b - lo), cut))
    (*b)--;
}

VINLINE double
VFN(hsum)(VD a)
{
#if VN == 4
  return (a[0] + a[1]) + (a[2] + a[3]);
#else
  return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
#endif
}

/* exp(d), -700 <= d <= 700, lane by lane. */
#if VN == 8
/* With AVX-512 (the eight-lane code) the reduction is by ln 2 / 8: d =
 * (8 n + j) ln 2 / 8 + r, |r| <= ln 2 / 16 (Cody & Waite split of the
 * constant), 2^(j/8) from a table of eight held in one register
 * (vpermpd: no gather), exp(r) by its Taylor series to r^7 (truncation
 * below 3.1e-16 relative; Horner), and 2^n by vscalefpd. Fifteen vector
 * operations where the reduction by ln 2 and the series to r^12 took
 * twenty-three: the number of operations bounds the loop of terms (on
 * Zen 4 each 512-bit one takes two of the four pipes). With vmaxpd and
 * vminpd for the clamp of its argument then, a value-only evaluation of
 * fit-speed's 10,000 amplitudes at the maximum took 198 us instead of
 * 235 (min and max alone: 211), one with the Hessian 312 instead of 345
 * (min of 6 x 40 blocks of 10 evaluations, alternating builds). */
VINLINE VD
VFN(exp)(VD d)
{
  const VD shift = VFN(set1)(6755399441055744.0); /* 1.5 * 2^52 */
  const VD tab = {0x1.0000000000000p+0, 0x1.172b83c7d517bp+0,
                  0x1.306fe0a31b715p+0, 0x1.4bfdad5362a27p+0,
                  0x1.6a09e667f3bcdp+0, 0x1.8ace5422aa0dbp+0,
                  0x1.ae89f995ad3adp+0, 0x1.d5818dcfba487p+0};
  /* m = 8 n + j sits in the low bits of ks, and vpermpd reads only the
   * low three bits of an index: j, with no arithmetic. */
  VD ks = d * 11.541560327111707 + shift, kd = ks - shift, r, p, t;
  r = (d - kd * 0x1.62e42feep-4) - kd * 0x1.a39ef35793c76p-36;
  t = (VD)_mm512_permutexvar_pd((__m512i)ks, (__m512d)tab);
  p = 1.0 / 720.0 + r * (1.0 / 5040.0);
  p = 1.0 / 120.0 + r * p;
  p = 1.0 / 24.0 + r * p;
  p = 1.0 / 6.0 + r * p;
  p = 0.5 + r * p;
  p = 1.0 + r * p;
  p = 1.0 + r * p;
  /* times 2^n, n = floor(m / 8) (vscalefpd floors its second operand) */
  return (VD)_mm512_scalef_pd((__m512d)(p * t), (__m512d)(kd * 0.125));
}
#else
VINLINE VD
VFN(exp)(VD d)
{
  const VD shift = VFN(set1)(6755399441055744.0); /* 1.5 * 2^52 */
  VD ks = d * 1.4426950408889634 + shift, kd = ks - shift, r, p;
  /* The integer n sits in the low bits of ks: no conversion instruction
   * (AVX2 has none from double to int64). */
  VL n = (VL)ks - (VL)shift;
  r = (d - kd * 0x1.62e42feep-1) - kd * 0x1.a39ef35793c76p-33;
  {
    VD r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    VD q0 = (1.0 + r) + r2 * (0.5 + r * (1.0 / 6.0));
    VD q1 = (1.0 / 24.0 + r * (1.0 / 120.0)) +
             r2 * (1.0 / 720.0 + r * (1.0 / 5040.0));
    VD q2 = (1.0 / 40320.0 + r * (1.0 / 362880.0)) +
             r2 * (1.0 / 3628800.0 + r * (1.0 / 39916800.0));
    p = (q0 + r4 * q1) + r8 * (q2 + r4 * (1.0 / 479001600.0));
  }
  n = (n + 1023) << 52;
  return p * (VD)n;
}
#endif

/* VN points x[0..VN) (lanes past nlane repeat the last point and are
 * dropped), components lo..hi. Adds the log-likelihood of the real lanes
 * to *ll, their gradient and Hessian sums to g, GT, H (as lanes, summed
 * by the caller), their responsibilities to ws->rk. Returns 0 when a lane
 * has zero density, -1 when a lane's largest term falls below bound and
 * the window was restricted (redo over every component), else 1. */
VINLINE int
VFN(quad)(qtl_lik_ws *ws, VD vx, int nlane, unsigned lo,
        unsigned hi, int restricted, double bound, int grad, int hess,
        int em, const double *rel, VD *ll, VD *lp, VD *g, VD *GT,
        VD *H, VD *EM)
{
  const double *A = ws->ga, *mu = ws->mu, *h = ws->h;
  double *eb = ws->lbuf;
  VD z = VFN(set1)(0.0), vmax;
  VD s, aq, a0, av, hk, hk2, hkg0, hkg2, hq0, hqv, h00, h0v, hvv;
  VD be2, bke2, bb;
  unsigned k, elo = lo, ehi = hi, dlo, dhi;
  int j;
  /* The log terms first, each lane's largest with them: it is the
   * reference of the exponentials (the sum is then between 1 and K + 1),
   * and it tells which components at the ends of the window matter. */
  vmax = VFN(set1)(-INFINITY);
  for (k = lo; k <= hi; k++) {
    VD d = vx - mu[k], l = A[k] - d * d * h[k];
    vmax = VFN(max)(l, vmax);
    memcpy(eb + VN * (size_t)(k - lo), &l, sizeof l);
  }
  for (j = 0; j < nlane; j++) {
    if (!(vmax[j] > -INFINITY))
      return 0;
    if (restricted && !(vmax[j] >= bound))
      return -1;
  }
  /* Components at the ends of the window whose terms lie more than
   * TRIM_T below the largest in every lane are left out of the sum, and
   * those more than TRIM_D below out of the derivatives' sums (see
   * TRIM_T). */
  VFN(trim)(eb, lo, vmax - (ws->trim_t > 0.0 ? ws->trim_t : TRIM_T), &elo,
            &ehi);
  dlo = elo;
  dhi = ehi;
  VFN(trim)(eb, lo, vmax - (ws->trim_d > 0.0 ? ws->trim_d : TRIM_D), &dlo,
            &dhi);
  s = z;
  /* The exponentials here, and the sums that weight them in a loop of
   * their own below: in one loop the accumulators and the exponential's
   * temporaries did not fit the registers, and the spills cost more than
   * reading the terms back. Two components per step: their exponentials
   * are independent chains of dependent operations, which one alone left
   * waiting. The sum is still formed in the order of k. The argument's
   * floor of -700 keeps a term of -inf (a free weight of 0) out of exp's
   * reduction. */
  for (k = elo; k + 1 <= ehi; k += 2) {
    VD l0, l1, e0, e1;
    memcpy(&l0, eb + VN * (size_t)(k - lo), sizeof l0);
    memcpy(&l1, eb + VN * (size_t)(k + 1 - lo), sizeof l1);
    e0 = VFN(exp)(VFN(max)(l0 - vmax, VFN(set1)(-700.0)));
    e1 = VFN(exp)(VFN(max)(l1 - vmax, VFN(set1)(-700.0)));
    memcpy(eb + VN * (size_t)(k - lo), &e0, sizeof e0);
    memcpy(eb + VN * (size_t)(k + 1 - lo), &e1, sizeof e1);
    s += e0;
    s += e1;
  }
  for (; k <= ehi; k++) {
    VD l, e;
    memcpy(&l, eb + VN * (size_t)(k - lo), sizeof l);
    e = VFN(exp)(VFN(max)(l - vmax, VFN(set1)(-700.0)));
    memcpy(eb + VN * (size_t)(k - lo), &e, sizeof e);
    s += e;
  }
  aq = a0 = av = hk = hk2 = hkg0 = hkg2 = z;
  hq0 = hqv = h00 = h0v = hvv = z;
  be2 = bke2 = bb = z;
  if (grad || em)
    for (k = dlo; k <= dhi; k++) {
      /* The component's constants (kc8, component_consts): k,
       * iv = 1 / v_k, iv^2, iv^3, k iv, k iv^2, k^2 iv. */
      const double *c8 = ws->kc8 + 8 * (size_t)k;
      VD d = vx - mu[k], e;
      memcpy(&e, eb + VN * (size_t)(k - lo), sizeof e);
      if (grad) {
        double kd = c8[0], iv = c8[1];
        VD G = 0.5 * (d * d * c8[2] - iv), eG = e * G;
        VD gq = c8[4] * d;
        aq += e * gq;
        a0 += eG;
        av += eG * kd;
        if (hess) {
          VD Hv = 0.5 * c8[2] - d * d * c8[3];
          VD q0 = gq * G - c8[5] * d, v00 = Hv + G * G;
          VD ek = e * kd;
          /* (sum e k G is av, and gq^2 - k^2 iv = 2 k^2 G: the sums
           * of e k G and of e (gq^2 - k^2 iv) are taken from av and
           * hkg2 below) */
          hk += ek;
          hk2 += ek * kd;
          hkg0 += ek * gq;
          hkg2 += (ek * kd) * G;
          hq0 += e * q0;
          hqv += ek * q0;
          h00 += e * v00;
          h0v += ek * v00;
          hvv += (ek * kd) * v00;
        }
      }
      if (em) {
        /* The sums of the generalised EM updates (see the scalar loop of
         * qtl_mix_loglik); hk and hk2 double as e k and e k^2. */
        double kd = c8[0];
        VD ed2 = e * (d * d);
        if (!hess) {
          hk += e * kd;
          hk2 += e * (kd * kd);
        }
        be2 += ed2;
        bke2 += ed2 * kd;
        bb += e * c8[6];
      }
    }
  {
    VD inv = 1.0 / s, m = z, one = VFN(set1)(1.0);
    for (j = 0; j < VN; j++)
      m[j] = j < nlane ? 1.0 : 0.0;
    /* log f = vmax + log s, 1 <= s <= K + 1: s goes into the caller's
     * running products, whose logs it takes every 8 factors. */
    *ll += vmax * m;
    *lp *= VFN(sel)(m != 0.0, s, one);
    if (!grad && !em)
      return 1;
    inv *= m; /* dropped lanes contribute nothing */
    if (em) {
      EM[0] += m;
      EM[1] += hk * inv;
      EM[2] += hk2 * inv;
      EM[3] += be2 * inv;
      EM[4] += bke2 * inv;
      EM[5] += bb * inv;
    }
    for (k = dlo; k <= dhi; k++) {
      /* per lane; the lanes are summed once, at the end (VFN(points)) */
      VD e, a;
      memcpy(&e, eb + VN * (size_t)(k - lo), sizeof e);
      memcpy(&a, ws->rk4 + VN * (size_t)k, sizeof a);
      a += e * inv;
      memcpy(ws->rk4 + VN * (size_t)k, &a, sizeof a);
    }
    g[0] += aq * inv;
    g[1] += a0 * inv;
    g[2] += av * inv;
    if (hess) {
      /* Per lane: E[d2 L + g g'] - E[g] E[g]' over the softmax weights,
       * the release entry a_k = rel[0] k + rel[1], its derivative
       * rel[2] k + rel[3]. */
      VD gb[QTL_NTH], E2[10], mk = hk * inv;
      double ra = rel[0], rb = rel[1];
      int u, w, t = 0;
      gb[QTL_TH_REL] = (ra * mk + rb) * m;
      gb[QTL_TH_Q] = aq * inv;
      gb[QTL_TH_V0] = a0 * inv;
      gb[QTL_TH_VQ] = av * inv;
      E2[0] = (ra * ra * hk2 * inv + 2.0 * ra * rb * mk + rb * rb +
               rel[2] * mk + rel[3]) * m;
      E2[1] = ra * hkg0 * inv + rb * gb[QTL_TH_Q];
      E2[2] = ra * av * inv + rb * gb[QTL_TH_V0];
      E2[3] = ra * hkg2 * inv + rb * gb[QTL_TH_VQ];
      E2[4] = 2.0 * hkg2 * inv;
      E2[5] = hq0 * inv;
      E2[6] = hqv * inv;
      E2[7] = h00 * inv;
      E2[8] = h0v * inv;
      E2[9] = hvv * inv;
      for (u = 0; u < QTL_NTH; u++) {
        GT[u] += gb[u];
        for (w = u; w < QTL_NTH; w++, t++)
          H[t] += E2[t] - gb[u] * gb[w];
      }
    }
  }
  return 1;
}

/* The k range where (x - k q)^2 <= 2 T v_k, v_k = s0^2 + k sq^2 (see
 * phi_window), as whole numbers clipped to [lo, hi]; empty: lo > hi. */
VINLINE void
VFN(window)(double x, double q, double s02, double sq2, long plo, long phi_,
          long *lo, long *hi)
{
  double a = q * q, b = -(2.0 * x * q + 2.0 * WINDOW_T * sq2),
         c = x * x - 2.0 * WINDOW_T * s02, disc = b * b - 4.0 * a * c;
  long l = plo, u = phi_;
  if (disc < 0.0) {
    *lo = 1;
    *hi = 0;
    return;
  }
  disc = sqrt(disc);
  {
    double ka = (-b - disc) / (2.0 * a), kb = (-b + disc) / (2.0 * a);
    if (ka > (double)l)
      l = ka > (double)u ? u + 1 : (long)ceil(ka);
    if (kb < (double)u)
      u = kb < (double)l ? l - 1 : (long)floor(kb);
  }
  *lo = l;
  *hi = u;
}

/* The sum over points. Returns the log-likelihood (-INFINITY when a point
 * has zero density) and adds to g (d/dq, d/dv0, d/dvq), H and GT;
 * ws->rk receives the responsibilities when grad is set. ws->lbuf must
 * hold VN (K + 1) values. */
VTARGET static double
VFN(points)(const qtl_mix *mix, qtl_lik_ws *ws, const double *x, size_t nx,
          unsigned K, unsigned k0, unsigned plo, unsigned phi_, double extra,
          int grad, int hess, int em, const double *rel, double *g,
          double H[QTL_NTH][QTL_NTH], double *GT, double *emsum)
{
  double s02 = mix->sigma0 * mix->sigma0, sq2 = mix->sigma_q * mix->sigma_q;
  VD z = VFN(set1)(0.0), ll = z, lp = VFN(set1)(1.0), vg[3] = {z, z, z},
      vGT[QTL_NTH] = {z, z, z, z},
      vH[10] = {z, z, z, z, z, z, z, z, z, z}, vEM[6] = {z, z, z, z, z, z};
  size_t i;
  int u, w, t;
  if (grad || em)
    memset(ws->rk4, 0, VN * ((size_t)K + 1) * sizeof *ws->rk4);
  for (i = 0; i < nx; i += VN) {
    int nl = nx - i < VN ? (int)(nx - i) : VN, j, r;
    long lo = LONG_MAX, hi = LONG_MIN;
    VD vx;
    for (j = 0; j < VN; j++) {
      long a, b;
      vx[j] = x[i + (j < nl ? j : nl - 1)];
      VFN(window)(vx[j], mix->q, s02, sq2, plo, phi_, &a, &b);
      if (a > b) {
        /* Empty window: the whole range. */
        a = k0;
        b = K;
      }
      lo = a < lo ? a : lo;
      hi = b > hi ? b : hi;
    }
    {
      /* The largest bound on a term the window drops. */
      double bound = ws->bpre[lo] > ws->bsuf[hi] ? ws->bpre[lo] : ws->bsuf[hi];
      r = VFN(quad)(ws, vx, nl, (unsigned)lo, (unsigned)hi,
                  lo > (long)k0 || hi < (long)K, bound + extra, grad, hess,
                  em, rel, &ll, &lp, vg, vGT, vH, vEM);
    }
    if (r < 0)
      r = VFN(quad)(ws, vx, nl, k0, K, 0, 0.0, grad, hess, em, rel, &ll,
                  &lp, vg, vGT, vH, vEM);
    if (r == 0)
      return -INFINITY;
    /* Every 32 points (8 factors of at most 2^64 each per lane: no
     * overflow) the products' logs join the sum: one log per lane
     * instead of one per point, which had been 6 % of a fit. */
    if ((i / VN) % 8 == 7) {
      for (j = 0; j < VN; j++)
        ll[j] += log(lp[j]);
      lp = VFN(set1)(1.0);
    }
  }
  for (u = 0; u < VN; u++)
    ll[u] += log(lp[u]);
  if (grad || em) {
    unsigned k;
    for (k = 0; k <= K; k++) {
      VD a;
      memcpy(&a, ws->rk4 + VN * (size_t)k, sizeof a);
      ws->rk[k] += VFN(hsum)(a);
    }
  }
  for (u = 0; u < 3; u++)
    g[u] += VFN(hsum)(vg[u]);
  for (u = 0; u < 6; u++)
    emsum[u] += VFN(hsum)(vEM[u]);
  for (u = 0, t = 0; u < QTL_NTH; u++) {
    GT[u] += VFN(hsum)(vGT[u]);
    for (w = u; w < QTL_NTH; w++, t++)
      H[u][w] += VFN(hsum)(vH[t]);
  }
  return VFN(hsum)(ll);
}

#undef VINLINE
#undef VN
#undef VD
#undef VL
#undef VFN
#undef VTARGET
