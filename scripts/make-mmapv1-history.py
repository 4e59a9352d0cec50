#!/usr/bin/env python3
"""Writes MMAPv1 data files with a realistic history, and the truth about them.

    python3 scripts/make-mmapv1-history.py OUT_DIR [SEED]

No MMAPv1 mongod can be had offline, so this follows MMAPv1's own algorithms as
mongod's source code (src/mongo/db/storage/mmap_v1) lays them out, with documents
encoded by pymongo:

* a data file `<db>.<n>` is an 8 KiB file header, then extents; an extent header
  (magic, myLoc, xnext, xprev, the namespace, length, firstRecord, lastRecord: 176
  bytes) heads records of 16-byte headers (lengthWithHeaders, extentOfs, nextOfs,
  prevOfs) in power-of-two slots;
* an insert takes a slot from the collection's free list (same bucket) or the extent's
  unused tail and links the record at the end of the extent's record list;
* a delete unlinks the record (its neighbours' nextOfs/prevOfs and the extent's
  firstRecord/lastRecord are rewritten) and pushes it on the free list through the last
  8 bytes of its header (nextDeleted); some deletes scribble EE EE EE EE over the
  document's length, most leave the document as it was (the incident's zombies);
* an update that fits its slot rewrites the document in place; one that grows moves it
  (delete, then insert).

Documents hold what real databases hold and plausibility rules dislike: ObjectIds from
before 2009 (imported ids, from_datetime of old dates, sentinels), duplicate keys and
arrays with odd keys (written as raw bytes, as old drivers could). Then the files are
damaged: 2% of the 4 KiB blocks past the first extent are overwritten with random bytes,
two extent headers are overwritten (one of products; the only one of archive, whose
documents have the same fields as products), and one file is truncated. The namespace
file shop.ns (mongod's hash table of namespaces with each one's first and last extent)
is written intact.

OUT_DIR/truth.json lists every version of every record ever written: namespace, file,
offset, bytes (sha256), whether it is live, deleted or superseded at the end, and
whether its bytes survived the damage.
"""
import datetime
import hashlib
import json
import random
import struct
import sys
from pathlib import Path

import bson
from bson import SON, ObjectId

EXTENT_HEADER, RECORD_HEADER = 176, 16
out = Path(sys.argv[1])
rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 2026_11_30)
UTC = datetime.timezone.utc


def when(lo=2012, hi=2025):
    return datetime.datetime(rng.randint(lo, hi), rng.randint(1, 12), rng.randint(1, 28),
                             rng.randint(0, 23), tzinfo=UTC)


def oid_at(moment):
    """An ObjectId as a driver makes it: the time, then 8 random bytes."""
    return ObjectId(struct.pack(">I", int(moment.timestamp())) + rng.randbytes(8))


def new_id():
    return oid_at(when(2014, 2025))


def old_id(unique=False):
    """Ids plausibility rules dislike: dated before 2009 (imported, or made by
    from_datetime of an old date), made from a hash, or (not as an _id) a sentinel."""
    makers = [lambda: oid_at(when(1995, 2008)),
              lambda: ObjectId(hashlib.md5(rng.randbytes(8)).digest()[:12])]
    if not unique:
        makers += [lambda: ObjectId.from_datetime(when(1995, 2008)),
                   lambda: ObjectId("000000000000000000000001")]
    return rng.choice(makers)()


def quantize(n):
    size = 32
    while size < n:
        size *= 2
    return size


class DataFile:
    def __init__(self, name, fileno, size):
        self.name, self.fileno = name, fileno
        self.buf = bytearray(size)
        struct.pack_into("<iii", self.buf, 0, 4, 22, size)
        self.next_extent = 8192

    def i32(self, at):
        return struct.unpack_from("<i", self.buf, at)[0]

    def put(self, at, fmt, *values):
        struct.pack_into(fmt, self.buf, at, *values)


class Extent:
    """An extent: its header and its own doubly linked list of records."""

    def __init__(self, df, ns, length, prev):
        self.df, self.ofs = df, df.next_extent
        if self.ofs + length > len(df.buf):
            raise RuntimeError(f"{df.name} full")
        df.next_extent += length
        self.end, self.tail = self.ofs + length, self.ofs + EXTENT_HEADER
        df.put(self.ofs, "<I", 0x41424344)
        df.put(self.ofs + 4, "<ii", df.fileno, self.ofs)           # myLoc
        df.put(self.ofs + 12, "<ii", -1, 0)                         # xnext
        df.put(self.ofs + 20, "<ii", -1 if prev is None else df.fileno, 0 if prev is None else prev.ofs)
        if prev is not None:
            df.put(prev.ofs + 12, "<ii", df.fileno, self.ofs)
        df.buf[self.ofs + 28:self.ofs + 28 + len(ns)] = ns.encode()
        df.put(self.ofs + 156, "<i", length)
        df.put(self.ofs + 160, "<iiii", -1, 0, -1, 0)              # firstRecord, lastRecord

    def first(self):
        return None if self.df.i32(self.ofs + 160) == -1 else self.df.i32(self.ofs + 164)

    def last(self):
        return None if self.df.i32(self.ofs + 168) == -1 else self.df.i32(self.ofs + 172)

    def set(self, at, ofs):
        self.df.put(self.ofs + at, "<ii", -1 if ofs is None else self.df.fileno, 0 if ofs is None else ofs)

    def link(self, at):
        """_addRecordToRecListInExtent: the record goes at the end of the list."""
        last = self.last()
        self.df.put(at + 8, "<ii", -1, -1 if last is None else last)
        if last is None:
            self.set(160, at)
        else:
            self.df.put(last + 8, "<i", at)
        self.set(168, at)

    def unlink(self, at):
        df = self.df
        nxt, prv = df.i32(at + 8), df.i32(at + 12)
        if prv != -1:
            df.put(prv + 8, "<i", nxt)
        if nxt != -1:
            df.put(nxt + 12, "<i", prv)
        if self.first() == at:
            self.set(160, None if nxt == -1 else nxt)
        if self.last() == at:
            self.set(168, None if prv == -1 else prv)


class Collection:
    """A namespace: its extents (a new one when the last is full) and MMAPv1's free
    lists, one per bucket (slot size)."""

    def __init__(self, df, ns, extent_len):
        self.df, self.ns, self.extent_len = df, ns, extent_len
        self.extents = [Extent(df, ns, extent_len, None)]
        self.free = {}

    def extent_of(self, at):
        return next(e for e in self.extents if e.ofs <= at < e.end)

    def insert(self, data):
        slot = quantize(RECORD_HEADER + len(data))
        if self.free.get(slot):
            at = self.free[slot].pop()
        else:
            ext = self.extents[-1]
            if ext.tail + slot > ext.end:
                ext = Extent(self.df, self.ns, max(self.extent_len, 2 * slot), ext)
                self.extents.append(ext)
            at, ext.tail = ext.tail, ext.tail + slot
        ext = self.extent_of(at)
        self.df.put(at, "<ii", slot, ext.ofs)
        ext.link(at)
        self.df.buf[at + RECORD_HEADER:at + RECORD_HEADER + len(data)] = data
        return at

    def delete(self, at, mark):
        """deleteRecord: unlink, then push on the bucket's free list through the last 8
        bytes of the header (nextDeleted); sometimes scribble EE over the length."""
        df = self.df
        self.extent_of(at).unlink(at)
        bucket = self.free.setdefault(df.i32(at), [])
        head = bucket[-1] if bucket else None
        df.put(at + 8, "<ii", -1 if head is None else df.fileno, 0 if head is None else head)
        bucket.append(at)
        if mark:
            df.buf[at + RECORD_HEADER:at + RECORD_HEADER + 4] = b"\xee" * 4

    def update_in_place(self, at, data):
        self.df.buf[at + RECORD_HEADER:at + RECORD_HEADER + len(data)] = data


def raw_doc(elements):
    body = b"".join(elements) + b"\x00"
    return struct.pack("<i", 4 + len(body)) + body


def el(t, key, value):
    return bytes([t]) + key.encode() + b"\x00" + value


def odd_doc(i):
    """A document a strict validator refuses and mongod stores: raw bytes."""
    oid = el(0x07, "_id", new_id().binary)
    if i % 2:
        n = el(0x10, "n", struct.pack("<i", i))
        return raw_doc([oid, n, el(0x02, "k", struct.pack("<i", 2) + b"a\x00"), n])
    arr = raw_doc([el(0x10, "1", struct.pack("<i", 1)), el(0x10, "0", struct.pack("<i", 0))])
    return raw_doc([oid, el(0x04, "v", arr), el(0x10, "n", struct.pack("<i", i))])


def make(kind, i):
    if kind == "users":
        return SON([("_id", new_id() if i % 3 else old_id(unique=True)), ("name", f"user {i}"),
                    ("email", f"u{i}@example.org"), ("joined", when())])
    if kind == "orders":
        return SON([("_id", new_id()), ("user_id", old_id() if i % 3 == 0 else new_id()),
                    ("items", [SON([("sku", f"S{rng.randint(1, 99)}"), ("ref", old_id())])
                               for _ in range(rng.randint(1, 3))]),
                    ("total", rng.randint(1, 10_000)), ("status", "new")])
    if kind in ("products", "archive"):
        return SON([("_id", new_id()), ("sku", f"{kind[:4].upper()}-{i}"), ("title", "thing " * rng.randint(1, 6)),
                    ("price", rng.randint(1, 500)), ("stock", rng.randint(0, 50))])
    return odd_doc(i)


def ns_hash(name):
    """Namespace::hash(): x * 131 + each byte (a C char, signed), kept positive."""
    x = 0
    for b in name.encode():
        x = (x * 131 + (b - 256 if b > 127 else b)) & 0xFFFFFFFF
    return (x & 0x7FFFFFFF) | 0x8000000


def namespace_file(colls, size=16 << 20):
    """<db>.ns as mongod keeps it: a hash table of 628-byte nodes (hash, the name in 128
    bytes, NamespaceDetails: firstExtent, lastExtent, the 19 free-list heads, data size
    and record count...), placed at hash % n with linear probing."""
    node_len = 628
    n = size // node_len
    buf = bytearray(size)
    names = ["shop.system.namespaces", "shop.system.indexes"]
    for c in colls.values():
        names += [c.ns, c.ns + ".$_id_"]
    for name in names:
        slot = ns_hash(name) % n
        while struct.unpack_from("<i", buf, slot * node_len)[0] != 0:
            slot = (slot + 1) % n
        at = slot * node_len
        struct.pack_into("<i", buf, at, ns_hash(name))
        buf[at + 4:at + 4 + len(name)] = name.encode()
        details = at + 132
        c = next((c for c in colls.values() if c.ns == name), None)
        if c is None:
            struct.pack_into("<iiii", buf, details, -1, 0, -1, 0)
            continue
        fileno = c.df.fileno
        struct.pack_into("<iiii", buf, details, fileno, c.extents[0].ofs, fileno, c.extents[-1].ofs)
        for bucket in range(19):
            heads = c.free.get(32 << bucket)
            struct.pack_into("<ii", buf, details + 16 + 8 * bucket,
                             fileno if heads else -1, heads[-1] if heads else 0)
    return bytes(buf)


def main():
    out.mkdir(parents=True, exist_ok=True)
    shop = DataFile("shop.0", 0, 3 << 20)
    other = DataFile("shop.1", 1, 1 << 20)
    colls = {"users": Collection(shop, "shop.users", 128 << 10),
             "orders": Collection(shop, "shop.orders", 128 << 10),
             "products": Collection(shop, "shop.products", 64 << 10),
             # Products taken off sale: the same field set as products, one extent.
             "archive": Collection(shop, "shop.archive", 128 << 10),
             "odd": Collection(other, "shop.odd", 16 << 10)}
    versions = []   # every version of every record: the truth
    live = {}       # (kind, i) -> index in versions

    def write(kind, i, data):
        c = colls[kind]
        at = c.insert(data)
        versions.append({"ns": c.ns, "file": c.df.name, "offset": at + RECORD_HEADER,
                         "bytes": data, "state": "live", "coll": kind})
        live[(kind, i)] = len(versions) - 1

    counts = {"users": 900, "orders": 1600, "products": 700, "archive": 200, "odd": 400}
    for kind, n in counts.items():
        for i in range(n):
            doc = make(kind, i)
            write(kind, i, doc if kind == "odd" else bson.encode(doc))
    # History: updates in place, growing updates that move, deletes.
    for _ in range(2500):
        kind = rng.choice(["users", "orders", "products"])
        keys = [k for k in live if k[0] == kind]
        key = rng.choice(keys)
        v = versions[live[key]]
        c = colls[kind]
        at = v["offset"] - RECORD_HEADER
        action = rng.random()
        if action < 0.25:
            c.delete(at, mark=rng.random() < 0.3)
            v["state"] = "deleted"
            del live[key]
            continue
        doc = bson.decode(v["bytes"], codec_options=bson.CodecOptions(document_class=SON))
        if action < 0.6:
            doc["status" if kind == "orders" else "email" if kind == "users" else "stock"] = \
                rng.choice(["paid", "sent", "x"]) if kind != "products" else rng.randint(0, 50)
        else:
            doc["history"] = ["change " * rng.randint(5, 30) for _ in range(rng.randint(1, 4))]
        data = bson.encode(doc)
        if RECORD_HEADER + len(data) <= c.df.i32(at):
            c.update_in_place(at, data)
            v["state"] = "overwritten"
            versions.append({"ns": c.ns, "file": c.df.name, "offset": v["offset"], "bytes": data,
                             "state": "live", "coll": kind})
            live[key] = len(versions) - 1
        else:
            c.delete(at, mark=rng.random() < 0.3)
            v["state"] = "superseded"
            write(kind, key[1], data)

    ns_file = namespace_file(colls)
    damage = []
    # One extent header of products and archive's only one overwritten: their records
    # lose their namespace (products' neighbours still link to it, archive's is named by
    # the namespace file alone; by its field set it would go to products).
    for kind, ext in (("products", colls["products"].extents[1]), ("archive", colls["archive"].extents[0])):
        shop.buf[ext.ofs:ext.ofs + 4096] = bytes(rng.getrandbits(8) for _ in range(4096))
        damage.append({"file": "shop.0", "offset": ext.ofs, "bytes": 4096, "what": f"{kind} extent header"})
    # 2% of the 4 KiB blocks past the first extent's header.
    for df in (shop, other):
        blocks = list(range(3, len(df.buf) // 4096))
        for b in rng.sample(blocks, max(1, len(blocks) // 50)):
            df.buf[b * 4096:(b + 1) * 4096] = bytes(rng.getrandbits(8) for _ in range(4096))
            damage.append({"file": df.name, "offset": b * 4096, "bytes": 4096, "what": "random block"})
    # shop.1 is cut short, in the middle of its records.
    cut = colls["odd"].extents[-1].tail - 3000
    del other.buf[cut:]
    damage.append({"file": "shop.1", "offset": cut, "what": "truncated"})

    files = {"shop.0": shop, "shop.1": other}
    truth = []
    for v in versions:
        df = files[v["file"]]
        now = bytes(df.buf[v["offset"]:v["offset"] + len(v["bytes"])])
        intact = now == v["bytes"] if v["state"] != "deleted" else now[4:] == v["bytes"][4:]
        if v["state"] == "overwritten":
            intact = False  # its bytes were replaced by the next version
        truth.append({"ns": v["ns"], "file": v["file"], "offset": v["offset"], "len": len(v["bytes"]),
                      "state": v["state"], "intact": intact,
                      "sha256": hashlib.sha256(v["bytes"]).hexdigest()})
    for df in files.values():
        (out / df.name).write_bytes(bytes(df.buf))
    (out / "shop.ns").write_bytes(ns_file)
    (out / "truth.json").write_text(json.dumps({"versions": truth, "damage": damage}, indent=0))
    live_n = sum(t["state"] == "live" for t in truth)
    print(f"{live_n} live, {sum(t['state'] == 'live' and t['intact'] for t in truth)} intact; "
          f"{sum(t['state'] in ('deleted', 'superseded') for t in truth)} deleted or superseded",
          file=sys.stderr)


main()
