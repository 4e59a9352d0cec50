//! A virtual file is a list of extents.
//!
//! Every file in the mount is an [`ExtentList`]: ranges of a source (a carved video, or
//! several ranges when damage was skipped) or bytes made in memory (`README.txt`,
//! `candidates.tsv`). A read of `[a, b)` binary-searches the list and touches only the
//! extents it covers, so a 2 GB file costs nothing until someone reads it.

use std::io;
use std::sync::Arc;

/// One piece of a virtual file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extent {
    /// `len` bytes of source number `source`, starting at `offset`.
    Source { source: u32, offset: u64, len: u64 },
    /// Bytes held in memory.
    Bytes(Arc<[u8]>),
    /// Document number `doc` of the index, rendered as Extended JSON (indented when
    /// `pretty`) with a newline, on read; `len` was measured by the scan.
    Document { doc: u32, pretty: bool, len: u64 },
}

impl Extent {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Extent::Source { len, .. } | Extent::Document { len, .. } => *len,
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
    /// Fills `buf` from `source` at `offset`.
    fn read_source(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()>;

    /// The rendering of a [`Extent::Document`]; readers without documents have none.
    fn document(&self, doc: u32, pretty: bool) -> io::Result<Arc<[u8]>> {
        let _ = (doc, pretty);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// The ordered extents of one file, with the file offset where each one starts.
#[derive(Clone, Debug, Default)]
pub struct ExtentList {
    extents: Vec<Extent>,
    starts: Vec<u64>,
    len: u64,
}

impl ExtentList {
    /// Builds the list; empty extents are dropped.
    pub fn new(extents: impl IntoIterator<Item = Extent>) -> ExtentList {
        let mut list = ExtentList::default();
        for e in extents.into_iter().filter(|e| !e.is_empty()) {
            list.starts.push(list.len);
            list.len += e.len();
            list.extents.push(e);
        }
        list
    }

    /// A file made of one in-memory buffer.
    pub fn from_bytes(bytes: impl Into<Arc<[u8]>>) -> ExtentList {
        ExtentList::new([Extent::Bytes(bytes.into())])
    }

    /// Size of the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The extents, in file order.
    pub fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// Reads up to `size` bytes at file offset `offset` (fewer at the end of the file).
    pub fn read(&self, offset: u64, size: usize, reader: &dyn SourceReader) -> io::Result<Vec<u8>> {
        let end = offset.saturating_add(size as u64).min(self.len);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = vec![0u8; (end - offset) as usize];
        // The extent containing `offset`: the last one starting at or before it.
        let mut i = self.starts.partition_point(|&s| s <= offset) - 1;
        let mut pos = offset;
        while pos < end {
            let (start, extent) = (self.starts[i], &self.extents[i]);
            let within = pos - start;
            let n = (extent.len() - within).min(end - pos) as usize;
            let dst = &mut out[(pos - offset) as usize..][..n];
            match extent {
                Extent::Source {
                    source,
                    offset: src_off,
                    ..
                } => reader.read_source(*source, src_off + within, dst)?,
                Extent::Bytes(b) => dst.copy_from_slice(&b[within as usize..][..n]),
                Extent::Document { doc, pretty, len } => {
                    let text = reader.document(*doc, *pretty)?;
                    if text.len() as u64 != *len {
                        // The source changed under the index: refuse rather than serve
                        // a file whose bytes disagree with its size.
                        return Err(io::Error::from_raw_os_error(libc::EIO));
                    }
                    dst.copy_from_slice(&text[within as usize..][..n]);
                }
            }
            pos += n as u64;
            i += 1;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pattern;
    impl SourceReader for Pattern {
        fn read_source(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (source as u64 * 100 + offset + i as u64) as u8;
            }
            Ok(())
        }
    }

    #[test]
    fn reads_across_extents() {
        let list = ExtentList::new([
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
        ]);
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
}
