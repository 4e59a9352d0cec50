#!/usr/bin/env python3
"""The MongoDB incident's method, for comparison: at every byte offset read a
plausible little-endian length (10 < n < 100 000, their limits) and try to decode that
many bytes with pymongo (its C extension: faster than the pure-Python parser they had
to fall back on). Prints the bytes per second over a slice of the image.

    python3 bench/python-method.py IMAGE OFFSET LENGTH
"""
import sys
import time

import bson

path, offset, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "rb") as f:
    f.seek(offset)
    buf = f.read(length + 100_000)
found = 0
start = time.perf_counter()
for at in range(length):
    n = int.from_bytes(buf[at:at + 4], "little")
    if 10 < n < 100_000:
        try:
            bson.decode(buf[at:at + n])
            found += 1
        except Exception:
            pass
elapsed = time.perf_counter() - start
print(f"{length / elapsed:.0f} bytes/s ({found} documents decoded in {length} bytes, {elapsed:.2f} s)")
