//! The documents section of an index file read front to back through a small buffer,
//! never mapped or held whole: how classification reads millions of documents in
//! bounded memory, as many times as it needs to.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Take, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rayon::prelude::*;

use super::file::{self, Section};
use super::{DocEntry, IndexError, codec};
use crate::ahead::Ahead;

/// Documents encoded per batch: a few megabytes, whatever their number.
const WRITE_BATCH: usize = 1 << 16;

/// Writes `docs` into `out` as the documents section holds them (postcard's encoding
/// of the list: its length, then each entry, see [`codec`]), encoded in memory in
/// batches on all cores and written a batch at a time: written an entry at a time
/// (postcard's writer passed single bytes), 2 million documents took half a second.
pub fn write_docs(docs: &[DocEntry], out: &mut dyn Write) -> io::Result<()> {
    out.write_all(&postcard::to_allocvec(&docs.len()).map_err(io::Error::other)?)?;
    for batch in docs.chunks(WRITE_BATCH) {
        let encoded: Vec<Vec<u8>> = batch
            .par_chunks(WRITE_BATCH / 16)
            .map(|part| {
                let mut bytes = Vec::with_capacity(part.len() * TYPICAL_ENTRY);
                part.iter().for_each(|d| codec::encode(d, &mut bytes));
                bytes
            })
            .collect();
        encoded.iter().try_for_each(|bytes| out.write_all(bytes))?;
    }
    Ok(())
}

/// Bytes an entry usually takes encoded: room reserved ahead.
const TYPICAL_ENTRY: usize = 64;

/// Where an index file keeps its documents, to read them as often as needed.
#[derive(Clone, Debug)]
pub struct DocsFile {
    path: PathBuf,
    offset: u64,
    len: u64,
    crc: u32,
    count: usize,
}

impl DocsFile {
    /// The documents section of the index at `path` (its header checked).
    pub fn open(path: &Path) -> Result<DocsFile, IndexError> {
        let mapped = file::map(path)?;
        let range = mapped.range(Section::Docs);
        let mut docs = DocsFile {
            path: path.to_path_buf(),
            offset: range.start as u64,
            len: range.len() as u64,
            crc: mapped.crc(Section::Docs),
            count: 0,
        };
        let reader = docs.reader().map_err(|err| IndexError::Io {
            path: path.to_path_buf(),
            err,
        })?;
        // Every entry takes bytes: a count the section cannot hold is damage, and must
        // not size anything.
        if reader.left as u64 > docs.len {
            return Err(mapped.corrupt("the documents section counts more than it holds"));
        }
        docs.count = reader.left;
        Ok(docs)
    }

    /// How many documents it holds.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Bytes of the section: at most what its documents take encoded again.
    pub fn bytes(&self) -> u64 {
        self.len
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The section's bytes, to be copied as they are (what a classified index keeps),
    /// and their CRC-32: see [`file::IndexWriter::copied_section`].
    pub fn section(&self) -> io::Result<(Take<File>, u32)> {
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        Ok((f.take(self.len), self.crc))
    }

    /// The documents in index order; the last one read checks the section's checksum
    /// (an error then: classification must not keep what it read).
    pub fn reader(&self) -> io::Result<DocsReader> {
        let mut f = File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        let mut reader = DocsReader {
            input: f.take(self.len),
            buf: Vec::with_capacity(BUF),
            at: 0,
            crc: crc32fast::Hasher::new(),
            left: 0,
            want: self.crc,
        };
        reader.fill()?;
        reader.left = reader.decode()?;
        Ok(reader)
    }

    /// As [`DocsFile::reader`], decoded on another thread a batch ahead.
    pub fn read_ahead(&self) -> io::Result<Ahead<io::Result<DocEntry>>> {
        Ok(Ahead::new(self.reader()?))
    }

    /// The documents in index order, decoded on another thread a few batches ahead and
    /// lent to `each` a batch at a time, with the position of the batch's first. The
    /// first error (damage, a failed read, or `each`'s) ends it.
    pub fn read_batches(
        &self,
        each: &mut dyn FnMut(usize, &[DocEntry]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut reader = self.reader()?;
        let (to_user, batches) = mpsc::sync_channel(BATCHES_AHEAD);
        std::thread::spawn(move || {
            while reader.left > 0 {
                let batch = reader.next_batch();
                let failed = batch.is_err();
                // The user stopped: nothing more to decode.
                if to_user.send(batch).is_err() || failed {
                    return;
                }
            }
        });
        let mut start = 0;
        for batch in batches {
            let batch = batch?;
            each(start, &batch)?;
            start += batch.len();
        }
        match start == self.count {
            true => Ok(()),
            false => Err(io::Error::other("the thread decoding documents failed")),
        }
    }
}

/// Documents decoded at a time by [`DocsFile::read_batches`].
const BATCH: usize = 4096;
/// Batches decoded before the user takes one.
const BATCHES_AHEAD: usize = 4;

/// Bytes read from the file at a time.
const BUF: usize = 1 << 20;
/// More than any one document's entry takes (its `_id` is at most 65 bytes).
const MAX_ENTRY: usize = 4096;

/// The documents of a [`DocsFile`], in order.
pub struct DocsReader {
    input: Take<File>,
    buf: Vec<u8>,
    at: usize,
    crc: crc32fast::Hasher,
    left: usize,
    want: u32,
}

impl DocsReader {
    /// Tops the buffer up when fewer than [`MAX_ENTRY`] bytes are left in it.
    fn fill(&mut self) -> io::Result<()> {
        if self.buf.len() - self.at >= MAX_ENTRY {
            return Ok(());
        }
        self.buf.drain(..self.at);
        self.at = 0;
        let have = self.buf.len();
        self.buf.resize(BUF, 0);
        let mut end = have;
        while end < BUF {
            match self.input.read(&mut self.buf[end..])? {
                0 => break,
                n => end += n,
            }
        }
        self.crc.update(&self.buf[have..end]);
        self.buf.truncate(end);
        Ok(())
    }

    /// Decodes the next value from the buffer.
    fn decode<T: serde::de::DeserializeOwned>(&mut self) -> io::Result<T> {
        self.fill()?;
        let (value, rest) = postcard::take_from_bytes(&self.buf[self.at..])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        self.at = self.buf.len() - rest.len();
        Ok(value)
    }

    /// Decodes the next document from the buffer.
    fn decode_entry(&mut self) -> io::Result<DocEntry> {
        self.fill()?;
        let (entry, rest) = codec::decode(&self.buf[self.at..]).map_err(undecodable)?;
        self.at = self.buf.len() - rest.len();
        Ok(entry)
    }

    /// After the last document: nothing may be left, and the checksum must hold.
    fn check_end(&mut self) -> io::Result<()> {
        self.fill()?;
        match self.at == self.buf.len() && self.crc.clone().finalize() == self.want {
            true => Ok(()),
            false => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "documents section checksum mismatch",
            )),
        }
    }

    /// The next [`BATCH`] documents (fewer at the end), or the first error.
    fn next_batch(&mut self) -> io::Result<Vec<DocEntry>> {
        let n = BATCH.min(self.left);
        let batch = self.decode_batch(n);
        self.left = match batch {
            Ok(_) => self.left - n,
            Err(_) => 0,
        };
        match self.left {
            0 => batch.and_then(|batch| self.check_end().map(|()| batch)),
            _ => batch,
        }
    }

    /// Decodes `n` documents. While [`MAX_ENTRY`] bytes are left in the buffer a whole
    /// entry surely is, so entries are decoded without a check for a refill each (one
    /// at a time at the end of the section).
    fn decode_batch(&mut self, n: usize) -> io::Result<Vec<DocEntry>> {
        let mut batch = Vec::with_capacity(n);
        while batch.len() < n {
            self.fill()?;
            let mut rest = &self.buf[self.at..];
            loop {
                let (d, after) = codec::decode(rest).map_err(undecodable)?;
                batch.push(d);
                rest = after;
                if batch.len() == n || rest.len() < MAX_ENTRY {
                    break;
                }
            }
            self.at = self.buf.len() - rest.len();
        }
        Ok(batch)
    }
}

/// A damaged entry, as the readers' error.
fn undecodable(e: codec::Undecodable) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl Iterator for DocsReader {
    type Item = io::Result<DocEntry>;

    fn next(&mut self) -> Option<io::Result<DocEntry>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let doc = self.decode_entry().and_then(|d| match self.left {
            0 => self.check_end().map(|()| d),
            _ => Ok(d),
        });
        if doc.is_err() {
            self.left = 0;
        }
        Some(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::Index;

    #[test]
    fn reads_what_was_saved_and_notices_damage() {
        let mut idx = Index::for_tests(&[PathBuf::from("/x")], 10);
        let doc = |i: u64| DocEntry {
            source: 0,
            offset: i * 100,
            len: 50,
            deleted: i.is_multiple_of(3),
            hash: i,
            id: crate::index::DocId::from_slice(&[7, i as u8]),
            shape: 0,
            ns_header_ofs: None,
            record_links: None,
            json_len: 60,
            pretty_len: 70,
            wt: None,
            doubts: Default::default(),
        };
        idx.docs = (0..30_000).map(doc).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.idx");
        idx.save(&path).unwrap();
        let docs = DocsFile::open(&path).unwrap();
        assert_eq!(docs.len(), 30_000);
        for _ in 0..2 {
            let read: Vec<DocEntry> = docs.reader().unwrap().map(Result::unwrap).collect();
            assert_eq!(read, idx.docs);
        }
        let mut lent = Vec::new();
        docs.read_batches(&mut |start, batch| {
            assert_eq!(start, lent.len());
            lent.extend_from_slice(batch);
            Ok(())
        })
        .unwrap();
        assert_eq!(lent, idx.docs);
        // The user's error ends the reading, and is the result.
        let stop = docs.read_batches(&mut |_, _| Err(io::Error::other("enough")));
        assert_eq!(stop.unwrap_err().to_string(), "enough");
        // A flipped byte in the last document: every document reads, the checksum fails.
        let mut bytes = std::fs::read(&path).unwrap();
        let end = (docs.offset + docs.len) as usize;
        bytes[end - 3] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let read: Vec<io::Result<DocEntry>> = docs.reader().unwrap().collect();
        assert!(read.last().unwrap().is_err());
        assert!(docs.read_batches(&mut |_, _| Ok(())).is_err());
    }
}
