#!/usr/bin/env bash
# --bson-any on random data, side by side in one run with the page cache warm: cat of
# the image, the default scan, and the scan trying every offset as a BSON document.
# Best of 3 each; prints the ratio to the default scan (issue: within 3x).
#
#   bench/bson-any.sh [SIZE_MiB]     (default 1024)
set -euo pipefail
cd "$(dirname "$0")/.."
work=bench/work
mkdir -p "$work"
mib=${1:-1024}
img="$work/random-$mib.img"
[ -f "$img" ] || head -c $((mib << 20)) /dev/urandom >"$img"
cargo build --release -q
bin=target/release/salvagefs
best() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))" "$1" "$(now)"; }
cat "$img" >/dev/null
declare -a c d a
for _ in 1 2 3; do
  t=$(now); cat "$img" >/dev/null; c+=("$(since "$t")")
  t=$(now); "$bin" -q scan "$img" --index "$work/any.idx" --rescan >/dev/null; d+=("$(since "$t")")
  t=$(now); "$bin" -q scan "$img" --index "$work/any.idx" --rescan --bson-any >/dev/null; a+=("$(since "$t")")
done
cat_s=$(best "${c[@]}"); default_s=$(best "${d[@]}"); any_s=$(best "${a[@]}")
echo "random ${mib} MiB: cat ${cat_s} s, scan ${default_s} s, scan --bson-any ${any_s} s" \
     "($(python3 -c "print(round($any_s / $default_s, 2))")x the default scan)"
