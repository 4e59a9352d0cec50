#!/usr/bin/env bash
# MongoDB salvage speed, side by side in one run with the page cache warm:
#   - a 1 GiB image with ~400 000 documents among random bytes, text, zeros, binaries
#     and FLV: cat, salvagefs scan (FLV + BSON), and the incident's Python method timed
#     on a slice and scaled;
#   - 1 000 000 documents: mount time with an existing index, cat of the collection's
#     .json through the mount;
#   - 100 000 documents in one collection: ls -l of its docs/ directory.
#
#   bench/mongo.sh          (needs pymongo: python3 -m pip install pymongo)
set -euo pipefail
cd "$(dirname "$0")/.."
work=bench/work
mkdir -p "$work"
cargo build --release -q
bin=target/release/salvagefs
best() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
now() { date +%s.%N; }

docs="$work/docs-400k.bson"
[ -f "$docs" ] || python3 bench/make-docs.py 400000 "$docs"
img="$work/mongo-1024.img"
[ -f "$img" ] || python3 bench/make-image.py "$img" 1024 "" "$docs"
bytes=$(stat -c %s "$img")
cat "$img" >/dev/null
c=(); s=()
for _ in 1 2 3; do
  a=$(now); cat "$img" >/dev/null; b=$(now); c+=("$(python3 -c "print($b-$a)")")
  a=$(now); "$bin" scan "$img" --index "$work/mongo.idx" --rescan >"$work/mongo-scan.out"; b=$(now)
  s+=("$(python3 -c "print($b-$a)")")
done
cat_s=$(best "${c[@]}"); scan_s=$(best "${s[@]}")
slice=$((4 << 20))
py=$(python3 bench/python-method.py "$img" $((bytes / 3)) $slice)
py_rate=${py%% *}
python3 - "$bytes" "$cat_s" "$scan_s" "$py_rate" <<'PY'
import sys
size, cat, scan, py = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
py_s = size / py
print("| command (1 GiB image, ~400k documents) | seconds | GB/s | vs cat |")
print("|---|---|---|---|")
print(f"| `cat IMAGE >/dev/null` | {cat:.2f} | {size / cat / 1e9:.2f} | 1.00x |")
print(f"| `salvagefs scan IMAGE` (FLV + BSON) | {scan:.2f} | {size / scan / 1e9:.2f} | {scan / cat:.2f}x |")
print(f"| incident's Python loop (pymongo C decoder), 4 MiB slice scaled | {py_s:.0f} | {py / 1e9:.5f} | {py_s / cat:.0f}x |")
print(f"salvagefs scan is {py_s / scan:.0f}x faster than the Python method")
PY
cat "$work/mongo-scan.out"
# From a cold cache (as root), best of 5 alternating runs: what a disk allows.
if [ -w /proc/sys/vm/drop_caches ]; then
  c=99; sc=99
  for _ in 1 2 3 4 5; do
    sync; echo 3 >/proc/sys/vm/drop_caches
    a=$(now); cat "$img" >/dev/null; b=$(now); c=$(python3 -c "print(min($c, $b-$a))")
    sync; echo 3 >/proc/sys/vm/drop_caches
    a=$(now); "$bin" scan "$img" --index "$work/mongo.idx" --rescan >/dev/null 2>&1; b=$(now)
    sc=$(python3 -c "print(min($sc, $b-$a))")
  done
  python3 -c "print(f'cold cache: cat {$c:.2f} s, salvagefs scan {$sc:.2f} s ({$sc/$c:.2f}x); cat itself is {$bytes/$c/$py_rate:.0f}x faster than the Python method')"
fi

# One million documents: mount with the index, then cat the collection's JSON.
million="$work/docs-1m.bson"
[ -f "$million" ] || python3 bench/make-docs.py 1000000 "$million"
"$bin" scan "$million" --index "$work/million.idx" >/dev/null
mnt=$work/mnt; mkdir -p "$mnt"; fusermount3 -u "$mnt" 2>/dev/null || true
m=()
for _ in 1 2 3; do
  a=$(now); "$bin" mount "$million" "$mnt" --index "$work/million.idx"; b=$(now)
  m+=("$(python3 -c "print($b-$a)")")
  fusermount3 -u "$mnt"
done
echo "mount of 1M documents with an existing index: $(best "${m[@]}") s (index $(stat -c %s "$work/million.idx") bytes, $(( $(stat -c %s "$work/million.idx") / 1000000 )) bytes per document)"
"$bin" mount "$million" "$mnt" --index "$work/million.idx"
json=$(ls "$mnt"/mongo/json/recovered/*.json | head -1)
a=$(now); cat "$json" >/dev/null; b=$(now)
echo "cat of $(basename "$json") ($(stat -c %s "$json") bytes, first read) through the mount: $(python3 -c "print(f'{$(stat -c %s "$json")/($b-$a)/1e6:.0f}')") MB/s"
fusermount3 -u "$mnt"

# 100 000 documents in one collection: ls -l of its docs/ directory on a fresh mount
# (the directory is made on first use), then again.
hundred="$work/docs-100k.bson"
[ -f "$hundred" ] || python3 bench/make-docs.py 100000 "$hundred"
"$bin" scan "$hundred" --index "$work/100k.idx" >/dev/null
"$bin" mount "$hundred" "$mnt" --index "$work/100k.idx"
dir=$(ls -d "$mnt"/mongo/docs/recovered/*)
for run in fresh warm; do
  a=$(now); n=$(ls -l "$dir" | wc -l); b=$(now)
  echo "ls -l of $((n - 1)) documents ($run): $(python3 -c "print(f'{$b-$a:.2f}')") s"
done
fusermount3 -u "$mnt"
