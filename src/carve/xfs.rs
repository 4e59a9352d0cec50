//! XFS: where its inodes and its log say a file's blocks are.
//!
//! XFS keeps a file's extents as 16-byte records (logical offset, block, length) in
//! the inode's data fork. A live file's inode is in place; a deleted file's inode is
//! cleared, but the log holds copies of the data fork from the file's last changes,
//! recent ones for as long as the circular log has not come round. [`inode_maps`]
//! finds the first kind in scan chunks, [`log_maps`] the second in the log region the
//! superblock names. Like ext4's maps they are claims, checked against the tags.

use super::ByteSource;
use super::ext4::{ExtentMap, MapExtent, MapKind};

/// Inodes lie on multiples of this (the smallest inode size).
const INODE_ALIGN: usize = 256;
/// An inode's first bytes: where the scan looks for inodes.
pub const INODE_MAGIC: &[u8] = b"IN";

/// The parts of an XFS superblock that place blocks and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Block size in bytes.
    pub block_size: u64,
    ag_blocks: u64,
    ag_block_log: u32,
    log_start: u64,
    log_blocks: u64,
}

fn be32(b: &[u8], at: usize) -> u64 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u64
}

impl Superblock {
    /// The XFS superblock at the source's first byte, if it is one and sane.
    pub fn detect<S: ByteSource + ?Sized>(src: &S) -> Option<Superblock> {
        let mut sb = [0u8; 0x80];
        if !src.read_at(0, &mut sb) || &sb[..4] != b"XFSB" {
            return None;
        }
        let b = &sb[..];
        let sb = Superblock {
            block_size: be32(b, 4),
            ag_blocks: be32(b, 0x54),
            ag_block_log: b[0x7C] as u32,
            log_start: (be32(b, 0x30) << 32) | be32(b, 0x34),
            log_blocks: be32(b, 0x60),
        };
        let sane = sb.block_size.is_power_of_two()
            && (512..=65536).contains(&sb.block_size)
            && sb.ag_blocks > 0
            && (1..=31).contains(&sb.ag_block_log)
            && sb.ag_blocks <= 1 << sb.ag_block_log;
        sane.then_some(sb)
    }

    /// A block number as XFS writes it (allocation group, block within it) as the
    /// block's position from the filesystem's start.
    pub fn linear(&self, fsblock: u64) -> u64 {
        let ag = fsblock >> self.ag_block_log;
        let within = fsblock & ((1 << self.ag_block_log) - 1);
        ag.saturating_mul(self.ag_blocks).saturating_add(within)
    }

    /// The log's byte range on the source (an internal log), bounded.
    pub fn log_range(&self) -> (u64, u64) {
        const MAX_LOG: u64 = 256 << 20;
        let start = self.linear(self.log_start).saturating_mul(self.block_size);
        (
            start,
            self.log_blocks.saturating_mul(self.block_size).min(MAX_LOG),
        )
    }

    /// `map` with its blocks made linear.
    pub fn linearize(&self, mut map: ExtentMap) -> ExtentMap {
        for e in &mut map.extents {
            e.physical = self.linear(e.physical);
        }
        map
    }
}

/// One extent record: (logical block, block as XFS writes it, length); `None` for an
/// unwritten (preallocated) one or nonsense.
fn record(r: &[u8]) -> Option<MapExtent> {
    let hi = u64::from_be_bytes(r[..8].try_into().ok()?);
    let lo = u64::from_be_bytes(r[8..16].try_into().ok()?);
    let unwritten = hi >> 63 == 1;
    let logical = (hi & ((1 << 63) - 1)) >> 9;
    let physical = ((hi & 0x1FF) << 43) | (lo >> 21);
    let len = lo & ((1 << 21) - 1);
    (!unwritten && len > 0 && physical > 0).then_some(MapExtent {
        logical: u32::try_from(logical).ok()?,
        len: len as u32,
        physical,
    })
}

/// The extents of consecutive records at the start of `bytes`, if they describe a
/// file from logical block 0 without holes, more than one.
fn run(bytes: &[u8], max: usize) -> Option<Vec<MapExtent>> {
    let mut extents: Vec<MapExtent> = Vec::new();
    for r in bytes.chunks_exact(16).take(max) {
        let next = extents
            .last()
            .map_or(0, |e| e.logical.saturating_add(e.len));
        match record(r) {
            Some(e) if e.logical == next => extents.push(e),
            _ => break,
        }
    }
    (extents.len() >= 2).then_some(extents)
}

/// Extent lists in the data forks of the XFS inodes in `buf` (which holds the source
/// from `base`) that begin before `limit`: files in several extents, from their start.
/// `magics` is every position of [`INODE_MAGIC`] in `buf`, ascending (the scan finds
/// them in its one pass over the chunk): only those can begin an inode.
pub fn inode_maps(buf: &[u8], base: u64, limit: usize, magics: &[usize]) -> Vec<ExtentMap> {
    let mut out = Vec::new();
    for &at in magics {
        if at >= limit || !(base + at as u64).is_multiple_of(INODE_ALIGN as u64) {
            continue;
        }
        let Some(inode) = buf.get(at..at + INODE_ALIGN) else {
            break;
        };
        if let Some(extents) = fork_extents(inode) {
            out.push(ExtentMap {
                found_at: base + at as u64,
                kind: MapKind::Inode,
                extents,
            });
        }
    }
    out
}

/// The extents in `inode`'s data fork, if it is an inode in the extents format whose
/// records describe a file in several extents from its start.
fn fork_extents(inode: &[u8]) -> Option<Vec<MapExtent>> {
    // Magic, a version with a known layout, the extents format.
    if !inode.starts_with(INODE_MAGIC) || !matches!(inode[4], 2 | 3) || inode[5] != 2 {
        return None;
    }
    let fork = if inode[4] == 3 { 176 } else { 100 };
    let count = be32(inode, 76) as usize;
    let room = (INODE_ALIGN - fork) / 16;
    run(&inode[fork..], count.min(room))
}

/// Extent lists in a copy of the log (`log`, which lies at `base` on the source):
/// every run of records from logical block 0, wherever the log put it.
pub fn log_maps(log: &[u8], base: u64) -> Vec<ExtentMap> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 32 <= log.len() {
        // A first record: logical block 0, written, so its first six bytes are zero
        // and the seventh holds at most the block number's top bit.
        let start = &log[at..];
        if start[..6] == [0; 6]
            && start[6] <= 1
            && let Some(extents) = run(start, 4096)
        {
            let len = extents.len() * 16;
            out.push(ExtentMap {
                found_at: base + at as u64,
                kind: MapKind::Log,
                extents,
            });
            at += len;
            continue;
        }
        at += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `inode_maps` as it was before the scan found the magic numbers: every
    /// inode slot read.
    fn every_slot(buf: &[u8], base: u64, limit: usize) -> Vec<ExtentMap> {
        let mut out = Vec::new();
        for (found_at, inode) in crate::carve::aligned_blocks(buf, base, limit, INODE_ALIGN) {
            if let Some(extents) = fork_extents(inode) {
                out.push(ExtentMap {
                    found_at,
                    kind: MapKind::Inode,
                    extents,
                });
            }
        }
        out
    }

    /// What `inode_maps` finds given the magic numbers' positions in `buf`.
    fn maps(buf: &[u8], base: u64, limit: usize) -> Vec<ExtentMap> {
        let magics: Vec<usize> = memchr::memmem::find_iter(buf, INODE_MAGIC).collect();
        inode_maps(buf, base, limit, &magics)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Looking only where an inode's magic lies finds what reading every slot
        /// finds, at any base and limit.
        #[test]
        fn magics_found_once_give_what_every_slot_gives(
            base in 0u64..1024,
            cut in 0usize..2000,
            inodes in prop::collection::vec((0usize..24, 2u8..4, 0u32..4, any::<bool>()), 0..10),
        ) {
            let mut buf = vec![b'N'; 24 * INODE_ALIGN + 300];
            let skew = (INODE_ALIGN as u64 - base % INODE_ALIGN as u64) as usize % INODE_ALIGN;
            for (slot, version, count, aligned) in inodes {
                let at = skew + slot * INODE_ALIGN + if aligned { 0 } else { 2 };
                let inode = &mut buf[at..at + INODE_ALIGN];
                inode[..2].copy_from_slice(INODE_MAGIC);
                inode[4] = version;
                inode[5] = 2;
                inode[76..80].copy_from_slice(&count.to_be_bytes());
                let fork = if version == 3 { 176 } else { 100 };
                for k in 0..count {
                    let r = rec(u64::from(k) * 8, 5000 + u64::from(k) * 100, 8);
                    inode[fork + 16 * k as usize..fork + 16 * k as usize + 16].copy_from_slice(&r);
                }
            }
            let limit = buf.len() - cut;
            prop_assert_eq!(maps(&buf, base, limit), every_slot(&buf, base, limit));
        }
    }

    fn rec(logical: u64, physical: u64, len: u64) -> [u8; 16] {
        let hi = (logical << 9) | (physical >> 43);
        let lo = (physical << 21) | len;
        let mut r = [0u8; 16];
        r[..8].copy_from_slice(&hi.to_be_bytes());
        r[8..].copy_from_slice(&lo.to_be_bytes());
        r
    }

    #[test]
    fn log_copies_of_a_data_fork_are_found_anywhere() {
        let mut log = vec![0u8; 1000];
        let at = 333;
        for (i, r) in [rec(0, 24, 10), rec(10, 900, 5), rec(15, 70, 3)]
            .iter()
            .enumerate()
        {
            log[at + 16 * i..at + 16 * (i + 1)].copy_from_slice(r);
        }
        let maps = log_maps(&log, 4096);
        assert_eq!(maps.len(), 1, "{maps:?}");
        assert_eq!(maps[0].found_at, 4096 + at as u64);
        let e = &maps[0].extents;
        assert_eq!((e[1].logical, e[1].physical, e[1].len), (10, 900, 5));
        assert_eq!(e.len(), 3);
    }

    #[test]
    fn an_inode_in_extents_format_gives_its_map() {
        let mut buf = vec![0u8; 1024];
        let inode = &mut buf[512..768];
        inode[..2].copy_from_slice(b"IN");
        inode[4] = 3;
        inode[5] = 2;
        inode[76..80].copy_from_slice(&2u32.to_be_bytes());
        inode[176..192].copy_from_slice(&rec(0, 5000, 8));
        inode[192..208].copy_from_slice(&rec(8, 100, 8));
        let maps = maps(&buf, 0, buf.len());
        assert_eq!(maps.len(), 1);
        assert_eq!(maps[0].extents[1].physical, 100);
    }

    #[test]
    fn blocks_are_made_linear_by_allocation_group() {
        let sb = Superblock {
            block_size: 4096,
            ag_blocks: 20480,
            ag_block_log: 15,
            log_start: 0,
            log_blocks: 0,
        };
        assert_eq!(sb.linear((2 << 15) | 7), 2 * 20480 + 7);
    }
}
