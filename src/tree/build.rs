//! Lays an [`Index`] out as the user-facing tree:
//!
//! ```text
//! /README.txt               what was scanned, when, with which options; counts; bad ranges
//! /flv/<offset>.flv         every carved video nobody knows about (the lost ones)
//! /flv/known/<offset>.flv   with --known: candidates identical to a surviving file
//! /flv/candidates.tsv       one line per candidate: size, duration, status, known-as...
//! /mongo/...                recovered MongoDB documents (see [`super::mongo`])
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::Tree;
use crate::classify::Catalog;
use crate::extent::{Extent, ExtentList};
use crate::index::{DocEntry, FlvEntry, Index, Span};

/// The file name of a carved FLV: zero-padded decimal offset so `ls` order is disk
/// order; with several sources, prefixed by the source number (1-based).
pub fn flv_name(index: &Index, entry: &FlvEntry) -> String {
    if index.sources.len() > 1 {
        format!("{}-{:013}.flv", entry.source + 1, entry.carved.offset)
    } else {
        format!("{:013}.flv", entry.carved.offset)
    }
}

/// The bytes of a carved FLV as an extent list.
pub fn flv_extents(entry: &FlvEntry) -> ExtentList {
    ExtentList::new(
        entry
            .carved
            .extents
            .iter()
            .map(|&(offset, len)| Extent::Source {
                source: entry.source,
                offset,
                len,
            }),
    )
}

/// Per FLV entry, the other entries that use some of the same source bytes: a fragment
/// claimed by two reassembled files is shown in both, never silently.
fn shared_fragments(index: &Index) -> Vec<Vec<usize>> {
    let mut pieces: Vec<(u32, u64, u64, usize)> = index
        .flv
        .iter()
        .enumerate()
        .filter(|(_, e)| e.carved.extents.len() > 1)
        .flat_map(|(i, e)| {
            e.carved
                .extents
                .iter()
                .map(move |&(o, l)| (e.source, o, o + l, i))
        })
        .collect();
    pieces.sort_unstable();
    let mut shared = vec![Vec::new(); index.flv.len()];
    for (k, a) in pieces.iter().enumerate() {
        for b in pieces[k + 1..]
            .iter()
            .take_while(|b| b.0 == a.0 && b.1 < a.2)
        {
            if a.3 != b.3 && !shared[a.3].contains(&b.3) {
                shared[a.3].push(b.3);
                shared[b.3].push(a.3);
            }
        }
    }
    shared
}

/// `<file>.extents.txt`: where each piece of a repaired or reassembled file comes from,
/// so a user can check what was joined.
fn extents_view(path: &str, entry: &FlvEntry, shared_with: &[usize]) -> String {
    let c = &entry.carved;
    let mut t = format!(
        "# {path}: {} from {} pieces of source {}\n# file_offset\tsource_offset\tbytes\thow it continues\n",
        c.status.as_str(),
        c.extents.len(),
        entry.source + 1
    );
    let mut at = 0;
    for (k, &(offset, len)) in c.extents.iter().enumerate() {
        let next = c.extents.get(k + 1).map(|e| e.0);
        let how = match next {
            None => "end of the recording".to_string(),
            Some(to) => match c.joins.iter().find(|j| j.to == to) {
                Some(j) if j.lost_ms.is_some() => {
                    let (a, b) = j.lost_ms.unwrap_or_default();
                    format!(
                        "the next fragment is lost ({:.3}s-{:.3}s missing); continues at the keyframe at {to}, the next fragment in time: check this join",
                        a as f64 / 1000.0,
                        b as f64 / 1000.0
                    )
                }
                Some(j) if j.alternatives == 0 => {
                    format!(
                        "fragment continues at {to} ({:.3}s), proven by the straddling tag",
                        j.at_ms as f64 / 1000.0
                    )
                }
                Some(j) => format!(
                    "fragment continues at {to} ({:.3}s); {} other fits: check this join",
                    j.at_ms as f64 / 1000.0,
                    j.alternatives
                ),
                None => format!("damage skipped, resumes at {to}"),
            },
        };
        let _ = writeln!(t, "{at}\t{offset}\t{len}\t{how}");
        at += len;
    }
    for other in shared_with {
        let _ = writeln!(
            t,
            "# shares source bytes with candidate #{} of candidates.tsv",
            other + 1
        );
    }
    t
}

/// What `--known` found: for each entry of `index.flv`, the surviving file it matches.
pub struct KnownMatches<'a> {
    /// The `--known` directory.
    pub dir: &'a Path,
    /// Per FLV entry, the matching file relative to `dir`.
    pub matches: &'a [Option<PathBuf>],
}

/// Builds the tree for `index`, with its documents sorted into `catalog`.
/// `fill_bad` (the mount's `--fill-bad-sectors`) only changes what `README.txt` says
/// about files that touch unreadable ranges.
pub fn build(
    index: &Index,
    known: Option<&KnownMatches>,
    catalog: &Catalog,
    fill_bad: bool,
) -> Tree {
    let mut tree = Tree::new();
    let mut tsv = String::from(
        "file\tsource\toffset\tbytes\tduration_s\ttags\tstreams\tstatus\tskipped\tfragments\tknown_as\n",
    );
    let shared = shared_fragments(index);
    let mut known_count = 0;
    tree.mkdir_p("flv");
    for (i, entry) in index.flv.iter().enumerate() {
        let c = &entry.carved;
        let name = flv_name(index, entry);
        let known_as = known
            .and_then(|k| k.matches.get(i))
            .and_then(|m| m.as_deref());
        let dir = if known_as.is_some() {
            "flv/known"
        } else {
            "flv"
        };
        known_count += known_as.is_some() as usize;
        tree.add_file(dir, &name, flv_extents(entry));
        let fragments = if c.extents.len() > 1 {
            let text = extents_view(&format!("{dir}/{name}"), entry, &shared[i]);
            tree.add_file(
                dir,
                &format!("{name}.extents.txt"),
                ExtentList::from_bytes(text.into_bytes()),
            );
            c.extents
                .iter()
                .map(|(o, l)| format!("{o}+{l}"))
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            "-".to_string()
        };
        let streams = match (c.has_audio, c.has_video) {
            (true, true) => "audio+video",
            (true, false) => "audio",
            (false, true) => "video",
            (false, false) => "none",
        };
        let skipped: Vec<String> = c
            .gaps
            .iter()
            .map(|g| {
                format!(
                    "{}@{} ({:.3}s-{:.3}s)",
                    g.len,
                    g.from,
                    g.before_ms as f64 / 1000.0,
                    g.after_ms as f64 / 1000.0
                )
            })
            .chain(c.joins.iter().filter_map(|j| j.lost_ms).map(|(a, b)| {
                format!(
                    "lost fragment ({:.3}s-{:.3}s)",
                    a as f64 / 1000.0,
                    b as f64 / 1000.0
                )
            }))
            .collect();
        let skipped = match skipped.is_empty() {
            true => "-".to_string(),
            false => skipped.join("; "),
        };
        let source = index
            .sources
            .get(entry.source as usize)
            .map(|s| s.path.display().to_string());
        let _ = writeln!(
            tsv,
            "{dir}/{name}\t{}\t{}\t{}\t{:.3}\t{}\t{streams}\t{}\t{skipped}\t{fragments}\t{}",
            source.unwrap_or_default(),
            c.offset,
            c.len(),
            c.duration_ms as f64 / 1000.0,
            c.tags,
            c.status.as_str(),
            known_as
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "-".into()),
        );
    }
    tree.add_file(
        "flv",
        "candidates.tsv",
        ExtentList::from_bytes(tsv.into_bytes()),
    );
    super::mongo::add(&mut tree, index, catalog);
    let unreadable = unreadable_files(&tree, index);
    let readme = readme(
        &tree,
        &unreadable,
        index,
        known,
        known_count,
        catalog,
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

fn readme(
    tree: &Tree,
    unreadable: &[(u64, u64)],
    index: &Index,
    known: Option<&KnownMatches>,
    known_count: usize,
    catalog: &Catalog,
    fill_bad: bool,
) -> String {
    let mut r = String::new();
    let _ = writeln!(
        r,
        "salvagefs {} — read-only view of recovered data\n",
        index.tool_version
    );
    let _ = writeln!(
        r,
        "Scanned (unix time {}, {:.1} s):",
        index.created, index.scan_seconds
    );
    for (i, s) in index.sources.iter().enumerate() {
        let _ = writeln!(
            r,
            "  {}. {} ({} bytes, {:?})",
            i + 1,
            s.path.display(),
            s.size,
            s.kind
        );
    }
    let _ = writeln!(
        r,
        "Options: repair window {} bytes",
        index.settings.resync_window
    );
    if let Some(k) = known {
        let _ = writeln!(r, "Known files from: {}", k.dir.display());
    }
    let count = |st: &str| {
        index
            .flv
            .iter()
            .filter(|e| e.carved.status.as_str() == st)
            .count()
    };
    let _ = writeln!(
        r,
        "\nFLV videos: {} carved ({} complete, {} repaired, {} reassembled, {} truncated), {} known, {} unknown",
        index.flv.len(),
        count("complete"),
        count("repaired"),
        count("reassembled"),
        count("truncated"),
        known_count,
        index.flv.len() - known_count
    );
    let live: usize = catalog.values().map(|c| c.docs.len()).sum();
    let deleted: usize = catalog.values().map(|c| c.deleted.len()).sum();
    let duplicates: usize = catalog.values().map(|c| c.duplicates).sum();
    let conflicts: usize = catalog.values().map(|c| c.conflicts.len()).sum();
    let _ = writeln!(
        r,
        "MongoDB documents: {live} in {} collections, {deleted} deleted records, {duplicates} duplicate copies dropped, {conflicts} _ids with conflicting versions",
        catalog.len()
    );
    if !index.wt_pages.is_empty() {
        let mut by_codec: Vec<(&str, usize)> = Vec::new();
        for p in &index.wt_pages {
            match by_codec.iter_mut().find(|(c, _)| *c == p.codec.as_str()) {
                Some((_, n)) => *n += 1,
                None => by_codec.push((p.codec.as_str(), 1)),
            }
        }
        let codecs: Vec<String> = by_codec.iter().map(|(c, n)| format!("{n} {c}")).collect();
        let _ = writeln!(
            r,
            "WiredTiger pages holding documents: {} ({}); mongod's catalog: {} (mongo/wiredtiger.tsv)",
            index.wt_pages.len(),
            codecs.join(", "),
            match index.wt_catalog.len() {
                0 => "not found".to_string(),
                n => format!("{n} entries"),
            }
        );
    }
    if index.bad_ranges.is_empty() {
        let _ = writeln!(r, "Unreadable ranges: none");
    } else {
        let bytes: u64 = index.bad_ranges.iter().map(|b| b.end - b.start).sum();
        let _ = writeln!(
            r,
            "Unreadable ranges: {} ({bytes} bytes, read as zeros by the scan):",
            index.bad_ranges.len()
        );
        for b in &index.bad_ranges {
            let _ = writeln!(r, "  source {}: {}..{}", b.source + 1, b.start, b.end);
        }
        describe_unreadable(tree, unreadable, fill_bad, &mut r);
    }
    r.push_str(
        "\nThe tree:\n\
         \x20 flv/<offset>.flv        a carved video; <offset> is its byte offset on the source\n\
         \x20 flv/known/<offset>.flv  a carved video identical to a file under --known (not lost)\n\
         \x20 flv/candidates.tsv      every candidate: size, duration, streams, status, skipped gaps\n\
         \x20 mongo/summary.tsv       per collection: documents, duplicates, conflicts, deleted, named_by\n\
         \x20 mongo/dump/<db>/        <coll>.bson + .metadata.json: mongorestore --dir mongo/dump\n\
         \x20 mongo/json/<db>/        <coll>.json: one Extended JSON document per line (mongoimport, jq)\n\
         \x20 mongo/docs/<db>/<coll>/ <_id>.json: one indented document per file\n\
         \x20 mongo/conflicts/        every version of an _id found with different contents\n\
         \x20 mongo/deleted/          deleted records (MMAPv1 marks them; WiredTiger records a newer\n\
         \x20                         page of their file no longer holds): recovered, never mixed in\n\
         \x20 mongo/wiredtiger.tsv    mongod's catalog as found: which .wt file held which collection\n\
         Status: complete = the tag chain ran cleanly to its end; repaired = damaged regions were\n\
         skipped (see 'skipped'); reassembled = put together from fragments lying apart on the\n\
         disk (see 'fragments' and <file>.extents.txt); truncated = the chain broke with no\n\
         continuation in reach.\n\
         Everything here is read-only and computed on read from the source; copy what you need:\n\
         \x20 cp flv/0000001234567.flv ~/rescued/    rsync -a ./ backup:salvage/\n",
    );
    r
}
