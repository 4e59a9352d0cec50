#!/usr/bin/env python3
"""Checks a mounted salvage of MongoDB files against the truth written when they were
made (scripts/make-mmapv1-history.py): how many intact live documents came back
byte-exact in their own collection, whether any deleted, superseded or overwritten
version shows up among the live documents (a zombie), and whether any live document is
one that was never written (false). Prints one JSON line; exits 1 when recovery is
under MIN (default 0.995) or any zombie or false document appears.

    python3 tests/check_history.py MOUNT TRUTH.json [MIN]
"""
import hashlib
import json
import sys
from pathlib import Path

import bson

mount, truth = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
minimum = float(sys.argv[3]) if len(sys.argv) > 3 else 0.995
versions = truth["versions"]


def documents(path):
    """The documents of a concatenated .bson file, split by pymongo's decoder."""
    data, at = path.read_bytes(), 0
    while at < len(data):
        n = int.from_bytes(data[at:at + 4], "little")
        raw = data[at:at + n]
        bson.decode(raw)  # must be a document pymongo reads
        yield raw
        at += n


found = {}  # sha256 -> namespace, for every live document in the mount
dump = mount / "mongo" / "dump"
for f in dump.glob("*/*.bson"):
    ns = f"{f.parent.name}.{f.stem}"
    for raw in documents(f):
        found[hashlib.sha256(raw).hexdigest()] = ns

live = [v for v in versions if v["state"] == "live"]
intact = [v for v in live if v["intact"]]
live_shas = {v["sha256"] for v in live}
written = {v["sha256"] for v in versions}
right = [v for v in intact if found.get(v["sha256"]) == v["ns"]]
wrong_place = [v for v in intact if v["sha256"] in found and found[v["sha256"]] != v["ns"]]
zombies = {v["sha256"] for v in versions
           if v["state"] != "live" and v["sha256"] in found and v["sha256"] not in live_shas}
false = [s for s in found if s not in written]
result = {
    "intact_live": len(intact), "back_in_right_collection": len(right),
    "recovered": round(len(right) / max(1, len(intact)), 4),
    "in_wrong_collection": len(wrong_place), "missing": len(intact) - len(right) - len(wrong_place),
    "zombies": len(zombies), "false": len(false),
}
print(json.dumps(result))
if result["recovered"] < minimum or zombies or false:
    sys.exit(1)
