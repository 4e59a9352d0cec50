#!/usr/bin/env python3
"""Builds tests/fixtures/wt/: real WiredTiger 11.2.0 files, written by WiredTiger itself
and configured as mongod configures them, holding documents encoded by pymongo.
Deterministic documents (seeded); the files differ from run to run only in WiredTiger's
own timestamps. Run it through scripts/make-wt-fixtures.sh, which fetches WiredTiger
(the PyPI wheel of secantusdb ships it compiled, with zlib and lz4 built in) and builds
the snappy and zstd extensions from WiredTiger's own sources.

Outputs, for each block compressor in none, snappy, zstd, zlib, lz4:
  <compressor>/_mdb_catalog.wt        mongod's catalog: {ns, ident, md} per collection
  <compressor>/collection-*.wt        one file per collection (key_format=q: the record
                                      id; value_format=u: the BSON document)
Each collection was filled, checkpointed, then about a tenth of its documents were
updated (same _id and record id, other content) and a few removed, and checkpointed
again: the first checkpoint's pages stay in the file as older copies (lower write_gen).
"removed" lists what was on disk of each removed record (a record updated, then removed
before the checkpoint, only ever had its first version on disk).
Two documents of shop.customers are larger than half a leaf page: WiredTiger stores
them in overflow pages.
  snappy/WiredTiger.wt                WiredTiger's metadata (each file's checkpoints)
  manifest.json   ground truth (the same documents in every compressor's files): per
                  collection, the ident and the sha256 of every live document, of every
                  replaced version and every removed one.
"""
import datetime
import hashlib
import json
import os
import random
import shutil
import struct
import sys
from pathlib import Path

import bson
from bson import SON, Binary, Decimal128, Int64, ObjectId

import wiredtiger

root = Path(__file__).resolve().parent.parent
out = root / "tests" / "fixtures" / "wt"
ext_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else None
UTC = datetime.timezone.utc

TABLE = ("type=file,key_format=q,value_format=u,allocation_size=4KB,leaf_page_max=32KB,"
         "prefix_compression=false,checksum=on,block_compressor={}")
COMPRESSORS = ["none", "snappy", "zstd", "zlib", "lz4"]
COLLECTIONS = [("shop.customers", "collection-2-1234567890123456789", 260),
               ("shop.orders", "collection-4-1234567890123456789", 420)]
WORDS = ("ship anchor sail harbor rum compass treasure island parrot captain crew deck mast "
         "storm wave tide map plank cannon").split()
NAMES = ["Zoë Ångström", "Jürgen Müller", "山田 太郎", "Renée Dubois", "Иван Петров", "Chloé 🎬"]


def documents(ns, n):
    """The same documents for every compressor: one seeded generator per collection."""
    rng = random.Random(f"{ns}-20261122")

    def oid():
        return ObjectId(struct.pack(">I", 1_500_000_000 + rng.randrange(200_000_000))
                        + bytes(rng.getrandbits(8) for _ in range(8)))

    def when():
        return datetime.datetime(rng.randint(2015, 2025), rng.randint(1, 12), rng.randint(1, 28),
                                 rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                                 rng.choice([0, 123000, 500000]), tzinfo=UTC)

    docs = []
    for i in range(n):
        if ns == "shop.customers":
            doc = SON([("_id", oid()), ("name", rng.choice(NAMES)), ("email", f"user{i}@example.org"),
                       ("since", when()), ("vip", rng.random() < 0.2),
                       ("address", SON([("city", rng.choice(WORDS)), ("zip", f"{rng.randrange(99999):05}")])),
                       ("tags", [rng.choice(WORDS) for _ in range(rng.randint(0, 4))])])
            if i in (17, 211):  # larger than half a 32 KB leaf page: an overflow value
                doc["notes"] = " ".join(rng.choice(WORDS) + str(rng.randrange(10**6))
                                        for _ in range(4000))
        else:
            doc = SON([("_id", oid()), ("customer", oid()), ("at", when()),
                       ("total", Decimal128(f"{rng.randrange(100000) / 100:.2f}")),
                       ("qty", Int64(rng.randrange(1, 10**12))),
                       ("items", [SON([("sku", rng.choice(WORDS)), ("n", rng.randint(1, 9)),
                                       ("price", rng.randrange(100, 10000) / 100)])
                                  for _ in range(rng.randint(1, 5))]),
                       ("receipt", Binary(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64))))),
                       ("note", " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30))))])
        docs.append(doc)
    return docs


def sha(raw):
    return hashlib.sha256(raw).hexdigest()


def build(compressor):
    home = out / compressor
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    config = "create,log=(enabled=false),statistics=(none)"
    if compressor in ("snappy", "zstd"):
        config += f",extensions=[{ext_dir / f'lib{compressor}_ext.so'}]"
    conn = wiredtiger.wiredtiger_open(str(home), config)
    session = conn.open_session()
    block = "none" if compressor == "none" else compressor
    truth = {}
    for ns, ident, n in COLLECTIONS:
        rng = random.Random(f"{ns}-updates")
        session.create(f"table:{ident}", TABLE.format(block))
        cursor = session.open_cursor(f"table:{ident}")
        docs = documents(ns, n)
        raw = {rid: bson.encode(doc) for rid, doc in enumerate(docs, start=1)}
        for rid, value in raw.items():
            cursor[rid] = value
        session.checkpoint()
        replaced, removed, first = [], [], {}
        for rid in sorted(rng.sample(sorted(raw), n // 10)):
            doc = bson.decode(raw[rid], bson.CodecOptions(document_class=SON))
            doc["revised"] = rng.randrange(1000)
            first[rid] = sha(raw[rid])
            replaced.append(first[rid])
            raw[rid] = bson.encode(doc)
            cursor[rid] = raw[rid]
        for rid in sorted(rng.sample(sorted(raw), 3)):
            value = raw.pop(rid)
            if rid in first:  # replaced, then removed: only the first version was on disk
                removed.append(replaced.pop(replaced.index(first[rid])))
            else:
                removed.append(sha(value))
            cursor.set_key(rid)
            cursor.remove()
        cursor.close()
        session.checkpoint()
        truth[ns] = {"ident": ident, "live": [sha(v) for v in raw.values()],
                     "replaced": sorted(replaced), "removed": sorted(removed),
                     "overflow": [sha(v) for v in raw.values() if len(v) > 16 * 1024]}
    session.create("table:_mdb_catalog", TABLE.format(block))
    cursor = session.open_cursor("table:_mdb_catalog")
    for rid, (ns, ident, _) in enumerate(COLLECTIONS, start=1):
        md = SON([("ns", ns), ("options", SON([("uuid", Binary(hashlib.md5(ns.encode()).digest(), 4))])),
                  ("indexes", [SON([("spec", SON([("v", 2), ("key", SON([("_id", 1)])), ("name", "_id_")])),
                                    ("ready", True), ("multikey", False)])])])
        cursor[rid] = bson.encode(SON([("md", md), ("idxIdent", SON([("_id_", f"index-{rid}-99")])),
                                       ("ns", ns), ("ident", ident)]))
    cursor.close()
    session.close()
    conn.close()
    # Only what a salvage needs: WiredTiger's own files go, but for one compressor its
    # metadata file (WiredTiger.wt names each file's checkpoint roots), for the raw-disk test.
    keep = ("WiredTiger.wt",) if compressor == "snappy" else ()
    for f in home.iterdir():
        if not (f.name.startswith("collection-") or f.name == "_mdb_catalog.wt" or f.name in keep):
            f.unlink() if f.is_file() else shutil.rmtree(f)
    return truth


def main():
    truths = [build(c) for c in COMPRESSORS]
    assert all(t == truths[0] for t in truths), "each compressor's files hold the same documents"
    manifest = {"compressors": COMPRESSORS, "collections": truths[0]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {total} bytes")


main()
