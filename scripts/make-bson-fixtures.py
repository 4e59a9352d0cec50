#!/usr/bin/env python3
"""Builds tests/fixtures/bson/: MongoDB documents encoded by pymongo (an encoder
independent of salvagefs), laid out as damaged MMAPv1 data files, plus loose copies,
hostile records, an old dump and a schema file. Deterministic (seeded):

    python3 -m pip install pymongo==4.10.1
    python3 scripts/make-bson-fixtures.py

Outputs
  shop.0, blog.0   MMAPv1-style data files: 8 KiB file header, extents whose header
                   carries the namespace, 16-byte record headers, power-of-two slots.
                   Some documents were updated (grown: the old copy is left as a deleted
                   record, length overwritten with EE EE EE EE), some deleted. Then the
                   files were damaged: 4 KiB blocks overwritten with bytes of an unrelated
                   binary and with random bytes (one document is cut in half), a few bytes
                   flipped, and hostile records planted in free space.
  loose.bin        every live document again, without any MMAPv1 framing, among random
                   bytes: what a raw-disk scan finds when the namespace is lost.
  hostile.bin      hostile records between a few valid documents.
  olddump/         an older mongodump (a subset of the documents, no blog.comments).
  schema.json      a hand-written schema, as in the incident.
  manifest.json    ground truth: for every document, its collection, where its bytes are,
                   whether they survived the damage, and its sha256.
"""
import datetime
import hashlib
import json
import random
import struct
import sys
from pathlib import Path

import bson
from bson import SON, Binary, Code, Decimal128, Int64, ObjectId, Regex, Timestamp

root = Path(__file__).resolve().parent.parent
out = root / "tests" / "fixtures" / "bson"
rng = random.Random(20261122)
UTC = datetime.timezone.utc


def oid(year):
    ts = int(datetime.datetime(year, rng.randint(1, 12), rng.randint(1, 28), tzinfo=UTC).timestamp())
    return ObjectId(struct.pack(">I", ts) + bytes(rng.getrandbits(8) for _ in range(8)))


def when():
    return datetime.datetime(rng.randint(2012, 2025), rng.randint(1, 12), rng.randint(1, 28),
                             rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                             rng.choice([0, 0, 123000, 500000]), tzinfo=UTC)


NAMES = ["Zoë Ångström", "Jürgen Müller", "Łucja Wąs", "山田 太郎", "Renée Dubois", "Søren Kierkegård",
         "Ana Núñez", "Björk Guðmundsdóttir", "Иван Петров", "Ola Nordmann", "محمد علي", "Chloé 🎬"]
WORDS = ("ship anchor sail harbor rum compass treasure island parrot captain crew deck mast "
         "storm wave tide map plank cannon").split()


def words(n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def customer(i):
    return SON([
        ("_id", oid(rng.randint(2013, 2024))),
        ("name", rng.choice(NAMES) + f" #{i}"),
        ("email", f"user{i}@example.org"),
        ("age", rng.randint(18, 90)),
        ("balance", Decimal128(f"{rng.randint(-5000, 500000)}.{rng.randint(0, 99):02d}")),
        ("vip", rng.random() < 0.2),
        ("created", when()),
        ("tags", [rng.choice(WORDS) for _ in range(rng.randint(0, 4))]),
        ("address", SON([("street", words(2)), ("city", rng.choice(["Bergen", "Kraków", "東京", "Lyon"])),
                         ("geo", SON([("lat", rng.uniform(-90, 90)), ("lon", rng.uniform(-180, 180))]))])),
        ("note", None),
    ])


def order(i, customers):
    items = [SON([("sku", f"SKU-{rng.randint(1, 999):03d}"), ("qty", rng.randint(1, 5)),
                  ("price", round(rng.uniform(0.5, 300), 2))]) for _ in range(rng.randint(1, 5))]
    return SON([
        ("_id", oid(rng.randint(2015, 2025))),
        ("customer", rng.choice(customers)["_id"]),
        ("items", items),
        ("total", Int64(rng.randint(0, 10**12))),
        ("status", rng.choice(["new", "paid", "shipped", "returned"])),
        ("placed", when()),
        ("ts", Timestamp(rng.randint(1_400_000_000, 1_700_000_000), rng.randint(1, 50))),
        ("receipt", Binary(bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 40))), rng.choice([0, 5, 128]))),
        ("match", Regex(rng.choice(["^SKU-\\d+$", "pirate", "a.b"]), rng.choice(["", "i", "im"]))),
        ("big", Int64(rng.choice([1, -7, 2**40, -(2**62)]))),
    ])


def nested(depth):
    d = SON([("level", depth)])
    for k in range(depth - 1, 0, -1):
        d = SON([("level", k), ("child", d)])
    return d


def post(i):
    body_words = 40_000 if i == 7 else rng.randint(30, 800)  # post 7 is ~250 KB
    return SON([
        ("_id", Int64(1000 + i)),
        ("title", words(rng.randint(2, 8)).title()),
        ("body", words(body_words)),
        ("published", when()),
        ("score", rng.choice([rng.uniform(-1, 1), float("inf"), 0.0, 1e300, -2.5e-300])),
        ("meta", nested(rng.randint(1, 40))),
        ("render", Code("function(x) { return x * k; }", {"k": rng.randint(1, 9)})),
    ])


def comment(i, posts):
    return SON([
        ("_id", f"c-{i:05d}/{rng.choice(WORDS)}"),
        ("post", rng.choice(posts)["_id"]),
        ("author", rng.choice(NAMES)),
        ("text", words(rng.randint(3, 60))),
        ("likes", [rng.randint(0, 100) for _ in range(rng.randint(0, 12))]),
    ])


customers = [customer(i) for i in range(220)]
orders = [order(i, customers) for i in range(200)]
posts = [post(i) for i in range(30)]
comments = [comment(i, posts) for i in range(160)]
collections = {"shop.customers": customers, "shop.orders": orders,
               "blog.posts": posts, "blog.comments": comments}

# ---------------------------------------------------------------- MMAPv1 layout
EXTENT_HEADER = 176
RECORD_HEADER = 16


def quantize(n):
    size = 32
    while size < n:
        size *= 2
    return size


class DataFile:
    """One `<db>.<n>` file: an 8 KiB header, then extents of records."""

    def __init__(self, name, fileno, size):
        self.name, self.fileno = name, fileno
        self.buf = bytearray(size)
        struct.pack_into("<iii", self.buf, 0, 4, 22, size)  # version, minor, fileLength
        self.next_extent = 8192
        self.records = []  # dicts: ns, slot, doc, state

    def extent(self, ns, length):
        ofs = self.next_extent
        self.next_extent += length
        struct.pack_into("<I", self.buf, ofs, 0x41424344)
        struct.pack_into("<ii", self.buf, ofs + 4, self.fileno, ofs)  # myLoc
        struct.pack_into("<iiii", self.buf, ofs + 12, -1, 0, -1, 0)  # xnext, xprev (null)
        name = ns.encode()
        self.buf[ofs + 28:ofs + 28 + len(name)] = name
        struct.pack_into("<i", self.buf, ofs + 156, length)
        return Extent(self, ns, ofs, length)


class Extent:
    def __init__(self, file, ns, ofs, length):
        self.file, self.ns, self.ofs, self.length = file, ns, ofs, length
        self.cursor = ofs + EXTENT_HEADER
        self.prev = -1

    def insert(self, doc):
        data = bson.encode(doc)
        slot = quantize(RECORD_HEADER + len(data))
        if self.cursor + slot > self.ofs + self.length:
            raise RuntimeError(f"extent {self.ns} full")
        at = self.cursor
        self.cursor += slot
        struct.pack_into("<iiii", self.file.buf, at, slot, self.ofs, -1, self.prev)
        if self.prev != -1:
            struct.pack_into("<i", self.file.buf, self.prev + 8, at)
        self.prev = at
        self.file.buf[at + RECORD_HEADER:at + RECORD_HEADER + len(data)] = data
        rec = {"ns": self.ns, "file": self.file.name, "offset": at + RECORD_HEADER,
               "bytes": data, "state": "live", "_id": doc["_id"]}
        self.file.records.append(rec)
        return rec

    def delete(self, rec):
        """MMAPv1 deleteRecord: the header becomes a DeletedRecord and the first four
        bytes of the data are scribbled with 0xEE; the rest of the document stays."""
        at = rec["offset"] - RECORD_HEADER
        struct.pack_into("<ii", self.file.buf, at + 8, -1, 0)  # nextDeleted (null DiskLoc)
        self.file.buf[rec["offset"]:rec["offset"] + 4] = b"\xee" * 4
        rec["state"] = "deleted"


shop = DataFile("shop.0", 0, 1 << 20)
blog = DataFile("blog.0", 0, 1 << 20)
ext_customers = shop.extent("shop.customers", 224 << 10)
ext_index = shop.extent("shop.customers.$_id_", 16 << 10)  # an index: b-tree buckets, no documents
ext_orders = shop.extent("shop.orders", 256 << 10)
ext_posts = blog.extent("blog.posts", 640 << 10)
ext_comments = blog.extent("blog.comments", 96 << 10)
rng_bytes = lambda n: bytes(rng.getrandbits(8) for _ in range(n))  # noqa: E731
shop.buf[ext_index.ofs + EXTENT_HEADER:ext_index.ofs + (16 << 10)] = rng_bytes((16 << 10) - EXTENT_HEADER)

placed = {}
for ext, docs in [(ext_customers, customers), (ext_orders, orders), (ext_posts, posts),
                  (ext_comments, comments)]:
    for d in docs:
        placed[(ext.ns, str(d["_id"]))] = ext.insert(d)

# Updates that outgrow their slot: the old copy stays behind as a deleted record.
for ext, docs, ns in [(ext_customers, customers, "shop.customers"), (ext_orders, orders, "shop.orders")]:
    for d in rng.sample(docs, 12):
        old = placed[(ns, str(d["_id"]))]
        ext.delete(old)
        d["updated"] = when()
        d["history"] = [words(6) for _ in range(8)]
        placed[(ns, str(d["_id"]))] = ext.insert(d)
# Plain deletes: the zombies of the incident.
for ext, docs, ns in [(ext_customers, customers, "shop.customers"), (ext_comments, comments, "blog.comments")]:
    for d in rng.sample(docs, 8):
        rec = placed.pop((ns, str(d["_id"])))
        if rec["state"] == "live":
            ext.delete(rec)
            docs.remove(d)

# ---------------------------------------------------------------- hostile records
def el(t, key, value):
    return bytes([t]) + key + b"\x00" + value


def doc_bytes(body):
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def deep(levels):
    inner = doc_bytes(el(0x10, b"x", struct.pack("<i", 1)))
    for _ in range(levels):
        inner = doc_bytes(el(0x03, b"a", inner))
    return doc_bytes(el(0x10, b"_id", struct.pack("<i", 7)) + el(0x03, b"n", inner))


ID = el(0x07, b"_id", bytes(12))
hostile = [
    struct.pack("<i", 0x7FFFFFFF) + ID + rng_bytes(64),                          # absurd length
    deep(10_000),                                                                 # 10 000 levels
    doc_bytes(ID + el(0x02, b"k\xffy", struct.pack("<i", 2) + b"v\x00")),         # bad UTF-8 key
    doc_bytes(ID + el(0x02, b"s", struct.pack("<i", 3) + b"\xc3\x28\x00")),      # bad UTF-8 string
    doc_bytes(ID + el(0x42, b"t", b"\x00" * 8)),                                  # wrong type code
    doc_bytes(ID + el(0x10, b"i", struct.pack("<i", 5)))[:-1] + b"\x07",          # no terminator
    doc_bytes(el(0x07, b"_id", bytes(12)) + el(0x04, b"arr",
              doc_bytes(el(0x10, b"1", b"\x01\x00\x00\x00") + el(0x10, b"0", b"\x02\x00\x00\x00")))),  # keys out of order
    doc_bytes(ID + el(0x10, b"a", b"\x01\x00\x00\x00") + el(0x10, b"a", b"\x02\x00\x00\x00")),  # duplicate key
    doc_bytes(ID + el(0x02, b"s", struct.pack("<i", 1000) + b"abc\x00")),        # string past its document
    doc_bytes(ID + el(0x08, b"b", b"\x07")),                                      # bool that is not 0/1
]
past_end = struct.pack("<i", 4096) + ID + rng_bytes(40)                          # length past the end

# ---------------------------------------------------------------- damage
binary = Path(sys.executable).resolve().read_bytes()
damage_log = []


def overwrite(df, at, data, why):
    df.buf[at:at + len(data)] = data
    damage_log.append({"file": df.name, "offset": at, "bytes": len(data), "what": why})


# A block of an unrelated binary and a block of random bytes over the customers, one
# block that starts in the middle of an order (cutting it in half), random in the posts.
overwrite(shop, ext_customers.ofs + 5 * 4096, binary[200_000:204_096], "4 KiB of an ELF binary")
overwrite(shop, ext_customers.ofs + 11 * 4096, rng_bytes(4096), "4 KiB of random bytes")
cut = next(r for r in shop.records if r["ns"] == "shop.orders" and r["state"] == "live"
           and r["offset"] > ext_orders.ofs + 20_000)
overwrite(shop, cut["offset"] + len(cut["bytes"]) // 2, rng_bytes(4096), "random bytes cutting an order in half")
overwrite(blog, ext_posts.ofs + 30 * 4096, binary[300_000:304_096], "4 KiB of an ELF binary")
for r in rng.sample([r for r in blog.records if r["ns"] == "blog.comments" and r["state"] == "live"], 3):
    at = r["offset"] + len(r["bytes"]) - 8
    blog.buf[at] ^= 0x5A
    damage_log.append({"file": blog.name, "offset": at, "bytes": 1, "what": "flipped byte"})
free = shop.next_extent + 4096
for h in hostile:
    overwrite(shop, free, h, "hostile record")
    free += len(h) + 64
overwrite(shop, len(shop.buf) - len(past_end), past_end, "hostile record: length past the end")
shop.buf[len(shop.buf) - 70_000:len(shop.buf) - 70_000 + 8192] = shop.buf[ext_customers.ofs + 4096:ext_customers.ofs + 12288]
damage_log.append({"file": "shop.0", "offset": len(shop.buf) - 70_000, "bytes": 8192,
                   "what": "a stray copy of 8 KiB of the customers extent (duplicates)"})

# ---------------------------------------------------------------- outputs
out.mkdir(parents=True, exist_ok=True)
files = {"shop.0": shop, "blog.0": blog}
manifest = {"documents": [], "damage": damage_log}
for df in files.values():
    (out / df.name).write_bytes(df.buf)
    for r in df.records:
        now = bytes(df.buf[r["offset"]:r["offset"] + len(r["bytes"])])
        if r["state"] == "deleted":
            survived = now[4:] == r["bytes"][4:]
        else:
            survived = now == r["bytes"]
        manifest["documents"].append({
            "ns": r["ns"], "file": df.name, "offset": r["offset"], "len": len(r["bytes"]),
            "state": r["state"], "intact": survived, "id": str(r["_id"]),
            "sha256": hashlib.sha256(r["bytes"]).hexdigest()})

loose = bytearray()
manifest["loose"] = []
for ns, docs in collections.items():
    for d in docs:
        loose += rng_bytes(rng.choice([0, 0, 7, 100, 3000]))
        data = bson.encode(d)
        manifest["loose"].append({"ns": ns, "offset": len(loose), "sha256": hashlib.sha256(data).hexdigest()})
        loose += data
(out / "loose.bin").write_bytes(bytes(loose))

h = bytearray()
for i, x in enumerate(hostile):
    h += rng_bytes(50) + x + bson.encode(comments[i])
h += past_end
(out / "hostile.bin").write_bytes(bytes(h))

for ns, docs in [("shop.customers", customers[:40]), ("shop.orders", orders[:40]), ("blog.posts", posts[:10])]:
    db, coll = ns.split(".", 1)
    (out / "olddump" / db).mkdir(parents=True, exist_ok=True)
    (out / "olddump" / db / f"{coll}.bson").write_bytes(b"".join(bson.encode(d) for d in docs))

schema = {
    "shop.customers": ["_id", "name", "email", "age", "balance", "vip", "created", "tags", "address", "note"],
    "shop.people": ["_id", "name", "email"],
    "shop.orders": ["_id", "customer", "items", "total", "status", "placed"],
    "blog.posts": ["_id", "title", "body", "published"],
}
(out / "schema.json").write_text(json.dumps(schema, indent=2) + "\n")
manifest["hostile_bin_valid"] = [hashlib.sha256(bson.encode(comments[i])).hexdigest() for i in range(len(hostile))]
(out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
live = [d for d in manifest["documents"] if d["state"] == "live"]
print(f"{len(live)} live documents, {sum(d['intact'] for d in live)} intact; "
      f"{len(manifest['documents']) - len(live)} deleted records", file=sys.stderr)
