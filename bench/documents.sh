#!/usr/bin/env bash
# Documents per second, side by side in one run with the page cache warm (best of 3,
# the image read once before each run): cat of each image, then salvagefs scan of
#   - N MMAPv1 documents as data files lay them out (bench/make-many-docs.py, default
#     2 000 000), and
#   - the WiredTiger image of bench/wiredtiger.sh (real WiredTiger files, snappy, zstd
#     and zlib), when it was built (bench/wiredtiger.sh makes it).
# Reports wall seconds, documents per second, CPU seconds and peak RSS of the whole
# command (scan, classification, index write). Then serving: the MMAPv1 collection's
# one-line JSON read through a fresh mount of each build's index (cat, best of 3),
# rendered as it is read.
#
#   bench/documents.sh [N]      (needs pymongo: python3 -m pip install pymongo)
#   SALVAGEFS_BEFORE=path/to/salvagefs bench/documents.sh   (adds that build's rows, same run)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000000}
work=bench/work
mkdir -p "$work"
cargo build --release -q
bin=target/release/salvagefs
mmap="$work/many-$n.img"
[ -f "$mmap" ] || python3 bench/make-many-docs.py "$n" "$mmap"
wt="$work/wt-1024.img"

run() { # run IMAGE INDEX [BUILD]: "wall cpu rss_kb documents" of the best of 3 scans
  local best= bin=${3:-$bin}
  for _ in 1 2 3; do
    cat "$1" >/dev/null
    /usr/bin/time -f "%e %U %S %M" -o "$work/time.out" \
      "$bin" scan "$1" --index "$2" --rescan --json-summary >"$work/docs-scan.json"
    local line; line=$(awk '{print $1, $2 + $3, $4}' "$work/time.out")
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(not ${line%% *} < ${best%% *})"; then
      best=$line
    fi
  done
  local docs
  docs=$(python3 -c "import json; d=json.load(open('$work/docs-scan.json')); print(sum(c['documents'] for c in d['mongo'].values()))")
  echo "$best $docs"
}

cat_time() {
  local best=99
  for _ in 1 2 3; do
    local a b; a=$(date +%s.%N); cat "$1" >/dev/null; b=$(date +%s.%N)
    best=$(python3 -c "print(min($best, $b - $a))")
  done
  echo "$best"
}

echo "| image | documents | cat s | scan s | documents/s | CPU s | peak RSS |"
echo "|---|---|---|---|---|---|---|"
row() { # row LABEL IMAGE INDEX [BUILD]
  local c r; c=$(cat_time "$2"); r=$(run "$2" "$3" "${4:-}")
  python3 - "$1" "$c" $r <<'PY'
import sys
label, cat, wall, cpu, rss, docs = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
print(f"| {label} | {docs} | {cat:.2f} | {wall:.2f} | {docs / wall / 1e6:.2f} M | {cpu:.2f} | {rss >> 10} MB |")
PY
}
row "MMAPv1 data files" "$mmap" "$work/many.idx"
if [ -n "${SALVAGEFS_BEFORE:-}" ]; then
  row "MMAPv1 data files, build before" "$mmap" "$work/many-before.idx" "$SALVAGEFS_BEFORE"
fi
if [ -f "$wt" ]; then
  row "WiredTiger files (snappy, zstd, zlib)" "$wt" "$work/wt.idx"
  if [ -n "${SALVAGEFS_BEFORE:-}" ]; then
    row "WiredTiger files, build before" "$wt" "$work/wt-before.idx" "$SALVAGEFS_BEFORE"
  fi
else
  echo "(no $wt: run bench/wiredtiger.sh once to build it)"
fi

json_read() { # json_read INDEX BUILD: best seconds of cat of the collection's JSON, and its bytes
  local mnt="$work/mnt" best=99 bytes=0
  mkdir -p "$mnt"
  for _ in 1 2 3; do
    "$2" mount "$mmap" "$mnt" --index "$1" >/dev/null
    local file a b; file=$(find "$mnt/mongo/json" -name '*.json' | head -1)
    a=$(date +%s.%N); bytes=$(cat "$file" | wc -c); b=$(date +%s.%N)
    fusermount3 -u "$mnt"
    best=$(python3 -c "print(min($best, $b - $a))")
  done
  echo "$best $bytes"
}
echo
echo "| serving | JSON bytes | cat s | MB/s |"
echo "|---|---|---|---|"
json_row() { # json_row LABEL INDEX BUILD
  local r; r=$(json_read "$2" "$3")
  python3 - "$1" $r <<'PY'
import sys
label, secs, size = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
print(f"| {label} | {size} | {secs:.2f} | {size / secs / 1e6:.0f} |")
PY
}
json_row "MMAPv1 collection's JSON through the mount" "$work/many.idx" "$bin"
if [ -n "${SALVAGEFS_BEFORE:-}" ]; then
  json_row "the same, build before" "$work/many-before.idx" "$SALVAGEFS_BEFORE"
fi
