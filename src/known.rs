//! `--known DIR`: tell the recordings that still exist from the lost ones.
//!
//! The trick from the pretix recovery: the md5 of the first 500 KiB of every surviving
//! file, compared with the md5 of the same number of bytes at each candidate. Files
//! shorter than 500 KiB are compared whole (the incident's script skipped them). One
//! pass over a candidate's first 500 KiB serves every distinct prefix length.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

/// How many leading bytes identify a file.
pub const PREFIX: u64 = 500 * 1024;

/// The surviving files, by prefix length and md5 of that prefix.
#[derive(Debug, Default)]
pub struct KnownSet {
    /// Root of the known directory (names are shown relative to it).
    pub root: PathBuf,
    by_len: BTreeMap<u64, HashMap<[u8; 16], PathBuf>>,
    files: usize,
}

impl KnownSet {
    /// Hashes the first [`PREFIX`] bytes of every regular file under `dir`, recursively
    /// (symbolic links to files are followed, to directories not, so there are no
    /// loops; empty files are ignored).
    pub fn load(dir: &Path) -> io::Result<KnownSet> {
        let meta = std::fs::metadata(dir)?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory",
            ));
        }
        let mut set = KnownSet {
            root: dir.to_path_buf(),
            ..KnownSet::default()
        };
        let mut pending = vec![dir.to_path_buf()];
        while let Some(d) = pending.pop() {
            for entry in std::fs::read_dir(&d)? {
                let entry = entry?;
                let ft = entry.file_type()?;
                if ft.is_dir() {
                    pending.push(entry.path());
                } else if ft.is_file() || (ft.is_symlink() && entry.path().is_file()) {
                    set.add_file(&entry.path())?;
                }
            }
        }
        Ok(set)
    }

    fn add_file(&mut self, path: &Path) -> io::Result<()> {
        let mut prefix = Vec::new();
        File::open(path)?.take(PREFIX).read_to_end(&mut prefix)?;
        if prefix.is_empty() {
            return Ok(());
        }
        let digest: [u8; 16] = Md5::digest(&prefix).into();
        let rel = path.strip_prefix(&self.root).unwrap_or(path).to_path_buf();
        self.by_len
            .entry(prefix.len() as u64)
            .or_default()
            .insert(digest, rel);
        self.files += 1;
        Ok(())
    }

    /// Number of files hashed.
    pub fn len(&self) -> usize {
        self.files
    }

    /// True when no file was found.
    pub fn is_empty(&self) -> bool {
        self.files == 0
    }

    /// The known file whose prefix equals the start of `prefix` (the candidate's first
    /// bytes, up to [`PREFIX`]); the longest matching prefix wins.
    pub fn identify(&self, prefix: &[u8]) -> Option<&Path> {
        let mut hasher = Md5::new();
        let mut hashed = 0usize;
        let mut found = None;
        for (&len, digests) in &self.by_len {
            let Ok(len) = usize::try_from(len) else { break };
            if len > prefix.len() {
                break;
            }
            hasher.update(&prefix[hashed..len]);
            hashed = len;
            let digest: [u8; 16] = hasher.clone().finalize().into();
            if let Some(p) = digests.get(&digest) {
                found = Some(p.as_path());
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_by_prefix_and_whole_short_files() {
        let dir = std::env::temp_dir().join(format!("salvagefs-known-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.join("sub/big.flv"), &big).unwrap();
        std::fs::write(dir.join("small.flv"), b"short recording").unwrap();
        std::fs::write(dir.join("empty"), b"").unwrap();
        let set = KnownSet::load(&dir).unwrap();
        assert_eq!(set.len(), 2);
        assert_eq!(
            set.identify(&big[..PREFIX as usize]),
            Some(Path::new("sub/big.flv"))
        );
        assert_eq!(
            set.identify(b"short recording and more"),
            Some(Path::new("small.flv"))
        );
        assert_eq!(set.identify(b"short"), None);
        let mut other = big.clone();
        other[1000] ^= 1;
        assert_eq!(set.identify(&other[..PREFIX as usize]), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
