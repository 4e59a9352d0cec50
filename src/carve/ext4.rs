//! ext4: what the filesystem itself says about where a file's blocks are.
//!
//! Two kinds of evidence, both read straight from the bytes:
//!
//! - **Extent trees.** ext4 lists a file's blocks as extents (logical block, length,
//!   physical block) behind a header with magic `0xF30A`: in the inode itself (up to
//!   four) or, for more, in leaf blocks of their own. Deleting a file clears the inode's
//!   copy but leaves leaf blocks as they were, and the journal keeps older copies of
//!   inode-table blocks. [`find_extent_maps`] finds both kinds wherever they lie, so a
//!   deleted file's extents can be read back exactly. What it finds is only a claim:
//!   the walker checks every join it makes against the tags.
//! - **Block bitmaps.** [`Bitmaps::in_use`] says whether the filesystem has a block
//!   allocated now: a deleted recording's blocks are free, a live file's are not, so a
//!   block of the other kind is other data.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

use super::ByteSource;

/// The extent header's magic number.
const EXTENT_MAGIC: u16 = 0xF30A;
/// [`EXTENT_MAGIC`] as it lies on disk: where the scan looks for extent lists.
pub const HEADER_MAGIC: &[u8] = &EXTENT_MAGIC.to_le_bytes();
/// Where the extent header lies inside an inode (`i_block`).
const INODE_EXTENTS: usize = 0x28;
/// Inode sizes are multiples of this, and inode tables are block-aligned.
const INODE_STRIDE: usize = 128;
/// The scan looks for extent headers in blocks of this size (ext4's usual one).
pub const SCAN_BLOCK: usize = 4096;

/// A mounted-or-not ext4 filesystem found on a source: enough of its superblock to
/// find the block bitmaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Volume {
    /// Where the filesystem starts on the source.
    pub offset: u64,
    /// Block size in bytes.
    pub block_size: u64,
    blocks_count: u64,
    blocks_per_group: u64,
    first_data_block: u64,
    desc_size: u64,
}

fn le16(b: &[u8], at: usize) -> u64 {
    u16::from_le_bytes([b[at], b[at + 1]]) as u64
}

fn le32(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as u64
}

impl Volume {
    /// The ext2/3/4 filesystem starting at `offset`, if its superblock is there and sane.
    pub fn detect<S: ByteSource + ?Sized>(src: &S, offset: u64) -> Option<Volume> {
        let mut sb = [0u8; 1024];
        if !src.read_at(offset.checked_add(1024)?, &mut sb) || le16(&sb, 0x38) != 0xEF53 {
            return None;
        }
        let log = le32(&sb, 0x18);
        let is_64bit = le32(&sb, 0x60) & 0x80 != 0;
        let v = Volume {
            offset,
            block_size: 1024u64.checked_shl(log.min(16) as u32)?,
            blocks_count: le32(&sb, 0x04) | if is_64bit { le32(&sb, 0x150) << 32 } else { 0 },
            blocks_per_group: le32(&sb, 0x20),
            first_data_block: le32(&sb, 0x14),
            desc_size: if is_64bit { le16(&sb, 0xFE) } else { 32 },
        };
        let sane = log <= 6
            && v.blocks_per_group == v.block_size * 8
            && v.first_data_block <= 1
            && v.blocks_count > v.first_data_block
            && (32..=1024).contains(&v.desc_size);
        sane.then_some(v)
    }

    /// The block group and bit in its bitmap of the block holding source offset `at`.
    fn locate(&self, at: u64) -> Option<(u64, u64)> {
        let block = at.checked_sub(self.offset)? / self.block_size;
        if block >= self.blocks_count || block < self.first_data_block {
            return None;
        }
        let index = block - self.first_data_block;
        Some((index / self.blocks_per_group, index % self.blocks_per_group))
    }

    /// The block bitmap of `group`; `None` when unreadable or not initialised (then
    /// nothing is known).
    fn bitmap<S: ByteSource + ?Sized>(&self, src: &S, group: u64) -> Option<Vec<u8>> {
        let table = self.offset + (self.first_data_block + 1) * self.block_size;
        let mut desc = vec![0u8; self.desc_size as usize];
        if !src.read_at(
            table.checked_add(group.checked_mul(self.desc_size)?)?,
            &mut desc,
        ) {
            return None;
        }
        const BLOCK_UNINIT: u64 = 0x2;
        if le16(&desc, 0x12) & BLOCK_UNINIT != 0 {
            return None;
        }
        let hi = if self.desc_size >= 64 {
            le32(&desc, 0x20) << 32
        } else {
            0
        };
        let at = le32(&desc, 0x00) | hi;
        if at == 0 || at >= self.blocks_count {
            return None;
        }
        let mut bitmap = vec![0u8; self.block_size as usize];
        let at = self.offset.checked_add(at.checked_mul(self.block_size)?)?;
        src.read_at(at, &mut bitmap).then_some(bitmap)
    }
}

/// A volume's block bitmaps, read as needed and the most recent kept: whether a block
/// is allocated now (a live file's) or free (a deleted file's, or never used).
pub struct Bitmaps {
    volume: Volume,
    recent: Mutex<LruCache<u64, Option<Vec<u8>>>>,
}

impl Bitmaps {
    /// Bitmaps of `volume`, none read yet.
    pub fn new(volume: Volume) -> Bitmaps {
        // Evaluated at compile time: a zero here would not build.
        const KEPT: NonZeroUsize = NonZeroUsize::new(256).unwrap();
        Bitmaps {
            volume,
            recent: Mutex::new(LruCache::new(KEPT)),
        }
    }

    /// Whether the block holding source offset `at` is allocated; `None` outside the
    /// filesystem or where its bitmap says nothing.
    pub fn in_use<S: ByteSource + ?Sized>(&self, src: &S, at: u64) -> Option<bool> {
        let (group, bit) = self.volume.locate(at)?;
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let bitmap = recent.get_or_insert(group, || self.volume.bitmap(src, group));
        let byte = bitmap.as_ref()?.get((bit / 8) as usize)?;
        Some(byte >> (bit % 8) & 1 == 1)
    }
}

/// One extent: `len` blocks from logical block `logical` of a file lie at physical
/// block `physical` of its filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapExtent {
    /// First logical block.
    pub logical: u32,
    /// Number of blocks.
    pub len: u32,
    /// First physical block.
    pub physical: u64,
}

/// A list of extents found on the source: a claim about where one file's blocks are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentMap {
    /// Where on the source the extent header was found.
    pub found_at: u64,
    /// What held it.
    pub kind: MapKind,
    /// The extents, in logical order, starting at logical block 0.
    pub extents: Vec<MapExtent>,
}

/// What held an extent list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// An inode (in its table, or a journal's copy of the table block).
    Inode,
    /// A leaf block of an extent tree.
    Leaf,
    /// A filesystem log's copy of an inode's extents (XFS).
    Log,
}

/// Extent lists that describe a fragmented file from its start, in the
/// [`SCAN_BLOCK`]-aligned blocks of `buf` (which holds the source from `base`) that
/// begin before `limit`: leaf blocks, and inodes in inode tables and journal copies.
/// `headers` is every position of [`HEADER_MAGIC`] in `buf`, ascending (the scan finds
/// them in its one pass over the chunk): only those can begin a list, so the blocks
/// are not read a second time.
pub fn find_extent_maps(buf: &[u8], base: u64, limit: usize, headers: &[usize]) -> Vec<ExtentMap> {
    let mut out = Vec::new();
    // A block holding a leaf is no inode table: its other headers are not looked at.
    let mut leaf_block = None;
    for &at in headers {
        let Some(start) = at.checked_sub((base + at as u64) as usize % SCAN_BLOCK) else {
            continue;
        };
        let Some(block) = buf.get(start..start + SCAN_BLOCK) else {
            break;
        };
        if start >= limit || leaf_block == Some(start) {
            continue;
        }
        let (found_at, off) = (base + start as u64, at - start);
        let kind = match off {
            0 => MapKind::Leaf,
            _ if off >= INODE_EXTENTS && (off - INODE_EXTENTS).is_multiple_of(INODE_STRIDE) => {
                MapKind::Inode
            }
            _ => continue,
        };
        let max = if kind == MapKind::Leaf {
            (SCAN_BLOCK - 12) / 12
        } else {
            4
        };
        if let Some(extents) = extent_list(block, off, max) {
            if kind == MapKind::Leaf {
                leaf_block = Some(start);
            }
            out.push(ExtentMap {
                found_at: found_at + off as u64,
                kind,
                extents,
            });
        }
    }
    out
}

/// The extents behind a depth-0 extent header at `at` in `b` with room for `max`
/// entries, when they start at logical block 0, are in order, and are more than one
/// (a file in one piece needs no map).
fn extent_list(b: &[u8], at: usize, max: usize) -> Option<Vec<MapExtent>> {
    let h = b.get(at..at + 12)?;
    if le16(h, 0) != EXTENT_MAGIC as u64 || le16(h, 4) != max as u64 || le16(h, 6) != 0 {
        return None;
    }
    let entries = le16(h, 2) as usize;
    if !(2..=max).contains(&entries) {
        return None;
    }
    let mut extents = Vec::with_capacity(entries);
    let mut next_logical = 0u64;
    for e in b.get(at + 12..at + 12 + 12 * entries)?.chunks_exact(12) {
        let (logical, raw_len) = (le32(e, 0), le16(e, 4));
        // Lengths above 32768 mark unwritten (preallocated) extents: no data yet.
        let physical = (le16(e, 6) << 32) | le32(e, 8);
        if raw_len == 0 || raw_len > 32768 || physical == 0 || logical != next_logical {
            return None;
        }
        next_logical = logical + raw_len;
        extents.push(MapExtent {
            logical: logical as u32,
            len: raw_len as u32,
            physical,
        });
    }
    Some(extents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `find_extent_maps` as it was before the scan found the headers: every
    /// block read.
    fn every_block(buf: &[u8], base: u64, limit: usize) -> Vec<ExtentMap> {
        let mut out = Vec::new();
        for (found_at, block) in crate::carve::aligned_blocks(buf, base, limit, SCAN_BLOCK) {
            if let Some(extents) = extent_list(block, 0, (SCAN_BLOCK - 12) / 12) {
                out.push(ExtentMap {
                    found_at,
                    kind: MapKind::Leaf,
                    extents,
                });
                continue;
            }
            for at in (INODE_EXTENTS..SCAN_BLOCK).step_by(INODE_STRIDE) {
                if let Some(extents) = extent_list(block, at, 4) {
                    let found_at = found_at + at as u64;
                    out.push(ExtentMap {
                        found_at,
                        kind: MapKind::Inode,
                        extents,
                    });
                }
            }
        }
        out
    }

    /// What `find_extent_maps` finds given the headers' positions in `buf`.
    fn maps(buf: &[u8], base: u64, limit: usize) -> Vec<ExtentMap> {
        let headers: Vec<usize> = memchr::memmem::find_iter(buf, HEADER_MAGIC).collect();
        find_extent_maps(buf, base, limit, &headers)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Looking only where a header's magic lies finds what reading every block
        /// finds: leaves, inodes, neither, at any base and limit.
        #[test]
        fn headers_found_once_give_what_every_block_gives(
            seed: u64,
            blocks in 1usize..6,
            base in 0u64..9000,
            cut in 0usize..5000,
            lists in prop::collection::vec((0usize..6, 0usize..33, 0u16..5, any::<bool>()), 0..12),
        ) {
            let mut x = seed | 1;
            let mut buf: Vec<u8> = (0..blocks * SCAN_BLOCK + 100)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x & 0x0F) as u8
                })
                .collect();
            let skew = (SCAN_BLOCK as u64 - base % SCAN_BLOCK as u64) as usize % SCAN_BLOCK;
            for (block, slot, entries, leaf) in lists {
                let max = if leaf { 340 } else { 4 };
                let at = skew + block * SCAN_BLOCK + if leaf { 0 } else { INODE_EXTENTS + slot * INODE_STRIDE };
                let mut list = header(entries, max);
                for e in 0..entries as u32 {
                    list.extend(extent(e * 4, 4, 100 + u64::from(e) * 10));
                }
                if let Some(dst) = buf.get_mut(at..at + list.len()) {
                    dst.copy_from_slice(&list);
                }
            }
            let limit = buf.len().saturating_sub(cut);
            prop_assert_eq!(maps(&buf, base, limit), every_block(&buf, base, limit));
        }
    }

    fn header(entries: u16, max: u16) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(&EXTENT_MAGIC.to_le_bytes());
        h.extend_from_slice(&entries.to_le_bytes());
        h.extend_from_slice(&max.to_le_bytes());
        h.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        h
    }

    fn extent(logical: u32, len: u16, physical: u64) -> Vec<u8> {
        let mut e = logical.to_le_bytes().to_vec();
        e.extend_from_slice(&len.to_le_bytes());
        e.extend_from_slice(&((physical >> 32) as u16).to_le_bytes());
        e.extend_from_slice(&(physical as u32).to_le_bytes());
        e
    }

    #[test]
    fn finds_leaf_blocks_and_inode_copies_but_not_gaps() {
        let mut disk = vec![0u8; 3 * SCAN_BLOCK];
        let mut leaf = header(2, 340);
        leaf.extend(extent(0, 10, 5000));
        leaf.extend(extent(10, 3, 100));
        disk[SCAN_BLOCK..SCAN_BLOCK + leaf.len()].copy_from_slice(&leaf);
        let mut inode = header(2, 4);
        inode.extend(extent(0, 1, 7));
        inode.extend(extent(1, 2, 9));
        let at = 2 * SCAN_BLOCK + 256 + INODE_EXTENTS;
        disk[at..at + inode.len()].copy_from_slice(&inode);
        // A list with a hole in its logical blocks is not a file from its start.
        let mut holed = header(2, 4);
        holed.extend(extent(0, 1, 7));
        holed.extend(extent(5, 2, 9));
        let at2 = 2 * SCAN_BLOCK + 512 + INODE_EXTENTS;
        disk[at2..at2 + holed.len()].copy_from_slice(&holed);
        let maps = maps(&disk, 0, disk.len());
        assert_eq!(maps.len(), 2, "{maps:?}");
        assert_eq!(maps[0].kind, MapKind::Leaf);
        assert_eq!(maps[0].found_at, SCAN_BLOCK as u64);
        assert_eq!(maps[0].extents[1].physical, 100);
        assert_eq!(maps[1].kind, MapKind::Inode);
        assert_eq!(maps[1].found_at, at as u64);
        assert_eq!(maps[1].extents[1].len, 2);
    }

    #[test]
    fn garbage_is_never_a_volume() {
        let noise: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert_eq!(Volume::detect(&noise[..], 0), None);
        assert!(maps(&noise, 0, noise.len()).is_empty());
    }
}
