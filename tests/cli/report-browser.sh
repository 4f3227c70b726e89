#!/bin/sh
# report-browser.sh - the report page renders in a real browser (headless
# Chromium) to a non-blank screenshot. Skipped when chromium is absent.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
D="$top_srcdir/data"
B=$(command -v chromium || command -v chromium-browser) ||
  { echo "chromium absent: skipped"; exit 77; }
[ -e "$D/evoked.flac" ] || { echo "no data/"; exit 77; }
run 0 "$QUANTAL" report -q "$D/evoked.flac" -o rep
profile=$(mktemp -d "$T/profile.XXXXXX")
checks=$((checks + 1))
timeout 60 "$B" --headless --no-sandbox --disable-gpu --disable-quic \
  --no-first-run --disable-background-networking --disable-component-update \
  --disable-sync --user-data-dir="$profile" --screenshot="$T/shot.png" \
  --window-size=1200,2000 "file://$T/rep/index.html" >browser.log 2>&1 ||
  fail "chromium failed: $(tail -3 browser.log)"
checks=$((checks + 1))
[ -s shot.png ] || fail "no screenshot"
# Not blank: a page of figures has many colours; a blank one has one.
if command -v python3 >/dev/null; then
  n=$(python3 - shot.png <<'PY'
import struct, sys, zlib
b = open(sys.argv[1], 'rb').read()
assert b[:8] == b'\x89PNG\r\n\x1a\n'
i, idat, w, h, ct = 8, b'', 0, 0, 0
while i < len(b):
    n, t = struct.unpack('>I4s', b[i:i + 8])
    d = b[i + 8:i + 8 + n]
    if t == b'IHDR':
        w, h, bd, ct = struct.unpack('>IIBB', d[:10])
    elif t == b'IDAT':
        idat += d
    i += 12 + n
raw = zlib.decompress(idat)
bpp = {2: 3, 6: 4}.get(ct, 4)
stride = w * bpp + 1
# Filtered bytes still differ between colours; count distinct pixels of
# unfiltered-looking rows (filter byte 0) and distinct rows overall.
rows = set(raw[r * stride:(r + 1) * stride] for r in range(h))
print(len(rows))
PY
)
  checks=$((checks + 1))
  [ "${n:-0}" -gt 50 ] || fail "screenshot looks blank ($n distinct rows)"
else
  checks=$((checks + 1))
  [ "$(wc -c < shot.png)" -gt 20000 ] || fail "screenshot looks blank"
fi
finish
