#!/bin/bash
# same-behaviour.sh OLD_BIN NEW_BIN SOURCE...
# Shows that a refactoring changed nothing users see: both builds scan the same sources
# (their own index each), mount them, and the script compares the --json-summary
# (without timings and fields only the new build prints), every file's sha256, every
# path's inode and size, and README.txt (without its scan time). Needs root and fuse3.
set -euo pipefail
old=$1 new=$2; shift 2
w=$(mktemp -d)
trap 'for d in "$w"/mnt-*; do umount "$d" 2>/dev/null || true; done; rm -rf "$w"' EXIT
for v in old new; do
  bin=${!v}
  "$bin" scan "$@" --index "$w/$v.idx" --json-summary | python3 -c '
import json, sys
d = json.load(sys.stdin)
for k in ("index", "scan_seconds", "mongo_totals"):
    d.pop(k, None)
for c in d.get("candidates", []):
    for k in ("file", "streams", "skipped"):
        c.pop(k, None)
print(json.dumps(d, sort_keys=True, indent=1))' > "$w/$v.json"
  mkdir -p "$w/mnt-$v"
  "$bin" mount --index "$w/$v.idx" "$@" "$w/mnt-$v" 2>/dev/null
  (cd "$w/mnt-$v" && find . -type f ! -name README.txt -print0 | sort -z | xargs -0 sha256sum) > "$w/$v.sums"
  (cd "$w/mnt-$v" && find . -print0 | sort -z | xargs -0 stat -c '%i %s %n') > "$w/$v.stat"
  sed -e 's/unix time [0-9]*, [0-9.]* s/TIME/' -e 's/^Scanned [0-9TZ:-]* ([0-9.]* s)/Scanned TIME/' "$w/mnt-$v/README.txt" > "$w/$v.readme"
  umount "$w/mnt-$v"
done
status=0
for f in json sums stat readme; do
  if cmp -s "$w/old.$f" "$w/new.$f"; then
    echo "same $f ($(wc -l < "$w/new.$f") lines)"
  else
    echo "DIFFERENT $f"; diff "$w/old.$f" "$w/new.$f" | head -20; status=1
  fi
done
exit $status
