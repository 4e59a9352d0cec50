"""What salvagefs carved, as its exported (or mounted) flv/ directory says: shared by
judge-recordings.py and judge-woodblock.py."""

import csv
import os


def rows(out_dir):
    """The rows of flv/candidates.tsv."""
    with open(os.path.join(out_dir, "flv/candidates.tsv")) as f:
        return list(csv.DictReader(f, delimiter="\t"))


def pieces(out_dir, row):
    """Where a carved file's pieces lie on the source, (offset, length) each, and how
    many of its joins or gaps ask for a check (from <file>.extents.txt)."""
    ext = os.path.join(out_dir, row["file"] + ".extents.txt")
    if os.path.exists(ext):
        lines = [line.split("\t") for line in open(ext) if line[0].isdigit()]
        return [(int(r[1]), int(r[2])) for r in lines], sum("check this" in r[3] for r in lines)
    return [(int(row["offset"]), int(row["bytes"]))], 0


def shared_bytes(out_dir, carved_rows):
    """Source bytes that two or more carved files hold (two candidates claiming the
    same bytes): 0 when every byte is served by at most one file."""
    spans = []
    for row in carved_rows:
        ps, _ = pieces(out_dir, row)
        spans += [(start, start + n, row["file"]) for start, n in ps]
    spans.sort()
    shared, reach = 0, []  # reach: (end, file) of the spans still open
    for start, end, name in spans:
        reach = [r for r in reach if r[0] > start]
        for r_end, r_name in reach:
            if r_name != name:
                shared += min(end, r_end) - start
        reach.append((end, name))
    return shared
