//! `salvagefs export`: the mount's tree written into a directory, for machines without
//! FUSE (a container, a rescue system, a budget VPS). The same names, bytes and mtimes
//! as the mount; resumable and idempotent like `rsync`: a file already there with the
//! right size and mtime is skipped, a file is written under a temporary name and
//! renamed when whole, so an interrupted export leaves no half file under a real name.

use std::fs::{self, File, FileTimes};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use globset::GlobSet;

use crate::extent::{ExtentList, SourceReader};
use crate::scan::Progress;
use crate::tree::{NodeKind, ROOT, Tree};

/// Bytes copied per read.
const BLOCK: usize = 1 << 20;

/// What an export did.
#[derive(Debug, Default)]
pub struct Exported {
    /// Files written.
    pub written: u64,
    /// Files already complete, left as they were.
    pub skipped: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Files that could not be read or written whole, with why (the rest goes on).
    pub failed: Vec<(String, io::Error)>,
}

/// Writes the files of `tree` (those matching `only`, when given) under `dest`, with
/// mtime `mtime` (seconds since the epoch), reading through `reader`.
pub fn export(
    tree: &Tree,
    reader: &dyn SourceReader,
    mtime: u64,
    dest: &Path,
    only: Option<&GlobSet>,
    progress: &dyn Progress,
) -> io::Result<Exported> {
    let mtime = UNIX_EPOCH + Duration::from_secs(mtime);
    let wanted = |path: &str| only.is_none_or(|set| set.is_match(path));
    // Two walks, so that no list of every file (millions of documents) is held: one
    // for the total the progress bar needs, one to write.
    let mut total = 0;
    walk(tree, ROOT, &mut String::new(), &mut |path, _, file| {
        if wanted(path) {
            total += file.len();
        }
    });
    progress.begin(total);
    let mut done = Exported::default();
    walk(tree, ROOT, &mut String::new(), &mut |path, ino, file| {
        if !wanted(path) {
            return;
        }
        let target = dest.join(path);
        let mtime = tree
            .mtime(ino)
            .map_or(mtime, |s| UNIX_EPOCH + Duration::from_secs(s));
        if is_complete(&target, file.len(), mtime) {
            done.skipped += 1;
            progress.advance(file.len());
            return;
        }
        match write_file(&target, file, reader, mtime, progress) {
            Ok(()) => {
                done.written += 1;
                done.bytes += file.len();
            }
            Err(e) => done.failed.push((path.to_string(), e)),
        }
    });
    set_dir_times(dest, mtime)?;
    Ok(done)
}

/// Calls `each` with every file under directory `ino` (whose path is `prefix`), in
/// the directory's order: path, inode, contents.
fn walk(tree: &Tree, ino: u64, prefix: &mut String, each: &mut dyn FnMut(&str, u64, &ExtentList)) {
    for (child, name) in (0..).map_while(|i| tree.entry(ino, i)) {
        let Some(node) = tree.get(child) else {
            continue;
        };
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(&name);
        match &node.kind {
            NodeKind::File(list) => each(prefix, child, list),
            NodeKind::Dir(_) | NodeKind::TableDir(_) => walk(tree, child, prefix, each),
        }
        prefix.truncate(len);
    }
}

/// A file already exported whole: the right size and the tree's mtime.
fn is_complete(target: &Path, len: u64, mtime: SystemTime) -> bool {
    fs::metadata(target).is_ok_and(|m| m.len() == len && m.modified().ok() == Some(mtime))
}

/// Writes one file under a temporary name, then renames it into place.
fn write_file(
    target: &Path,
    file: &ExtentList,
    reader: &dyn SourceReader,
    mtime: SystemTime,
    progress: &dyn Progress,
) -> io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let part: PathBuf = dir.join(format!(".{name}.salvagefs-part"));
    let result = (|| {
        let mut out = File::create(&part)?;
        let mut at = 0;
        while at < file.len() {
            let bytes = file.read(at, BLOCK, reader)?;
            out.write_all(&bytes)?;
            at += bytes.len() as u64;
            progress.advance(bytes.len() as u64);
            if bytes.is_empty() {
                break;
            }
        }
        out.set_times(FileTimes::new().set_modified(mtime))?;
        out.sync_all()?;
        fs::rename(&part, target)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&part);
    }
    result
}

/// Gives every exported directory the tree's mtime, as the mount shows it.
fn set_dir_times(dir: &Path, mtime: SystemTime) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            set_dir_times(&entry.path(), mtime)?;
        }
    }
    File::open(dir)?.set_times(FileTimes::new().set_modified(mtime))
}
