#!/usr/bin/env python3
"""Carving test images laid out by woodblock (PyPI), a forensics lab's generator.

    make-woodblock.py OUT [--seed N]

Makes seven FLV recordings with ffmpeg (H.264+AAC, Sorenson+MP3, audio only, video
only) into OUT/corpus, then OUT/image.dd with woodblock at 512-byte granularity, one
scenario per recording or pair: bifragmented with a random gap, reversed, three out
of order between zeros, two recordings braided, eight fragments, and an audio-only
recording in two. woodblock writes the truth to OUT/image.dd.json (every fragment's
place in the file and in the image); judge-woodblock.py scores a carver against it.
"""

import argparse
import os
import pathlib
import random
import subprocess

import woodblock.file
import woodblock.fragments
import woodblock.image
import woodblock.random
import woodblock.scenario

SECTOR = 512

RECORDINGS = [
    ("a-h264.flv", "testsrc2", 6, ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac"]),
    ("b-h264.flv", "mandelbrot", 5, ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac"]),
    ("c-flv1.flv", "testsrc", 5, ["-c:v", "flv1", "-g", "50", "-c:a", "libmp3lame"]),
    ("d-flv1.flv", "smptebars", 4, ["-c:v", "flv1", "-g", "50", "-c:a", "libmp3lame"]),
    ("e-h264.flv", "rgbtestsrc", 6, ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac"]),
    ("f-video.flv", "cellauto", 5, ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-an"]),
    ("g-audio.flv", None, 30, ["-vn", "-c:a", "libmp3lame", "-b:a", "192k"]),
]


def make_corpus(corpus, seed):
    """The recordings, the same bytes for the same seed (ffmpeg's cellauto source and
    noise filter seed themselves at random unless told)."""
    corpus.mkdir(parents=True, exist_ok=True)
    for name, video, seconds, codec in RECORDINGS:
        path = corpus / name
        if path.exists():
            continue
        inputs = ["-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100"]
        if video:
            source = f"{video}=size=480x270:rate=25" + (f":seed={seed}" if video == "cellauto" else "")
            inputs = ["-f", "lavfi", "-i", source] + inputs
            codec = ["-vf", f"noise=alls=25:allf=t:all_seed={seed}", "-b:v", "2M"] + codec
        # One thread each: the noise filter's random state is shared by its slice threads.
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-filter_threads", "1",
                        *inputs, "-t", str(seconds), "-threads", "1",
                        *codec, "-fflags", "+bitexact", "-map_metadata", "-1", str(path)], check=True)


def filler(rnd, zeros=False):
    size = rnd.randrange(1, 64) * SECTOR
    return woodblock.fragments.ZeroesFragment(size) if zeros else woodblock.fragments.RandomDataFragment(size)


def scenario(name, parts, rnd, zeros=False):
    """The parts in the given order, with filler before, between and after."""
    s = woodblock.scenario.Scenario(name)
    s.add(filler(rnd, zeros))
    for part in parts:
        s.add(part)
        s.add(filler(rnd, zeros))
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    a.out = a.out.resolve()
    rnd = random.Random(a.seed)
    woodblock.random.seed(a.seed)
    corpus = a.out / "corpus"
    make_corpus(corpus, a.seed)
    woodblock.file.corpus(corpus)
    f = {name: woodblock.file.File(corpus / name) for name, *_ in RECORDINGS}
    image = woodblock.image.Image(block_size=SECTOR)
    two = f["a-h264.flv"].fragment_randomly(2, SECTOR)
    image.add(scenario("bifragmented", two, rnd))
    two = f["b-h264.flv"].fragment_randomly(2, SECTOR)
    image.add(scenario("reversed", two[::-1], rnd))
    three = f["c-flv1.flv"].fragment_randomly(3, SECTOR)
    image.add(scenario("three out of order", [three[2], three[0], three[1]], rnd, zeros=True))
    d, e = f["d-flv1.flv"].fragment_randomly(3, SECTOR), f["e-h264.flv"].fragment_randomly(3, SECTOR)
    image.add(scenario("braided", [d[0], e[0], d[1], e[1], d[2], e[2]], rnd))
    image.add(scenario("eight fragments", f["f-video.flv"].fragment_randomly(8, SECTOR), rnd))
    image.add(scenario("audio only", f["g-audio.flv"].fragment_randomly(2, SECTOR), rnd))
    os.makedirs(a.out, exist_ok=True)
    image.write(a.out / "image.dd")


if __name__ == "__main__":
    main()
