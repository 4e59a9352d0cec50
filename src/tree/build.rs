//! Lays an [`Index`] out as the user-facing tree:
//!
//! ```text
//! /README.txt               what was scanned, when, with which options; counts; bad ranges
//! /flv/...                  every carved video (see [`super::flv`])
//! /mongo/...                recovered MongoDB documents (see [`super::mongo`])
//! ```

use std::path::{Path, PathBuf};

use super::Tree;
use crate::classify::Collections;
use crate::extent::{Extent, ExtentList};
use crate::index::{DocEntry, Index, Span};
use crate::report::Summary;

/// What `--known` found: for each entry of `index.flv`, the surviving file it matches.
pub struct KnownMatches<'a> {
    /// The `--known` directory.
    pub dir: &'a Path,
    /// Per FLV entry, the matching file relative to `dir`.
    pub matches: &'a [Option<PathBuf>],
}

/// Builds the tree for `index`, with its documents sorted into `collections`.
/// `fill_bad` (the mount's `--fill-bad-sectors`) only changes what `README.txt` says
/// about files that touch unreadable ranges.
pub fn build(
    index: &Index,
    known: Option<&KnownMatches>,
    collections: &Collections,
    fill_bad: bool,
) -> Tree {
    let mut tree = Tree::new();
    let matches = known.map(|k| k.matches);
    super::flv::add(&mut tree, index, matches);
    super::mongo::add(&mut tree, index, collections);
    let summary = Summary::new(index, collections, matches);
    let unreadable = unreadable_files(&tree, index);
    let readme = super::readme::text(
        &tree,
        &unreadable,
        index,
        &summary,
        known.map(|k| k.dir),
        fill_bad,
    );
    for &(ino, _) in &unreadable {
        tree.mark_unreadable(ino);
    }
    tree.add_file(
        "",
        "README.txt",
        ExtentList::from_bytes(readme.into_bytes()),
    );
    tree.finish();
    tree
}

/// Bytes of `[start, end)` of `source` that lie in the scan's unreadable ranges.
fn unreadable_bytes(bad: &[Span], source: u32, start: u64, end: u64) -> u64 {
    // Ranges are sorted and disjoint: walk back from the last one starting before `end`.
    let upto = bad.partition_point(|b| (b.source, b.start) < (source, end));
    bad[..upto]
        .iter()
        .rev()
        .take_while(|b| b.source == source && b.end > start)
        .map(|b| b.end.min(end) - b.start.max(start))
        .sum()
}

/// Files holding bytes of the scan's unreadable ranges: `(inode, unreadable bytes)`.
fn unreadable_files(tree: &Tree, index: &Index) -> Vec<(u64, u64)> {
    let bad = &index.bad_ranges;
    if bad.is_empty() {
        return Vec::new();
    }
    tree.files()
        .map(|(ino, file)| {
            let bytes = file
                .extents()
                .iter()
                .map(|e| match *e {
                    Extent::Source {
                        source,
                        offset,
                        len,
                    } => unreadable_bytes(bad, source, offset, offset + len),
                    Extent::Document { doc, .. } | Extent::Stored { doc, .. } => {
                        index.docs.get(doc as usize).map_or(0, |d| {
                            let (start, end) = stored_range(index, d);
                            unreadable_bytes(bad, d.source, start, end)
                        })
                    }
                    Extent::Bytes(_) => 0,
                })
                .sum();
            (ino, bytes)
        })
        .filter(|&(_, bytes)| bytes > 0)
        .collect()
}

/// The source bytes a document is read from: its own, or its WiredTiger block's.
fn stored_range(index: &Index, d: &DocEntry) -> (u64, u64) {
    match d.wt.and_then(|w| index.wt_pages.get(w.page as usize)) {
        Some(page) => (page.offset, page.offset + u64::from(page.disk_size)),
        None => (d.offset, d.offset + u64::from(d.len)),
    }
}
