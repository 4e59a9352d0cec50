#!/usr/bin/env python3
"""Checks a salvagefs mount's /mongo tree with pymongo, an implementation independent
of salvagefs. Called by tests/mongo.rs:

    check_mongo.py MOUNT MANIFEST MODE      MODE: disk | schema | schema-from | auto

Exits non-zero with a message on the first failed check; prints the recovery rate.
"""
import json
import os
import sys
from pathlib import Path

import bson
from bson import json_util
from bson_files import OPTS, RELAXED, sha, split

mount, manifest_path, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
manifest = json.loads(manifest_path.read_text())
mongo = mount / "mongo"


def fail(msg):
    sys.exit(f"check_mongo ({mode}): {msg}")



def collections(root):
    """{ns: [raw documents]} of every <db>/<coll>.bson under root."""
    found = {}
    for db in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(db.glob("*.bson")):
            raw = f.read_bytes()
            docs = bson.decode_all(raw, OPTS)  # raises on anything invalid
            parts = split(raw)
            if len(parts) != len(docs):
                fail(f"{f}: pymongo decoded {len(docs)} documents, lengths say {len(parts)}")
            found[f"{db.name}.{f.stem}"] = parts
    return found



# Every file: ls -l size equals the bytes read; two reads agree.
for dirpath, _, files in os.walk(mongo):
    for name in files:
        p = Path(dirpath) / name
        first = p.read_bytes()
        if os.stat(p).st_size != len(first):
            fail(f"{p}: stat says {os.stat(p).st_size} bytes, read gave {len(first)}")
        if p.read_bytes() != first:
            fail(f"{p}: two reads differ")

live = collections(mongo / "dump")
for ns, docs in live.items():
    db, coll = ns.split(".", 1)
    # .json: one relaxed Extended JSON document per line, equal to pymongo's rendering.
    lines = (mongo / "json" / db / f"{coll}.json").read_text().splitlines()
    if len(lines) != len(docs):
        fail(f"{ns}: {len(lines)} JSON lines for {len(docs)} documents")
    for line, raw in zip(lines, docs):
        expected = json.loads(json_util.dumps(bson.decode(raw, OPTS), json_options=RELAXED))
        if json.loads(line) != expected:
            fail(f"{ns}: JSON line differs from pymongo's\n ours: {line[:300]}\n them: {json.dumps(expected)[:300]}")
    per_doc = sorted((mongo / "docs" / db / coll).glob("*.json"))
    if len(per_doc) != len(docs):
        fail(f"{ns}: {len(per_doc)} files in docs/ for {len(docs)} documents")
    ids = sorted(json.dumps(json.loads(p.read_text())["_id"]) for p in per_doc)
    want = sorted(json.dumps(json.loads(json_util.dumps(bson.decode(r, OPTS), json_options=RELAXED))["_id"]) for r in docs)
    if ids != want:
        fail(f"{ns}: docs/ holds other _ids than the dump")
    meta = json.loads((mongo / "dump" / db / f"{coll}.metadata.json").read_text())
    if meta["collectionName"] != coll:
        fail(f"{ns}: metadata names {meta['collectionName']}")

summary = (mongo / "summary.tsv").read_text().splitlines()
if summary[0].split("\t")[:3] != ["collection", "documents", "duplicates"] or len(summary) != len(live) + 1:
    fail(f"summary.tsv does not list the {len(live)} collections")

where = {sha(raw): ns for ns, docs in live.items() for raw in docs}
if mode == "disk":
    docs = manifest["documents"]
    lives = [d for d in docs if d["state"] == "live"]
    intact = [d for d in lives if d["intact"]]
    for d in intact:
        if where.get(d["sha256"]) != d["ns"]:
            fail(f"intact {d['ns']} document at {d['file']}:{d['offset']} is in {where.get(d['sha256'])}")
    deleted = collections(mongo / "deleted" / "dump")
    gone = {sha(raw): ns for ns, ds in deleted.items() for raw in ds}
    for d in docs:
        if d["state"] == "deleted" and d["intact"]:
            if gone.get(d["sha256"]) != d["ns"]:
                fail(f"deleted record {d['file']}:{d['offset']} is not under deleted/ in {d['ns']}")
            if d["sha256"] in where:
                fail(f"deleted record {d['file']}:{d['offset']} is among the live documents")
    # Updated records: the old copy is deleted, the new one live; both under conflicts/.
    updated = ({(d["ns"], d["id"]) for d in docs if d["state"] == "deleted" and d["intact"]}
               & {(d["ns"], d["id"]) for d in intact})
    for ns, oid in updated:
        db, coll = ns.split(".", 1)
        versions = list((mongo / "conflicts" / db / coll / oid).glob("*.json"))
        if len(versions) < 2 or not any(v.name.endswith("-chosen.json") for v in versions):
            fail(f"{ns} {oid}: updated record without its versions under conflicts/")
    print(f"recovery: {len(intact)} of {len(lives)} live documents survived the damage; "
          f"all {len(intact)} recovered byte-identical ({100 * len(intact) / len(lives):.1f}% of the data)")
else:
    loose = manifest["loose"]
    for d in loose:
        ns = where.get(d["sha256"])
        if mode in ("schema", "schema-from"):
            want = d["ns"] if d["ns"] != "blog.comments" else "recovered._unclassified"
            if ns != want:
                fail(f"{d['ns']} document at loose.bin:{d['offset']} is in {ns}, not {want}")
        elif ns is None or not ns.startswith("recovered.auto_"):
            fail(f"{d['ns']} document at loose.bin:{d['offset']} is in {ns}")
    if mode == "auto":
        for ns, docs in live.items():
            shapes = {tuple(bson.decode(r, OPTS).keys()) for r in docs}
            if len(shapes) != 1:
                fail(f"{ns} mixes field sets {shapes}")
    print(f"{mode}: {len(loose)} loose documents classified as expected into {len(live)} collections")
