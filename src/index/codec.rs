//! A document's index entry in postcard's encoding, written and read by hand: the
//! same bytes serde and postcard make of a [`DocEntry`], in less time. Alone (the
//! `index_entries` bench) serde's path takes 45 ns to encode an entry and 68 ns to
//! decode one, this codec 27 and 52 ns; in the scan's profiles serde's path cost
//! more (about 150 and 125 ns): a third of a second of both cores for two million
//! documents while the index is begun, and past one scan segment each pass of
//! classification over the index file is bound by its decoding thread. A property
//! test holds the encoder to postcard's bytes and the decoder to postcard's verdict
//! on damaged bytes, and the `index_load` fuzz invariant compares both decoders on
//! any bytes.
//!
//! postcard's rules used here: unsigned integers as LEB128 varints (at most 5 bytes
//! for 32 bits, 10 for 64, the last byte within range), signed ones zig-zagged first,
//! `bool` and `u8` as one byte, an `Option` as a 0 or 1 byte before its value, bytes
//! as a varint length before them, struct and tuple fields in order.

use super::{DocEntry, DocId, WtRef};
use crate::carve::bson::Doubts;

/// Why bytes are not an entry: what postcard would have refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("undecodable document entry: {0}")]
pub struct Undecodable(&'static str);

/// Appends the encoding of `d` to `out`.
pub fn encode(d: &DocEntry, out: &mut Vec<u8>) {
    varint(out, d.source.into());
    varint(out, d.offset);
    varint(out, d.len.into());
    out.push(u8::from(d.deleted));
    varint(out, d.hash);
    varint(out, d.id.len() as u64);
    out.extend_from_slice(&d.id);
    varint(out, d.shape.into());
    option(out, d.ns_header_ofs, |out, ofs| varint(out, zigzag(ofs)));
    option(out, d.record_links, |out, (next, prev)| {
        varint(out, zigzag(next));
        varint(out, zigzag(prev));
    });
    varint(out, d.json_len.into());
    varint(out, d.pretty_len.into());
    option(out, d.wt, |out, wt| {
        varint(out, wt.page.into());
        varint(out, zigzag64(wt.record));
    });
    out.push(d.doubts.bits());
}

/// Decodes the entry at the start of `bytes`; returns it and the bytes after it.
#[inline]
pub fn decode(bytes: &[u8]) -> Result<(DocEntry, &[u8]), Undecodable> {
    let mut r = Reader { bytes };
    let d = DocEntry {
        source: r.u32()?,
        offset: r.u64()?,
        len: r.u32()?,
        deleted: r.bool()?,
        hash: r.u64()?,
        id: r.id()?,
        shape: r.u32()?,
        ns_header_ofs: r.option(Reader::i32)?,
        record_links: r.option(|r| Ok((r.i32()?, r.i32()?)))?,
        json_len: r.u32()?,
        pretty_len: r.u32()?,
        wt: r.option(|r| {
            let page = r.u32()?;
            Ok(WtRef {
                page,
                record: r.i64()?,
            })
        })?,
        doubts: Doubts::from_bits(r.byte()?),
    };
    Ok((d, r.bytes))
}

/// Decodes a whole documents section: postcard's encoding of the list (its length,
/// then each entry). Like postcard, it ignores bytes after the last entry (the
/// section's checksum covers them).
pub fn decode_list(bytes: &[u8]) -> Result<Vec<DocEntry>, Undecodable> {
    let mut r = Reader { bytes };
    let count = usize::try_from(r.u64()?).unwrap_or(usize::MAX);
    // A damaged count must not size anything: every entry takes some bytes.
    let mut docs = Vec::with_capacity(count.min(r.bytes.len() / MIN_ENTRY));
    let mut rest = r.bytes;
    for _ in 0..count {
        let (d, after) = decode(rest)?;
        docs.push(d);
        rest = after;
    }
    Ok(docs)
}

/// The fewest bytes an entry takes: each of its 13 fields at least one.
const MIN_ENTRY: usize = 13;

/// Appends `v` as a varint.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A 32-bit signed integer zig-zagged: small magnitudes make short varints.
fn zigzag(v: i32) -> u64 {
    u64::from((v << 1 ^ v >> 31) as u32)
}

/// [`zigzag`] for 64 bits.
fn zigzag64(v: i64) -> u64 {
    (v << 1 ^ v >> 63) as u64
}

/// Appends an `Option`: its tag, then its value written by `some`.
fn option<T>(out: &mut Vec<u8>, v: Option<T>, some: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            some(out, v);
        }
    }
}

/// The bytes not decoded yet.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl Reader<'_> {
    #[inline]
    fn byte(&mut self) -> Result<u8, Undecodable> {
        let (&b, rest) = self.bytes.split_first().ok_or(Undecodable("too short"))?;
        self.bytes = rest;
        Ok(b)
    }

    /// A varint of at most `max` bytes, whose last byte is at most `last`.
    #[inline]
    fn varint(&mut self, max: u32, last: u8) -> Result<u64, Undecodable> {
        let mut v = 0u64;
        for i in 0..max {
            let b = self.byte()?;
            v |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                return match i == max - 1 && b > last {
                    true => Err(Undecodable("varint out of range")),
                    false => Ok(v),
                };
            }
        }
        Err(Undecodable("varint too long"))
    }

    #[inline]
    fn u32(&mut self) -> Result<u32, Undecodable> {
        // Within range by the last byte's limit (4 bits in the fifth byte).
        self.varint(5, 0x0F).map(|v| v as u32)
    }

    #[inline]
    fn u64(&mut self) -> Result<u64, Undecodable> {
        self.varint(10, 0x01)
    }

    #[inline]
    fn i32(&mut self) -> Result<i32, Undecodable> {
        let v = self.u32()?;
        Ok((v >> 1) as i32 ^ -((v & 1) as i32))
    }

    #[inline]
    fn i64(&mut self) -> Result<i64, Undecodable> {
        let v = self.u64()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    #[inline]
    fn bool(&mut self) -> Result<bool, Undecodable> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Undecodable("not a bool")),
        }
    }

    #[inline]
    fn option<T>(
        &mut self,
        some: impl FnOnce(&mut Self) -> Result<T, Undecodable>,
    ) -> Result<Option<T>, Undecodable> {
        match self.byte()? {
            0 => Ok(None),
            1 => some(self).map(Some),
            _ => Err(Undecodable("not an option tag")),
        }
    }

    #[inline]
    fn id(&mut self) -> Result<DocId, Undecodable> {
        let len = self.u64()?;
        let len = usize::try_from(len).map_err(|_| Undecodable("too short"))?;
        if len > self.bytes.len() {
            return Err(Undecodable("too short"));
        }
        let (id, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(DocId::from_slice(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    prop_compose! {
        fn entry()(
            (source, offset, len, deleted, hash) in (any::<u32>(), any::<u64>(), any::<u32>(), any::<bool>(), any::<u64>()),
            id in prop::collection::vec(any::<u8>(), 0..70),
            (shape, ns_header_ofs, record_links) in (any::<u32>(), any::<Option<i32>>(), any::<Option<(i32, i32)>>()),
            (json_len, pretty_len, wt, doubts) in (any::<u32>(), any::<u32>(), any::<Option<(u32, i64)>>(), any::<u8>()),
        ) -> DocEntry {
            DocEntry {
                source, offset, len, deleted, hash,
                id: DocId::from_vec(id),
                shape, ns_header_ofs, record_links, json_len, pretty_len,
                wt: wt.map(|(page, record)| WtRef { page, record }),
                doubts: Doubts::from_bits(doubts),
            }
        }
    }

    /// A byte, often one at an edge of postcard's rules (tags, varint limits).
    fn edge_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            prop::sample::select(vec![0u8, 1, 2, 0x01, 0x0F, 0x10, 0x7F, 0x80, 0xFF]),
            any::<u8>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// The bytes are postcard's, and read back as the entry, the rest untouched.
        #[test]
        fn writes_postcards_bytes_and_reads_them_back(d in entry(), rest in prop::collection::vec(any::<u8>(), 0..4)) {
            let mut mine = Vec::new();
            encode(&d, &mut mine);
            prop_assert_eq!(&mine, &postcard::to_allocvec(&d).unwrap());
            mine.extend_from_slice(&rest);
            let (back, left) = decode(&mine).unwrap();
            prop_assert_eq!(back, d);
            prop_assert_eq!(left, &rest[..]);
        }

        /// A list reads as postcard reads it, whole or cut short.
        #[test]
        fn reads_a_list_as_postcard_does(docs in prop::collection::vec(entry(), 0..20), cut in any::<prop::sample::Index>()) {
            let mut bytes = postcard::to_allocvec(&docs).unwrap();
            prop_assert_eq!(decode_list(&bytes), Ok(docs));
            bytes.truncate(cut.index(bytes.len()));
            let theirs = postcard::from_bytes::<Vec<DocEntry>>(&bytes).ok();
            prop_assert_eq!(decode_list(&bytes).ok(), theirs);
        }

        /// Integers of every length read back as postcard wrote them.
        #[test]
        fn reads_integers_of_every_length(v in any::<u64>(), bits in 0u32..=64) {
            let v = v.checked_shr(64 - bits).unwrap_or(0);
            let bytes = postcard::to_allocvec(&v).unwrap();
            prop_assert_eq!(Reader { bytes: &bytes }.u64(), Ok(v));
            let small = v as u32;
            let bytes = postcard::to_allocvec(&small).unwrap();
            prop_assert_eq!(Reader { bytes: &bytes }.u32(), Ok(small));
        }

        /// Damaged bytes: the same verdict as postcard's, the same entry when accepted.
        #[test]
        fn reads_any_bytes_as_postcard_does(d in entry(), flips in prop::collection::vec((any::<prop::sample::Index>(), edge_byte()), 1..4), cut in prop::option::weighted(0.2, any::<prop::sample::Index>())) {
            let mut bytes = postcard::to_allocvec(&d).unwrap();
            for (at, v) in flips {
                let at = at.index(bytes.len());
                bytes[at] = v;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            let theirs = postcard::take_from_bytes::<DocEntry>(&bytes).ok();
            prop_assert_eq!(decode(&bytes).ok(), theirs);
        }
    }
}
