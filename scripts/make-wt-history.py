#!/usr/bin/env python3
"""Writes a WiredTiger dbpath with a history, with WiredTiger itself, and the truth.

    python3 -m pip install pymongo==4.10.1 && python3 -m pip install --no-deps secantusdb==0.7.0b3
    python3 scripts/make-wt-history.py OUT_DIR [SEED]

One collection (shop.events: collection-7-42.wt, named in _mdb_catalog.wt) configured as
mongod configures it (key_format=q: the record id; value_format=u: the BSON document
pymongo encoded). Then three rounds, each ended by a checkpoint: a tenth of the
documents updated (same record id, new content), and removals where the record-id rule
is weakest: the table's first and last record, a run of 60 consecutive records (it
spans page boundaries, so pages lose their first or last key) and 20 more at random.
Old pages stay in the file as free blocks until WiredTiger reuses them.

Outputs: OUT_DIR/dbpath/{WiredTiger.wt,_mdb_catalog.wt,collection-7-42.wt};
OUT_DIR/disk.img, the three files laid on a raw image at sector and odd offsets between
random bytes (what a scan of a disk whose dbpath was deleted finds);
OUT_DIR/truth.json: every version ever written, as make-mmapv1-history.py writes it
(state live, superseded or deleted; intact: no damage was done).
"""
import hashlib
import json
import random
import shutil
import struct
import sys
from pathlib import Path

import bson
import wiredtiger
from bson import SON, ObjectId

out = Path(sys.argv[1])
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 2026_11_30)
TABLE = ("type=file,key_format=q,value_format=u,allocation_size=4KB,leaf_page_max=32KB,"
         "prefix_compression=false,checksum=on,block_compressor={}")
NS, IDENT, N = "shop.events", "collection-7-42", 3000


def event(i):
    return SON([("_id", ObjectId(struct.pack(">I", 1_600_000_000 + i * 97) + rng.randbytes(8))),
                ("kind", rng.choice(["view", "click", "buy"])), ("n", i),
                ("payload", rng.randbytes(rng.randint(50, 400)))])


def sha(raw):
    return hashlib.sha256(raw).hexdigest()


def main():
    home = out / "dbpath"
    shutil.rmtree(out, ignore_errors=True)
    home.mkdir(parents=True)
    conn = wiredtiger.wiredtiger_open(str(home), "create,log=(enabled=false),statistics=(none)")
    session = conn.open_session()
    session.create(f"table:{IDENT}", TABLE.format("zlib"))
    cursor = session.open_cursor(f"table:{IDENT}")
    versions = []   # {"sha256", "state"}: every version ever written
    live = {}       # record id -> index in versions
    for rid in range(1, N + 1):
        raw = bson.encode(event(rid))
        cursor[rid] = raw
        versions.append({"sha256": sha(raw), "state": "live"})
        live[rid] = len(versions) - 1
    session.checkpoint()
    for _ in range(3):
        for rid in rng.sample(sorted(live), len(live) // 10):
            doc = bson.decode(cursor[rid], bson.CodecOptions(document_class=SON))
            doc["revision"] = doc.get("revision", 0) + 1
            raw = bson.encode(doc)
            cursor[rid] = raw
            versions[live[rid]]["state"] = "superseded"
            versions.append({"sha256": sha(raw), "state": "live"})
            live[rid] = len(versions) - 1
        keys = sorted(live)
        start = rng.randrange(len(keys) - 60)
        gone = {keys[0], keys[-1], *keys[start:start + 60], *rng.sample(keys, 20)}
        for rid in sorted(gone):
            cursor.set_key(rid)
            cursor.remove()
            versions[live.pop(rid)]["state"] = "deleted"
        session.checkpoint()
    cursor.close()
    session.create("table:_mdb_catalog", TABLE.format("none"))
    catalog = session.open_cursor("table:_mdb_catalog")
    catalog[1] = bson.encode(SON([("md", SON([("ns", NS)])), ("ns", NS), ("ident", IDENT)]))
    catalog.close()
    session.checkpoint()
    session.close()
    conn.close()
    keep = {"WiredTiger.wt", "_mdb_catalog.wt", f"{IDENT}.wt"}
    for f in home.iterdir():
        if f.name not in keep:
            f.unlink() if f.is_file() else shutil.rmtree(f)
    image = bytearray()
    for name in sorted(keep):
        image += rng.randbytes(rng.randrange(1, 64) * 512 + rng.choice([0, 0, 3 * 512, 4096 - 512]))
        image += (home / name).read_bytes()
    image += rng.randbytes(8192)
    (out / "disk.img").write_bytes(bytes(image))
    truth = [{"ns": NS, "state": v["state"], "intact": True, "sha256": v["sha256"]} for v in versions]
    (out / "truth.json").write_text(json.dumps({"versions": truth}))
    print(f"{len(live)} live records, {sum(v['state'] == 'superseded' for v in versions)} superseded "
          f"versions, {sum(v['state'] == 'deleted' for v in versions)} removed", file=sys.stderr)


main()
