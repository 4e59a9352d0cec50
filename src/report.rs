//! One report model of a scan, built once from the index: the counts ([`Summary`]) and
//! the per-candidate rows ([`FlvRow`]) that `flv/candidates.tsv`, the mount's
//! `README.txt`, the scan's one-line summary and `--json-summary` all print, so that
//! none of them can drift from another.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::carve::flv::Status;
use crate::carve::join::Evidence;
use crate::classify::Decided;
use crate::index::{DoubtCounts, FlvEntry, Index};
use crate::served::{Classified, ServedCollection};

/// The file name of a carved FLV: zero-padded decimal offset so `ls` order is disk
/// order; with several sources, prefixed by the source number (1-based).
pub fn flv_name(index: &Index, entry: &FlvEntry) -> String {
    if index.sources.len() > 1 {
        format!("{}-{:013}.flv", entry.source + 1, entry.carved.offset)
    } else {
        format!("{:013}.flv", entry.carved.offset)
    }
}

/// Which elementary streams a recording holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streams {
    /// Audio and video tags.
    AudioVideo,
    /// Audio tags only.
    Audio,
    /// Video tags only.
    Video,
    /// Neither (only script data).
    None,
}

impl Streams {
    /// The word used in `candidates.tsv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Streams::AudioVideo => "audio+video",
            Streams::Audio => "audio",
            Streams::Video => "video",
            Streams::None => "none",
        }
    }
}

/// One line of `flv/candidates.tsv` (and one entry of `--json-summary`'s candidates).
pub struct FlvRow<'a> {
    /// Path in the mount (`flv/<name>` or `flv/known/<name>`).
    pub file: String,
    /// The source it was carved from.
    pub source: &'a Path,
    /// The entry it describes.
    pub entry: &'a FlvEntry,
    /// The surviving file under `--known` it is identical to.
    pub known_as: Option<&'a Path>,
}

impl<'a> FlvRow<'a> {
    /// The columns of `candidates.tsv`, in order; [`FlvRow::tsv`] prints them.
    pub const COLUMNS: [&'static str; 11] = [
        "file",
        "source",
        "offset",
        "bytes",
        "duration_s",
        "tags",
        "streams",
        "status",
        "skipped",
        "fragments",
        "known_as",
    ];

    /// The row of entry `i` of `index.flv`, placed by `known` (per entry, the match).
    pub fn new(index: &'a Index, i: usize, known: Option<&'a [Option<PathBuf>]>) -> FlvRow<'a> {
        let entry = &index.flv[i];
        let known_as = known.and_then(|k| k.get(i)).and_then(|m| m.as_deref());
        let dir = match (known_as, &entry.carved.headless) {
            (Some(_), _) => "flv/known",
            (None, Some(_)) => "flv/headless",
            (None, None) => "flv",
        };
        FlvRow {
            file: format!("{dir}/{}", flv_name(index, entry)),
            source: index
                .sources
                .get(entry.source as usize)
                .map_or(Path::new(""), |s| s.path.as_path()),
            entry,
            known_as,
        }
    }

    /// Every row of the index, in its order.
    pub fn all(index: &'a Index, known: Option<&'a [Option<PathBuf>]>) -> Vec<FlvRow<'a>> {
        (0..index.flv.len())
            .map(|i| FlvRow::new(index, i, known))
            .collect()
    }

    /// The streams the recording holds.
    pub fn streams(&self) -> Streams {
        match (self.entry.carved.has_audio, self.entry.carved.has_video) {
            (true, true) => Streams::AudioVideo,
            (true, false) => Streams::Audio,
            (false, true) => Streams::Video,
            (false, false) => Streams::None,
        }
    }

    /// What was skipped: damaged gaps (`bytes@offset (from-to)`) and lost fragments.
    pub fn skipped(&self) -> Vec<String> {
        let c = &self.entry.carved;
        let gaps = c.gaps.iter().map(|g| {
            format!(
                "{}@{} ({:.3}s-{:.3}s)",
                g.len,
                g.from,
                seconds(u64::from(g.before_ms)),
                seconds(u64::from(g.after_ms))
            )
        });
        let lost = c
            .joins
            .iter()
            .filter_map(|j| Some((j.lost_ms?, j.evidence)))
            .map(|((a, b), e)| {
                let what = match e {
                    Evidence::StraddlingTag => "tag left out",
                    _ => "lost fragment",
                };
                format!(
                    "{what} ({:.3}s-{:.3}s)",
                    seconds(u64::from(a)),
                    seconds(u64::from(b))
                )
            });
        gaps.chain(lost).collect()
    }

    /// The source ranges of a file put together from several pieces (`offset+len`).
    pub fn fragments(&self) -> Vec<String> {
        match self.entry.carved.extents.as_slice() {
            [_] | [] => Vec::new(),
            pieces => pieces.iter().map(|(o, l)| format!("{o}+{l}")).collect(),
        }
    }

    /// The tab-separated line, in the order of [`FlvRow::COLUMNS`].
    pub fn tsv(&self) -> String {
        let c = &self.entry.carved;
        let or_dash = |v: Vec<String>| match v.is_empty() {
            true => "-".to_string(),
            false => v.join("; "),
        };
        let cells = [
            self.file.clone(),
            self.source.display().to_string(),
            c.offset.to_string(),
            c.len().to_string(),
            format!("{:.3}", seconds(c.duration_ms)),
            c.tags.to_string(),
            self.streams().as_str().to_string(),
            c.status.as_str().to_string(),
            or_dash(self.skipped()),
            or_dash(self.fragments()),
            self.known_as
                .map_or_else(|| "-".to_string(), |p| p.display().to_string()),
        ];
        cells.join("\t")
    }

    /// The same facts as JSON, for `--json-summary`.
    pub fn json(&self) -> serde_json::Value {
        let c = &self.entry.carved;
        json!({
            "file": self.file,
            "source": self.source,
            "offset": c.offset,
            "bytes": c.len(),
            "duration_s": seconds(c.duration_ms),
            "tags": c.tags,
            "streams": self.streams().as_str(),
            "status": c.status.as_str(),
            "skipped": self.skipped(),
            "extents": c.extents,
            "known_as": self.known_as,
        })
    }
}

/// `flv/candidates.tsv`: the header line, then one [`FlvRow`] per candidate.
pub fn candidates_tsv(rows: &[FlvRow]) -> String {
    let mut out = FlvRow::COLUMNS.join("\t");
    out.push('\n');
    for row in rows {
        out.push_str(&row.tsv());
        out.push('\n');
    }
    out
}

/// Milliseconds as seconds.
fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// `objectid_time 3, duplicate_key 1`, or `-` when no rule counted anything.
pub fn doubt_list(counts: &DoubtCounts) -> String {
    let parts: Vec<String> = counts
        .nonzero()
        .map(|(d, n)| format!("{} {n}", d.as_str()))
        .collect();
    match parts.is_empty() {
        true => "-".to_string(),
        false => parts.join(", "),
    }
}

/// `{"objectid_time": 3}`: the rules that counted something.
fn doubt_json(counts: &DoubtCounts) -> serde_json::Value {
    counts
        .nonzero()
        .map(|(d, n)| (d.as_str().to_string(), json!(n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// MongoDB totals over every collection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MongoTotals {
    /// Collections with at least one document.
    pub collections: usize,
    /// Live documents.
    pub live: usize,
    /// Deleted records recovered into `mongo/deleted/`.
    pub deleted: usize,
    /// Byte-identical copies dropped.
    pub duplicates: usize,
    /// `_id`s found with different contents.
    pub conflicts: usize,
    /// Live documents a plausibility rule dislikes, kept because a storage structure
    /// framed them, per rule.
    pub doubted: DoubtCounts,
    /// Candidates outside any storage structure that a plausibility rule rejected.
    pub rejected: DoubtCounts,
    /// Records by what decided whether they are live.
    pub decided: Decided,
}

/// The counts of a scan, built once and printed everywhere.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Bytes the scan covered.
    pub bytes_scanned: u64,
    /// How long the scan took.
    pub scan_seconds: f64,
    /// FLV candidates by status, in the order of [`Status::ALL`].
    pub flv_by_status: [(Status, usize); 4],
    /// All FLV candidates.
    pub flv_total: usize,
    /// Candidates identical to a surviving file, when `--known` was given.
    pub flv_known: Option<usize>,
    /// Recordings whose header was overwritten (`flv/headless/`).
    pub flv_headless: usize,
    /// MongoDB totals.
    pub mongo: MongoTotals,
    /// WiredTiger pages holding documents, by compressor (in order of first use).
    pub wt_pages_by_codec: Vec<(&'static str, usize)>,
    /// Entries of mongod's catalog found.
    pub wt_catalog_entries: usize,
    /// Unreadable ranges and their total bytes.
    pub unreadable: (usize, u64),
}

impl Summary {
    /// Counts what `index` holds, with its documents sorted into `collections` and,
    /// with `--known`, per candidate the surviving file it matches.
    pub fn new(
        index: &Index,
        classified: &Classified,
        known: Option<&[Option<PathBuf>]>,
    ) -> Summary {
        let collections = &classified.collections;
        let count = |st: Status| index.flv.iter().filter(|e| e.carved.status == st).count();
        let mut wt_pages_by_codec: Vec<(&'static str, usize)> = Vec::new();
        for p in &index.wt_pages {
            match wt_pages_by_codec
                .iter_mut()
                .find(|(c, _)| *c == p.codec.as_str())
            {
                Some((_, n)) => *n += 1,
                None => wt_pages_by_codec.push((p.codec.as_str(), 1)),
            }
        }
        let sum = |f: fn(&ServedCollection) -> u64| collections.iter().map(f).sum::<u64>() as usize;
        Summary {
            bytes_scanned: index.covered.iter().map(|s| s.len()).sum(),
            scan_seconds: index.scan_seconds,
            flv_by_status: Status::ALL.map(|st| (st, count(st))),
            flv_total: index.flv.len(),
            flv_known: known.map(|k| k.iter().flatten().count()),
            flv_headless: index
                .flv
                .iter()
                .filter(|e| e.carved.headless.is_some())
                .count(),
            mongo: MongoTotals {
                collections: collections.len(),
                live: sum(|c| c.live.count),
                deleted: sum(|c| c.deleted.count),
                duplicates: sum(|c| c.duplicates),
                conflicts: sum(|c| c.conflicts.len() as u64),
                doubted: collections
                    .iter()
                    .fold(DoubtCounts::default(), |mut all, c| {
                        all.merge(c.doubted);
                        all
                    }),
                rejected: index.rejected,
                decided: collections
                    .iter()
                    .fold(Decided::default(), |all, c| Decided {
                        chain: all.chain + c.decided.chain,
                        links: all.links + c.decided.links,
                        checkpoint: all.checkpoint + c.decided.checkpoint,
                        rules: all.rules + c.decided.rules,
                    }),
            },
            wt_pages_by_codec,
            wt_catalog_entries: index.wt_catalog.len(),
            unreadable: (
                index.bad_ranges.len(),
                index.bad_ranges.iter().map(|b| b.len()).sum(),
            ),
        }
    }

    /// `5 complete, 1 repaired, 0 reassembled, 1 truncated`.
    pub fn flv_by_status(&self) -> String {
        let counts: Vec<String> = self
            .flv_by_status
            .iter()
            .map(|(st, n)| format!("{n} {}", st.as_str()))
            .collect();
        counts.join(", ")
    }

    /// README.txt's lines of counts.
    pub fn readme_lines(&self) -> String {
        let known = self.flv_known.unwrap_or(0);
        let m = &self.mongo;
        let mut out = format!(
            "FLV videos: {} carved ({}), {known} known, {} unknown\n\
             MongoDB documents: {} in {} collections, {} deleted records, {} duplicate copies dropped, {} _ids with conflicting versions\n",
            self.flv_total,
            self.flv_by_status(),
            self.flv_total - known,
            m.live,
            m.collections,
            m.deleted,
            m.duplicates,
            m.conflicts
        );
        let d = &m.decided;
        if d.chain + d.links + d.checkpoint > 0 {
            out.push_str(&format!(
                "Records live or deleted by: MMAPv1 record lists {}, record headers {}, WiredTiger's newest checkpoint {}, other rules {}\n",
                d.chain, d.links, d.checkpoint, d.rules
            ));
        }
        if m.doubted != DoubtCounts::default() || m.rejected != DoubtCounts::default() {
            out.push_str(&format!(
                "Plausibility rules (they never reject a document MMAPv1 or WiredTiger framed): kept though doubted: {}; rejected outside any record: {}\n",
                doubt_list(&m.doubted),
                doubt_list(&m.rejected)
            ));
        }
        let pages: usize = self.wt_pages_by_codec.iter().map(|(_, n)| n).sum();
        if pages > 0 {
            let codecs: Vec<String> = self
                .wt_pages_by_codec
                .iter()
                .map(|(c, n)| format!("{n} {c}"))
                .collect();
            let catalog = match self.wt_catalog_entries {
                0 => "not found".to_string(),
                n => format!("{n} entries"),
            };
            out.push_str(&format!(
                "WiredTiger pages holding documents: {pages} ({}); mongod's catalog: {catalog} (mongo/wiredtiger.tsv)\n",
                codecs.join(", ")
            ));
        }
        out
    }

    /// The scan's one-line summary: what was found, after `how` it was obtained.
    pub fn one_line(&self, how: &str, index_path: &Path) -> String {
        format!("{how}: {}", self.counts_line(index_path))
    }

    /// What was found, in one line: the part of [`Summary::one_line`] after `how`.
    pub fn counts_line(&self, index_path: &Path) -> String {
        let known = self
            .flv_known
            .map(|k| format!(", {k} known, {} unknown", self.flv_total - k))
            .unwrap_or_default();
        format!(
            "{} FLV ({}){known}; {} MongoDB documents in {} collections, {} deleted; {} unreadable ranges; index {}",
            self.flv_total,
            self.flv_by_status(),
            self.mongo.live,
            self.mongo.collections,
            self.mongo.deleted,
            self.unreadable.0,
            index_path.display()
        )
    }

    /// The counts under `flv` in `--json-summary`.
    fn flv_json(&self) -> serde_json::Value {
        let mut flv: serde_json::Map<String, serde_json::Value> = self
            .flv_by_status
            .iter()
            .map(|(st, n)| (st.as_str().to_string(), json!(n)))
            .collect();
        flv.insert("total".into(), json!(self.flv_total));
        flv.insert("known".into(), json!(self.flv_known));
        flv.into()
    }
}

/// `scan --json-summary`: the same counts and rows as the text outputs, for machines.
pub fn json_summary(
    summary: &Summary,
    rows: &[FlvRow],
    index: &Index,
    classified: &Classified,
    (index_path, reused): (&Path, bool),
) -> serde_json::Value {
    let by_compressor: serde_json::Map<String, serde_json::Value> = summary
        .wt_pages_by_codec
        .iter()
        .map(|(c, n)| (c.to_string(), json!(n)))
        .collect();
    json!({
        "index": index_path,
        "index_reused": reused,
        "sources": index.sources.iter().map(|s| json!({"path": s.path, "bytes": s.size})).collect::<Vec<_>>(),
        "bytes_scanned": summary.bytes_scanned,
        "scan_seconds": summary.scan_seconds,
        "flv": summary.flv_json(),
        "bad_ranges": index.bad_ranges.iter().map(|b| [u64::from(b.source), b.start, b.end]).collect::<Vec<_>>(),
        "candidates": rows.iter().map(FlvRow::json).collect::<Vec<_>>(),
        "wiredtiger": {
            "pages": index.wt_pages.len(),
            "by_compressor": by_compressor,
            "catalog": index.wt_catalog.iter().map(|e| json!({"file": format!("{}.wt", e.ident), "collection": e.ns})).collect::<Vec<_>>(),
        },
        "mongo": classified.collections.iter().map(|c| (c.ns.clone(), json!({
            "documents": c.live.count, "deleted": c.deleted.count, "duplicates": c.duplicates,
            "conflicts": c.conflicts.len(), "named_by": c.named_by_text(),
            "doubted": doubt_json(&c.doubted),
            "liveness_by": {"chain": c.decided.chain, "links": c.decided.links,
                            "checkpoint": c.decided.checkpoint, "rules": c.decided.rules},
            }))).collect::<serde_json::Map<_, _>>(),
        "mongo_rejected": doubt_json(&summary.mongo.rejected),
    })
}
