//! Where exactly a fragment ends, decided jointly for every carved file of a source.
//!
//! A straddling tag proves which fragment comes next, not where inside the tag the
//! jump happened: a join knows a range of block boundaries (`earliest_from..=from`),
//! and moving the split moves the next fragment's start by as much. But two files
//! never hold the same block. Every piece of every file certainly holds the bytes
//! between its latest possible start and its earliest possible end; no other piece
//! may reach into them. [`narrow`] applies that to every ambiguous join, again and
//! again, until nothing moves: often one split is left, and a guess becomes proof.

use super::ByteSource;
use super::flv::Carved;
use super::fragments::Unit;

/// One piece of a carved file, with how far its ends may move.
struct Piece {
    file: usize,
    /// Earliest and latest possible start (equal when certain).
    start: (u64, u64),
    /// Earliest and latest possible end.
    end: (u64, u64),
}

impl Piece {
    /// The bytes it holds whatever the splits: `[latest start, earliest end)`.
    fn certain(&self) -> (u64, u64) {
        (self.start.1, self.end.0)
    }
}

/// Narrows the ambiguous joins of `files` (all carved from one source, whose files
/// fragment at `unit`), moving their splits and the extents around them.
pub fn narrow(files: &mut [&mut Carved], unit: Unit) {
    for _ in 0..32 {
        let pieces = pieces(files);
        let mut moved = false;
        for (f, file) in files.iter_mut().enumerate() {
            for j in 0..file.joins.len() {
                moved |= narrow_join(file, (f, j), &pieces, unit.0);
            }
        }
        if !moved {
            break;
        }
    }
}

/// Every piece of every file.
fn pieces(files: &[&mut Carved]) -> Vec<Piece> {
    let mut out = Vec::new();
    for (f, file) in files.iter().enumerate() {
        out.extend(file_pieces(file, f));
    }
    out
}

/// The pieces of `file` (number `f`).
fn file_pieces(file: &Carved, f: usize) -> impl Iterator<Item = Piece> + '_ {
    file.extents.iter().map(move |&(start, len)| {
        let end = start + len;
        let entering = file.joins.iter().find(|j| j.to == start);
        let leaving = file.joins.iter().find(|j| j.from == end);
        Piece {
            file: f,
            start: entering.map_or((start, start), |j| {
                (j.to.saturating_sub(j.from - j.earliest_from), start)
            }),
            end: leaving.map_or((end, end), |j| (j.earliest_from, end)),
        }
    })
}

/// The source ranges `file` holds whatever its splits: no other file may use them.
pub fn certain(file: &Carved) -> impl Iterator<Item = (u64, u64)> + '_ {
    file_pieces(file, 0)
        .map(|p| p.certain())
        .filter(|(start, end)| start < end)
}

/// Narrows join `j` of `file` (number `f`) by the certain bytes of every other piece;
/// true if it moved.
fn narrow_join(file: &mut Carved, (f, j): (usize, usize), pieces: &[Piece], unit: u64) -> bool {
    let join = &file.joins[j];
    if join.from == join.earliest_from {
        return false;
    }
    let (lo, hi) = (join.earliest_from, join.from);
    // The next fragment starts `shift` bytes from the split (either way).
    let shift = join.to as i128 - join.from as i128;
    let to_of = |b: u64| (b as i128 + shift) as u64;
    let (to_lo, to_hi) = (to_of(lo), to_of(hi));
    let ours = |p: &Piece| p.file == f && (p.end.1 == hi || p.start.1 == to_hi);
    let mut new_hi = hi;
    let mut new_lo = lo;
    for p in pieces.iter().filter(|p| !ours(p)) {
        let (start, end) = p.certain();
        if start >= end {
            continue;
        }
        // Another piece holds bytes from our earliest end on: ours ends before them.
        if start >= lo && start < new_hi {
            new_hi = (start / unit * unit).max(lo);
        }
        // Another piece holds bytes before the next fragment's latest start: it
        // starts after them.
        if end > to_lo && end <= to_hi {
            let from = (end.next_multiple_of(unit) as i128 - shift) as u64;
            new_lo = new_lo.max(from);
        }
    }
    if (new_lo, new_hi) == (lo, hi) || new_lo > new_hi {
        return false;
    }
    move_split(file, j, new_lo, new_hi);
    true
}

/// Splits that serve the same bytes are one: where the bytes just before a join's
/// latest split equal those just before where its next fragment starts (a stale copy
/// of a block, a block written twice), moving the split back changes nothing served.
/// Each of `file`'s open joins keeps only the earliest of such splits as its latest,
/// and is proven when that is its earliest.
pub fn merge_same_splits<S: ByteSource + ?Sized>(src: &S, file: &mut Carved, unit: u64) {
    let unit = unit.max(1);
    for j in 0..file.joins.len() {
        let join = &file.joins[j];
        let (lo, mut hi, mut to) = (join.earliest_from, join.from, join.to);
        let (mut ours, mut theirs) = (vec![0u8; unit as usize], vec![0u8; unit as usize]);
        while hi >= lo + unit
            && to >= unit
            && src.read_at(hi - unit, &mut ours)
            && src.read_at(to - unit, &mut theirs)
            && ours == theirs
        {
            (hi, to) = (hi - unit, to - unit);
        }
        if hi < join.from {
            move_split(file, j, lo, hi);
        }
    }
}

/// Sets join `j`'s range of splits to `lo..=hi`, the split to `hi`, and the extents
/// on either side to match.
pub(crate) fn move_split(file: &mut Carved, j: usize, lo: u64, hi: u64) {
    let join = &mut file.joins[j];
    let (old_from, old_to) = (join.from, join.to);
    let to = (old_to as i128 + hi as i128 - old_from as i128) as u64;
    (join.from, join.to, join.earliest_from) = (hi, to, lo);
    for e in file.extents.iter_mut() {
        if e.0 + e.1 == old_from {
            e.1 = hi - e.0;
        } else if e.0 == old_to {
            e.1 = e.0 + e.1 - to;
            e.0 = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carve::flv::Status;
    use crate::carve::join::Join;

    fn file(extents: Vec<(u64, u64)>, joins: Vec<Join>) -> Carved {
        Carved {
            offset: extents[0].0,
            extents,
            status: Status::Reassembled,
            gaps: Vec::new(),
            joins,
            tags: 0,
            duration_ms: 0,
            created_s: None,
            has_audio: true,
            has_video: true,
            headless: None,
        }
    }

    const B: u64 = 4096;

    #[test]
    fn two_ambiguous_files_pin_each_other() {
        // File a: blocks 0..10 then 40..50, split somewhere in 6..=10 (chosen 10).
        // File b certainly holds blocks 8..20: a's split is at most 8, and its next
        // fragment starts 2 blocks earlier than first chosen.
        let mut a = file(
            vec![(0, 10 * B), (40 * B, 10 * B)],
            vec![Join::straddling(6 * B, 10 * B, 40 * B)],
        );
        let mut b = file(vec![(8 * B, 12 * B)], Vec::new());
        narrow(&mut [&mut a, &mut b], Unit(B));
        assert_eq!(a.extents, vec![(0, 8 * B), (38 * B, 12 * B)]);
        let j = &a.joins[0];
        assert_eq!((j.earliest_from, j.from, j.to), (6 * B, 8 * B, 38 * B));
    }

    #[test]
    fn a_piece_before_the_next_fragment_raises_the_earliest_split() {
        // Split in 6..=10; the next fragment would start in 36..=40, but blocks 30..38
        // are another file's: it starts at 38, so the split is at 8.
        let mut a = file(
            vec![(0, 10 * B), (40 * B, 10 * B)],
            vec![Join::straddling(6 * B, 10 * B, 40 * B)],
        );
        let mut b = file(vec![(30 * B, 8 * B)], Vec::new());
        narrow(&mut [&mut a, &mut b], Unit(B));
        let j = &a.joins[0];
        assert_eq!((j.earliest_from, j.from, j.to), (8 * B, 10 * B, 40 * B));
    }

    #[test]
    fn a_piece_right_at_the_earliest_split_settles_it() {
        let mut a = file(
            vec![(0, 10 * B), (40 * B, 10 * B)],
            vec![Join::straddling(9 * B, 10 * B, 40 * B)],
        );
        let mut b = file(vec![(9 * B, 5 * B)], Vec::new());
        narrow(&mut [&mut a, &mut b], Unit(B));
        let j = &a.joins[0];
        assert_eq!((j.earliest_from, j.from, j.to), (9 * B, 9 * B, 39 * B));
        assert!(j.proven());
    }

    #[test]
    fn splits_that_serve_the_same_bytes_are_one() {
        // The two blocks before the latest split (8..10) are copies of the two before
        // where the next fragment starts (38..40): splitting at 8, 9 or 10 serves the
        // same file, so the split moves to 8, the earliest it may be here.
        let mut src: Vec<u8> = (0..50 * B as usize).map(|i| (i * 13 % 251) as u8).collect();
        let (copy, original) = (8 * B as usize, 38 * B as usize);
        let block = src[original..original + 2 * B as usize].to_vec();
        src[copy..copy + 2 * B as usize].copy_from_slice(&block);
        let mut a = file(
            vec![(0, 10 * B), (40 * B, 10 * B)],
            vec![Join::straddling(8 * B, 10 * B, 40 * B)],
        );
        merge_same_splits(&src[..], &mut a, B);
        let j = &a.joins[0];
        assert_eq!((j.earliest_from, j.from, j.to), (8 * B, 8 * B, 38 * B));
        assert!(j.proven());
        // Without the copy nothing moves.
        let mut b = file(
            vec![(0, 10 * B), (40 * B, 10 * B)],
            vec![Join::straddling(8 * B, 10 * B, 40 * B)],
        );
        let before = b.clone();
        let plain: Vec<u8> = (0..50 * B as usize).map(|i| (i * 13 % 251) as u8).collect();
        merge_same_splits(&plain[..], &mut b, B);
        assert_eq!(b, before);
    }

    #[test]
    fn contradictions_change_nothing() {
        let mut a = file(
            vec![(0, 10 * B), (40 * B, 10 * B)],
            vec![Join::straddling(6 * B, 10 * B, 40 * B)],
        );
        // Holds blocks 7..39: a would end by 7 and go on from 39, which no split fits.
        let mut b = file(vec![(7 * B, 32 * B)], Vec::new());
        let before = a.clone();
        narrow(&mut [&mut a, &mut b], Unit(B));
        assert_eq!(a, before);
    }
}
