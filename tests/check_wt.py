#!/usr/bin/env python3
"""Checks a salvagefs mount of WiredTiger files against tests/fixtures/wt/manifest.json
with pymongo, an implementation independent of salvagefs. Called by tests/wiredtiger.rs:

    check_wt.py MOUNT MANIFEST NAMING      NAMING: catalog | schema | file

catalog: collections must be named as mongod's catalog names them (shop.customers...);
schema:  the catalog was missing, a schema file names them the same;
file:    the catalog was missing, each file's documents must form one collection
         named after the file (recovered.collection-...).
Exits non-zero with a message on the first failed check; prints what it verified.
"""
import json
import os
import sys
from pathlib import Path

import bson
from bson import json_util
from bson_files import OPTS, RELAXED, sha, split

mount, manifest, naming = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text()), sys.argv[3]
mongo = mount / "mongo"


def fail(msg):
    sys.exit(f"check_wt ({naming}): {msg}")




summary = (mongo / "summary.tsv").read_text()
checked = 0
for ns, truth in manifest["collections"].items():
    name = f"recovered.{truth['ident']}" if naming == "file" else ns
    db, coll = name.split(".", 1)
    line = next((l for l in summary.splitlines() if l.startswith(name + "\t")), None)
    if line is None or not line.endswith("\t" + naming):
        fail(f"{name} not named by {naming}:\n{summary}")
    dump = mongo / "dump" / db / f"{coll}.bson"
    raw = dump.read_bytes()
    if os.stat(dump).st_size != len(raw):
        fail(f"{dump}: stat and read disagree")
    decoded = bson.decode_all(raw, OPTS)  # raises on anything invalid
    docs = split(raw)
    if len(docs) != len(decoded):
        fail(f"{dump}: pymongo decoded {len(decoded)} documents, lengths say {len(docs)}")
    got = {sha(d) for d in docs}
    live, removed, replaced = set(truth["live"]), set(truth["removed"]), set(truth["replaced"])
    if missing := live - got:
        fail(f"{name}: {len(missing)} of {len(live)} live documents missing")
    # Replaced versions never come back as live (a newer write_gen holds the record),
    # nor do removed records: a newer page covering their record id lacks them.
    if stale := got & replaced:
        fail(f"{name}: {len(stale)} replaced versions served as live")
    if zombies := got & removed:
        fail(f"{name}: {len(zombies)} removed records served as live")
    if strange := got - live:
        fail(f"{name}: {len(strange)} documents that were never written")
    gone = mongo / "deleted" / "dump" / db / f"{coll}.bson"
    deleted = {sha(d) for d in split(gone.read_bytes())} if gone.exists() else set()
    if deleted != removed:
        fail(f"{name}: deleted/ holds {len(deleted & removed)} of {len(removed)} removed records "
             f"and {len(deleted - removed)} others")
    for overflow in truth["overflow"]:
        if overflow not in got:
            fail(f"{name}: overflow-page document {overflow[:12]} missing")
    # Older versions are listed under conflicts/<_id>/, beside the chosen one: the
    # newest, which is the one in the collection.
    live_json = {}
    for raw_doc in docs:
        doc = bson.decode(raw_doc, OPTS)
        live_json[str(doc["_id"])] = json.loads(json_util.dumps(doc, json_options=RELAXED))
    conflicts = mongo / "conflicts" / db / coll
    listed = sorted(conflicts.iterdir()) if conflicts.exists() else []
    if not listed:
        fail(f"{name}: no conflicts listed, though records were rewritten")
    for d in listed:
        chosen = [f for f in d.iterdir() if f.name.endswith("-chosen.json")]
        if len(chosen) != 1 or len(list(d.iterdir())) < 2:
            fail(f"{d}: expected one chosen version among several")
        if json.loads(chosen[0].read_text()) != live_json.get(d.name):
            fail(f"{d}: the chosen version is not the one in the collection")
    # .json: one relaxed Extended JSON line per document, as pymongo renders it.
    lines = (mongo / "json" / db / f"{coll}.json").read_text().splitlines()
    if len(lines) != len(docs):
        fail(f"{name}: {len(lines)} JSON lines for {len(docs)} documents")
    for text, raw_doc in zip(lines, docs):
        expected = json.loads(json_util.dumps(bson.decode(raw_doc, OPTS), json_options=RELAXED))
        if json.loads(text) != expected:
            fail(f"{name}: JSON line differs from pymongo's\n ours: {text[:200]}")
    checked += len(docs)
    print(f"{name}: {len(live)}/{len(live)} live documents byte-identical, "
          f"{len(deleted)} removed records under deleted/, {len(listed)} rewritten records listed")
print(f"check_wt: {checked} documents verified")
