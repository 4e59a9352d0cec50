#!/usr/bin/env bash
# WiredTiger salvage speed, side by side in one run: a disk image (default 1 GiB)
# holding real WiredTiger collection files compressed with snappy, zstd and zlib among
# random bytes, text and zeros; cat of the image, then salvagefs scan (every chunk's
# blocks are checksummed and decompressed on all cores, with the rest of the scan),
# page cache warm (best of 3), then both from a cold cache (best of 3 alternating).
#
#   bench/wiredtiger.sh [SIZE_MIB]      (needs what scripts/make-wt-fixtures.sh needs)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1024}
work=bench/work
mkdir -p "$work"
cargo build --release -q
bin=target/release/salvagefs
best() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$1" "$(now)"; }

img="$work/wt-$size.img"
if [ ! -f "$img" ]; then
  wt_build=target/wt-build
  [ -f "$wt_build/libsnappy_ext.so" ] || scripts/make-wt-fixtures.sh "$wt_build" --extensions-only >/dev/null
  python3 bench/make-wt-image.py "$wt_build" "$img" "$size"
fi
bytes=$(stat -c %s "$img")
drop() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
warm_cat=(); warm_scan=(); cold_cat=(); cold_scan=()
cat "$img" >/dev/null
for _ in 1 2 3; do
  a=$(now); cat "$img" >/dev/null; warm_cat+=("$(since "$a")")
  a=$(now); "$bin" scan "$img" --index "$work/wt.idx" --rescan --json-summary >"$work/wt-scan.json"; warm_scan+=("$(since "$a")")
done
for _ in 1 2 3; do
  drop; a=$(now); cat "$img" >/dev/null; cold_cat+=("$(since "$a")")
  drop; a=$(now); "$bin" scan "$img" --index "$work/wt.idx" --rescan >/dev/null; cold_scan+=("$(since "$a")")
done
python3 - "$bytes" "$(best "${warm_cat[@]}")" "$(best "${warm_scan[@]}")" \
  "$(best "${cold_cat[@]}")" "$(best "${cold_scan[@]}")" "$work/wt-scan.json" <<'PY'
import json, sys
size = int(sys.argv[1])
wc, ws, cc, cs = map(float, sys.argv[2:6])
found = json.load(open(sys.argv[6]))
print(f"| {size >> 20} MiB image with WiredTiger files | seconds | GB/s | vs cat |")
print("|---|---|---|---|")
for name, t, base in [("cat (page cache)", wc, wc), ("salvagefs scan (page cache)", ws, wc),
                      ("cat (cold)", cc, cc), ("salvagefs scan (cold)", cs, cc)]:
    print(f"| {name} | {t:.2f} | {size / t / 1e9:.2f} | {t / base:.1f}x |")
docs = sum(c["documents"] for c in found["mongo"].values())
print(f"found: {docs} documents in {found['wiredtiger']['pages']} pages {found['wiredtiger']['by_compressor']}")
PY
