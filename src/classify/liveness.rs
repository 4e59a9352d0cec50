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

/// For each document of `index`, what MMAPv1's links say (`None`: nothing, e.g. a
/// WiredTiger or loose document, or a record whose header was lost).
pub fn mmapv1(index: &Index) -> Vec<Option<Liveness>> {
    let docs = &index.docs;
    let mut out: Vec<Option<Liveness>> = vec![None; docs.len()];
    // Documents on a source come first in the index, in (source, offset) order.
    let plain = docs.partition_point(|d| d.wt.is_none());
    let records = Records(&docs[..plain]);
    for h in &index.ns_headers {
        walk_extent(h, &records, &mut out);
    }
    for (i, d) in docs[..plain].iter().enumerate() {
        if out[i].is_none()
            && let (Some(extent), Some(links)) = (d.ns_header_ofs, d.record_links)
        {
            if mmapv1::links_fit(extent, links) {
                out[i] = Some(Liveness::Live(Evidence::Links));
            } else if mmapv1::is_free_link(links) {
                out[i] = Some(Liveness::Deleted(Evidence::Links));
            }
        }
    }
    out
}

/// The documents lying on the sources, in (source, offset) order.
struct Records<'a>(&'a [DocEntry]);

impl Records<'_> {
    /// The record of extent `h` whose header is at `ofs` in its data file (whose first
    /// byte is at `base` on the source), if its document and header were found. The
    /// documents next to `near` (the record the walk came from) are tried first: a
    /// list mostly runs in disk order, and a search of millions of documents per step
    /// would miss the cache at every probe.
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

    /// Positions of the documents whose record header points to extent `h`.
    fn in_extent(&self, h: &NsHeader) -> std::ops::Range<usize> {
        let start = self
            .0
            .partition_point(|d| (d.source, d.offset) < (h.source, h.offset));
        let end = self
            .0
            .partition_point(|d| (d.source, d.offset) < (h.source, h.offset + h.len));
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
        if records.0[i].ns_header_ofs != Some(h.file_ofs) {
            continue;
        }
        if reached.contains(i) {
            out[i] = Some(Liveness::Live(Evidence::Chain));
        } else if intact {
            out[i] = Some(Liveness::Deleted(Evidence::Chain));
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
