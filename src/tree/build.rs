//! Lays an index, opened for serving ([`Served`]), out as the user-facing tree:
//!
//! ```text
//! /README.txt               what was scanned, when, with which options; counts; bad ranges
//! /flv/...                  every carved video (see [`super::flv`])
//! /mongo/...                recovered MongoDB documents (see [`super::mongo`])
//! ```

use std::path::{Path, PathBuf};

use super::Tree;
use crate::extent::ExtentList;
use crate::report::Summary;
use crate::served::Served;

/// What `--known` found: for each entry of `index.flv`, the surviving file it matches.
pub struct KnownMatches<'a> {
    /// The `--known` directory.
    pub dir: &'a Path,
    /// Per FLV entry, the matching file relative to `dir`.
    pub matches: &'a [Option<PathBuf>],
}

/// Builds the tree for the index `served`. `fill_bad` (the mount's
/// `--fill-bad-sectors`) only changes what `README.txt` says about files that touch
/// unreadable ranges.
pub fn build(served: &Served, known: Option<&KnownMatches>, fill_bad: bool) -> Tree {
    let mut tree = Tree::new();
    let index = &served.index;
    let matches = known.map(|k| k.matches);
    let mut unreadable = super::flv::add(&mut tree, index, matches);
    unreadable.extend(super::mongo::add(&mut tree, served));
    let summary = Summary::new(index, &served.classified, matches);
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
