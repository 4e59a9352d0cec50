//! The scan: drives the carvers over the sources in parallel and produces an [`Index`].
//!
//! Pass 1 reads every source once, in fixed-size chunks (with an overlap so a header or
//! a document straddling two chunks is seen whole, and counted only in the chunk where
//! it starts), on all cores, and collects FLV header offsets, BSON documents, MMAPv1
//! extent headers and namespace-file nodes, and WiredTiger pages (checksummed,
//! decompressed and read there). Pass 2 walks each FLV header's tag chain (reading only
//! the tag headers it needs, through a small read-ahead window), reads the few documents
//! and WiredTiger blocks longer than the overlap, reads each namespace file's table, follows WiredTiger files that lie off the sector grid,
//! traces pages to their files and fetches values stored in overflow pages.
//! Memory is bounded by the chunk size times the number of threads, whatever the size of
//! the disk, plus the documents of one segment: each is saved as it ends and dropped,
//! and the segments' files are joined at the end.

use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use crate::carve::ByteSource;
use crate::extent::AlignedBuf;
use crate::index::{Index, ScanSettings, SourceRecord, Span};
use crate::merge::{self, Part};
use crate::source::Source;
use crate::spans;
use crate::spill::Spill;
use anchors::Anchors;
use documents::Documents;
use flv::Flv;
use namespaces::Namespaces;
use stage::{Chunk, Finishing, Stage};
use wiredtiger::WiredTiger;

pub mod anchors;
pub mod decoder;
pub mod documents;
pub mod filesystem;
pub mod flv;
pub mod headless;
pub mod namespaces;
pub mod split_decisions;
pub mod stage;
pub mod wiredtiger;

/// Bytes read per work item of pass 1: small enough that a chunk stays in the CPU's
/// caches while every stage's finder runs over it (8 MiB ones came from memory for
/// each finder: a 1.25 GB image without documents scanned in 1.33-1.54 s, with 2 MiB
/// in 0.73-0.88 s).
const CHUNK: u64 = 2 << 20;
/// Bytes read past the end of a chunk: documents up to this long that start in the
/// chunk are validated there; longer ones are read again in pass 2.
const OVERLAP: u64 = 64 << 10;

/// Registers the scan's stages: makes `ChunkFinds` (what every stage found in one
/// chunk, a field per stage), `find_all` (every finder on one chunk), `documents_in`
/// (documents among a chunk's finds) and `finish_all` (every stage's finish, in the
/// order listed).
macro_rules! stages {
    ($($field:ident: $stage:ty),* $(,)?) => {
        /// What every stage found in one chunk.
        struct ChunkFinds {
            $($field: <$stage as Stage>::Finds,)*
        }

        /// Runs every stage's finder on `chunk`.
        fn find_all(chunk: &Chunk) -> ChunkFinds {
            ChunkFinds {
                $($field: <$stage>::find(chunk),)*
            }
        }

        /// Documents among what the stages found in one chunk.
        fn documents_in(c: &ChunkFinds) -> usize {
            0 $(+ <$stage>::documents(&c.$field))*
        }

        /// Hands each stage what it found in every chunk, in chunk order.
        fn finish_all(per_chunk: Vec<ChunkFinds>, out: &mut Finishing) {
            $(let mut $field = Vec::with_capacity(per_chunk.len());)*
            for c in per_chunk {
                $($field.push(c.$field);)*
            }
            $(<$stage>::finish($field, out);)*
        }
    };
}

// The formats, registered once. Order matters only for `finish`: WiredTiger's ties
// pages to the documents the MMAPv1/BSON stage has already collected.
stages! {
    flv: Flv,
    documents: Documents,
    namespaces: Namespaces,
    wiredtiger: WiredTiger,
}

thread_local! {
    static CHUNK_BUF: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

/// Receives progress reports and warnings (a terminal progress bar, or nothing).
pub trait Progress: Sync {
    /// Something the user must see now, even if the command then fails.
    fn warn(&self, message: &str);
    /// The scan starts and will read `total` bytes (block devices have no st_size,
    /// so only the scan, with the sources open, knows this).
    fn begin(&self, total: u64);
    /// `n` more bytes of the sources were scanned.
    fn advance(&self, n: u64);
    /// The scan entered a new phase.
    fn phase(&self, name: &str);
}

/// Progress reporting that reports nothing.
pub struct Quiet;

impl Progress for Quiet {
    fn warn(&self, _: &str) {}
    fn begin(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn phase(&self, _: &str) {}
}

/// Bytes scanned between two checkpoints, unless told otherwise (or fewer, see
/// [`SEGMENT_DOCS`]): a multiple of the chunk size, so that checkpoints do not move
/// chunk boundaries. Each segment is saved, and the segments are joined at the end:
/// few segments make that join cheap, and a fragmented recording is reassembled within
/// one segment.
pub const CHECKPOINT_EVERY: u64 = 4096 * CHUNK;

/// Documents after which a segment ends early: it holds its documents until it is
/// saved, so this bounds the scan's memory (3 million take about 400 MB; a gigabyte of
/// dense MongoDB data files holds 3.7 million).
pub const SEGMENT_DOCS: usize = 3 << 20;

/// Chunks scanned between two looks at the documents a segment holds.
const WAVE: usize = 128;

/// Where a scan keeps what it finished (`checkpoint`, a directory of one index per
/// segment), how often it saves (`every` bytes), and where runs are spilled.
pub struct Resumable<'a> {
    /// The directory of saved segments.
    pub checkpoint: &'a Path,
    /// Bytes per segment.
    pub every: u64,
    /// Documents after which a segment ends early ([`SEGMENT_DOCS`]).
    pub docs: usize,
    /// Where the join keeps its temporary file.
    pub spill: &'a Spill,
}

/// Scans the byte ranges `spans` of `sources` segment by segment, saving each segment
/// of `every` bytes to the `checkpoint` directory as it is done; segments left there
/// by an interrupted scan of the same sources with the same options are picked up, so
/// only the rest is scanned. The segments are then joined by [`merge::join`] into the
/// index saved at `out` (unclassified), the same as a scan in one go, and returned
/// without its documents. A scan in one segment is returned unsaved instead, with its
/// documents ([`Scanned::unsaved`]): the caller saves it at `out` while it classifies
/// them, so they are neither decoded again nor waited for. Failing to join segments is
/// an error, never an index that silently lost what was found.
pub fn scan_resumable(
    sources: &[Source],
    (records, settings): (Vec<SourceRecord>, &ScanSettings),
    spans: &[Span],
    at: &Resumable,
    (out, created): (&Path, Option<u64>),
    progress: &dyn Progress,
) -> Result<Scanned, merge::MergeError> {
    let every = at.every.max(CHUNK).next_multiple_of(CHUNK);
    let (mut parts, have) = saved_segments(at.checkpoint, (&records, settings), spans);
    let total: u64 = spans.iter().map(Span::len).sum();
    progress.begin(total);
    if !parts.is_empty() {
        let done: u64 = have.iter().map(Span::len).sum();
        progress.warn(&format!(
            "resuming the interrupted scan saved in {}: {} of {} already done",
            at.checkpoint.display(),
            indicatif::HumanBytes(done),
            indicatif::HumanBytes(total)
        ));
        progress.advance(done);
    }
    let todo = spans::missing(spans, &have);
    for s in &todo {
        let mut start = s.start;
        while start < s.end {
            let most = Span {
                start,
                end: (start + every).min(s.end),
                ..*s
            };
            let mut part = scan(
                sources,
                records.clone(),
                settings,
                (most, at.docs),
                progress,
            );
            let end = part.covered.last().map_or(most.end, |c| c.end);
            if parts.is_empty() && todo.len() == 1 && start == s.start && end == s.end {
                // One segment and nothing to join: the caller saves it where the
                // index goes, once.
                part.created = created.unwrap_or(part.created);
                let _ = std::fs::remove_dir_all(at.checkpoint);
                return Ok(Scanned {
                    index: part,
                    unsaved: true,
                });
            }
            parts.push(save_segment(at.checkpoint, part)?);
            start = end;
        }
    }
    if parts.is_empty() {
        // Nothing to scan: no source has a byte.
        let mut nothing = Index::empty(records, settings, spans);
        nothing.created = created.unwrap_or(nothing.created);
        nothing.save(out)?;
        let _ = std::fs::remove_dir_all(at.checkpoint);
        return Ok(Scanned {
            index: nothing,
            unsaved: false,
        });
    }
    progress.phase(&format!("joining {} segments", parts.len()));
    let (joined, _) = merge::join(parts, at.spill, (out, created, false))?;
    let _ = std::fs::remove_dir_all(at.checkpoint);
    Ok(Scanned {
        index: joined,
        unsaved: false,
    })
}

/// What [`scan_resumable`] found.
pub struct Scanned {
    /// The index: saved without its documents, or unsaved with them.
    pub index: Index,
    /// The scan was one segment, held whole and not saved yet.
    pub unsaved: bool,
}

/// Saves the index of one segment into the directory `dir` of saved segments, and
/// drops it but for what the join needs.
fn save_segment(dir: &Path, part: Index) -> io::Result<Part> {
    let Some(first) = part.covered.first() else {
        return Err(io::Error::other("a segment that covers nothing"));
    };
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}-{:020}.idx", first.source, first.start));
    part.save_for_now(&path)?;
    drop(part);
    Part::open(&path).map_err(|e| io::Error::other(e.to_string()))
}

/// The segments saved in `dir` by an earlier scan of these sources with these options
/// within `spans`, and the bytes they cover: all of them, or none when they do not fit
/// together.
fn saved_segments(
    dir: &Path,
    (records, settings): (&[SourceRecord], &ScanSettings),
    spans: &[Span],
) -> (Vec<Part>, Vec<Span>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (Vec::new(), Vec::new());
    };
    let mut parts: Vec<Part> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".idx"))
        .filter_map(|e| Part::open(&e.path()).ok())
        .filter(|p| p.index.sources == records && p.index.settings == *settings)
        .collect();
    parts.sort_by_key(|p| p.index.covered.first().copied());
    let mut have: Vec<Span> = Vec::new();
    for p in &parts {
        match spans::union(&have, &p.index.covered) {
            Ok(joined) if spans::missing(&p.index.covered, spans).is_empty() => have = joined,
            _ => return (Vec::new(), Vec::new()),
        }
    }
    (parts, have)
}

/// Scans `most` of `sources` from its start, on all cores, and returns the index of
/// everything that starts in the bytes it scanned (which it covers): all of `most`, or
/// less when `max_docs` documents were found first (looked at every [`WAVE`] chunks),
/// since a segment's documents are held until it is saved. Every stage's finder runs
/// on each chunk, then every stage's `finish`.
pub fn scan(
    sources: &[Source],
    records: Vec<SourceRecord>,
    settings: &ScanSettings,
    (most, max_docs): (Span, usize),
    progress: &dyn Progress,
) -> Index {
    let started = Instant::now();
    let bad = Mutex::new(Vec::new());
    let (mut per_chunk, mut held): (Vec<ChunkFinds>, usize) = (Vec::new(), 0);
    let mut end = most.start;
    for wave in chunks(most).chunks(WAVE) {
        let found: Vec<ChunkFinds> = wave
            .par_iter()
            .map(|&(src, start, len)| {
                let found = read_chunk(&sources[src as usize], src, (start, len), &bad, |bytes| {
                    find_all(&Chunk {
                        bytes,
                        anchors: &Anchors::find(bytes),
                        start,
                        len,
                        source: src,
                        settings,
                    })
                });
                progress.advance(len as u64);
                found
            })
            .collect();
        held += found.iter().map(documents_in).sum::<usize>();
        per_chunk.extend(found);
        end = wave
            .last()
            .map_or(end, |&(_, start, len)| start + len as u64);
        if held >= max_docs {
            break;
        }
    }
    let covered = Span { end, ..most };
    // One list for every document, sized once: the scan's largest allocation.
    let mut docs = Vec::with_capacity(held);
    let mut index = Index::empty(records, settings, &[covered]);
    let mut out = Finishing {
        sources,
        settings,
        progress,
        index: &mut index,
        docs: &mut docs,
    };
    finish_all(per_chunk, &mut out);
    (index.docs, index.shapes) = documents::into_entries(docs);
    let mut bad_ranges = bad.into_inner().unwrap_or_else(|e| e.into_inner());
    bad_ranges.sort_by_key(|b| (b.source, b.start));
    index.bad_ranges = bad_ranges;
    index.scan_seconds = started.elapsed().as_secs_f64();
    index
}

/// The work items of a scan of `s`: `(source, chunk start, chunk length)`, chunks
/// starting at its start.
fn chunks(s: Span) -> Vec<(u32, u64, usize)> {
    (s.start..s.end)
        .step_by(CHUNK as usize)
        .map(|at| (s.source, at, (s.end - at).min(CHUNK) as usize))
        .collect()
}

/// Reads the chunk `start..start + len` of `source` plus the overlap into this
/// thread's buffer (unreadable bytes as zeros, recorded in `bad`) and hands it to `find`.
fn read_chunk<T>(
    source: &Source,
    src: u32,
    (start, len): (u64, usize),
    bad: &Mutex<Vec<Span>>,
    find: impl FnOnce(&[u8]) -> T,
) -> T {
    let with_overlap = (source.size - start).min(CHUNK + OVERLAP) as usize;
    let end = start + len as u64;
    CHUNK_BUF.with_borrow_mut(|buf| {
        // One buffer per thread, reused: a fresh allocation per chunk would
        // be page-faulted in again every time and cost more than the read.
        let buf = buf.get(with_overlap);
        let unreadable = source.read_salvaging(buf, start);
        if !unreadable.is_empty() {
            let mut bad = bad.lock().unwrap_or_else(|e| e.into_inner());
            bad.extend(unreadable.into_iter().filter(|r| r.0 < end).map(|(s, e)| {
                log::warn!(
                    "{}: unreadable bytes {s}..{e}, skipped",
                    source.path.display()
                );
                Span {
                    source: src,
                    start: s,
                    end: e.min(end),
                }
            }));
        }
        find(buf)
    })
}

/// A [`ByteSource`] over a source with a read-ahead window, so that walking a chain of
/// small tags costs one `pread` per window, not two per tag. The window starts small
/// and doubles while reads go on where it ended, as the kernel's readahead does: most
/// walks (fragment-start candidates in executables, say) end after a few tags, and a
/// full window each would read the disk many times over. Unreadable bytes read as
/// missing (the walk treats them like a break), never as a crash.
pub struct ReadAhead<'a> {
    source: &'a Source,
    window: RefCell<Window>,
}

/// The bytes of a [`ReadAhead`] at `start`, and how many to read next time.
#[derive(Default)]
struct Window {
    start: u64,
    data: Vec<u8>,
    next_len: usize,
}

impl<'a> ReadAhead<'a> {
    const MIN_WINDOW: usize = 4 << 10;
    const MAX_WINDOW: usize = 1 << 20;

    /// A reader with an empty window.
    pub fn new(source: &'a Source) -> ReadAhead<'a> {
        ReadAhead {
            source,
            window: RefCell::new(Window::default()),
        }
    }
}

impl ByteSource for ReadAhead<'_> {
    fn len(&self) -> u64 {
        self.source.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> bool {
        let Some(end) = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.source.size)
        else {
            return false;
        };
        let mut window = self.window.borrow_mut();
        let w = &mut *window;
        if offset < w.start || end > w.start + w.data.len() as u64 {
            if buf.len() > Self::MAX_WINDOW / 2 {
                return self.source.read_exact_at(buf, offset).is_ok();
            }
            let sequential = offset >= w.start && offset <= w.start + w.data.len() as u64;
            w.next_len = match sequential {
                true => (w.next_len * 2).clamp(Self::MIN_WINDOW, Self::MAX_WINDOW),
                false => Self::MIN_WINDOW,
            };
            let n = (self.source.size - offset).min(w.next_len.max(buf.len()) as u64) as usize;
            w.data.resize(n, 0);
            if self.source.read_exact_at(&mut w.data, offset).is_err() {
                w.data.clear();
                return self.source.read_exact_at(buf, offset).is_ok();
            }
            w.start = offset;
        }
        let at = (offset - w.start) as usize;
        buf.copy_from_slice(&w.data[at..at + buf.len()]);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extjson::JsonMode;
    use crate::index::stream::DocsFile;

    /// A sparse source: three stretches of 30 000 documents each, 300 MiB apart.
    fn source(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("docs.img");
        let file = std::fs::File::create(&path).unwrap();
        for (k, at) in [0u64, 300 << 20, 590 << 20].into_iter().enumerate() {
            let mut bytes = Vec::new();
            for n in 0..30_000 {
                let doc = bson::doc! {
                    "_id": bson::oid::ObjectId::new(),
                    "stretch": k as i32,
                    "n": n,
                    "text": "the documents of one segment are held until it is saved",
                };
                bytes.extend(doc.to_vec().unwrap());
            }
            std::os::unix::fs::FileExt::write_all_at(&file, &bytes, at).unwrap();
        }
        file.set_len(600 << 20).unwrap();
        path
    }

    /// The documents of the index saved at `path`, in order.
    fn saved_docs(path: &Path) -> Vec<crate::index::DocEntry> {
        let file = DocsFile::open(path).unwrap();
        file.reader().unwrap().map(Result::unwrap).collect()
    }

    /// Segments that end early at a number of documents join into what one segment
    /// finds.
    #[test]
    fn segments_cut_by_documents_join_into_the_whole_scan() {
        let dir = tempfile::tempdir().unwrap();
        let sources = [Source::open(&source(dir.path())).unwrap()];
        let records: Vec<SourceRecord> = sources.iter().map(SourceRecord::of).collect();
        let settings = ScanSettings {
            resync_window: 0,
            bson_any: false,
            json: JsonMode::Relaxed,
        };
        let whole_span = [Span {
            source: 0,
            start: 0,
            end: sources[0].size,
        }];
        let spill = Spill::new(dir.path(), 1 << 20);
        let scan_with = |docs: usize, name: &str| {
            let out = dir.path().join(name);
            let at = Resumable {
                checkpoint: &dir.path().join(format!("{name}.partial")),
                every: CHECKPOINT_EVERY,
                docs,
                spill: &spill,
            };
            let scanned = scan_resumable(
                &sources,
                (records.clone(), &settings),
                &whole_span,
                &at,
                (&out, None),
                &Quiet,
            )
            .unwrap();
            if scanned.unsaved {
                scanned.index.save_for_now(&out).unwrap();
            }
            assert_eq!(scanned.index.covered, whole_span);
            saved_docs(&out)
        };
        // The first segment ends after the wave in which 10 000 documents were found.
        let first = scan(
            &sources,
            records.clone(),
            &settings,
            (whole_span[0], 10_000),
            &Quiet,
        );
        let wave = WAVE as u64 * CHUNK;
        assert_eq!(
            first.covered,
            [Span {
                end: wave,
                ..whole_span[0]
            }]
        );
        assert_eq!(first.docs.len(), 30_000);
        let whole = scan_with(usize::MAX, "whole.idx");
        let cut = scan_with(10_000, "cut.idx");
        assert_eq!(whole.len(), 90_000);
        assert_eq!(cut, whole);
    }
}
