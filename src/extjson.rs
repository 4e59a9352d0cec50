//! MongoDB Extended JSON, rendered straight from raw BSON bytes.
//!
//! Going through `bson::Document` and `serde_json` allocates a tree per document and
//! renders a few tens of MB/s; this writer follows the validator's one walk over the
//! bytes ([`crate::carve::bson::validate`]) and appends to a buffer, or only counts what
//! it would append ([`measure`]: the scan's validation and JSON lengths at once).
//! Its output equals the `bson` crate's and pymongo's `json_util` as JSON values (tests
//! check both). Dates follow pymongo in relaxed mode: ISO-8601 for 1970..=9999 with
//! milliseconds only when non-zero, `$numberLong` otherwise.
//!
//! Total over any input: what the validator refuses gives an error, never a panic;
//! nesting is bounded by [`crate::carve::bson::MAX_DEPTH`].

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::carve::bson::{Invalid, Summary, Visit, utf8, validate_visiting};

mod decimal;
mod double;

/// Which Extended JSON flavour to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum JsonMode {
    /// Numbers and dates as plain JSON where that loses nothing obvious (mongoexport's
    /// default; `jq`-friendly).
    #[default]
    Relaxed,
    /// Every number typed (`$numberInt`, `$numberLong`...): lossless on import.
    Canonical,
}

/// Appends the Extended JSON of the document `doc` to `out`: one line without
/// whitespace, or indented by two spaces per level when `pretty`. Renders exactly what
/// [`validate`](crate::carve::bson::validate) accepts, in the walk that validates it; on
/// error `out` may hold a partial rendering.
pub fn render(doc: &[u8], mode: JsonMode, pretty: bool, out: &mut Vec<u8>) -> Result<(), Invalid> {
    validate_visiting(doc, &mut Writer::new(out, mode, pretty)).map(drop)
}

/// A document the scan validated and measured: what
/// [`validate`](crate::carve::bson::validate) says of it and the lengths of its one-line
/// and its indented rendering.
pub struct Measured<'a> {
    /// Its `_id`, field names and doubts.
    pub summary: Summary<'a>,
    /// Bytes of the one-line rendering (no newline).
    pub line: usize,
    /// Bytes of the indented rendering (no newline).
    pub pretty: usize,
}

/// Validates `doc` as [`validate`](crate::carve::bson::validate) does and measures both
/// renderings, without making either, in one walk: the writer of [`render`] runs into a
/// counter, so a measured length and the bytes served later cannot disagree. The scan
/// measures every document it finds with it.
pub fn measure(doc: &[u8], mode: JsonMode) -> Result<Measured<'_>, Invalid> {
    let mut count = Count(0);
    let mut w = Writer::new(&mut count, mode, false);
    let summary = validate_visiting(doc, &mut w)?;
    let extra = w.pretty_extra;
    Ok(Measured {
        summary,
        line: count.0,
        pretty: count.0 + extra,
    })
}

/// Where a rendering goes: the bytes themselves ([`render`]) or only how many there
/// would be ([`measure`]).
trait Sink {
    /// Whether the scan is measuring through this sink, and so needs the summary of
    /// [`validate_visiting`] in full (see [`Visit::KEYS`]).
    const SCANNING: bool;
    /// Appends `b`.
    fn put(&mut self, b: &[u8]);
    /// Appends `data` in base64.
    fn base64(&mut self, data: &[u8]);
    /// Appends `len` bytes that `write` fills in: a count never makes them.
    fn text(&mut self, len: usize, write: impl FnOnce(&mut [u8]));
}

impl Sink for Vec<u8> {
    const SCANNING: bool = false;

    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }
    fn base64(&mut self, data: &[u8]) {
        let at = self.len();
        self.resize(at + base64::encoded_len(data.len(), true).unwrap_or(0), 0);
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(data, &mut self[at..])
            .unwrap_or(0);
        self.truncate(at + n);
    }
    fn text(&mut self, len: usize, write: impl FnOnce(&mut [u8])) {
        let at = self.len();
        self.resize(at + len, 0);
        write(&mut self[at..]);
    }
}

/// Counts the bytes a rendering would have.
struct Count(usize);

impl Sink for Count {
    const SCANNING: bool = true;

    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }
    fn base64(&mut self, data: &[u8]) {
        self.0 += base64::encoded_len(data.len(), true).unwrap_or(0);
    }
    fn text(&mut self, len: usize, _: impl FnOnce(&mut [u8])) {
        self.0 += len;
    }
}

struct Writer<'o, S: Sink> {
    out: &'o mut S,
    canonical: bool,
    pretty: bool,
    depth: usize,
    /// When not `pretty`: the bytes indentation would have added so far.
    pretty_extra: usize,
}

/// The `N` bytes at `at` of a value [`validate_visiting`] checked (an error
/// only if the two disagreed about its size).
fn le<const N: usize>(b: &[u8], at: usize) -> Result<[u8; N], Invalid> {
    b.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(Invalid::Malformed("value shorter than its type"))
}

/// The writer follows the walk that validates the document.
impl<S: Sink> Visit for Writer<'_, S> {
    const KEYS: bool = S::SCANNING;
    #[inline]
    fn open(&mut self, array: bool) {
        self.begin(if array { b'[' } else { b'{' });
    }
    #[inline]
    fn element(&mut self, index: usize, key: Option<&str>) {
        self.item(index);
        if let Some(key) = key {
            self.key(key.as_bytes());
        }
    }
    #[inline]
    fn leaf(&mut self, t: u8, value: &[u8]) -> Result<(), Invalid> {
        self.value(t, value)
    }
    #[inline]
    fn open_scope(&mut self, code: &[u8]) {
        self.begin(b'{');
        self.field(0, "$code", |w| w.string(code));
        self.item(1);
        self.quoted(b"$scope");
        self.colon();
    }
    #[inline]
    fn close_scope(&mut self) {
        self.end(b'}', 2);
    }
    #[inline]
    fn close(&mut self, array: bool, count: usize) {
        self.end(if array { b']' } else { b'}' }, count);
    }
}

const DATE_ISO_MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
const HEX: &[u8; 16] = b"0123456789abcdef";

impl<'o, S: Sink> Writer<'o, S> {
    fn new(out: &'o mut S, mode: JsonMode, pretty: bool) -> Self {
        Writer {
            out,
            canonical: mode == JsonMode::Canonical,
            pretty,
            depth: 0,
            pretty_extra: 0,
        }
    }

    fn begin(&mut self, open: u8) {
        self.out.put(&[open]);
        self.depth += 1;
    }

    fn item(&mut self, index: usize) {
        if index > 0 {
            self.out.put(b",");
        }
        self.newline();
    }

    /// A newline and the indentation of the current depth, when pretty (else counted).
    fn newline(&mut self) {
        if self.pretty {
            self.out.put(b"\n");
            for _ in 0..self.depth {
                self.out.put(b"  ");
            }
        } else {
            self.pretty_extra += 1 + 2 * self.depth;
        }
    }

    fn end(&mut self, close: u8, count: usize) {
        self.depth -= 1;
        if count > 0 {
            self.newline();
        }
        self.out.put(&[close]);
    }

    fn key(&mut self, key: &[u8]) {
        self.string(key);
        self.colon();
    }

    fn colon(&mut self) {
        if self.pretty {
            self.out.put(b": ");
        } else {
            self.out.put(b":");
            self.pretty_extra += 1;
        }
    }

    /// `{"key": value}` for wrapper objects like `{"$oid": ...}`. Generic, not a list
    /// of `dyn` closures: the scan measures every wrapper of every document, and
    /// inlined it costs no more than the bytes it counts.
    fn wrapper(&mut self, key: &str, value: impl FnOnce(&mut Self)) {
        self.begin(b'{');
        self.field(0, key, value);
        self.end(b'}', 1);
    }

    /// `{"k1": v1, "k2": v2}`, as [`Writer::wrapper`].
    fn wrapper2(
        &mut self,
        (k1, v1): (&str, impl FnOnce(&mut Self)),
        (k2, v2): (&str, impl FnOnce(&mut Self)),
    ) {
        self.begin(b'{');
        self.field(0, k1, v1);
        self.field(1, k2, v2);
        self.end(b'}', 2);
    }

    /// The `index`th field of a wrapper object.
    fn field(&mut self, index: usize, key: &str, value: impl FnOnce(&mut Self)) {
        self.item(index);
        self.quoted(key.as_bytes());
        self.colon();
        value(self);
    }

    /// Text that never needs escaping (a wrapper's key, digits, hex, an ISO date),
    /// quoted as it is: only strings from the document are scanned for escapes.
    fn quoted(&mut self, text: &[u8]) {
        debug_assert!(first_escape(text).is_none() && text.is_ascii());
        self.out.put(b"\"");
        self.out.put(text);
        self.out.put(b"\"");
    }

    fn string(&mut self, s: &[u8]) {
        self.out.put(b"\"");
        let mut start = 0;
        while let Some(i) = first_escape(&s[start..]).map(|n| start + n) {
            self.out.put(&s[start..i]);
            let c = s[i];
            let esc: &[u8] = match c {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0C => b"\\f",
                _ => &[],
            };
            if esc.is_empty() {
                self.out.put(b"\\u00");
                self.out
                    .put(&[HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
            } else {
                self.out.put(esc);
            }
            start = i + 1;
        }
        self.out.put(&s[start..]);
        self.out.put(b"\"");
    }

    fn raw(&mut self, s: &str) {
        self.out.put(s.as_bytes());
    }

    /// An integer's digits (itoa's, not `core::fmt`'s: the scan measures every one).
    fn number(&mut self, n: impl itoa::Integer) {
        self.out.put(itoa::Buffer::new().format(n).as_bytes());
    }

    /// A plain number in relaxed mode, `{"$numberInt": "n"}` (or Long) in canonical.
    fn integer(&mut self, tag: &str, n: impl itoa::Integer) {
        if self.canonical {
            self.typed_number(tag, n);
        } else {
            self.number(n);
        }
    }

    fn typed_number(&mut self, tag: &str, n: impl itoa::Integer) {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(n).as_bytes();
        self.wrapper(tag, |w| w.quoted(digits));
    }

    /// The text of the length-prefixed, NUL-terminated string at the start of `v`.
    fn bson_str(v: &[u8]) -> Result<&[u8], Invalid> {
        let n = i32::from_le_bytes(le(v, 0)?);
        usize::try_from(n)
            .ok()
            .and_then(|n| v.get(4..(4 + n).checked_sub(1)?))
            .ok_or(Invalid::Malformed("string longer than its value"))
    }

    /// A value that is no document, array or code with scope.
    fn value(&mut self, t: u8, v: &[u8]) -> Result<(), Invalid> {
        match t {
            0x01 => self.double(f64::from_le_bytes(le(v, 0)?)),
            0x02 => self.string(Self::bson_str(v)?),
            0x05 => self.binary(v)?,
            0x06 => self.wrapper("$undefined", |w| w.raw("true")),
            0x07 => self.oid(le::<12>(v, 0)?),
            0x08 => match v.first() {
                Some(0) => self.raw("false"),
                _ => self.raw("true"),
            },
            0x09 => self.date(i64::from_le_bytes(le(v, 0)?)),
            0x0A => self.raw("null"),
            0x0B => self.regex(v)?,
            0x0C => {
                let ns = Self::bson_str(v)?;
                let oid = le::<12>(v, v.len().saturating_sub(12))?;
                self.wrapper("$dbPointer", |w| {
                    w.wrapper2(("$ref", |w| w.string(ns)), ("$id", |w| w.oid(oid)))
                });
            }
            0x0D | 0x0E => {
                let s = Self::bson_str(v)?;
                let tag = if t == 0x0D { "$code" } else { "$symbol" };
                self.wrapper(tag, |w| w.string(s));
            }
            0x10 => self.integer("$numberInt", i32::from_le_bytes(le(v, 0)?)),
            0x11 => {
                let (i, t) = (u32::from_le_bytes(le(v, 0)?), u32::from_le_bytes(le(v, 4)?));
                self.wrapper("$timestamp", |w| {
                    w.wrapper2(("t", |w| w.number(t)), ("i", |w| w.number(i)))
                });
            }
            0x12 => self.integer("$numberLong", i64::from_le_bytes(le(v, 0)?)),
            0x13 => {
                let mut text = [0u8; decimal::MAX_LEN];
                let n = decimal::write(le(v, 0)?, &mut text);
                self.wrapper("$numberDecimal", |w| w.quoted(&text[..n]));
            }
            0xFF => self.wrapper("$minKey", |w| w.raw("1")),
            0x7F => self.wrapper("$maxKey", |w| w.raw("1")),
            _ => return Err(Invalid::Malformed("unknown element type")),
        }
        Ok(())
    }

    /// A binary value: `$binary` with base64 and subtype.
    fn binary(&mut self, v: &[u8]) -> Result<(), Invalid> {
        let [.., subtype] = le::<5>(v, 0)?;
        let mut data = &v[5..];
        if subtype == 2 {
            // The old binary subtype repeats the length inside (checked); drivers
            // strip it.
            data = data.get(4..).unwrap_or_default();
        }
        let sub = [HEX[(subtype >> 4) as usize], HEX[(subtype & 15) as usize]];
        // Base64 needs no escaping: quoted as it is.
        let b64 = |w: &mut Self| {
            w.out.put(b"\"");
            w.out.base64(data);
            w.out.put(b"\"");
        };
        self.wrapper("$binary", |w| {
            w.wrapper2(("base64", b64), ("subType", |w| w.quoted(&sub)))
        });
        Ok(())
    }

    /// A regular expression: `$regularExpression`, options sorted as pymongo writes them.
    fn regex(&mut self, v: &[u8]) -> Result<(), Invalid> {
        let unsplit = || Invalid::Malformed("regular expression without its zeros");
        let p = memchr::memchr(0, v).ok_or_else(unsplit)?;
        let (pattern, rest) = (&v[..p], &v[p + 1..]);
        let o = memchr::memchr(0, rest).ok_or_else(unsplit)?;
        let options = utf8(&rest[..o]).ok_or(Invalid::Malformed("options not UTF-8"))?;
        // Sorted as pymongo writes them: by character, never splitting one.
        let mut sorted: Vec<char> = options.chars().collect();
        sorted.sort_unstable();
        let options: String = sorted.into_iter().collect();
        let options = options.as_bytes();
        self.wrapper("$regularExpression", |w| {
            w.wrapper2(
                ("pattern", |w| w.string(pattern)),
                ("options", |w| w.string(options)),
            )
        });
        Ok(())
    }

    fn oid(&mut self, bytes: [u8; 12]) {
        self.wrapper("$oid", |w| {
            w.out.text(26, |text| {
                for (pair, b) in text[1..25].chunks_exact_mut(2).zip(bytes) {
                    pair.copy_from_slice(&[HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
                }
                (text[0], text[25]) = (b'"', b'"');
            })
        });
    }

    fn double(&mut self, f: f64) {
        let special = if f.is_nan() {
            "NaN"
        } else if f == f64::INFINITY {
            "Infinity"
        } else if f == f64::NEG_INFINITY {
            "-Infinity"
        } else {
            let mut text = [0u8; double::MAX_LEN];
            let n = double::write(f, &mut text);
            let text = &text[..n];
            return match self.canonical {
                true => self.wrapper("$numberDouble", |w| w.quoted(text)),
                false => self.out.put(text),
            };
        };
        self.wrapper("$numberDouble", |w| w.quoted(special.as_bytes()));
    }

    fn date(&mut self, ms: i64) {
        if self.canonical || !(0..=DATE_ISO_MAX_MS).contains(&ms) {
            return self.wrapper("$date", |w| w.typed_number("$numberLong", ms));
        }
        self.wrapper("$date", |w| {
            w.out.text(iso8601_len(ms) + 2, |text| {
                let last = text.len() - 1;
                iso8601(ms, &mut text[1..last]);
                (text[0], text[last]) = (b'"', b'"');
            })
        });
    }
}

/// Position of the first byte of `s` that a JSON string must escape: a control byte,
/// `"` or `\`. Sixteen bytes at a time with SSE2 (every x86-64 has it) where there
/// are that many, else eight: documents are mostly text that needs none.
fn first_escape(s: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if s.len() >= 16 {
        // SAFETY: SSE2 is part of every x86-64 CPU.
        return unsafe { sse2::first_escape(s) };
    }
    first_escape_by_words(s)
}

/// [`first_escape`] sixteen bytes at a time.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;

    /// Shorter texts go to [`super::first_escape_by_words`].
    #[target_feature(enable = "sse2")]
    pub fn first_escape(s: &[u8]) -> Option<usize> {
        let Some(last) = s.len().checked_sub(16) else {
            return super::first_escape_by_words(s);
        };
        let (control, quote, backslash) = (
            _mm_set1_epi8(0x1F),
            _mm_set1_epi8(b'"' as i8),
            _mm_set1_epi8(b'\\' as i8),
        );
        let mut at = 0;
        loop {
            // The last block ends at the end, overlapping bytes already found clean.
            let start = at.min(last);
            let block = &s[start..start + 16];
            // SAFETY: `block` holds the 16 bytes read; no alignment is needed.
            let x = unsafe { _mm_loadu_si128(block.as_ptr().cast()) };
            // max(x, 0x1F) is 0x1F exactly for the bytes up to 0x1F (unsigned).
            let needs = _mm_or_si128(
                _mm_cmpeq_epi8(_mm_max_epu8(x, control), control),
                _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)),
            );
            let mask = _mm_movemask_epi8(needs) as u32;
            if mask != 0 {
                return Some(start + mask.trailing_zeros() as usize);
            }
            if start == last {
                return None;
            }
            at = start + 16;
        }
    }
}

/// [`first_escape`] eight bytes at a time: a word is looked at byte by byte only when
/// it holds one.
fn first_escape_by_words(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero: exact as "any", may flag bytes after a true one.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let needs = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let (words, _) = s.as_chunks::<8>();
    let word = words.iter().position(|w| {
        let x = u64::from_le_bytes(*w);
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        control | zero(x ^ (ONES * b'"' as u64)) | zero(x ^ (ONES * b'\\' as u64)) != 0
    });
    let from = word.map_or(words.len() * 8, |w| w * 8);
    s[from..].iter().position(|&b| needs(b)).map(|n| from + n)
}

/// The length of [`iso8601`]'s text for `ms`: the scan measures every date, and needs
/// no more than this.
fn iso8601_len(ms: i64) -> usize {
    match ms.rem_euclid(1000) {
        0 => 20,
        _ => 24,
    }
}

/// Writes `YYYY-MM-DDTHH:MM:SS[.mmm]Z` for milliseconds since the epoch (0..=year
/// 9999) into `out`, [`iso8601_len`] bytes long.
fn iso8601(ms: i64, out: &mut [u8]) {
    let (days, ms_of_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Civil date from days since 1970-01-01 (proleptic Gregorian, H. Hinnant's method).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    let (s, milli) = (ms_of_day / 1000, ms_of_day % 1000);
    out.copy_from_slice(&b"0000-00-00T00:00:00.000Z"[..out.len()]);
    let mut digits = |at: usize, n: usize, mut v: i64| {
        for d in out[at..at + n].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(0, 4, year);
    digits(5, 2, month);
    digits(8, 2, day);
    digits(11, 2, s / 3600);
    digits(14, 2, s / 60 % 60);
    digits(17, 2, s % 60);
    if milli == 0 {
        out[19] = b'Z';
        return;
    }
    digits(20, 3, milli);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bson::{Bson, doc};

    /// A rendering with `$date` strings turned into instants and `$numberDouble` strings
    /// into numbers: the crate trims trailing zeros of the milliseconds (".5Z") where
    /// pymongo keeps three (".500Z"), and writes 1e300 with all its digits.
    fn normalized(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| match (k.as_str(), v) {
                        ("$date", Value::String(s)) => {
                            let t = bson::DateTime::parse_rfc3339_str(&s).unwrap();
                            (k, Value::from(t.timestamp_millis()))
                        }
                        ("$numberDouble", Value::String(s))
                            if s.parse::<f64>().is_ok_and(f64::is_finite) =>
                        {
                            (k, Value::from(s.parse::<f64>().unwrap()))
                        }
                        (_, v) => (k, normalized(v)),
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.into_iter().map(normalized).collect()),
            v => v,
        }
    }

    fn ours(d: &bson::Document, mode: JsonMode, pretty: bool) -> serde_json::Value {
        let mut out = Vec::new();
        render(&d.to_vec().unwrap(), mode, pretty, &mut out).unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    fn every_type() -> bson::Document {
        doc! {
            "_id": bson::oid::ObjectId::parse_str("5f1d7a0e2a3b4c5d6e7f8091").unwrap(),
            "s": "Zoë \"quoted\" \\ \n\t\u{1} 山田",
            "i32": 42, "i64": 1_i64 << 40, "neg": -7_i64,
            "f": 1.5, "big": 1e300, "tiny": -2.5e-300, "whole": 3.0, "inf": f64::INFINITY, "nan": f64::NAN,
            "dec": "67021.72".parse::<bson::Decimal128>().unwrap(),
            "t": true, "n": Bson::Null,
            "d": bson::DateTime::from_millis(1_655_000_000_500),
            "d0": bson::DateTime::from_millis(1_655_000_000_000),
            "old": bson::DateTime::from_millis(-86_400_000),
            "far": bson::DateTime::from_millis(300_000_000_000_000),
            "bin": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2, 255] },
            "re": bson::Regex { pattern: "^a.b$".try_into().unwrap(), options: "mi".try_into().unwrap() },
            "ts": bson::Timestamp { time: 1_700_000_000, increment: 9 },
            "code": Bson::JavaScriptCode("f()".into()),
            "cws": Bson::JavaScriptCodeWithScope(bson::JavaScriptCodeWithScope { code: "g(k)".into(), scope: doc! {"k": 1} }),
            "min": Bson::MinKey, "max": Bson::MaxKey, "undef": Bson::Undefined,
            "arr": [1, "two", { "three": [3.0] }, []], "empty": {},
        }
    }

    #[test]
    fn equals_the_bson_crate_as_json_values() {
        let d = every_type();
        for pretty in [false, true] {
            let relaxed = Bson::Document(d.clone()).into_relaxed_extjson();
            assert_eq!(
                normalized(ours(&d, JsonMode::Relaxed, pretty)),
                normalized(relaxed)
            );
            let canonical = Bson::Document(d.clone()).into_canonical_extjson();
            assert_eq!(
                normalized(ours(&d, JsonMode::Canonical, pretty)),
                normalized(canonical)
            );
        }
    }

    #[test]
    fn measuring_counts_what_rendering_writes() {
        let mut docs = vec![every_type(), bson::doc! {}, bson::doc! {"a": [], "b": {}}];
        docs.push(bson::doc! {"nested": {"x": [1, {"y": [[], [2]]}]}, "s": "\u{7}\"é"});
        for d in docs {
            let bytes = d.to_vec().unwrap();
            for mode in [JsonMode::Relaxed, JsonMode::Canonical] {
                let (mut line, mut pretty) = (Vec::new(), Vec::new());
                let measured = measure(&bytes, mode).unwrap();
                render(&bytes, mode, false, &mut line).unwrap();
                render(&bytes, mode, true, &mut pretty).unwrap();
                let lengths = (measured.line, measured.pretty);
                assert_eq!(lengths, (line.len(), pretty.len()), "{d}");
            }
        }
    }

    #[test]
    fn finds_every_byte_to_escape() {
        for len in 0..70 {
            for at in 0..len {
                for c in [0u8, 0x1F, b'"', b'\\', b'\n'] {
                    let mut s = vec![b'a'; len];
                    s[at] = c;
                    assert_eq!(first_escape(&s), Some(at), "{len} {at} {c}");
                }
                let mut high = vec![0xE9u8; len];
                high[at] = 0x20;
                assert_eq!(first_escape(&high), None);
            }
        }
    }

    proptest::proptest! {
        /// Every way of looking (16 or 8 bytes at a time, or one) finds the first byte
        /// to escape, among bytes next to the ones that must be escaped.
        #[test]
        fn the_first_byte_to_escape_is_the_first(
            bytes in proptest::collection::vec(
                proptest::sample::select(vec![0u8, 0x1F, 0x20, b'"', b'\\', b'a', 0x7F, 0x80, 0xE9, 0xFF]),
                0..100,
            ),
            clean in 0usize..100,
        ) {
            // Mostly clean text, then anything.
            let mut s = vec![b'a'; clean];
            s.extend(bytes);
            let want = s.iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\');
            proptest::prop_assert_eq!(first_escape(&s), want);
            proptest::prop_assert_eq!(first_escape_by_words(&s), want);
        }
    }

    #[test]
    fn dates_as_pymongo_writes_them() {
        let iso = |ms| {
            let mut text = vec![0; iso8601_len(ms)];
            iso8601(ms, &mut text);
            String::from_utf8(text).unwrap()
        };
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_655_000_000_500), "2022-06-12T02:13:20.500Z");
        assert_eq!(iso(DATE_ISO_MAX_MS), "9999-12-31T23:59:59.999Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn regex_options_are_sorted_by_character() {
        // {"r": /a/ with options "xé" (not valid BSON flags, but well framed)}.
        let mut d = vec![
            0, 0, 0, 0, 0x0B, b'r', 0, b'a', 0, b'x', 0xC3, 0xA9, b'i', 0, 0,
        ];
        d[0] = d.len() as u8;
        let mut out = Vec::new();
        render(&d, JsonMode::Relaxed, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(r#""options":"ixé""#), "{text}");
    }

    #[test]
    fn malformed_input_is_an_error() {
        let good = every_type().to_vec().unwrap();
        for cut in [0, 3, 5, good.len() / 2, good.len() - 1] {
            let mut out = Vec::new();
            assert!(render(&good[..cut], JsonMode::Relaxed, false, &mut out).is_err());
        }
    }
}
