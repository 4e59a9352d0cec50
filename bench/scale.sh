#!/usr/bin/env bash
# How scan and mount grow with the number of documents: for each N, N distinct
# documents as MMAPv1 data files (bench/make-many-docs.py, ~300 bytes each, kept in
# bench/work), then: scan wall time and peak RSS (/usr/bin/time), index size, mount
# time with that index, the mount daemon's RSS, time to the first byte of the
# collection's .json, reading the whole .bson and .json through the mount (cached
# image), and `ls -l` of a 100 000-entry docs/ directory (fresh mount).
# The memory columns are what issue 16 wants flat in N.
#
#   bench/scale.sh [N...]      (default: 1000000 3000000 10000000; needs pymongo, fuse3)
#   SALVAGEFS=path/to/salvagefs bench/scale.sh ...   (another build, for comparisons)
set -euo pipefail
cd "$(dirname "$0")/.."
work=bench/work
mkdir -p "$work"
bin=${SALVAGEFS:-target/release/salvagefs}
[ -n "${SALVAGEFS:-}" ] || cargo build --release -q
mnt=$work/scale-mnt
mkdir -p "$mnt"
fusermount3 -u "$mnt" 2>/dev/null || true
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$1" "$(now)"; }

# ls -l of a docs/ directory of 100 000 documents, on a fresh mount.
small="$work/many-100000.img"
[ -f "$small" ] || python3 bench/make-many-docs.py 100000 "$small" >/dev/null
"$bin" scan "$small" --index "$work/scale-100k.idx" >/dev/null
"$bin" mount "$small" "$mnt" --index "$work/scale-100k.idx" >/dev/null
a=$(now); entries=$(ls -l "$mnt"/mongo/docs/bench/orders | wc -l); ls_s=$(since "$a")
fusermount3 -u "$mnt"
echo "ls -l of mongo/docs/bench/orders/ ($((entries - 1)) entries, fresh mount): $ls_s s"
echo
# MB/s of reading file $1 whole.
rate() {
  local a s
  a=$(now); cat "$1" >/dev/null; s=$(since "$a")
  python3 -c "import sys; print(f'{int(sys.argv[1]) / 1e6 / float(sys.argv[2]):.0f}')" "$(stat -c %s "$1")" "$s"
}
echo "| documents | image | scan s | scan peak RSS | index | mount s | daemon RSS | first byte of .json | .bson MB/s | .json MB/s | daemon RSS after |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for n in "${@:-1000000 3000000 10000000}"; do
  for n in $n; do
    img="$work/many-$n.img"
    [ -f "$img" ] || python3 bench/make-many-docs.py "$n" "$img" >/dev/null
    idx="$work/scale-$n.idx"
    cat "$img" >/dev/null
    /usr/bin/time -f "%e %M" -o "$work/time.out" "$bin" scan "$img" --index "$idx" --rescan >/dev/null 2>&1
    read -r scan_s scan_kb <"$work/time.out"
    a=$(now); "$bin" mount "$img" "$mnt" --index "$idx" >/dev/null; mount_s=$(since "$a")
    pid=$(pgrep -n -f "salvagefs mount $img")
    rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    a=$(now); head -c 1 "$mnt"/mongo/json/bench/orders.json >/dev/null; first=$(since "$a")
    bson_rate=$(rate "$mnt"/mongo/dump/bench/orders.bson)
    json_rate=$(rate "$mnt"/mongo/json/bench/orders.json)
    after_kb=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    fusermount3 -u "$mnt"
    echo "| $n | $(( $(stat -c %s "$img") >> 20 )) MiB | $scan_s | $((scan_kb >> 10)) MB | $(( $(stat -c %s "$idx") >> 20 )) MiB | $mount_s | $((rss_kb >> 10)) MB | $first s | $bson_rate | $json_rate | $((after_kb >> 10)) MB |"
  done
done
