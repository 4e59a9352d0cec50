//! The block size of the filesystem a source holds, when its superblock says: the
//! granularity at which that filesystem fragments files. Without one (a raw image, a
//! FAT or NTFS volume with small clusters, an image cut by sector), fragments may
//! start at any 512-byte sector.

use super::ByteSource;
use super::ext4::Volume;

/// The finest granularity: a disk sector.
pub const SECTOR: u64 = 512;

/// The block size of the ext2/3/4, XFS or btrfs filesystem starting at the source's
/// first byte, or [`SECTOR`] when there is none.
pub fn of<S: ByteSource + ?Sized>(src: &S) -> u64 {
    let xfs = || {
        let mut sb = [0u8; 8];
        (src.read_at(0, &mut sb) && &sb[..4] == b"XFSB")
            .then(|| u32::from_be_bytes([sb[4], sb[5], sb[6], sb[7]]) as u64)
    };
    let btrfs = || {
        let mut sb = [0u8; 0x94];
        (src.read_at(0x10000, &mut sb) && &sb[0x40..0x48] == b"_BHRfS_M")
            .then(|| u32::from_le_bytes([sb[0x90], sb[0x91], sb[0x92], sb[0x93]]) as u64)
    };
    Volume::detect(src, 0)
        .map(|v| v.block_size)
        .or_else(xfs)
        .or_else(btrfs)
        .filter(|b| b.is_power_of_two() && (SECTOR..=65536).contains(b))
        .unwrap_or(SECTOR)
}
