#!/usr/bin/env python3
"""Lose a recording the way people do, on a filesystem the kernel writes.

Several recorders append to their FLV files at the same time (32-96 KiB chunks, an
fsync now and then), while logs, JPEG thumbnails and uploads are written in between,
through the kernel's own ext4, XFS or btrfs on a loop device. The truth is written
down before the mistake: every file's SHA-256, its extents (`filefrag -v`) and the
hash of each of its 4 KiB blocks. Then the mistake: `mv rec04.flv rec01.flv`, or `rm
rec01.flv` (optionally while the other recorders go on writing).

    make-fs-recordings.py OUT --fs ext4|xfs|btrfs [--fill PCT] [--mistake mv|rm|rm-live]
                          [--seed N] [--size-mb N] [--seconds N]

Writes OUT/disk.img and OUT/truth.json; the recordings are made once by ffmpeg into
OUT/../recordings-<seconds>s/. Needs root, ffmpeg (libx264, libmp3lame), filefrag,
mkfs.<fs>. judge-recordings.py scores what a carver brings back.
"""

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile

BLOCK = 4096


def sh(*cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, **kw)


def recordings(cache, seconds):
    """Four recordings, two H.264+AAC and two Sorenson+MP3, noisy so they are big."""
    os.makedirs(cache, exist_ok=True)
    specs = [
        ("rec01.flv", "testsrc2", 1.0, ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac"]),
        ("rec02.flv", "mandelbrot", 0.8, ["-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac"]),
        ("rec03.flv", "testsrc", 0.6, ["-c:v", "flv1", "-g", "50", "-c:a", "libmp3lame"]),
        ("rec04.flv", "smptebars", 0.9, ["-c:v", "flv1", "-g", "50", "-c:a", "libmp3lame"]),
    ]
    out = []
    for name, src, share, codec in specs:
        path = os.path.join(cache, name)
        if not os.path.exists(path):
            secs = str(max(2, int(seconds * share)))
            sh("ffmpeg", "-nostdin", "-loglevel", "error", "-y",
               "-f", "lavfi", "-i", f"{src}=size=640x360:rate=25",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
               "-t", secs, "-vf", "noise=alls=30:allf=t", "-b:v", "3M", *codec,
               "-fflags", "+bitexact", "-map_metadata", "-1", path + ".tmp.flv")
            os.rename(path + ".tmp.flv", path)
        out.append((name, open(path, "rb").read()))
    return out


def thumbnails(cache):
    """Real JPEGs, as a recorder's thumbnailer writes them."""
    path = os.path.join(cache, "thumb-%02d.jpg")
    if not os.path.exists(path % 1):
        sh("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi",
           "-i", "testsrc2=size=320x180:rate=5", "-t", "4", path)
    return [open(path % i, "rb").read() for i in range(1, 21) if os.path.exists(path % i)]


def make_fs(img, fs, size_mb):
    with open(img, "wb") as f:
        # mkfs.xfs refuses less than 300 MB.
        f.truncate(max(size_mb, 320 if fs == "xfs" else 0) << 20)
    mkfs = {
        "ext4": ["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096"],
        "xfs": ["mkfs.xfs", "-q", "-f", "-b", "size=4096"],
        "btrfs": ["mkfs.btrfs", "-q", "-f", "-s", "4096"],
    }[fs]
    sh(*mkfs, img)


def used_pct(mnt):
    st = os.statvfs(mnt)
    return 100.0 * (1 - st.f_bavail / st.f_blocks)


def fill(mnt, pct, rnd):
    """Fills to `pct` percent with uploads, then deletes every other one."""
    names = []
    while used_pct(mnt) < pct:
        name = os.path.join(mnt, f"old-{len(names):05d}.bin")
        try:
            with open(name, "wb") as f:
                f.write(rnd.randbytes(rnd.randrange(64, 2048) << 10))
        except OSError:
            break
        names.append(name)
    sh("sync")
    for name in names[::2]:
        os.remove(name)
    sh("sync")


class Writer:
    """The recorders, the logger, the thumbnailer and the uploads, interleaved."""

    def __init__(self, mnt, recs, thumbs, rnd):
        self.mnt, self.rnd, self.thumbs = mnt, rnd, thumbs
        self.recs = {name: [open(os.path.join(mnt, name), "wb"), data, 0] for name, data in recs}
        self.log = open(os.path.join(mnt, "recorder.log"), "a")
        self.others = 0

    def step(self, names):
        name = self.rnd.choice(names)
        f, data, at = self.recs[name]
        n = self.rnd.randrange(32, 97) << 10
        f.write(data[at:at + n])
        self.recs[name][2] = at + n
        if self.rnd.random() < 0.15:
            f.flush()
            os.fsync(f.fileno())
        self.log.write(f"{name}: wrote {n} bytes at {at}\n")
        r = self.rnd.random()
        if r < 0.05:
            self.other("thumb", ".jpg", self.rnd.choice(self.thumbs))
        elif r < 0.08:
            self.other("upload", ".bin", self.rnd.randbytes(self.rnd.randrange(16, 1024) << 10))

    def other(self, stem, ext, data):
        with open(os.path.join(self.mnt, f"{stem}-{self.others:04d}{ext}"), "wb") as f:
            f.write(data)
        self.others += 1

    def unfinished(self, names):
        return [n for n in names if self.recs[n][2] < len(self.recs[n][1])]

    def run(self, names, stop_after=None):
        steps = 0
        while (left := self.unfinished(names)) and steps != stop_after:
            self.step(left)
            steps += 1

    def close(self):
        for f, _, _ in self.recs.values():
            f.close()
        self.log.close()


def extents(path):
    """`filefrag -v`: (logical, physical, length) per extent, in 4 KiB blocks."""
    out = sh("filefrag", "-v", "-b4096", path).stdout.decode()
    rows = []
    for line in out.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[0].strip().isdigit():
            logical = int(parts[1].split("..")[0])
            physical = int(parts[2].split("..")[0])
            rows.append((logical, physical, int(parts[3].strip())))
    return rows


def truth_of(mnt):
    files = {}
    for name in sorted(os.listdir(mnt)):
        path = os.path.join(mnt, name)
        if not os.path.isfile(path):
            continue
        data = open(path, "rb").read()
        files[name] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "extents": extents(path),
            "blocks": [hashlib.sha256(data[i:i + BLOCK]).hexdigest()[:16]
                       for i in range(0, len(data) - BLOCK + 1, BLOCK)],
        }
    return files


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--fs", choices=["ext4", "xfs", "btrfs"], default="ext4")
    ap.add_argument("--fill", type=int, default=0, help="percent full before recording")
    ap.add_argument("--mistake", choices=["mv", "rm", "rm-live"], default="mv")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--seconds", type=int, default=20, help="length of the longest recording")
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    os.makedirs(a.out, exist_ok=True)
    cache = os.path.join(os.path.dirname(os.path.abspath(a.out)), f"recordings-{a.seconds}s")
    recs = recordings(cache, a.seconds)
    img = os.path.join(a.out, "disk.img")
    make_fs(img, a.fs, a.size_mb)
    mnt = tempfile.mkdtemp(prefix="salvagefs-rec-")
    sh("mount", "-o", "loop", img, mnt)
    try:
        if a.fill:
            fill(mnt, a.fill, rnd)
        w = Writer(mnt, recs, thumbnails(cache), rnd)
        names = [n for n, _ in recs]
        lost = "rec01.flv"
        if a.mistake == "rm-live":
            # rec01 is deleted mid-way while the others keep recording over it.
            w.run(names, stop_after=len(names) * 40)
            w.run([lost])
        else:
            w.run(names)
        for f, _, _ in w.recs.values():
            f.flush()
            os.fsync(f.fileno())
        sh("sync")
        before = truth_of(mnt)
        if a.mistake == "mv":
            os.rename(os.path.join(mnt, "rec04.flv"), os.path.join(mnt, lost))
        else:
            os.remove(os.path.join(mnt, lost))
        if a.mistake == "rm-live":
            w.run(names)
        w.close()
        sh("sync")
        after = truth_of(mnt)
    finally:
        sh("umount", mnt)
        os.rmdir(mnt)
    truth = {"fs": a.fs, "fill": a.fill, "mistake": a.mistake, "seed": a.seed,
             "lost": dict(before[lost], name=lost), "live": after}
    json.dump(truth, open(os.path.join(a.out, "truth.json"), "w"))
    print(f"{a.fs} fill={a.fill} {a.mistake} seed={a.seed}: {lost} {before[lost]['size']} "
          f"bytes in {len(before[lost]['extents'])} extents", file=sys.stderr)


if __name__ == "__main__":
    main()
