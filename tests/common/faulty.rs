//! A failing disk for the tests: a one-file FUSE filesystem whose `disk.img` reads
//! like a real disk with bad sectors. Reads that touch a bad range fail with EIO, reads
//! that touch a slow range first sleep (a drive retrying a sector), everything else is
//! served from memory. Files are opened in direct-I/O mode, so every read the program
//! under test makes reaches this code with its own offset and size: what salvagefs
//! sees is exactly what it would see from a dying drive through `pread`. The disk can
//! be mapped too, as a real one (salvagefs's mount replies from a map of its source):
//! the pages of a map are read through the same `read`, a bad one fails its fault.

use std::ffi::OsStr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData,
    ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};

const ROOT: u64 = 1;
const IMAGE: u64 = 2;
const NAME: &str = "disk.img";

/// Where the disk fails, changeable while mounted (a disk that degrades).
#[derive(Default)]
pub struct Faults {
    /// Byte ranges that answer EIO.
    pub bad: Vec<Range<u64>>,
    /// Byte ranges that answer after `slow_for`.
    pub slow: Vec<Range<u64>>,
    /// How long a slow read takes.
    pub slow_for: Duration,
    /// Reads answered with EIO so far.
    pub eio_replies: u64,
    /// Bytes served so far.
    pub bytes_read: u64,
}

struct FaultyFs {
    image: Arc<Vec<u8>>,
    faults: Arc<Mutex<Faults>>,
}

impl FaultyFs {
    fn attr(&self, ino: u64) -> FileAttr {
        let (kind, perm, size) = if ino == ROOT {
            (FileType::Directory, 0o555, 0)
        } else {
            (FileType::RegularFile, 0o444, self.image.len() as u64)
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: UNIX_EPOCH,
            mtime: UNIX_EPOCH,
            ctime: UNIX_EPOCH,
            crtime: UNIX_EPOCH,
            kind,
            perm,
            nlink: 1,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }
}

fn overlaps(ranges: &[Range<u64>], r: &Range<u64>) -> bool {
    ranges.iter().any(|b| b.start < r.end && r.start < b.end)
}

impl Filesystem for FaultyFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        config
            .add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
            .map_err(|_| std::io::Error::other("this kernel cannot map direct-I/O files"))
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent.0 == ROOT && name == NAME {
            reply.entry(&Duration::ZERO, &self.attr(IMAGE), Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match ino.0 {
            ROOT | IMAGE => reply.attr(&Duration::ZERO, &self.attr(ino.0)),
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match ino.0 {
            IMAGE => reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO),
            _ => reply.error(Errno::EISDIR),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let len = self.image.len() as u64;
        let range = offset.min(len)..offset.saturating_add(size as u64).min(len);
        let (bad, slow_for) = {
            let mut f = self.faults.lock().unwrap();
            let bad = overlaps(&f.bad, &range);
            f.eio_replies += bad as u64;
            f.bytes_read += range.end - range.start;
            (bad, overlaps(&f.slow, &range).then_some(f.slow_for))
        };
        if let Some(d) = slow_for {
            std::thread::sleep(d);
        }
        if bad {
            reply.error(Errno::EIO);
        } else {
            reply.data(&self.image[range.start as usize..range.end as usize]);
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let entries = [
            (ROOT, FileType::Directory, "."),
            (ROOT, FileType::Directory, ".."),
            (IMAGE, FileType::RegularFile, NAME),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(*ino), i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// A mounted failing disk; unmounted when dropped.
pub struct FaultyDisk {
    /// Change these to make the disk fail differently from now on.
    pub faults: Arc<Mutex<Faults>>,
    image_path: PathBuf,
    session: Option<fuser::BackgroundSession>,
}

impl FaultyDisk {
    /// Serves `image` as `<dir>/disk.img`, failing as `faults` say.
    pub fn mount(dir: &Path, image: Vec<u8>, faults: Faults) -> FaultyDisk {
        std::fs::create_dir_all(dir).unwrap();
        let faults = Arc::new(Mutex::new(faults));
        let fs = FaultyFs {
            image: Arc::new(image),
            faults: faults.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![MountOption::RO, MountOption::FSName("faultydisk".into())];
        config.n_threads = Some(4);
        let session = fuser::Session::new(fs, dir, &config)
            .and_then(|s| s.spawn())
            .expect("mount the faulty test disk (needs /dev/fuse and fusermount3)");
        FaultyDisk {
            faults,
            image_path: dir.join(NAME),
            session: Some(session),
        }
    }

    /// The failing image, as a path any program can open.
    pub fn image(&self) -> &Path {
        &self.image_path
    }
}

impl Drop for FaultyDisk {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            let _ = s.umount_and_join();
        }
        // A request still in flight (a killed reader) can keep the mount busy: detach it
        // lazily rather than leave it behind.
        if let Some(dir) = self.image_path.parent() {
            let _ = std::process::Command::new("fusermount3")
                .arg("-uz")
                .arg(dir)
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
