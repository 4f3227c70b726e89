/* test_plot.c - figures: decimation, bins, and every figure kind in every format. SPDX-License-Identifier: GPL-3.0-or-later */
#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <gsl/gsl_errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quantal.h"

static char dir[256];

static void
setup(void)
{
  gsl_set_error_handler_off();
  snprintf(dir, sizeof dir, "%s/quantal-plot-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  cr_assert_not_null(mkdtemp(dir));
}

static void
teardown(void)
{
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  (void)system(cmd);
}

TestSuite(plot, .init = setup, .fini = teardown);

static unsigned char *
read_all(const char *path, size_t *n)
{
  FILE *fp = fopen(path, "rb");
  unsigned char *b;
  long size;
  cr_assert_not_null(fp, "%s was not written", path);
  fseek(fp, 0, SEEK_END);
  size = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  b = malloc((size_t)size + 1);
  cr_assert_not_null(b);
  *n = fread(b, 1, (size_t)size, fp);
  b[*n] = '\0';
  fclose(fp);
  return b;
}

static unsigned long
be32(const unsigned char *p)
{
  return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 |
         (unsigned long)p[2] << 8 | p[3];
}

/* The file parses as its format: PNG signature and IHDR of the expected
 * size, an SVG root element, a PDF header and trailer. */
static void
assert_figure(const char *path, quantal_plot_format f, unsigned long w,
              unsigned long h)
{
  size_t n;
  unsigned char *b = read_all(path, &n);
  switch (f) {
  case QUANTAL_PLOT_PNG:
    cr_assert_geq(n, 33);
    cr_assert_eq(memcmp(b, "\x89PNG\r\n\x1a\n", 8), 0);
    cr_assert_eq(be32(b + 8), 13); /* IHDR length */
    cr_assert_eq(memcmp(b + 12, "IHDR", 4), 0);
    cr_assert_eq(be32(b + 16), w);
    cr_assert_eq(be32(b + 20), h);
    cr_assert_eq(memcmp(b + n - 8, "IEND", 4), 0);
    break;
  case QUANTAL_PLOT_SVG:
    cr_assert_not_null(strstr((char *)b, "<svg"));
    cr_assert_not_null(strstr((char *)b, "</svg>"));
    cr_assert_not_null(strstr((char *)b, "<text"), "axis labels as text");
    break;
  case QUANTAL_PLOT_PDF:
    cr_assert_eq(memcmp(b, "%PDF-", 5), 0);
    cr_assert_not_null(strstr((char *)b + (n > 64 ? n - 64 : 0), "%%EOF"));
    break;
  default: cr_assert_fail("no format");
  }
  free(b);
}

static const char *
path_of(const char *name)
{
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

Test(plot, format_from_extension)
{
  quantal_plot_format f;
  quantal_diag d;
  cr_assert_eq(quantal_plot_format_from_path("a/b.PNG", &f, &d), QUANTAL_OK);
  cr_assert_eq(f, QUANTAL_PLOT_PNG);
  cr_assert_eq(quantal_plot_format_from_path("x.svg", &f, &d), QUANTAL_OK);
  cr_assert_eq(f, QUANTAL_PLOT_SVG);
  cr_assert_eq(quantal_plot_format_from_path("x.pdf", &f, &d), QUANTAL_OK);
  cr_assert_eq(f, QUANTAL_PLOT_PDF);
  quantal_diag_clear(&d);
  cr_assert_eq(quantal_plot_format_from_path("x.txt", &f, &d),
               QUANTAL_EINVAL);
  cr_assert_str_eq(d.file, "x.txt");
}

/* Min/max columns do not depend on how the trace is cut into blocks. */
Test(plot, minmax_is_block_independent)
{
  enum { N = 10007, C = 97 };
  double *x = malloc(N * sizeof *x), lo1[C], hi1[C], lo2[C], hi2[C];
  size_t i, pos, c;
  for (i = 0; i < N; i++)
    x[i] = sin(0.013 * (double)i) + 0.001 * (double)(i % 7);
  x[5000] = NAN;
  for (c = 0; c < C; c++) {
    lo1[c] = lo2[c] = INFINITY;
    hi1[c] = hi2[c] = -INFINITY;
  }
  quantal_plot_minmax(x, N, 0, N, C, lo1, hi1);
  for (pos = 0; pos < N; pos += 333) {
    size_t m = N - pos < 333 ? N - pos : 333;
    quantal_plot_minmax(x + pos, m, pos, N, C, lo2, hi2);
  }
  for (c = 0; c < C; c++) {
    double mn = INFINITY, mx = -INFINITY;
    /* Frame i belongs to column floor(i C / N). */
    for (i = 0; i < N; i++)
      if (i * C / N == c && isfinite(x[i])) {
        mn = fmin(mn, x[i]);
        mx = fmax(mx, x[i]);
      }
    cr_assert_eq(lo1[c], lo2[c]);
    cr_assert_eq(hi1[c], hi2[c]);
    cr_assert_eq(lo1[c], mn, "column %zu", c);
    cr_assert_eq(hi1[c], mx, "column %zu", c);
  }
  free(x);
}

/* Freedman-Diaconis on 0..999: IQR 499.5 (linear quantiles), so
 * h = 2 * 499.5 * 1000^(-1/3) = 99.9. */
Test(plot, freedman_diaconis_width)
{
  double x[1000];
  size_t i;
  for (i = 0; i < 1000; i++)
    x[i] = (double)(999 - i);
  cr_assert_float_eq(quantal_plot_bin_width(x, 1000), 99.9, 1e-9);
  cr_assert(isnan(quantal_plot_bin_width(x, 1)));
  x[1] = x[0];
  cr_assert_float_eq(quantal_plot_bin_width(x, 2), 1.0, 0.0);
}

/* Synthetic inputs for every figure kind. */
enum { NS = 4000, NE = 40, NA = 200 };
static double trace[NS], lo[400], hi[400], onset[NE], peak[NE], amp[NE],
    level[NE], avg[300];

static quantal_plot_detect_data
detect_data(void)
{
  quantal_plot_detect_data d;
  size_t i, c;
  memset(&d, 0, sizeof d);
  for (i = 0; i < NS; i++)
    trace[i] = 0.05 * sin(1.7 * (double)i);
  for (i = 0; i < NE; i++) {
    onset[i] = 0.01 + 0.0095 * (double)i * (1 + 0.3 * sin((double)i));
    peak[i] = onset[i] + 0.002;
    amp[i] = 0.5 + 0.2 * sin(3.0 * (double)i);
    level[i] = amp[i];
  }
  for (c = 0; c < 400; c++) {
    lo[c] = INFINITY;
    hi[c] = -INFINITY;
  }
  quantal_plot_minmax(trace, NS, 0, NS, 400, lo, hi);
  for (i = 0; i < 300; i++) {
    double t = (double)i / 10000.0 - 0.005;
    avg[i] = t > 0 ? 0.5 * quantal_template_biexp_value(t, 0.0005, 0.004)
                   : 0.0;
  }
  d.unit = "mV";
  d.env_lo = lo;
  d.env_hi = hi;
  d.n_cols = 400;
  d.env_dt_s = 0.4 / 400;
  d.strip = trace;
  d.n_strip = 2000;
  d.rate_hz = 10000;
  d.onset_s = onset;
  d.peak_s = peak;
  d.amplitude = amp;
  d.peak_level = level;
  d.n_events = NE;
  d.avg = avg;
  d.n_avg = 300;
  d.n_averaged = NE;
  d.avg_t0_s = -0.005;
  d.rise_s = 0.0005;
  d.decay_s = 0.004;
  return d;
}

static const char *fmt_ext[] = {"", ".png", ".svg", ".pdf"};

Test(plot, detect_every_format_twice)
{
  quantal_plot_detect_data d = detect_data();
  quantal_plot_options o = quantal_plot_options_default();
  quantal_diag diag;
  int f, rep;
  char name[64];
  o.title = "test # detect";
  /* Twice each: every call is a self-contained PLplot stream. */
  for (rep = 0; rep < 2; rep++)
    for (f = QUANTAL_PLOT_PNG; f <= QUANTAL_PLOT_PDF; f++) {
      snprintf(name, sizeof name, "detect%d%s", rep, fmt_ext[f]);
      cr_assert_eq(quantal_plot_detect(&d, path_of(name), &o, &diag),
                   QUANTAL_OK, "%s: %s", name, diag.reason);
      assert_figure(path_of(name), (quantal_plot_format)f, 1200, 1000);
    }
}

Test(plot, evoked_png_size_and_failures)
{
  enum { NR = 30, NSMP = 100 };
  static double tr[NR * NSMP], a[NR];
  static int fail[NR];
  quantal_plot_evoked_data d;
  quantal_plot_options o = quantal_plot_options_default();
  quantal_diag diag;
  size_t i, j;
  for (i = 0; i < NR; i++) {
    fail[i] = i % 5 == 0;
    a[i] = fail[i] ? 0.01 : 1.0 + 0.1 * (double)(i % 7);
    for (j = 0; j < NSMP; j++) {
      double t = (double)j / 10000.0 - 0.002;
      tr[i * NSMP + j] =
          t > 0 ? a[i] * quantal_template_biexp_value(t, 0.0005, 0.003)
                : 0.0;
    }
  }
  memset(&d, 0, sizeof d);
  d.unit = "pA";
  d.n_traces = NR;
  d.n_samples = NSMP;
  d.traces = tr;
  d.trace_failure = fail;
  d.rate_hz = 10000;
  d.t0_s = -0.002;
  d.n_resp = NR;
  d.amplitude = a;
  d.failure = fail;
  o.width_px = 800;
  o.height_px = 600;
  cr_assert_eq(quantal_plot_evoked(&d, path_of("ev.png"), &o, &diag),
               QUANTAL_OK, "%s", diag.reason);
  assert_figure(path_of("ev.png"), QUANTAL_PLOT_PNG, 800, 600);
  cr_assert_eq(quantal_plot_evoked(&d, path_of("ev.svg"), NULL, &diag),
               QUANTAL_OK);
  assert_figure(path_of("ev.svg"), QUANTAL_PLOT_SVG, 0, 0);
}

Test(plot, fit_and_recovery_and_score)
{
  static double x[NA], grid[100], dens[100], comp[3 * 100], ll[20];
  static unsigned k[3] = {0, 1, 2}, pn[20];
  double est[10], elo[10], ehi[10];
  quantal_plot_fit_data d;
  quantal_plot_recovery_param rp[2];
  quantal_plot_score_data s;
  quantal_match_result mr;
  size_t match[NE], i, j;
  quantal_diag diag;
  for (i = 0; i < NA; i++)
    x[i] = 0.5 * (double)(i % 3) + 0.05 * sin((double)i);
  for (i = 0; i < 100; i++) {
    grid[i] = -0.3 + 1.6 * (double)i / 99;
    dens[i] = 0;
    for (j = 0; j < 3; j++) {
      double z = (grid[i] - 0.5 * (double)j) / 0.06;
      comp[j * 100 + i] = exp(-0.5 * z * z) / (3 * 0.06 * sqrt(2 * M_PI));
      dens[i] += comp[j * 100 + i];
    }
  }
  for (i = 0; i < 20; i++) {
    pn[i] = (unsigned)(i + 2);
    ll[i] = -100.0 - 0.2 * ((double)i - 5) * ((double)i - 5);
  }
  memset(&d, 0, sizeof d);
  d.unit = "mV";
  d.model = "binomial";
  d.amplitudes = x;
  d.n_amplitudes = NA;
  d.grid = grid;
  d.n_grid = 100;
  d.density = dens;
  d.n_components = 3;
  d.component_k = k;
  d.components = comp;
  d.profile_n = pn;
  d.profile_loglik = ll;
  d.n_profile = 20;
  d.minis = x;
  d.n_minis = 50;
  cr_assert_eq(quantal_plot_fit(&d, path_of("fit.pdf"), NULL, &diag),
               QUANTAL_OK, "%s", diag.reason);
  assert_figure(path_of("fit.pdf"), QUANTAL_PLOT_PDF, 0, 0);

  for (i = 0; i < 10; i++) {
    est[i] = 0.3 + 0.01 * ((double)i - 4.5);
    elo[i] = est[i] - 0.02;
    ehi[i] = est[i] + 0.02;
  }
  rp[0].name = "p";
  rp[0].truth = 0.3;
  rp[0].n = 10;
  rp[0].value = est;
  rp[0].lo = elo;
  rp[0].hi = ehi;
  rp[1] = rp[0];
  rp[1].name = "q (mV)";
  rp[1].lo = rp[1].hi = NULL;
  cr_assert_eq(quantal_plot_recovery(rp, 2, path_of("rec.png"), NULL, &diag),
               QUANTAL_OK, "%s", diag.reason);
  assert_figure(path_of("rec.png"), QUANTAL_PLOT_PNG, 1200, 500);

  for (i = 0; i < NE; i++) {
    onset[i] = 0.1 * (double)i;
    peak[i] = onset[i] + (i % 4 == 0 ? 0.05 : 0.0003);
    amp[i] = 1.0 + 0.01 * (double)i;
  }
  cr_assert_eq(quantal_compare_events(peak, amp, NE, onset, amp, NE, 0.002,
                                      match, &mr, &diag),
               QUANTAL_OK);
  memset(&s, 0, sizeof s);
  s.unit = "mV";
  s.det_s = peak;
  s.det_amp = amp;
  s.n_det = NE;
  s.true_s = onset;
  s.true_amp = amp;
  s.n_true = NE;
  s.match = match;
  s.result = &mr;
  cr_assert_eq(quantal_plot_score(&s, path_of("score.svg"), NULL, &diag),
               QUANTAL_OK, "%s", diag.reason);
  assert_figure(path_of("score.svg"), QUANTAL_PLOT_SVG, 0, 0);
}

/* Failures are statuses with the file named, nothing printed and no
 * file left behind. */
Test(plot, failures_are_quiet, .init = cr_redirect_stderr)
{
  quantal_plot_detect_data d;
  quantal_plot_options o = quantal_plot_options_default();
  quantal_diag diag;
  memset(&d, 0, sizeof d);
  quantal_diag_clear(&diag);
  cr_assert_eq(quantal_plot_detect(&d, path_of("empty.png"), NULL, &diag),
               QUANTAL_ENODATA);
  cr_assert_eq(access(path_of("empty.png"), F_OK), -1);
  d = detect_data();
  cr_assert_eq(quantal_plot_detect(&d, "/nonexistent-dir/x.png", NULL,
                                   &diag),
               QUANTAL_EIO);
  cr_assert_str_eq(diag.file, "/nonexistent-dir/x.png");
  cr_assert_eq(quantal_plot_detect(&d, path_of("x.gif"), NULL, &diag),
               QUANTAL_EINVAL);
  o.width_px = 10;
  cr_assert_eq(quantal_plot_detect(&d, path_of("x.png"), &o, &diag),
               QUANTAL_EINVAL);
  fflush(stderr);
  cr_assert_stderr_eq_str("");
}
