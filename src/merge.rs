//! Joins indexes of disjoint byte ranges of the same sources into one, exactly as if the
//! ranges had been scanned at once: what `salvagefs merge` does with the parts of a disk
//! scanned in parallel (`scan --range`), and how an interrupted scan resumes from its
//! checkpoint.

use std::collections::HashMap;

use crate::index::{DocEntry, Index, Span, WtPage};
use crate::spans::{self, Outermost};

/// Why two indexes cannot be joined.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
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
}

/// Joins `a` and `b`, which must describe the same sources, scanned with the same
/// options, over disjoint byte ranges.
pub fn merge(a: Index, b: Index) -> Result<Index, MergeError> {
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
    // of both lists); documents follow their page.
    let mut wt_files: Vec<String> = a.wt_files.iter().chain(&b.wt_files).cloned().collect();
    wt_files.sort();
    wt_files.dedup();
    let rename = |names: &[String], file: Option<u32>| {
        let name = names.get(file? as usize)?;
        wt_files.binary_search(name).ok().map(|t| t as u32)
    };
    let first_of_b = a.wt_pages.len() as u32;
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

    let pages = (&renumber[..], first_of_b, &wt_pages[..]);
    let (docs, shapes) = join_docs((a.docs, a.shapes), (b.docs, b.shapes), pages);
    Ok(Index {
        tool_version: a.tool_version,
        created: a.created.max(b.created),
        scan_seconds: a.scan_seconds + b.scan_seconds,
        sources: a.sources,
        settings: a.settings,
        covered,
        flv,
        bad_ranges,
        rejected,
        docs,
        shapes,
        ns_headers,
        ns_entries,
        wt_pages,
        wt_catalog,
        wt_files,
        wt_internal,
        wt_checkpoints,
    })
}

/// The documents of `a` and `b` (each with its shapes) in one list, in place
/// (millions of documents are not copied again): `b`'s shapes and pages renumbered
/// into `a`'s (`renumber` maps `a`'s pages, then `b`'s from `first_of_b`, to
/// `wt_pages`), sorted, then the shapes renumbered by first use, as a single scan
/// numbers them.
fn join_docs(
    (a_docs, a_shapes): (Vec<DocEntry>, Vec<Vec<String>>),
    (b_docs, b_shapes): (Vec<DocEntry>, Vec<Vec<String>>),
    (renumber, first_of_b, wt_pages): (&[u32], u32, &[WtPage]),
) -> (Vec<DocEntry>, Vec<Vec<String>>) {
    let mut shapes = a_shapes;
    let mut known: HashMap<Vec<String>, u32> =
        (0..).zip(&shapes).map(|(i, s)| (s.clone(), i)).collect();
    let b_shapes: Vec<u32> = b_shapes
        .into_iter()
        .map(|s| {
            *known.entry(s.clone()).or_insert_with(|| {
                shapes.push(s);
                shapes.len() as u32 - 1
            })
        })
        .collect();
    let renumbered = |d: &mut DocEntry, page_base: u32| {
        if let Some(wt) = &mut d.wt {
            let at = wt.page.saturating_add(page_base) as usize;
            wt.page = renumber.get(at).copied().unwrap_or(u32::MAX);
        }
    };
    let mut docs = a_docs;
    docs.iter_mut().for_each(|d| renumbered(d, 0));
    docs.reserve_exact(b_docs.len());
    docs.extend(b_docs.into_iter().map(|mut d| {
        renumbered(&mut d, first_of_b);
        d.shape = b_shapes.get(d.shape as usize).copied().unwrap_or(u32::MAX);
        d
    }));
    docs.sort_unstable_by_key(spans::doc_order);
    // A part's documents inside a WiredTiger block that another part read (a file off
    // the sector grid is followed past the end of the part that holds its start).
    let mut claimed: Vec<Span> = wt_pages
        .iter()
        .map(|p: &WtPage| Span {
            source: p.source,
            start: p.offset,
            end: p.offset + u64::from(p.disk_size),
        })
        .collect();
    spans::drop_claimed(&mut docs, &mut claimed, |d| d);
    // One slot more, for documents whose shape their part did not list (none).
    let mut first_use: Vec<Option<u32>> = vec![None; shapes.len() + 1];
    let mut used = Vec::new();
    let mut outermost = Outermost::default();
    docs.retain_mut(|d| {
        if d.wt.is_none() && !outermost.keep(d.source, d.offset, d.len as u64) {
            return false;
        }
        let old = (d.shape as usize).min(shapes.len());
        d.shape = match first_use.get(old).copied().flatten() {
            Some(new) => new,
            None => {
                used.push(std::mem::take(
                    shapes.get_mut(old).unwrap_or(&mut Vec::new()),
                ));
                let new = used.len() as u32 - 1;
                if let Some(slot) = first_use.get_mut(old) {
                    *slot = Some(new);
                }
                new
            }
        };
        true
    });
    (docs, used)
}

/// Both lists in one, sorted by `key` (stable: `a`'s items first among equals).
fn joined<T, K: Ord>(mut a: Vec<T>, b: Vec<T>, key: impl FnMut(&T) -> K) -> Vec<T> {
    a.extend(b);
    a.sort_by_key(key);
    a
}
