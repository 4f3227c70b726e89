#!/bin/sh
# batch.sh - scripts/batch: failure isolation, resumption, Slurm script.
# SPDX-License-Identifier: GPL-3.0-or-later
. "$top_srcdir/tests/cli/lib.sh"
command -v parallel > /dev/null || { echo "GNU parallel missing: skipped"; exit 77; }
b="$top_srcdir/scripts/batch"
q=$QUANTAL
"$q" --help | grep -q '^  detect ' || { echo "no detect: skipped"; exit 77; }

cp "$top_srcdir/data/minis.flac" a.flac
cp "$top_srcdir/data/minis.flac" b.flac
echo 'not a recording' > broken.wav
printf 'file\tcell\tcondition\na.flac\tc1\tctrl\nb.flac\tc2\tdrug\nbroken.wav\tc3\tctrl\nmissing.flac\tc4\tctrl\n' > m.tsv

run 1 "$b" --quantal "$q" -j 2 m.tsv -o res
expect_out_match '^done: a_c1_ctrl$'
expect_out_match '^done: b_c2_drug$'
expect_out_match '^batch: 4 recordings: 2 done, 0 up to date, 2 failed$'
expect_err_match 'FAILED \(3\): broken_c3_ctrl: quantal: info: .*broken.wav: not a recording'
expect_err_match 'FAILED \(3\): missing_c4_ctrl: quantal: info: .*missing.flac: No such file or directory'
for f in res/a_c1_ctrl/events.tsv res/a_c1_ctrl/info.json res/a_c1_ctrl/done.stamp \
    res/b_c2_drug/events.tsv res/broken_c3_ctrl/error.log; do
  checks=$((checks + 1))
  [ -s "$f" ] || fail "$f missing"
done
checks=$((checks + 1))
[ ! -e res/broken_c3_ctrl/done.stamp ] || fail "a failed recording got a stamp"

# The summary table: one row per recording, failures flagged.
if "$q" --help | grep -q '^  summarize '; then
  checks=$((checks + 1))
  [ "$(wc -l < res/summary.tsv)" = 5 ] || fail "summary.tsv: $(cat res/summary.tsv)"
  checks=$((checks + 1))
  awk -F'\t' 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
    $c["id"] == "a_c1_ctrl" && ($c["status"] != "ok" || $c["cell"] != "c1" ||
      $c["condition"] != "ctrl" || $c["unit"] != "mV" || $c["events"] < 10) { bad = 1 }
    $c["id"] == "broken_c3_ctrl" && ($c["status"] != "failed" ||
      $c["qc"] !~ /failed/ || $c["message"] !~ /not a recording/) { bad = 1 }
    END { exit bad }' res/summary.tsv || fail "summary rows: $(cat res/summary.tsv)"
  run 0 "$q" summarize --json res
  checks=$((checks + 1))
  python3 -c 'import json; d = json.load(open("out")); assert len(d) == 4 and d[0]["id"] == "a_c1_ctrl", d' ||
    fail "summarize --json"
  run 3 "$q" summarize nowhere
  expect_err "quantal: summarize: nowhere: No such file or directory"
fi

# Rerun: the good ones are up to date, the failures are tried again.
run 1 "$b" --quantal "$q" m.tsv -o res
expect_out_match '^skipped \(up to date\): a_c1_ctrl$'
expect_out_match '^batch: 4 recordings: 0 done, 2 up to date, 2 failed$'
# A newer input is redone; so is everything with --force.
touch -d '+2 seconds' a.flac 2> /dev/null || { sleep 1; touch a.flac; }
run 1 "$b" --quantal "$q" m.tsv -o res
expect_out_match '^done: a_c1_ctrl$'
expect_out_match '^skipped \(up to date\): b_c2_drug$'

# Two rows that would share an output folder are refused before anything.
printf 'file\tid\na.flac\tsame\nb.flac\tsame\n' > dup.tsv
run 2 "$b" --quantal "$q" dup.tsv -o out2
expect_err "batch: two rows would write the same output folder: same"
checks=$((checks + 1))
[ ! -e out2/same ] || fail "work started despite duplicate folders"

# Slurm: a valid script whose task i runs row i.
run 0 "$b" --quantal "$q" --slurm m.tsv -o out3
checks=$((checks + 1))
bash -n out3/batch.slurm || fail "batch.slurm has a syntax error"
expect_out_match 'wrote .*batch.slurm \(4 array tasks\)'
checks=$((checks + 1))
grep -q '^#SBATCH --array=1-4$' out3/batch.slurm || fail "array range"
run 0 env SLURM_ARRAY_TASK_ID=2 bash out3/batch.slurm
expect_out_match '^done: b_c2_drug$'
checks=$((checks + 1))
[ ! -e out3/a_c1_ctrl ] || fail "task 2 ran row 1"
run 2 "$b" --quantal "$q" --one 9 out3/manifest.tsv -o out3
expect_err "batch: --one 9: the manifest has rows 1 to 4"
# Interruption: SIGINT to the whole run, as Ctrl-C sends it, once the
# first recording is done. The finished results stay, the run says how
# many were not run and exits 130, no temporary file is left behind, and
# the same command again completes exactly the rest.
if command -v setsid > /dev/null; then
  printf 'file\tcell\tcondition\n' > si.tsv
  for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
    cp "$top_srcdir/data/minis.flac" "si$i.flac"
    printf 'si%d.flac\tc%d\tctrl\n' "$i" "$i" >> si.tsv
  done
  setsid "$b" --quantal "$q" -j 1 si.tsv -o sires > si.out 2> si.err &
  pid=$!
  k=0
  while [ $k -lt 400 ] && ! ls sires/*/done.stamp > /dev/null 2>&1; do
    sleep 0.05
    k=$((k + 1))
  done
  kill -INT "-$pid" # (dash's kill takes no --)
  code=0
  wait "$pid" || code=$?
  checks=$((checks + 1))
  [ "$code" = 130 ] || fail "interrupted batch exited $code, not 130"
  checks=$((checks + 1))
  grep -q '^batch: interrupted: [0-9]* recordings not run' si.err ||
    fail "no interruption message: $(cat si.err)"
  ndone=$(ls sires/*/done.stamp 2> /dev/null | wc -l)
  checks=$((checks + 1))
  [ "$ndone" -ge 1 ] && [ "$ndone" -lt 12 ] ||
    fail "after the interruption $ndone of 12 recordings have stamps"
  checks=$((checks + 1))
  left=$(find sires -name '*.tmp*' -o -name '.info.json')
  [ -z "$left" ] || fail "temporary files left after the interruption: $left"
  run 0 "$b" --quantal "$q" -j 2 si.tsv -o sires
  expect_out_match "^batch: 12 recordings: $((12 - ndone)) done, $ndone up to date, 0 failed$"
  # Parallel can lose a job on Ctrl-C (one it is starting as the signal
  # comes, or all of them when it dies of SIGPIPE): the run must end such
  # a job itself before it reports, and remove what the job leaves. Here
  # parallel is killed outright while a job hangs in quantal info on
  # stuck.flac, ignoring TERM (a wrapper), so the run has to KILL it.
  cat > stubborn << EOF
#!/bin/sh
case "\$*" in
*stuck.flac*) trap '' TERM INT; sleep 60 ;;
esac
exec "$q" "\$@"
EOF
  chmod +x stubborn
  cp "$top_srcdir/data/minis.flac" stuck.flac
  printf 'file\tcell\tcondition\nsi1.flac\tc1\tctrl\nstuck.flac\tc2\tctrl\n' > st.tsv
  setsid "$b" --quantal "$PWD/stubborn" -j 1 st.tsv -o stres > st.out 2> st.err &
  pid=$!
  k=0
  while [ $k -lt 400 ] && ! [ -e stres/stuck_c2_ctrl/.info.json ]; do
    sleep 0.05
    k=$((k + 1))
  done
  checks=$((checks + 1))
  [ -e stres/stuck_c2_ctrl/error.log.tmp ] || fail "the stuck job never started"
  # (no pkill: procps is not everywhere)
  for d in /proc/[0-9]*; do
    [ "$(cat "$d/comm" 2> /dev/null)" = parallel ] || continue
    [ "$(sed 's/.*) //' "$d/stat" 2> /dev/null | cut -d' ' -f2)" = "$pid" ] &&
      kill -KILL "${d#/proc/}"
  done
  code=0
  wait "$pid" || code=$?
  checks=$((checks + 1))
  [ "$code" = 130 ] || fail "batch without its parallel exited $code, not 130"
  checks=$((checks + 1))
  [ -e stres/si1_c1_ctrl/done.stamp ] || fail "the first recording was lost"
  left=$(find stres -name '*.tmp*' -o -name '.info.json' -o -name '.jobs.*')
  checks=$((checks + 1))
  [ -z "$left" ] || fail "a lost job's temporary files were left: $left"
  running=
  for d in /proc/[0-9]*; do
    tr '\0' ' ' < "$d/cmdline" 2> /dev/null | grep -q -- "stres.*--one\|--one.*stres" &&
      running="$running ${d#/proc/}"
  done
  checks=$((checks + 1))
  [ -z "$running" ] || fail "jobs still running after the run ended:$running"
fi
finish
