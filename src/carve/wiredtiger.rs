//! WiredTiger blocks: find them in raw bytes, prove them by their checksum, rebuild the
//! page image (decompressing it), and read the records of a row-store leaf page, the
//! children of an internal page, and the checkpoint roots WiredTiger's metadata names.
//!
//! Every block starts with a 28-byte page header (record number, write generation,
//! in-memory size, entries, page type at byte 24, flags) and a 12-byte block header
//! (size on disk, CRC32C checksum, flags). A block is accepted only when its checksum
//! matches: over the whole block, or over its first 64 bytes when the file was written
//! with `checksum=uncompressed`. A compressed block keeps its first 64 bytes as they are;
//! the rest is the compressor's output, in the compressor's own framing, and the page
//! image is the 64 bytes followed by the decompressed rest. Which compressor wrote a
//! block is read off the bytes (zstd's magic number, lz4's prefix, snappy's length, a
//! zlib header) and confirmed by a decompression of exactly the size the header says.
//!
//! The cell format and the integer packing follow WiredTiger's `cell.h` and
//! `intpack_inline.h`. Everything here is pure and total: sizes are checked before use,
//! decompression writes into a buffer of the declared size and never past it, and no
//! input panics.

use std::cell::RefCell;

use super::search;
use serde::{Deserialize, Serialize};
use zstd::bulk::Decompressor;

/// Page header plus block header: where a page's cells (or overflow data) start.
pub const HEADER_LEN: usize = 40;
/// Bytes at the start of a block that compression leaves as they are.
pub const COMPRESS_SKIP: usize = 64;
/// Largest block or page image accepted (a leaf page holding a 16 MiB document fits).
pub const MAX_PAGE_LEN: u32 = 32 << 20;
/// Offset of the page type in the page header.
const TYPE_AT: usize = 24;
const TYPE_OVERFLOW: u8 = 5;
const TYPE_ROW_INTERNAL: u8 = 6;
const TYPE_ROW_LEAF: u8 = 7;
const FLAG_COMPRESSED: u8 = 0x01;
/// Page flags WiredTiger 11 writes, other than encryption (which cannot be read back
/// without the key) and the retired lookaside bit.
const KNOWN_FLAGS: u8 = 0x01 | 0x02 | 0x04 | 0x20;
const BLOCK_DATA_CHECKSUM: u8 = 0x01;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// What a page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageKind {
    /// A row-store leaf page: key/value cells (for mongod: record id and document).
    RowLeaf,
    /// An overflow page: one value too large for a leaf page.
    Overflow,
    /// A row-store internal page: keys and the addresses of the pages below.
    RowInternal,
}

/// How the page image is stored in the block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// Not compressed: the block is the page image.
    None,
    /// snappy, after a u64 LE compressed length.
    Snappy,
    /// zstd, after a u64 LE compressed length.
    Zstd,
    /// A zlib stream.
    Zlib,
    /// lz4 block format, after a 16-byte prefix of lengths.
    Lz4,
}

impl Codec {
    /// The name WiredTiger's `block_compressor` setting uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Snappy => "snappy",
            Codec::Zstd => "zstd",
            Codec::Zlib => "zlib",
            Codec::Lz4 => "lz4",
        }
    }
}

/// The headers of a block, plausible but not yet proven by the checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The page's write generation: a later write of the same page has a higher one.
    pub write_gen: u64,
    /// Size of the page image.
    pub mem_size: u32,
    /// Cells on a leaf page; data length on an overflow page.
    pub entries: u32,
    /// Leaf or overflow.
    pub kind: PageKind,
    /// The page image is compressed after [`COMPRESS_SKIP`] bytes.
    pub compressed: bool,
    /// Size of the block on disk.
    pub disk_size: u32,
    /// CRC32C of the block (or of its first 64 bytes) with this field zeroed.
    pub checksum: u32,
    /// The checksum covers the whole block.
    pub data_checksum: bool,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes([
        b[at],
        b[at + 1],
        b[at + 2],
        b[at + 3],
        b[at + 4],
        b[at + 5],
        b[at + 6],
        b[at + 7],
    ])
}

/// Reads the headers at the start of `buf`, if they look like a row-store leaf,
/// internal or overflow block that WiredTiger could have written. Cheap: no checksum.
pub fn header(buf: &[u8]) -> Option<Header> {
    let b = buf.get(..COMPRESS_SKIP)?;
    // The padding bytes first: in random data, where a page type byte turns up every
    // 128 bytes, this rejects almost every candidate at once.
    if b[26] != 0 || b[37..40] != [0, 0, 0] || b[36] & !BLOCK_DATA_CHECKSUM != 0 {
        return None;
    }
    let kind = match b[TYPE_AT] {
        TYPE_ROW_LEAF => PageKind::RowLeaf,
        TYPE_OVERFLOW => PageKind::Overflow,
        TYPE_ROW_INTERNAL => PageKind::RowInternal,
        _ => return None,
    };
    let (flags, unused, version) = (b[25], b[26], b[27]);
    let block_flags = b[36];
    let h = Header {
        write_gen: u64_at(b, 8),
        mem_size: u32_at(b, 16),
        entries: u32_at(b, 20),
        kind,
        compressed: flags & FLAG_COMPRESSED != 0,
        disk_size: u32_at(b, 28),
        checksum: u32_at(b, 32),
        data_checksum: block_flags & BLOCK_DATA_CHECKSUM != 0,
    };
    let plausible = u64_at(b, 0) == 0 // record number: none in a row store
        && h.write_gen != 0
        && flags & !KNOWN_FLAGS == 0
        && unused == 0
        && version <= 2
        && block_flags & !BLOCK_DATA_CHECKSUM == 0
        && b[37..40] == [0, 0, 0]
        && h.disk_size >= 512
        && h.disk_size.is_multiple_of(512)
        && h.disk_size <= MAX_PAGE_LEN
        && h.mem_size as usize >= HEADER_LEN
        && h.mem_size <= MAX_PAGE_LEN
        && (h.compressed || h.mem_size <= h.disk_size)
        && (h.kind != PageKind::Overflow || h.entries <= h.mem_size - HEADER_LEN as u32);
    plausible.then_some(h)
}

/// Blocks lie on multiples of the allocation size (512 bytes at least) from the start
/// of their file, and files start on sector boundaries: blocks are looked for at offsets
/// that are a multiple of this from the start of the source, or from an unaligned file
/// start ([`file_starts`]).
pub const SECTOR: u64 = 512;

/// What the first block of every WiredTiger file starts with: magic number 120897,
/// major version 1, minor version 0.
pub const FILE_MAGIC: [u8; 8] = [0x41, 0xd8, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00];

/// Offsets in `buf` (below `limit`) on a [`SECTOR`] boundary of the source (`buf`
/// holds it from offset `base`) where a block header could start.
pub fn candidates(buf: &[u8], base: u64, limit: usize) -> impl Iterator<Item = usize> + '_ {
    let first = ((SECTOR - base % SECTOR) % SECTOR) as usize;
    (first..limit.min(buf.len()))
        .step_by(SECTOR as usize)
        .filter(|&at| header(&buf[at..]).is_some())
}

/// Offsets in `buf` (below `limit`) where a WiredTiger file starts: its descriptor
/// block's magic number and version.
pub fn file_starts(buf: &[u8], limit: usize) -> Vec<usize> {
    static FILE: search::Lazy = search::Lazy::new(|| search::finder(&FILE_MAGIC));
    file_starts_at(buf, limit, FILE.find_iter(buf))
}

/// As [`file_starts`], given where [`FILE_MAGIC`] occurs in `buf` (ascending): the
/// scan finds every format's magic numbers in one pass.
pub fn file_starts_at(
    buf: &[u8],
    limit: usize,
    hits: impl IntoIterator<Item = usize>,
) -> Vec<usize> {
    let end = limit.saturating_add(FILE_MAGIC.len() - 1).min(buf.len());
    (hits.into_iter())
        .take_while(|&p| p + FILE_MAGIC.len() <= end)
        .collect()
}

/// Whether `block` (exactly `disk_size` bytes) matches its checksum.
pub fn checksum_ok(block: &[u8], h: &Header) -> bool {
    if block.len() != h.disk_size as usize {
        return false;
    }
    let covered = if h.data_checksum {
        block
    } else {
        &block[..COMPRESS_SKIP]
    };
    let mut crc = crc32c::crc32c(&covered[..32]);
    crc = crc32c::crc32c_append(crc, &[0; 4]);
    crc = crc32c::crc32c_append(crc, &covered[36..]);
    crc == h.checksum
}

/// Rebuilds the page image of a block whose checksum matched into `out`, finding out
/// which compressor wrote it. `None` when no compressor yields exactly `mem_size`
/// bytes.
pub fn page_image(block: &[u8], h: &Header, out: &mut Vec<u8>) -> Option<Codec> {
    let mem = h.mem_size as usize;
    out.clear();
    if !h.compressed {
        out.extend_from_slice(block.get(..mem)?);
        return Some(Codec::None);
    }
    let src = block.get(COMPRESS_SKIP..)?;
    out.extend_from_slice(&block[..COMPRESS_SKIP]);
    out.resize(mem.checked_sub(COMPRESS_SKIP)? + COMPRESS_SKIP, 0);
    let dst = &mut out[COMPRESS_SKIP..];
    [Codec::Zstd, Codec::Lz4, Codec::Snappy, Codec::Zlib]
        .into_iter()
        .find(|&codec| decompress(codec, src, dst) == Some(dst.len()))
}

/// A length-prefixed payload: a u64 LE length, then that many bytes.
fn framed(src: &[u8]) -> Option<&[u8]> {
    let n = usize::try_from(u64_at(src.get(..8)?, 0)).ok()?;
    src.get(8..8usize.checked_add(n)?)
}

thread_local! {
    /// A zstd decompression context per thread, reused page after page: made afresh
    /// for each page (`zstd::bulk::decompress_to_buffer`), creating and clearing it
    /// took a tenth of the time spent on zstd pages (perf: `ZSTD_createDCtx`). Each
    /// page is a frame of its own, and a frame starts from a clean state.
    static ZSTD: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Decompresses `src` as `codec` would have written it into `dst`; the number of
/// bytes written, if the bytes are that codec's. Never writes past `dst`.
fn decompress(codec: Codec, src: &[u8], dst: &mut [u8]) -> Option<usize> {
    match codec {
        Codec::None => None,
        Codec::Zstd => {
            let data = framed(src)?;
            if data.get(..4)? != ZSTD_MAGIC {
                return None;
            }
            ZSTD.with_borrow_mut(|reused| {
                if reused.is_none() {
                    *reused = Decompressor::new().ok();
                }
                reused.as_mut()?.decompress_to_buffer(data, dst).ok()
            })
        }
        Codec::Lz4 => {
            let prefix = src.get(..16)?;
            let (compressed, uncompressed, useful, unused) = (
                u32_at(prefix, 0) as usize,
                u32_at(prefix, 4) as usize,
                u32_at(prefix, 8) as usize,
                u32_at(prefix, 12),
            );
            if unused != 0 || uncompressed != dst.len() || useful != uncompressed {
                return None;
            }
            let data = src.get(16..16usize.checked_add(compressed)?)?;
            lz4_flex::block::decompress_into(data, dst).ok()
        }
        Codec::Snappy => {
            let data = framed(src)?;
            if snap::raw::decompress_len(data).ok()? != dst.len() {
                return None;
            }
            snap::raw::Decoder::new().decompress(data, dst).ok()
        }
        Codec::Zlib => {
            let (cmf, flg) = (*src.first()?, *src.get(1)?);
            if cmf & 0x0f != 8 || (u16::from(cmf) << 8 | u16::from(flg)) % 31 != 0 {
                return None;
            }
            let mut z = flate2::Decompress::new(true);
            let status = z
                .decompress(src, dst, flate2::FlushDecompress::Finish)
                .ok()?;
            (status == flate2::Status::StreamEnd).then_some(z.total_out() as usize)
        }
    }
}

/// Where a record's value is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// In the page image: `len` bytes at `offset`.
    Inline {
        /// Offset in the page image.
        offset: u32,
        /// Length in bytes.
        len: u32,
    },
    /// In an overflow block, known by its checksum and its size in allocation units.
    Overflow {
        /// Size of the block in allocation units.
        units: u64,
        /// The block's checksum, as the leaf cell records it.
        checksum: u32,
    },
}

/// One key/value pair of a leaf page whose key is a packed integer (mongod's record id:
/// `key_format=q`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    /// The record id.
    pub key: i64,
    /// Where the value (for mongod: the BSON document) is.
    pub value: Value,
}

/// Reads the records of a row-store leaf page image with `entries` cells. `None` when
/// the cells do not parse: a cell of a type a leaf page never holds, a length past the
/// page, or a cell count that does not end on the page.
pub fn leaf_records(image: &[u8], entries: u32) -> Option<Vec<Record>> {
    let mut records = Vec::new();
    walk_pairs(image, entries, |key, value| {
        if let Some(key) = unpack_whole_int(key) {
            records.push(Record { key, value });
        }
    })?;
    Some(records)
}

/// The checkpoints a page of WiredTiger's metadata file (`WiredTiger.wt`) records:
/// for each `file:<name>.wt` entry, the order and the root block of each of its
/// checkpoints (`checkpoint=(WiredTigerCheckpoint.N=(addr="<hex>",order=N,...))` in its
/// configuration string; order 0 when it is not there).
pub fn checkpoint_roots(image: &[u8], entries: u32) -> Vec<(String, u64, Address)> {
    let mut roots = Vec::new();
    let _ = walk_pairs(image, entries, |key, value| {
        let Some(name) = key
            .strip_prefix(b"file:")
            .and_then(|k| k.strip_suffix(b".wt\0"))
            .and_then(|k| std::str::from_utf8(k).ok())
        else {
            return;
        };
        let Value::Inline { offset, len } = value else {
            return;
        };
        let config = &image[offset as usize..][..len as usize];
        for (hex, rest) in memchr::memmem::find_iter(config, b"addr=\"").filter_map(|at| {
            let rest = &config[at + 6..];
            let end = memchr::memchr(b'"', rest)?;
            Some((&rest[..end], &rest[end..]))
        }) {
            // A checkpoint cookie: a version byte, then the root block's address.
            if let Some(root) = decode_hex(hex).and_then(|c| Address::parse(c.get(1..)?)) {
                roots.push((name.to_string(), checkpoint_order(rest), root));
            }
        }
    });
    roots
}

/// The `order=N` of the checkpoint whose description `rest` continues (up to its `)`).
fn checkpoint_order(rest: &[u8]) -> u64 {
    let rest = &rest[..memchr::memchr(b')', rest).unwrap_or(rest.len())];
    memchr::memmem::find(rest, b"order=").map_or(0, |at| {
        rest[at + 6..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |n, &d| {
                n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            })
    })
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.chunks(2)
        .map(|p| Some(digit(*p.first()?)? << 4 | digit(*p.get(1)?)?))
        .collect()
}

/// The children of a row-store internal page image with `entries` cells: the blocks
/// its address cells point to.
pub fn children(image: &[u8], entries: u32) -> Option<Vec<Address>> {
    let mut out = Vec::new();
    let mut at = HEADER_LEN;
    for _ in 0..entries {
        let cell = cell_at(image, at)?;
        match cell.kind {
            CellKind::Key { .. } | CellKind::KeyOverflow => {}
            CellKind::Address => {
                if let Some(a) = Address::parse(&image[cell.data.0..cell.data.1]) {
                    out.push(a);
                }
            }
            _ => return None,
        }
        at = cell.end;
    }
    Some(out)
}

/// A block named by an address cookie: its size in allocation units and its checksum
/// (its offset counts from a file start that is lost on a raw disk, so it is not kept).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Address {
    /// Size in allocation units.
    pub units: u64,
    /// The block's checksum.
    pub checksum: u32,
}

impl Address {
    /// Parses a cookie: packed offset, size and checksum; `None` for the empty address.
    fn parse(mut cookie: &[u8]) -> Option<Address> {
        let _offset = unpack_uint(&mut cookie)?;
        let units = unpack_uint(&mut cookie)?;
        let checksum = u32::try_from(unpack_uint(&mut cookie)?).ok()?;
        (units > 0).then_some(Address { units, checksum })
    }

    /// Whether a block of `disk_size` bytes can be the block this address names.
    pub fn fits(&self, disk_size: u32) -> bool {
        let size = u64::from(disk_size);
        size.is_multiple_of(self.units) && (size / self.units).is_power_of_two()
    }
}

/// Walks the key/value pairs of a leaf page image, handing each key (prefix
/// compression undone) and value to `on_pair`.
fn walk_pairs(image: &[u8], entries: u32, mut on_pair: impl FnMut(&[u8], Value)) -> Option<()> {
    let mut key: Vec<u8> = Vec::new();
    let mut has_key = false;
    let mut at = HEADER_LEN;
    for _ in 0..entries {
        let cell = cell_at(image, at)?;
        match cell.kind {
            CellKind::Key { prefix } => {
                key.truncate(usize::from(prefix));
                if key.len() < usize::from(prefix) {
                    return None;
                }
                key.extend_from_slice(&image[cell.data.0..cell.data.1]);
                has_key = true;
            }
            CellKind::KeyOverflow => {
                key.clear();
                has_key = false;
            }
            CellKind::Value | CellKind::ValueOverflow | CellKind::Copy { .. } => {
                let value = match cell.kind {
                    CellKind::Copy { back } => {
                        let original = cell_at(image, at.checked_sub(back)?)?;
                        value_of(image, &original)?
                    }
                    _ => value_of(image, &cell)?,
                };
                if std::mem::take(&mut has_key) {
                    on_pair(&key, value);
                }
            }
            CellKind::Deleted => has_key = false,
            CellKind::Address => return None,
        }
        at = cell.end;
    }
    Some(())
}

fn value_of(image: &[u8], cell: &Cell) -> Option<Value> {
    let (start, end) = cell.data;
    match cell.kind {
        CellKind::Value => Some(Value::Inline {
            offset: start as u32,
            len: (end - start) as u32,
        }),
        CellKind::ValueOverflow => {
            let a = Address::parse(&image[start..end])?;
            Some(Value::Overflow {
                units: a.units,
                checksum: a.checksum,
            })
        }
        _ => None,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CellKind {
    Key { prefix: u8 },
    KeyOverflow,
    Value,
    ValueOverflow,
    Copy { back: usize },
    Deleted,
    Address,
}

/// A parsed cell: what it is, its data `[start, end)` in the image, where the next
/// cell starts.
struct Cell {
    kind: CellKind,
    data: (usize, usize),
    end: usize,
}

const CELL_ADDR_DEL: u8 = 0;
const CELL_ADDR_INT: u8 = 1 << 4;
const CELL_ADDR_LEAF: u8 = 2 << 4;
const CELL_ADDR_LEAF_NO: u8 = 3 << 4;
/// Page flag: deleted-address cells carry fast-truncate information.
const PAGE_FT_UPDATE: u8 = 0x20;
const CELL_64V: u8 = 0x04;
const CELL_SECOND_DESC: u8 = 0x08;
const CELL_DEL: u8 = 4 << 4;
const CELL_KEY: u8 = 5 << 4;
const CELL_KEY_OVFL: u8 = 6 << 4;
const CELL_KEY_PFX: u8 = 7 << 4;
const CELL_VALUE: u8 = 8 << 4;
const CELL_VALUE_COPY: u8 = 9 << 4;
const CELL_VALUE_OVFL: u8 = 10 << 4;
const CELL_VALUE_OVFL_RM: u8 = 11 << 4;
const CELL_KEY_OVFL_RM: u8 = 12 << 4;
/// Short cells hold up to 63 bytes; longer lengths are stored minus 64.
const CELL_SIZE_ADJUST: u64 = 64;

fn cell_at(image: &[u8], at: usize) -> Option<Cell> {
    let desc = *image.get(at)?;
    let short = |kind, data_at: usize| {
        let end = data_at.checked_add(usize::from(desc >> 2))?;
        (end <= image.len()).then_some(Cell {
            kind,
            data: (data_at, end),
            end,
        })
    };
    match desc & 0x03 {
        1 => return short(CellKind::Key { prefix: 0 }, at + 1),
        2 => {
            let prefix = *image.get(at + 1)?;
            return short(CellKind::Key { prefix }, at + 2);
        }
        3 => return short(CellKind::Value, at + 1),
        _ => {}
    }
    let raw = desc & 0xf0;
    let mut p = image.get(at + 1..)?;
    let mut prefix = 0;
    if raw == CELL_KEY_PFX {
        prefix = *p.first()?;
        p = &p[1..];
    }
    let is_value = matches!(
        raw,
        CELL_DEL | CELL_VALUE | CELL_VALUE_COPY | CELL_VALUE_OVFL | CELL_VALUE_OVFL_RM
    );
    let is_address = matches!(
        raw,
        CELL_ADDR_DEL | CELL_ADDR_INT | CELL_ADDR_LEAF | CELL_ADDR_LEAF_NO
    );
    let second_desc = (is_value || is_address) && desc & CELL_SECOND_DESC != 0;
    if second_desc {
        let flags = *p.first()?;
        p = &p[1..];
        // Start and stop timestamps and transaction ids: six optional packed integers.
        for bit in 1..7 {
            if flags & (1 << bit) != 0 {
                unpack_uint(&mut p)?;
            }
        }
    }
    if raw == CELL_ADDR_DEL && image.get(25).is_some_and(|f| f & PAGE_FT_UPDATE != 0) {
        // Transaction id, timestamp and durable timestamp of a fast truncate.
        for _ in 0..3 {
            unpack_uint(&mut p)?;
        }
    }
    let mut rle = 0;
    if desc & CELL_64V != 0 {
        rle = unpack_uint(&mut p)?;
    }
    let here = |p: &[u8]| image.len() - p.len();
    let kind = match raw {
        CELL_VALUE_COPY => {
            let back = usize::try_from(unpack_uint(&mut p)?).ok()?;
            let end = here(p);
            return Some(Cell {
                kind: CellKind::Copy { back },
                data: (end, end),
                end,
            });
        }
        CELL_DEL => {
            let end = here(p);
            return Some(Cell {
                kind: CellKind::Deleted,
                data: (end, end),
                end,
            });
        }
        CELL_KEY | CELL_KEY_PFX => CellKind::Key { prefix },
        CELL_KEY_OVFL | CELL_KEY_OVFL_RM => CellKind::KeyOverflow,
        CELL_VALUE => CellKind::Value,
        CELL_VALUE_OVFL | CELL_VALUE_OVFL_RM => CellKind::ValueOverflow,
        CELL_ADDR_DEL | CELL_ADDR_INT | CELL_ADDR_LEAF | CELL_ADDR_LEAF_NO => CellKind::Address,
        _ => return None,
    };
    let mut len = unpack_uint(&mut p)?;
    if matches!(kind, CellKind::Key { .. }) || (kind == CellKind::Value && rle == 0 && !second_desc)
    {
        len = len.checked_add(CELL_SIZE_ADJUST)?;
    }
    let start = here(p);
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    (end <= image.len()).then_some(Cell {
        kind,
        data: (start, end),
        end,
    })
}

/// Unpacks one WiredTiger packed unsigned integer from the front of `p`.
fn unpack_uint(p: &mut &[u8]) -> Option<u64> {
    let b0 = *p.first()?;
    let (value, used) = match b0 & 0xf0 {
        0x80..=0xb0 => (u64::from(b0 & 0x3f), 1),
        0xc0 | 0xd0 => {
            let b1 = *p.get(1)?;
            ((u64::from(b0 & 0x1f) << 8 | u64::from(b1)) + 64, 2)
        }
        0xe0 => {
            let len = usize::from(b0 & 0x0f);
            if len > 8 {
                return None;
            }
            let bytes = p.get(1..1 + len)?;
            let x = bytes.iter().fold(0u64, |x, &b| x << 8 | u64::from(b));
            (x.checked_add(8256)?, 1 + len)
        }
        _ => return None,
    };
    *p = &p[used..];
    Some(value)
}

/// Unpacks one WiredTiger packed signed integer from the front of `p`.
fn unpack_int(p: &mut &[u8]) -> Option<i64> {
    let b0 = *p.first()?;
    let (value, used) = match b0 & 0xf0 {
        0x10 => {
            let len = 8usize.checked_sub(usize::from(b0 & 0x0f))?;
            let bytes = p.get(1..1 + len)?;
            let x = bytes.iter().fold(u64::MAX, |x, &b| x << 8 | u64::from(b));
            (x as i64, 1 + len)
        }
        0x20 | 0x30 => {
            let b1 = *p.get(1)?;
            ((i64::from(b0 & 0x1f) << 8 | i64::from(b1)) - 8256, 2)
        }
        0x40..=0x70 => (i64::from(b0 & 0x3f) - 64, 1),
        _ => return i64::try_from(unpack_uint(p)?).ok(),
    };
    *p = &p[used..];
    Some(value)
}

/// A key that is exactly one packed integer (mongod's record id), else `None`.
fn unpack_whole_int(key: &[u8]) -> Option<i64> {
    let mut p = key;
    let v = unpack_int(&mut p)?;
    p.is_empty().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs like WiredTiger's `__wt_vpack_int` (for the round-trip test only).
    fn pack_int(x: i64) -> Vec<u8> {
        if x < -8256 {
            let lz = ((!(x as u64)).leading_zeros() / 8) as usize;
            let len = 8 - lz;
            let mut out = vec![0x10 | lz as u8];
            out.extend_from_slice(&(x as u64).to_be_bytes()[8 - len..]);
            out
        } else if x < -64 {
            let v = (x + 8256) as u64;
            vec![0x20 | (v >> 8) as u8 & 0x1f, v as u8]
        } else if x < 0 {
            vec![0x40 | (x + 64) as u8]
        } else if x <= 63 {
            vec![0x80 | x as u8]
        } else if x <= 8255 {
            let v = (x - 64) as u64;
            vec![0xc0 | (v >> 8) as u8, v as u8]
        } else {
            let v = (x - 8256) as u64;
            let len = 8 - (v.leading_zeros() / 8) as usize;
            let mut out = vec![0xe0 | len as u8];
            out.extend_from_slice(&v.to_be_bytes()[8 - len..]);
            out
        }
    }

    #[test]
    fn packed_integers_round_trip() {
        for x in [
            0,
            1,
            63,
            64,
            8255,
            8256,
            1 << 40,
            i64::MAX,
            -1,
            -64,
            -65,
            -8256,
            -8257,
            i64::MIN,
        ] {
            assert_eq!(unpack_whole_int(&pack_int(x)), Some(x), "{x}");
        }
        assert_eq!(unpack_whole_int(&[0x81, 0]), None, "trailing byte");
        assert_eq!(unpack_whole_int(&[0xe9]), None, "length past 8");
        assert_eq!(unpack_whole_int(&[0x1f]), None, "negative length");
    }

    /// A block with valid headers and checksum around `body`: a compressed payload
    /// (image size `mem`) or, uncompressed, the cells of a leaf page.
    fn block(entries: u32, mem: usize, compressed: bool, body: &[u8]) -> Vec<u8> {
        let head = if compressed {
            COMPRESS_SKIP
        } else {
            HEADER_LEN
        };
        let mut b = vec![0u8; head];
        b.extend_from_slice(body);
        b.resize(b.len().next_multiple_of(4096), 0);
        b[8] = 1;
        b[16..20].copy_from_slice(&(mem as u32).to_le_bytes());
        b[20..24].copy_from_slice(&entries.to_le_bytes());
        b[24] = TYPE_ROW_LEAF;
        b[25] = u8::from(compressed);
        let size = b.len() as u32;
        b[28..32].copy_from_slice(&size.to_le_bytes());
        b[36] = BLOCK_DATA_CHECKSUM;
        let crc = crc32c::crc32c(&b);
        b[32..36].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// What a decoded block gives: its codec, or `None`.
    fn decode(b: &[u8]) -> Option<Codec> {
        let h = header(b)?;
        assert!(checksum_ok(b, &h));
        page_image(b, &h, &mut Vec::new())
    }

    #[test]
    fn decompression_bombs_stop_at_the_declared_size() {
        let zeros = vec![0u8; 64 << 20];
        // 64 MiB of zeros in a few KiB, behind a header declaring an 8 KiB page.
        let zstd = zstd::bulk::compress(&zeros, 3).unwrap();
        let mut framed = (zstd.len() as u64).to_le_bytes().to_vec();
        framed.extend_from_slice(&zstd);
        assert_eq!(decode(&block(0, 8192, true, &framed)), None);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &zeros).unwrap();
        assert_eq!(decode(&block(0, 8192, true, &z.finish().unwrap())), None);
        let snappy = snap::raw::Encoder::new()
            .compress_vec(&zeros[..1 << 20])
            .unwrap();
        let mut framed = (snappy.len() as u64).to_le_bytes().to_vec();
        framed.extend_from_slice(&snappy);
        assert_eq!(decode(&block(0, 8192, true, &framed)), None);
        // An image larger than any page is refused before anything is allocated.
        assert_eq!(
            header(&block(0, MAX_PAGE_LEN as usize + 1, true, &framed)),
            None
        );
        // The same compressor output with the truthful size decodes, by the zstd context
        // this thread kept from the bomb it refused: each page starts afresh.
        let small = zstd::bulk::compress(&zeros[..8192 - COMPRESS_SKIP], 3).unwrap();
        let mut framed = (small.len() as u64).to_le_bytes().to_vec();
        framed.extend_from_slice(&small);
        assert_eq!(decode(&block(0, 8192, true, &framed)), Some(Codec::Zstd));
    }

    #[test]
    fn lying_lengths_are_refused() {
        // A compressed length past the block.
        let mut framed = u64::MAX.to_le_bytes().to_vec();
        framed.extend_from_slice(&ZSTD_MAGIC);
        assert_eq!(decode(&block(0, 8192, true, &framed)), None);
        // A block size past the bytes there are: a plausible header, no block.
        let mut b = block(0, 100, false, &[]);
        b[28..32].copy_from_slice(&(16u32 << 20).to_le_bytes());
        let h = header(&b).unwrap();
        assert!(!checksum_ok(&b, &h));
        // Cells: a value whose length runs past the page; a cell count past the page.
        let key = [0x01 << 2 | 1, 0x81]; // short key: record id 1
        let long_value = [CELL_VALUE, 0xe2, 0x7f, 0xff]; // 32 KiB + 8256 bytes
        let mut cells = key.to_vec();
        cells.extend_from_slice(&long_value);
        let b = block(2, HEADER_LEN + cells.len() + 10, false, &cells);
        let h = header(&b).unwrap();
        let mut image = Vec::new();
        page_image(&b, &h, &mut image).unwrap();
        assert_eq!(leaf_records(&image, 2), None);
        assert_eq!(leaf_records(&image, 1).map(|r| r.len()), Some(0));
        assert_eq!(leaf_records(&image, u32::MAX), None);
        // A value copy pointing before the page.
        let copy = [0x01 << 2 | 1, 0x81, CELL_VALUE_COPY, 0xe2, 0x7f, 0xff];
        let b = block(2, HEADER_LEN + copy.len(), false, &copy);
        page_image(&b, &header(&b).unwrap(), &mut image).unwrap();
        assert_eq!(leaf_records(&image, 2), None);
    }

    #[test]
    fn garbage_is_no_block() {
        assert_eq!(header(&[0u8; 64]), None);
        assert_eq!(header(&[7u8; 30]), None);
        let mut block = vec![0u8; 4096];
        block[8] = 1; // write_gen
        block[16..20].copy_from_slice(&100u32.to_le_bytes());
        block[24] = TYPE_ROW_LEAF;
        block[28..32].copy_from_slice(&4096u32.to_le_bytes());
        block[36] = 1;
        let h = header(&block).expect("plausible");
        assert!(!checksum_ok(&block, &h), "zero checksum");
        let crc = crc32c::crc32c(&block);
        block[32..36].copy_from_slice(&crc.to_le_bytes());
        let h = header(&block).unwrap();
        assert!(checksum_ok(&block, &h));
        assert_eq!(leaf_records(&block[..100], 0), Some(vec![]));
        // A cell count past the page.
        assert_eq!(leaf_records(&block[..100], 70), None);
    }
}
