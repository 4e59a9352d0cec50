//! What a source's filesystem says about its recordings' blocks, gathered once the
//! chunks are scanned: its superblock (block size, and for ext4 the block bitmaps), and
//! the extent maps found (ext4 leaf blocks and inodes, XFS inodes and log copies,
//! btrfs file-tree leaves) of
//! the files that start where an FLV header is, in source bytes.

use crate::carve::ext4::{ExtentMap, Volume};
use crate::carve::filemap::FileMap;
use crate::carve::fragments::{SECTOR, Unit};
use crate::carve::{btrfs, xfs};
use crate::source::Source;

use super::ReadAhead;

/// The extent maps the scan's chunks found on one source.
#[derive(Default)]
pub struct FoundMaps {
    /// ext4 extent lists (leaf blocks, inodes, journal copies).
    pub ext4: Vec<ExtentMap>,
    /// XFS inode data forks (blocks as XFS numbers them).
    pub xfs: Vec<ExtentMap>,
    /// btrfs file-tree leaves' runs of file extents (btrfs-logical addresses).
    pub btrfs: Vec<btrfs::LeafRun>,
}

/// One source's filesystem evidence.
pub struct Filesystem {
    /// Its ext4 volume, for the block bitmaps.
    pub ext4: Option<Volume>,
    /// Extent maps of files that start at an FLV header.
    pub maps: Vec<FileMap>,
    /// The granularity its files fragment at.
    pub unit: Unit,
}

/// Reads source `src`'s superblocks and turns the maps found into source bytes,
/// keeping those of files that start at one of `headers` (sorted (source, offset)).
/// Without a superblock, ext4's maps are read in 4 KiB blocks from the source's start.
pub fn read(source: &Source, src: u32, headers: &[(u32, u64)], found: FoundMaps) -> Filesystem {
    // Enough for the superblocks of ext4 (at 1 KiB), XFS (0) and btrfs (64 KiB).
    let mut start = vec![0u8; 0x10100u64.min(source.size) as usize];
    if source.read_exact_at(&mut start, 0).is_err() {
        start.clear();
    }
    let ext4 = Volume::detect(&start[..], 0);
    let xfs_sb = xfs::Superblock::detect(&start[..]);
    let btrfs_sector = btrfs::sector_size(&start[..]);
    let unit = Unit(
        (ext4.map(|v| v.block_size))
            .or(xfs_sb.map(|sb| sb.block_size))
            .or(btrfs_sector)
            .unwrap_or(SECTOR),
    );
    let at_header = |m: &FileMap| headers.binary_search(&(src, m.start())).is_ok();
    let (offset, block) = ext4.map_or((0, 4096), |v| (v.offset, v.block_size));
    let mut maps: Vec<FileMap> = found
        .ext4
        .iter()
        .filter_map(|m| FileMap::new(m, offset, block))
        .filter(at_header)
        .collect();
    if let Some(sb) = xfs_sb {
        let xfs_maps = found.xfs.iter().cloned().chain(xfs_log_maps(source, &sb));
        maps.extend(
            xfs_maps
                .filter_map(|m| FileMap::new(&sb.linearize(m), 0, sb.block_size))
                .filter(at_header),
        );
    }
    if let Some(chunks) = btrfs_sector
        .is_some()
        .then(|| btrfs::Chunks::read(&ReadAhead::new(source)))
        .flatten()
    {
        maps.extend(
            btrfs::files(&found.btrfs)
                .into_iter()
                .filter_map(|m| chunks.place(m))
                .filter_map(|m| FileMap::new(&m, 0, btrfs::BLOCK))
                .filter(at_header),
        );
    }
    Filesystem { ext4, maps, unit }
}

/// The extent lists in the XFS log's copies of inodes (nothing if it is unreadable).
fn xfs_log_maps(source: &Source, sb: &xfs::Superblock) -> Vec<ExtentMap> {
    let (at, len) = sb.log_range();
    let mut log = vec![0u8; len.min(source.size.saturating_sub(at)) as usize];
    match source.read_exact_at(&mut log, at) {
        Ok(()) => xfs::log_maps(&log, at),
        Err(_) => Vec::new(),
    }
}
