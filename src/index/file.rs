//! The index file's container: a header naming fixed sections, each with its own
//! offset, length and CRC-32, so that a reader decodes only the sections it needs and a
//! mount maps the large ones instead of reading them.
//!
//! ```text
//! magic (16) | version u32 | per section: offset u64, length u64, CRC-32 u32 | CRC-32 of all before
//! sections, in [`Section`] order, each starting on a 64-byte boundary
//! ```
//!
//! Written to a temporary file in the same directory, fsynced and renamed over the old
//! one, so a crash or a concurrent scan never leaves a half-written index. A truncated,
//! bit-flipped, foreign or older file fails the header's checks; a damaged section
//! fails its own checksum when it is read.

use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use super::{FORMAT_VERSION, IndexError};

const MAGIC: &[u8; 16] = b"salvagefs-index\n";
/// Sections are aligned to this many bytes, so fixed-width tables sit on row boundaries.
const ALIGN: u64 = 64;

/// The sections of an index file, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// When and how the scan ran, over which sources: what tells whether the index fits.
    Head,
    /// What the scan found besides documents (recordings, pages, namespaces...).
    Meta,
    /// Every document the scan found, as classification reads them.
    Docs,
    /// The collections the documents were sorted into (absent until classified).
    Collections,
    /// The documents as the mount serves them: fixed-width rows.
    Rows,
    /// Per collection, its documents in the order of their file names' hashes (u32
    /// each), so `docs/` finds a name by binary search.
    Names,
    /// The documents whose file names need a number to be unique.
    Renamed,
    /// Per block of rows, a CRC-32 of the rows and one of their names' entries, so a
    /// mount checks only what it reads.
    RowChecksums,
}

impl Section {
    /// Every section, in file order.
    pub const ALL: [Section; 8] = [
        Section::Head,
        Section::Meta,
        Section::Docs,
        Section::Collections,
        Section::Rows,
        Section::Names,
        Section::Renamed,
        Section::RowChecksums,
    ];

    fn name(self) -> &'static str {
        match self {
            Section::Head => "head",
            Section::Meta => "meta",
            Section::Docs => "documents",
            Section::Collections => "collections",
            Section::Rows => "rows",
            Section::Names => "names",
            Section::Renamed => "renamed",
            Section::RowChecksums => "row checksums",
        }
    }
}

const ENTRY_LEN: usize = 8 + 8 + 4;
/// Bytes of the header.
pub const HEADER_LEN: usize = 16 + 4 + Section::ALL.len() * ENTRY_LEN + 4;

/// Where a section lies and its checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry {
    offset: u64,
    len: u64,
    crc: u32,
}

fn encode_header(entries: &[Entry; Section::ALL.len()]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..16].copy_from_slice(MAGIC);
    h[16..20].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    for (i, e) in entries.iter().enumerate() {
        let at = 20 + i * ENTRY_LEN;
        h[at..at + 8].copy_from_slice(&e.offset.to_le_bytes());
        h[at + 8..at + 16].copy_from_slice(&e.len.to_le_bytes());
        h[at + 16..at + 20].copy_from_slice(&e.crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&h[..HEADER_LEN - 4]);
    h[HEADER_LEN - 4..].copy_from_slice(&crc.to_le_bytes());
    h
}

fn le<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// An index file's bytes (read, or mapped), its header checked.
pub struct IndexFile<B> {
    bytes: B,
    entries: [Entry; Section::ALL.len()],
    path: PathBuf,
}

impl<B: AsRef<[u8]>> IndexFile<B> {
    /// Checks the magic, version and header checksum of `bytes`, and that every section
    /// lies within them; `path` names the file in errors.
    pub fn parse(bytes: B, path: &Path) -> Result<IndexFile<B>, IndexError> {
        let corrupt = |reason: &str| IndexError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let b = bytes.as_ref();
        if b.len() < 16 || &b[..16] != MAGIC {
            return Err(corrupt("not a salvagefs index (bad magic)"));
        }
        if b.len() < HEADER_LEN {
            return Err(corrupt("truncated header"));
        }
        let version = u32::from_le_bytes(le(b, 16));
        if version != FORMAT_VERSION {
            return Err(IndexError::Version {
                path: path.to_path_buf(),
                found: version,
            });
        }
        if crc32fast::hash(&b[..HEADER_LEN - 4]) != u32::from_le_bytes(le(b, HEADER_LEN - 4)) {
            return Err(corrupt("header checksum mismatch"));
        }
        let mut entries = [Entry::default(); Section::ALL.len()];
        for (i, e) in entries.iter_mut().enumerate() {
            let at = 20 + i * ENTRY_LEN;
            *e = Entry {
                offset: u64::from_le_bytes(le(b, at)),
                len: u64::from_le_bytes(le(b, at + 8)),
                crc: u32::from_le_bytes(le(b, at + 16)),
            };
            let end = e.offset.checked_add(e.len);
            if e.offset < HEADER_LEN as u64 || end.is_none_or(|end| end > b.len() as u64) {
                return Err(corrupt("truncated (a section ends past the file)"));
            }
        }
        // Every byte is a section's, or zero padding before one: a flip anywhere is
        // caught, by a checksum or here.
        let mut spans: Vec<(u64, u64)> = entries
            .iter()
            .map(|e| (e.offset, e.offset + e.len))
            .collect();
        spans.sort_unstable();
        let mut pos = HEADER_LEN as u64;
        for (start, end) in spans {
            if start < pos || b[pos as usize..start as usize].iter().any(|&x| x != 0) {
                return Err(corrupt("sections overlap or stray bytes lie between them"));
            }
            pos = pos.max(end);
        }
        if pos != b.len() as u64 {
            return Err(corrupt("stray bytes after the last section"));
        }
        Ok(IndexFile {
            bytes,
            entries,
            path: path.to_path_buf(),
        })
    }

    /// Where `section` lies in the file.
    pub fn range(&self, section: Section) -> std::ops::Range<usize> {
        let e = self.entries[section as usize];
        e.offset as usize..(e.offset + e.len) as usize
    }

    /// The CRC-32 the header gives `section`.
    pub fn crc(&self, section: Section) -> u32 {
        self.entries[section as usize].crc
    }

    /// The bytes of `section`, not checked against its checksum (for tables checked
    /// block by block).
    pub fn raw(&self, section: Section) -> &[u8] {
        &self.bytes.as_ref()[self.range(section)]
    }

    /// The file's bytes.
    pub fn into_bytes(self) -> B {
        self.bytes
    }

    /// The bytes of `section`, after checking them against its checksum.
    pub fn checked(&self, section: Section) -> Result<&[u8], IndexError> {
        let bytes = self.raw(section);
        match crc32fast::hash(bytes) == self.entries[section as usize].crc {
            true => Ok(bytes),
            false => Err(self.corrupt(&format!("{} section checksum mismatch", section.name()))),
        }
    }

    /// Decodes the postcard value held by `section`, checked.
    pub fn decode<T: serde::de::DeserializeOwned>(
        &self,
        section: Section,
    ) -> Result<T, IndexError> {
        postcard::from_bytes(self.checked(section)?)
            .map_err(|e| self.corrupt(&format!("undecodable {} section: {e}", section.name())))
    }

    /// The index file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The error for a damaged index, saying why.
    pub fn corrupt(&self, reason: &str) -> IndexError {
        IndexError::Corrupt {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }
}

/// Maps the index file at `path` (read-only) and checks its header.
pub fn map(path: &Path) -> Result<IndexFile<memmap2::Mmap>, IndexError> {
    let io_error = |err: io::Error| match err.kind() {
        io::ErrorKind::NotFound => IndexError::Missing(path.to_path_buf()),
        _ => IndexError::Io {
            path: path.to_path_buf(),
            err,
        },
    };
    let file = File::open(path).map_err(io_error)?;
    // SAFETY: the index is only ever replaced by rename, never written in place, so
    // the mapped inode does not change under the map; a reader that truncates it
    // by hand gets SIGBUS, as with any mapped file.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_error)?;
    IndexFile::parse(map, path)
}

/// Writes an index file section by section, streaming, then renames it into place.
pub struct IndexWriter<W: Write + Seek> {
    out: W,
    entries: [Entry; Section::ALL.len()],
    at: u64,
}

/// Passes bytes on to `inner`, counting them and their CRC-32 on the way.
struct Checksummed<W> {
    inner: W,
    len: u64,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Checksummed<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write + Seek> IndexWriter<W> {
    /// Starts an index in `out` (at its start), header left for [`IndexWriter::finish`].
    pub fn new(mut out: W) -> io::Result<IndexWriter<W>> {
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&[0; HEADER_LEN])?;
        Ok(IndexWriter {
            out,
            entries: [Entry::default(); Section::ALL.len()],
            at: HEADER_LEN as u64,
        })
    }

    /// Writes `section` with `fill`, which gets a buffered writer. Sections may come in
    /// any order, each once; one not written is empty.
    pub fn section(
        &mut self,
        section: Section,
        fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        self.align()?;
        let mut sink = BufWriter::with_capacity(
            1 << 20,
            Checksummed {
                inner: &mut self.out,
                len: 0,
                crc: crc32fast::Hasher::new(),
            },
        );
        fill(&mut sink)?;
        let sink = sink.into_inner().map_err(|e| e.into_error())?;
        self.entries[section as usize] = Entry {
            offset: self.at,
            len: sink.len,
            crc: sink.crc.clone().finalize(),
        };
        self.at += sink.len;
        Ok(())
    }

    /// Pads the output to where the next section starts.
    fn align(&mut self) -> io::Result<()> {
        let pad = self.at.next_multiple_of(ALIGN) - self.at;
        self.out.write_all(&[0; ALIGN as usize][..pad as usize])?;
        self.at += pad;
        Ok(())
    }

    /// Writes a postcard-encoded `value` as `section`.
    pub fn value<T: serde::Serialize>(&mut self, section: Section, value: &T) -> io::Result<()> {
        self.section(section, |w| {
            postcard::to_io(value, w)
                .map(|_| ())
                .map_err(io::Error::other)
        })
    }

    /// Writes the header (sections never written stay empty, at the end) and hands the
    /// output back.
    pub fn finish(mut self) -> io::Result<W> {
        for e in self.entries.iter_mut().filter(|e| e.offset == 0) {
            e.offset = self.at;
        }
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&encode_header(&self.entries))?;
        self.out.seek(SeekFrom::Start(self.at))?;
        Ok(self.out)
    }
}

impl IndexWriter<File> {
    /// Writes `section` as a copy of the bytes `from` holds, whose CRC-32 is `crc`
    /// (another index's section, checked when it is read): the kernel copies them from
    /// file to file (`copy_file_range`, which `io::copy` uses between files), where
    /// [`IndexWriter::section`] would read, checksum and write them again (220 MB of
    /// documents at 4 million).
    pub fn copied_section(
        &mut self,
        section: Section,
        (mut from, crc): (io::Take<File>, u32),
    ) -> io::Result<()> {
        self.align()?;
        let len = from.limit();
        if io::copy(&mut from, &mut self.out)? != len {
            return Err(io::Error::other(
                "the index was truncated while it was read",
            ));
        }
        self.entries[section as usize] = Entry {
            offset: self.at,
            len,
            crc,
        };
        self.at += len;
        Ok(())
    }
}

/// An index file holding `sections` (in [`Section::ALL`] order) with valid header and
/// checksums: for the fuzzer, to hand the decoders well-framed garbage.
pub fn frame(sections: [&[u8]; Section::ALL.len()]) -> io::Result<Vec<u8>> {
    let mut out = io::Cursor::new(Vec::new());
    let mut writer = IndexWriter::new(&mut out)?;
    for (section, bytes) in Section::ALL.into_iter().zip(sections) {
        writer.section(section, |w| w.write_all(bytes))?;
    }
    writer.finish()?;
    Ok(out.into_inner())
}

/// Writes the file at `path` atomically with `write`: a temporary file in the same
/// directory, fsync (with `sync`), rename. Without `sync`, a crash soon after may leave
/// the file truncated or empty, which its checks catch: for files soon replaced (a
/// scan's segments, the documents before they are classified).
pub fn save_atomically(
    path: &Path,
    sync: bool,
    write: impl FnOnce(&mut IndexWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut pending = Pending::create(path)?;
    write(pending.writer())?;
    pending.commit(sync)
}

/// An index file being written: a temporary file in the directory of `path`, renamed
/// over it by [`Pending::commit`], removed if dropped before. Begun on one thread and
/// finished on another, its first sections are written while the rest is worked out.
pub struct Pending {
    path: PathBuf,
    tmp: Temporary,
    writer: IndexWriter<File>,
}

/// A file removed when dropped, unless kept.
struct Temporary(Option<PathBuf>);

impl Temporary {
    /// Renames the file to `to`, where it stays.
    fn rename_to(mut self, to: &Path) -> io::Result<()> {
        if let Some(from) = &self.0 {
            fs::rename(from, to)?;
            self.0 = None;
        }
        Ok(())
    }
}

impl Drop for Temporary {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

impl Pending {
    /// Starts the index that will be at `path`.
    pub fn create(path: &Path) -> io::Result<Pending> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = directory_of(path);
        fs::create_dir_all(dir)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("index");
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp.{}.{n}", std::process::id()));
        let file = File::create(&tmp);
        let tmp = Temporary(Some(tmp));
        Ok(Pending {
            path: path.to_path_buf(),
            writer: IndexWriter::new(file?)?,
            tmp,
        })
    }

    /// Where the sections go.
    pub fn writer(&mut self) -> &mut IndexWriter<File> {
        &mut self.writer
    }

    /// Starts writing what is written so far to the disk, without waiting for it:
    /// the fsync of [`Pending::commit`] then waits only for the rest. A begun index's
    /// documents (half of it) are written while classification runs on another core.
    pub fn start_writeback(&self) {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a descriptor this file owns. Only a hint:
        // its failure changes nothing but when the bytes reach the disk.
        unsafe {
            libc::sync_file_range(
                self.writer.out.as_raw_fd(),
                0,
                0,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
    }

    /// Writes the header, fsyncs (with `sync`) and renames the file into place.
    pub fn commit(self, sync: bool) -> io::Result<()> {
        let Pending { path, tmp, writer } = self;
        let f = writer.finish()?;
        if sync {
            f.sync_all()?;
        }
        tmp.rename_to(&path)?;
        match sync {
            true => File::open(directory_of(&path))?.sync_all(),
            false => Ok(()),
        }
    }
}

/// The directory a file at `path` is in (`.` for a bare name).
fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}
