#!/usr/bin/env python3
"""Writes N distinct MongoDB-like documents (pymongo-encoded, ~300 bytes each, every
common type) back to back, as a mongodump .bson or a data file's payload would hold them.

    python3 bench/make-docs.py N OUT
"""
import random
import struct
import sys

import bson
from bson import ObjectId

from doc_template import order

n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
with open(out, "wb") as f:
    for i in range(n):
        oid = ObjectId(struct.pack(">II", 1_420_000_000 + i, i) + rng.randbytes(4))
        f.write(bson.encode(order(rng, i, oid)))
