//! What `scan` and `mount` have in common: open the sources, reuse a matching index or
//! scan anew, identify known files, and lay the result out as a tree.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::classify::{self, Schema};
use crate::content::Content;
use crate::extent::SourceReader;
use crate::guard;
use crate::index::stream::DocsFile;
use crate::index::{
    self, Index, IndexError, IndexHead, IndexLock, ScanSettings, SourceRecord, Span,
};
use crate::known::{self, KnownSet};
use crate::merge;
use crate::report::{self, FlvRow, Summary};
use crate::scan::{self, Progress};
use crate::served::{self, DocsFrom, Served};
use crate::source::{Source, Sources};
use crate::spans;
use crate::spill::{self, Spill};
use crate::tree::Tree;
use crate::tree::build::{self, KnownMatches};
use crate::tree::flv::flv_extents;

/// How the index came to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexOrigin {
    /// A matching index was on disk and was loaded.
    Reused,
    /// There was no index: scanned.
    Scanned,
    /// There was one but it was stale or broken (the reason): scanned again.
    Rescanned(String),
}

/// Sources opened and their index ready to serve.
pub struct Prepared {
    /// The opened sources, in the order given.
    pub sources: Vec<Source>,
    /// The index describing them, its documents classified and mapped.
    pub served: Served,
    /// Where the index is stored.
    pub index_path: PathBuf,
    /// Whether it was loaded or made.
    pub origin: IndexOrigin,
}

/// Opens every source read-only; the first failure is the error.
pub fn open_sources(paths: &[PathBuf]) -> Result<Vec<Source>> {
    if paths.is_empty() {
        bail!("no source given; name a disk image or block device, e.g. salvagefs scan /dev/sdb");
    }
    paths
        .iter()
        .map(|p| Source::open(p).map_err(anyhow::Error::from))
        .collect()
}

/// What to scan when a scan is needed, besides the options that shape its results.
#[derive(Clone, Debug, Default)]
pub struct ScanPlan {
    /// Only the bytes `start..end` of each source (`scan --range`), else everything.
    pub range: Option<(u64, u64)>,
    /// Save progress every this many bytes (0: the default).
    pub checkpoint_every: u64,
    /// Scan even if a matching index exists.
    pub rescan: bool,
    /// Bytes each sort of the documents may hold before spilling (0: the default).
    pub memory: u64,
}

/// The index path given, or the sources' default one.
fn index_path_for(given: Option<&Path>, sources: &[Source]) -> PathBuf {
    match given {
        Some(p) => p.to_path_buf(),
        None => index::default_path(&sources.iter().map(|s| s.path.clone()).collect::<Vec<_>>()),
    }
}

/// The bytes a scan with `range` covers: every source whole, or `start..end` of each.
fn wanted_spans(records: &[SourceRecord], range: Option<(u64, u64)>) -> Vec<Span> {
    match range {
        None => Span::whole(records),
        Some((start, end)) => records
            .iter()
            .enumerate()
            .map(|(source, r)| Span {
                source: source as u32,
                start: start.min(r.size),
                end: end.min(r.size),
            })
            .filter(|s| !s.is_empty())
            .collect(),
    }
}

/// Makes sure a matching index exists, its documents classified with `schema`,
/// scanning or classifying if not, without decoding it when it does: what `salvagefs
/// mount` does before starting the daemon, which then maps it.
pub fn ensure(
    paths: &[PathBuf],
    index_path: Option<&Path>,
    (settings, schema): (&ScanSettings, Option<&Schema>),
    plan: &ScanPlan,
    progress: &dyn Progress,
) -> Result<(IndexOrigin, PathBuf)> {
    if !plan.rescan {
        let sources = open_sources(paths)?;
        let records: Vec<SourceRecord> = sources.iter().map(SourceRecord::of).collect();
        let path = index_path_for(index_path, &sources);
        let wanted = wanted_spans(&records, plan.range);
        if let Ok(head) = IndexHead::load(&path)
            && head.mismatch(&records, settings, &wanted).is_none()
            && matches!(
                Served::open(&path, served::fingerprint(schema)),
                Ok(Some(_))
            )
        {
            for warning in guard::mounted_read_write(&sources) {
                progress.warn(&warning);
            }
            return Ok((IndexOrigin::Reused, path));
        }
    }
    let prepared = prepare(paths, index_path, (settings, schema), plan, progress)?;
    Ok((prepared.origin, prepared.index_path))
}

/// Opens the sources and maps their index, scanning when there is none or it does not
/// match, and classifying its documents when they were not classified with `schema`.
pub fn prepare(
    paths: &[PathBuf],
    index_path: Option<&Path>,
    (settings, schema): (&ScanSettings, Option<&Schema>),
    plan: &ScanPlan,
    progress: &dyn Progress,
) -> Result<Prepared> {
    let sources = open_sources(paths)?;
    for warning in guard::mounted_read_write(&sources) {
        progress.warn(&warning);
    }
    let index_path = index_path_for(index_path, &sources);
    guard::check_index_location(&index_path, &sources).map_err(anyhow::Error::msg)?;
    let _lock = IndexLock::acquire(&index_path).with_context(|| {
        format!(
            "cannot lock {}; use --index PATH in a writable directory",
            index_path.display()
        )
    })?;
    let records: Vec<SourceRecord> = sources.iter().map(SourceRecord::of).collect();
    let wanted = wanted_spans(&records, plan.range);
    let head = IndexHead::load(&index_path);
    // Unchanged sources scanned with the same options keep the time they were first
    // scanned: it is the files' mtime, and a rescan must not make rsync send them again.
    let first_scanned = head
        .as_ref()
        .ok()
        .filter(|h| h.sources == records && h.settings == *settings)
        .map(|h| h.created);
    let stale = match head {
        _ if plan.rescan => Some("--rescan was given".to_string()),
        Ok(head) => match head.mismatch(&records, settings, &wanted) {
            // A damaged section is one more reason to scan again.
            None => match reuse(&index_path, schema, plan.memory, progress) {
                Ok(served) => {
                    return Ok(Prepared {
                        sources,
                        served,
                        index_path,
                        origin: IndexOrigin::Reused,
                    });
                }
                Err(e) => Some(format!("{e:#}")),
            },
            Some(reason) => Some(format!("index {} is stale: {reason}", index_path.display())),
        },
        Err(IndexError::Missing(_)) => None,
        Err(e) => Some(e.to_string()),
    };
    let mut checkpoint = index_path.clone().into_os_string();
    checkpoint.push(".partial");
    let checkpoint = PathBuf::from(checkpoint);
    if plan.rescan {
        // Starting over means not resuming either.
        let _ = std::fs::remove_dir_all(&checkpoint);
    }
    let spill = spill_beside(&index_path, plan.memory);
    let at = scan::Resumable {
        checkpoint: &checkpoint,
        every: match plan.checkpoint_every {
            0 => scan::CHECKPOINT_EVERY,
            n => n,
        },
        docs: scan::SEGMENT_DOCS,
        spill: &spill,
    };
    // The documents of each segment go into a file as found; a scan of one segment
    // keeps them for classification, which otherwise reads them from the index file.
    let scanned = (records, settings);
    let out = (index_path.as_path(), first_scanned);
    let scanned = scan::scan_resumable(&sources, scanned, &wanted, &at, out, progress)
        .context("cannot join the scan's segments; run again with --rescan")?;
    let (mut index, unsaved) = (scanned.index, scanned.unsaved);
    let served = classify_and_save((&mut index, unsaved), schema, &index_path, &spill, progress)?;
    let origin = stale.map_or(IndexOrigin::Scanned, IndexOrigin::Rescanned);
    Ok(Prepared {
        sources,
        served,
        index_path,
        origin,
    })
}

/// Maps the index at `path`, whose head fits, for serving: classifying its documents
/// first when they were not classified with `schema` (merged parts, another schema).
fn reuse(
    path: &Path,
    schema: Option<&Schema>,
    memory: u64,
    progress: &dyn Progress,
) -> Result<Served> {
    let started = std::time::Instant::now();
    let served = match Served::open(path, served::fingerprint(schema))? {
        Some(served) => served,
        None => {
            let mut index = Index::from_file(&index::file::map(path)?, false)?;
            let spill = spill_beside(path, memory);
            classify_and_save((&mut index, false), schema, path, &spill, progress)?
        }
    };
    log::info!("index opened in {:.3} s", started.elapsed().as_secs_f64());
    Ok(served)
}

/// A scan of one segment that took longer than this (seconds) is saved before its
/// documents are classified, so that a classification that fails or is interrupted
/// does not cost the scan again. A shorter scan is cheaper to redo than its documents
/// are to write twice (unclassified, then copied into the classified index: 110 MB
/// each at 2 million documents).
const SAVE_BEFORE_CLASSIFYING: f64 = 30.0;

/// Sorts the documents of `index` into collections by `schema`, saves the index with
/// them at `path` and maps it for serving. An `unsaved` index holds its documents:
/// while they are classified, another thread saves it unclassified at `path` after a
/// long scan (see [`SAVE_BEFORE_CLASSIFYING`]), or else begins the classified index
/// with them. An index saved already is read from `path`. Whatever groups them is
/// sorted through runs spilled beside it.
fn classify_and_save(
    (index, unsaved): (&mut Index, bool),
    schema: Option<&Schema>,
    path: &Path,
    spill: &Spill,
    progress: &dyn Progress,
) -> Result<Served> {
    progress.phase("classifying documents");
    let started = std::time::Instant::now();
    let on_disk = match unsaved {
        true => None,
        false => Some(DocsFile::open(path)?),
    };
    let save_first = unsaved && index.scan_seconds >= SAVE_BEFORE_CLASSIFYING;
    let shared = &*index;
    let (classification, begun) = std::thread::scope(|s| {
        // Saved unclassified (a long scan), or the index itself begun (a short one).
        let saving = unsaved.then(|| {
            s.spawn(move || match save_first {
                true => shared.save_for_now(path).map(|()| None),
                false => served::begin(shared, path).map(Some),
            })
        });
        let docs: &dyn classify::Docs = match &on_disk {
            Some(file) => file,
            None => &shared.docs,
        };
        let classified = classify::classify(shared, docs, schema, spill);
        let saved = saving.map_or(Ok(None), |saving| {
            let failed = || std::io::Error::other("the thread saving the index failed");
            saving.join().unwrap_or_else(|_| Err(failed()))
        });
        classified.and_then(|c| Ok((c, saved?)))
    })
    .with_context(|| cannot_write(path))?;
    // Unmapping a quarter of a gigabyte takes a while: not on the serial path.
    let held = std::mem::take(&mut index.docs);
    std::thread::spawn(move || drop(held));
    let file;
    let docs = match begun {
        Some(pending) => DocsFrom::Begun(Box::new(pending)),
        None => {
            // The index read while classifying, or the one saved meanwhile.
            file = match on_disk {
                Some(read) => read,
                None => DocsFile::open(path)?,
            };
            DocsFrom::File(&file)
        }
    };
    log::info!(
        "documents classified in {:.3} s",
        started.elapsed().as_secs_f64()
    );
    progress.phase("writing the index");
    let started = std::time::Instant::now();
    let fingerprint = served::fingerprint(schema);
    let saved = served::save(index, docs, (classification, fingerprint), spill, path);
    log::debug!("index saved in {:.2} s", started.elapsed().as_secs_f64());
    saved.with_context(|| cannot_write(path))?;
    match Served::open(path, fingerprint)? {
        Some(served) => Ok(served),
        None => bail!(
            "the index {} was replaced while it was written; run again",
            path.display()
        ),
    }
}

/// Sorts that spill beside the index at `path`, each holding up to `memory` bytes
/// (0: the default).
fn spill_beside(path: &Path, memory: u64) -> Spill {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Spill::new(
        dir,
        if memory == 0 {
            spill::DEFAULT_BUDGET
        } else {
            memory
        },
    )
}

/// What to say when the index at `path` cannot be written.
fn cannot_write(path: &Path) -> String {
    format!(
        "cannot write the index {}; use --index PATH elsewhere",
        path.display()
    )
}

/// For each carved FLV, the file under `known` it is identical to (by prefix md5).
pub fn identify_known(
    index: &Index,
    reader: &dyn SourceReader,
    known: &KnownSet,
) -> Vec<Option<PathBuf>> {
    index
        .flv
        .iter()
        .map(|entry| {
            let file = flv_extents(entry);
            let prefix = file.read(0, known::PREFIX as usize, reader).ok()?;
            known.identify(&prefix).map(Path::to_path_buf)
        })
        .collect()
}

/// Loads the `--known` directory and identifies the carved files that match it.
pub fn match_known(index: &Index, sources: &Sources, dir: &Path) -> Result<Vec<Option<PathBuf>>> {
    let set = KnownSet::load(dir).with_context(|| {
        format!(
            "--known {}: cannot read it; give a directory of surviving files",
            dir.display()
        )
    })?;
    Ok(identify_known(index, sources, &set))
}

/// Where documents go: the schema from `--schema FILE` or `--schema-from DIR`, if any.
pub fn load_schema(file: Option<&Path>, dump: Option<&Path>) -> Result<Option<Schema>> {
    match (file, dump) {
        (Some(f), _) => Schema::load(f).map(Some),
        (None, Some(d)) => Schema::from_dump(d).map(Some),
        (None, None) => Ok(None),
    }
}

/// What the mount serves, and what to say about it.
pub struct Built {
    /// The tree of files.
    pub tree: Tree,
    /// What the files read from.
    pub content: Content,
    /// The files' modification time (the scan's).
    pub mtime: u64,
    /// The scan's one-line summary, without how the index came to be.
    pub summary: String,
    /// The same as `scan --json-summary` prints, when asked for.
    pub json: Option<serde_json::Value>,
}

/// Everything the mount shows, from prepared sources and an optional `--known` dir;
/// with `json`, also the `--json-summary` JSON.
pub fn build_tree(
    prepared: Prepared,
    known_dir: Option<&Path>,
    (fill_bad, json): (bool, bool),
) -> Result<Built> {
    let Prepared {
        sources,
        served,
        index_path,
        origin,
    } = prepared;
    let sources = Sources::new(sources, fill_bad);
    let matches = known_dir
        .map(|dir| match_known(&served.index, &sources, dir))
        .transpose()?;
    // README.txt names the directory absolutely: the mount outlives the shell's cwd.
    let shown = known_dir.map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf()));
    let known = shown
        .as_deref()
        .zip(matches.as_deref())
        .map(|(dir, matches)| KnownMatches { dir, matches });
    let started = std::time::Instant::now();
    let tree = build::build(&served, known.as_ref(), fill_bad);
    log::info!(
        "tree of {} inodes built in {:.3} s",
        tree.len(),
        started.elapsed().as_secs_f64()
    );
    let Served {
        index,
        classified,
        table,
    } = served;
    let summary = Summary::new(&index, &classified, matches.as_deref());
    let json = json.then(|| {
        let rows = FlvRow::all(&index, matches.as_deref());
        let reused = origin == IndexOrigin::Reused;
        report::json_summary(&summary, &rows, &index, &classified, (&index_path, reused))
    });
    let summary = summary.counts_line(&index_path);
    let mtime = index.created;
    let content = Content::new(sources, table, index.wt_pages, index.settings.json);
    Ok(Built {
        tree,
        content,
        mtime,
        summary,
        json,
    })
}

/// Joins the partial indexes `parts` (from `scan --range`) into the index of the whole
/// sources and saves it at `out` (default: the sources' default index), sorting with
/// `memory` bytes at most (0: the default); returns it without its documents, and
/// how many it holds. Fails, saying what to scan, unless the parts cover every byte
/// exactly once and the sources are unchanged since.
pub fn merge_parts(
    parts: &[PathBuf],
    out: Option<&Path>,
    memory: u64,
) -> Result<(Index, usize, PathBuf)> {
    let opened = parts
        .iter()
        .map(|p| merge::Part::open(p).with_context(|| format!("cannot merge {}", p.display())))
        .collect::<Result<Vec<_>>>()?;
    let Some(first) = opened.first() else {
        bail!("no index to merge; name the parts made by salvagefs scan --range");
    };
    let whole = first.index.sources.clone();
    let mut covered = Vec::new();
    for part in &opened {
        covered = spans::union(&covered, &part.index.covered)
            .map_err(merge::MergeError::Overlap)
            .with_context(|| format!("cannot merge {}", part.path.display()))?;
    }
    let missing = spans::missing(&Span::whole(&whole), &covered);
    if !missing.is_empty() {
        bail!(
            "the parts do not cover {}; scan it with salvagefs scan --range START..END and merge again",
            index::describe(&missing, &whole)
        );
    }
    let paths: Vec<PathBuf> = whole.iter().map(|s| s.path.clone()).collect();
    let sources = open_sources(&paths)?;
    let records: Vec<SourceRecord> = sources.iter().map(SourceRecord::of).collect();
    let settings = &first.index.settings;
    if let Some(why) = first
        .index
        .mismatch(&records, settings, &first.index.covered)
    {
        bail!("the parts no longer match the sources ({why}); scan again");
    }
    let out = out.map_or_else(|| index::default_path(&paths), Path::to_path_buf);
    guard::check_index_location(&out, &sources).map_err(anyhow::Error::msg)?;
    let _lock = IndexLock::acquire(&out)
        .with_context(|| format!("cannot lock {}; use --index PATH", out.display()))?;
    let spill = spill_beside(&out, memory);
    let (index, docs) = merge::join(opened, &spill, (&out, None, true))
        .with_context(|| format!("cannot merge the parts into {}", out.display()))?;
    Ok((index, docs, out))
}
