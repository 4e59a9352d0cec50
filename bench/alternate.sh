#!/usr/bin/env bash
# Builds side by side on one image, in alternating runs: this VM's speed drifts by tens of
# percent within minutes, so a comparison of two builds is only fair when their runs
# interleave. Each run reads the image once first (the page cache here holds only a few
# GB, and is trimmed in the background), then times `salvagefs scan IMAGE --rescan`.
# Prints, per build, the median wall, user and system seconds and every wall time.
#
#   bench/alternate.sh IMAGE RUNS BUILD...   (e.g. bench/alternate.sh img 5 old/salvagefs target/release/salvagefs)
set -euo pipefail
img=$1 runs=$2; shift 2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
declare -A wall user sys
for _ in $(seq "$runs"); do
  for k in $(seq 0 $(($# - 1))); do
    bin=${*:k+1:1}
    cat "$img" >/dev/null
    /usr/bin/time -o "$work/time" -f "%e %U %S" "$bin" scan "$img" --index "$work/$k.idx" --rescan >/dev/null 2>&1
    read -r w u s <"$work/time"
    wall[$k]+="$w " user[$k]+="$u " sys[$k]+="$s "
  done
done
median() { python3 -c "import sys, statistics; print(f'{statistics.median(map(float, sys.argv[1:])):.2f}')" "$@"; }
for k in $(seq 0 $(($# - 1))); do
  # shellcheck disable=SC2086
  echo "${*:k+1:1}: median wall $(median ${wall[$k]}) s, user $(median ${user[$k]}) s, system $(median ${sys[$k]}) s (walls: ${wall[$k]% })"
done
