//! The FUSE layer: a thin `fuser::Filesystem` over [`Tree`].
//!
//! The mount itself is `ro` (the kernel answers EROFS to every write, create, rename,
//! unlink, setattr or setxattr), but files show 0644 and directories 0755, so that
//! copies made with `cp -a` or `rsync -a` are ordinary files their owner can edit and
//! delete.
//! fuser runs several worker threads, so one slow read (a disk retrying a bad sector)
//! does not stall `ls` elsewhere. Attributes never change, so the kernel may cache them
//! for a long time; readdirplus hands `ls -l` every attribute with the listing.
//! Files are read with direct I/O where the kernel still allows `mmap` of them: the
//! source's own page cache already holds the bytes, and a second copy in the mount's
//! page cache costs a copy and a page allocation per page (bench/serving.sh). A read
//! that one piece of a source holds is answered from a map of it, which the kernel
//! copies from directly (see [`crate::mapped`]); others are read into a buffer.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};

use crate::content::Content;
use crate::extent::AlignedBuf;
use crate::tree::{NodeKind, Tree};

thread_local! {
    /// Each worker thread's read buffer, reused: requests are up to 1 MiB, and a fresh
    /// allocation of that size is mapped, faulted in and zeroed every time.
    static SERVED: std::cell::RefCell<AlignedBuf> = std::cell::RefCell::new(AlignedBuf::default());
}

/// Nothing in the tree ever changes while mounted.
const TTL: Duration = Duration::from_secs(24 * 3600);

/// The mounted filesystem.
pub struct SalvageFs {
    tree: Arc<Tree>,
    content: Arc<Content>,
    mtime: SystemTime,
    uid: u32,
    gid: u32,
    /// Files open with direct I/O: asked for, and kept at init only if the kernel lets
    /// such files be mapped too (Linux 6.6 on); else they go through the mount's page
    /// cache.
    direct_io: bool,
}

impl SalvageFs {
    /// A filesystem showing `tree`, whose files read from `sources`; every file has
    /// `mtime` (the scan time, stable across remounts of the same index). Files are
    /// read with direct I/O if `direct_io` and the kernel allows it (see the module
    /// doc).
    pub fn new(tree: Tree, content: Content, mtime: u64, direct_io: bool) -> SalvageFs {
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        SalvageFs {
            tree: Arc::new(tree),
            content: Arc::new(content),
            mtime: UNIX_EPOCH + Duration::from_secs(mtime),
            uid,
            gid,
            direct_io,
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let node = self.tree.get(ino)?;
        let (kind, perm, size, nlink) = match &node.kind {
            NodeKind::Dir(children) => {
                let subdirs = children
                    .iter()
                    .filter(|c| self.tree.get(**c).is_some_and(|n| n.is_dir()))
                    .count();
                (FileType::Directory, 0o755, 0, 2 + subdirs as u32)
            }
            // A lazy directory holds only files; no need to build it for its nlink.
            NodeKind::TableDir(_) => (FileType::Directory, 0o755, 0, 2),
            NodeKind::File(f) => (FileType::RegularFile, 0o644, f.len(), 1),
        };
        let time = self
            .tree
            .mtime(ino)
            .map_or(self.mtime, |s| UNIX_EPOCH + Duration::from_secs(s));
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: time,
            mtime: time,
            ctime: time,
            crtime: time,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            // The size `cat` and `cp` read in (st_blksize): with direct I/O each read
            // is one request, so 1 MiB requests instead of 128 KiB ones (bench/serving.sh:
            // cat 27% -> 35% of dd, cp 712 -> 1449 MB/s, cold cat 61% -> 82%).
            blksize: 1 << 20,
            flags: 0,
        })
    }

    /// Directory entries from `offset` on (`.`, `..`, then the children), made one by
    /// one as the reply takes them, so a listing of 100 000 files stays linear.
    fn entries(&self, ino: u64, offset: u64) -> Option<impl Iterator<Item = (u64, Cow<'_, str>)>> {
        let node = self.tree.get(ino).filter(|n| n.is_dir())?;
        let dots = [(ino, "."), (node.parent, "..")];
        let dots = dots.into_iter().map(|(i, n)| (i, Cow::Borrowed(n)));
        let kids = (offset.saturating_sub(2)..).map_while(move |i| self.tree.entry(ino, i));
        Some(dots.skip(offset.min(2) as usize).chain(kids))
    }

    fn file_type(&self, ino: u64) -> FileType {
        match self.tree.get(ino).is_some_and(|n| n.is_dir()) {
            true => FileType::Directory,
            false => FileType::RegularFile,
        }
    }
}

impl Filesystem for SalvageFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let _ = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS);
        let _ = config.set_max_readahead(1 << 20);
        self.direct_io = self.direct_io
            && (config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)).is_ok();
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = name
            .to_str()
            .and_then(|n| self.tree.lookup(parent.0, n))
            .and_then(|i| self.attr(i));
        match found {
            Some(attr) => reply.entry(&TTL, &attr, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(attr) => reply.attr(&TTL, &attr),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let node = self.tree.get(ino.0);
        match node.as_deref().map(|n| &n.kind) {
            Some(NodeKind::File(_)) if flags.0 & libc::O_ACCMODE != libc::O_RDONLY => {
                reply.error(Errno::EROFS)
            }
            // Direct I/O (see the module doc); around unreadable bytes always, so that
            // EIO hits only the reads that need them.
            Some(NodeKind::File(_)) if self.direct_io || self.tree.is_unreadable(ino.0) => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_DIRECT_IO)
            }
            // Contents never change: let the kernel keep its page cache across opens.
            Some(NodeKind::File(_)) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Some(NodeKind::Dir(_) | NodeKind::TableDir(_)) => reply.error(Errno::EISDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = self.tree.file(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if let Some(bytes) = file.mapped(offset, size as usize, self.content.as_ref()) {
            return reply.data(bytes);
        }
        SERVED.with_borrow_mut(|buf| {
            match file.read_into(offset, size as usize, self.content.as_ref(), buf) {
                Ok(bytes) => reply.data(bytes),
                Err(e) => {
                    log::warn!("read of inode {} at {offset}: {e}", ino.0);
                    reply.error(Errno::EIO)
                }
            }
        })
    }

    /// Nothing is ever buffered for writing: a close has nothing to flush.
    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let node = self.tree.get(ino.0);
        match node.as_deref().map(|n| &n.kind) {
            Some(NodeKind::Dir(_) | NodeKind::TableDir(_)) => {
                reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE)
            }
            Some(NodeKind::File(_)) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(entries) = self.entries(ino.0, offset) else {
            return reply.error(Errno::ENOTDIR);
        };
        for (i, (child, name)) in entries.enumerate() {
            let kind = self.file_type(child);
            if reply.add(INodeNo(child), offset + i as u64 + 1, kind, &*name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let Some(entries) = self.entries(ino.0, offset) else {
            return reply.error(Errno::ENOTDIR);
        };
        for (i, (child, name)) in entries.enumerate() {
            let Some(attr) = self.attr(child) else {
                continue;
            };
            if reply.add(
                INodeNo(child),
                offset + i as u64 + 1,
                &*name,
                &TTL,
                &attr,
                Generation(0),
            ) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let blocks = self.tree.total_bytes().div_ceil(4096);
        reply.statfs(blocks, 0, 0, self.tree.len() as u64, 0, 4096, 255, 4096);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        // Not ENODATA: ENOSYS tells the kernel once that there are no xattrs here, so
        // `ls -l` stops asking for ACLs file by file (two requests per entry).
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, size: u32, reply: ReplyXattr) {
        if size == 0 {
            reply.size(0)
        } else {
            reply.data(&[])
        }
    }
}
