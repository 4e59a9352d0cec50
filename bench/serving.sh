#!/usr/bin/env bash
# Serving: a carved recording read through the mount by the tools people use (cat,
# dd bs=1M, cp, rsync, sha256sum) against dd bs=1M of the same bytes of the image,
# page cache warm for the image, a fresh mount each time; best of 5 alternating runs
# (this VM's page cache is trimmed in the background: compare within one run). Then
# the same from a cold cache (as root). This build as mounted by default (direct I/O)
# and with --page-cache; with a second build, it too (by default), side by side.
#
#   bench/serving.sh [OTHER_SALVAGEFS]      (needs ffmpeg, fuse3, rsync)
set -euo pipefail
cd "$(dirname "$0")/.."
work=bench/work/serving
mkdir -p "$work/mnt" "$work/out"
long="$work/long.flv"   # a 10-minute recording (~150 MB)
[ -f "$long" ] || ffmpeg -nostdin -loglevel error -f lavfi -i testsrc2=size=320x240:rate=25 \
  -f lavfi -i sine=frequency=440 -t 600 -c:v libx264 -preset ultrafast -b:v 2000k -c:a aac "$long"
img="$work/image"       # 16 MiB of random bytes, the recording, zeros to 4 KiB, 16 MiB random
if [ ! -f "$img" ]; then
  { head -c 16M /dev/urandom; cat "$long"; head -c $((4096 - $(stat -c %s "$long") % 4096)) /dev/zero
    head -c 16M /dev/urandom; } >"$img"
fi
cargo build --release -q
# Each configuration: a build and its mount options.
builds=("target/release/salvagefs" "target/release/salvagefs --page-cache" ${1:+"$1"})
for b in "${builds[@]}"; do
  read -r bin _ <<<"$b"; "$bin" scan "$img" --index "$work/$(basename "$bin").idx" >/dev/null
done
len=$(stat -c %s "$long"); off=$((16 << 20)); mnt=$work/mnt
fusermount3 -u "$mnt" 2>/dev/null || true
now() { date +%s.%N; }
# Seconds READER takes on the recording through a fresh mount of build $1.
through() {
  local bin opts reader=$2 s e f
  read -r bin opts <<<"$1"
  # shellcheck disable=SC2086
  "$bin" mount "$img" "$mnt" --index "$work/$(basename "$bin").idx" $opts >/dev/null
  f=$(ls "$mnt"/flv/*.flv | head -1)
  s=$(now); "$reader" "$f" >/dev/null 2>&1; e=$(now)
  fusermount3 -u "$mnt"; rm -f "$work/out/copy"
  python3 -c "print($e - $s)"
}
direct() { s=$(now); dd if="$img" of=/dev/null bs=1M iflag=skip_bytes,count_bytes skip="$off" count="$len" status=none; e=$(now); python3 -c "print($e - $s)"; }
cat_() { cat "$1"; }
dd_() { dd if="$1" of=/dev/null bs=1M; }
cp_() { cp "$1" "$work/out/copy"; }
rsync_() { rsync "$1" "$work/out/copy"; }
sha256sum_() { sha256sum "$1"; }
best() { python3 -c "import sys; print(min(float(x) for x in sys.argv[1:]))" "$@"; }
mbs() { python3 -c "print(f'{$len / $1 / 1e6:.0f}')"; }
cold() { sync; echo 3 >/proc/sys/vm/drop_caches; }
printf '| reader (150 MB recording) |'; for b in "${builds[@]}"; do printf ' %s MB/s | vs dd |' "$b"; done; echo
printf '|---|'; for _ in "${builds[@]}"; do printf -- '---|---|'; done; echo
rows=(cat_ dd_ cp_ rsync_ sha256sum_)
[ -w /proc/sys/vm/drop_caches ] && rows+=(cold)
for reader in "${rows[@]}"; do
  t=(); dds=()
  for _ in 1 2 3 4 5; do
    if [ "$reader" = cold ]; then cold; else cat "$img" >/dev/null; fi
    dds+=("$(direct)")
    for k in "${!builds[@]}"; do
      [ "$reader" = cold ] && cold
      t[k]="${t[k]:-} $(through "${builds[k]}" "$([ "$reader" = cold ] && echo cat_ || echo "$reader")")"
    done
  done
  d=$(best "${dds[@]}")
  label=${reader%_}; [ "$reader" = cold ] && label="cat, cold cache"
  printf '| %s (dd bs=1M of the image: %s MB/s) |' "$label" "$(mbs "$d")"
  for k in "${!builds[@]}"; do
    # shellcheck disable=SC2086
    m=$(best ${t[k]})
    printf ' %s | %s%% |' "$(mbs "$m")" "$(python3 -c "print(round($d / $m * 100))")"
  done
  echo
done
