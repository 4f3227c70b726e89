#!/bin/sh
# plot.sh - quantal plot: every figure kind, in every format, and errors.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
D="$top_srcdir/data"
[ -e "$D/minis.flac" ] && [ -e "$D/evoked.flac" ] || { echo "no data/"; exit 77; }

# png W H FILE: PNG signature and the IHDR width and height.
png() {
  checks=$((checks + 1))
  sig=$(od -An -tx1 -N8 "$3" | tr -d ' \n')
  wh=$(od -An -tu1 -j16 -N8 "$3" | tr -s ' ' | sed 's/^ //')
  set -- "$1" "$2" "$3" $wh
  [ "$sig" = 89504e470d0a1a0a ] || fail "$3: not a PNG"
  [ $(($4 * 16777216 + $5 * 65536 + $6 * 256 + $7)) = "$1" ] &&
    [ $(($8 * 16777216 + $9 * 65536 + ${10} * 256 + ${11})) = "$2" ] ||
    fail "$3: IHDR is not $1 x $2"
}
svg() {
  checks=$((checks + 1))
  grep -q '<svg' "$1" && tail -c 200 "$1" | grep -q '</svg>' ||
    fail "$1: not an SVG"
}
pdf() {
  checks=$((checks + 1))
  [ "$(head -c 5 "$1")" = "%PDF-" ] && tail -c 64 "$1" | grep -q '%%EOF' ||
    fail "$1: not a PDF"
}

run 0 "$QUANTAL" detect "$D/minis.flac" -o events.tsv
run 0 "$QUANTAL" evoked --stim-channel 2 "$D/evoked.flac" -o evoked.tsv \
  --minis minis.tsv

run 0 "$QUANTAL" plot detect "$D/minis.flac" events.tsv -o detect.png
expect_no_out
png 1200 1000 detect.png
run 0 "$QUANTAL" plot detect "$D/minis.flac" events.tsv -o detect.svg \
  --title 'minis #1 <&>'
svg detect.svg
run 0 "$QUANTAL" plot evoked "$D/evoked.flac" evoked.tsv -o evoked.pdf
pdf evoked.pdf
run 0 "$QUANTAL" plot evoked --width 640 --height 480 "$D/evoked.flac" \
  evoked.tsv -o evoked.png
png 640 480 evoked.png
run 0 "$QUANTAL" plot fit evoked.tsv --minis minis.tsv -o fit.svg
svg fit.svg
run 0 "$QUANTAL" plot compare events.tsv "$D/minis.truth.tsv" -o compare.png
png 1200 900 compare.png
run 0 "$QUANTAL" plot compare --format pdf minis.tsv "$D/evoked.truth.tsv" \
  --kind spontaneous -o -
head -c 5 out > head
checks=$((checks + 1))
[ "$(cat head)" = "%PDF-" ] || fail "-o - did not write a PDF to stdout"

# Errors: exit code, exact message, nothing left behind.
run 2 "$QUANTAL" plot detect "$D/minis.flac" events.tsv
expect_err "quantal: plot: no figure given (-o FIG.png|FIG.svg|FIG.pdf)
Try 'quantal plot --help' for more information."
run 2 "$QUANTAL" plot detect "$D/minis.flac" events.tsv -o fig.gif
expect_err "quantal: plot: fig.gif: figure name must end in .png, .svg or .pdf"
no_file fig.gif
run 2 "$QUANTAL" plot histogram x -o x.png
expect_err "quantal: plot: unknown figure kind 'histogram' (detect, evoked, fit, compare)
Try 'quantal plot --help' for more information."
run 2 "$QUANTAL" plot fit evoked.tsv -o x.png --model gaussian
expect_err "quantal: plot: --model: unknown model 'gaussian'
Try 'quantal plot --help' for more information."
run 2 "$QUANTAL" plot fit evoked.tsv -o x.png --width 5
expect_err "quantal: plot: --width: 5 is outside [200, 20000]
Try 'quantal plot --help' for more information."
run 2 "$QUANTAL" plot fit evoked.tsv -o -
expect_err "quantal: plot: -o -: give the figure's --format (png, svg or pdf)"
run 3 "$QUANTAL" plot detect "$D/minis.flac" missing.tsv -o x.png
expect_err "quantal: plot: missing.tsv: No such file or directory"
no_file x.png
run 2 "$QUANTAL" plot detect -c 5 "$D/minis.flac" events.tsv -o x.png
expect_err "quantal: plot: $D/minis.flac: no channel 5 (the recording has 2)"
no_file x.png
run 3 "$QUANTAL" plot detect "$D/minis.flac" events.tsv -o nodir/x.png
expect_err_match "^quantal: plot: nodir/x.png: cannot create a file"
printf 'a\tb\n1\t2\n' > odd.tsv
run 3 "$QUANTAL" plot fit odd.tsv -o x.png
expect_err "quantal: plot: odd.tsv: no amplitude_<unit> column"
no_file x.png
run 0 "$QUANTAL" plot --help
expect_out_match "^Usage: quantal plot detect"
finish
