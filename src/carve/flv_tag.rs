//! FLV tag headers: the one parser that both the tag-chain walker ([`super::flv`]) and
//! the fragment finder ([`super::fragments`]) read tags with, so that they agree on
//! what a tag is.

use super::ByteSource;

/// Length of a tag header: type, data size, timestamp, extended timestamp, stream id.
pub(crate) const TAG_HEADER_LEN: u64 = 11;

/// A tag header, as far as the carver needs it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tag {
    pub(crate) kind: u8,
    pub(crate) size: u32,
    pub(crate) ts: u32,
    /// First data byte: codec information for audio and video tags.
    pub(crate) codec: u8,
}

impl Tag {
    pub(crate) fn total_len(&self) -> u64 {
        TAG_HEADER_LEN + self.size as u64 + 4
    }
}

/// Parses an 11-byte tag header plus the first data byte.
pub(crate) fn parse_tag_header(h: &[u8; 12]) -> Option<Tag> {
    let kind = h[0];
    if !matches!(kind, 8 | 9 | 18) {
        return None;
    }
    let size = u32::from_be_bytes([0, h[1], h[2], h[3]]);
    let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
    if h[8..11] != [0, 0, 0] || (kind != 18 && size == 0) {
        return None;
    }
    Some(Tag {
        kind,
        size,
        ts,
        codec: h[11],
    })
}

/// Reads the tag header at `pos` (and the first data byte), without its end.
pub(crate) fn tag_header_at<S: ByteSource + ?Sized>(src: &S, pos: u64) -> Option<Tag> {
    let mut h = [0u8; 12];
    if !src.read_at(pos, &mut h) {
        return None;
    }
    parse_tag_header(&h)
}

/// Reads and fully checks the tag at `pos`: header sane and PreviousTagSize matching.
pub(crate) fn tag_at<S: ByteSource + ?Sized>(src: &S, pos: u64) -> Option<Tag> {
    let tag = tag_header_at(src, pos)?;
    let mut pts = [0u8; 4];
    if !src.read_at(pos + TAG_HEADER_LEN + tag.size as u64, &mut pts) {
        return None;
    }
    (u32::from_be_bytes(pts) == TAG_HEADER_LEN as u32 + tag.size).then_some(tag)
}
