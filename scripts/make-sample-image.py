#!/usr/bin/env python3
"""Builds samples/sample.img: the FLV fixtures scattered among random bytes, text and
zeros, one of them with a 4 KiB block overwritten (it comes out `repaired`).

Deterministic (seeded), so the committed image can be rebuilt byte for byte:
    python3 scripts/make-sample-image.py
"""
import random
from pathlib import Path

root = Path(__file__).resolve().parent.parent
fixtures = root / "tests" / "fixtures" / "flv"
rng = random.Random(16679)


def noise(n):
    return bytes(rng.getrandbits(8) for _ in range(n))


def text(n):
    words = "recording stream encoder keyframe audio video backup disk sector offset".split()
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(rng.choice(words))
    return (" ".join(out)[:n]).encode()


def damaged(data, at, n=4096):
    b = bytearray(data)
    b[at:at + n] = noise(n)
    return bytes(b)


parts = [
    noise(300_000),
    (fixtures / "stream-av-2.flv").read_bytes(),
    text(200_000),
    (fixtures / "short-av.flv").read_bytes(),
    bytes(65_536),
    (fixtures / "video-only.flv").read_bytes(),
    noise(123_457),
    (fixtures / "audio-only.flv").read_bytes(),
    text(50_000),
    damaged((fixtures / "stream-av-1.flv").read_bytes(), 148 * 4096),
    noise(250_000),
]
out = root / "samples" / "sample.img"
out.parent.mkdir(exist_ok=True)
out.write_bytes(b"".join(parts))
print(f"{out}: {out.stat().st_size} bytes")
