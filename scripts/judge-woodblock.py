#!/usr/bin/env python3
"""Scores carved FLV files against a woodblock image's truth (image.dd.json).

    judge-woodblock.py IMAGE.dd.json EXPORTED_DIR [--json]

EXPORTED_DIR is `salvagefs export IMAGE DIR --only 'flv/**'`. A recording is exact
when a carved file has its SHA-256. For every carved file, the image bytes it uses
(from `<file>.extents.txt` or candidates.tsv) are matched against the fragments'
image offsets: bytes from any other file's fragment or from filler are foreign.
Prints `exact=E/N foreign_bytes=B shared_bytes=S unproven=U` (S: source bytes two
carved files both hold); with --json also `silent_foreign_bytes`, those in files
whose .extents.txt asks for no check.
"""

import hashlib
import json
import os
import sys

import carved


def main():
    truth = json.load(open(sys.argv[1]))
    out_dir = sys.argv[2]
    owners = []  # (image start, image end, file sha256)
    recordings = {}
    for scenario in truth["scenarios"]:
        for f in scenario["files"]:
            sha = f["original"]["sha256"]
            if f["original"]["type"] == "file":
                recordings[sha] = f["original"]["path"]
            for frag in f["fragments"]:
                owners.append((frag["image_offsets"]["start"], frag["image_offsets"]["end"], sha))
    rows = carved.rows(out_dir)
    exact, foreign, unproven, report, silent = set(), 0, 0, [], 0
    for row in rows:
        data = open(os.path.join(out_dir, row["file"]), "rb").read()
        sha = hashlib.sha256(data).hexdigest()
        if sha in recordings:
            exact.add(sha)
        ps, doubtful = carved.pieces(out_dir, row)
        unproven += doubtful
        # The recording it carries: the owner of its first byte.
        first = next((o[2] for o in owners if o[0] <= ps[0][0] < o[1]), None)
        bad = 0
        for start, n in ps:
            for o_start, o_end, o_sha in owners:
                overlap = min(start + n, o_end) - max(start, o_start)
                if overlap > 0 and o_sha != first:
                    bad += overlap
        foreign += bad
        silent += 0 if doubtful else bad
        report.append((row["file"], row["status"], len(ps), bad, recordings.get(first, "?"), doubtful, sha in recordings))
    shared = carved.shared_bytes(out_dir, rows)
    line = (f"exact={len(exact)}/{len(recordings)} foreign_bytes={foreign} shared_bytes={shared} "
            f"unproven={unproven}")
    if "--json" in sys.argv:
        print(json.dumps({"exact": len(exact), "recordings": len(recordings), "foreign_bytes": foreign,
                          "silent_foreign_bytes": silent, "shared_bytes": shared,
                          "unproven": unproven, "carved": report}))
        return
    for r in report:
        exact_mark = "exact" if r[6] else "not exact"
        print("  %s\t%s\t%d pieces\t%d foreign bytes\t%s\t%d joins to check\t%s" % (*r[:6], exact_mark),
              file=sys.stderr)
    missing = sorted(p for s, p in recordings.items() if s not in exact)
    print(line + (f" (not exact: {' '.join(missing)})" if missing else ""))


if __name__ == "__main__":
    main()
