#!/usr/bin/env python3
"""Writes N distinct MongoDB-like documents (pymongo-encoded, ~300 bytes each, every
common type) back to back, as a mongodump .bson or a data file's payload would hold them.

    python3 bench/make-docs.py N OUT
"""
import datetime
import random
import struct
import sys

import bson
from bson import Decimal128, Int64, ObjectId

n, out = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
base = datetime.datetime(2015, 1, 1, tzinfo=datetime.timezone.utc)
words = "ship anchor sail harbor rum compass treasure island parrot captain".split()
with open(out, "wb") as f:
    for i in range(n):
        oid = ObjectId(struct.pack(">II", 1_420_000_000 + i, i) + rng.randbytes(4))
        f.write(bson.encode({
            "_id": oid,
            "customer": f"user{rng.randrange(100_000)}@example.org",
            "items": [{"sku": f"SKU-{rng.randrange(999):03d}", "qty": rng.randrange(1, 5),
                       "price": round(rng.uniform(1, 300), 2)} for _ in range(rng.randrange(1, 4))],
            "total": Int64(rng.randrange(10**9)),
            "amount": Decimal128(f"{rng.randrange(10**6)}.{rng.randrange(100):02d}"),
            "paid": rng.random() < 0.5,
            "placed": base + datetime.timedelta(seconds=i * 37),
            "note": " ".join(rng.choice(words) for _ in range(rng.randrange(0, 12))),
        }))
