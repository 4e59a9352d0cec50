//! The classified documents as the mount serves them: one fixed-width row per document,
//! each collection's live documents, deleted records and conflicting versions in
//! consecutive rows, each row knowing where it starts in its list's `.bson` and `.json`.
//! A collection's file is then a range of rows, and a read binary-searches it.
//!
//! Classification runs once, when the index is saved; the rows are a section of the
//! index, checksummed per block of [`BLOCK_ROWS`], and a mount maps them: it decodes
//! no document up front, so mount time and memory do not grow with the documents (the
//! kernel pages in the rows readers touch). A block that fails its checksum makes the
//! reads that need it fail with EIO; the rest keeps serving.

mod layout;
pub mod names;
mod table;

use std::io;
use std::path::Path;
use std::sync::Arc;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

pub use layout::{DocsFrom, Laid, begin, lay_out, save};
pub use table::DocTable;

#[cfg(test)]
use crate::classify::Classification;
use crate::classify::{Decided, NamedBy, RowSource, Schema};
use crate::extent::{Extent, LazyExtents};
use crate::index::file::{self, IndexFile, Section};
use crate::index::{DocId, DoubtCounts, Index, IndexError, Span, WtPage};

/// Bytes of one row.
pub const ROW_LEN: usize = 64;
/// Rows per checksummed block (256 KiB): a mount checks a block on its first read.
pub const BLOCK_ROWS: u64 = 4096;
/// Bytes of `_id` a row holds (the index keeps longer ones as type byte and md5: 17).
const ID_LEN: usize = 18;

/// One document as the mount serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Position of the source in the index's source list.
    pub source: u32,
    /// Offset of the document on the source, or in its WiredTiger page image.
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
    /// Bytes of its one-line Extended JSON, newline included.
    pub json_len: u32,
    /// Bytes of its indented Extended JSON, newline included.
    pub pretty_len: u32,
    /// The WiredTiger page holding it (a position in [`Index::wt_pages`]).
    pub page: Option<u32>,
    /// An MMAPv1 deleted record, whose length on disk was overwritten.
    pub deleted: bool,
    /// Where it starts in its list's `.bson`.
    pub bson_at: u64,
    /// Where it starts in its list's `.json`.
    pub json_at: u64,
    /// Its `_id` as the index keeps it (type byte and value, or md5 of a long value).
    pub id: DocId,
}

impl Row {
    fn of(d: &RowSource, bson_at: u64, json_at: u64) -> Row {
        Row {
            source: d.source,
            offset: d.offset,
            len: d.len,
            json_len: d.json_len,
            pretty_len: d.pretty_len,
            page: d.page,
            deleted: d.deleted,
            bson_at,
            json_at,
            id: DocId::from_slice(&d.id[..d.id.len().min(ID_LEN)]),
        }
    }

    /// The row's 64 bytes: offset, bson_at, json_at (u64), source, len, json_len,
    /// pretty_len, page (u32, `u32::MAX` for none), flags, id length (u8), id, all
    /// little-endian.
    pub fn encode(&self) -> [u8; ROW_LEN] {
        let mut b = [0u8; ROW_LEN];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..16].copy_from_slice(&self.bson_at.to_le_bytes());
        b[16..24].copy_from_slice(&self.json_at.to_le_bytes());
        b[24..28].copy_from_slice(&self.source.to_le_bytes());
        b[28..32].copy_from_slice(&self.len.to_le_bytes());
        b[32..36].copy_from_slice(&self.json_len.to_le_bytes());
        b[36..40].copy_from_slice(&self.pretty_len.to_le_bytes());
        b[40..44].copy_from_slice(&self.page.unwrap_or(u32::MAX).to_le_bytes());
        b[44] = u8::from(self.deleted);
        let id = &self.id[..self.id.len().min(ID_LEN)];
        b[45] = id.len() as u8;
        b[46..46 + id.len()].copy_from_slice(id);
        b
    }

    /// Reads a row written by [`Row::encode`]; any 64 bytes give some row.
    pub fn decode(b: &[u8; ROW_LEN]) -> Row {
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or([0; 4]));
        let id_len = (b[45] as usize).min(ID_LEN);
        Row {
            offset: u64_at(0),
            bson_at: u64_at(8),
            json_at: u64_at(16),
            source: u32_at(24),
            len: u32_at(28),
            json_len: u32_at(32),
            pretty_len: u32_at(36),
            page: Some(u32_at(40)).filter(|&p| p != u32::MAX),
            deleted: b[44] & 1 != 0,
            id: DocId::from_slice(&b[46..46 + id_len]),
        }
    }
}

/// Consecutive rows served as one list (a collection's live documents, its deleted
/// records, or the versions of one `_id`), with the sizes of its files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rows {
    /// First row.
    pub start: u64,
    /// Number of rows.
    pub count: u64,
    /// Bytes of the documents as stored (the `.bson`).
    pub bson: u64,
    /// Bytes of their one-line Extended JSON (the `.json`).
    pub json: u64,
    /// Bytes of their indented Extended JSON (the files of `docs/`).
    pub pretty: u64,
    /// Bytes of the source they are read from that lie in unreadable ranges.
    pub unreadable: u64,
}

impl Rows {
    /// Row numbers of the list.
    pub fn iter(&self) -> std::ops::Range<u64> {
        self.start..self.start.saturating_add(self.count)
    }
}

/// Versions of one `_id` with different contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedConflict {
    /// Every version, in disk order.
    pub rows: Rows,
    /// The version in the live collection (a position within `rows`), if any.
    pub chosen: Option<u64>,
}

/// One collection as classified, its documents as rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedCollection {
    /// `db.collection`.
    pub ns: String,
    /// How the name was found.
    pub named_by: NamedBy,
    /// Live documents placed here by a learned field set.
    pub learned: u64,
    /// Live documents placed here by the extent chain.
    pub chained: u64,
    /// Live documents, in disk order.
    pub live: Rows,
    /// Deleted records, in disk order.
    pub deleted: Rows,
    /// `_id`s with more than one version.
    pub conflicts: Vec<ServedConflict>,
    /// Byte-identical copies dropped.
    pub duplicates: u64,
    /// What plausibility rules dislike about its live documents.
    pub doubted: DoubtCounts,
    /// How many of its records each kind of evidence decided.
    pub decided: Decided,
}

impl ServedCollection {
    /// How the collection was named, for tables: `disk`, `disk+extent_chain` when some of
    /// its documents were named by the extent chain, `+learned` when some came by their
    /// field set.
    pub fn named_by_text(&self) -> String {
        let mut text = self.named_by.as_str().to_string();
        for (n, by) in [
            (self.chained, NamedBy::ExtentChain),
            (self.learned, NamedBy::Learned),
        ] {
            if n > 0 && self.named_by != by {
                text = format!("{text}+{}", by.as_str());
            }
        }
        text
    }
}

/// The result of classification as the index keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classified {
    /// Fingerprint of the schema the documents were sorted by (`None`: none).
    pub schema: Option<[u8; 16]>,
    /// Rows in all.
    pub rows: u64,
    /// Every collection, by `db.collection`.
    pub collections: Vec<ServedCollection>,
}

/// Tells one schema from another: a classification made with another schema is
/// redone, not served.
pub fn fingerprint(schema: Option<&Schema>) -> Option<[u8; 16]> {
    let schema = schema?;
    let mut h = Md5::new();
    for (ns, fields) in &schema.collections {
        h.update(ns.as_bytes());
        for f in fields {
            h.update([0]);
            h.update(f.as_bytes());
        }
        h.update([1]);
    }
    Some(h.finalize().into())
}

/// The collections section of `file`, when its documents were classified with the
/// schema of fingerprint `schema`.
fn classification<B: AsRef<[u8]>>(
    file: &IndexFile<B>,
    schema: Option<[u8; 16]>,
) -> Result<Option<Classified>, IndexError> {
    if file.raw(Section::Collections).is_empty() {
        return Ok(None);
    }
    let classified: Classified = file.decode(Section::Collections)?;
    Ok(Some(classified).filter(|c| c.schema == schema))
}

/// An index opened for serving: everything but the documents decoded, the documents
/// classified and their rows mapped.
pub struct Served {
    /// The index, without its documents.
    pub index: Index,
    /// The collections.
    pub classified: Classified,
    /// The rows.
    pub table: Arc<DocTable>,
}

impl Served {
    /// Opens the index at `path` for serving. `Ok(None)` when its documents were not
    /// classified with the schema of fingerprint `schema` (classify and save first).
    pub fn open(path: &Path, schema: Option<[u8; 16]>) -> Result<Option<Served>, IndexError> {
        Served::from_file(file::map(path)?, schema)
    }

    /// As [`Served::open`], from an index file's bytes.
    pub fn from_file<B: AsRef<[u8]> + Send + Sync + 'static>(
        file: IndexFile<B>,
        schema: Option<[u8; 16]>,
    ) -> Result<Option<Served>, IndexError> {
        let Some(classified) = classification(&file, schema)? else {
            return Ok(None);
        };
        let index = Index::from_file(&file, false)?;
        let sums: Vec<u32> = file
            .checked(Section::RowChecksums)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let renamed: Vec<(u64, u32)> = file.decode(Section::Renamed)?;
        let starts = (
            file.range(Section::Rows).start,
            file.range(Section::Names).start,
        );
        let rows = classified.rows;
        let bad = file.corrupt("the rows do not match the collections");
        let bytes = Box::new(file.into_bytes());
        let table = DocTable::new(bytes, starts, rows, &sums, renamed).ok_or(bad)?;
        Ok(Some(Served {
            index,
            classified,
            table: Arc::new(table),
        }))
    }

    /// `index` with its documents placed as `classification` says, laid out in memory
    /// as [`save`] and [`Served::open`] would: for tests, which build indexes by hand.
    #[cfg(test)]
    pub(crate) fn in_memory(mut index: Index, classification: Classification) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let spill = crate::spill::Spill::new(dir.path(), 1 << 20);
        let (mut bytes, mut names) = (Vec::new(), Vec::new());
        let laid = lay_out(
            &index,
            classification,
            None,
            &spill,
            (&mut bytes, &mut names),
        );
        let laid = laid.unwrap();
        let names_at = bytes.len();
        bytes.extend(&names);
        let rows = laid.classified.rows;
        let starts = (0, names_at);
        let table = DocTable::new(Box::new(bytes), starts, rows, &laid.sums, laid.renamed);
        index.docs = Vec::new();
        Served {
            index,
            classified: laid.classified,
            table: Arc::new(table.unwrap()),
        }
    }
}

/// A list of rows served as one file: the documents as stored (`.bson`) or as one-line
/// Extended JSON (`.json`).
#[derive(Debug)]
pub struct RowsFile {
    /// The rows.
    pub table: Arc<DocTable>,
    /// Which of them.
    pub rows: Rows,
    /// One-line JSON, else stored BSON.
    pub json: bool,
}

impl RowsFile {
    /// Where row `row` starts in the file.
    fn at(&self, row: &Row) -> u64 {
        if self.json { row.json_at } else { row.bson_at }
    }

    /// The last row starting at or before file offset `offset`.
    fn row_at(&self, offset: u64) -> io::Result<u64> {
        let (mut lo, mut hi) = (0, self.rows.count);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            match self.at(&self.table.row(self.rows.start.saturating_add(mid))?) <= offset {
                true => lo = mid,
                false => hi = mid,
            }
        }
        Ok(self.rows.start.saturating_add(lo))
    }
}

impl LazyExtents for RowsFile {
    fn len(&self) -> u64 {
        if self.json {
            self.rows.json
        } else {
            self.rows.bson
        }
    }

    fn visit(
        &self,
        offset: u64,
        end: u64,
        each: &mut dyn FnMut(u64, &Extent) -> io::Result<()>,
    ) -> io::Result<()> {
        if self.rows.count == 0 {
            return Ok(());
        }
        for n in self.row_at(offset)?..self.rows.iter().end {
            let row = self.table.row(n)?;
            if self.at(&row) >= end {
                break;
            }
            if self.json {
                let line = Extent::Document {
                    doc: n,
                    pretty: false,
                    len: u64::from(row.json_len),
                };
                each(row.json_at, &line)?;
            } else {
                // Read through the content's window (one read for many documents),
                // a deleted record's length restored.
                let stored = Extent::Stored {
                    doc: n,
                    len: u64::from(row.len),
                };
                each(row.bson_at, &stored)?;
            }
        }
        Ok(())
    }
}

/// Bytes of `[start, end)` of `source` that lie in the unreadable ranges `bad`
/// (sorted and disjoint).
pub fn unreadable_bytes(bad: &[Span], source: u32, start: u64, end: u64) -> u64 {
    // Walk back from the last range starting before `end`.
    let upto = bad.partition_point(|b| (b.source, b.start) < (source, end));
    bad[..upto]
        .iter()
        .rev()
        .take_while(|b| b.source == source && b.end > start)
        .map(|b| b.end.min(end) - b.start.max(start))
        .sum()
}

/// The source bytes a document is read from: its own (`len` bytes at `offset`), or
/// those of its WiredTiger block, `page`.
pub fn read_range(pages: &[WtPage], page: Option<u32>, offset: u64, len: u32) -> (u64, u64) {
    match page.and_then(|p| pages.get(p as usize)) {
        Some(page) => (
            page.offset,
            page.offset.saturating_add(page.disk_size.into()),
        ),
        None => (offset, offset.saturating_add(len.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Classification;
    use crate::content::Content;
    use crate::extent::ExtentList;
    use crate::extjson::JsonMode;
    use crate::index::DocEntry;
    use crate::index::stream::DocsFile;
    use crate::source::{Source, Sources};
    use crate::spill::Spill;

    /// Byte `i` of the test image.
    fn pattern(i: u64) -> u8 {
        (i * 7 + i / 251) as u8
    }

    fn doc(offset: u64, len: u32, deleted: bool) -> DocEntry {
        DocEntry {
            source: 0,
            offset,
            len,
            deleted,
            hash: offset,
            id: DocId::from_slice(&[0x10, offset as u8, 0, 0, 0]),
            shape: 0,
            ns_header_ofs: None,
            record_links: None,
            json_len: len + 1,
            pretty_len: len + 2,
            wt: None,
            doubts: Default::default(),
        }
    }

    /// `n` documents of 5 to 104 bytes, every seventh a deleted record.
    fn sample(n: usize) -> Index {
        let mut index = Index::for_tests(&["/x.img".into()], 1 << 40);
        let mut at = 0;
        for i in 0..n {
            let len = 5 + (i % 100) as u32;
            index.docs.push(doc(at, len, i % 7 == 3));
            // Most documents follow each other on disk, some have a gap between.
            at += u64::from(len) + 3 * u64::from(i % 5 == 0);
        }
        index
    }

    /// The documents of `index`, all live in one collection `db.c`.
    fn all_live(index: &Index) -> Classification {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path(), 1 << 30);
        Classification::all_live(&index.docs, Some("db.c"), &spill)
    }

    #[test]
    fn rows_encode_and_decode() {
        let mut d = doc(1 << 40, 300, true);
        d.id = DocId::from_slice(&[0x02; 17]);
        d.wt = Some(crate::index::WtRef { page: 7, record: 9 });
        let row = Row::of(&(&d).into(), 11, 12);
        assert_eq!(Row::decode(&row.encode()), row);
        let plain = Row::of(&(&doc(5, 6, false)).into(), 0, 0);
        assert_eq!(Row::decode(&plain.encode()), plain);
        assert_eq!(plain.page, None);
        // Any bytes decode to some row.
        let _ = Row::decode(&[0xff; ROW_LEN]);
    }

    #[test]
    fn a_collection_file_reads_as_its_documents_in_a_row() {
        let index = sample(10_000);
        let mut want = Vec::new();
        for d in &index.docs {
            let mut bytes: Vec<u8> = (d.offset..d.offset + u64::from(d.len))
                .map(pattern)
                .collect();
            if d.deleted {
                bytes[..4].copy_from_slice(&d.len.to_le_bytes());
            }
            want.extend(bytes);
        }
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("x.img");
        let last = index.docs.last().map_or(0, |d| d.offset + u64::from(d.len));
        std::fs::write(&image, (0..last).map(pattern).collect::<Vec<u8>>()).unwrap();
        let sources = Sources::new(vec![Source::open(&image).unwrap()], false);
        let classification = all_live(&index);
        let served = Served::in_memory(index, classification);
        let live = served.classified.collections[0].live;
        assert_eq!((live.count, live.bson), (10_000, want.len() as u64));
        let content = Content::new(sources, served.table.clone(), Vec::new(), JsonMode::Relaxed);
        let file = ExtentList::Lazy(Arc::new(RowsFile {
            table: served.table.clone(),
            rows: live,
            json: false,
        }));
        assert_eq!(file.read(0, want.len() + 1, &content).unwrap(), want);
        for (at, size) in [
            (0, 1),
            (3, 9),
            (12_345, 70_000),
            (want.len() as u64 - 2, 10),
        ] {
            let to = (at as usize + size).min(want.len());
            assert_eq!(
                file.read(at, size, &content).unwrap(),
                want[at as usize..to]
            );
        }
    }

    #[test]
    fn every_document_is_found_by_its_unique_name() {
        // Their `_id`s are int32s of 256 values at most: many documents share one.
        let index = sample(3_000);
        let classification = all_live(&index);
        let served = Served::in_memory(index, classification);
        let live = served.classified.collections[0].live;
        let names: Vec<String> = live.iter().map(|r| served.table.name(r).unwrap()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        for (row, name) in live.iter().zip(&names) {
            assert_eq!(served.table.find(live, name), Some(row), "{name}");
        }
        assert_eq!(served.table.find(live, "nope"), None);
    }

    #[test]
    fn a_damaged_block_fails_alone() {
        let index = sample(3 * BLOCK_ROWS as usize);
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path(), 1 << 20);
        let (mut bytes, mut names) = (Vec::new(), Vec::new());
        let placed = all_live(&index);
        let laid = lay_out(&index, placed, None, &spill, (&mut bytes, &mut names)).unwrap();
        let names_at = bytes.len();
        bytes.extend(&names);
        bytes[BLOCK_ROWS as usize * ROW_LEN + 100] ^= 1;
        let rows = laid.classified.rows;
        let table = DocTable::new(
            Box::new(bytes),
            (0, names_at),
            rows,
            &laid.sums,
            laid.renamed,
        );
        let table = table.unwrap();
        assert!(table.row(0).is_ok());
        let err = table.row(BLOCK_ROWS + 5).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        assert!(table.row(2 * BLOCK_ROWS).is_ok());
        assert!(table.row(3 * BLOCK_ROWS).is_err(), "past the end");
    }

    /// The file layout is pinned: a change to it without a new [`FORMAT_VERSION`]
    /// would make old indexes decode as garbage instead of being rescanned.
    #[test]
    fn the_layout_is_pinned_by_the_format_version() {
        let mut index = sample(5);
        index.created = 1_700_000_000;
        index.tool_version = "golden".into();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("golden.idx");
        index.save(&path).unwrap();
        let docs = DocsFile::open(&path).unwrap();
        let spill = Spill::new(dir.path(), 1 << 20);
        let placed = (all_live(&index), fingerprint(None));
        save(&index, DocsFrom::File(&docs), placed, &spill, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let digest: String = Md5::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            (crate::index::FORMAT_VERSION, bytes.len(), digest.as_str()),
            (14, 968, "3e90017d4e6f5bf62b1c94a1e04f4af3"),
            "the index layout changed: bump FORMAT_VERSION, then update this test"
        );
        // Saved from the documents still held, with no index saved before classifying:
        // the same bytes.
        let held = dir.path().join("held.idx");
        let placed = (all_live(&index), fingerprint(None));
        let begun = DocsFrom::Begun(Box::new(begin(&index, &held).unwrap()));
        save(&index, begun, placed, &spill, &held).unwrap();
        assert!(std::fs::read(&held).unwrap() == bytes);
        let served = Served::open(&path, None).unwrap().unwrap();
        assert_eq!(served.table.len(), 5);
        assert!(Served::open(&path, Some([1; 16])).unwrap().is_none());
        assert_eq!(Index::load(&path).unwrap().docs, index.docs);
    }
}
