#!/usr/bin/env bash
# Runs every fuzz target of salvagefs for SECONDS each (default 900 = 15 minutes), one
# after the other, growing the committed corpus in fuzz/corpus/<target>.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); RUSTC_BOOTSTRAP=1 lets the stable
# toolchain build the sanitizer-instrumented targets. An empty corpus is seeded from the
# test fixtures. Crashes land in fuzz/artifacts/<target>/ and make the script fail;
# rerun one with `cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-...`.
# At the end, each corpus is minimized (cargo fuzz cmin) so the commit stays small,
# and a line per target gives runs and seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
seconds=${1:-900}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(flv_walk fs_maps bson_scan extjson_render index_load schema_parse wt_pages)
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz missing; run: cargo install cargo-fuzz" >&2; exit 1; }

seed() {
    local target=$1 dir=fuzz/corpus/$1
    mkdir -p "$dir"
    [ -z "$(ls -A "$dir")" ] || return 0
    python3 - "$target" "$dir" <<'PY'
import glob, os, struct, sys
target, out = sys.argv[1], sys.argv[2]
n = 0
def put(b):
    global n
    n += 1
    open(os.path.join(out, f"seed-{n:04d}"), "wb").write(b)
def docs(path):
    b = open(path, "rb").read()
    at = 0
    while at + 4 <= len(b):
        size = struct.unpack_from("<i", b, at)[0]
        if size < 5:
            break
        yield b[at:at + size]
        at += size
F = "tests/fixtures"
if target == "flv_walk":
    for f in sorted(glob.glob(f"{F}/flv/*.flv")):
        put(open(f, "rb").read()[:8192])
elif target == "bson_scan":
    for f in ["shop.0", "blog.0", "loose.bin", "hostile.bin"]:
        b = open(f"{F}/bson/{f}", "rb").read()
        for at in range(0, min(len(b), 1 << 20), 128 << 10):
            put(b"\x00" + b[at:at + 8192])
elif target == "extjson_render":
    for f in sorted(glob.glob(f"{F}/bson/olddump/*/*.bson")):
        for i, d in enumerate(docs(f)):
            if i < 8:
                put(bytes([i % 4]) + d)
elif target == "index_load":
    put(open(os.environ["SEED_INDEX"], "rb").read()[32:])
elif target == "wt_pages":
    # Real blocks as found on disk (flag 0), and page images behind valid headers (1).
    for f in sorted(glob.glob(f"{F}/wt/*/*.wt")):
        b = open(f, "rb").read()
        for at in range(0, len(b), 4096):
            if b[at + 24] in (5, 6, 7) and int.from_bytes(b[at + 28:at + 32], "little") <= 8192:
                put(b"\x00" + b[at:at + 8192])
        put(b"\x01" + b[4096 + 40:4096 + 8192])
elif target == "schema_parse":
    put(open(f"{F}/bson/schema.json", "rb").read())
    put(b'{"a.b": ["x", "y"], "c.d": []}')
PY
}

# A real index (its payload, without the 32-byte header) seeds the loader's corpus.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cargo build --release --quiet
cat tests/fixtures/bson/shop.0 tests/fixtures/flv/short-av.flv >"$work/img"
./target/release/salvagefs scan --index "$work/img.idx" "$work/img" >/dev/null
export SEED_INDEX=$work/img.idx

status=0
for t in "${targets[@]}"; do
    seed "$t"
    log=$work/$t.log
    if ! cargo fuzz run --release "$t" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -max_len=8192 -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=1
        echo "$t: FAILED, see fuzz/artifacts/$t/"; tail -30 "$log"
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cargo fuzz cmin --release "$t" "fuzz/corpus/$t" -- -max_len=8192 >/dev/null 2>&1 || true
    # Keep the committed corpus small (a few MB): inputs of at most 4 KiB are kept.
    find "fuzz/corpus/$t" -type f -size +4k -delete
    echo "$t: ${seconds}s, $runs runs, corpus $(ls "fuzz/corpus/$t" | wc -l) files"
done
exit $status
