//! The MMAPv1 structures that tie documents to collections on disk.
//!
//! A data file (`db.0`, `db.1`...) is a sequence of extents. Each extent header starts
//! with the magic `DCBA` and carries its own offset in the file and, as text, the
//! namespace (`db.collection`) of the records it holds; each record has a 16-byte header
//! (`lengthWithHeaders`, `extentOfs`, `nextOfs`, `prevOfs`) whose `extentOfs` points back
//! to its extent. Pure functions over bytes, total on any input.

use memchr::memmem;

/// The extent header's magic number 0x41424344, as stored (little-endian).
pub const EXTENT_MAGIC: &[u8; 4] = b"DCBA";
/// Bytes of an extent header, before the first record.
pub const EXTENT_HEADER_LEN: usize = 176;
/// Bytes of a record header, before the document.
pub const RECORD_HEADER_LEN: usize = 16;

/// A parsed extent header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentHeader<'a> {
    /// The extent's offset within its data file (`myLoc.ofs`).
    pub file_ofs: i32,
    /// Length of the extent, header included.
    pub len: u32,
    /// The namespace, `db.collection`.
    pub ns: &'a str,
}

fn i32_at(b: &[u8], at: usize) -> Option<i32> {
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
        .then_some(ExtentHeader { file_ofs, len, ns })
}

/// Extent headers starting before `limit` in `buf`, with their offsets.
pub fn find_extent_headers(buf: &[u8], limit: usize) -> Vec<(usize, ExtentHeader<'_>)> {
    memmem::find_iter(buf, EXTENT_MAGIC)
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

/// Whether a record header `(lengthWithHeaders, extentOfs)` frames a document of
/// `doc_len` bytes: the slot holds the header and the document, and is no larger than
/// MMAPv1's allocation rounds it up to (a power of two, twice the size under the old
/// padding factor; whole MiB past 4 MiB), and the extent offset can be one. Garbage in
/// front of a BSON-looking run of bytes almost never agrees like this.
pub fn frames(record: (i32, i32), doc_len: usize) -> bool {
    let (slot, extent_ofs) = record;
    let Ok(slot) = usize::try_from(slot) else {
        return false;
    };
    let needed = RECORD_HEADER_LEN + doc_len;
    let most = (2 * needed).max(needed + (1 << 20) * usize::from(needed > 4 << 20));
    (needed..=most).contains(&slot) && extent_ofs >= 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_header_frames_what_fits_its_slot() {
        assert!(frames((64, 8192), 40));
        assert!(frames((56, 8192), 40));
        assert!(!frames((55, 8192), 40), "too small for header and document");
        assert!(
            !frames((4096, 8192), 40),
            "far larger than any allocation of it"
        );
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
        let h = parse_extent_header(&b).unwrap();
        assert_eq!((h.file_ofs, h.len, h.ns), (8192, 65536, "shop.customers"));
        let mut noise = b.clone();
        noise[28] = b'\n';
        assert!(parse_extent_header(&noise).is_none());
        assert!(parse_extent_header(&b[..100]).is_none());
        assert_eq!(find_extent_headers(&b, 1).len(), 1);
        assert_eq!(find_extent_headers(&b, 0).len(), 0);
    }
}
