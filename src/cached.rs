//! `salvagefs index list|prune`: the indexes that scans without `--index` leave in the
//! cache directory ([`index::cache_dir`]), whether they still describe their sources,
//! and removing those that do not (with their lock and checkpoint files).

use std::path::{Path, PathBuf};

use crate::index::{self, IndexHead, SourceRecord};
use crate::source::Source;

/// One index of the cache directory.
pub struct Cached {
    /// The index file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// When its data was first scanned (seconds since the epoch; 0 when unreadable).
    pub created: u64,
    /// The sources it describes.
    pub sources: Vec<PathBuf>,
    /// Why it no longer fits its sources (`None`: it does).
    pub stale: Option<String>,
}

/// Every index of the cache directory, by file name.
pub fn list() -> Vec<Cached> {
    let Ok(entries) = std::fs::read_dir(index::cache_dir()) else {
        return Vec::new();
    };
    let mut found: Vec<Cached> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .map(|path| describe(&path))
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// What the index at `path` describes, and whether it still fits.
fn describe(path: &Path) -> Cached {
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    match IndexHead::load(path) {
        Err(e) => Cached {
            path: path.to_path_buf(),
            bytes,
            created: 0,
            sources: Vec::new(),
            stale: Some(e.to_string()),
        },
        Ok(head) => Cached {
            path: path.to_path_buf(),
            bytes,
            created: head.created,
            sources: head.sources.iter().map(|s| s.path.clone()).collect(),
            stale: head.sources.iter().find_map(changed),
        },
    }
}

/// Why a source no longer is what the index describes, if it is not.
fn changed(record: &SourceRecord) -> Option<String> {
    match Source::open(&record.path) {
        Err(e) => Some(format!("{}: {e}", record.path.display())),
        Ok(source) if SourceRecord::of(&source) != *record => {
            Some(format!("{} changed since the scan", record.path.display()))
        }
        Ok(_) => None,
    }
}

/// Removes the stale indexes (every index with `all`), with their `.lock` and `.partial`
/// files, and lock or checkpoint files whose index is gone; returns what it removed.
pub fn prune(all: bool) -> std::io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for cached in list() {
        if all || cached.stale.is_some() {
            std::fs::remove_file(&cached.path)?;
            removed.push(cached.path);
        }
    }
    let Ok(entries) = std::fs::read_dir(index::cache_dir()) else {
        return Ok(removed);
    };
    for path in entries.flatten().map(|e| e.path()) {
        let name = path.to_string_lossy();
        let Some(of) = name
            .strip_suffix(".lock")
            .or_else(|| name.strip_suffix(".partial"))
        else {
            continue;
        };
        if !Path::new(of).exists() {
            // A checkpoint is a directory of segments (a single file before).
            match path.is_dir() {
                true => std::fs::remove_dir_all(&path)?,
                false => std::fs::remove_file(&path)?,
            }
            removed.push(path);
        }
    }
    Ok(removed)
}
