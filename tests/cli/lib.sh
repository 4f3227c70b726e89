# lib.sh - shared helpers for CLI tests. SPDX-License-Identifier: GPL-3.0-or-later
# Sourced by tests/cli/*.sh. Each test runs in its own temporary folder.
set -u
: "${QUANTAL:?QUANTAL must point at the built program}"
: "${top_srcdir:?top_srcdir must be set}"
T=$(mktemp -d "${TMPDIR:-/tmp}/quantal-test.XXXXXX") || exit 99
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T" || exit 99
fails=0
checks=0

fail() {
  echo "FAIL: $*" >&2
  fails=$((fails + 1))
}

# run CODE CMD...: run CMD with stdout to out, stderr to err, check exit code.
run() {
  want=$1
  shift
  checks=$((checks + 1))
  "$@" >out 2>err
  got=$?
  if [ "$got" != "$want" ]; then
    fail "'$*' exited $got, expected $want"
    sed 's/^/  stderr: /' err >&2
  fi
}

# expect_err TEXT: stderr must be exactly TEXT (one line).
expect_err() {
  checks=$((checks + 1))
  if [ "$(cat err)" != "$1" ]; then
    fail "stderr was '$(cat err)', expected '$1'"
  fi
}

# expect_err_match REGEX
expect_err_match() {
  checks=$((checks + 1))
  grep -Eq -- "$1" err || fail "stderr '$(cat err)' does not match /$1/"
}

expect_out_match() {
  checks=$((checks + 1))
  grep -Eq -- "$1" out || fail "stdout does not match /$1/: $(head -c 300 out)"
}

expect_no_out() {
  checks=$((checks + 1))
  [ ! -s out ] || fail "stdout should be empty: $(head -c 200 out)"
}

# no_file PATH...: none of the paths (nor temporaries beside them) exist.
no_file() {
  for f in "$@"; do
    checks=$((checks + 1))
    [ ! -e "$f" ] || fail "$f should not exist"
    d=$(dirname "$f")
    b=$(basename "$f")
    if ls -a "$d" 2>/dev/null | grep -q "^\.$b\.tmp"; then
      fail "temporary file for $f left behind"
    fi
  done
}

finish() {
  if [ "$fails" -gt 0 ]; then
    echo "$fails of $checks checks failed" >&2
    exit 1
  fi
  echo "$checks checks passed"
  exit 0
}
