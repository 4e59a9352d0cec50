//! Carvers: pure functions from bytes to candidates.
//!
//! No file I/O, no FUSE, no globals: a carver sees bytes through [`ByteSource`], which
//! a plain slice implements (tests, fuzzing) and the scanner implements over a source.
//! Carvers must never panic, loop forever or allocate without bound, whatever the bytes.

pub mod bson;
pub mod btrfs;
pub mod decoding;
pub mod ext4;
pub mod filemap;
pub mod flv;
pub mod flv_tag;
pub mod fragments;
pub mod join;
pub mod mmapv1;
pub mod nsfile;
pub mod probe;
pub mod search;
pub mod splits;
pub mod wiredtiger;
pub mod xfs;

/// The whole blocks of `size` bytes in `buf` (which holds the source from `base`) that
/// start on a multiple of `size` on the source, before `limit`, each with its offset on
/// the source: where on-disk structures aligned to their own size (inodes, tree nodes,
/// filesystem blocks) can lie.
pub fn aligned_blocks(
    buf: &[u8],
    base: u64,
    limit: usize,
    size: usize,
) -> impl Iterator<Item = (u64, &[u8])> {
    let first = (base.next_multiple_of(size as u64) - base) as usize;
    (first..limit.min(buf.len()))
        .step_by(size)
        .map_while(move |at| Some((base + at as u64, buf.get(at..at + size)?)))
}

/// Random access to a run of bytes, which may be far larger than memory.
pub trait ByteSource {
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// Fills `buf` with the bytes at `offset`; false if any of them is out of range
    /// or unreadable.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> bool;
    /// True when there are no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ByteSource for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> bool {
        let Ok(start) = usize::try_from(offset) else {
            return false;
        };
        match start
            .checked_add(buf.len())
            .and_then(|end| self.get(start..end))
        {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}
