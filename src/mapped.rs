//! A source's bytes for the kernel to copy from, without copying them first.
//!
//! The mount answers a read of a carved file by handing the kernel the bytes to copy
//! into the reader's buffer. Read with `pread` first, every byte is copied twice (page
//! cache to our buffer, our buffer to the reader) and our buffer's pages are pinned
//! one by one on the way out; handed over as a slice of a shared read-only map of the
//! source, it is copied once, straight from the page cache (`bench/serving.sh
//! BUILD_BEFORE`, one run: `cat` of a recording through the mount 3963 -> 4339 MB/s,
//! `dd` 3991 -> 4433 MB/s, from a cold cache 1942 -> 2024 MB/s).
//!
//! A map is what [`crate::source`] avoids for everything else: a bad sector touched
//! through a map kills the process with SIGBUS. Here this process never touches the
//! mapped bytes. Their pages are faulted in with `MADV_POPULATE_READ`, which reports
//! an unreadable page as an error (the caller then reads with `pread`, which fails
//! or fills with zeros as it always does), and the copy is the kernel's, which fails
//! with EFAULT (the reader gets EIO) should a page go bad between the two. `fuser`
//! (0.18) passes a reply's bytes to `writev` as they are, never copying them.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Advice, Mmap, MmapOptions, UncheckedAdvice};

/// Bytes handed out before the map's page tables are dropped. The pages stay in the
/// page cache either way, but mapped they count as this process's resident memory
/// (and in the OOM killer's choice), which must not grow with what was read.
const BATCH: u64 = 64 << 20;

/// A shared read-only map of a whole source.
#[derive(Debug)]
pub struct SourceMap {
    map: Mmap,
    /// Bytes handed out since the page tables were last dropped.
    handed: AtomicU64,
}

impl SourceMap {
    /// Maps the first `size` bytes of `file` (a block device's own length is 0 to
    /// `mmap`'s callers, so the size is given); `None` if the kernel refuses.
    pub fn new(file: &File, size: u64) -> Option<SourceMap> {
        let len = usize::try_from(size).ok().filter(|&l| l > 0)?;
        // SAFETY: the map is read-only and shared; its bytes are only ever passed to
        // the kernel (see the module doc), so a source changed or truncated under it
        // cannot be observed as changing memory by this process.
        let map = unsafe { MmapOptions::new().len(len).map(file) }.ok()?;
        let handed = AtomicU64::new(0);
        Some(SourceMap { map, handed })
    }

    /// `len` bytes at `offset`, all readable and in memory; `None` past the end or
    /// when a page cannot be read. The bytes are for the kernel to copy (a reply
    /// written to `/dev/fuse`), never to be read here.
    pub fn bytes(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        let bytes = self.map.get(start..start.checked_add(len)?)?;
        if self.handed.fetch_add(len as u64, Ordering::Relaxed) >= BATCH {
            self.handed.store(len as u64, Ordering::Relaxed);
            // SAFETY: dropping a shared file map's page tables loses nothing: the next
            // access faults the same file pages in again.
            let _ = unsafe { self.map.unchecked_advise(UncheckedAdvice::DontNeed) };
        }
        self.map
            .advise_range(Advice::PopulateRead, start, len)
            .ok()
            .map(|()| bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn hands_out_the_source_bytes_and_nothing_past_the_end() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..3 * 4096 + 17).map(|i| (i * 7 % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let map = SourceMap::new(&file, data.len() as u64).unwrap();
        assert_eq!(map.bytes(4095, 4098), Some(&data[4095..8193]));
        assert_eq!(map.bytes(0, data.len()), Some(&data[..]));
        assert_eq!(map.bytes(1, data.len()), None);
        assert_eq!(map.bytes(u64::MAX, 1), None);
        assert!(SourceMap::new(&file, 0).is_none());
    }

    #[test]
    fn reads_stay_right_across_dropped_page_tables() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 253) as u8).collect();
        file.write_all(&data).unwrap();
        let map = SourceMap::new(&file, data.len() as u64).unwrap();
        // 100 MiB handed out in 512 KiB replies: the page tables are dropped once.
        for round in 0..200u64 {
            let at = (round * 4099) % (1 << 19);
            let got = map.bytes(at, 1 << 19).unwrap();
            assert_eq!(got, &data[at as usize..][..1 << 19]);
        }
    }
}
