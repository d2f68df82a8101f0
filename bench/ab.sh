#!/bin/bash
# A/B of the figures in docs/benchmarks.md: two trees of this repository (worktrees), run
# alternately in one sitting (old new new old ...), so drift of a noisy machine hits both.
#
#   git worktree add /tmp/ab_old <commit before>;  git worktree add /tmp/ab_new <commit after>
#   OLD=/tmp/ab_old NEW=/tmp/ab_new bash bench/ab.sh        # about 21 minutes on 2 cores
#
# Each run is started from inside its tree with PYTHONPATH set to it: the benchmarks' child
# processes (`python -m workers.process`, `-m dispatcher.mockserver`) import through the
# current folder, and would otherwise fall through to the editable install. The imports are
# checked before anything runs. Each run: $OUT/<bench>-<side>-<n>.txt (its JSON) and .err;
# the summary (medians per side, new/old) is bench/ab_summary.py's, saved as $OUT/summary.txt.
#
# Knobs (environment): OLD, NEW (trees), OUT, THROUGHPUT_PER_SIDE, PRIORITY_PER_SIDE, RATE_PER_SIDE.
set -u
OLD=${OLD:?set OLD to the tree (worktree) before the change}
NEW=${NEW:-$(cd "$(dirname "$0")/.." && pwd)}
OUT=${OUT:-/tmp/llmd-ab}
THROUGHPUT_PER_SIDE=${THROUGHPUT_PER_SIDE:-4}
PRIORITY_PER_SIDE=${PRIORITY_PER_SIDE:-2}
RATE_PER_SIDE=${RATE_PER_SIDE:-1}
SUMMARY="$(cd "$(dirname "$0")" && pwd)/ab_summary.py"

tree_of() { [ "$1" = old ] && echo "$OLD" || echo "$NEW"; }

check_trees() {
  for side in old new; do
    local tree; tree=$(tree_of $side)
    # The way a bench child imports: from the tree's folder with PYTHONPATH, via a subprocess.
    local seen
    seen=$(cd "$tree" && PYTHONPATH="$tree" python -c "
import subprocess, sys
import dispatcher, workers, cli, migrations
child = subprocess.run([sys.executable, '-c', 'import dispatcher, workers; print(dispatcher.__file__, workers.__file__)'],
                       capture_output=True, text=True, check=True).stdout.split()
print(dispatcher.__file__, workers.__file__, cli.__file__, migrations.__file__, *child)")
    echo "$side: $seen" | tee -a "$OUT/imports.txt"
    for file in $seen; do
      case "$file" in "$tree"/*) ;; *) echo "$side imports $file from outside $tree" >&2; exit 1;; esac
    done
  done
  echo "old: $(git -C "$OLD" log -1 --format='%h %s' | cut -c1-80)" >> "$OUT/imports.txt"
  echo "new: $(git -C "$NEW" log -1 --format='%h %s' | cut -c1-80); uncommitted files: $(git -C "$NEW" status --porcelain | wc -l)" >> "$OUT/imports.txt"
}

declare -A COUNT
run() {  # run BENCH SIDE ARGS...: one run of bench/BENCH.py in SIDE's tree
  local bench=$1 side=$2; shift 2
  local tree; tree=$(tree_of "$side")
  COUNT[$bench]=$(( ${COUNT[$bench]:-0} + 1 ))
  local base="$OUT/$bench-$side-${COUNT[$bench]}"
  local start=$SECONDS
  (cd "$tree" && PYTHONPATH="$tree" python "bench/$bench.py" "$@" > "$base.txt" 2> "$base.err")
  local rc=$?
  printf '%s %-11s %-3s #%-2s rc=%s %4ss  load %s\n' "$(date +%T)" "$bench" "$side" "${COUNT[$bench]}" \
    "$rc" "$((SECONDS - start))" "$(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/runs.log"
}

alternate() {  # alternate BENCH PER_SIDE ARGS...: old new new old old new ... (drift hits both sides alike)
  local bench=$1 per_side=$2; shift 2
  local pair
  for ((pair = 0; pair < per_side; pair++)); do
    if ((pair % 2 == 0)); then run "$bench" old "$@"; run "$bench" new "$@"
    else run "$bench" new "$@"; run "$bench" old "$@"; fi
  done
}

if [ -d "$OUT" ] && [ -n "$(ls -A "$OUT")" ]; then mv "$OUT" "$OUT.$(date +%Y%m%d-%H%M%S)"; fi
mkdir -p "$OUT"
check_trees
echo "A/B started $(date +%T)" | tee -a "$OUT/runs.log"

alternate throughput "$THROUGHPUT_PER_SIDE" --runs 1 --skip b
alternate priority "$PRIORITY_PER_SIDE" --only urgent
alternate rate_limits "$RATE_PER_SIDE"

echo "A/B took $((SECONDS / 60)) min $((SECONDS % 60)) s" | tee -a "$OUT/runs.log"
python "$SUMMARY" "$OUT" | tee "$OUT/summary.txt"
