#!/usr/bin/env bash
# Times, side by side in one run and with the page cache warm, everything that reads the
# same image (random bytes, zeros, text, executables, FLV recordings and MongoDB data
# files, built reproducibly): cat (the limit), grep (the incident's method), photorec
# restricted to FLV, salvagefs scan (FLV + BSON, with its peak RSS); then serving: mount
# time with an existing index, a carved recording read through the mount against dd of
# the same bytes from the image, four parallel readers, and the first byte of a file.
#
#   bench/scan.sh [SIZE_MIB [MMAPV1_DOCS]]
#       (default 4096 MiB and ~400 000 loose documents; needs ffmpeg, pymongo, testdisk for
#       photorec). With MMAPV1_DOCS, the documents are that many in MMAPv1 data files
#       (bench/make-many-docs.py), and one recording lies at an odd offset and one is
#       split in two: `bench/scan.sh 4096 20000` is issue 18's image.
#   SALVAGEFS_BEFORE=path/to/salvagefs bench/scan.sh   (adds that build's scan, for comparisons)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-4096}
mmapv1=${2:-}
work=bench/work
mkdir -p "$work"
img="$work/bench-$size${mmapv1:+-mmapv1-$mmapv1}.img"
long="$work/long.flv"   # a 10-minute recording (~150 MB) for the read-through-mount test
[ -f "$long" ] || ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25 \
  -f lavfi -i sine=frequency=440 -t 600 -c:v libx264 -preset ultrafast -b:v 2000k -c:a aac "$long"
if [ -n "$mmapv1" ]; then
  docs="$work/many-$mmapv1.img"   # MMAPv1 data files: extent headers, record headers
  [ -f "$docs" ] || python3 bench/make-many-docs.py "$mmapv1" "$docs"
  [ -f "$img" ] || python3 bench/make-image.py "$img" "$size" "$long" "$docs" --odd-and-split
else
  docs="$work/docs-400k.bson"   # ~400 000 pymongo-made documents, back to back
  [ -f "$docs" ] || python3 bench/make-docs.py 400000 "$docs"
  [ -f "$img" ] || python3 bench/make-image.py "$img" "$size" "$long" "$docs"
fi
cargo build --release -q
bin=target/release/salvagefs
bytes=$(stat -c %s "$img")

t() { # t LABEL CMD...: wall seconds of CMD (best of 3)
  local label=$1; shift; local best=
  for _ in 1 2 3; do
    # Output to a file, not /dev/null: GNU grep stops at the first match when its
    # output is /dev/null, which would time nothing.
    local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
    best=$(python3 -c "b='$best'; x=$e-$s; print(x if not b else min(float(b), x))")
  done
  printf '%s\t%s\n' "$label" "$best"
}

cat "$img" >/dev/null   # warm the page cache
results=$(mktemp)
{
  t "cat IMAGE >/dev/null" cat "$img"
  t "grep -c -a -P 'FLV\\x01\\x05' IMAGE" sh -c "grep -c -a -P 'FLV\x01\x05' $img >$work/grep.out"
  if command -v photorec >/dev/null; then
    t "photorec (FLV only)" sh -c "rm -rf $work/photorec*; mkdir -p $work/photorec; photorec /d $work/photorec/out /cmd $img partition_none,fileopt,everything,disable,flv,enable,search"
  fi
  t "salvagefs scan (FLV + BSON)" "$bin" scan "$img" --index "$work/bench.idx" --rescan
  if [ -n "${SALVAGEFS_BEFORE:-}" ]; then
    t "salvagefs scan, build before" "$SALVAGEFS_BEFORE" scan "$img" --index "$work/before.idx" --rescan
  fi
} | tee "$results"

echo
python3 - "$results" "$bytes" <<'PY'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
size = int(sys.argv[2])
cat = float(rows[0][1])
print(f"| command | seconds | GB/s | time vs cat |")
print(f"|---|---|---|---|")
for label, s in rows:
    s = float(s)
    print(f"| `{label}` | {s:.2f} | {size / s / 1e9:.2f} | {s / cat:.2f}x |")
PY

echo "FLV files found: grep $(cat $work/grep.out) lines with a header, photorec $(ls $work/photorec/out.1/*.flv 2>/dev/null | wc -l), salvagefs $("$bin" scan "$img" --index "$work/bench.idx" --json-summary | python3 -c 'import json,sys; print(json.load(sys.stdin)["flv"]["total"])')"
rss=$( { /usr/bin/time -f %M "$bin" scan "$img" --index "$work/bench.idx" --rescan >/dev/null; } 2>&1 | tail -1)
echo "salvagefs scan peak RSS: $((rss / 1024)) MB for $size MiB"

# Serving: the long recording through the mount (first read, fresh mount each time)
# against dd bs=1M of the same byte range of the image.
mnt=$work/mnt; mkdir -p "$mnt"
fusermount3 -u "$mnt" 2>/dev/null || true
s=$(date +%s.%N); "$bin" mount "$img" "$mnt" --index "$work/bench.idx" >/dev/null; e=$(date +%s.%N)
echo "mount with an existing index: $(python3 -c "print(f'{$e-$s:.3f}')") s"
f=$(ls -S "$mnt"/flv/*.flv | sed -n 1p)
off=$((10#$(basename "$f" .flv))); len=$(stat -c %s "$f")
fusermount3 -u "$mnt"
best() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
via_mount=(); via_dd=()
for _ in 1 2 3; do
  "$bin" mount "$img" "$mnt" --index "$work/bench.idx" >/dev/null
  s=$(date +%s.%N); cat "$mnt/flv/$(basename "$f")" >/dev/null; e=$(date +%s.%N)
  via_mount+=("$(python3 -c "print($e-$s)")")
  fusermount3 -u "$mnt"
  s=$(date +%s.%N); dd if="$img" of=/dev/null bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none; e=$(date +%s.%N)
  via_dd+=("$(python3 -c "print($e-$s)")")
done
m=$(best "${via_mount[@]}"); d=$(best "${via_dd[@]}")
python3 -c "print(f'read {$len/1e6:.0f} MB recording: cat through the mount {$len/$m/1e6:.0f} MB/s, dd bs=1M from the image {$len/$d/1e6:.0f} MB/s ({$d/$m*100:.0f}%)')"

# The same from a cold page cache (as root): what a real disk allows, both ways, best
# of 5 alternating runs (a virtual disk's speed varies a lot from one run to the next);
# and the scan against cat, both cold.
if [ -w /proc/sys/vm/drop_caches ]; then
  cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
  d=99; m=99; c=99; sc=99
  for _ in 1 2 3 4 5; do
    cold; s=$(date +%s.%N); dd if="$img" of=/dev/null bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none; e=$(date +%s.%N)
    d=$(python3 -c "print(min($d, $e-$s))")
    "$bin" mount "$img" "$mnt" --index "$work/bench.idx" >/dev/null
    cold; s=$(date +%s.%N); cat "$mnt/flv/$(basename "$f")" >/dev/null; e=$(date +%s.%N)
    m=$(python3 -c "print(min($m, $e-$s))")
    fusermount3 -u "$mnt"
  done
  for _ in 1 2 3 4 5; do
    cold; s=$(date +%s.%N); cat "$img" >/dev/null; e=$(date +%s.%N); c=$(python3 -c "print(min($c, $e-$s))")
    cold; s=$(date +%s.%N); "$bin" scan "$img" --index "$work/cold.idx" --rescan >/dev/null 2>&1; e=$(date +%s.%N)
    sc=$(python3 -c "print(min($sc, $e-$s))")
  done
  python3 -c "print(f'cold cache: cat through the mount {$len/$m/1e6:.0f} MB/s, dd bs=1M from the image {$len/$d/1e6:.0f} MB/s ({$d/$m*100:.0f}%)')"
  python3 -c "print(f'cold cache: cat IMAGE {$c:.2f} s, salvagefs scan {$sc:.2f} s ({$sc/$c:.2f}x)')"
fi

# Every carved recording read by one reader, then by four readers at once (each a
# quarter of the files), each time on a fresh mount with a cold page cache for the
# mount (the image stays cached): does serving scale with readers?
readers() { # readers N: wall seconds for N parallel readers over all recordings
  "$bin" mount "$img" "$mnt" --index "$work/bench.idx" >/dev/null
  ls "$mnt"/flv/*.flv | grep -v -F "$(basename "$f")" >"$work/files"
  local s e; s=$(date +%s.%N)
  for k in $(seq 0 $(($1 - 1))); do
    awk -v n="$1" -v k="$k" 'NR % n == k' "$work/files" | xargs cat >/dev/null &
  done
  wait; e=$(date +%s.%N)
  fusermount3 -u "$mnt"
  python3 -c "print($e-$s)"
}
one=$(readers 1); four=$(readers 4)
total=$("$bin" scan "$img" --index "$work/bench.idx" --json-summary | python3 -c "import json,sys; d=json.load(sys.stdin); print(sum(c['bytes'] for c in d['candidates']))")
python3 -c "print(f'all recordings but the long one, one reader: {($total-$len)/$one/1e6:.0f} MB/s; four readers: {($total-$len)/$four/1e6:.0f} MB/s aggregate ({$one/$four:.2f}x)')"
"$bin" mount "$img" "$mnt" --index "$work/bench.idx" >/dev/null
f=$(ls "$mnt"/flv/*.flv | sed -n 3p)
s=$(date +%s.%N); head -c 1 "$f" >/dev/null; e=$(date +%s.%N)
python3 -c "print(f'first byte of a recording (fresh mount): {($e-$s)*1000:.1f} ms')"
fusermount3 -u "$mnt"
