#!/bin/sh
# Makes tests/fixtures/wt/ with real WiredTiger 11.2.0 (see scripts/make-wt-fixtures.py).
#
# WiredTiger comes from PyPI: the wheel of secantusdb ships it compiled (zlib and lz4
# built in); snappy and zstd are extensions built here from WiredTiger's own sources
# (the wiredtiger==11.2.0 sdist), against Debian's libsnappy-dev and libzstd-dev.
#
#   apt-get install -y gcc libsnappy-dev libzstd-dev
#   python3 -m pip install pymongo==4.10.1
#   scripts/make-wt-fixtures.sh [WORKDIR [--extensions-only]]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$root/target/wt-build}
mkdir -p "$work"
cd "$work"

python3 -c 'import wiredtiger' 2>/dev/null ||
    python3 -m pip install --no-deps secantusdb==0.7.0b3
[ -d wiredtiger-11.2.0 ] || {
    python3 -m pip download --no-deps --no-binary :all: -d . wiredtiger==11.2.0
    tar xzf wiredtiger-11.2.0.tar.gz
}

# wiredtiger.h from its template: the version and the portable type names CMake fills in.
mkdir -p include
sed -e 's/@VERSION_MAJOR@/11/; s/@VERSION_MINOR@/2/; s/@VERSION_PATCH@/0/' \
    -e 's/@VERSION_STRING@/"WiredTiger 11.2.0: (November 10, 2022)"/' \
    -e 's/@wiredtiger_includes_decl@/#include <sys\/types.h>\n#include <inttypes.h>\n#include <stdarg.h>\n#include <stdbool.h>\n#include <stdint.h>\n#include <stdio.h>/' \
    -e 's/@off_t_decl@/typedef off_t wt_off_t;/; s/@uintmax_t_decl@//; s/@uintptr_t_decl@//' \
    wiredtiger-11.2.0/src/include/wiredtiger.in >include/wiredtiger.h
: >include/wiredtiger_config.h
for c in snappy zstd; do
    gcc -O2 -fPIC -shared -Iinclude -Iwiredtiger-11.2.0/src/include \
        "wiredtiger-11.2.0/ext/compressors/$c/${c}_compress.c" -o "lib${c}_ext.so" -l$c
done

# The benches need only the extensions: they must not rewrite the committed fixtures.
[ "${2:-}" = --extensions-only ] && exit 0
python3 "$root/scripts/make-wt-fixtures.py" "$work"
