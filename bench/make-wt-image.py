#!/usr/bin/env python3
"""Writes a disk image of SIZE_MIB MiB holding real WiredTiger collection files, as a
crashed mongod's disk would: collections compressed with snappy (mongod's default), zstd
and zlib, written by WiredTiger 11.2.0 itself, and WiredTiger's metadata file, laid one
after the other among random bytes, text and zeros. Used by bench/wiredtiger.sh; needs what scripts/make-wt-fixtures.sh
installs and builds (its work directory is the first argument).

    make-wt-image.py WT_BUILD_DIR IMAGE SIZE_MIB
"""
import os
import random
import shutil
import struct
import sys
from pathlib import Path

import bson
from bson import Int64, ObjectId

import wiredtiger

build, image, size = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) << 20
rng = random.Random(7)
WORDS = ("ship anchor sail harbor rum compass treasure island parrot captain crew deck mast "
         "storm wave tide map plank cannon").split()
TABLE = ("type=file,key_format=q,value_format=u,allocation_size=4KB,leaf_page_max=32KB,"
         "prefix_compression=false,checksum=on,block_compressor={}")
# Templates, varied per document: encoding stays fast, compression stays realistic.
NOTES = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))) for _ in range(512)]


def docs(n, start):
    for i in range(start, start + n):
        yield bson.encode({"_id": ObjectId(struct.pack(">IQ", 1_600_000_000 + i, i)[:12]),
                           "customer": i % 9973, "qty": Int64(i * 7919 % 10**9),
                           "note": NOTES[i % 512], "tags": WORDS[i % 19:i % 19 + 3],
                           "price": (i % 10000) / 100})


work = image.parent / "wt-image-home"
shutil.rmtree(work, ignore_errors=True)
work.mkdir(parents=True)
ext = ",".join(str(build / f"lib{c}_ext.so") for c in ("snappy", "zstd"))
conn = wiredtiger.wiredtiger_open(str(work), f"create,log=(enabled=false),extensions=[{ext}]")
session = conn.open_session()
per_collection = max(size // 4 // 500, 1000)  # ~500 B per document before compression
files = []
for n, codec in enumerate(["snappy", "snappy", "zstd", "zlib"]):
    ident = f"collection-{n * 2}-42"
    session.create(f"table:{ident}", TABLE.format(codec))
    cursor = session.open_cursor(f"table:{ident}")
    for rid, value in enumerate(docs(per_collection, n * per_collection), start=1):
        cursor[rid] = value
    cursor.close()
    session.checkpoint()
    files.append(work / f"{ident}.wt")
session.close()
conn.close()
files.append(work / "WiredTiger.wt")  # names each file's checkpoints: traced on the raw image

with open(image, "wb") as out:
    filler = [lambda n: os.urandom(n), lambda n: bytes(n),
              lambda n: (" ".join(WORDS) * (n // 100 + 1)).encode()[:n]]
    for i, f in enumerate(files):
        out.write(filler[i % 3](4096 * rng.randrange(1, 2048)))  # files on 4 KiB blocks
        with open(f, "rb") as src:
            shutil.copyfileobj(src, out)
    wt_bytes = sum(f.stat().st_size for f in files)
    while out.tell() < size:
        out.write(filler[rng.randrange(3)](min(size - out.tell(), 16 << 20)))
    out.truncate(size)
shutil.rmtree(work)
print(f"{image}: {size >> 20} MiB, {wt_bytes >> 20} MiB of WiredTiger files, "
      f"{4 * per_collection} documents")
