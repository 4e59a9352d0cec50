//! The scan: drives the carvers over the sources in parallel and produces an [`Index`].
//!
//! Pass 1 reads every source once, in fixed-size chunks (with an overlap so a header or
//! a document straddling two chunks is seen whole, and counted only in the chunk where
//! it starts), on all cores, and collects FLV header offsets, BSON documents, MMAPv1
//! extent headers and WiredTiger pages (checksummed, decompressed and read there).
//! Pass 2 walks each FLV header's tag chain (reading only the tag headers it needs,
//! through a small read-ahead window), reads the few documents and WiredTiger blocks
//! longer than the overlap, follows WiredTiger files that lie off the sector grid,
//! traces pages to their files and fetches values stored in overflow pages.
//! Memory is bounded by the chunk size times the number of threads, whatever the size of
//! the disk.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use crate::carve::ByteSource;
use crate::carve::flv::{self, WalkLimits};
use crate::carve::fragments::{self, Continuations, Orphan};
use crate::carve::wiredtiger::SECTOR;
use crate::index::{FlvEntry, Index, ScanSettings, SourceRecord, Span};
use crate::merge;
use crate::scan::documents::BufferFinds;
use crate::source::Source;
use crate::spans;

pub mod documents;
pub mod wiredtiger;

/// Bytes read per work item of pass 1.
const CHUNK: u64 = 8 << 20;
/// Bytes read past the end of a chunk: documents up to this long that start in the
/// chunk are validated there; longer ones are read again in pass 2.
const OVERLAP: u64 = 64 << 10;

/// What pass 1 found in one chunk.
struct ChunkFinds {
    /// `(source, offset)` of FLV headers.
    flv_headers: Vec<(u32, u64)>,
    /// Runs of tags without a header: possible fragment starts.
    orphans: Vec<Orphan>,
    /// Documents and MMAPv1 headers.
    docs: BufferFinds,
    /// WiredTiger pages and their documents.
    pages: wiredtiger::PageFinds,
}

thread_local! {
    static CHUNK_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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

/// Bytes scanned between two checkpoints, unless told otherwise: a multiple of the
/// chunk size, so that checkpoints do not move chunk boundaries.
pub const CHECKPOINT_EVERY: u64 = 512 * CHUNK;

/// Scans the byte ranges `spans` of `sources` segment by segment, saving what is done
/// to `checkpoint` after each segment of `every` bytes; a matching checkpoint left by
/// an interrupted scan is picked up, so only the rest is scanned. The result equals a
/// scan in one go (the segments are joined by [`merge`]); failing to join them is an
/// error, never an index that silently lost what was found.
pub fn scan_resumable(
    sources: &[Source],
    records: Vec<SourceRecord>,
    settings: &ScanSettings,
    spans: &[Span],
    (checkpoint, every): (&Path, u64),
    progress: &dyn Progress,
) -> Result<Index, merge::MergeError> {
    let every = every.max(CHUNK).next_multiple_of(CHUNK);
    let mut done = Index::load(checkpoint).ok().filter(|p| {
        p.sources == records
            && p.settings == *settings
            && spans::missing(&p.covered, spans).is_empty()
    });
    let total: u64 = spans.iter().map(Span::len).sum();
    progress.begin(total);
    let todo = match &done {
        Some(partial) => {
            let have: u64 = partial.covered.iter().map(Span::len).sum();
            progress.warn(&format!(
                "resuming the interrupted scan saved in {}: {have} of {total} bytes already done",
                checkpoint.display()
            ));
            progress.advance(have);
            spans::missing(spans, &partial.covered)
        }
        None => spans.to_vec(),
    };
    let segments: Vec<Span> = todo
        .iter()
        .flat_map(|s| {
            (s.start..s.end)
                .step_by(every as usize)
                .map(move |start| Span {
                    start,
                    end: (start + every).min(s.end),
                    ..*s
                })
        })
        .collect();
    for (i, segment) in segments.iter().enumerate() {
        let part = scan(sources, records.clone(), settings, &[*segment], progress);
        done = Some(match done {
            None => part,
            Some(so_far) => merge::merge(so_far, part)?,
        });
        if i + 1 < segments.len()
            && let Some(so_far) = &done
            && let Err(e) = so_far.save(checkpoint)
        {
            progress.warn(&format!(
                "cannot save progress to {}: {e}",
                checkpoint.display()
            ));
        }
    }
    let _ = std::fs::remove_file(checkpoint);
    Ok(done.unwrap_or_else(|| Index::empty(records, settings, spans)))
}

/// Scans the byte ranges `spans` of `sources` (all on all cores) and returns the index
/// of everything that starts in them.
pub fn scan(
    sources: &[Source],
    records: Vec<SourceRecord>,
    settings: &ScanSettings,
    spans: &[Span],
    progress: &dyn Progress,
) -> Index {
    let started = Instant::now();
    let bad = Mutex::new(Vec::new());

    // (source, chunk start, chunk length): chunks start at each span's start.
    let work: Vec<(u32, u64, u64)> = spans
        .iter()
        .flat_map(|s| {
            (s.start..s.end)
                .step_by(CHUNK as usize)
                .map(move |at| (s.source, at, (s.end - at).min(CHUNK)))
        })
        .collect();
    let per_chunk: Vec<ChunkFinds> = work
        .par_iter()
        .map(|&(src, start, len)| {
            let source = &sources[src as usize];
            let len = len as usize;
            let with_overlap = (source.size - start).min(CHUNK + OVERLAP) as usize;
            let found = CHUNK_BUF.with_borrow_mut(|buf| {
                // One buffer per thread, reused: a fresh 8 MiB allocation per chunk would
                // be page-faulted in again every time and cost more than the read.
                buf.resize((CHUNK + OVERLAP) as usize, 0);
                let unreadable = source.read_salvaging(&mut buf[..with_overlap], start);
                if !unreadable.is_empty() {
                    let mut bad = bad.lock().unwrap_or_else(|e| e.into_inner());
                    bad.extend(
                        unreadable
                            .into_iter()
                            .filter(|r| r.0 < start + len as u64)
                            .map(|(s, e)| {
                                log::warn!(
                                    "{}: unreadable bytes {s}..{e}, skipped",
                                    source.path.display()
                                );
                                Span {
                                    source: src,
                                    start: s,
                                    end: e.min(start + len as u64),
                                }
                            }),
                    );
                }
                let chunk = &buf[..with_overlap];
                let flv_headers = flv::find_headers(chunk, len)
                    .into_iter()
                    .map(|p| (src, start + p as u64))
                    .collect();
                let orphans = fragments::find_orphans(chunk, start, len);
                let docs = documents::scan_buffer(
                    chunk,
                    start,
                    len,
                    src,
                    settings.bson_any,
                    settings.json,
                );
                let pages = wiredtiger::scan_buffer(chunk, start, len, src, settings.json);
                ChunkFinds {
                    flv_headers,
                    orphans,
                    docs,
                    pages,
                }
            });
            progress.advance(len as u64);
            found
        })
        .collect();
    let mut headers = Vec::new();
    let (mut deferred, mut ns_extents) = (Vec::new(), Vec::new());
    // One list for every document, sized once: the scan's largest allocation.
    let total = per_chunk
        .iter()
        .map(|c| c.docs.docs.len() + c.pages.docs.len())
        .sum();
    let mut found_docs = Vec::with_capacity(total);
    let mut orphans: Vec<Vec<Orphan>> = vec![Vec::new(); sources.len()];
    let mut pages = wiredtiger::PageFinds::default();
    for (found, &(src, _, _)) in per_chunk.into_iter().zip(&work) {
        pages.append(found.pages, &mut found_docs);
        let finds = found.docs;
        headers.extend(found.flv_headers);
        orphans[src as usize].extend(found.orphans);
        found_docs.extend(finds.docs);
        deferred.extend(finds.deferred);
        ns_extents.extend(finds.extents);
    }
    headers.sort_unstable();

    progress.phase(&format!("walking {} FLV candidates", headers.len()));
    let limits = WalkLimits {
        resync_window: settings.resync_window,
        ..WalkLimits::default()
    };
    let mut fragments: Vec<Continuations> = orphans
        .iter()
        .enumerate()
        .map(|(src, found)| {
            let own: Vec<u64> = headers
                .iter()
                .filter(|h| h.0 as usize == src)
                .map(|h| h.1)
                .collect();
            Continuations::new(found, &own)
        })
        .collect();
    let walk_all = |headers: &[(u32, u64)], fragments: &[Continuations]| -> Vec<FlvEntry> {
        headers
            .par_iter()
            .filter_map(|&(src, offset)| {
                let reader = ReadAhead::new(&sources[src as usize]);
                let fragments = &fragments[src as usize];
                flv::walk(&reader, offset, &limits, fragments).map(|carved| FlvEntry {
                    source: src,
                    carved,
                })
            })
            .collect()
    };
    let mut flv = walk_all(&headers, &fragments);
    // Where one recording provably continues is other data for every other recording:
    // files whose joins were uncertain are walked again knowing those fragment starts.
    // Files cut off mid-stream are walked again too: now their lost fragments can be
    // stepped over to the next one in time, which no other file covers.
    let uncertain: Vec<(u32, u64)> = flv
        .iter()
        .filter(|e| {
            e.carved.status == flv::Status::Truncated
                || e.carved.joins.iter().any(|j| j.alternatives > 0)
        })
        .map(|e| (e.source, e.carved.offset))
        .collect();
    if !uncertain.is_empty() {
        for e in &flv {
            let proven = e.carved.joins.iter().filter(|j| j.alternatives == 0);
            fragments[e.source as usize].mark_starts(proven.map(|j| j.to));
        }
        for (src, fragments) in fragments.iter_mut().enumerate() {
            let walked = flv.iter().filter(|e| e.source as usize == src);
            fragments.allow_holes(walked.flat_map(|e| e.carved.extents.clone()).collect());
        }
        let again = walk_all(&uncertain, &fragments);
        for entry in again {
            if let Some(old) = flv
                .iter_mut()
                .find(|e| (e.source, e.carved.offset) == (entry.source, entry.carved.offset))
            {
                *old = entry;
            }
        }
    }

    progress.phase(&format!("reading {} long BSON candidates", deferred.len()));
    found_docs.par_extend(deferred.par_iter().filter_map(|&(src, offset, deleted)| {
        documents::read_deferred(&sources[src as usize], src, offset, deleted, settings.json)
    }));

    // Files off the sector grid, each followed up to the next one of the same alignment
    // (past the end of this scan's range if need be: the scan of the next range, which
    // does not see the file's start, would not find its blocks).
    let mut unaligned = std::mem::take(&mut pages.unaligned);
    unaligned.sort_unstable();
    let follows: Vec<(u32, u64, u64)> = unaligned
        .iter()
        .enumerate()
        .map(|(i, &(src, start))| {
            let next = unaligned[i + 1..]
                .iter()
                .find(|&&(s, o)| s == src && o % SECTOR == start % SECTOR)
                .map_or(sources[src as usize].size, |&(_, o)| o);
            (src, start, next)
        })
        .collect();
    let followed: Vec<wiredtiger::PageFinds> = follows
        .par_iter()
        .map(|&(src, start, end)| {
            wiredtiger::follow(&sources[src as usize], src, start, end, settings.json)
        })
        .collect();
    for found in followed {
        pages.append(found, &mut found_docs);
    }

    progress.phase(&format!(
        "reading {} long WiredTiger blocks, {} overflow values",
        pages.deferred.len(),
        pages.overflow_refs.len()
    ));
    let long_blocks: Vec<wiredtiger::PageFinds> = std::mem::take(&mut pages.deferred)
        .par_iter()
        .map(|&(src, offset)| {
            wiredtiger::read_deferred(&sources[src as usize], src, offset, settings.json)
        })
        .collect();
    for found in long_blocks {
        pages.append(found, &mut found_docs);
    }
    let wt_trees = wiredtiger::assign_trees(&mut pages);
    wiredtiger::adopt_orphans(&mut pages, &found_docs);
    wiredtiger::resolve_overflow(&mut pages, sources, settings.json, &mut found_docs);
    wiredtiger::order(&mut pages, &mut found_docs);
    wiredtiger::drop_claimed(&mut found_docs, &mut pages.claimed);
    let (docs, shapes) = documents::finish(found_docs);
    ns_extents.sort_by_key(|e| (e.source, e.offset));

    let mut bad_ranges = bad.into_inner().unwrap_or_else(|e| e.into_inner());
    bad_ranges.sort_by_key(|b| (b.source, b.start));
    Index {
        scan_seconds: started.elapsed().as_secs_f64(),
        flv,
        bad_ranges,
        docs,
        shapes,
        ns_extents,
        wt_pages: pages.pages,
        wt_catalog: pages.catalog,
        wt_trees,
        ..Index::empty(records, settings, spans)
    }
}

/// A [`ByteSource`] over a source with a read-ahead window, so that walking a chain of
/// small tags costs one `pread` per window, not two per tag. Unreadable bytes read as
/// missing (the walk treats them like a break), never as a crash.
pub struct ReadAhead<'a> {
    source: &'a Source,
    window: RefCell<(u64, Vec<u8>)>,
}

impl<'a> ReadAhead<'a> {
    const WINDOW: usize = 1 << 20;

    /// A reader with an empty window.
    pub fn new(source: &'a Source) -> ReadAhead<'a> {
        ReadAhead {
            source,
            window: RefCell::new((0, Vec::new())),
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
        let (start, data) = &mut *window;
        if offset < *start || end > *start + data.len() as u64 {
            if buf.len() > Self::WINDOW / 2 {
                return self.source.read_exact_at(buf, offset).is_ok();
            }
            let n = (self.source.size - offset).min(Self::WINDOW as u64) as usize;
            data.resize(n, 0);
            if self.source.read_exact_at(data, offset).is_err() {
                data.clear();
                return self.source.read_exact_at(buf, offset).is_ok();
            }
            *start = offset;
        }
        let at = (offset - *start) as usize;
        buf.copy_from_slice(&data[at..at + buf.len()]);
        true
    }
}
