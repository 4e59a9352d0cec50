//! Read-only access to what is being recovered: disk images and block devices.
//!
//! Every read goes through `pread(2)`, never through a memory map: a bad sector read
//! through a map kills the process with SIGBUS, while `pread` returns `EIO`, which the
//! callers turn into a skipped, reported range. The one exception is the mount's
//! replies, which the kernel copies straight from a map that this process never reads
//! (see [`crate::mapped`]).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use md5::{Digest, Md5};

use crate::extent::SourceReader;
use crate::mapped::SourceMap;
use serde::{Deserialize, Serialize};

/// Errors met while opening a source; each says what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Nothing at the path.
    #[error("{0}: no such file or device; check the path")]
    Missing(PathBuf),
    /// A directory was given.
    #[error("{0}: is a directory; give a disk image or a block device (e.g. /dev/sdb)")]
    Directory(PathBuf),
    /// A socket, a FIFO, a character device...
    #[error("{0}: not a regular file or block device")]
    Unsupported(PathBuf),
    /// Opening failed.
    #[error("{path}: cannot open read-only: {err}")]
    Open {
        /// The source.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
}

/// What a source is, as far as safety checks care.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceKind {
    /// A regular file: a `ddrescue` image, a MongoDB data file, ...
    Image,
    /// A block device; `rdev` is its device number.
    BlockDevice {
        /// Its device number.
        rdev: u64,
    },
}

/// An opened, read-only source.
#[derive(Debug)]
pub struct Source {
    /// The path as the user gave it, canonicalized.
    pub path: PathBuf,
    /// Size in bytes (block devices report 0 in `st_size`; this is the real size).
    pub size: u64,
    /// Regular image or block device.
    pub kind: SourceKind,
    /// `st_mtime` of the source, used as a cheap change detector for images.
    pub mtime: i64,
    file: File,
    /// Made on the mount's first read that can use it.
    map: OnceLock<Option<SourceMap>>,
}

impl Source {
    /// Opens `path` read-only (`O_RDONLY`, never `O_RDWR`) and measures its size.
    pub fn open(path: &Path) -> Result<Source, SourceError> {
        let meta = std::fs::metadata(path).map_err(|err| match err.kind() {
            io::ErrorKind::NotFound => SourceError::Missing(path.to_path_buf()),
            _ => SourceError::Open {
                path: path.to_path_buf(),
                err,
            },
        })?;
        let ft = meta.file_type();
        if ft.is_dir() {
            return Err(SourceError::Directory(path.to_path_buf()));
        }
        if !ft.is_file() && !ft.is_block_device() {
            return Err(SourceError::Unsupported(path.to_path_buf()));
        }
        // O_NOATIME keeps even the access time of the evidence untouched; it needs
        // ownership (or root), so fall back to a plain read-only open.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(path)
            .or_else(|_| OpenOptions::new().read(true).open(path))
            .map_err(|err| SourceError::Open {
                path: path.to_path_buf(),
                err,
            })?;
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let (kind, size) = if ft.is_block_device() {
            let size = block_device_size(&file).map_err(|err| SourceError::Open {
                path: path.to_path_buf(),
                err,
            })?;
            (SourceKind::BlockDevice { rdev: meta.rdev() }, size)
        } else {
            (SourceKind::Image, meta.len())
        };
        Ok(Source {
            path: canonical,
            size,
            kind,
            mtime: meta.mtime(),
            file,
            map: OnceLock::new(),
        })
    }

    /// Reads exactly `buf.len()` bytes at `offset`, or fails (EIO on a bad sector,
    /// `UnexpectedEof` past the end).
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    /// `len` bytes at `offset` for the kernel to copy from without copying them first
    /// (see [`SourceMap`]); `None` when not all readable: read them with `pread` then.
    pub fn mapped(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let map = self
            .map
            .get_or_init(|| SourceMap::new(&self.file, self.size));
        map.as_ref()?.bytes(offset, len)
    }

    /// Reads what is readable of `[offset, offset + buf.len())`, filling unreadable
    /// sectors with zeros. Returns the byte ranges that could not be read, so that the
    /// caller can record them. Reads past the end are zero-filled and not reported.
    pub fn read_salvaging(&self, buf: &mut [u8], offset: u64) -> Vec<(u64, u64)> {
        let mut bad = Vec::new();
        let avail = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        buf[avail..].fill(0);
        if avail == 0 || self.read_exact_at(&mut buf[..avail], offset).is_ok() {
            return bad;
        }
        // Like ddrescue: retry in small steps, give up only on the sectors that fail.
        const STEP: usize = 4096;
        let mut pos = 0;
        while pos < avail {
            let end = (pos + STEP - ((offset as usize + pos) % STEP)).min(avail);
            if self
                .read_exact_at(&mut buf[pos..end], offset + pos as u64)
                .is_err()
            {
                buf[pos..end].fill(0);
                let start = offset + pos as u64;
                match bad.last_mut() {
                    Some((_, e)) if *e == start => *e = offset + end as u64,
                    _ => bad.push((start, offset + end as u64)),
                }
            }
            pos = end;
        }
        bad
    }

    /// A cheap fingerprint of the contents: md5 of 64 KiB at the start, middle and end,
    /// plus the size. Detects a different disk behind the same path, or a re-imaged file.
    pub fn fingerprint(&self) -> [u8; 16] {
        let mut hasher = Md5::new();
        hasher.update(self.size.to_le_bytes());
        let sample = 64 * 1024u64;
        let mut buf = vec![0u8; sample as usize];
        for at in [0, self.size / 2, self.size.saturating_sub(sample)] {
            self.read_salvaging(&mut buf, at);
            hasher.update(&buf);
        }
        hasher.finalize().into()
    }
}

/// Size of a block device: `st_size` is 0 for them, so ask the kernel (BLKGETSIZE64).
fn block_device_size(file: &File) -> io::Result<u64> {
    use std::os::fd::AsRawFd;
    const BLKGETSIZE64: libc::c_ulong = 0x8008_1272;
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points at `size`.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// All the sources of a scan, by number: what extent lists read from. A failed read
/// (a bad sector) is an error for that read only, or, with `fill_bad`, reads as zeros
/// (like `ddrescue --fill`), so that a copy of a file gets everything readable.
pub struct Sources {
    list: Vec<Source>,
    fill_bad: bool,
}

impl Sources {
    /// The sources; `fill_bad` turns unreadable sectors into zeros instead of EIO.
    pub fn new(list: Vec<Source>, fill_bad: bool) -> Sources {
        Sources { list, fill_bad }
    }

    /// Size of source number `source`.
    pub fn size(&self, source: u32) -> Option<u64> {
        self.list.get(source as usize).map(|s| s.size)
    }
}

impl SourceReader for Sources {
    fn mapped(&self, source: u32, offset: u64, len: usize) -> Option<&[u8]> {
        self.list.get(source as usize)?.mapped(offset, len)
    }

    fn read_source(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let src = self
            .list
            .get(source as usize)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))?;
        if !self.fill_bad {
            return src.read_exact_at(buf, offset);
        }
        for (start, end) in src.read_salvaging(buf, offset) {
            log::warn!(
                "{}: unreadable bytes {start}..{end} served as zeros (--fill-bad-sectors)",
                src.path.display()
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_image_and_reads() {
        let dir = std::env::temp_dir().join(format!("salvagefs-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("img");
        std::fs::write(&p, b"hello world").unwrap();
        let s = Source::open(&p).unwrap();
        assert_eq!(s.size, 11);
        let mut buf = [0u8; 8];
        assert!(s.read_salvaging(&mut buf, 6).is_empty());
        assert_eq!(&buf, b"world\0\0\0");
        assert!(matches!(Source::open(&dir), Err(SourceError::Directory(_))));
        assert!(matches!(
            Source::open(&dir.join("nope")),
            Err(SourceError::Missing(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
