#!/usr/bin/env python3
"""Scores what a carver brought back against the truth make-fs-recordings.py wrote.

    judge-recordings.py TRUTH.json IMAGE EXPORTED_DIR [--json]

EXPORTED_DIR is `salvagefs export IMAGE DIR --only 'flv/**'` (or a mount). For every
carved FLV it reads where each piece lies on IMAGE (`<file>.extents.txt`, or the
offset in candidates.tsv) and classifies every whole 4 KiB block of the image it uses:
the lost recording's own, a live file's, or neither (free space). Prints one line:

    lost=exact|partial|missing  extents=N  other_bytes=B  shared_bytes=S  files=F  unproven=U

`other_bytes` counts the bytes carved files take from blocks that belong to a file
other than the recording they carry (with --json, `silent_other_bytes` those in
files whose .extents.txt asks for no check: they must be 0); `shared_bytes` the
image bytes two carved files both hold.
"""

import hashlib
import json
import os
import sys

import carved

BLOCK = 4096


def main():
    truth = json.load(open(sys.argv[1]))
    image = open(sys.argv[2], "rb")
    out_dir = sys.argv[3]
    lost = truth["lost"]
    lost_blocks = set(lost["blocks"])
    owner = {}
    for name, f in truth["live"].items():
        for h in f["blocks"]:
            owner.setdefault(h, name)
    rows = carved.rows(out_dir)
    verdict, other, unproven, report, silent = "missing", 0, 0, [], 0
    for row in rows:
        data = open(os.path.join(out_dir, row["file"]), "rb").read()
        first = hashlib.sha256(data[:BLOCK]).hexdigest()[:16]
        if hashlib.sha256(data).hexdigest() == lost["sha256"]:
            verdict = "exact"
        elif first == lost["blocks"][0] and verdict == "missing":
            verdict = "partial"
        ps, doubtful = carved.pieces(out_dir, row)
        unproven += doubtful
        # The file it carries: the one most of its blocks belong to.
        blocks = []
        for off, n in ps:
            b = -(-off // BLOCK) * BLOCK
            while b + BLOCK <= off + n:
                image.seek(b)
                blocks.append(hashlib.sha256(image.read(BLOCK)).hexdigest()[:16])
                b += BLOCK
        owners = [lost["name"] if h in lost_blocks else owner.get(h) for h in blocks]
        named = [o for o in owners if o]
        mine = max(set(named), key=named.count) if named else None
        foreign = BLOCK * sum(1 for o in named if o != mine)
        other += foreign
        silent += 0 if doubtful else foreign
        report.append((row["file"], row["status"], len(ps), foreign))
    shared = carved.shared_bytes(out_dir, rows)
    line = (f"lost={verdict} extents={len(lost['extents'])} other_bytes={other} "
            f"shared_bytes={shared} files={len(rows)} unproven={unproven}")
    if "--json" in sys.argv:
        print(json.dumps({"lost": verdict, "extents": len(lost["extents"]), "other_bytes": other,
                          "silent_other_bytes": silent, "shared_bytes": shared,
                          "files": len(rows), "unproven": unproven, "carved": report}))
    else:
        for r in report:
            print("  %s\t%s\t%d pieces\t%d foreign bytes" % r, file=sys.stderr)
        print(line)


if __name__ == "__main__":
    main()
