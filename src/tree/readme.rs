//! The mount's `README.txt`: what was scanned, when, with which options; the scan's
//! [`Summary`]; which files touch unreadable ranges; how to use the tree.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use super::Tree;
use crate::index::Index;
use crate::report::Summary;
use crate::source::SourceKind;

/// Appends to `readme` the files with unreadable bytes and what a read of them does:
/// the answer to "which of my files are damaged?".
fn describe_unreadable(tree: &Tree, files: &[(u64, u64)], fill_bad: bool, readme: &mut String) {
    if files.is_empty() {
        readme.push_str("No file touches an unreadable range.\n");
        return;
    }
    readme.push_str(if fill_bad {
        "Files with unreadable ranges, read as zeros (mounted with --fill-bad-sectors):\n"
    } else {
        "Files with unreadable ranges; reads of those bytes fail with EIO\n\
         (mount with --fill-bad-sectors to read zeros there instead):\n"
    });
    for &(ino, bytes) in files {
        let _ = writeln!(readme, "  {}: {bytes} unreadable bytes", tree.path(ino));
    }
}

/// The text of `README.txt`: what was scanned, the [`Summary`]'s counts, the damaged
/// files, and how to use the tree.
pub fn text(
    tree: &Tree,
    unreadable: &[(u64, u64)],
    index: &Index,
    summary: &Summary,
    known_dir: Option<&Path>,
    fill_bad: bool,
) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "salvagefs {} — read-only view of recovered data\n",
        index.tool_version
    );
    let when = UNIX_EPOCH + Duration::from_secs(index.created);
    let _ = writeln!(
        r,
        "Scanned {} ({:.1} s):",
        humantime::format_rfc3339_seconds(when),
        index.scan_seconds
    );
    for (i, s) in index.sources.iter().enumerate() {
        let kind = match s.kind {
            SourceKind::Image => "file",
            SourceKind::BlockDevice { .. } => "block device",
        };
        let _ = writeln!(
            r,
            "  {}. {} ({} bytes, {kind})",
            i + 1,
            s.path.display(),
            s.size
        );
    }
    let _ = writeln!(
        r,
        "Options: repair window {} bytes",
        index.settings.resync_window
    );
    if let Some(dir) = known_dir {
        let _ = writeln!(r, "Known files from: {}", dir.display());
    }
    r.push('\n');
    r.push_str(&summary.readme_lines());
    if index.bad_ranges.is_empty() {
        let _ = writeln!(r, "Unreadable ranges: none");
    } else {
        let (ranges, bytes) = summary.unreadable;
        let _ = writeln!(
            r,
            "Unreadable ranges: {ranges} ({bytes} bytes, read as zeros by the scan):"
        );
        for b in &index.bad_ranges {
            let _ = writeln!(r, "  source {}: {}..{}", b.source + 1, b.start, b.end);
        }
        describe_unreadable(tree, unreadable, fill_bad, &mut r);
    }
    r.push_str(&tree_guide(summary));
    r
}

/// How to read the tree: the parts that exist in this mount, what the statuses mean, and
/// how to copy.
fn tree_guide(summary: &Summary) -> String {
    let mut g = String::from(
        "\nThe tree:\n\
         \x20 flv/<offset>.flv        a carved video; <offset> is its byte offset on the source\n",
    );
    if summary.flv_known.is_some() {
        g.push_str(
            "  flv/known/<offset>.flv  a carved video identical to a file under --known (not lost)\n",
        );
    }
    if summary.flv_headless > 0 {
        g.push_str(
            "  flv/headless/<offset>.flv  a recording whose header was overwritten, from its first\n\
             \x20                         keyframe, behind a made-up header (see its .extents.txt)\n",
        );
    }
    g.push_str(
        "  flv/candidates.tsv      every candidate: size, duration, streams, status, skipped gaps,\n\
         \x20                         fragments; <file>.extents.txt for a file made of pieces\n",
    );
    if summary.mongo.collections > 0 {
        g.push_str(
            "  mongo/summary.tsv       per collection: documents, duplicates, conflicts, deleted, doubted,\n\
             \x20                         liveness_by, named_by\n\
             \x20 mongo/dump/<db>/        <coll>.bson + .metadata.json: mongorestore --dir mongo/dump\n\
             \x20 mongo/json/<db>/        <coll>.json: one Extended JSON document per line (mongoimport, jq)\n\
             \x20 mongo/docs/<db>/<coll>/ <_id>.json: one indented document per file\n\
             \x20 mongo/conflicts/        every version of an _id found with different contents\n\
             \x20 mongo/deleted/          deleted records (unlinked by MMAPv1, or no longer in their\n\
             \x20                         WiredTiger file's newest checkpoint): recovered, never mixed in\n",
        );
    }
    if !summary.wt_pages_by_codec.is_empty() {
        g.push_str(
            "  mongo/wiredtiger.tsv    mongod's catalog as found: which .wt file held which collection\n",
        );
    }
    g.push_str(
        "Status: complete = the tag chain ran cleanly to its end; repaired = damaged regions were\n\
         skipped (see 'skipped'); reassembled = put together from fragments lying apart on the\n\
         disk (see 'fragments' and <file>.extents.txt); truncated = it ends before its own\n\
         metadata says, or where the source ends (maybe repaired or reassembled that far).\n\
         Everything here is read-only and computed on read from the source; copy what you need:\n\
         \x20 cp flv/0000001234567.flv ~/rescued/    rsync -a ./ backup:salvage/\n",
    );
    g
}
