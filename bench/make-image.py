#!/usr/bin/env python3
"""Builds a reproducible benchmark image: random bytes, zeros, text, executables, FLV
recordings (the committed fixtures) and MongoDB documents, in 1 MiB-ish pieces aligned
to 4 KiB, seeded.

    python3 bench/make-image.py OUT SIZE_MIB [LONG_FLV [DOCS [--odd-and-split]]]

LONG_FLV, if given, is placed once near the middle (a long recording to time reads).
DOCS (from bench/make-docs.py or bench/make-many-docs.py), if given, is laid out in
pieces of 64 KiB to 1 MiB, in order, as data files scattered over a disk would be.
With --odd-and-split, one recording also starts at an odd offset (off the sector grid)
at a quarter of the image, and one is split in two with random bytes between them at
three quarters, as issue 18's image had (the seeded layout is otherwise unchanged).
"""
import random
import sys
from pathlib import Path

out, size_mib = Path(sys.argv[1]), int(sys.argv[2])
root = Path(__file__).resolve().parent.parent
flvs = [p.read_bytes() for p in sorted((root / "tests/fixtures/flv").glob("*.flv"))]
exes = [Path(p).read_bytes() for p in ("/bin/ls", "/bin/bash", "/usr/bin/python3") if Path(p).exists()]
rng = random.Random(2020)
text = (" ".join(rng.choice("disk sector stream recording backup mongo offset video audio".split())
                 for _ in range(200_000))).encode()
total = size_mib << 20
long_flv = Path(sys.argv[3]).read_bytes() if len(sys.argv) > 3 and sys.argv[3] else None
docs = Path(sys.argv[4]).read_bytes() if len(sys.argv) > 4 else b""
special = {total // 4: "odd", 3 * total // 4: "split"} if "--odd-and-split" in sys.argv[5:] else {}
docs_at = 0
written = flv_count = 0
out.parent.mkdir(parents=True, exist_ok=True)
with open(out, "wb") as f:
    while written < total:
        kind = rng.random()
        if long_flv and written > total // 2:
            piece, long_flv = long_flv, None
            flv_count += 1
        elif kind < 0.30 and docs_at < len(docs):
            piece = docs[docs_at:docs_at + rng.randint(64 << 10, 1 << 20)]
            docs_at += len(piece)
        elif kind < 0.55:
            piece = rng.randbytes(rng.randint(256 << 10, 2 << 20))
        elif kind < 0.65:
            piece = bytes(rng.randint(64 << 10, 1 << 20))
        elif kind < 0.80:
            start = rng.randint(0, len(text) - 1)
            piece = text[start:start + rng.randint(64 << 10, 1 << 20)]
        elif kind < 0.88 and exes:
            piece = rng.choice(exes)
        else:
            piece = rng.choice(flvs)
            flv_count += 1
        # Files on a filesystem start on 4 KiB blocks; carvers such as photorec rely on it.
        piece += rng.randbytes(-len(piece) % 4096)
        for at in [at for at in special if written >= at]:
            # Own random numbers, so the seeded layout around them stays as it was.
            extra = random.Random(at)
            flv = extra.choice(flvs)
            if special.pop(at) == "odd":
                piece += extra.randbytes(1 + 2 * extra.randint(0, 2047)) + flv
            else:
                # As a filesystem splits a file: at a block of the file, onto
                # another block of the disk (`piece` ends on a block here).
                cut = len(flv) // 2 // 4096 * 4096
                piece += flv[:cut] + extra.randbytes(3 * 4096) + flv[cut:]
            piece += extra.randbytes(-len(piece) % 4096)
            flv_count += 1
        piece = piece[: total - written]
        f.write(piece)
        written += len(piece)
print(f"{out}: {written} bytes, {flv_count} FLV recordings, {docs_at} bytes of BSON documents")
