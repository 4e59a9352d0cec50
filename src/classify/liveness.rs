//! Which MMAPv1 records are live, read from MMAPv1's own links instead of guessed.
//!
//! An insert links a record at the end of its extent's doubly linked record list
//! (`firstRecord`/`lastRecord` in the extent header, `nextOfs`/`prevOfs` in each record
//! header). A delete unlinks it (its neighbours and the extent header are rewritten)
//! and chains it into a free list through the same last 8 bytes of its header
//! (`nextDeleted`); the `EE EE EE EE` mark over the document's length is not always
//! there. So, strongest first:
//!
//! 1. **Chain**: where an extent header survived, its list is walked from
//!    `firstRecord` forward and from `lastRecord` backward. A record either walk
//!    reaches is live. When the forward walk arrives at `lastRecord` intact, every
//!    other record of the extent was unlinked: deleted.
//! 2. **Links**: a record the chain does not decide (its extent header or a
//!    neighbour was overwritten) is live when its header, which frames the document,
//!    still holds two record offsets of its extent ([`mmapv1::links_fit`]), deleted
//!    when it holds a `nextDeleted` DiskLoc ([`mmapv1::is_free_link`]).
//!
//! Records without a surviving record header are left to the mark and to the choice
//! among versions in [`super`].

use std::collections::HashSet;

use crate::carve::mmapv1::{self, RECORD_HEADER_LEN};
use crate::index::{DocEntry, Index, NsHeader};

/// A set of document positions: a bit per position of one extent's documents (where
/// a record list's walk nearly always stays), a hash set for the others. Every record
/// of every extent goes in, twice: hashing each was a tenth of a mount's time.
struct Positions {
    range: std::ops::Range<usize>,
    bits: Vec<bool>,
    others: HashSet<usize, foldhash::fast::RandomState>,
}

impl Positions {
    /// An empty set, quick for positions in `range`.
    fn new(range: std::ops::Range<usize>) -> Positions {
        Positions {
            bits: vec![false; range.len()],
            range,
            others: HashSet::default(),
        }
    }

    /// Adds `i`; false if it was there.
    fn insert(&mut self, i: usize) -> bool {
        match self.range.contains(&i) {
            true => !std::mem::replace(&mut self.bits[i - self.range.start], true),
            false => self.others.insert(i),
        }
    }

    /// Whether `i` is in the set.
    fn contains(&self, i: usize) -> bool {
        match self.range.contains(&i) {
            true => self.bits[i - self.range.start],
            false => self.others.contains(&i),
        }
    }
}

/// What MMAPv1's structures say about one record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Linked in its extent's record list.
    Live(Evidence),
    /// Unlinked: deleted, or the old copy of a record an update moved.
    Deleted(Evidence),
}

/// Which structure decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// The extent's record list, walked from its header.
    Chain,
    /// The record's own header: record offsets, or a free-list DiskLoc.
    Links,
}

/// What MMAPv1's links say about each document, decided as the documents stream by
/// in index order: an extent's list is walked once every document of its region has
/// been seen, so only the documents from the region of the next extent to walk on are
/// held (MMAPv1 extents are at most 2 GB), never all of them.
pub struct Walker<'a> {
    /// Extent headers, in (source, offset) order.
    headers: &'a [NsHeader],
    /// The next header to walk.
    next: usize,
    /// The records from the start of the next header's region on, in order.
    window: Vec<Rec>,
}

impl<'a> Walker<'a> {
    /// A walker over the extent headers of `index`.
    pub fn new(index: &'a Index) -> Walker<'a> {
        Walker {
            headers: &index.ns_headers,
            next: 0,
            window: Vec::new(),
        }
    }

    /// Takes document `i` (`d`); records decisions in `out` (one per document, `None`:
    /// nothing decided, e.g. a WiredTiger or loose document, or a record whose header
    /// was lost).
    pub fn feed(&mut self, i: usize, d: &DocEntry, out: &mut [Option<Liveness>]) {
        if d.wt.is_some() {
            return;
        }
        let rec = Rec {
            i,
            source: d.source,
            offset: d.offset,
            ns_header_ofs: d.ns_header_ofs,
            record_links: d.record_links,
        };
        while let Some(h) = self.headers.get(self.next)
            && (h.source, h.offset.saturating_add(h.len)) <= (rec.source, rec.offset)
        {
            self.walk_next(out);
        }
        match self.headers.get(self.next) {
            Some(h) if (h.source, h.offset) <= (rec.source, rec.offset) => self.window.push(rec),
            _ => by_links(&rec, out),
        }
    }

    /// Walks what is left, once every document was fed.
    pub fn finish(mut self, out: &mut [Option<Liveness>]) {
        while self.next < self.headers.len() {
            self.walk_next(out);
        }
    }

    /// Walks the next header's list, then lets go of the records before the region of
    /// the one after (no later region holds them), deciding those the lists did not
    /// by their own links.
    fn walk_next(&mut self, out: &mut [Option<Liveness>]) {
        walk_extent(&self.headers[self.next], &Records(&self.window), out);
        self.next += 1;
        let keep_from = match self.headers.get(self.next) {
            Some(h) => self
                .window
                .partition_point(|r| (r.source, r.offset) < (h.source, h.offset)),
            None => self.window.len(),
        };
        for rec in self.window.drain(..keep_from) {
            by_links(&rec, out);
        }
    }
}

/// A record as the walk needs it.
struct Rec {
    /// Its position in the index.
    i: usize,
    source: u32,
    offset: u64,
    ns_header_ofs: Option<i32>,
    record_links: Option<(i32, i32)>,
}

/// Decides a record no list decided by its own header: live when it holds two record
/// offsets of its extent, deleted when it holds a free-list link.
fn by_links(rec: &Rec, out: &mut [Option<Liveness>]) {
    if out[rec.i].is_none()
        && let (Some(extent), Some(links)) = (rec.ns_header_ofs, rec.record_links)
    {
        if mmapv1::links_fit(extent, links) {
            out[rec.i] = Some(Liveness::Live(Evidence::Links));
        } else if mmapv1::is_free_link(links) {
            out[rec.i] = Some(Liveness::Deleted(Evidence::Links));
        }
    }
}

/// Records in (source, offset) order.
struct Records<'a>(&'a [Rec]);

impl Records<'_> {
    /// The record of extent `h` whose header is at `ofs` in its data file (whose first
    /// byte is at `base` on the source), if its document and header were found. The
    /// records next to `near` (the one the walk came from) are tried first: a list
    /// mostly runs in disk order.
    fn at(&self, h: &NsHeader, base: u64, ofs: i32, near: Option<usize>) -> Option<usize> {
        let doc_at = base
            .checked_add(u64::try_from(ofs).ok()?)?
            .checked_add(RECORD_HEADER_LEN as u64)?;
        let is_it = |i: usize| {
            self.0
                .get(i)
                .is_some_and(|d| (d.source, d.offset) == (h.source, doc_at))
        };
        let guess = near.and_then(|n| [n + 1, n.wrapping_sub(1)].into_iter().find(|&i| is_it(i)));
        let i = match guess {
            Some(i) => i,
            None => self
                .0
                .binary_search_by(|d| (d.source, d.offset).cmp(&(h.source, doc_at)))
                .ok()?,
        };
        let d = &self.0[i];
        (d.ns_header_ofs == Some(h.file_ofs) && d.record_links.is_some()).then_some(i)
    }

    /// Positions of the records in the region of extent `h`.
    fn in_extent(&self, h: &NsHeader) -> std::ops::Range<usize> {
        let start = self
            .0
            .partition_point(|d| (d.source, d.offset) < (h.source, h.offset));
        let end = self
            .0
            .partition_point(|d| (d.source, d.offset) < (h.source, h.offset.saturating_add(h.len)));
        start..end
    }
}

/// Walks the record list of extent `h` both ways and records what it decides.
fn walk_extent(h: &NsHeader, records: &Records, out: &mut [Option<Liveness>]) {
    let (Some((first, last)), Ok(file_ofs)) = (h.records, u64::try_from(h.file_ofs)) else {
        return;
    };
    let Some(base) = h.offset.checked_sub(file_ofs) else {
        return;
    };
    let held = records.in_extent(h);
    let mut reached = Positions::new(held.clone());
    let forward = follow(h, records, base, first, |l| l.0, &mut reached);
    follow(h, records, base, last, |l| l.1, &mut reached);
    let intact = forward == Some(last);
    for i in held {
        let rec = &records.0[i];
        if rec.ns_header_ofs != Some(h.file_ofs) {
            continue;
        }
        if reached.contains(i) {
            out[rec.i] = Some(Liveness::Live(Evidence::Chain));
        } else if intact {
            out[rec.i] = Some(Liveness::Deleted(Evidence::Chain));
        }
    }
}

/// Follows the list from the record at `ofs` by `step` (`nextOfs` or `prevOfs`),
/// adding what it reaches to `reached`; returns the record where it ended properly
/// (a null link), or `None` where it broke (a record not found, or a loop).
fn follow(
    h: &NsHeader,
    records: &Records,
    base: u64,
    mut ofs: i32,
    step: impl Fn((i32, i32)) -> i32,
    reached: &mut Positions,
) -> Option<i32> {
    let mut seen = Positions::new(reached.range.clone());
    let mut near = None;
    loop {
        let i = records.at(h, base, ofs, near)?;
        near = Some(i);
        if !seen.insert(i) {
            return None;
        }
        reached.insert(i);
        let next = step(records.0[i].record_links?);
        if next == -1 {
            return Some(ofs);
        }
        ofs = next;
    }
}
