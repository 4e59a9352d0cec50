//! The persisted offset index: what one scan found, so that a mount never rescans.
//!
//! The file is sectioned (see [`mod@file`]): the head (sources and options), what was
//! found besides documents, the documents, and once they are classified, the
//! collections and the rows a mount serves from a memory map ([`crate::served`]).
//! Each section is checksummed on its own, so reading the head does not read the
//! documents, and a mount decodes none of them.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

pub use crate::carve::bson::DocId;
use crate::carve::bson::{Doubt, Doubts};
use crate::carve::flv::Carved;
use crate::carve::mmapv1::DiskLoc;
use crate::carve::wiredtiger::{Address, Codec, PageKind};
use crate::extjson::JsonMode;
use crate::source::{Source, SourceKind};

pub mod codec;
pub mod file;
pub mod stream;

use file::{IndexWriter, Section};

/// Bumped whenever the file layout or the carvers' results change.
pub const FORMAT_VERSION: u32 = 14;

/// Why an index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// There is no index file at this path.
    #[error("no index at {0}")]
    Missing(PathBuf),
    /// The file is not an index, or fails its checksum.
    #[error("index {path} is unusable: {reason}")]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Written by a salvagefs with another format.
    #[error(
        "index {path} is format version {found}, this salvagefs reads version {FORMAT_VERSION}"
    )]
    Version {
        /// The index file.
        path: PathBuf,
        /// The version it holds.
        found: u32,
    },
    /// It could not be read.
    #[error("index {path}: {err}")]
    Io {
        /// The index file.
        path: PathBuf,
        /// Why.
        err: io::Error,
    },
}

/// Identity of a scanned source, to tell whether an index still describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Canonical path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Image or block device.
    pub kind: SourceKind,
    /// md5 of samples of the contents (see [`Source::fingerprint`]).
    pub fingerprint: [u8; 16],
    /// Modification time of an image (0 for block devices, whose mtime means nothing).
    pub mtime: i64,
}

impl SourceRecord {
    /// Describes an opened source (reads its fingerprint samples).
    pub fn of(source: &Source) -> SourceRecord {
        SourceRecord {
            path: source.path.clone(),
            size: source.size,
            kind: source.kind,
            fingerprint: source.fingerprint(),
            mtime: match source.kind {
                SourceKind::Image => source.mtime,
                SourceKind::BlockDevice { .. } => 0,
            },
        }
    }
}

/// The scan options that change what a scan finds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanSettings {
    /// Bytes past a chain break searched for a continuation.
    pub resync_window: u64,
    /// Try every offset as a BSON document, not only those starting with `_id`.
    pub bson_any: bool,
    /// The Extended JSON flavour whose rendered lengths the index holds.
    pub json: JsonMode,
}

/// A [`DocId`] written and read as bytes. postcard writes a list of bytes and a byte
/// string alike (a length, then the bytes), so the index's format is the same; read
/// as a list, each byte was a call, and classification reads every `_id` four times.
pub(crate) mod id_bytes {
    use super::DocId;
    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(id: &DocId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(id)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DocId, D::Error> {
        d.deserialize_bytes(Bytes)
    }

    struct Bytes;

    impl<'de> de::Visitor<'de> for Bytes {
        type Value = DocId;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("the bytes of an _id")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<DocId, E> {
            Ok(DocId::from_slice(v))
        }
    }
}

/// A BSON document found by the scan. Its bytes stay on the source; the index keeps
/// what classification and `stat` need, so a mount renders nothing until a read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocEntry {
    /// Position of the source in [`Index::sources`].
    pub source: u32,
    /// Offset of the document's first byte (its length, or the deleted mark) on the
    /// source, or in its page image (see `wt`).
    pub offset: u64,
    /// Length in bytes.
    pub len: u32,
    /// An MMAPv1 deleted record: the length on disk reads `EE EE EE EE` and must be
    /// restored from `len` when the document is served.
    pub deleted: bool,
    /// xxh3 of the (restored) bytes: equal hashes are byte-identical copies (64 bits:
    /// a chance collision among a million documents is about 1 in 10^7).
    pub hash: u64,
    /// The `_id` element's type byte and value (long values: type byte and md5).
    #[serde(with = "id_bytes")]
    pub id: DocId,
    /// Its top-level field names, as a position in [`Index::shapes`].
    pub shape: u32,
    /// The `extentOfs` of the MMAPv1 record header before the document, if any (ties
    /// the document to the [`NsHeader`] that names its collection).
    pub ns_header_ofs: Option<i32>,
    /// The last 8 bytes of that record header: `(nextOfs, prevOfs)` of a record linked
    /// in its extent's record list, or what a delete wrote there.
    pub record_links: Option<(i32, i32)>,
    /// Bytes of its one-line Extended JSON, newline included.
    pub json_len: u32,
    /// Bytes of its indented Extended JSON, newline included.
    pub pretty_len: u32,
    /// Set for a document read from a WiredTiger page: then `offset` is its position
    /// in the page image (which may be compressed on the source), not on the source.
    pub wt: Option<WtRef>,
    /// What plausibility rules dislike about it (kept all the same: a storage
    /// structure framed it).
    pub doubts: Doubts,
}

/// Where a document of a WiredTiger file lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WtRef {
    /// The page, as a position in [`Index::wt_pages`].
    pub page: u32,
    /// The record id (the table's key): stable across rewrites of the record.
    pub record: i64,
}

/// A WiredTiger block whose checksum matched, holding documents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WtPage {
    /// Position of the source in [`Index::sources`].
    pub source: u32,
    /// Offset of the block on the source.
    pub offset: u64,
    /// Bytes of the block on the source.
    pub disk_size: u32,
    /// The block's checksum: names an overflow page, and tells a changed source.
    pub checksum: u32,
    /// Leaf page or overflow page.
    pub kind: PageKind,
    /// How the page image is stored.
    pub codec: Codec,
    /// The page's write generation: a later copy of a page has a higher one.
    pub write_gen: u64,
    /// A leaf page's first and last record ids: the page held every record of the file
    /// between them when it was written.
    pub keys: (i64, i64),
    /// Record ids of a leaf page whose values are in overflow pages.
    pub overflow_keys: Vec<i64>,
    /// The file it belongs to, as a position in [`Index::wt_files`], when WiredTiger's
    /// metadata and internal pages lead to it.
    pub file: Option<u32>,
}

/// A WiredTiger internal page: its block and the blocks it names (checkpoint trees
/// are followed through these).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WtInternal {
    /// The block's checksum.
    pub checksum: u32,
    /// The block's size in bytes.
    pub disk_size: u32,
    /// The blocks its address cells name.
    pub children: Vec<Address>,
}

/// A checkpoint WiredTiger's metadata (`WiredTiger.wt`) records for a file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WtCheckpoint {
    /// The file's name without `.wt` (`collection-7-123`).
    pub file: String,
    /// The checkpoint's order: the newest has the highest.
    pub order: u64,
    /// Its root block.
    pub root: Address,
}

/// An entry of mongod's catalog (`_mdb_catalog.wt`): which file holds which collection.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The file's name without `.wt` (`collection-7-123`).
    pub ident: String,
    /// `db.collection`.
    pub ns: String,
    /// Write generation of the page it was read from (the latest entry wins).
    pub write_gen: u64,
}

/// A namespace header: what MMAPv1 calls an extent header, the namespace written on
/// disk for the records of the region after it. (Named so that "extent" means one
/// thing outside `carve::mmapv1`: a piece of a virtual file, [`crate::extent`].)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NsHeader {
    /// Position of the source in [`Index::sources`].
    pub source: u32,
    /// Offset of the header on the source.
    pub offset: u64,
    /// Length of the region it heads, header included.
    pub len: u64,
    /// The region's own offset within its data file (MMAPv1's `myLoc.ofs`; records
    /// point back to it).
    pub file_ofs: i32,
    /// `db.collection`.
    pub ns: String,
    /// Offsets in the data file of the first and last record of the extent's record
    /// list (`None`: empty).
    pub records: Option<(i32, i32)>,
    /// The number of its data file (`<db>.<n>`), from its own DiskLoc.
    pub file_no: i32,
    /// Its collection's next and previous extent (`xnext`, `xprev`): what names an
    /// extent whose own header was overwritten.
    pub chain: (Option<DiskLoc>, Option<DiskLoc>),
}

/// A namespace of an MMAPv1 namespace file (`<db>.ns`) found on a source: a
/// collection's name and where its chain of extents begins and ends.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NsEntry {
    /// Position of the source in [`Index::sources`].
    pub source: u32,
    /// Offset of the table's node on the source.
    pub offset: u64,
    /// `db.collection`.
    pub ns: String,
    /// The collection's first and last extent.
    pub extents: (Option<DiskLoc>, Option<DiskLoc>),
}

/// A carved FLV file and the source it lives on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlvEntry {
    /// Position of the source in [`Index::sources`].
    pub source: u32,
    /// What the walk found.
    pub carved: Carved,
}

/// The bytes `[start, end)` of source number `source`: what a scan covered, or what
/// it could not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    /// Position of the source in [`Index::sources`].
    pub source: u32,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Span {
    /// Every byte of every source: what a whole scan covers (empty sources have no
    /// span: spans are never empty).
    pub fn whole(sources: &[SourceRecord]) -> Vec<Span> {
        sources
            .iter()
            .enumerate()
            .map(|(i, s)| Span {
                source: i as u32,
                start: 0,
                end: s.size,
            })
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Number of bytes.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True for a span of no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Documents counted per plausibility rule ([`Doubt::ALL`]'s order): a document with
/// several doubts counts under each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubtCounts(pub [u64; 4]);

impl DoubtCounts {
    /// Counts one document's doubts.
    pub fn add(&mut self, doubts: Doubts) {
        for d in doubts.iter() {
            self.0[d as usize] += 1;
        }
    }

    /// Adds another count to this one.
    pub fn merge(&mut self, other: DoubtCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// `(rule, count)` for each rule that counted something.
    pub fn nonzero(&self) -> impl Iterator<Item = (Doubt, u64)> + '_ {
        Doubt::ALL.into_iter().zip(self.0).filter(|&(_, n)| n > 0)
    }
}

/// Everything a scan found.
#[derive(Clone, Debug, PartialEq)]
pub struct Index {
    /// salvagefs version that wrote it.
    pub tool_version: String,
    /// When the scan finished (seconds since the epoch); also the mtime of every file.
    pub created: u64,
    /// Scan wall time in seconds.
    pub scan_seconds: f64,
    /// The sources, in the order given.
    pub sources: Vec<SourceRecord>,
    /// The options that shaped the results.
    pub settings: ScanSettings,
    /// The byte ranges scanned, sorted and disjoint: every source whole, or what
    /// `scan --range` or an interrupted scan covered.
    pub covered: Vec<Span>,
    /// Carved FLV files, in (source, offset) order.
    pub flv: Vec<FlvEntry>,
    /// Unreadable ranges met by the scan.
    pub bad_ranges: Vec<Span>,
    /// Structurally valid candidates that no storage structure framed and that a
    /// plausibility rule rejected, counted per rule.
    pub rejected: DoubtCounts,
    /// BSON documents: those lying on a source in (source, offset) order, none inside
    /// another, then those of WiredTiger pages in (page, offset) order.
    pub docs: Vec<DocEntry>,
    /// Distinct lists of top-level field names, referenced by [`DocEntry::shape`].
    pub shapes: Vec<Vec<String>>,
    /// MMAPv1 extent headers, in (source, offset) order.
    pub ns_headers: Vec<NsHeader>,
    /// Namespaces of MMAPv1 namespace files, in (source, offset) order.
    pub ns_entries: Vec<NsEntry>,
    /// WiredTiger pages holding documents, in (source, offset) order.
    pub wt_pages: Vec<WtPage>,
    /// Entries of mongod's catalog found in WiredTiger pages, sorted.
    pub wt_catalog: Vec<CatalogEntry>,
    /// Names of the WiredTiger files (`collection-7-123`) whose pages were traced from
    /// WiredTiger's metadata, sorted: what [`WtPage::file`] refers to.
    pub wt_files: Vec<String>,
    /// WiredTiger internal pages found.
    pub wt_internal: Vec<WtInternal>,
    /// Checkpoints WiredTiger's metadata records, from every copy of it found.
    pub wt_checkpoints: Vec<WtCheckpoint>,
}

impl Index {
    /// An index of `spans` of `sources` in which nothing was found (yet).
    pub fn empty(sources: Vec<SourceRecord>, settings: &ScanSettings, spans: &[Span]) -> Index {
        Index {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            scan_seconds: 0.0,
            sources,
            settings: settings.clone(),
            covered: spans.to_vec(),
            flv: Vec::new(),
            bad_ranges: Vec::new(),
            rejected: DoubtCounts::default(),
            docs: Vec::new(),
            shapes: Vec::new(),
            ns_headers: Vec::new(),
            ns_entries: Vec::new(),
            wt_pages: Vec::new(),
            wt_catalog: Vec::new(),
            wt_files: Vec::new(),
            wt_internal: Vec::new(),
            wt_checkpoints: Vec::new(),
        }
    }

    /// An empty index over image files at `paths`, `size` bytes each, scanned with
    /// default options: what unit tests build their indexes on.
    #[cfg(test)]
    pub(crate) fn for_tests(paths: &[PathBuf], size: u64) -> Index {
        let records = paths
            .iter()
            .map(|path| SourceRecord {
                path: path.clone(),
                size,
                kind: SourceKind::Image,
                fingerprint: [0; 16],
                mtime: 0,
            })
            .collect();
        let settings = ScanSettings {
            resync_window: 0,
            bson_any: false,
            json: JsonMode::Relaxed,
        };
        Index::empty(records, &settings, &[])
    }

    /// Why this index does not describe the byte ranges `covered` of `sources` scanned
    /// with `settings`, if it does not.
    pub fn mismatch(
        &self,
        sources: &[SourceRecord],
        settings: &ScanSettings,
        covered: &[Span],
    ) -> Option<String> {
        mismatch(
            (&self.sources, &self.settings, &self.covered),
            (sources, settings, covered),
        )
    }

    /// The index as its file holds it (without classification): for tests and the
    /// fuzzer; [`Index::save`] streams the same bytes into a file.
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let mut out = io::Cursor::new(Vec::new());
        let mut writer = IndexWriter::new(&mut out)?;
        self.write_sections(&mut writer)?;
        writer.finish()?;
        Ok(out.into_inner())
    }

    /// Writes the head, meta and documents sections.
    pub fn write_sections<W: Write + Seek>(&self, w: &mut IndexWriter<W>) -> io::Result<()> {
        self.write_head_and_meta(w)?;
        w.section(Section::Docs, |out| stream::write_docs(&self.docs, out))
    }

    /// Writes the head and meta sections: all but the documents.
    pub fn write_head_and_meta<W: Write + Seek>(&self, w: &mut IndexWriter<W>) -> io::Result<()> {
        w.value(
            Section::Head,
            &(
                &self.tool_version,
                self.created,
                self.scan_seconds,
                &self.sources,
                &self.settings,
                &self.covered,
            ),
        )?;
        w.value(
            Section::Meta,
            &(
                &self.flv,
                &self.bad_ranges,
                self.rejected,
                &self.shapes,
                &self.ns_headers,
                &self.ns_entries,
                &self.wt_pages,
                &self.wt_catalog,
                &self.wt_files,
                &self.wt_internal,
                &self.wt_checkpoints,
            ),
        )
    }

    /// Parses bytes written by [`Index::to_bytes`] or [`Index::save`]; `path` is only
    /// used in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Index, IndexError> {
        Index::from_file(&file::IndexFile::parse(bytes, path)?, true)
    }

    /// Decodes the index held by `file`: the documents too with `docs`, else none
    /// (what a mount needs: it serves documents from the rows).
    pub fn from_file<B: AsRef<[u8]>>(
        file: &file::IndexFile<B>,
        docs: bool,
    ) -> Result<Index, IndexError> {
        let head: IndexHead = file.decode(Section::Head)?;
        let meta: Meta = file.decode(Section::Meta)?;
        Ok(Index {
            tool_version: head.tool_version,
            created: head.created,
            scan_seconds: head.scan_seconds,
            sources: head.sources,
            settings: head.settings,
            covered: head.covered,
            flv: meta.flv,
            bad_ranges: meta.bad_ranges,
            rejected: meta.rejected,
            docs: if docs {
                let section = file.checked(Section::Docs)?;
                codec::decode_list(section)
                    .map_err(|e| file.corrupt(&format!("documents section: {e}")))?
            } else {
                Vec::new()
            },
            shapes: meta.shapes,
            ns_headers: meta.ns_headers,
            ns_entries: meta.ns_entries,
            wt_pages: meta.wt_pages,
            wt_catalog: meta.wt_catalog,
            wt_files: meta.wt_files,
            wt_internal: meta.wt_internal,
            wt_checkpoints: meta.wt_checkpoints,
        })
    }

    /// Loads and verifies the index at `path`, documents included.
    pub fn load(path: &Path) -> Result<Index, IndexError> {
        Index::from_file(&file::map(path)?, true)
    }

    /// Writes the index atomically (temporary file, fsync, rename), unclassified.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        file::save_atomically(path, true, |w| self.write_sections(w))
    }

    /// As [`Index::save`] without waiting for the disk: for a scan's segments, which a
    /// crash may leave damaged (their checksums tell, and they are scanned again).
    pub fn save_for_now(&self, path: &Path) -> io::Result<()> {
        file::save_atomically(path, false, |w| self.write_sections(w))
    }
}

/// The [`Section::Meta`] part of an [`Index`], in the order it is written.
#[derive(Deserialize)]
struct Meta {
    flv: Vec<FlvEntry>,
    bad_ranges: Vec<Span>,
    rejected: DoubtCounts,
    shapes: Vec<Vec<String>>,
    ns_headers: Vec<NsHeader>,
    ns_entries: Vec<NsEntry>,
    wt_pages: Vec<WtPage>,
    wt_catalog: Vec<CatalogEntry>,
    wt_files: Vec<String>,
    wt_internal: Vec<WtInternal>,
    wt_checkpoints: Vec<WtCheckpoint>,
}

/// The [`Section::Head`] of an index: enough to tell whether the index fits, without
/// reading anything else.
#[derive(Debug, Deserialize)]
pub struct IndexHead {
    /// See [`Index::tool_version`].
    pub tool_version: String,
    /// See [`Index::created`].
    pub created: u64,
    /// See [`Index::scan_seconds`].
    pub scan_seconds: f64,
    /// See [`Index::sources`].
    pub sources: Vec<SourceRecord>,
    /// See [`Index::settings`].
    pub settings: ScanSettings,
    /// See [`Index::covered`].
    pub covered: Vec<Span>,
}

impl IndexHead {
    /// Loads the head of the index at `path` (checking the header and the head only).
    pub fn load(path: &Path) -> Result<IndexHead, IndexError> {
        file::map(path)?.decode(Section::Head)
    }

    /// As [`Index::mismatch`].
    pub fn mismatch(
        &self,
        sources: &[SourceRecord],
        settings: &ScanSettings,
        covered: &[Span],
    ) -> Option<String> {
        mismatch(
            (&self.sources, &self.settings, &self.covered),
            (sources, settings, covered),
        )
    }
}

/// Why an index of `have` (sources, settings, covered bytes) does not describe `want`.
fn mismatch(
    (have_sources, have_settings, have_covered): (&[SourceRecord], &ScanSettings, &[Span]),
    (sources, settings, covered): (&[SourceRecord], &ScanSettings, &[Span]),
) -> Option<String> {
    if have_sources.len() != sources.len() {
        return Some(format!(
            "it covers {} sources, not {}",
            have_sources.len(),
            sources.len()
        ));
    }
    for (old, new) in have_sources.iter().zip(sources) {
        if old.path != new.path {
            return Some(format!(
                "it was made for {}, not {}",
                old.path.display(),
                new.path.display()
            ));
        }
        if old.size != new.size || old.fingerprint != new.fingerprint || old.mtime != new.mtime {
            return Some(format!("{} changed since the scan", new.path.display()));
        }
    }
    if have_settings != settings {
        return Some("it was made with other scan options".to_string());
    }
    (have_covered != covered).then(|| {
        format!(
            "it covers {}, not {}",
            describe(have_covered, have_sources),
            describe(covered, sources)
        )
    })
}

/// "all of a.img" or "bytes 0..1000 of a.img, ...", for messages.
pub fn describe(spans: &[Span], sources: &[SourceRecord]) -> String {
    let parts: Vec<String> = spans
        .iter()
        .map(|s| {
            let name = sources.get(s.source as usize).map_or_else(
                || format!("source {}", s.source + 1),
                |r| r.path.display().to_string(),
            );
            match sources.get(s.source as usize) {
                Some(r) if s.start == 0 && s.end == r.size => format!("all of {name}"),
                _ => format!("bytes {}..{} of {name}", s.start, s.end),
            }
        })
        .collect();
    if parts.is_empty() {
        "nothing".to_string()
    } else {
        parts.join(", ")
    }
}

/// Holds an exclusive lock on `<index>.lock` so that two scans for the same index run
/// one after the other instead of racing.
pub struct IndexLock {
    _file: File,
}

impl IndexLock {
    /// Blocks until the lock is ours.
    pub fn acquire(index: &Path) -> io::Result<IndexLock> {
        let mut name = index.as_os_str().to_owned();
        name.push(".lock");
        if let Some(dir) = index.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(PathBuf::from(name))?;
        f.lock()?;
        Ok(IndexLock { _file: f })
    }
}

/// Where the index goes without `--index`: `$XDG_CACHE_HOME/salvagefs/` (or
/// `~/.cache/salvagefs/`), named after the sources.
pub fn default_path(sources: &[PathBuf]) -> PathBuf {
    let mut hasher = Md5::new();
    for s in sources {
        hasher.update(s.as_os_str().as_encoded_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let stem = sources
        .first()
        .and_then(|p| p.file_name())
        .map(|n| {
            n.to_string_lossy().replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
                "_",
            )
        })
        .unwrap_or_else(|| "sources".into());
    cache_dir().join(format!("{stem}-{hex}.idx"))
}

/// The directory of the indexes made without `--index`: `$XDG_CACHE_HOME/salvagefs/`
/// (or `~/.cache/salvagefs/`, else `/var/tmp/salvagefs/`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
        .join("salvagefs")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Index {
        Index {
            tool_version: "test".into(),
            created: 1,
            scan_seconds: 0.5,
            sources: vec![SourceRecord {
                path: "/dev/x".into(),
                size: 10,
                kind: SourceKind::Image,
                fingerprint: [7; 16],
                mtime: 5,
            }],
            settings: ScanSettings {
                resync_window: 1,
                bson_any: false,
                json: JsonMode::Relaxed,
            },
            covered: vec![Span {
                source: 0,
                start: 0,
                end: 10,
            }],
            flv: vec![],
            docs: vec![],
            shapes: vec![],
            ns_headers: vec![],
            ns_entries: vec![],
            bad_ranges: vec![Span {
                source: 0,
                start: 4096,
                end: 8192,
            }],
            rejected: DoubtCounts([1, 0, 2, 0]),
            wt_pages: vec![WtPage {
                source: 0,
                offset: 0,
                disk_size: 4096,
                checksum: 9,
                kind: PageKind::RowLeaf,
                codec: Codec::Snappy,
                write_gen: 3,
                keys: (1, 9),
                overflow_keys: vec![4],
                file: Some(0),
            }],
            wt_catalog: vec![CatalogEntry {
                ident: "collection-2-1".into(),
                ns: "db.c".into(),
                write_gen: 3,
            }],
            wt_files: vec!["collection-2-1".into()],
            wt_internal: vec![],
            wt_checkpoints: vec![],
        }
    }

    #[test]
    fn roundtrip_and_detects_damage() {
        let idx = sample();
        let bytes = idx.to_bytes().unwrap();
        let p = Path::new("x");
        assert_eq!(Index::from_bytes(&bytes, p).unwrap(), idx);
        assert!(matches!(
            Index::from_bytes(&bytes[..bytes.len() - 1], p),
            Err(IndexError::Corrupt { .. })
        ));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(
                Index::from_bytes(&b, p).is_err(),
                "flip at {i} not detected"
            );
        }
        let mut old = bytes.clone();
        old[16] = 0;
        assert!(matches!(
            Index::from_bytes(&old, p),
            Err(IndexError::Version { found: 0, .. })
        ));
        assert!(Index::from_bytes(b"{}", p).is_err());
    }

    #[test]
    fn saving_streams_the_same_bytes_as_to_bytes() {
        let mut idx = sample();
        // Enough documents for the payload to pass through several buffer flushes.
        let doc = DocEntry {
            source: 0,
            offset: 0,
            len: 5,
            deleted: false,
            hash: 9,
            id: DocId::from_slice(&[0x07; 13]),
            shape: 0,
            ns_header_ofs: Some(8192),
            record_links: Some((-1, 176)),
            json_len: 40,
            pretty_len: 50,
            wt: None,
            doubts: Doubts::default(),
        };
        idx.docs = (0..100_000)
            .map(|i| DocEntry {
                offset: i * 64,
                ..doc.clone()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.idx");
        idx.save(&path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), idx.to_bytes().unwrap());
        assert_eq!(Index::load(&path).unwrap(), idx);
    }

    #[test]
    fn mismatch_explains() {
        let idx = sample();
        let all = Span::whole(&idx.sources);
        assert!(idx.mismatch(&idx.sources, &idx.settings, &all).is_none());
        let mut other = idx.sources.clone();
        other[0].fingerprint = [0; 16];
        let why = idx.mismatch(&other, &idx.settings, &all).unwrap();
        assert!(why.contains("changed"), "{why}");
        let settings = ScanSettings {
            resync_window: 2,
            ..idx.settings.clone()
        };
        assert!(idx.mismatch(&idx.sources, &settings, &all).is_some());
        let part = [Span {
            source: 0,
            start: 0,
            end: 4,
        }];
        let why = idx.mismatch(&idx.sources, &idx.settings, &part).unwrap();
        assert_eq!(why, "it covers all of /dev/x, not bytes 0..4 of /dev/x");
    }
}
