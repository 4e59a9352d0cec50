//! The BSON side of the scan: turns candidates in a buffer into [`DocEntry`]s.
//!
//! A chunk worker accepts every document that lies wholly in its buffer (chunk plus
//! overlap); a candidate that reaches past it is deferred and read whole from the
//! source afterwards, so a document is found exactly once however chunks fall, up to
//! the 16 MiB limit. Rendered JSON lengths are measured here, once, so that `stat` on
//! the mount never renders.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use md5::{Digest, Md5};
use xxhash_rust::xxh3::xxh3_64;

use rayon::prelude::*;

use super::anchors::{Anchors, Magic};
use super::stage::{Chunk, Finishing, Found, Stage};
use crate::carve::bson::{self, Candidate, Doubts, MAX_DOC_LEN};
use crate::carve::mmapv1::{self, RECORD_HEADER_LEN};
use crate::extjson::{self, JsonMode};
use crate::index::{DocEntry, DocId, DoubtCounts, NsHeader};
use crate::source::Source;
use crate::spans::{self, Outermost};

/// Longest `_id` kept verbatim; longer ones are kept as type byte + md5.
const MAX_ID_LEN: usize = 64;

/// What the BSON side found in one buffer.
#[derive(Default)]
pub struct BufferFinds {
    /// Documents wholly inside the buffer.
    pub docs: Vec<Found>,
    /// Candidates reaching past the buffer: `(source, offset, deleted)`.
    pub deferred: Vec<(u32, u64, bool)>,
    /// MMAPv1 namespace (extent) headers.
    pub ns_headers: Vec<NsHeader>,
    /// Unframed candidates a plausibility rule rejected, per rule.
    pub rejected: DoubtCounts,
}

enum Outcome {
    Accepted(Found),
    NeedMore,
    Rejected,
    Doubted(Doubts),
}

/// The stage of documents lying on the source as they are (MMAPv1 records, loose BSON).
pub struct Documents;

impl Stage for Documents {
    type Finds = BufferFinds;

    fn find(c: &Chunk) -> BufferFinds {
        let s = c.settings;
        scan_anchored(
            c.bytes,
            c.anchors,
            (c.start, c.len),
            c.source,
            (s.bson_any, s.json),
        )
    }

    fn documents(finds: &BufferFinds) -> usize {
        finds.docs.len()
    }

    fn finish(mut finds: Vec<BufferFinds>, out: &mut Finishing) {
        let parts = finds
            .iter_mut()
            .map(|f| std::mem::take(&mut f.docs))
            .collect();
        gather(out.docs, parts);
        let mut deferred = Vec::new();
        for f in finds {
            out.index.rejected.merge(f.rejected);
            deferred.extend(f.deferred);
            out.index.ns_headers.extend(f.ns_headers);
        }
        out.index.ns_headers.sort_by_key(|e| (e.source, e.offset));
        out.progress.phase(&format!(
            "reading {} documents longer than a chunk",
            deferred.len()
        ));
        let (sources, json) = (out.sources, out.settings.json);
        let read: Vec<Outcome> = deferred
            .par_iter()
            .map(|&(src, offset, deleted)| {
                read_deferred(&sources[src as usize], src, offset, deleted, json)
            })
            .collect();
        for outcome in read {
            match outcome {
                Outcome::Accepted(found) => out.docs.push(found),
                Outcome::Doubted(doubts) => out.index.rejected.add(doubts),
                Outcome::NeedMore | Outcome::Rejected => {}
            }
        }
    }
}

/// Appends every chunk's documents to `docs`, in chunk order. The parts are moved on
/// every core at once: millions of documents are hundreds of megabytes, and one
/// thread writing them all into fresh memory was a serial step of the scan.
pub(super) fn gather(docs: &mut Vec<Found>, parts: Vec<Vec<Found>>) {
    let total: usize = parts.iter().map(Vec::len).sum();
    docs.reserve(total);
    let mut spare = &mut docs.spare_capacity_mut()[..total];
    let mut slots = Vec::with_capacity(parts.len());
    for part in &parts {
        let (slot, rest) = spare.split_at_mut(part.len());
        slots.push(slot);
        spare = rest;
    }
    parts.into_par_iter().zip(slots).for_each(|(part, slot)| {
        for (place, found) in slot.iter_mut().zip(part) {
            place.write(found);
        }
    });
    // SAFETY: each of the `total` slots past the old length was written just above
    // (every part fills its own slot, of its own length).
    unsafe { docs.set_len(docs.len() + total) };
}

/// Scans `buf`, which holds source `source` from offset `base`; only candidates starting
/// before `limit` belong to this buffer.
pub fn scan_buffer(
    buf: &[u8],
    base: u64,
    limit: usize,
    source: u32,
    any: bool,
    mode: JsonMode,
) -> BufferFinds {
    scan_anchored(buf, &Anchors::find(buf), (base, limit), source, (any, mode))
}

/// As [`scan_buffer`], given the magic numbers in `buf` (found once for every stage).
fn scan_anchored(
    buf: &[u8],
    anchors: &Anchors,
    (base, limit): (u64, usize),
    source: u32,
    (any, mode): (bool, JsonMode),
) -> BufferFinds {
    let mut candidates = Vec::new();
    match any {
        true => bson::find_candidates(buf, limit, true, &mut candidates),
        false => bson::find_candidates_at(
            buf,
            limit,
            anchors.of(Magic::BsonId).iter().copied(),
            &mut candidates,
        ),
    }
    let mut finds = BufferFinds::default();
    // Sized once: a chunk of data files holds thousands of documents, and a list
    // grown by doubling was moved (mremap, a TLB flush on every core each time) and
    // left up to half its room unused while the segment's chunks are held.
    finds.docs.reserve_exact(candidates.len());
    for c in candidates {
        match accept(buf, c, base, source, mode) {
            Outcome::Accepted(found) => finds.docs.push(found),
            Outcome::NeedMore => finds
                .deferred
                .push((source, base + c.offset as u64, c.deleted)),
            Outcome::Doubted(doubts) => finds.rejected.add(doubts),
            Outcome::Rejected => {}
        }
    }
    // Room for candidates that were not documents (random bytes under `--bson-any`)
    // is given back, not held with the segment.
    if finds.docs.len() < finds.docs.capacity() / 2 {
        finds.docs.shrink_to_fit();
    }
    finds.ns_headers =
        mmapv1::find_extent_headers_at(buf, limit, anchors.of(Magic::Extent).iter().copied())
            .into_iter()
            .map(|(at, h)| NsHeader {
                source,
                offset: base + at as u64,
                len: h.len as u64,
                file_ofs: h.file_ofs,
                ns: h.ns.to_string(),
                records: h.records,
                file_no: h.file_no,
                chain: h.chain,
            })
            .collect();
    finds
}

/// Reads a deferred candidate whole from the source and validates it.
fn read_deferred(src: &Source, index: u32, offset: u64, deleted: bool, mode: JsonMode) -> Outcome {
    let start = offset.saturating_sub(RECORD_HEADER_LEN as u64);
    let at = (offset - start) as usize;
    // The record header and the length first: they say how much to read.
    let mut head = vec![0u8; at + 4];
    if src.read_exact_at(&mut head, start).is_err() {
        return Outcome::Rejected;
    }
    let want = match deleted {
        true => deleted_bound(mmapv1::record_header(&head, at)),
        false => match bson::declared_len(&head[at..]) {
            Some(len) => len,
            None => return Outcome::Rejected,
        },
    };
    let n = (at as u64 + want as u64).min(src.size - start) as usize;
    let mut buf = vec![0u8; n];
    if src.read_exact_at(&mut buf, start).is_err() {
        return Outcome::Rejected;
    }
    match accept(
        &buf,
        Candidate {
            offset: at,
            deleted,
        },
        start,
        index,
        mode,
    ) {
        Outcome::NeedMore => Outcome::Rejected,
        outcome => outcome,
    }
}

/// How far a deleted record may reach: its record slot when the record header
/// `(lengthWithHeaders, extentOfs)` survived, else the document size limit.
fn deleted_bound(record: Option<(i32, i32)>) -> usize {
    record
        .and_then(|(slot, _)| usize::try_from(slot).ok())
        .and_then(|slot| slot.checked_sub(RECORD_HEADER_LEN))
        .filter(|&b| b >= 5)
        .unwrap_or(MAX_DOC_LEN)
}

fn accept(buf: &[u8], c: Candidate, base: u64, source: u32, mode: JsonMode) -> Outcome {
    let record = mmapv1::record_header(buf, c.offset);
    let restored;
    let bytes: &[u8] = if c.deleted {
        let bound = deleted_bound(record);
        let rest = &buf[c.offset..];
        match bson::deleted_len(rest, bound) {
            Some(n) => {
                let mut doc = Vec::with_capacity(n);
                doc.extend_from_slice(&(n as i32).to_le_bytes());
                doc.extend_from_slice(&rest[4..n]);
                restored = doc;
                &restored
            }
            None if rest.len() < bound || (record.is_none() && c.offset < RECORD_HEADER_LEN) => {
                return Outcome::NeedMore;
            }
            None => return Outcome::Rejected,
        }
    } else {
        let Some(len) = bson::declared_len(&buf[c.offset..]) else {
            return Outcome::Rejected;
        };
        match buf.get(c.offset..c.offset + len) {
            Some(b) => b,
            None => return Outcome::NeedMore,
        }
    };
    let framed = record.is_some_and(|r| mmapv1::frames(r, bytes.len()));
    match describe(bytes, mode) {
        Some(found) if !framed && !found.entry.doubts.is_empty() => {
            Outcome::Doubted(found.entry.doubts)
        }
        Some(mut found) => {
            let entry = &mut found.entry;
            (entry.source, entry.offset) = (source, base + c.offset as u64);
            entry.deleted = c.deleted;
            entry.ns_header_ofs = record.map(|(_, extent)| extent);
            // Only a header that frames the document says anything about liveness.
            entry.record_links = framed
                .then(|| mmapv1::record_links(buf, c.offset))
                .flatten();
            Outcome::Accepted(found)
        }
        None => Outcome::Rejected,
    }
}

/// Validates `bytes` as a document and describes it for the index: `_id`, hash, field
/// names, both rendered lengths and what plausibility rules doubt about it (the caller
/// decides whether that matters: not for a document a storage structure framed). Where it lies (`source`, `offset`, `deleted`,
/// `ns_header_ofs`, `wt`) is left for the caller to fill in.
pub fn describe(bytes: &[u8], mode: JsonMode) -> Option<Found> {
    let extjson::Measured {
        summary,
        line,
        pretty,
    } = extjson::measure(bytes, mode).ok()?;
    // Both renderings end with a newline.
    let (json_len, pretty_len) = (line as u32 + 1, pretty as u32 + 1);
    let id = if summary.id.len() > MAX_ID_LEN {
        let mut id = DocId::from_slice(&summary.id[..1]);
        id.extend_from_slice(&Md5::digest(&summary.id[1..]));
        id
    } else {
        summary.id
    };
    Some(Found {
        entry: DocEntry {
            source: 0,
            offset: 0,
            len: bytes.len() as u32,
            deleted: false,
            hash: xxh3_64(bytes),
            id,
            shape: 0,
            ns_header_ofs: None,
            record_links: None,
            json_len,
            pretty_len,
            wt: None,
            doubts: summary.doubts,
        },
        fields: shared_fields(&summary.fields),
    })
}

/// The field lists a thread met lately, and a buffer to join the next one in.
#[derive(Default)]
struct Shapes {
    joined: String,
    seen: HashMap<Box<str>, Arc<str>, foldhash::fast::RandomState>,
    /// The list the thread's last document had: the next one mostly has it too.
    last: Option<Arc<str>>,
}

/// Whether `joined` (names each followed by a NUL) lists exactly `fields`.
fn lists(joined: &str, fields: &[&str]) -> bool {
    let mut rest = joined.as_bytes();
    for f in fields {
        match rest.split_at_checked(f.len()) {
            Some((name, [0, more @ ..])) if name == f.as_bytes() => rest = more,
            _ => return false,
        }
    }
    rest.is_empty()
}

thread_local! {
    /// Documents of one collection mostly share one field list: describing them
    /// allocates nothing for it.
    static SHAPES: RefCell<Shapes> = RefCell::default();
}

/// Most distinct field lists a thread keeps (a hostile disk may hold millions).
const SHAPES_KEPT: usize = 4096;

/// The field list `fields` as [`Found::fields`] holds it, shared with the earlier
/// documents of the same shape.
fn shared_fields(fields: &[&str]) -> Arc<str> {
    SHAPES.with_borrow_mut(|Shapes { joined, seen, last }| {
        if let Some(last) = last.as_ref().filter(|l| lists(l, fields)) {
            return last.clone();
        }
        let shared = shared_in(joined, seen, fields);
        *last = Some(shared.clone());
        shared
    })
}

/// The shared field list `fields` among those `seen`, joined in `joined`.
fn shared_in(
    joined: &mut String,
    seen: &mut HashMap<Box<str>, Arc<str>, foldhash::fast::RandomState>,
    fields: &[&str],
) -> Arc<str> {
    joined.clear();
    for f in fields {
        joined.push_str(f);
        joined.push('\0');
    }
    if let Some(shared) = seen.get(joined.as_str()) {
        return shared.clone();
    }
    if seen.len() >= SHAPES_KEPT {
        seen.clear();
    }
    let shared: Arc<str> = Arc::from(joined.as_str());
    seen.insert(joined.as_str().into(), shared.clone());
    shared
}

/// Orders the documents (see [`crate::index::Index::docs`]), drops those inside another
/// accepted document (sub-documents that matched the anchor) and interns the field lists.
pub fn into_entries(mut found: Vec<Found>) -> (Vec<DocEntry>, Vec<Vec<String>>) {
    found.sort_unstable_by_key(|f| spans::doc_order(&f.entry));
    let mut shapes: Vec<Vec<String>> = Vec::new();
    let mut shape_ids: HashMap<Arc<str>, u32, foldhash::fast::RandomState> = HashMap::default();
    let mut outermost = Outermost::default();
    // Neighbours mostly share one list (see `shared_fields`): no lookup for them.
    let mut last: Option<(Arc<str>, u32)> = None;
    // Collected in place (the entries are smaller than what they come from), so the
    // documents are not held twice.
    let docs: Vec<DocEntry> = found
        .into_iter()
        .filter_map(|Found { mut entry, fields }| {
            if entry.wt.is_none() && !outermost.keep(entry.source, entry.offset, entry.len as u64) {
                return None;
            }
            entry.shape = match &last {
                Some((shared, id)) if Arc::ptr_eq(shared, &fields) => *id,
                _ => match shape_ids.get(&fields) {
                    Some(&id) => id,
                    None => {
                        shapes.push(fields.split_terminator('\0').map(str::to_string).collect());
                        let id = shapes.len() as u32 - 1;
                        shape_ids.insert(fields.clone(), id);
                        id
                    }
                },
            };
            last = Some((fields, entry.shape));
            Some(entry)
        })
        .collect();
    (docs, shapes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joined_list_lists_exactly_its_names() {
        assert!(lists("a\0bc\0", &["a", "bc"]));
        assert!(lists("", &[]));
        for other in [&["a", "b"][..], &["a"], &["a", "bc", "d"], &["abc"]] {
            assert!(!lists("a\0bc\0", other), "{other:?}");
        }
    }

    /// Documents of alternating shapes share each shape's one list.
    #[test]
    fn documents_of_a_shape_share_its_list() {
        let one = shared_fields(&["_id", "x"]);
        let two = shared_fields(&["_id", "y"]);
        assert!(Arc::ptr_eq(&one, &shared_fields(&["_id", "x"])));
        assert!(Arc::ptr_eq(&two, &shared_fields(&["_id", "y"])));
        assert_eq!(&*one, "_id\0x\0");
    }
}
