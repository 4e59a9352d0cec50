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

    // Documents of both, each with the field names of its own index, then renumbered
    // by first use, as a single scan numbers them.
    let mut docs: Vec<(DocEntry, &[String])> = Vec::with_capacity(a.docs.len() + b.docs.len());
    for (list, shapes, page_base) in [(a.docs, &a.shapes, 0), (b.docs, &b.shapes, first_of_b)] {
        docs.extend(list.into_iter().map(|mut d| {
            if let Some(wt) = &mut d.wt {
                wt.page = renumber
                    .get((wt.page + page_base) as usize)
                    .copied()
                    .unwrap_or(u32::MAX);
            }
            let fields = shapes.get(d.shape as usize).map_or(&[][..], Vec::as_slice);
            (d, fields)
        }));
    }
    docs.sort_by_key(|(d, _)| spans::disk_order(d));
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
    spans::drop_claimed(&mut docs, &mut claimed, |(d, _)| d);
    let mut shapes: Vec<Vec<String>> = Vec::new();
    let mut numbers: HashMap<&[String], u32> = HashMap::new();
    let mut outermost = Outermost::default();
    let mut kept = Vec::with_capacity(docs.len());
    for (mut d, fields) in docs {
        if d.wt.is_none() && !outermost.keep(d.source, d.offset, d.len as u64) {
            continue;
        }
        d.shape = *numbers.entry(fields).or_insert_with(|| {
            shapes.push(fields.to_vec());
            shapes.len() as u32 - 1
        });
        kept.push(d);
    }
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
        docs: kept,
        shapes,
        ns_headers,
        wt_pages,
        wt_catalog,
        wt_files,
        wt_internal,
        wt_checkpoints,
    })
}

/// Both lists in one, sorted by `key` (stable: `a`'s items first among equals).
fn joined<T, K: Ord>(mut a: Vec<T>, b: Vec<T>, key: impl FnMut(&T) -> K) -> Vec<T> {
    a.extend(b);
    a.sort_by_key(key);
    a
}
