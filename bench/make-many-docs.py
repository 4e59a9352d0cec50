#!/usr/bin/env python3
"""Writes N distinct MongoDB documents as MMAPv1 data files lay them out, fast enough
for hundreds of millions: 1000 documents of every common type are encoded by pymongo
once, then copied with a fresh `_id` each (ObjectId: a time, the document's number, a
counter), in 16-byte record headers linked in their extent's record list, behind an
extent header that names the collection (`bench.orders`), extents of 16 MiB, data
files of 2047 MiB (MMAPv1's largest) back to back (`bench.0`, `bench.1`, ... as one image; the last one
ends after its last extent).

    python3 bench/make-many-docs.py N OUT
"""
import random
import struct
import sys

import bson
from bson import ObjectId

from doc_template import order

EXTENT = 16 << 20
DATA_FILE = 2047 << 20  # MMAPv1's largest data file
EXTENT_HEADER = 176
RECORD_HEADER = 16
NS = b"bench.orders"

n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
templates = [bson.encode(order(rng, i, ObjectId())) for i in range(1000)]
# A record's slot: header + document, rounded up to 4 bytes as MMAPv1 allocates.
slots = [(RECORD_HEADER + len(t) + 3) // 4 * 4 for t in templates]


def extent_header(fileno, ofs, first, last):
    h = bytearray(EXTENT_HEADER)
    struct.pack_into("<Iii", h, 0, 0x41424344, fileno, ofs)
    struct.pack_into("<iiii", h, 12, -1, 0, -1, 0)
    h[28:28 + len(NS)] = NS
    struct.pack_into("<i", h, 156, EXTENT)
    struct.pack_into("<iiii", h, 160, fileno, first, fileno, last)
    return bytes(h)


written = 0
with open(out, "wb") as f:
    doc = 0
    fileno = 0
    while doc < n:
        f.write(struct.pack("<iii", 4, 22, DATA_FILE) + bytes(8192 - 12))
        ofs = 8192
        while ofs + EXTENT <= DATA_FILE and doc < n:
            # Lay the extent's records out first: their offsets make the links.
            at, records = ofs + EXTENT_HEADER, []
            while doc < n:
                k = doc % len(templates)
                if at + slots[k] > ofs + EXTENT:
                    break
                records.append((at, k, doc))
                at += slots[k]
                doc += 1
            body = [extent_header(fileno, ofs, records[0][0], records[-1][0])]
            for j, (rec, k, d) in enumerate(records):
                prev = records[j - 1][0] if j else -1
                nxt = records[j + 1][0] if j + 1 < len(records) else -1
                t = templates[k]
                oid = struct.pack(">II", 1_420_000_000 + d // 1000, d) + struct.pack(">I", k)
                body.append(struct.pack("<iiii", slots[k], ofs, nxt, prev))
                body.append(t[:9] + oid + t[21:])
                body.append(bytes(slots[k] - RECORD_HEADER - len(t)))
            chunk = b"".join(body)
            f.write(chunk + bytes(EXTENT - len(chunk)))
            ofs += EXTENT
        if doc < n:
            f.write(bytes(DATA_FILE - ofs))
        fileno += 1
print(f"{out}: {n} documents in {fileno} data files")
