//! btrfs: where its file trees say a file's blocks are.
//!
//! btrfs lists a file's data as EXTENT_DATA items (file offset, logical address,
//! length) in the leaves of its file tree. Every change copies a leaf to a new place
//! and leaves the old copy behind until the space is reused, so leaves listing a
//! deleted file's extents are often still on the disk. [`leaf_runs`] finds them in
//! scan chunks; addresses are btrfs-logical, and [`Chunks`] (from the superblock's
//! system chunks and the chunk tree) turns them into device offsets. Like every map
//! they are claims, checked against the tags.

use super::ByteSource;
use super::ext4::{ExtentMap, MapExtent, MapKind};

/// Where the superblock lies.
const SUPERBLOCK: u64 = 0x10000;
/// A tree block's header.
const HEADER: usize = 101;
/// A leaf item: key (17) + data offset and size.
const ITEM: usize = 25;
/// Item types.
const EXTENT_DATA: u8 = 108;
const CHUNK_ITEM: u8 = 228;
/// Tree blocks are looked for at this alignment (btrfs's default node size).
pub const NODE: usize = 16384;
/// Blocks of the maps this module makes.
pub const BLOCK: u64 = 4096;

fn le16(b: &[u8], at: usize) -> u64 {
    u16::from_le_bytes([b[at], b[at + 1]]) as u64
}

fn le32(b: &[u8], at: usize) -> u64 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default()) as u64
}

fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

/// The items of a leaf: (objectid, type, offset, data).
fn items(leaf: &[u8]) -> impl Iterator<Item = (u64, u8, u64, &[u8])> {
    let n = le32(leaf, 0x60) as usize;
    (0..n.min((leaf.len() - HEADER) / ITEM)).filter_map(move |i| {
        let it = &leaf[HEADER + i * ITEM..HEADER + (i + 1) * ITEM];
        let (at, size) = (le32(it, 17) as usize, le32(it, 21) as usize);
        let data = leaf.get(HEADER + at..HEADER + at.checked_add(size)?)?;
        Some((le64(it, 0), it[8], le64(it, 9), data))
    })
}

/// A file's extents as one file-tree leaf lists them: a file with many extents has
/// its items spread over several leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafRun {
    /// The file's inode number.
    pub objectid: u64,
    /// Where the leaf lies on the source.
    pub found_at: u64,
    /// Its uncompressed extents, in order without holes, in blocks of [`BLOCK`]
    /// (physical: btrfs-logical).
    pub extents: Vec<MapExtent>,
}

/// The runs of file extents in the file-tree leaves of `buf` (which holds the source
/// from `base`) that begin before `limit`.
pub fn leaf_runs(buf: &[u8], base: u64, limit: usize) -> Vec<LeafRun> {
    let mut out = Vec::new();
    for (found_at, leaf) in super::aligned_blocks(buf, base, limit, NODE) {
        if leaf[0x64] != 0 || !le64(leaf, 0x30).is_multiple_of(NODE as u64) || le32(leaf, 0x60) == 0
        {
            continue;
        }
        // The file whose items are being read, and whether its extents so far follow
        // each other without a gap.
        let mut file: Option<(LeafRun, bool)> = None;
        for (objectid, _, offset, data) in items(leaf).filter(|i| i.1 == EXTENT_DATA) {
            if file.as_ref().is_some_and(|f| f.0.objectid != objectid) {
                push(&mut out, file.take());
            }
            let (run, whole) = file.get_or_insert_with(|| {
                (
                    LeafRun {
                        objectid,
                        found_at,
                        extents: Vec::new(),
                    },
                    true,
                )
            });
            let next = run.extents.last().map(|l| l.logical.saturating_add(l.len));
            match extent(offset, data) {
                Some(e) if next.is_none_or(|n| e.logical == n) && *whole => run.extents.push(e),
                _ => *whole = false,
            }
        }
        push(&mut out, file);
    }
    out
}

/// Adds a run whose extents follow each other.
fn push(out: &mut Vec<LeafRun>, file: Option<(LeafRun, bool)>) {
    if let Some((run, true)) = file.filter(|f| !f.0.extents.is_empty()) {
        out.push(run);
    }
}

/// Whole files from leaf runs: each run from offset 0, continued by the run of the
/// same file that starts where it ends, and so on; those of more than one extent.
pub fn files(runs: &[LeafRun]) -> Vec<ExtentMap> {
    let end = |e: &[MapExtent]| e.last().map_or(0, |l| l.logical.saturating_add(l.len));
    runs.iter()
        .filter(|r| r.extents[0].logical == 0)
        .filter_map(|head| {
            let mut extents = head.extents.clone();
            for _ in 0..64 {
                let Some(next) = runs
                    .iter()
                    .find(|r| r.objectid == head.objectid && r.extents[0].logical == end(&extents))
                else {
                    break;
                };
                extents.extend_from_slice(&next.extents);
            }
            (extents.len() >= 2).then_some(ExtentMap {
                found_at: head.found_at,
                kind: MapKind::Leaf,
                extents,
            })
        })
        .collect()
}

/// One EXTENT_DATA item at file offset `offset` as an extent in blocks: regular,
/// uncompressed, not a hole, block-aligned.
fn extent(offset: u64, d: &[u8]) -> Option<MapExtent> {
    if d.len() < 53 || d[16] != 0 || d[17] != 0 || d[20] != 1 {
        return None;
    }
    let (bytenr, within, len) = (le64(d, 21), le64(d, 37), le64(d, 45));
    let at = bytenr.checked_add(within)?;
    let aligned = [offset, at, len].iter().all(|v| v % BLOCK == 0);
    (bytenr != 0 && len > 0 && aligned).then_some(MapExtent {
        logical: u32::try_from(offset / BLOCK).ok()?,
        len: u32::try_from(len / BLOCK).ok()?,
        physical: at / BLOCK,
    })
}

/// The sector size of the btrfs filesystem on `src`, if its superblock is there and
/// gives a sane one: the granularity its files fragment at.
pub fn sector_size<S: ByteSource + ?Sized>(src: &S) -> Option<u64> {
    let mut sb = [0u8; 0x94];
    let size = (src.read_at(SUPERBLOCK, &mut sb) && &sb[0x40..0x48] == b"_BHRfS_M")
        .then(|| le32(&sb, 0x90))?;
    (size.is_power_of_two() && (512..=65536).contains(&size)).then_some(size)
}

/// btrfs's logical-to-device map: (logical start, length, device offset) per chunk.
#[derive(Debug, Default)]
pub struct Chunks(Vec<(u64, u64, u64)>);

impl Chunks {
    /// The chunks of the btrfs filesystem on `src`: the superblock's system chunks,
    /// then the chunk tree they locate. `None` without a btrfs superblock.
    pub fn read<S: ByteSource + ?Sized>(src: &S) -> Option<Chunks> {
        let mut sb = vec![0u8; 4096];
        if !src.read_at(SUPERBLOCK, &mut sb) || &sb[0x40..0x48] != b"_BHRfS_M" {
            return None;
        }
        let mut chunks = Chunks::default();
        let array = &sb[0x32B..0x32B + (le32(&sb, 0xA0) as usize).min(2048)];
        let mut at = 0;
        while at + 17 + 48 <= array.len() {
            let logical = le64(array, at + 9);
            let (chunk, len) = chunk_item(&array[at + 17..])?;
            chunks.0.push((logical, chunk.0, chunk.1));
            at += 17 + len;
        }
        let node = le32(&sb, 0x94) as usize;
        let root = le64(&sb, 0x58);
        chunks.walk(src, root, node, 0);
        chunks.0.sort_unstable();
        chunks.0.dedup();
        Some(chunks)
    }

    /// Collects the chunk items of the tree block at `logical` and below it.
    fn walk<S: ByteSource + ?Sized>(&mut self, src: &S, logical: u64, node: usize, depth: u32) {
        let Some(at) = self.device(logical) else {
            return;
        };
        let mut block = vec![0u8; node];
        if depth > 8 || node < HEADER || !src.read_at(at, &mut block) {
            return;
        }
        if block[0x64] == 0 {
            for (_, kind, offset, data) in items(&block) {
                if let (CHUNK_ITEM, Some(((len, device), _))) = (kind, chunk_item(data)) {
                    self.0.push((offset, len, device));
                }
            }
            return;
        }
        let n = le32(&block, 0x60) as usize;
        let children: Vec<u64> = (0..n.min((node - HEADER) / 33))
            .map(|i| le64(&block, HEADER + i * 33 + 17))
            .collect();
        for child in children {
            self.walk(src, child, node, depth + 1);
        }
    }

    /// The device offset of btrfs-logical address `logical`.
    pub fn device(&self, logical: u64) -> Option<u64> {
        self.0
            .iter()
            .find(|c| (c.0..c.0.saturating_add(c.1)).contains(&logical))
            .and_then(|c| c.2.checked_add(logical - c.0))
    }

    /// `map` with its blocks on the device; `None` if one lies in no chunk.
    pub fn place(&self, mut map: ExtentMap) -> Option<ExtentMap> {
        for e in &mut map.extents {
            e.physical = self.device(e.physical.checked_mul(BLOCK)?)? / BLOCK;
        }
        Some(map)
    }
}

/// A chunk item: ((length, first stripe's device offset), its size in bytes).
fn chunk_item(d: &[u8]) -> Option<((u64, u64), usize)> {
    let stripes = le16(d.get(..48)?, 44) as usize;
    let size = 48 + 32 * stripes;
    (stripes > 0 && d.len() >= size).then(|| ((le64(d, 0), le64(d, 48 + 8)), size))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extent_data(offset_in: u64, bytenr: u64, len: u64) -> Vec<u8> {
        let mut d = vec![0u8; 53];
        d[20] = 1;
        d[21..29].copy_from_slice(&bytenr.to_le_bytes());
        d[29..37].copy_from_slice(&len.to_le_bytes());
        d[37..45].copy_from_slice(&offset_in.to_le_bytes());
        d[45..53].copy_from_slice(&len.to_le_bytes());
        d
    }

    #[test]
    fn a_leaf_lists_a_files_extents() {
        let mut leaf = vec![0u8; NODE];
        leaf[0x30..0x38].copy_from_slice(&(5 * NODE as u64).to_le_bytes());
        let items = [(0u64, 1 << 20, 8192u64), (8192, 3 << 20, 4096)];
        leaf[0x60..0x64].copy_from_slice(&(items.len() as u32).to_le_bytes());
        let mut data_at = NODE - HEADER;
        for (i, (file_off, bytenr, len)) in items.iter().enumerate() {
            let d = extent_data(0, *bytenr, *len);
            data_at -= d.len();
            let it = HEADER + i * ITEM;
            leaf[it..it + 8].copy_from_slice(&257u64.to_le_bytes());
            leaf[it + 8] = EXTENT_DATA;
            leaf[it + 9..it + 17].copy_from_slice(&file_off.to_le_bytes());
            leaf[it + 17..it + 21].copy_from_slice(&(data_at as u32).to_le_bytes());
            leaf[it + 21..it + 25].copy_from_slice(&(d.len() as u32).to_le_bytes());
            leaf[HEADER + data_at..HEADER + data_at + d.len()].copy_from_slice(&d);
        }
        let maps = files(&leaf_runs(&leaf, 0, leaf.len()));
        assert_eq!(maps.len(), 1, "{maps:?}");
        let e = &maps[0].extents;
        assert_eq!((e[0].logical, e[0].len, e[0].physical), (0, 2, 256));
        assert_eq!((e[1].logical, e[1].len, e[1].physical), (2, 1, 768));
    }

    #[test]
    fn noise_is_no_filesystem() {
        let noise: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(Chunks::read(&noise[..]).is_none());
        assert!(leaf_runs(&noise, 0, noise.len()).is_empty());
    }
}
