//! Joins indexes of disjoint byte ranges of the same sources into one, exactly as if the
//! ranges had been scanned at once: what `salvagefs merge` does with the parts of a disk
//! scanned in parallel (`scan --range`), and how a scan joins the segments it saved as
//! it went (so an interrupted scan resumes). The documents stream from the parts'
//! files through an external sort into the joined file: never all in memory.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::index::file::{self, Section};
use crate::index::stream::DocsFile;
use crate::index::{DocEntry, Index, IndexError, Span, WtPage, codec};
use crate::spans::{self, Outermost};
use crate::spill::Spill;

/// Why indexes cannot be joined.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Different sources, or the same ones changed in between.
    #[error("they describe different sources (or a source changed between the scans)")]
    Sources,
    /// Different scan options.
    #[error("they were made with different scan options")]
    Settings,
    /// The same bytes twice.
    #[error("both cover bytes {start}..{end} of source {source}", source = .0.source + 1, start = .0.start, end = .0.end)]
    Overlap(Span),
    /// A part or the joined index could not be read or written.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One index to join: what it found besides documents, and the file holding them.
pub struct Part {
    /// The index, without its documents.
    pub index: Index,
    /// Its documents.
    pub docs: DocsFile,
    /// Its file.
    pub path: PathBuf,
}

impl Part {
    /// Opens the index at `path` (its documents stay in the file).
    pub fn open(path: &Path) -> Result<Part, IndexError> {
        let index = Index::from_file(&file::map(path)?, false)?;
        let docs = DocsFile::open(path)?;
        Ok(Part {
            index,
            docs,
            path: path.to_path_buf(),
        })
    }
}

/// Per part: where its WiredTiger pages and its shapes went in the joined index.
struct Renumbered {
    pages: Vec<u32>,
    shapes: Vec<u32>,
}

/// Joins `parts`, which must describe the same sources, scanned with the same options,
/// over disjoint byte ranges, into the index saved at `out` (unclassified), their
/// documents merged in disk order through a file of `spill`'s; returns it without its documents, and how many it holds. The
/// joined index keeps the latest scan time, or `created` when given; it is synced to
/// disk with `sync` (not when it is classified right away).
pub fn join(
    parts: Vec<Part>,
    spill: &Spill,
    (out, created, sync): (&Path, Option<u64>, bool),
) -> Result<(Index, usize), MergeError> {
    if let [one] = &parts[..] {
        // Already as a scan makes it: copied, not sorted again.
        let mut whole = one.index.clone();
        whole.created = created.unwrap_or(whole.created);
        file::save_atomically(out, sync, |w| {
            whole.write_head_and_meta(w)?;
            w.copied_section(Section::Docs, one.docs.section()?)
        })?;
        return Ok((whole, one.docs.len()));
    }
    let docs: Vec<DocsFile> = parts.iter().map(|p| p.docs.clone()).collect();
    let (mut whole, renumbered) = join_meta(parts.into_iter().map(|p| p.index).collect())?;
    whole.created = created.unwrap_or(whole.created);
    // Each part's documents are in disk order, and stay so renumbered: merged, not
    // sorted again.
    let mut readers = Vec::with_capacity(docs.len());
    for (part, how) in docs.iter().zip(renumbered) {
        let renumber = move |d: io::Result<DocEntry>| {
            let mut d = d?;
            if let Some(wt) = &mut d.wt {
                wt.page = how.pages.get(wt.page as usize).copied().unwrap_or(u32::MAX);
            }
            d.shape = how
                .shapes
                .get(d.shape as usize)
                .copied()
                .unwrap_or(u32::MAX);
            Ok::<_, io::Error>(Ordered(d))
        };
        readers.push(part.read_ahead()?.map(renumber));
    }
    let mut heads = BinaryHeap::new();
    for (n, r) in readers.iter_mut().enumerate() {
        if let Some(d) = r.next() {
            heads.push(Reverse((d?, n)));
        }
    }
    // Written once and copied into the joined index behind its count: in memory when
    // the parts' documents fit a sort's budget, a round trip through a file saved.
    let mut kept = spill.stream(docs.iter().map(DocsFile::bytes).sum())?;
    let mut count = 0usize;
    let mut keep = Keep::new(&whole);
    let mut entry = Vec::new();
    while let Some(Reverse((Ordered(d), n))) = heads.pop() {
        if let Some(next) = readers[n].next() {
            heads.push(Reverse((next?, n)));
        }
        if let Some(d) = keep.doc(d) {
            entry.clear();
            codec::encode(&d, &mut entry);
            kept.write_all(&entry)?;
            count += 1;
        }
    }
    whole.shapes = keep.shapes;
    let mut kept = kept.read_back()?;
    file::save_atomically(out, sync, |w| {
        whole.write_head_and_meta(w)?;
        w.section(Section::Docs, |o| {
            postcard::to_io(&count, &mut *o).map_err(io::Error::other)?;
            io::copy(&mut kept, o).map(|_| ())
        })
    })?;
    Ok((whole, count))
}

/// A document ordered as the index orders them.
#[derive(PartialEq, Eq)]
struct Ordered(DocEntry);

impl Ord for Ordered {
    fn cmp(&self, other: &Ordered) -> std::cmp::Ordering {
        spans::doc_order(&self.0).cmp(&spans::doc_order(&other.0))
    }
}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Ordered) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Which of the sorted documents the joined index keeps, its shapes numbered by first
/// use as a single scan numbers them.
struct Keep {
    /// Blocks of WiredTiger pages: a part's documents inside one that another part
    /// read (a file off the sector grid is followed past the end of the part that
    /// holds its start) are the page's.
    claimed: Vec<Span>,
    outermost: Outermost,
    /// Every part's shapes, as numbered in the sort.
    all: Vec<Vec<String>>,
    first_use: Vec<Option<u32>>,
    shapes: Vec<Vec<String>>,
}

impl Keep {
    fn new(whole: &Index) -> Keep {
        let mut claimed: Vec<Span> = whole
            .wt_pages
            .iter()
            .map(|p: &WtPage| Span {
                source: p.source,
                start: p.offset,
                end: p.offset + u64::from(p.disk_size),
            })
            .collect();
        claimed.sort_unstable();
        Keep {
            claimed,
            outermost: Outermost::default(),
            // One slot more, for documents whose shape their part did not list (none).
            first_use: vec![None; whole.shapes.len() + 1],
            all: whole.shapes.clone(),
            shapes: Vec::new(),
        }
    }

    /// The document, its shape renumbered, unless it lies in another's block or inside
    /// another document.
    fn doc(&mut self, mut d: DocEntry) -> Option<DocEntry> {
        if d.wt.is_none() {
            let after = self
                .claimed
                .partition_point(|s| (s.source, s.start) <= (d.source, d.offset));
            let inside = self.claimed[..after]
                .last()
                .is_some_and(|s| s.source == d.source && d.offset < s.end);
            if inside || !self.outermost.keep(d.source, d.offset, d.len as u64) {
                return None;
            }
        }
        let old = (d.shape as usize).min(self.all.len());
        d.shape = match self.first_use[old] {
            Some(new) => new,
            None => {
                let fields = self.all.get_mut(old).map(std::mem::take);
                self.shapes.push(fields.unwrap_or_default());
                let new = self.shapes.len() as u32 - 1;
                self.first_use[old] = Some(new);
                new
            }
        };
        Some(d)
    }
}

/// Joins everything but the documents of `parts`; the shapes are every part's, in
/// order (renumbered by first use as the documents are written).
fn join_meta(parts: Vec<Index>) -> Result<(Index, Vec<Renumbered>), MergeError> {
    let mut parts = parts.into_iter();
    let Some(mut whole) = parts.next() else {
        return Err(MergeError::Io(io::Error::other("nothing to join")));
    };
    let mut renumbered = vec![Renumbered {
        pages: (0..whole.wt_pages.len() as u32).collect(),
        shapes: (0..whole.shapes.len() as u32).collect(),
    }];
    for b in parts {
        let (joined, how) = join_two(whole, b)?;
        whole = joined;
        for r in &mut renumbered {
            r.pages = r.pages.iter().map(|&p| how.0[p as usize]).collect();
        }
        renumbered.push(Renumbered {
            pages: how.1,
            shapes: how.2,
        });
    }
    Ok((whole, renumbered))
}

/// Joins `b` into `a`: where `a`'s pages went, where `b`'s pages went, and where
/// `b`'s shapes went.
#[allow(clippy::type_complexity)]
fn join_two(a: Index, b: Index) -> Result<(Index, (Vec<u32>, Vec<u32>, Vec<u32>)), MergeError> {
    if a.sources != b.sources {
        return Err(MergeError::Sources);
    }
    if a.settings != b.settings {
        return Err(MergeError::Settings);
    }
    let covered = spans::union(&a.covered, &b.covered).map_err(MergeError::Overlap)?;
    let flv = joined(a.flv, b.flv, |e| (e.source, e.carved.offset));
    let mut rejected = a.rejected;
    rejected.merge(b.rejected);
    let bad_ranges = joined(a.bad_ranges, b.bad_ranges, |r| (r.source, r.start));
    let ns_headers = joined(a.ns_headers, b.ns_headers, |e| (e.source, e.offset));
    let mut ns_entries = joined(a.ns_entries, b.ns_entries, Clone::clone);
    ns_entries.dedup();

    // WiredTiger pages of both in disk order (their file names renumbered in the union
    // of both lists).
    let mut wt_files: Vec<String> = a.wt_files.iter().chain(&b.wt_files).cloned().collect();
    wt_files.sort();
    wt_files.dedup();
    let rename = |names: &[String], file: Option<u32>| {
        let name = names.get(file? as usize)?;
        wt_files.binary_search(name).ok().map(|t| t as u32)
    };
    let first_of_b = a.wt_pages.len();
    let pages: Vec<WtPage> = a
        .wt_pages
        .into_iter()
        .map(|p| WtPage {
            file: rename(&a.wt_files, p.file),
            ..p
        })
        .chain(b.wt_pages.into_iter().map(|p| WtPage {
            file: rename(&b.wt_files, p.file),
            ..p
        }))
        .collect();
    let (wt_pages, renumber) = spans::in_disk_order(pages);
    let mut wt_internal = joined(a.wt_internal, b.wt_internal, Clone::clone);
    wt_internal.dedup();
    let mut wt_checkpoints = joined(a.wt_checkpoints, b.wt_checkpoints, Clone::clone);
    wt_checkpoints.dedup();
    let mut wt_catalog = a.wt_catalog;
    wt_catalog.extend(b.wt_catalog);
    wt_catalog.sort();
    wt_catalog.dedup();

    let mut shapes = a.shapes;
    let mut known: HashMap<Vec<String>, u32> =
        (0..).zip(&shapes).map(|(i, s)| (s.clone(), i)).collect();
    let b_shapes: Vec<u32> = b
        .shapes
        .into_iter()
        .map(|s| {
            *known.entry(s.clone()).or_insert_with(|| {
                shapes.push(s);
                shapes.len() as u32 - 1
            })
        })
        .collect();
    let how = (
        renumber[..first_of_b].to_vec(),
        renumber[first_of_b..].to_vec(),
        b_shapes,
    );
    let whole = Index {
        tool_version: a.tool_version,
        created: a.created.max(b.created),
        scan_seconds: a.scan_seconds + b.scan_seconds,
        sources: a.sources,
        settings: a.settings,
        covered,
        flv,
        bad_ranges,
        rejected,
        docs: Vec::new(),
        shapes,
        ns_headers,
        ns_entries,
        wt_pages,
        wt_catalog,
        wt_files,
        wt_internal,
        wt_checkpoints,
    };
    Ok((whole, how))
}

/// Both lists in one, sorted by `key` (stable: `a`'s items first among equals).
fn joined<T, K: Ord>(mut a: Vec<T>, b: Vec<T>, key: impl FnMut(&T) -> K) -> Vec<T> {
    a.extend(b);
    a.sort_by_key(key);
    a
}
