//! BSON documents: find candidates in raw bytes and validate them completely.
//!
//! A candidate is a plausible 4-byte length followed, in the default mode, by the
//! element `<type> "_id" 0x00` that MongoDB writes first in every stored document: a
//! cheap anchor found with `memchr`. `--bson-any` tries every offset instead. A
//! candidate becomes a document only after [`validate`] walked every element, nested
//! documents, arrays and code-with-scope included, within [`MAX_DOC_LEN`] and
//! [`MAX_DEPTH`]. Plausibility checks that byte-flipped garbage tends to fail (old
//! ObjectId times, duplicate keys, odd array keys, unknown regex flags) never make a
//! document invalid: they are [`Doubts`], which the scan holds against a candidate that
//! no storage structure frames, never against a framed one (mongod stores all of these).
//!
//! MMAPv1 marks a deleted record by overwriting the first four bytes of the document
//! (its length) with `EE EE EE EE`; [`deleted_len`] finds such a document's end by
//! walking its elements, so it can be recovered as a deleted document.
//!
//! Everything here is pure and total: no input panics, loops without progress, or
//! allocates more than the document it looks at.

use super::search;
use memchr::memmem;

/// A document's `_id` as the index keeps it: held inline up to 16 bytes (an ObjectId
/// with its type byte is 13), so millions of documents do not cost an allocation each.
/// Stored as the byte list a `Vec<u8>` would be.
pub type DocId = smallvec::SmallVec<[u8; 16]>;

/// A document's top-level field names, inline for the usual few.
pub type Fields<'a> = smallvec::SmallVec<[&'a str; 16]>;

/// MongoDB's limit on a stored document (16 MiB).
pub const MAX_DOC_LEN: usize = 16 << 20;
/// Deepest nesting accepted (mongod refuses deeper documents).
pub const MAX_DEPTH: usize = 200;
/// What MMAPv1 writes over the length of a deleted record.
pub const DELETED_MARK: [u8; 4] = [0xEE; 4];
/// Smallest document: length and terminator.
const MIN_DOC_LEN: usize = 5;
/// ObjectIds are trusted between 2009-01-01 (MongoDB's first release) and 2100.
const OID_TIME_RANGE: std::ops::Range<u32> = 1_230_768_000..4_102_444_800;

/// A position worth validating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Offset of the 4-byte length (or of the deleted mark).
    pub offset: usize,
    /// The length is the MMAPv1 deleted mark: the document must be walked to its end.
    pub deleted: bool,
}

/// Why bytes are not a document: its structure does not hold.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Lengths, types, terminators or UTF-8 do not hold (what the parser said).
    #[error("malformed: {0}")]
    Malformed(&'static str),
    /// Deeper than mongod nests documents.
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// What a plausibility rule dislikes about a structurally valid document: a set of
/// [`Doubt`]s. Real databases hold every one of them, so they only count against a
/// candidate that no storage structure frames.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Doubts(u8);

/// One plausibility rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Doubt {
    /// An ObjectId (anywhere in the document) dated before 2009 or after 2100.
    ObjectIdTime,
    /// The same key twice in one (sub-)document.
    DuplicateKey,
    /// An array whose keys are not "0", "1", ...
    ArrayKeys,
    /// Regular expression flags other than i, l, m, s, u, x.
    RegexFlags,
}

impl Doubt {
    /// Every rule, in the order reports list them.
    pub const ALL: [Doubt; 4] = [
        Doubt::ObjectIdTime,
        Doubt::DuplicateKey,
        Doubt::ArrayKeys,
        Doubt::RegexFlags,
    ];

    /// The word reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Doubt::ObjectIdTime => "objectid_time",
            Doubt::DuplicateKey => "duplicate_key",
            Doubt::ArrayKeys => "array_keys",
            Doubt::RegexFlags => "regex_flags",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

impl Doubts {
    /// Adds a doubt.
    pub fn add(&mut self, d: Doubt) {
        self.0 |= d.bit();
    }

    /// True when nothing was doubted.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The doubts held, in [`Doubt::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Doubt> {
        Doubt::ALL
            .into_iter()
            .filter(move |d| self.0 & d.bit() != 0)
    }

    /// The byte the index keeps (see `index::codec`).
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The doubts of a byte the index kept.
    pub fn from_bits(bits: u8) -> Doubts {
        Doubts(bits)
    }
}

/// What the scan keeps of a valid document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary<'a> {
    /// The `_id` value: its type byte followed by its value bytes (empty without `_id`).
    pub id: DocId,
    /// Top-level field names, in document order.
    pub fields: Fields<'a>,
    /// What plausibility rules dislike about it.
    pub doubts: Doubts,
}

fn is_value_type(t: u8) -> bool {
    matches!(t, 0x01..=0x13 | 0x7F | 0xFF)
}

fn le_i32(b: &[u8], at: usize) -> Option<i32> {
    b.get(at..at.checked_add(4)?)
        .map(|s| i32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// The declared length at `at`, if it is a plausible document length.
fn plausible_len(buf: &[u8], at: usize) -> Option<usize> {
    let len = usize::try_from(le_i32(buf, at)?).ok()?;
    (MIN_DOC_LEN..=MAX_DOC_LEN).contains(&len).then_some(len)
}

/// Appends to `out` the candidates starting before `limit` in `buf` (bytes past `limit`
/// are overlap with the next chunk). With `any`, every offset with a plausible length and
/// element type is a candidate; otherwise only documents whose first element is `_id`.
pub fn find_candidates(buf: &[u8], limit: usize, any: bool, out: &mut Vec<Candidate>) {
    let limit = limit.min(buf.len());
    if any {
        find_any(buf, limit, out);
        return;
    }
    static ID: search::Lazy = search::Lazy::new(|| search::finder(ID_KEY));
    find_candidates_at(buf, limit, ID.find_iter(buf), out);
}

/// The `_id` key a document's first element has: what candidates are found by.
pub const ID_KEY: &[u8] = b"_id\0";

/// As [`find_candidates`] without `any`, given where [`ID_KEY`] occurs in `buf`
/// (ascending): the scan finds every format's magic numbers in one pass.
pub fn find_candidates_at(
    buf: &[u8],
    limit: usize,
    hits: impl IntoIterator<Item = usize>,
    out: &mut Vec<Candidate>,
) {
    let limit = limit.min(buf.len());
    for p in hits {
        let Some(start) = p.checked_sub(5) else {
            continue;
        };
        if start >= limit {
            break;
        }
        if !is_value_type(buf[p - 1]) {
            continue;
        }
        if buf[start..].starts_with(&DELETED_MARK) {
            out.push(Candidate {
                offset: start,
                deleted: true,
            });
        } else if let Some(len) = plausible_len(buf, start)
            && buf.get(start + len - 1).is_none_or(|&b| b == 0)
            // One the buffer holds whole is validated next anyway (whatever validates
            // fits), so the elements are only looked at first for one reaching past.
            && (start + len <= buf.len() || elements_fit(&buf[start..], len))
        {
            out.push(Candidate {
                offset: start,
                deleted: false,
            });
        }
    }
}

/// Whether the top-level elements of a candidate declared `declared` bytes long, as far
/// as `b` holds them (the buffer may end first), are well formed: known types, keys
/// that are UTF-8 cstrings, values that end inside the document. Cheap (no allocation,
/// no nesting): random bytes fail within a few elements, so a candidate that reaches
/// past the buffer is not read whole from the source for nothing.
pub fn elements_fit(b: &[u8], declared: usize) -> bool {
    let end = declared.min(b.len());
    let cut = b.len() < declared;
    let mut at = 4;
    while at < end {
        let t = b[at];
        if t == 0 {
            return at + 1 == declared;
        }
        if !is_value_type(t) {
            return false;
        }
        let Some(nul) = cstring_len(&b[at + 1..end]) else {
            return cut;
        };
        if utf8(&b[at + 1..at + 1 + nul]).is_none() {
            return false;
        }
        let value = at + 2 + nul;
        match value_len(&b[..end], t, value) {
            Some(n) if value + n < declared => at = value + n,
            Some(_) => return false,
            None => return cut,
        }
    }
    true
}

/// `--bson-any`: every offset before `limit` whose bytes can start a document. A length
/// up to 16 MiB has a zero fourth byte, so only the zeros `memchr` finds are looked at
/// (and the deleted marks `memmem` finds), not every byte.
fn find_any(buf: &[u8], limit: usize, out: &mut Vec<Candidate>) {
    let first = out.len();
    let zeros = buf.get(3..).map_or(&[][..], |b| &b[..b.len().min(limit)]);
    for at in memchr::memchr_iter(0, zeros).filter(|&at| document_starts(buf, at)) {
        out.push(Candidate {
            offset: at,
            deleted: false,
        });
    }
    for at in memmem::find_iter(buf, &DELETED_MARK).take_while(|&at| at < limit) {
        if buf.get(at + 4).is_some_and(|&t| is_value_type(t)) {
            out.push(Candidate {
                offset: at,
                deleted: true,
            });
        }
    }
    out[first..].sort_unstable_by_key(|c| c.offset);
}

/// A live document can start at `at`: its length fits, its first element has a value
/// type (or it is the empty document) and its elements fit inside it.
fn document_starts(buf: &[u8], at: usize) -> bool {
    let Some(&t) = buf.get(at + 4) else {
        return false;
    };
    plausible_len(buf, at).is_some_and(|len| {
        (is_value_type(t) || (len == MIN_DOC_LEN && t == 0))
            && buf.get(at + len - 1).is_none_or(|&b| b == 0)
            && elements_fit(&buf[at..], len)
    })
}

/// Where the zero that ends the cstring at the start of `bytes` is. Keys are short:
/// eight bytes at a time find most zeros in one step, before `memchr` would have set
/// up its search (a byte at a time, this loop was the hottest of the scan's JSON
/// measuring).
#[inline]
pub(crate) fn cstring_len(bytes: &[u8]) -> Option<usize> {
    const SHORT: usize = 24;
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while at < SHORT {
        let Some(word) = bytes[at..].first_chunk::<8>() else {
            return bytes[at..].iter().position(|&b| b == 0).map(|n| at + n);
        };
        let x = u64::from_le_bytes(*word);
        // The lowest bit set marks the first zero byte exactly (bits above it may not).
        let zero = x.wrapping_sub(ONES) & !x & HIGH;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr::memchr(0, &bytes[at..]).map(|n| n + at)
}

/// `bytes` as text when they are UTF-8. ASCII, what keys nearly always are, is told
/// inline; anything else goes to the validator.
#[inline]
pub(crate) fn utf8(bytes: &[u8]) -> Option<&str> {
    if bytes.is_ascii() {
        // SAFETY: ASCII is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        simdutf8::basic::from_utf8(bytes).ok()
    }
}

/// The declared length of a live candidate at the start of `bytes`.
pub fn declared_len(bytes: &[u8]) -> Option<usize> {
    plausible_len(bytes, 0)
}

/// Size in bytes of the value of an element of type `t` starting at `at`, following
/// the BSON spec; `None` when it cannot be determined within `b`.
pub(crate) fn value_len(b: &[u8], t: u8, at: usize) -> Option<usize> {
    let cstring = |from: usize| memchr::memchr(0, b.get(from..)?).map(|n| n + 1);
    let prefixed = |extra: usize| {
        let n = usize::try_from(le_i32(b, at)?).ok()?;
        n.checked_add(extra)
    };
    Some(match t {
        0x01 | 0x09 | 0x11 | 0x12 => 8,
        0x02 | 0x0D | 0x0E => prefixed(4)?,
        0x03 | 0x04 | 0x0F => prefixed(0)?,
        0x05 => prefixed(5)?,
        0x06 | 0x0A | 0x7F | 0xFF => 0,
        0x07 => 12,
        0x08 => 1,
        0x0B => {
            let pattern = cstring(at)?;
            pattern + cstring(at + pattern)?
        }
        0x0C => prefixed(4 + 12)?,
        0x10 => 4,
        0x13 => 16,
        _ => return None,
    })
}

/// The length of a deleted document whose first four bytes were overwritten: its
/// top-level elements are walked to the terminating zero, never past `bound` bytes.
pub fn deleted_len(bytes: &[u8], bound: usize) -> Option<usize> {
    let b = &bytes[..bytes.len().min(bound).min(MAX_DOC_LEN)];
    let mut at = 4;
    loop {
        let t = *b.get(at)?;
        if t == 0 {
            return Some(at + 1);
        }
        let key_end = at + 1 + cstring_len(b.get(at + 1..)?)?;
        let value = value_len(b, t, key_end + 1)?;
        at = key_end.checked_add(1 + value).filter(|&e| e <= b.len())?;
    }
}

/// Checks that `bytes` is exactly one structurally valid BSON document and summarizes
/// it, with what the plausibility rules doubt about it.
///
/// Accepts exactly what the `bson` crate's raw parser accepts when every element of
/// every nested document is read (a property test holds the two together on real and
/// damaged documents), in one walk over the bytes: the scan validates every candidate,
/// and the parser's per-element results and error strings cost more than the checks.
pub fn validate(bytes: &[u8]) -> Result<Summary<'_>, Invalid> {
    validate_visiting(bytes, &mut ())
}

/// Follows a walk of [`validate_visiting`] element by element: what renders a document
/// as JSON, or counts the bytes it would render, in the walk that validates it (the
/// scan once walked every document twice, to validate it and to measure its JSON).
pub(crate) trait Visit {
    /// Whether the walk lists the top-level keys and holds every key against the
    /// plausibility rules, as the scan needs; rendering a document the scan kept needs
    /// neither (then the summary has no fields and no doubts about keys), and serving
    /// JSON at half its speed was their price.
    const KEYS: bool = true;
    /// A document (`array`: an array) begins.
    fn open(&mut self, _array: bool) {}
    /// Element `index` begins; `key` is `None` in an array.
    fn element(&mut self, _index: usize, _key: Option<&str>) {}
    /// The value of the current element, of type `t`, when it is no document, array or
    /// code with scope; already checked.
    fn leaf(&mut self, _t: u8, _value: &[u8]) -> Result<(), Invalid> {
        Ok(())
    }
    /// A code-with-scope value begins with its `code`; its scope document follows.
    fn open_scope(&mut self, _code: &[u8]) {}
    /// The code-with-scope value ends.
    fn close_scope(&mut self) {}
    /// The document (or array) ends after `count` elements.
    fn close(&mut self, _array: bool, _count: usize) {}
}

/// Validates without following.
impl Visit for () {}

/// [`validate`], telling `visit` every element in order as it is checked. On error
/// `visit` has seen a part of the document.
pub(crate) fn validate_visiting<'a>(
    bytes: &'a [u8],
    visit: &mut impl Visit,
) -> Result<Summary<'a>, Invalid> {
    if bytes.len() > MAX_DOC_LEN {
        return Err(Invalid::Malformed("longer than 16 MiB"));
    }
    framed(bytes)?;
    let mut summary = Summary {
        id: DocId::new(),
        fields: Fields::new(),
        doubts: Doubts::default(),
    };
    let top = Kind::Top {
        fields: &mut summary.fields,
        id: &mut summary.id,
    };
    walk(bytes, (0, top), &mut summary.doubts, visit)?;
    Ok(summary)
}

/// Which document [`walk`] is in: the top level (whose keys and `_id` the summary
/// keeps), a nested document or an array.
enum Kind<'s, 'a> {
    Top {
        fields: &'s mut Fields<'a>,
        id: &'s mut DocId,
    },
    Nested,
    Array,
}

/// Shorthand for the one error a broken structure gives.
fn broken<T>(why: &'static str) -> Result<T, Invalid> {
    Err(Invalid::Malformed(why))
}

/// `doc` is as long as its length says, at least 5 bytes, and ends with a zero.
fn framed(doc: &[u8]) -> Result<(), Invalid> {
    if doc.len() < MIN_DOC_LEN || le_i32(doc, 0) != i32::try_from(doc.len()).ok() {
        return broken("length differs from the bytes");
    }
    match doc.last() {
        Some(0) => Ok(()),
        _ => broken("no terminating zero"),
    }
}

/// The UTF-8 cstring starting at `at`, and where the bytes after its zero start.
fn cstring(b: &[u8], at: usize) -> Result<(&str, usize), Invalid> {
    let rest = b.get(at..).unwrap_or_default();
    let Some(nul) = cstring_len(rest) else {
        return broken("cstring without its zero");
    };
    match utf8(&rest[..nul]) {
        Some(s) => Ok((s, at + nul + 1)),
        None => broken("cstring not UTF-8"),
    }
}

/// Walks the elements of `doc` (already [`framed`]), nested documents included, noting
/// what the plausibility rules doubt and telling `visit`.
fn walk<'a, V: Visit>(
    doc: &'a [u8],
    (depth, mut kind): (usize, Kind<'_, 'a>),
    doubts: &mut Doubts,
    visit: &mut V,
) -> Result<(), Invalid> {
    if depth > MAX_DEPTH {
        return Err(Invalid::TooDeep);
    }
    let array = matches!(kind, Kind::Array);
    visit.open(array);
    let mut nested_keys = Fields::new();
    // A linear search for the few keys of a usual document; a set beyond that, so a
    // hostile document with a million keys costs linear, not quadratic, time.
    let mut seen: Option<std::collections::HashSet<&str>> = None;
    let last = doc.len() - 1;
    let mut at = 4;
    let mut count = 0;
    while at != last {
        if at > last {
            return broken("elements run past the end");
        }
        let (key, v) = cstring(doc, at + 1)?;
        let t = doc[at];
        let keys = match &mut kind {
            _ if !V::KEYS => None,
            Kind::Array => {
                if key.parse::<usize>().ok() != Some(count)
                    || (key.len() > 1 && key.starts_with('0'))
                {
                    doubts.add(Doubt::ArrayKeys);
                }
                None
            }
            Kind::Top { fields, .. } => Some(&mut **fields),
            Kind::Nested => Some(&mut nested_keys),
        };
        if let Some(keys) = keys {
            let duplicate = match &mut seen {
                Some(set) => !set.insert(key),
                None => keys.contains(&key),
            };
            if duplicate {
                doubts.add(Doubt::DuplicateKey);
            }
            keys.push(key);
            if seen.is_none() && keys.len() >= 16 {
                seen = Some(keys.iter().copied().collect());
            }
        }
        visit.element(count, (!array).then_some(key));
        let size = value(doc, (t, v), depth, doubts, visit)?;
        if let Kind::Top { id, .. } = &mut kind
            && count == 0
            && key == "_id"
        {
            id.push(t);
            id.extend_from_slice(&doc[v..v + size]);
        }
        at = v + size;
        count += 1;
    }
    visit.close(array, count);
    Ok(())
}

/// The size of the value of type `t` at `v` in `doc`, once it is checked: inside the
/// document, strings and cstrings UTF-8 and terminated, booleans 0 or 1, nested
/// documents walked; `visit` is told it.
fn value(
    doc: &[u8],
    (t, v): (u8, usize),
    depth: usize,
    doubts: &mut Doubts,
    visit: &mut impl Visit,
) -> Result<usize, Invalid> {
    let rest = doc.get(v..).unwrap_or_default();
    let size = match t {
        0x01 | 0x09 | 0x11 | 0x12 => 8,
        0x10 => 4,
        0x13 => 16,
        0x06 | 0x0A | 0x7F | 0xFF => 0,
        0x08 => 1,
        0x07 => 12,
        0x02 | 0x0D | 0x0E => string(rest)?,
        0x0C => string(rest)? + 12,
        0x03 | 0x04 => sized(rest, MIN_DOC_LEN)?,
        0x05 => sized(rest, 0)?
            .checked_add(5)
            .ok_or(Invalid::Malformed("binary too long"))?,
        0x0F => sized(rest, 0)?,
        0x0B => {
            let (_, options) = cstring(rest, 0)?;
            let (flags, end) = cstring(rest, options)?;
            // The BSON spec allows only these flags (stored sorted; drivers write no
            // other): anything else is likely garbage that happens to be well framed.
            if !flags.bytes().all(|f| b"ilmsux".contains(&f)) {
                doubts.add(Doubt::RegexFlags);
            }
            end
        }
        _ => return broken("unknown element type"),
    };
    let Some(bytes) = rest.get(..size) else {
        return broken("value runs past the end");
    };
    match t {
        0x08 if bytes[0] > 1 => return broken("boolean neither 0 nor 1"),
        0x07 if !OID_TIME_RANGE.contains(&u32::from_be_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3],
        ])) =>
        {
            doubts.add(Doubt::ObjectIdTime)
        }
        0x05 => binary(bytes)?,
        _ => {}
    }
    match t {
        0x03 => walk(bytes, (depth + 1, Kind::Nested), doubts, visit)?,
        0x04 => walk(bytes, (depth + 1, Kind::Array), doubts, visit)?,
        0x0F => {
            let (code, scope) = code_with_scope(bytes)?;
            visit.open_scope(code);
            walk(scope, (depth + 1, Kind::Nested), doubts, visit)?;
            visit.close_scope();
        }
        _ => visit.leaf(t, bytes)?,
    }
    Ok(size)
}

/// The size of the length-prefixed UTF-8 string (with its zero) at the start of `b`.
fn string(b: &[u8]) -> Result<usize, Invalid> {
    let end = le_i32(b, 0)
        .and_then(|n| usize::try_from(n).ok())
        .map(|n| n + 4)
        .filter(|&end| (5..=b.len()).contains(&end));
    let Some(end) = end else {
        return broken("string length out of bounds");
    };
    if b[end - 1] != 0 {
        return broken("string without its zero");
    }
    match utf8(&b[4..end - 1]) {
        Some(_) => Ok(end),
        None => broken("string not UTF-8"),
    }
}

/// The non-negative length at the start of `b`, at least `min`; for a document (`min`
/// 5) its last byte must be zero.
fn sized(b: &[u8], min: usize) -> Result<usize, Invalid> {
    match le_i32(b, 0).and_then(|n| usize::try_from(n).ok()) {
        Some(n) if n >= min && (min == 0 || b.get(n - 1) == Some(&0)) => Ok(n),
        _ => broken("length out of bounds"),
    }
}

/// The old binary subtype 2 repeats the data's length inside it.
fn binary(bytes: &[u8]) -> Result<(), Invalid> {
    let data = bytes.len() - 5;
    if bytes[4] != 0x02 {
        return Ok(());
    }
    match le_i32(bytes, 5) {
        Some(inner) if data >= 4 && i64::from(inner) + 4 == data as i64 => Ok(()),
        _ => broken("old binary's inner length differs"),
    }
}

/// The code (its text, without length or zero) and the scope document of a
/// code-with-scope value `bytes`, both checked but the scope's elements.
fn code_with_scope(bytes: &[u8]) -> Result<(&[u8], &[u8]), Invalid> {
    if bytes.len() < 4 + 5 + MIN_DOC_LEN {
        return broken("code with scope too short");
    }
    let code = string(&bytes[4..])?;
    let scope = &bytes[4 + code..];
    framed(scope)?;
    Ok((&bytes[8..4 + code - 1], scope))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{doc, oid::ObjectId};

    fn encode(d: &bson::Document) -> Vec<u8> {
        d.to_vec().unwrap()
    }

    fn sample() -> Vec<u8> {
        encode(&doc! {
            "_id": ObjectId::parse_str("5f1d7a0e2a3b4c5d6e7f8091").unwrap(),
            "name": "Zoë",
            "n": 3_i64,
            "tags": ["a", "b"],
            "sub": { "_id": 1, "x": 1.5 },
        })
    }

    /// `--bson-any`'s candidates as the plain loop over every offset finds them.
    fn every_offset(buf: &[u8], limit: usize) -> Vec<Candidate> {
        let mut out = Vec::new();
        for at in 0..limit.min(buf.len()) {
            let Some(&t) = buf.get(at + 4) else { break };
            if document_starts(buf, at) {
                out.push(Candidate {
                    offset: at,
                    deleted: false,
                });
            } else if buf[at..].starts_with(&DELETED_MARK) && is_value_type(t) {
                out.push(Candidate {
                    offset: at,
                    deleted: true,
                });
            }
        }
        out
    }

    #[test]
    fn any_mode_finds_what_every_offset_finds() {
        let mut buf: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let d = sample();
        for at in [0, 7, 1000, 50_000, 199_000] {
            buf[at..at + d.len().min(200_000 - at)]
                .copy_from_slice(&d[..d.len().min(200_000 - at)]);
        }
        buf[3000..3004].copy_from_slice(&DELETED_MARK);
        buf[3004] = 0x02;
        buf[9000..9020].fill(0);
        for limit in [200_000, 150_000, 10] {
            let mut fast = Vec::new();
            find_candidates(&buf, limit, true, &mut fast);
            assert_eq!(fast, every_offset(&buf, limit));
        }
        let mut fast = Vec::new();
        find_candidates(&buf, buf.len(), true, &mut fast);
        assert!(fast.iter().any(|c| c.offset == 1000 && !c.deleted));
        assert!(fast.iter().any(|c| c.offset == 3000 && c.deleted));
    }

    #[test]
    fn elements_fit_refuses_noise_and_keeps_documents() {
        let d = sample();
        assert!(elements_fit(&d, d.len()));
        assert!(
            elements_fit(&d[..20], d.len()),
            "cut by the buffer: no contradiction yet"
        );
        let mut bad_key = d.clone();
        bad_key[6] = 0xFF;
        assert!(!elements_fit(&bad_key, d.len()));
        assert!(
            !elements_fit(&d, d.len() - 3),
            "values run past the declared end"
        );
    }

    #[test]
    fn regex_flags_must_be_bson_flags() {
        // {"_id": 1, "r": /a+/options}, built by hand: the bson crate would check the flags.
        let re = |options: &str| {
            let mut d = vec![0, 0, 0, 0, 0x10, b'_', b'i', b'd', 0, 1, 0, 0, 0];
            d.extend_from_slice(b"\x0Br\0a+\0");
            d.extend_from_slice(options.as_bytes());
            d.extend_from_slice(&[0, 0]);
            let n = d.len() as i32;
            d[..4].copy_from_slice(&n.to_le_bytes());
            d
        };
        assert!(validate(&re("imx")).unwrap().doubts.is_empty());
        let doubts = |d: &[u8]| validate(d).unwrap().doubts.iter().collect::<Vec<_>>();
        assert_eq!(doubts(&re("q")), [Doubt::RegexFlags]);
        assert_eq!(doubts(&re("é")), [Doubt::RegexFlags]);
    }

    #[test]
    fn validates_and_summarizes() {
        let d = sample();
        let s = validate(&d).unwrap();
        assert_eq!(s.fields[..], ["_id", "name", "n", "tags", "sub"]);
        assert_eq!(s.id[0], 0x07);
        assert_eq!(&s.id[1..], &d[9..21]);
    }

    #[test]
    fn finds_documents_not_their_sub_documents_first() {
        let d = sample();
        let mut buf = vec![0xAB; 10];
        buf.extend_from_slice(&d);
        let mut found = Vec::new();
        find_candidates(&buf, buf.len(), false, &mut found);
        // The top-level document and its sub-document both match the anchor; the scan
        // drops hits inside accepted documents.
        assert_eq!(found[0].offset, 10);
        assert!(found.iter().all(|c| !c.deleted));
    }

    #[test]
    fn doubts_what_flipped_bytes_make_but_keeps_the_document() {
        let doubts = |d: &[u8]| validate(d).unwrap().doubts.iter().collect::<Vec<_>>();
        let mut dup = encode(&doc! { "_id": 1, "a": 1, "b": 2 });
        let b = dup.iter().rposition(|&c| c == b'b').unwrap();
        dup[b] = b'a';
        assert_eq!(doubts(&dup), [Doubt::DuplicateKey]);

        let mut arr = encode(&doc! { "_id": 1, "v": [1, 2] });
        let one = arr.iter().rposition(|&c| c == b'1').unwrap();
        arr[one] = b'7';
        assert_eq!(doubts(&arr), [Doubt::ArrayKeys]);

        // A sentinel ObjectId deep inside: structurally valid, only doubted.
        let old = encode(&doc! { "_id": 1, "a": { "b": [ObjectId::from_bytes([0; 12])] } });
        assert_eq!(doubts(&old), [Doubt::ObjectIdTime]);
        assert!(doubts(&sample()).is_empty());

        let mut bad_len = sample();
        bad_len[0] ^= 1;
        assert!(validate(&bad_len).is_err());
    }

    #[test]
    fn finds_duplicate_keys_in_wide_documents_too() {
        let mut d = bson::Document::new();
        for k in 0..40 {
            d.insert(format!("k{k:02}"), k);
        }
        let mut wide = encode(&d);
        assert!(validate(&wide).is_ok());
        let last = wide.iter().rposition(|&c| c == b'k').unwrap();
        wide[last + 1..last + 3].copy_from_slice(b"05");
        let doubts: Vec<Doubt> = validate(&wide).unwrap().doubts.iter().collect();
        assert_eq!(doubts, [Doubt::DuplicateKey]);
    }

    #[test]
    fn walks_a_deleted_record_to_its_end() {
        let d = sample();
        let mut marked = d.clone();
        marked[..4].copy_from_slice(&DELETED_MARK);
        marked.extend_from_slice(&[9; 40]);
        assert_eq!(deleted_len(&marked, marked.len()), Some(d.len()));
        assert_eq!(deleted_len(&marked, d.len() - 1), None);
        let mut found = Vec::new();
        find_candidates(&marked, marked.len(), false, &mut found);
        assert!(found[0].deleted);
    }

    /// What the `bson` crate's raw parser says of `bytes`, read element by element the
    /// way [`validate`] read them before it walked the bytes itself: its reference.
    fn parser_says(bytes: &[u8]) -> Result<Summary<'_>, Invalid> {
        use bson::RawDocument;
        use bson::raw::RawBsonRef;
        fn walk<'a>(
            doc: &'a RawDocument,
            depth: usize,
            top: Option<&mut Fields<'a>>,
            array: bool,
            doubts: &mut Doubts,
        ) -> Result<(), Invalid> {
            if depth > MAX_DEPTH {
                return Err(Invalid::TooDeep);
            }
            let bad = |_| Invalid::Malformed("parser");
            let mut keys = Vec::new();
            for (i, element) in doc.iter_elements().enumerate() {
                let element = element.map_err(bad)?;
                let key = element.key().as_str();
                if array {
                    if key.parse::<usize>().ok() != Some(i)
                        || (key.len() > 1 && key.starts_with('0'))
                    {
                        doubts.add(Doubt::ArrayKeys);
                    }
                } else {
                    if keys.contains(&key) {
                        doubts.add(Doubt::DuplicateKey);
                    }
                    keys.push(key);
                }
                match element.value().map_err(bad)? {
                    RawBsonRef::Document(d) => walk(d, depth + 1, None, false, doubts)?,
                    RawBsonRef::Array(a) => {
                        let d = RawDocument::from_bytes(a.as_bytes()).map_err(bad)?;
                        walk(d, depth + 1, None, true, doubts)?
                    }
                    RawBsonRef::JavaScriptCodeWithScope(c) => {
                        walk(c.scope, depth + 1, None, false, doubts)?
                    }
                    RawBsonRef::ObjectId(oid) => {
                        let [a, b, c, d, ..] = oid.bytes();
                        if !OID_TIME_RANGE.contains(&u32::from_be_bytes([a, b, c, d])) {
                            doubts.add(Doubt::ObjectIdTime);
                        }
                    }
                    RawBsonRef::RegularExpression(re)
                        if !re.options.as_str().bytes().all(|f| b"ilmsux".contains(&f)) =>
                    {
                        doubts.add(Doubt::RegexFlags);
                    }
                    _ => {}
                }
            }
            if let Some(fields) = top {
                fields.extend(keys);
            }
            Ok(())
        }
        if bytes.len() > MAX_DOC_LEN {
            return Err(Invalid::Malformed("parser"));
        }
        let doc = RawDocument::from_bytes(bytes).map_err(|_| Invalid::Malformed("parser"))?;
        let mut fields = Fields::new();
        let mut doubts = Doubts::default();
        walk(doc, 0, Some(&mut fields), false, &mut doubts)?;
        let id = match doc.iter_elements().next() {
            Some(Ok(first)) if first.key().as_str() == "_id" => {
                let mut id = DocId::from_slice(&[first.element_type() as u8]);
                id.extend_from_slice(&bytes[9..9 + first.size()]);
                id
            }
            _ => DocId::new(),
        };
        Ok(Summary { id, fields, doubts })
    }

    /// Documents to damage: real ones (pymongo's, from the fixtures) and, by hand, one
    /// of each type no driver writes any more (symbol, undefined, DBPointer, old binary,
    /// min and max keys), with booleans and nested arrays.
    fn seeds() -> [Vec<Vec<u8>>; 2] {
        [real_documents(), by_hand()]
    }

    fn real_documents() -> Vec<Vec<u8>> {
        let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bson/");
        let mut real = Vec::new();
        for file in ["loose.bin", "hostile.bin"] {
            let bytes = std::fs::read(format!("{fixtures}{file}")).unwrap();
            let mut found = Vec::new();
            find_candidates(&bytes, bytes.len(), false, &mut found);
            for c in found.iter().filter(|c| !c.deleted) {
                let len = declared_len(&bytes[c.offset..]).unwrap();
                let doc = &bytes[c.offset..(c.offset + len).min(bytes.len())];
                if parser_says(doc).is_ok() && real.len() < 600 {
                    real.push(doc.to_vec());
                }
            }
        }
        real
    }

    fn by_hand() -> Vec<Vec<u8>> {
        let element = |t: u8, value: &[u8]| {
            let mut d = vec![
                0, 0, 0, 0, 0x10, b'_', b'i', b'd', 0, 1, 0, 0, 0, t, b'v', 0,
            ];
            d.extend_from_slice(value);
            d.push(0);
            let n = d.len() as i32;
            d[..4].copy_from_slice(&n.to_le_bytes());
            d
        };
        vec![
            element(0x0E, b"\x04\0\0\0sym\0"),
            element(0x06, b""),
            element(0x7F, b""),
            element(0xFF, b""),
            element(
                0x0C,
                b"\x03\0\0\0ns\0\x65\x11\x22\x33\x44\x55\x66\x77\x88\x99\xAA\xBB",
            ),
            element(0x05, b"\x07\0\0\0\x02\x03\0\0\0abc"),
            element(0x08, b"\x01"),
            encode(
                &doc! { "_id": 1, "a": [[1, {"b": [true, false]}], "x"], "t": bson::Timestamp { time: 5, increment: 1 } },
            ),
            encode(
                &doc! { "_id": 1, "r": bson::Regex { pattern: "a".try_into().unwrap(), options: "i".try_into().unwrap() }, "s": "" },
            ),
            encode(
                &doc! { "_id": 1, "c": bson::Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope { code: "".into(), scope: doc! {} }) },
            ),
        ]
    }

    #[test]
    fn any_one_byte_of_hand_made_documents_changed_the_parser_agrees() {
        for seed in by_hand() {
            for at in 0..seed.len() {
                for byte in 0..=255 {
                    let mut d = seed.clone();
                    d[at] = byte;
                    let agree = match (validate(&d), parser_says(&d)) {
                        (Ok(ours), Ok(theirs)) => ours == theirs,
                        (Err(ours), Err(theirs)) => {
                            ours == theirs
                                || matches!(
                                    (ours, theirs),
                                    (Invalid::Malformed(_), Invalid::Malformed(_))
                                )
                        }
                        _ => false,
                    };
                    assert!(agree, "{d:?}");
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// The walk accepts what the parser accepts, with the same summary, however the
        /// bytes are damaged: bytes set or nudged by one, cut, the length made to fit.
        #[test]
        fn accepts_what_the_bson_parser_accepts(
            (kind, seed) in (0usize..2, proptest::prelude::any::<proptest::sample::Index>()),
            flips in proptest::collection::vec(
                (proptest::prelude::any::<proptest::sample::Index>(), 0u8..=255, proptest::prelude::any::<bool>()),
                0..4,
            ),
            cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
            fix_len in proptest::prelude::any::<bool>(),
        ) {
            thread_local!(static SEEDS: [Vec<Vec<u8>>; 2] = seeds());
            let mut d = SEEDS.with(|s| seed.get(&s[kind]).clone());
            for (at, byte, set) in flips {
                let b = at.get_mut(&mut d);
                *b = if set { byte } else { b.wrapping_add(byte % 3).wrapping_sub(1) };
            }
            if let Some(cut) = cut {
                d.truncate(cut.index(d.len()).max(1));
            }
            if fix_len && d.len() >= 4 {
                let n = d.len() as i32;
                d[..4].copy_from_slice(&n.to_le_bytes());
            }
            match (validate(&d), parser_says(&d)) {
                (Ok(ours), Ok(theirs)) => proptest::prop_assert_eq!(ours, theirs),
                (Err(Invalid::TooDeep), Err(Invalid::TooDeep)) => {}
                (Err(Invalid::Malformed(_)), Err(Invalid::Malformed(_))) => {}
                (ours, theirs) => proptest::prop_assert!(false, "{d:?}: we say {ours:?}, the parser {theirs:?}"),
            }
        }
    }

    #[test]
    fn cstrings_end_where_memchr_says_and_text_is_utf8_as_std_says() {
        // Fillers a word-at-a-time zero test could mistake for zeros (1 and 0x80 next
        // to a zero borrow), and a second zero after the first.
        for len in 0..80 {
            for zero in (0..len).map(Some).chain([None]) {
                for (filler, second) in [(b'k', None), (1, None), (0x80, Some(1)), (0xFF, Some(3))]
                {
                    let mut b = vec![filler; len];
                    if let Some(z) = zero {
                        b[z] = 0;
                        if let Some(at) = second.map(|s| z + s).filter(|&at| at < len) {
                            b[at] = 0;
                        }
                    }
                    assert_eq!(
                        cstring_len(&b),
                        memchr::memchr(0, &b),
                        "{len} {zero:?} {filler}"
                    );
                }
            }
        }
        for text in [
            &b"_id"[..],
            b"",
            "Zo\u{eb}".as_bytes(),
            b"\xFF",
            b"a\xC3",
            b"\xED\xA0\x80",
        ] {
            assert_eq!(utf8(text), std::str::from_utf8(text).ok());
        }
    }

    #[test]
    fn refuses_deep_nesting_without_overflowing_the_stack() {
        let mut inner = encode(&doc! { "x": 1 });
        for _ in 0..10_000 {
            let mut d = Vec::new();
            let len = 4 + 1 + 2 + inner.len() + 1;
            d.extend_from_slice(&(len as i32).to_le_bytes());
            d.extend_from_slice(b"\x03a\0");
            d.extend_from_slice(&inner);
            d.push(0);
            inner = d;
        }
        assert!(validate(&inner).is_err());
    }
}
