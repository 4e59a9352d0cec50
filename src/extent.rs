//! A virtual file is a list of extents.
//!
//! Every file in the mount is an [`ExtentList`]: ranges of a source (a carved video, or
//! several ranges when damage was skipped) or bytes made in memory (`README.txt`,
//! `candidates.tsv`). A read of `[a, b)` binary-searches the list and touches only the
//! extents it covers, so a 2 GB file costs nothing until someone reads it.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::sync::Arc;

thread_local! {
    /// Scratch space for documents rendered whole, reused by every read of a thread.
    static RENDERED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A rendering whose length differs from the one the scan measured means the source
/// changed under the index: refuse rather than serve bytes that disagree with the size.
fn check_len(text: &[u8], len: u64) -> io::Result<()> {
    match text.len() as u64 == len {
        true => Ok(()),
        false => Err(io::Error::from_raw_os_error(libc::EIO)),
    }
}

/// One piece of a virtual file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extent {
    /// `len` bytes of source number `source`, starting at `offset`.
    Source {
        /// Position of the source in the index's source list.
        source: u32,
        /// First byte on the source.
        offset: u64,
        /// Length in bytes.
        len: u64,
    },
    /// Bytes held in memory.
    Bytes(Arc<[u8]>),
    /// Document number `doc` of the index, rendered as Extended JSON (indented when
    /// `pretty`) with a newline, on read; `len` was measured by the scan.
    Document {
        /// The document's row in the index.
        doc: u64,
        /// Indented, one field per line.
        pretty: bool,
        /// Length of the rendering, newline included.
        len: u64,
    },
    /// The BSON bytes of document number `doc` as stored, `len` bytes: read from its
    /// WiredTiger page image, or through a window of the source that serves many
    /// documents at once, a deleted record's length restored.
    Stored {
        /// The document's row in the index.
        doc: u64,
        /// Length in bytes.
        len: u64,
    },
}

impl Extent {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Extent::Source { len, .. }
            | Extent::Document { len, .. }
            | Extent::Stored { len, .. } => *len,
            Extent::Bytes(b) => b.len() as u64,
        }
    }
    /// True for a zero-length extent.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads source bytes for an extent list: `(source, offset, buf)`, filling `buf` or
/// failing (EIO for an unreadable sector).
pub trait SourceReader {
    /// `len` bytes of `source` at `offset` for the kernel to copy from, never to be
    /// read here (see [`crate::mapped`]); `None` when they must be read into a buffer.
    fn mapped(&self, source: u32, offset: u64, len: usize) -> Option<&[u8]> {
        let _ = (source, offset, len);
        None
    }

    /// Fills `buf` from `source` at `offset`.
    fn read_source(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// Appends the rendering of an [`Extent::Document`] to `out`, uncached: for a
    /// document read whole, which (in a sequential read) nobody asks for again.
    /// Readers without documents have none.
    fn render_document(&self, doc: u64, pretty: bool, out: &mut Vec<u8>) -> io::Result<()> {
        let _ = (doc, pretty, out);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// The same rendering, shared and cached: for a document read in pieces (split
    /// between two read requests, or larger than one), so it is rendered once.
    fn document(&self, doc: u64, pretty: bool) -> io::Result<Arc<[u8]>> {
        let _ = (doc, pretty);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }

    /// Fills `buf` with the stored BSON bytes of an [`Extent::Stored`] document, from
    /// byte `within` of it on.
    fn read_stored(&self, doc: u64, within: u64, buf: &mut [u8]) -> io::Result<()> {
        let _ = (doc, within, buf);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// A file of many pieces whose extents are made on read, not held (a collection's
/// `.bson` or `.json`, from the index's rows): memory does not grow with its documents.
pub trait LazyExtents: Send + Sync + fmt::Debug {
    /// Size of the file.
    fn len(&self) -> u64;

    /// True for an empty file.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `each` with every extent overlapping `[offset, end)`, in order, and the
    /// file offset where it starts.
    fn visit(
        &self,
        offset: u64,
        end: u64,
        each: &mut dyn FnMut(u64, &Extent) -> io::Result<()>,
    ) -> io::Result<()>;
}

/// The ordered extents of one file: held, with the file offset where each one
/// starts, or made on read.
#[derive(Clone, Debug)]
pub enum ExtentList {
    /// Extents held in memory.
    Held {
        /// The extents, empty ones dropped.
        extents: Vec<Extent>,
        /// Where each one starts in the file.
        starts: Vec<u64>,
        /// Size of the file.
        len: u64,
    },
    /// Extents made on read.
    Lazy(Arc<dyn LazyExtents>),
}

impl Default for ExtentList {
    fn default() -> Self {
        ExtentList::new([])
    }
}

impl ExtentList {
    /// Builds the list; empty extents are dropped.
    pub fn new(extents: impl IntoIterator<Item = Extent>) -> ExtentList {
        let (mut held, mut starts, mut len) = (Vec::new(), Vec::new(), 0);
        for e in extents.into_iter().filter(|e| !e.is_empty()) {
            starts.push(len);
            len += e.len();
            held.push(e);
        }
        ExtentList::Held {
            extents: held,
            starts,
            len,
        }
    }

    /// A file made of one in-memory buffer.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> ExtentList {
        ExtentList::new([Extent::Bytes(bytes.into())])
    }

    /// Size of the file.
    pub fn len(&self) -> u64 {
        match self {
            ExtentList::Held { len, .. } => *len,
            ExtentList::Lazy(lazy) => lazy.len(),
        }
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `each` with every extent overlapping `[offset, end)`, in order, and the
    /// file offset where it starts.
    pub fn visit(
        &self,
        offset: u64,
        end: u64,
        each: &mut dyn FnMut(u64, &Extent) -> io::Result<()>,
    ) -> io::Result<()> {
        match self {
            ExtentList::Lazy(lazy) => lazy.visit(offset, end, each),
            ExtentList::Held {
                extents, starts, ..
            } => {
                // The extent containing `offset`: the last one starting at or before it.
                let first = starts.partition_point(|&s| s <= offset).saturating_sub(1);
                let held = starts[first..].iter().zip(&extents[first..]);
                for (&start, extent) in held.take_while(|(s, _)| **s < end) {
                    each(start, extent)?;
                }
                Ok(())
            }
        }
    }

    /// Reads up to `size` bytes at file offset `offset` (fewer at the end of the file).
    pub fn read(&self, offset: u64, size: usize, reader: &dyn SourceReader) -> io::Result<Vec<u8>> {
        let mut out = vec![0; self.readable(offset, size)];
        self.fill(offset, &mut out, reader)?;
        Ok(out)
    }

    /// As [`ExtentList::read`], into `buf`: a server reusing one page-aligned buffer
    /// per thread neither allocates nor zeroes a megabyte per request, and the kernel
    /// copies into it at full speed (see [`AlignedBuf`]).
    pub fn read_into<'b>(
        &self,
        offset: u64,
        size: usize,
        reader: &dyn SourceReader,
        buf: &'b mut AlignedBuf,
    ) -> io::Result<&'b [u8]> {
        let out = buf.get(self.readable(offset, size));
        self.fill(offset, out, reader)?;
        Ok(out)
    }

    /// A read of `size` bytes at `offset` as source bytes for the kernel to copy from
    /// (see [`SourceReader::mapped`]), when one extent of the source holds all of it:
    /// a carved recording, read anywhere but across a skipped range.
    pub fn mapped<'r>(
        &self,
        offset: u64,
        size: usize,
        reader: &'r dyn SourceReader,
    ) -> Option<&'r [u8]> {
        let ExtentList::Held {
            extents, starts, ..
        } = self
        else {
            return None;
        };
        let len = self.readable(offset, size);
        let i = starts.partition_point(|&s| s <= offset).checked_sub(1)?;
        match &extents[i] {
            Extent::Source {
                source,
                offset: at,
                len: n,
            } if offset + len as u64 <= starts[i] + n => {
                reader.mapped(*source, at + (offset - starts[i]), len)
            }
            _ => None,
        }
    }

    /// Bytes a read of `size` at `offset` gets (fewer at the end of the file).
    fn readable(&self, offset: u64, size: usize) -> usize {
        let end = offset.saturating_add(size as u64).min(self.len());
        end.saturating_sub(offset) as usize
    }

    /// Fills `out` with the file's bytes from `offset` on, every byte of it: the
    /// extents must tile the range, and a gap (rows that disagree) is an error, never
    /// bytes left over from an earlier read.
    fn fill(&self, offset: u64, out: &mut [u8], reader: &dyn SourceReader) -> io::Result<()> {
        let end = offset + out.len() as u64;
        if out.is_empty() {
            return Ok(());
        }
        let mut pos = offset;
        self.visit(offset, end, &mut |start, extent| {
            if start > pos {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            let to = end.min(start.saturating_add(extent.len()));
            if to > pos {
                let dst = &mut out[(pos - offset) as usize..(to - offset) as usize];
                read_extent(extent, pos - start, dst, reader)?;
                pos = to;
            }
            Ok(())
        })?;
        match pos == end {
            true => Ok(()),
            false => Err(io::Error::from_raw_os_error(libc::EIO)),
        }
    }
}

/// Fills `dst` from `extent`, starting `within` bytes into it.
fn read_extent(
    extent: &Extent,
    within: u64,
    dst: &mut [u8],
    reader: &dyn SourceReader,
) -> io::Result<()> {
    let n = dst.len();
    match extent {
        Extent::Source { source, offset, .. } => reader.read_source(*source, offset + within, dst),
        Extent::Bytes(b) => {
            dst.copy_from_slice(&b[within as usize..][..n]);
            Ok(())
        }
        Extent::Stored { doc, .. } => reader.read_stored(*doc, within, dst),
        Extent::Document { doc, pretty, len } if within == 0 && n as u64 == *len => RENDERED
            .with_borrow_mut(|text| {
                text.clear();
                reader.render_document(*doc, *pretty, text)?;
                check_len(text, *len)?;
                dst.copy_from_slice(text);
                Ok(())
            }),
        Extent::Document { doc, pretty, len } => {
            let text = reader.document(*doc, *pretty)?;
            check_len(&text, *len)?;
            dst.copy_from_slice(&text[within as usize..][..n]);
            Ok(())
        }
    }
}

/// A reusable read buffer whose bytes start on a page boundary. The kernel copies a
/// `pread` into it with `rep movsb`, which on x86 runs several times slower into a
/// destination that is not 64-byte aligned, and a large `Vec<u8>` (glibc maps it on
/// its own) starts 16 bytes into a page: reading 4.3 GB in 2 MiB reads took 2.4 s of
/// system time into such a buffer, 0.48 s into a page-aligned one.
#[derive(Default)]
pub struct AlignedBuf {
    raw: Vec<u8>,
}

/// The alignment [`AlignedBuf`] gives its bytes.
const PAGE: usize = 4096;

impl AlignedBuf {
    /// `len` bytes starting on a page boundary (their contents are whatever the last
    /// use left, or zeros).
    pub fn get(&mut self, len: usize) -> &mut [u8] {
        if self.raw.len() < len + PAGE {
            self.raw = vec![0; len + PAGE];
        }
        let skip = self.raw.as_ptr().align_offset(PAGE);
        &mut self.raw[skip..skip + len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buffers_start_on_a_page() {
        let mut buf = AlignedBuf::default();
        for len in [0, 1, 100_000, 2 << 20, 4096] {
            let bytes = buf.get(len);
            assert_eq!(bytes.len(), len);
            assert_eq!(bytes.as_ptr() as usize % PAGE, 0);
        }
    }

    struct Pattern;
    impl SourceReader for Pattern {
        fn read_source(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (source as u64 * 100 + offset + i as u64) as u8;
            }
            Ok(())
        }
    }

    /// 5 bytes of source 0, `abc`, an empty extent (dropped), 4 bytes of source 1.
    fn mixed() -> ExtentList {
        ExtentList::new([
            Extent::Source {
                source: 0,
                offset: 10,
                len: 5,
            },
            Extent::Bytes(Arc::from(&b"abc"[..])),
            Extent::Source {
                source: 1,
                offset: 0,
                len: 0,
            },
            Extent::Source {
                source: 1,
                offset: 50,
                len: 4,
            },
        ])
    }

    #[test]
    fn reads_across_extents() {
        let list = mixed();
        assert_eq!(list.len(), 12);
        let all = list.read(0, 100, &Pattern).unwrap();
        assert_eq!(
            all,
            vec![10, 11, 12, 13, 14, b'a', b'b', b'c', 150, 151, 152, 153]
        );
        for a in 0..12u64 {
            for n in 0..14usize {
                let part = list.read(a, n, &Pattern).unwrap();
                let want: Vec<u8> = all.iter().copied().skip(a as usize).take(n).collect();
                assert_eq!(part, want, "read({a}, {n})");
            }
        }
        assert!(list.read(12, 10, &Pattern).unwrap().is_empty());
        assert!(list.read(u64::MAX, 10, &Pattern).unwrap().is_empty());
    }

    /// [`Pattern`]'s bytes, also as mapped slices.
    struct Mapped([Vec<u8>; 2]);
    impl SourceReader for Mapped {
        fn read_source(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            Pattern.read_source(source, offset, buf)
        }
        fn mapped(&self, source: u32, offset: u64, len: usize) -> Option<&[u8]> {
            self.0[source as usize].get(offset as usize..)?.get(..len)
        }
    }

    #[test]
    fn mapped_only_within_one_source_extent() {
        let pattern = |s: u64| (0..256).map(|i| (s * 100 + i) as u8).collect();
        let reader = Mapped([pattern(0), pattern(1)]);
        let list = mixed();
        for a in 0..14u64 {
            for n in 0..14usize {
                let end = (a + n as u64).min(12);
                let within = (a < 5 && end <= 5) || (8..=12).contains(&a);
                let got = list.mapped(a, n, &reader);
                assert_eq!(got.is_some(), within, "mapped({a}, {n})");
                if let Some(bytes) = got {
                    assert_eq!(
                        bytes,
                        list.read(a, n, &Pattern).unwrap(),
                        "mapped({a}, {n})"
                    );
                }
            }
        }
        assert!(
            ExtentList::from_bytes(&b"xyz"[..])
                .mapped(0, 3, &reader)
                .is_none()
        );
        assert!(ExtentList::default().mapped(0, 3, &reader).is_none());
    }

    /// Documents rendered as `doc<N>\n` (`len` 5): whole reads use the uncached path,
    /// pieces the cached one, and both give the same bytes; a wrong length is EIO.
    struct Docs;
    impl SourceReader for Docs {
        fn read_source(&self, _: u32, _: u64, _: &mut [u8]) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        }
        fn render_document(&self, doc: u64, _: bool, out: &mut Vec<u8>) -> io::Result<()> {
            out.extend_from_slice(format!("doc{doc}\n").as_bytes());
            Ok(())
        }
        fn document(&self, doc: u64, _: bool) -> io::Result<Arc<[u8]>> {
            Ok(format!("doc{doc}\n").into_bytes().into())
        }
    }

    #[test]
    fn documents_read_whole_or_in_pieces() {
        let doc = |doc, len| Extent::Document {
            doc,
            pretty: false,
            len,
        };
        let list = ExtentList::new([doc(1, 5), doc(2, 5), doc(3, 5)]);
        let all = list.read(0, 15, &Docs).unwrap();
        assert_eq!(all, b"doc1\ndoc2\ndoc3\n");
        for a in 0..15u64 {
            for n in 0..16usize {
                let want: Vec<u8> = all.iter().copied().skip(a as usize).take(n).collect();
                assert_eq!(list.read(a, n, &Docs).unwrap(), want, "read({a}, {n})");
            }
        }
        let wrong = ExtentList::new([doc(10, 5)]);
        assert_eq!(
            wrong.read(0, 5, &Docs).unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
        assert_eq!(
            wrong.read(1, 2, &Docs).unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
    }
}
