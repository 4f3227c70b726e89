/* plot.c - figures of events, responses and fits, drawn with PLplot. SPDX-License-Identifier: GPL-3.0-or-later */
#include <config.h>

#include "internal.h"

#include <plplot.h>

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

/* PLplot is opened on first use (dl.c): the symbols used here. */
#define PLPLOT_SYMS(X) \
  X(c_pladv) X(c_plbox) X(c_plcol0) X(c_plend1) X(c_plfill) X(c_plgstrm) \
  X(c_plgver) X(c_plinit) X(c_pljoin) X(c_pllab) X(c_plline) X(c_pllsty) \
  X(c_plmkstrm) X(c_plmtex) X(c_plpoin) X(c_plptex) X(c_plschr) \
  X(c_plscmap0) X(c_plscolbg) X(c_plsdev) X(c_plsfci) X(c_plsfnam) \
  X(c_plspage) X(c_plspause) X(c_plsstrm) X(c_plssym) X(c_plvpor) \
  X(c_plwidth) X(c_plwind) X(plgDevs) X(plsabort) X(plsexit)
QTL_DL_LIB(pllib, PLPLOT_SYMS, QTL_PLPLOT_SONAME, "Figures");
#define c_pladv QTL_DL_SYM(pllib, c_pladv)
#define c_plbox QTL_DL_SYM(pllib, c_plbox)
#define c_plcol0 QTL_DL_SYM(pllib, c_plcol0)
#define c_plend1 QTL_DL_SYM(pllib, c_plend1)
#define c_plfill QTL_DL_SYM(pllib, c_plfill)
#define c_plgstrm QTL_DL_SYM(pllib, c_plgstrm)
#define c_plgver QTL_DL_SYM(pllib, c_plgver)
#define c_plinit QTL_DL_SYM(pllib, c_plinit)
#define c_pljoin QTL_DL_SYM(pllib, c_pljoin)
#define c_pllab QTL_DL_SYM(pllib, c_pllab)
#define c_plline QTL_DL_SYM(pllib, c_plline)
#define c_pllsty QTL_DL_SYM(pllib, c_pllsty)
#define c_plmkstrm QTL_DL_SYM(pllib, c_plmkstrm)
#define c_plmtex QTL_DL_SYM(pllib, c_plmtex)
#define c_plpoin QTL_DL_SYM(pllib, c_plpoin)
#define c_plptex QTL_DL_SYM(pllib, c_plptex)
#define c_plschr QTL_DL_SYM(pllib, c_plschr)
#define c_plscmap0 QTL_DL_SYM(pllib, c_plscmap0)
#define c_plscolbg QTL_DL_SYM(pllib, c_plscolbg)
#define c_plsdev QTL_DL_SYM(pllib, c_plsdev)
#define c_plsfci QTL_DL_SYM(pllib, c_plsfci)
#define c_plsfnam QTL_DL_SYM(pllib, c_plsfnam)
#define c_plspage QTL_DL_SYM(pllib, c_plspage)
#define c_plspause QTL_DL_SYM(pllib, c_plspause)
#define c_plsstrm QTL_DL_SYM(pllib, c_plsstrm)
#define c_plssym QTL_DL_SYM(pllib, c_plssym)
#define c_plvpor QTL_DL_SYM(pllib, c_plvpor)
#define c_plwidth QTL_DL_SYM(pllib, c_plwidth)
#define c_plwind QTL_DL_SYM(pllib, c_plwind)
#define plgDevs QTL_DL_SYM(pllib, plgDevs)
#define plsabort QTL_DL_SYM(pllib, plsabort)
#define plsexit QTL_DL_SYM(pllib, plsexit)

/*
 * Every figure is one PLplot stream made, drawn and ended inside one call,
 * so the calls can be repeated in one process. PLplot reports fatal errors
 * through plexit(), which prints and calls exit() unless the exit handler
 * never returns: ours records the message and longjmps back to
 * run_figure(), which then fails with QUANTAL_EFAILED. Non-fatal errors
 * (plabort) are recorded by the abort handler and also fail the figure.
 *
 * Style shared by all figures: white background, the Okabe & Ito (2008)
 * colour-blind-safe palette, axes labelled "quantity (unit)".
 */

/* Colour map 0 indices. */
enum {
  C_WHITE = 0,
  C_BLACK = 1,
  C_GREY = 2,
  C_LIGHT = 3,
  C_BLUE = 4,
  C_VERMILLION = 5,
  C_GREEN = 6,
  C_ORANGE = 7,
  C_SKY = 8,
  C_PURPLE = 9,
  C_YELLOW = 10,
  C_DARK = 11,
  C_PALE = 12,
  N_COLOURS = 13
};

static const PLINT pal_r[N_COLOURS] = {255, 0,   153, 221, 0,   213, 0,
                                       230, 86,  204, 240, 85,  200};
static const PLINT pal_g[N_COLOURS] = {255, 0,   153, 221, 114, 94,  158,
                                       159, 180, 121, 228, 85,  225};
static const PLINT pal_b[N_COLOURS] = {255, 0,   153, 221, 178, 0,   115,
                                       0,   233, 167, 66,  85,  242};

/* Colours of mixture components k = 0, 1, 2, ... in turn. */
static const PLINT comp_colour[] = {C_GREY,   C_BLUE,   C_VERMILLION,
                                    C_GREEN,  C_ORANGE, C_PURPLE,
                                    C_SKY,    C_DARK};

static jmp_buf plot_jmp;
static char plot_err[256];

static int
on_plexit(PLCHAR_VECTOR msg)
{
  if (plot_err[0] == '\0')
    qtl_strlcpy(plot_err, msg && *msg ? msg : "PLplot error",
                sizeof plot_err);
  longjmp(plot_jmp, 1);
  return 1; /* not reached */
}

static void
on_plabort(PLCHAR_VECTOR msg)
{
  if (plot_err[0] == '\0')
    qtl_strlcpy(plot_err, msg && *msg ? msg : "PLplot error",
                sizeof plot_err);
}

quantal_plot_options
quantal_plot_options_default(void)
{
  quantal_plot_options o;
  memset(&o, 0, sizeof o);
  o.format = QUANTAL_PLOT_AUTO;
  return o;
}

void
quantal_plot_backend(char *buf, size_t size)
{
  char ver[80];
  ver[0] = '\0';
  if (qtl_dl_load(&pllib, NULL, NULL) != QUANTAL_OK) {
    snprintf(buf, size, "PLplot (%s cannot be loaded)", QTL_PLPLOT_SONAME);
    return;
  }
  plgver(ver);
  snprintf(buf, size, "PLplot %s", ver);
}

quantal_status
quantal_plot_format_from_path(const char *path, quantal_plot_format *format,
                              quantal_diag *diag)
{
  if (path != NULL && qtl_has_suffix(path, ".png"))
    *format = QUANTAL_PLOT_PNG;
  else if (path != NULL && qtl_has_suffix(path, ".svg"))
    *format = QUANTAL_PLOT_SVG;
  else if (path != NULL && qtl_has_suffix(path, ".pdf"))
    *format = QUANTAL_PLOT_PDF;
  else
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1,
                    "figure name must end in .png, .svg or .pdf");
  return QUANTAL_OK;
}

void
quantal_plot_minmax(const double *x, size_t n, uint64_t first_frame,
                    uint64_t total_frames, size_t n_cols, double *lo,
                    double *hi)
{
  size_t i;
  if (n_cols == 0 || total_frames == 0)
    return;
  for (i = 0; i < n; i++) {
    uint64_t f = first_frame + i;
    size_t c;
    if (f >= total_frames || !isfinite(x[i]))
      continue;
    /* Column of frame f: floor(f n_cols / T), exact in integers unless
     * the product would overflow. */
    if (f <= UINT64_MAX / n_cols)
      c = (size_t)(f * (uint64_t)n_cols / total_frames);
    else
      c = (size_t)((double)f * (double)n_cols / (double)total_frames);
    if (c >= n_cols)
      c = n_cols - 1;
    if (x[i] < lo[c])
      lo[c] = x[i];
    if (x[i] > hi[c])
      hi[c] = x[i];
  }
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Finite values of x, sorted, in a new array (NULL when none or no
 * memory; *m receives the count). */
static double *
sorted_finite(const double *x, size_t n, size_t *m)
{
  double *v;
  size_t i, k = 0;
  *m = 0;
  if (x == NULL || n == 0)
    return NULL;
  v = malloc(n * sizeof *v);
  if (v == NULL)
    return NULL;
  for (i = 0; i < n; i++)
    if (isfinite(x[i]))
      v[k++] = x[i];
  if (k == 0) {
    free(v);
    return NULL;
  }
  qsort(v, k, sizeof *v, cmp_double);
  *m = k;
  return v;
}

static double
quantile_sorted(const double *v, size_t n, double p)
{
  double h = p * (double)(n - 1);
  size_t i = (size_t)h;
  if (i + 1 >= n)
    return v[n - 1];
  return v[i] + (h - (double)i) * (v[i + 1] - v[i]);
}

double
quantal_plot_bin_width(const double *x, size_t n)
{
  size_t m;
  double *v = sorted_finite(x, n, &m), iqr, range, w;
  if (v == NULL || m < 2) {
    free(v);
    return NAN;
  }
  range = v[m - 1] - v[0];
  iqr = quantile_sorted(v, m, 0.75) - quantile_sorted(v, m, 0.25);
  free(v);
  if (range <= 0.0)
    return 1.0;
  /* Freedman & Diaconis (1981): h = 2 IQR n^(-1/3). */
  w = 2.0 * iqr * pow((double)m, -1.0 / 3.0);
  if (!(w > 0.0))
    w = range / sqrt((double)m);
  /* At most 200 bins, however long the tail. */
  if (range / w > 200.0)
    w = range / 200.0;
  return w;
}

/* ---- drawing helpers ---------------------------------------------------- */

/* Character height relative to PLplot's default, which is too large for
 * multi-panel pages: 0.62 gives about 14 px text on a 1200 px figure. */
#define CHAR_SCALE 0.62

static void
chr(double f)
{
  plschr(0.0, CHAR_SCALE * f);
}

/* Copy s into buf with PLplot's escape character '#' doubled. */
static const char *
esc(const char *s, char *buf, size_t size)
{
  size_t k = 0;
  if (s == NULL)
    s = "";
  for (; *s && k + 2 < size; s++) {
    if (*s == '#')
      buf[k++] = '#';
    buf[k++] = *s;
  }
  buf[k] = '\0';
  return buf;
}

/* Finite range of x with a fraction pad of margin; [0, 1] when empty. */
static void
range_of(const double *x, size_t n, double pad, double *lo, double *hi)
{
  size_t i;
  double a = INFINITY, b = -INFINITY;
  for (i = 0; x != NULL && i < n; i++)
    if (isfinite(x[i])) {
      if (x[i] < a)
        a = x[i];
      if (x[i] > b)
        b = x[i];
    }
  if (!(a <= b)) {
    a = 0.0;
    b = 1.0;
  }
  if (b - a <= 1e-300 * (fabs(a) + 1.0)) {
    double d = fabs(a) > 0 ? 0.1 * fabs(a) : 1.0;
    a -= d;
    b += d;
  }
  *lo = a - pad * (b - a);
  *hi = b + pad * (b - a);
}

static void
widen(const double *x, size_t n, double *lo, double *hi)
{
  size_t i;
  for (i = 0; x != NULL && i < n; i++)
    if (isfinite(x[i])) {
      if (x[i] < *lo)
        *lo = x[i];
      if (x[i] > *hi)
        *hi = x[i];
    }
}

/* A panel: viewport in normalised page coordinates, world window, box,
 * axis labels and panel title. */
static void
panel(double x0, double x1, double y0, double y1, double wx0, double wx1,
      double wy0, double wy1, const char *xlab, const char *ylab,
      const char *title)
{
  char bx[256], by[256], bt[512];
  plvpor(x0, x1, y0, y1);
  plwind(wx0, wx1, wy0, wy1);
  plcol0(C_BLACK);
  plwidth(1.0);
  plbox("bcnst", 0.0, 0, "bcnstv", 0.0, 0);
  pllab(esc(xlab, bx, sizeof bx), esc(ylab, by, sizeof by),
        esc(title, bt, sizeof bt));
}

/* Text at the top-left corner inside the current viewport. */
static void
corner_text(const char *s, int line)
{
  char b[512];
  plcol0(C_BLACK);
  plmtex("t", -1.5 - 1.4 * line, 0.02, 0.0, esc(s, b, sizeof b));
}

static void
line_xy(size_t n, const double *x, const double *y)
{
  size_t i = 0;
  /* Draw runs of finite points; NaN breaks the line. */
  while (i < n) {
    size_t j;
    while (i < n && !(isfinite(x[i]) && isfinite(y[i])))
      i++;
    j = i;
    while (j < n && isfinite(x[j]) && isfinite(y[j]))
      j++;
    if (j - i >= 2)
      plline((PLINT)(j - i), x + i, y + i);
    i = j;
  }
}

/* Bars of a histogram: counts[b] over [x0 + b w, x0 + (b + 1) w), scaled
 * by scale, filled with fill and outlined with edge. */
static void
bars(const double *counts, size_t nb, double x0, double w, double scale,
     const double *base, int fill, int edge)
{
  size_t b;
  for (b = 0; b < nb; b++) {
    PLFLT px[4], py[4];
    double y0 = base ? base[b] * scale : 0.0;
    if (counts[b] <= 0.0)
      continue;
    px[0] = px[1] = x0 + (double)b * w;
    px[2] = px[3] = x0 + (double)(b + 1) * w;
    py[0] = py[3] = y0;
    py[1] = py[2] = y0 + counts[b] * scale;
    plcol0(fill);
    plfill(4, px, py);
    plcol0(edge);
    plwidth(0.8);
    plline(4, px, py);
  }
}

/* Bin x (finite values) with width w from x0: nb bins, counts malloc'ed. */
static double *
bin_counts(const double *x, size_t n, double x0, double w, size_t nb)
{
  double *c = calloc(nb ? nb : 1, sizeof *c);
  size_t i;
  if (c == NULL)
    return NULL;
  for (i = 0; i < n; i++) {
    double f;
    if (!isfinite(x[i]))
      continue;
    f = floor((x[i] - x0) / w);
    if (f < 0)
      f = 0;
    if (f >= (double)nb)
      f = (double)nb - 1;
    c[(size_t)f] += 1.0;
  }
  return c;
}

/* Histogram layout for x: origin, width and number of bins. */
static int
hist_layout(const double *x, size_t n, double *x0, double *w, size_t *nb)
{
  double lo, hi, bw = quantal_plot_bin_width(x, n);
  if (!isfinite(bw))
    return -1;
  range_of(x, n, 0.0, &lo, &hi);
  *w = bw;
  *x0 = floor(lo / bw) * bw;
  *nb = (size_t)ceil((hi - *x0) / bw);
  if (*nb == 0 || *x0 + (double)*nb * bw <= hi)
    (*nb)++;
  return 0;
}

static double
max_of(const double *x, size_t n)
{
  double m = 0.0;
  size_t i;
  for (i = 0; i < n; i++)
    if (isfinite(x[i]) && x[i] > m)
      m = x[i];
  return m;
}

static size_t
count_finite(const double *x, size_t n)
{
  size_t i, k = 0;
  for (i = 0; x != NULL && i < n; i++)
    k += isfinite(x[i]) != 0;
  return k;
}

/* A histogram panel of x (counts); returns 0 or -1 (no data / memory). */
static int
hist_panel(const double *x, size_t n, double vx0, double vx1, double vy0,
           double vy1, const char *xlab, const char *title, int fill)
{
  double x0, w, *c, ymax;
  size_t nb;
  if (hist_layout(x, n, &x0, &w, &nb) != 0)
    return -1;
  c = bin_counts(x, n, x0, w, nb);
  if (c == NULL)
    return -1;
  ymax = max_of(c, nb);
  panel(vx0, vx1, vy0, vy1, x0, x0 + (double)nb * w, 0.0, ymax * 1.1 + 0.5,
        xlab, "count", title);
  bars(c, nb, x0, w, 1.0, NULL, fill, C_BLACK);
  free(c);
  return 0;
}

/* ---- one figure --------------------------------------------------------- */

typedef int (*draw_fn)(const void *ctx);

static const char *
device_name(quantal_plot_format f)
{
  switch (f) {
  case QUANTAL_PLOT_PNG: return "pngcairo";
  case QUANTAL_PLOT_SVG: return "svg";
  case QUANTAL_PLOT_PDF: return "pdfcairo";
  default: return NULL;
  }
}

static int
device_available(const char *name)
{
  static PLCHAR_VECTOR menus[128], names[128];
  PLCHAR_VECTOR *pm = menus, *pn = names;
  int n = 128, i;
  plgDevs(&pm, &pn, &n);
  for (i = 0; i < n; i++)
    if (pn[i] != NULL && strcmp(pn[i], name) == 0)
      return 1;
  return 0;
}

/* Check that path holds a whole file of the format. */
static quantal_status
check_output(const char *path, quantal_plot_format f, quantal_diag *diag)
{
  unsigned char head[512], tail[64];
  size_t n, nt = 0;
  long size;
  FILE *fp = fopen(path, "rb");
  if (fp == NULL)
    return qtl_fail(diag, QUANTAL_EIO, path, -1, -1,
                    "PLplot did not write the figure: %s", strerror(errno));
  n = fread(head, 1, sizeof head - 1, fp);
  head[n] = '\0';
  if (fseek(fp, 0, SEEK_END) == 0 && (size = ftell(fp)) > 0) {
    long off = size > (long)sizeof tail ? size - (long)sizeof tail : 0;
    if (fseek(fp, off, SEEK_SET) == 0)
      nt = fread(tail, 1, sizeof tail, fp);
  }
  fclose(fp);
  switch (f) {
  case QUANTAL_PLOT_PNG:
    if (n >= 24 && memcmp(head, "\x89PNG\r\n\x1a\n", 8) == 0 &&
        memcmp(head + 12, "IHDR", 4) == 0)
      return QUANTAL_OK;
    break;
  case QUANTAL_PLOT_SVG:
    if (strstr((const char *)head, "<svg") != NULL && nt > 0 &&
        memmem(tail, nt, "</svg>", 6) != NULL)
      return QUANTAL_OK;
    break;
  case QUANTAL_PLOT_PDF:
    if (n >= 5 && memcmp(head, "%PDF-", 5) == 0 && nt > 0 &&
        memmem(tail, nt, "%%EOF", 5) != NULL)
      return QUANTAL_OK;
    break;
  default: break;
  }
  return qtl_fail(diag, QUANTAL_EFAILED, path, -1, -1,
                  "PLplot wrote an incomplete figure");
}

/* The figure title, across the top of the page. */
static void
page_title(const char *title)
{
  char b[512];
  if (title == NULL || *title == '\0')
    return;
  plvpor(0.0, 1.0, 0.955, 0.995);
  plwind(0.0, 1.0, 0.0, 1.0);
  plcol0(C_BLACK);
  chr(1.25);
  plptex(0.5, 0.3, 1.0, 0.0, 0.5, esc(title, b, sizeof b));
  chr(1.0);
}

/* What one figure needs, kept in static storage so that nothing live
 * across setjmp() can be clobbered by the longjmp() from on_plexit(). */
static struct {
  const char *dev, *path, *title;
  double w, h;
  draw_fn draw;
  const void *ctx;
  PLINT prev;
  int started, drawn;
} fig;

/* Draw the page; 0 when PLplot finished, 1 when plexit() jumped out. */
static int
draw_page(void)
{
  PLINT strm = -1;
  fig.started = 0;
  fig.drawn = 0;
  plgstrm(&fig.prev);
  if (setjmp(plot_jmp) != 0) {
    /* plexit() jumped here: the stream is unusable; try to end it, and
     * give up quietly if that fails too. */
    if (fig.started && setjmp(plot_jmp) == 0)
      plend1();
    plsstrm(fig.prev);
    return 1;
  }
  plmkstrm(&strm);
  if (strm < 0) {
    qtl_strlcpy(plot_err, "no free plot stream", sizeof plot_err);
    return 1;
  }
  plsstrm(strm);
  plsdev(fig.dev);
  plsfnam(fig.path);
  plspause(0);
  plspage(0.0, 0.0, (PLINT)fig.w, (PLINT)fig.h, 0, 0);
  plscmap0(pal_r, pal_g, pal_b, N_COLOURS);
  plscolbg(255, 255, 255);
  plsfci(0); /* sans-serif, upright, medium */
  fig.started = 1;
  plinit();
  pladv(0);
  chr(1.0);
  page_title(fig.title);
  fig.drawn = fig.draw(fig.ctx);
  plend1();
  fig.started = 0;
  plsstrm(fig.prev);
  return 0;
}

static quantal_status
run_figure(const char *path, const quantal_plot_options *opt,
           double def_w, double def_h, draw_fn draw, const void *ctx,
           quantal_diag *diag)
{
  quantal_plot_options o = opt ? *opt : quantal_plot_options_default();
  const char *dev;
  quantal_status st;
  double w, h;

  if (path == NULL || *path == '\0')
    return qtl_fail(diag, QUANTAL_EINVAL, NULL, -1, -1, "no figure name");
  if (o.format == QUANTAL_PLOT_AUTO) {
    st = quantal_plot_format_from_path(path, &o.format, diag);
    if (st != QUANTAL_OK)
      return st;
  }
  dev = device_name(o.format);
  if (dev == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1,
                    "unknown figure format %d", (int)o.format);
  w = o.width_px > 0 ? o.width_px : def_w;
  h = o.height_px > 0 ? o.height_px : def_h;
  if (!(w >= 200 && w <= 20000 && h >= 150 && h <= 20000))
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1,
                    "figure size %gx%g px outside 200x150 to 20000x20000",
                    w, h);
  st = qtl_dl_load(&pllib, path, diag);
  if (st != QUANTAL_OK)
    return st;
  /* An unknown device would make plinit() ask on the terminal. */
  if (!device_available(dev))
    return qtl_fail(diag, QUANTAL_EUNSUPPORTED, path, -1, -1,
                    "PLplot has no '%s' device (install its cairo driver, "
                    "Debian package plplot-driver-cairo)",
                    dev);
  {
    /* PLplot asks again and again on stderr when it cannot open the file:
     * make sure it can. */
    FILE *fp = fopen(path, "wb");
    if (fp == NULL)
      return qtl_fail(diag, QUANTAL_EIO, path, -1, -1,
                      "cannot create the figure: %s", strerror(errno));
    fclose(fp);
  }
  plot_err[0] = '\0';
  plsexit(on_plexit);
  plsabort(on_plabort);
  fig.dev = dev;
  fig.path = path;
  fig.title = o.title;
  fig.w = w;
  fig.h = h;
  fig.draw = draw;
  fig.ctx = ctx;
  if (draw_page() != 0 || plot_err[0] != '\0') {
    remove(path);
    return qtl_fail(diag, QUANTAL_EFAILED, path, -1, -1, "PLplot: %s",
                    plot_err[0] ? plot_err : "failed");
  }
  if (fig.drawn != 0) {
    remove(path);
    return qtl_fail(diag, fig.drawn == -2 ? QUANTAL_ENOMEM : QUANTAL_ENODATA,
                    path, -1, -1,
                    fig.drawn == -2 ? "out of memory" : "nothing to draw");
  }
  st = check_output(path, o.format, diag);
  if (st != QUANTAL_OK)
    remove(path);
  return st;
}

/* ---- detect ------------------------------------------------------------- */

/* Least-squares amplitude and time shift of the unit-peak bi-exponential
 * f(t) = (1 - exp(-t / rise)) exp(-t / decay) (Clements & Bekkers 1997,
 * eq. 1) to the average event; shifts within +-2 ms are tried sample by
 * sample because the table's onset (threshold crossing) and the
 * template's t = 0 differ by a fraction of the rise. */
static void
fit_template(const quantal_plot_detect_data *d, double *amp, double *shift)
{
  double best = INFINITY, step = 1.0 / d->rate_hz, s;
  size_t i;
  *amp = NAN;
  *shift = 0.0;
  for (s = -0.002; s <= 0.002 + 0.5 * step; s += step) {
    double sfy = 0, sff = 0, syy = 0, a, sse;
    for (i = 0; i < d->n_avg; i++) {
      double t = d->avg_t0_s + (double)i / d->rate_hz - s;
      double f = t > 0 ? quantal_template_biexp_value(t, d->rise_s,
                                                      d->decay_s)
                       : 0.0;
      if (!isfinite(d->avg[i]))
        continue;
      sfy += f * d->avg[i];
      sff += f * f;
      syy += d->avg[i] * d->avg[i];
    }
    if (!(sff > 0))
      continue;
    a = sfy / sff;
    sse = syy - a * sfy;
    if (sse < best) {
      best = sse;
      *amp = a;
      *shift = s;
    }
  }
}

static void
draw_envelope(const quantal_plot_detect_data *d, PLFLT *px, PLFLT *py)
{
  size_t c, k = 0;
  plcol0(C_DARK);
  plwidth(0.8);
  for (c = 0; c < d->n_cols; c++) {
    double t = d->env_t0_s + ((double)c + 0.5) * d->env_dt_s;
    if (!(d->env_lo[c] <= d->env_hi[c])) {
      if (k >= 2)
        plline((PLINT)k, px, py);
      k = 0;
      continue;
    }
    /* A zig-zag through each column's minimum and maximum draws the
     * envelope that every sample of the column lies in. */
    px[k] = t;
    py[k++] = (c & 1) ? d->env_hi[c] : d->env_lo[c];
    px[k] = t;
    py[k++] = (c & 1) ? d->env_lo[c] : d->env_hi[c];
  }
  if (k >= 2)
    plline((PLINT)k, px, py);
}

static int
draw_detect(const void *ctx)
{
  const quantal_plot_detect_data *d = ctx;
  char xl[128], yl[128], tl[256];
  const char *u = d->unit ? d->unit : "au";
  double y0, y1, x0, x1;
  size_t i;
  int have_env = d->env_lo && d->env_hi && d->n_cols > 0 &&
                 d->env_dt_s > 0;
  int have_strip = d->strip && d->n_strip > 1 && d->rate_hz > 0;
  int have_avg = d->avg && d->n_avg > 1 && d->rate_hz > 0;
  int have_amp = count_finite(d->amplitude, d->n_events) >= 2;
  int have_iei = count_finite(d->onset_s, d->n_events) >= 3;
  int n_bottom = have_avg + have_amp + have_iei, k;
  double top = 0.90;
  PLFLT *px = NULL, *py = NULL;

  if (!have_env && !have_strip && n_bottom == 0)
    return -1;
  snprintf(yl, sizeof yl, "signal (%s)", u);
  if (have_env) {
    px = malloc(2 * d->n_cols * sizeof *px);
    py = malloc(2 * d->n_cols * sizeof *py);
    if (px == NULL || py == NULL) {
      free(px);
      free(py);
      return -2;
    }
    y0 = INFINITY;
    y1 = -INFINITY;
    widen(d->env_lo, d->n_cols, &y0, &y1);
    widen(d->env_hi, d->n_cols, &y0, &y1);
    if (!(y0 < y1)) {
      y0 -= 1.0;
      y1 += 1.0;
    }
    x0 = d->env_t0_s;
    x1 = d->env_t0_s + (double)d->n_cols * d->env_dt_s;
    /* Room above the trace for the rug of event times. */
    y1 += 0.12 * (y1 - y0);
    snprintf(tl, sizeof tl, "whole recording: %zu events, %zu columns of "
             "min/max", d->n_events, d->n_cols);
    panel(0.08, 0.98, have_strip ? 0.70 : 0.40, top, x0, x1, y0, y1,
          "time (s)", yl, tl);
    if (have_strip) {
      PLFLT fx[4], fy[4];
      fx[0] = fx[1] = d->strip_t0_s;
      fx[2] = fx[3] = d->strip_t0_s + (double)d->n_strip / d->rate_hz;
      fy[0] = fy[3] = y0;
      fy[1] = fy[2] = y1;
      plcol0(C_PALE);
      plfill(4, fx, fy);
    }
    draw_envelope(d, px, py);
    plcol0(C_VERMILLION);
    plwidth(1.0);
    for (i = 0; d->onset_s && i < d->n_events; i++)
      if (isfinite(d->onset_s[i]))
        pljoin(d->onset_s[i], y1 - 0.07 * (y1 - y0), d->onset_s[i],
               y1 - 0.01 * (y1 - y0));
    plcol0(C_BLACK);
    plbox("bc", 0.0, 0, "bc", 0.0, 0);
    top = have_strip ? 0.60 : 0.32;
  }
  if (have_strip) {
    double t_end = d->strip_t0_s + (double)(d->n_strip - 1) / d->rate_hz;
    PLFLT *sx = malloc(d->n_strip * sizeof *sx);
    size_t n_in = 0;
    if (sx == NULL) {
      free(px);
      free(py);
      return -2;
    }
    for (i = 0; i < d->n_strip; i++)
      sx[i] = d->strip_t0_s + (double)i / d->rate_hz;
    range_of(d->strip, d->n_strip, 0.08, &y0, &y1);
    for (i = 0; d->onset_s && i < d->n_events; i++)
      n_in += d->onset_s[i] >= d->strip_t0_s && d->onset_s[i] <= t_end;
    snprintf(tl, sizeof tl, "zoom: %.3g s from %.4g s, %zu events "
             "(onset | and peak o)", t_end - d->strip_t0_s, d->strip_t0_s,
             n_in);
    panel(0.08, 0.98, have_env ? 0.41 : 0.40, top, d->strip_t0_s, t_end, y0,
          y1, "time (s)", yl, tl);
    plcol0(C_DARK);
    plwidth(0.8);
    line_xy(d->n_strip, sx, d->strip);
    free(sx);
    for (i = 0; d->onset_s && i < d->n_events; i++) {
      if (!(d->onset_s[i] >= d->strip_t0_s && d->onset_s[i] <= t_end))
        continue;
      plcol0(C_GREEN);
      plwidth(1.5);
      pljoin(d->onset_s[i], y0, d->onset_s[i], y0 + 0.1 * (y1 - y0));
      if (d->peak_s && d->peak_level && isfinite(d->peak_s[i]) &&
          isfinite(d->peak_level[i])) {
        PLFLT ppx = d->peak_s[i], ppy = d->peak_level[i];
        plcol0(C_VERMILLION);
        plssym(0.0, 1.4);
        plpoin(1, &ppx, &ppy, 4);
      }
    }
    plwidth(1.0);
    top = 0.32;
  }
  free(px);
  free(py);
  if (n_bottom == 0)
    return 0;
  {
    double gap = 0.07, wpan = (0.98 - 0.08 - (n_bottom - 1) * gap) /
                              n_bottom;
    double bx0 = 0.08;
    double ybot = 0.07, ytop = top;
    if (!have_env && !have_strip)
      ytop = 0.9;
    k = 0;
    if (have_avg) {
      PLFLT *ax = malloc(d->n_avg * sizeof *ax);
      double amp = NAN, shift = 0;
      if (ax == NULL)
        return -2;
      for (i = 0; i < d->n_avg; i++)
        ax[i] = 1e3 * (d->avg_t0_s + (double)i / d->rate_hz);
      range_of(d->avg, d->n_avg, 0.08, &y0, &y1);
      snprintf(yl, sizeof yl, "average (%s)", u);
      snprintf(tl, sizeof tl, "average of %zu events", d->n_averaged);
      panel(bx0, bx0 + wpan, ybot, ytop, ax[0], ax[d->n_avg - 1], y0, y1,
            "time from onset (ms)", yl, tl);
      plcol0(C_LIGHT);
      pljoin(ax[0], 0.0, ax[d->n_avg - 1], 0.0);
      plcol0(C_BLUE);
      plwidth(2.0);
      line_xy(d->n_avg, ax, d->avg);
      if (isfinite(d->rise_s) && isfinite(d->decay_s) && d->rise_s > 0 &&
          d->decay_s > d->rise_s)
        fit_template(d, &amp, &shift);
      if (isfinite(amp)) {
        PLFLT *fy = malloc(d->n_avg * sizeof *fy);
        if (fy == NULL) {
          free(ax);
          return -2;
        }
        for (i = 0; i < d->n_avg; i++) {
          double t = d->avg_t0_s + (double)i / d->rate_hz - shift;
          fy[i] = t > 0 ? amp * quantal_template_biexp_value(t, d->rise_s,
                                                             d->decay_s)
                        : 0.0;
        }
        plcol0(C_VERMILLION);
        plwidth(1.5);
        pllsty(2);
        line_xy(d->n_avg, ax, fy);
        pllsty(1);
        free(fy);
        snprintf(tl, sizeof tl, "template: rise %.3g ms, decay %.3g ms",
                 1e3 * d->rise_s, 1e3 * d->decay_s);
        chr(0.85);
        corner_text(tl, 0);
        chr(1.0);
      }
      plwidth(1.0);
      free(ax);
      k++;
    }
    if (have_amp) {
      double *a = malloc(d->n_events * sizeof *a);
      if (a == NULL)
        return -2;
      memcpy(a, d->amplitude, d->n_events * sizeof *a);
      snprintf(xl, sizeof xl, "amplitude (%s)", u);
      bx0 = 0.08 + k * (wpan + gap);
      if (hist_panel(a, d->n_events, bx0, bx0 + wpan, ybot, ytop, xl,
                     "amplitudes", C_SKY) != 0) {
        free(a);
        return -2;
      }
      free(a);
      k++;
    }
    if (have_iei) {
      size_t m = 0;
      double *s = sorted_finite(d->onset_s, d->n_events, &m), *iei;
      if (s == NULL)
        return -2;
      iei = malloc(m * sizeof *iei);
      if (iei == NULL) {
        free(s);
        return -2;
      }
      for (i = 1; i < m; i++)
        iei[i - 1] = s[i] - s[i - 1];
      bx0 = 0.08 + k * (wpan + gap);
      if (m >= 3 &&
          hist_panel(iei, m - 1, bx0, bx0 + wpan, ybot, ytop,
                     "inter-event interval (s)", "intervals", C_SKY) == 0) {
        /* The exponential a Poisson process of the same rate would give,
         * N w lambda exp(-lambda t) per bin (Fatt & Katz 1952). */
        double span = s[m - 1] - s[0], lambda = (double)(m - 1) / span;
        double hx0, w;
        size_t nb, j;
        PLFLT ex[101], ey[101];
        if (span > 0 && hist_layout(iei, m - 1, &hx0, &w, &nb) == 0) {
          for (j = 0; j <= 100; j++) {
            ex[j] = hx0 + (double)nb * w * (double)j / 100.0;
            ey[j] = (double)(m - 1) * w * lambda * exp(-lambda * ex[j]);
          }
          plcol0(C_VERMILLION);
          plwidth(1.5);
          plline(101, ex, ey);
          plwidth(1.0);
          chr(0.85);
          snprintf(tl, sizeof tl, "Poisson, %.3g Hz", lambda);
          plcol0(C_VERMILLION);
          plmtex("t", -1.5, 0.97, 1.0, tl);
          chr(1.0);
        }
      }
      free(iei);
      free(s);
    }
  }
  return 0;
}

quantal_status
quantal_plot_detect(const quantal_plot_detect_data *d, const char *path,
                    const quantal_plot_options *opt, quantal_diag *diag)
{
  if (d == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1, "no data");
  return run_figure(path, opt, 1200, 1000, draw_detect, d, diag);
}

/* ---- evoked ------------------------------------------------------------- */

static int
draw_evoked(const void *ctx)
{
  const quantal_plot_evoked_data *d = ctx;
  const char *u = d->unit ? d->unit : "au";
  char yl[128], tl[256];
  size_t i, j, n_fail = 0, n_ok_traces = 0;
  double y0, y1, top = 0.90;
  int have_resp = d->traces && d->n_traces > 0 && d->n_samples > 1 &&
                  d->rate_hz > 0;
  int have_amp = count_finite(d->amplitude, d->n_resp) >= 1;
  PLFLT *t = NULL, *mean = NULL, *sx = NULL;

  if (!have_resp && !have_amp)
    return -1;
  for (i = 0; i < d->n_resp; i++)
    n_fail += d->failure && d->failure[i];
  if (have_resp) {
    size_t stride = 1;
    const int *tf = d->trace_failure;
    t = malloc(d->n_samples * sizeof *t);
    mean = calloc(d->n_samples, sizeof *mean);
    if (t == NULL || mean == NULL) {
      free(t);
      free(mean);
      return -2;
    }
    for (j = 0; j < d->n_samples; j++)
      t[j] = 1e3 * (d->t0_s + (double)j / d->rate_hz);
    range_of(d->traces, d->n_traces * d->n_samples, 0.05, &y0, &y1);
    /* At most 400 traces are drawn (every stride-th); the mean uses all
     * the successes given. */
    if (d->n_traces > 400)
      stride = (d->n_traces + 399) / 400;
    snprintf(yl, sizeof yl, "response (%s)", u);
    snprintf(tl, sizeof tl, "%zu responses aligned on the stimulus, %zu "
             "failures%s", d->n_resp ? d->n_resp : d->n_traces, n_fail,
             stride > 1 || d->n_traces < d->n_resp ? " (a subset drawn)"
                                                   : "");
    panel(0.08, 0.98, 0.55, top, t[0], t[d->n_samples - 1], y0, y1,
          "time from stimulus (ms)", yl, tl);
    plcol0(C_LIGHT);
    pljoin(0.0, y0, 0.0, y1);
    plwidth(0.6);
    /* Successes first, failures on top so that they stay visible. */
    for (i = 0; i < d->n_traces; i += stride) {
      if (tf && tf[i])
        continue;
      plcol0(C_SKY);
      line_xy(d->n_samples, t, d->traces + i * d->n_samples);
    }
    for (i = 0; i < d->n_traces; i += stride) {
      if (!(tf && tf[i]))
        continue;
      plcol0(C_VERMILLION);
      line_xy(d->n_samples, t, d->traces + i * d->n_samples);
    }
    for (i = 0; i < d->n_traces; i++)
      n_ok_traces += !(tf && tf[i]);
    if (n_ok_traces > 0) {
      for (j = 0; j < d->n_samples; j++) {
        double s = 0;
        size_t m = 0;
        for (i = 0; i < d->n_traces; i++) {
          double v = d->traces[i * d->n_samples + j];
          if ((tf && tf[i]) || !isfinite(v))
            continue;
          s += v;
          m++;
        }
        mean[j] = m ? s / (double)m : NAN;
      }
      plcol0(C_BLUE);
      plwidth(2.5);
      line_xy(d->n_samples, t, mean);
    }
    plwidth(1.0);
    chr(0.85);
    plcol0(C_BLUE);
    plmtex("t", -1.5, 0.98, 1.0, "successes, mean (thick)");
    plcol0(C_VERMILLION);
    plmtex("t", -2.9, 0.98, 1.0, "failures");
    chr(1.0);
    top = 0.45;
    free(t);
    free(mean);
  }
  if (have_amp) {
    PLFLT *ay = malloc(d->n_resp * sizeof *ay);
    double x0, x1, *run;
    size_t win = d->n_resp >= 20 ? 10 : 1;
    sx = malloc(d->n_resp * sizeof *sx);
    run = malloc(d->n_resp * sizeof *run);
    if (sx == NULL || ay == NULL || run == NULL) {
      free(sx);
      free(ay);
      free(run);
      return -2;
    }
    for (i = 0; i < d->n_resp; i++) {
      sx[i] = d->stimulus ? d->stimulus[i] : (double)(i + 1);
      ay[i] = d->amplitude[i];
    }
    range_of(sx, d->n_resp, 0.02, &x0, &x1);
    range_of(ay, d->n_resp, 0.08, &y0, &y1);
    if (y0 > 0)
      y0 = 0;
    if (y1 < 0)
      y1 = 0;
    snprintf(yl, sizeof yl, "amplitude (%s)", u);
    panel(0.08, 0.49, 0.07, top, x0, x1, y0, y1, "stimulus number", yl,
          "amplitude against time (run-down)");
    plcol0(C_LIGHT);
    pljoin(x0, 0.0, x1, 0.0);
    plssym(0.0, 0.9);
    for (i = 0; i < d->n_resp; i++) {
      PLFLT px = sx[i], py = ay[i];
      if (!isfinite(py) || !isfinite(px))
        continue;
      plcol0(d->failure && d->failure[i] ? C_VERMILLION : C_BLUE);
      plpoin(1, &px, &py, 17);
    }
    /* Running mean over win stimuli (centred), to show slow trends. */
    if (win > 1) {
      for (i = 0; i < d->n_resp; i++) {
        size_t a = i >= win / 2 ? i - win / 2 : 0, b = a + win, m = 0;
        double s = 0;
        if (b > d->n_resp)
          b = d->n_resp;
        for (j = a; j < b; j++)
          if (isfinite(ay[j])) {
            s += ay[j];
            m++;
          }
        run[i] = m ? s / (double)m : NAN;
      }
      plcol0(C_BLACK);
      plwidth(2.0);
      line_xy(d->n_resp, sx, run);
      plwidth(1.0);
      chr(0.85);
      snprintf(tl, sizeof tl, "running mean of %zu", win);
      plmtex("t", -1.5, 0.98, 1.0, tl);
      chr(1.0);
    }
    /* Histogram, failures stacked on successes. */
    {
      double hx0, w, *cs, *cf, ymax = 0;
      double *ok = malloc(d->n_resp * sizeof *ok);
      double *fl = malloc(d->n_resp * sizeof *fl);
      size_t nb;
      char xl[128];
      if (ok == NULL || fl == NULL || hist_layout(ay, d->n_resp, &hx0, &w,
                                                  &nb) != 0) {
        free(ok);
        free(fl);
        free(sx);
        free(ay);
        free(run);
        return ok == NULL || fl == NULL ? -2 : 0;
      }
      for (i = 0; i < d->n_resp; i++) {
        int f = d->failure && d->failure[i];
        ok[i] = f ? NAN : ay[i];
        fl[i] = f ? ay[i] : NAN;
      }
      cs = bin_counts(ok, d->n_resp, hx0, w, nb);
      cf = bin_counts(fl, d->n_resp, hx0, w, nb);
      if (cs == NULL || cf == NULL) {
        free(cs);
        free(cf);
        free(ok);
        free(fl);
        free(sx);
        free(ay);
        free(run);
        return -2;
      }
      for (j = 0; j < nb; j++)
        if (cs[j] + cf[j] > ymax)
          ymax = cs[j] + cf[j];
      snprintf(xl, sizeof xl, "amplitude (%s)", u);
      panel(0.58, 0.98, 0.07, top, hx0, hx0 + (double)nb * w, 0.0,
            ymax * 1.1 + 0.5, xl, "count", "amplitude histogram");
      bars(cs, nb, hx0, w, 1.0, NULL, C_SKY, C_BLACK);
      bars(cf, nb, hx0, w, 1.0, cs, C_VERMILLION, C_BLACK);
      free(cs);
      free(cf);
      free(ok);
      free(fl);
    }
    free(sx);
    free(ay);
    free(run);
  }
  return 0;
}

quantal_status
quantal_plot_evoked(const quantal_plot_evoked_data *d, const char *path,
                    const quantal_plot_options *opt, quantal_diag *diag)
{
  if (d == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1, "no data");
  return run_figure(path, opt, 1200, 1000, draw_evoked, d, diag);
}

/* ---- fit ---------------------------------------------------------------- */

/* Histogram of x as a density (counts / (N w)) in the given viewport,
 * with the x range widened to the grid. */
static int
density_hist(const double *x, size_t n, const double *grid, size_t ng,
             const double *curve, double vx0, double vx1, double vy0,
             double vy1, const char *xlab, const char *ylab,
             const char *title, double *ymax_out)
{
  double x0, w, *c, ymax, gx0, gx1, scale;
  size_t nb, nf = count_finite(x, n);
  if (hist_layout(x, n, &x0, &w, &nb) != 0)
    return -1;
  c = bin_counts(x, n, x0, w, nb);
  if (c == NULL)
    return -2;
  scale = 1.0 / ((double)nf * w);
  ymax = max_of(c, nb) * scale;
  /* The curve sets the scale unless it spikes far above the data (a
   * component of near-zero width), which is then clipped. */
  if (curve != NULL && max_of(curve, ng) > ymax)
    ymax = fmin(max_of(curve, ng), 2.0 * ymax);
  gx0 = x0;
  gx1 = x0 + (double)nb * w;
  widen(grid, ng, &gx0, &gx1);
  panel(vx0, vx1, vy0, vy1, gx0, gx1, 0.0, ymax * 1.12, xlab, ylab, title);
  bars(c, nb, x0, w, scale, NULL, C_PALE, C_GREY);
  free(c);
  *ymax_out = ymax;
  return 0;
}

static int
draw_fit(const void *ctx)
{
  const quantal_plot_fit_data *d = ctx;
  const char *u = d->unit ? d->unit : "au";
  char xl[128], yl[128], tl[256];
  size_t i, j;
  int have_amp = count_finite(d->amplitudes, d->n_amplitudes) >= 2;
  int have_prof = d->profile_n && d->profile_loglik && d->n_profile >= 2;
  int have_minis = count_finite(d->minis, d->n_minis) >= 2;
  int n_bottom = have_prof + have_minis;
  double top_lo = n_bottom ? 0.55 : 0.08, ymax = 0;
  int r;

  if (!have_amp && n_bottom == 0)
    return -1;
  snprintf(xl, sizeof xl, "amplitude (%s)", u);
  snprintf(yl, sizeof yl, "density (1/%s)", u);
  if (have_amp) {
    snprintf(tl, sizeof tl, "%zu amplitudes, %s fit: mixture (black) and "
             "components k = 0, 1, 2, ...", d->n_amplitudes,
             d->model ? d->model : "");
    r = density_hist(d->amplitudes, d->n_amplitudes, d->grid, d->n_grid,
                     d->density, 0.08, 0.98, top_lo, 0.90, xl, yl, tl,
                     &ymax);
    if (r != 0)
      return r;
    if (d->grid && d->n_grid >= 2) {
      for (j = 0; d->components && j < d->n_components; j++) {
        const double *cy = d->components + j * d->n_grid;
        unsigned k = d->component_k ? d->component_k[j] : (unsigned)j;
        size_t imax = 0;
        char lab[32];
        plcol0(comp_colour[k % (sizeof comp_colour /
                                sizeof comp_colour[0])]);
        plwidth(1.5);
        line_xy(d->n_grid, d->grid, cy);
        for (i = 1; i < d->n_grid; i++)
          if (cy[i] > cy[imax])
            imax = i;
        /* Label the components that stand out of the baseline. */
        if (cy[imax] > 0.04 * ymax) {
          snprintf(lab, sizeof lab, "%u", k);
          chr(0.8);
          plptex(d->grid[imax], cy[imax] + 0.03 * ymax, 1.0, 0.0, 0.5,
                 lab);
          chr(1.0);
        }
      }
      if (d->density) {
        plcol0(C_BLACK);
        plwidth(2.5);
        line_xy(d->n_grid, d->grid, d->density);
      }
      plwidth(1.0);
    }
    if (d->summary) {
      chr(0.85);
      corner_text(d->summary, 0);
      chr(1.0);
    }
  }
  if (n_bottom > 0) {
    double gap = 0.08, wpan = (0.98 - 0.08 - (n_bottom - 1) * gap) /
                              n_bottom, bx0 = 0.08;
    double ytop = have_amp ? 0.45 : 0.90;
    if (have_prof) {
      PLFLT *px = malloc(d->n_profile * sizeof *px);
      double x0, x1, y0, y1, best = -INFINITY;
      size_t ibest = 0;
      if (px == NULL)
        return -2;
      for (i = 0; i < d->n_profile; i++) {
        px[i] = d->profile_n[i];
        if (isfinite(d->profile_loglik[i]) && d->profile_loglik[i] > best) {
          best = d->profile_loglik[i];
          ibest = i;
        }
      }
      range_of(px, d->n_profile, 0.02, &x0, &x1);
      /* Show the 12 log-likelihood units below the maximum, where the
       * interval and the shape of the profile are. */
      y1 = best + 0.5;
      y0 = best - 12.0;
      panel(bx0, bx0 + wpan, 0.07, ytop, x0, x1, y0, y1,
            "release sites n", "profile log-likelihood",
            "profile likelihood of n");
      /* Wilks (1938): the 95 % interval holds the n whose profile is
       * within chi2(1, 0.95) / 2 = 1.92 of the maximum. */
      plcol0(C_VERMILLION);
      pllsty(2);
      pljoin(x0, best - 1.92, x1, best - 1.92);
      pllsty(1);
      plcol0(C_BLUE);
      plwidth(2.0);
      {
        PLFLT *py = malloc(d->n_profile * sizeof *py);
        if (py == NULL) {
          free(px);
          return -2;
        }
        for (i = 0; i < d->n_profile; i++)
          py[i] = d->profile_loglik[i] < y0 ? y0 : d->profile_loglik[i];
        line_xy(d->n_profile, px, py);
        free(py);
      }
      plwidth(1.0);
      if (isfinite(best)) {
        PLFLT bxp = px[ibest], byp = best;
        plcol0(C_BLACK);
        plssym(0.0, 1.2);
        plpoin(1, &bxp, &byp, 17);
        snprintf(tl, sizeof tl, "max at n = %u; dashed: 95 %% cut",
                 d->profile_n[ibest]);
        chr(0.85);
        plmtex("b", -1.5, 0.97, 1.0, tl);
        chr(1.0);
      }
      free(px);
      bx0 += wpan + gap;
    }
    if (have_minis) {
      double ym;
      snprintf(tl, sizeof tl, "%zu minis and the fitted quantal size",
               d->n_minis);
      r = density_hist(d->minis, d->n_minis, d->minis_grid,
                       d->n_minis_grid, d->minis_density, bx0, bx0 + wpan,
                       0.07, ytop, xl, yl, tl, &ym);
      if (r != 0)
        return r;
      if (d->minis_grid && d->minis_density && d->n_minis_grid >= 2) {
        plcol0(C_BLACK);
        plwidth(2.5);
        line_xy(d->n_minis_grid, d->minis_grid, d->minis_density);
        plwidth(1.0);
      }
    }
  }
  return 0;
}

quantal_status
quantal_plot_fit(const quantal_plot_fit_data *d, const char *path,
                 const quantal_plot_options *opt, quantal_diag *diag)
{
  if (d == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1, "no data");
  return run_figure(path, opt, 1200, 1000, draw_fit, d, diag);
}

/* ---- compare: detection scoring ----------------------------------------- */

static int
draw_score(const void *ctx)
{
  const quantal_plot_score_data *d = ctx;
  const char *u = d->unit ? d->unit : "au";
  char xl[128], yl[128], tl[256];
  double x0, x1, t1 = 0;
  size_t i, n_pairs = 0;
  unsigned char *hit = NULL;
  double *ea = NULL, *ta = NULL, *err = NULL;

  if (d->n_det + d->n_true == 0)
    return -1;
  hit = calloc(d->n_true + 1, 1);
  ea = malloc((d->n_det + 1) * sizeof *ea);
  ta = malloc((d->n_det + 1) * sizeof *ta);
  err = malloc((d->n_det + 1) * sizeof *err);
  if (hit == NULL || ea == NULL || ta == NULL || err == NULL) {
    free(hit);
    free(ea);
    free(ta);
    free(err);
    return -2;
  }
  for (i = 0; i < d->n_det; i++) {
    size_t m = d->match ? d->match[i] : (size_t)-1;
    if (m == (size_t)-1 || m >= d->n_true)
      continue;
    hit[m] = 1;
    err[n_pairs] = 1e3 * (d->det_s[i] - d->true_s[m]);
    ea[n_pairs] = d->det_amp ? d->det_amp[i] : NAN;
    ta[n_pairs] = d->true_amp ? d->true_amp[m] : NAN;
    n_pairs++;
  }
  x0 = INFINITY;
  x1 = -INFINITY;
  widen(d->det_s, d->n_det, &x0, &x1);
  widen(d->true_s, d->n_true, &x0, &x1);
  if (!(x0 < x1)) {
    x0 -= 1;
    x1 += 1;
  }
  t1 = x1 + 0.01 * (x1 - x0);
  x0 -= 0.01 * (x1 - x0);
  if (d->result)
    snprintf(tl, sizeof tl, "precision %.3f, recall %.3f, F1 %.3f: %zu "
             "matched, %zu missed, %zu false",
             d->result->precision, d->result->recall, d->result->f1,
             d->result->true_positives, d->result->false_negatives,
             d->result->false_positives);
  else
    snprintf(tl, sizeof tl, "%zu detected, %zu true", d->n_det,
             d->n_true);
  plvpor(0.12, 0.98, 0.70, 0.88);
  plwind(x0, t1, 0.0, 2.0);
  plcol0(C_BLACK);
  plbox("bcnst", 0.0, 0, "bc", 0.0, 0);
  pllab("time (s)", "", tl);
  plmtex("lv", 1.0, 0.75, 1.0, "truth");
  plmtex("lv", 1.0, 0.25, 1.0, "detected");
  plwidth(1.2);
  for (i = 0; i < d->n_true; i++) {
    plcol0(hit[i] ? C_GREEN : C_VERMILLION);
    pljoin(d->true_s[i], 1.1, d->true_s[i], 1.9);
  }
  for (i = 0; i < d->n_det; i++) {
    int ok = d->match && d->match[i] != (size_t)-1;
    plcol0(ok ? C_GREEN : C_ORANGE);
    pljoin(d->det_s[i], 0.1, d->det_s[i], 0.9);
  }
  plwidth(1.0);
  chr(0.85);
  plcol0(C_GREEN);
  plmtex("b", -1.2, 0.01, 0.0, "matched");
  plcol0(C_VERMILLION);
  plmtex("b", -1.2, 0.12, 0.0, "missed");
  plcol0(C_ORANGE);
  plmtex("b", -1.2, 0.22, 0.0, "false");
  chr(1.0);

  if (count_finite(ea, n_pairs) >= 1 && count_finite(ta, n_pairs) >= 1) {
    double a0 = INFINITY, a1 = -INFINITY;
    widen(ea, n_pairs, &a0, &a1);
    widen(ta, n_pairs, &a0, &a1);
    if (!(a0 < a1)) {
      a0 -= 1;
      a1 += 1;
    }
    a0 -= 0.05 * (a1 - a0);
    a1 += 0.05 * (a1 - a0);
    snprintf(xl, sizeof xl, "true amplitude (%s)", u);
    snprintf(yl, sizeof yl, "detected amplitude (%s)", u);
    panel(0.08, 0.48, 0.08, 0.58, a0, a1, a0, a1, xl, yl,
          "amplitudes of matched events");
    plcol0(C_GREY);
    pllsty(2);
    pljoin(a0, a0, a1, a1);
    pllsty(1);
    plcol0(C_BLUE);
    plssym(0.0, 0.9);
    for (i = 0; i < n_pairs; i++) {
      PLFLT px = ta[i], py = ea[i];
      if (isfinite(px) && isfinite(py))
        plpoin(1, &px, &py, 17);
    }
  }
  if (n_pairs >= 2)
    hist_panel(err, n_pairs, 0.57, 0.98, 0.08, 0.58,
               "onset error, detected - true (ms)", "onset errors", C_SKY);
  free(hit);
  free(ea);
  free(ta);
  free(err);
  return 0;
}

quantal_status
quantal_plot_score(const quantal_plot_score_data *d, const char *path,
                   const quantal_plot_options *opt, quantal_diag *diag)
{
  if (d == NULL)
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1, "no data");
  if ((d->n_det > 0 && d->det_s == NULL) ||
      (d->n_true > 0 && d->true_s == NULL))
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1,
                    "event times missing");
  return run_figure(path, opt, 1200, 900, draw_score, d, diag);
}

/* ---- compare: recovery across replicates -------------------------------- */

typedef struct recovery_ctx {
  const quantal_plot_recovery_param *par;
  size_t n_par;
} recovery_ctx;

typedef struct est_idx {
  double v;
  size_t i;
} est_idx;

static int
cmp_est(const void *a, const void *b)
{
  double x = ((const est_idx *)a)->v, y = ((const est_idx *)b)->v;
  return (x > y) - (x < y);
}

static int
draw_recovery(const void *ctx)
{
  const recovery_ctx *rc = ctx;
  size_t p, ncol = rc->n_par < 3 ? rc->n_par : 3;
  size_t nrow = (rc->n_par + ncol - 1) / ncol;
  double cw = 0.91 / (double)ncol, rh = 0.86 / (double)nrow;

  for (p = 0; p < rc->n_par; p++) {
    const quantal_plot_recovery_param *q = &rc->par[p];
    size_t col = p % ncol, row = p / ncol, i, m = 0, n_int = 0, n_cov = 0;
    double vx0 = 0.07 + (double)col * cw, vy1 = 0.91 - (double)row * rh;
    double y0 = INFINITY, y1 = -INFINITY;
    char tl[256];
    est_idx *e;
    if (q->n == 0 || q->value == NULL)
      continue;
    e = malloc(q->n * sizeof *e);
    if (e == NULL)
      return -2;
    for (i = 0; i < q->n; i++)
      if (isfinite(q->value[i])) {
        e[m].v = q->value[i];
        e[m].i = i;
        m++;
      }
    if (m == 0) {
      free(e);
      continue;
    }
    /* Replicates in order of their estimate: the "caterpillar" shows the
     * spread, and each interval's colour whether it holds the truth. */
    qsort(e, m, sizeof *e, cmp_est);
    widen(q->value, q->n, &y0, &y1);
    if (isfinite(q->truth))
      widen(&q->truth, 1, &y0, &y1);
    for (i = 0; i < m; i++) {
      size_t r = e[i].i;
      double lo = q->lo ? q->lo[r] : NAN, hi = q->hi ? q->hi[r] : NAN;
      if (isfinite(lo) && isfinite(hi)) {
        n_int++;
        n_cov += isfinite(q->truth) && lo <= q->truth && q->truth <= hi;
        widen(&lo, 1, &y0, &y1);
        widen(&hi, 1, &y0, &y1);
      }
    }
    if (!(y0 < y1)) {
      y0 -= 1;
      y1 += 1;
    }
    {
      double pad = 0.05 * (y1 - y0);
      y0 -= pad;
      y1 += pad;
    }
    if (n_int > 0)
      snprintf(tl, sizeof tl, "%s: coverage %.1f %% (%zu/%zu)", q->name,
               100.0 * (double)n_cov / (double)n_int, n_cov, n_int);
    else
      snprintf(tl, sizeof tl, "%s (no intervals)", q->name);
    panel(vx0 + 0.03, vx0 + cw - 0.03, vy1 - rh + 0.07, vy1, 0.0,
          (double)m + 1.0, y0, y1, "replicate (by estimate)", q->name, tl);
    for (i = 0; i < m; i++) {
      size_t r = e[i].i;
      double lo = q->lo ? q->lo[r] : NAN, hi = q->hi ? q->hi[r] : NAN;
      PLFLT px = (double)i + 1.0, py = e[i].v;
      if (isfinite(lo) && isfinite(hi)) {
        int cov = isfinite(q->truth) && lo <= q->truth && q->truth <= hi;
        plcol0(cov ? C_SKY : C_VERMILLION);
        pljoin(px, lo, px, hi);
      }
      plcol0(C_BLUE);
      plssym(0.0, 0.5);
      plpoin(1, &px, &py, 17);
    }
    if (isfinite(q->truth)) {
      plcol0(C_BLACK);
      plwidth(2.0);
      pllsty(2);
      pljoin(0.0, q->truth, (double)m + 1.0, q->truth);
      pllsty(1);
      plwidth(1.0);
    }
    free(e);
  }
  return 0;
}

quantal_status
quantal_plot_recovery(const quantal_plot_recovery_param *par, size_t n_par,
                      const char *path, const quantal_plot_options *opt,
                      quantal_diag *diag)
{
  recovery_ctx rc;
  size_t rows;
  if (par == NULL || n_par == 0)
    return qtl_fail(diag, QUANTAL_EINVAL, path, -1, -1, "no parameters");
  rc.par = par;
  rc.n_par = n_par;
  rows = (n_par + 2) / 3;
  return run_figure(path, opt, 1200, 120 + 380 * (double)rows,
                    draw_recovery, &rc, diag);
}
