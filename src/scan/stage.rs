//! The shape every format's part of the scan has: a finder run on each chunk, on every
//! core, and a `finish` over what all chunks found. [`super::scan`] runs the stages
//! registered once, in `scan/mod.rs`'s `stages!` list: adding a format is a module
//! implementing [`Stage`] and a line in that list.

use std::sync::Arc;

use crate::index::{DocEntry, Index, ScanSettings};
use crate::scan::Progress;
use crate::scan::anchors::Anchors;
use crate::source::Source;

/// One chunk of a source, read with an overlap past its end.
pub struct Chunk<'a> {
    /// The chunk's bytes followed by the overlap (less at the end of the source).
    pub bytes: &'a [u8],
    /// Where the formats' magic numbers occur in `bytes`, found once for every stage.
    pub anchors: &'a Anchors,
    /// Offset of `bytes[0]` on the source.
    pub start: u64,
    /// Length of the chunk proper: what starts at or past it belongs to the next chunk.
    pub len: usize,
    /// Position of the source in the index's source list.
    pub source: u32,
    /// The scan's options.
    pub settings: &'a ScanSettings,
}

/// What a stage's `finish` works with and writes to.
pub struct Finishing<'a> {
    /// The opened sources, for what a chunk could not finish.
    pub sources: &'a [Source],
    /// The scan's options.
    pub settings: &'a ScanSettings,
    /// Where to say what is being done.
    pub progress: &'a dyn Progress,
    /// The index being made: each stage fills its own fields.
    pub index: &'a mut Index,
    /// Documents found by every stage so far, turned into index entries at the end.
    pub docs: &'a mut Vec<Found>,
}

/// One format's part of the scan.
pub trait Stage {
    /// What the finder found in one chunk.
    type Finds: Send;
    /// Finds what starts in the chunk (the overlap is only read, never claimed).
    fn find(chunk: &Chunk) -> Self::Finds;
    /// Documents among `finds`, so the list of all documents is sized once.
    fn documents(_finds: &Self::Finds) -> usize {
        0
    }
    /// Joins what every chunk found, in chunk order, and completes it with reads of
    /// the sources.
    fn finish(finds: Vec<Self::Finds>, out: &mut Finishing);
}

/// A document any stage accepted, before its field names are interned: what
/// [`Finishing::docs`] collects from every stage.
pub struct Found {
    /// The index entry (its `shape` is set by [`super::documents::into_entries`]).
    pub entry: DocEntry,
    /// Top-level field names, each followed by a NUL: shared by the documents of one
    /// shape that a thread described (see [`super::documents::describe`]).
    pub fields: Arc<str>,
}
