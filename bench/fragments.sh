#!/usr/bin/env bash
# Lost recordings side by side: salvagefs and photorec (FLV only) on images the kernel's
# ext4/XFS/btrfs wrote (scripts/make-fs-recordings.py: four recorders at once, then
# mv/rm) and on woodblock layouts (scripts/make-woodblock.py), each scored against the
# truth written before the mistake. Prints the README's table.
#
#   bench/fragments.sh [SEED...]        (default: 11 12; needs root, photorec, woodblock)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("${@:-11 12}")
# shellcheck disable=SC2206
seeds=(${seeds[*]})
work=bench/work/fragments
mkdir -p "$work"
cargo build --release --quiet
bin=target/release/salvagefs
command -v photorec >/dev/null || { echo "photorec missing: apt-get install -y testdisk" >&2; exit 1; }

# photorec_exact IMAGE SHA256...: how many of the given files photorec brings back exact.
photorec_exact() {
    local img=$1; shift
    local out; out=$(mktemp -d)
    photorec /log /d "$out/recup" /cmd "$img" partition_none,fileopt,everything,disable,flv,enable,search >/dev/null 2>&1 || true
    local got; got=$(find "$out" -name '*.flv' -exec sha256sum {} + | cut -d' ' -f1 | sort -u)
    local n=0
    for want in "$@"; do grep -qx "$want" <<<"$got" && n=$((n + 1)); done
    rm -rf "$out"
    echo "$n"
}

echo "| scenario | seed | extents | salvagefs: lost recording | other files' bytes (flagged / unflagged) | photorec: lost recording |"
echo "|---|---|---|---|---|---|"
scenarios=("ext4 fresh, mv:--fs ext4 --mistake mv"
           "ext4 95% full, rm while recording:--fs ext4 --fill 95 --mistake rm-live"
           "ext4 90% full, rm:--fs ext4 --fill 90 --mistake rm"
           "XFS, mv:--fs xfs --mistake mv"
           "btrfs, mv:--fs btrfs --mistake mv")
for seed in "${seeds[@]}"; do
    for s in "${scenarios[@]}"; do
        name=${s%%:*}; args=${s#*:}
        set_dir="$work/$(tr 'A-Z' 'a-z' <<<"$name" | tr -c 'a-z0-9\n' '-')$seed"
        # shellcheck disable=SC2086
        [ -f "$set_dir/truth.json" ] || python3 scripts/make-fs-recordings.py "$set_dir" $args --seed "$seed" 2>/dev/null
        rm -rf "$set_dir/out" "$set_dir/idx"
        "$bin" export "$set_dir/disk.img" "$set_dir/out" --only 'flv/**' --index "$set_dir/idx" -q >/dev/null
        v=$(python3 scripts/judge-recordings.py "$set_dir/truth.json" "$set_dir/disk.img" "$set_dir/out" --json)
        lost_sha=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['lost']['sha256'])" "$set_dir/truth.json")
        pr=$(photorec_exact "$set_dir/disk.img" "$lost_sha")
        python3 - "$name" "$seed" "$pr" "$v" <<'EOF'
import json, sys
name, seed, pr, v = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4])
flagged = v["other_bytes"] - v["silent_other_bytes"]
print(f"| {name} | {seed} | {v['extents']} | {v['lost']} | {flagged} / {v['silent_other_bytes']} | {'exact' if pr else 'not exact'} |")
EOF
    done
    wb="$work/woodblock$seed"
    [ -f "$wb/image.dd.json" ] || python3 scripts/make-woodblock.py "$wb" --seed "$seed"
    rm -rf "$wb/out" "$wb/idx"
    "$bin" export "$wb/image.dd" "$wb/out" --only 'flv/**' --index "$wb/idx" -q >/dev/null
    v=$(python3 scripts/judge-woodblock.py "$wb/image.dd.json" "$wb/out" --json)
    # shellcheck disable=SC2046
    pr=$(photorec_exact "$wb/image.dd" $(sha256sum "$wb"/corpus/*.flv | cut -d' ' -f1))
    python3 - "$seed" "$pr" "$v" <<'EOF'
import json, sys
seed, pr, v = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
flagged = v["foreign_bytes"] - v["silent_foreign_bytes"]
print(f"| woodblock, 7 recordings at 512 B | {seed} | 2-8 | {v['exact']} of 7 exact | {flagged} / {v['silent_foreign_bytes']} | {pr} of 7 exact |")
EOF
done
