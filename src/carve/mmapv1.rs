//! The MMAPv1 structures that tie documents to collections on disk.
//!
//! A data file (`db.0`, `db.1`...) is a sequence of extents. Each extent header starts
//! with the magic `DCBA` and carries its own offset in the file and, as text, the
//! namespace (`db.collection`) of the records it holds; each record has a 16-byte header
//! (`lengthWithHeaders`, `extentOfs`, `nextOfs`, `prevOfs`) whose `extentOfs` points back
//! to its extent. Pure functions over bytes, total on any input.

use super::search;

/// The extent header's magic number 0x41424344, as stored (little-endian).
pub const EXTENT_MAGIC: &[u8; 4] = b"DCBA";
/// Bytes of an extent header, before the first record.
pub const EXTENT_HEADER_LEN: usize = 176;
/// Bytes of a record header, before the document.
pub const RECORD_HEADER_LEN: usize = 16;

/// MMAPv1's DiskLoc: a data file's number (`<db>.<n>`) and an offset in that file.
pub type DiskLoc = (i32, i32);

/// A parsed extent header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentHeader<'a> {
    /// The number of the data file holding the extent (`myLoc.a`).
    pub file_no: i32,
    /// The extent's offset within its data file (`myLoc.ofs`).
    pub file_ofs: i32,
    /// Length of the extent, header included.
    pub len: u32,
    /// The namespace, `db.collection`.
    pub ns: &'a str,
    /// Offsets in the file of the first and last record of the extent's doubly linked
    /// record list (`firstRecord`, `lastRecord`; `None` when null: an empty extent).
    pub records: Option<(i32, i32)>,
    /// The collection's next and previous extent (`xnext`, `xprev`; `None`: null).
    pub chain: (Option<DiskLoc>, Option<DiskLoc>),
}

/// The little-endian i32 at `at`, if the bytes are there.
pub(super) fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses the extent header at the start of `b`, if it is a plausible one.
pub fn parse_extent_header(b: &[u8]) -> Option<ExtentHeader<'_>> {
    if !b.starts_with(EXTENT_MAGIC) || b.len() < EXTENT_HEADER_LEN {
        return None;
    }
    let (file_no, file_ofs) = (i32_at(b, 4)?, i32_at(b, 8)?);
    let len = u32::try_from(i32_at(b, 156)?).ok()?;
    let ns_field = &b[28..156];
    let ns_len = memchr::memchr(0, ns_field)?;
    let ns = std::str::from_utf8(&ns_field[..ns_len]).ok()?;
    let plausible_ns = ns.len() >= 3
        && ns.contains('.')
        && !ns.starts_with('.')
        && !ns.ends_with('.')
        && !ns.chars().any(char::is_control);
    (plausible_ns
        && (0..100_000).contains(&file_no)
        && file_ofs >= 0
        && len as usize > EXTENT_HEADER_LEN)
        .then_some(ExtentHeader {
            file_no,
            file_ofs,
            len,
            ns,
            records: record_list(b),
            chain: (disk_loc(b, 12), disk_loc(b, 20)),
        })
}

/// The DiskLoc at `at`, unless null (or not one: a negative file number or offset).
pub(super) fn disk_loc(b: &[u8], at: usize) -> Option<DiskLoc> {
    let (file, ofs) = (i32_at(b, at)?, i32_at(b, at + 4)?);
    ((0..100_000).contains(&file) && ofs >= 0).then_some((file, ofs))
}

/// `firstRecord` and `lastRecord` of an extent header: two DiskLocs (file number,
/// offset), both null (file number -1) for an empty extent.
fn record_list(b: &[u8]) -> Option<(i32, i32)> {
    let (first_file, first) = (i32_at(b, 160)?, i32_at(b, 164)?);
    let (last_file, last) = (i32_at(b, 168)?, i32_at(b, 172)?);
    (first_file >= 0 && last_file >= 0).then_some((first, last))
}

/// Extent headers starting before `limit` in `buf`, with their offsets.
pub fn find_extent_headers(buf: &[u8], limit: usize) -> Vec<(usize, ExtentHeader<'_>)> {
    static EXTENT: search::Lazy = search::Lazy::new(|| search::finder(EXTENT_MAGIC));
    find_extent_headers_at(buf, limit, EXTENT.find_iter(buf))
}

/// As [`find_extent_headers`], given where [`EXTENT_MAGIC`] occurs in `buf`
/// (ascending): the scan finds every format's magic numbers in one pass.
pub fn find_extent_headers_at(
    buf: &[u8],
    limit: usize,
    hits: impl IntoIterator<Item = usize>,
) -> Vec<(usize, ExtentHeader<'_>)> {
    (hits.into_iter())
        .take_while(|&p| p < limit)
        .filter_map(|p| parse_extent_header(&buf[p..]).map(|h| (p, h)))
        .collect()
}

/// The record header in front of a document starting at `doc_at`:
/// `(lengthWithHeaders, extentOfs)`, if the bytes are there.
pub fn record_header(buf: &[u8], doc_at: usize) -> Option<(i32, i32)> {
    let at = doc_at.checked_sub(RECORD_HEADER_LEN)?;
    Some((i32_at(buf, at)?, i32_at(buf, at + 4)?))
}

/// The last 8 bytes of the record header in front of a document starting at `doc_at`:
/// `(nextOfs, prevOfs)` for a live record; a delete writes the DiskLoc `nextDeleted`
/// there instead (see [`links_fit`]).
pub fn record_links(buf: &[u8], doc_at: usize) -> Option<(i32, i32)> {
    let at = doc_at.checked_sub(RECORD_HEADER_LEN)?;
    Some((i32_at(buf, at + 8)?, i32_at(buf, at + 12)?))
}

/// Whether `(nextOfs, prevOfs)` of a record in the extent at `extent_ofs` are what a
/// live record holds: each null (-1) or the offset of a record of the same extent, past
/// its header. A deleted record holds `nextDeleted` there, a DiskLoc whose first half is
/// a file number (0, 1, ...) or, at the end of the free list, -1 followed by offset 0:
/// neither fits, so MMAPv1's own bytes tell an unlinked record from a linked one.
pub fn links_fit(extent_ofs: i32, (next, prev): (i32, i32)) -> bool {
    let in_extent =
        |o: i32| o == -1 || i64::from(o) >= i64::from(extent_ofs) + EXTENT_HEADER_LEN as i64;
    extent_ofs >= 0 && in_extent(next) && in_extent(prev)
}

/// Whether the last 8 bytes of a record header are a free-list link (`nextDeleted`, a
/// DiskLoc): a file number and an offset in it, or null (-1, 0) at the end of a list.
pub fn is_free_link((file, ofs): (i32, i32)) -> bool {
    (file == -1 && ofs == 0) || ((0..100_000).contains(&file) && ofs > 0)
}

/// Whether a record header `(lengthWithHeaders, extentOfs)` frames a document of
/// `doc_len` bytes: the slot holds the header and the document (it may be far larger:
/// an update that shrinks a document keeps its slot), is a size MMAPv1 allocates
/// (a multiple of 4, at most a 16 MiB document rounded up to whole MiB), and the extent
/// offset can be one. Garbage in front of a BSON-looking run of bytes rarely agrees.
pub fn frames(record: (i32, i32), doc_len: usize) -> bool {
    let (slot, extent_ofs) = record;
    let Ok(slot) = usize::try_from(slot) else {
        return false;
    };
    let largest = RECORD_HEADER_LEN + (17 << 20);
    (RECORD_HEADER_LEN + doc_len..=largest).contains(&slot) && slot % 4 == 0 && extent_ofs >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linked_records_are_told_from_deleted_ones() {
        assert!(links_fit(8192, (-1, -1)), "the only record");
        assert!(links_fit(8192, (9000, 8368)));
        assert!(!links_fit(8192, (0, 12_000)), "nextDeleted in file 0");
        assert!(!links_fit(8192, (-1, 0)), "null nextDeleted");
        assert!(!links_fit(8192, (8200, -1)), "inside the extent header");
        assert!(is_free_link((0, 12_000)) && is_free_link((-1, 0)));
        assert!(!is_free_link((-1, -1)) && !is_free_link((-7, 99)));
    }

    #[test]
    fn a_record_header_frames_what_fits_its_slot() {
        assert!(frames((64, 8192), 40));
        assert!(frames((56, 8192), 40));
        assert!(
            frames((4096, 8192), 40),
            "a document that shrank in its slot"
        );
        assert!(!frames((52, 8192), 40), "too small for header and document");
        assert!(!frames((58, 8192), 40), "not a size MMAPv1 allocates");
        assert!(!frames((32 << 20, 8192), 40), "larger than any record");
        assert!(!frames((64, -1), 40));
        assert!(!frames((-64, 8192), 40));
    }

    #[test]
    fn parses_a_header_and_refuses_noise() {
        let mut b = vec![0u8; 200];
        b[..4].copy_from_slice(EXTENT_MAGIC);
        b[8..12].copy_from_slice(&8192i32.to_le_bytes());
        b[28..42].copy_from_slice(b"shop.customers");
        b[156..160].copy_from_slice(&65536i32.to_le_bytes());
        b[12..28].copy_from_slice(
            &[[1i32, 4096], [-1, 0]]
                .concat()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        );
        let h = parse_extent_header(&b).unwrap();
        assert_eq!((h.file_ofs, h.len, h.ns), (8192, 65536, "shop.customers"));
        assert_eq!(h.chain, (Some((1, 4096)), None));
        let mut noise = b.clone();
        noise[28] = b'\n';
        assert!(parse_extent_header(&noise).is_none());
        assert!(parse_extent_header(&b[..100]).is_none());
        assert_eq!(find_extent_headers(&b, 1).len(), 1);
        assert_eq!(find_extent_headers(&b, 0).len(), 0);
    }
}
