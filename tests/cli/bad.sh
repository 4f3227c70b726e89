#!/bin/sh
# bad.sh - every subcommand on every hostile input of tests/bad/: a
# documented non-zero exit, a message naming the file, no crash, no output
# file left behind, and the input unchanged.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
q=$QUANTAL
bad="$top_srcdir/tests/bad"
have() { "$q" --help | grep -q "^  $1 "; }

# try CODES FILE CMD...: CMD (run in a clean folder) must exit with one of
# CODES (a space-separated list), name FILE's base name (or $name when set)
# on stderr in a "quantal: " line, leave no output, and not change FILE.
try() {
  codes=$1 file=$2
  shift 2
  b=${name:-$(basename "$file")}
  checks=$((checks + 1))
  before=$(cksum < "$file")
  rm -rf work && mkdir work
  (cd work && "$@") > /dev/null 2> err
  got=$?
  case " $codes " in
  *" $got "*) ;;
  *) fail "$* exited $got, expected one of: $codes"; sed 's/^/  /' err >&2 ;;
  esac
  [ "$got" -ge 128 ] && fail "$* died of a signal ($got)"
  if [ "$got" != 0 ]; then
    grep -Eq "^quantal: .*($b)" err || fail "$*: no message naming $b: $(cat err)"
    if grep -v -e '^quantal: ' -e "^Try 'quantal" err | grep -q .; then
      fail "$*: stray stderr lines: $(cat err)"
    fi
    left=$(ls -A work)
    [ -z "$left" ] || fail "$*: left behind: $left"
  fi
  [ "$(cksum < "$file")" = "$before" ] || fail "$*: changed its input"
}

# Recordings that cannot be read at all: every command says so (exit 3;
# 2 where the problem is a usage one, e.g. too many channels to select).
unreadable="empty.wav zero-frames.wav truncated-header.wav truncated-data.wav
  text-named.wav garbage.wav riff-huge-sizes.wav zero-channels.wav
  zero-rate.wav huge-channels.wav truncated.flac garbage.flac truncated.aiff
  abf1-header-only.abf abf1-negative-count.abf abf1-zero-channels.abf
  abf1-data-past-end.abf abf2-sections-past-end.abf atf-garbage.atf
  atf-ragged.atf ragged.txt letters.txt comments-only.txt nul-bytes.txt
  too-many-columns.txt table-empty.tsv table-ragged.tsv table-binary.tsv"
for f in $unreadable; do
  p="$bad/$f"
  try 3 "$p" "$q" info --rate 1000 "$p"
  try 3 "$p" "$q" convert --rate 1000 "$p" out.wav
  try 3 "$p" "$q" evoked --rate 1000 --stim-channel 1 "$p" -o out.tsv
  if have detect; then
    try 3 "$p" "$q" detect --rate 1000 "$p" -o out.tsv
  fi
done

# Readable but unusable for analysis: NaN/Inf samples, a constant trace,
# three samples. info describes them (exit 1 for non-finite samples);
# evoked finds no stimuli or nothing to measure.
for f in nan-samples.wav inf-samples.wav all-nan.wav nan-column.txt; do
  p="$bad/$f"
  try 1 "$p" "$q" info --rate 1000 "$p"
  try "1 2 3" "$p" "$q" evoked --rate 1000 --stim-channel 1 "$p" -o out.tsv
done
for f in constant.wav three-samples.wav; do
  p="$bad/$f"
  try 0 "$p" "$q" info "$p"
  try "1 2" "$p" "$q" evoked --stim-channel 1 "$p" -o out.tsv
  try "1 2" "$p" "$q" evoked --first 0 --period 1 "$p" -o out.tsv
done

# Stimulus tables that are not tables of increasing times in seconds (or
# whose times lie outside the recording, which names the recording).
rec="$bad/constant.wav"
name="table|constant.wav"
for f in table-empty.tsv table-comments-only.tsv table-ragged.tsv \
    table-binary.tsv table-text-amplitudes.tsv table-nan-amplitudes.tsv \
    table-decreasing-times.tsv table-negative-times.tsv \
    table-huge-line.tsv table-constant.tsv; do
  p="$bad/$f"
  try "1 2 3" "$p" "$q" evoked --stimuli "$p" "$rec" -o out.tsv
done
name=

# Figures, reports and summaries of unreadable inputs.
if have plot && have report; then
  printf 'onset_s\tpeak_s\tamplitude_mV\n0.1\t0.102\t0.5\n' > "$T/ev.tsv"
  for f in empty.wav garbage.wav truncated-data.wav abf1-header-only.abf; do
    p="$bad/$f"
    try 3 "$p" "$q" plot detect "$p" "$T/ev.tsv" -o out.png
    try "1 3" "$p" "$q" report "$p" -o outdir
  done
  try "1 3" "$bad/table-binary.tsv" "$q" plot fit "$bad/table-binary.tsv" -o out.png
fi
if have summarize; then
  try 3 "$bad/garbage.wav" "$q" summarize "$bad/garbage.wav"
fi

# Amplitude tables that cannot be fitted: fit and compare refuse them
# with a message naming the table (exit 1 for data that cannot be fitted,
# 3 for a table that cannot be read or lacks its column).
if have fit; then
  for f in table-empty.tsv table-comments-only.tsv table-ragged.tsv \
      table-binary.tsv table-no-amplitude.tsv table-text-amplitudes.tsv \
      table-nan-amplitudes.tsv table-header-only.tsv table-five-rows.tsv \
      table-constant.tsv empty.wav garbage.wav; do
    p="$bad/$f"
    try "1 3" "$p" "$q" fit "$p" -o out.tsv
    try "1 3" "$p" "$q" compare "$p" --replicates 2 --quiet -o out.txt
    try "1 3" "$p" "$q" compare --events "$p" --truth "$p" -o out.txt
  done
fi

# Absurd simulation parameters: usage errors, nothing written.
if have simulate; then
  for opt in "--p 2" "--p -0.1" "--n -3" "--rate 0" "--duration -1" \
      "--duration nan" "--rise 5 --decay 1" "--cv-q -1" "--noise inf" \
      "--preset bogus" "--model sometimes"; do
    name="${opt%% *}|preset|model"
    # shellcheck disable=SC2086
    try 2 "$bad/constant.wav" "$q" simulate $opt -o out.wav
  done
  name=
fi

# Files that are not there, folders, unreadable files.
mkdir adir
try 3 adir "$q" info adir
try 3 adir "$q" convert adir out.wav
try 3 adir "$q" evoked --stim-channel 1 adir -o out.tsv
if [ "$(id -u)" != 0 ]; then
  cp "$bad/constant.wav" locked.wav
  chmod 000 locked.wav
  try 3 locked.wav "$q" info locked.wav
  try 3 locked.wav "$q" evoked --stim-channel 2 locked.wav -o out.tsv
fi

# Absurd option values: usage errors (exit 2) naming the option, nothing
# written.
good="$bad/constant.wav"
for opt in "--rate -5" "--rate nan" "--rate 0" "--rate 1e400" "--scale 0"; do
  name=${opt%% *}
  # shellcheck disable=SC2086
  try 2 "$good" "$q" info $opt "$good"
done
name=
for opt in "--window -1" "--window nan" "--alpha 2" "--alpha 0" \
    "--baseline 0" "--jitter inf" "--stim-threshold nan" "--count 0" \
    "--channel 0" "--channel 999999" "--polarity sideways"; do
  checks=$((checks + 1))
  rm -rf work && mkdir work
  # shellcheck disable=SC2086
  (cd work && "$q" evoked --stim-channel 2 $opt "$good" -o out.tsv) \
    > /dev/null 2> err
  got=$?
  [ "$got" = 2 ] || fail "evoked $opt exited $got, expected 2"
  [ -z "$(ls -A work)" ] || fail "evoked $opt left output"
  grep -q '^quantal: evoked: ' err || fail "evoked $opt: $(cat err)"
done
finish
