//! Documents to collections, then de-duplication and conflicts.
//!
//! Where a document goes, in order of trust:
//! 1. the namespace written on disk: an MMAPv1 extent header whose own offset equals the
//!    `extentOfs` in the document's record header; that header overwritten, the extent
//!    chain (a neighbour extent's `xnext`/`xprev`, or the namespace file's first or last
//!    extent, names that extent: [`chain`]); or, for a document of a WiredTiger file
//!    (`collection-7-123.wt`), the namespace mongod's catalog gives that file;
//! 2. without a schema, the WiredTiger file it came from (`recovered.<file>`);
//! 3. a schema (`--schema FILE`, or `--schema-from` an old mongodump): the collection
//!    whose listed fields the document all has, the most specific one when several do;
//!    none: `recovered._unclassified`;
//! 4. the field set of a collection named on disk (learned from its documents);
//! 5. its set of top-level fields: `recovered.auto_<first fields>`.
//!
//! Byte-identical copies are kept once (the copy with the most trusted namespace).
//! Different documents sharing an `_id` in a collection are a conflict: one version
//! goes in the collection (a live record before a deleted one, then one whose namespace
//! was on disk, then the one from the WiredTiger page written last (highest
//! `write_gen`), then the version seen in most copies, then the later on disk), and
//! every version is listed. Deleted records are never live documents.

mod chain;
mod checkpoint;
mod liveness;
mod place;
mod schema;
mod seen;

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::carve::wiredtiger::PageKind;
use crate::index::stream::DocsFile;
use crate::index::{DocEntry, DocId, DoubtCounts, Index};
use crate::spill::{Sorted, Sorter, Spill};
use liveness::{Evidence, Liveness};
use place::FileKey;
pub use place::Placer;
pub use schema::Schema;
use seen::{Filter, SeenTwice};

/// How a collection got its name, most trusted first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum NamedBy {
    /// An MMAPv1 extent header on disk.
    Disk,
    /// The extent chain on disk (a neighbour extent's link, the namespace file), for an
    /// extent whose own header was overwritten.
    ExtentChain,
    /// mongod's catalog (`_mdb_catalog.wt`), for the WiredTiger file it came from.
    Catalog,
    /// The schema.
    Schema,
    /// The WiredTiger file it came from, whose collection the catalog does not name.
    File,
    /// Its field set, learned from the documents of a collection the disk named.
    Learned,
    /// The documents' field names.
    Fields,
}

impl NamedBy {
    /// Short word for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            NamedBy::Disk => "disk",
            NamedBy::ExtentChain => "extent_chain",
            NamedBy::Catalog => "catalog",
            NamedBy::Schema => "schema",
            NamedBy::File => "file",
            NamedBy::Learned => "learned",
            NamedBy::Fields => "fields",
        }
    }

    /// Written by MongoDB itself, not inferred.
    fn on_disk(self) -> bool {
        matches!(
            self,
            NamedBy::Disk | NamedBy::ExtentChain | NamedBy::Catalog
        )
    }
}

/// One collection's counts: its documents themselves go out as [`Placed`] records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// How the name was found (the most trusted way among its documents).
    pub named_by: NamedBy,
    /// Byte-identical copies dropped.
    pub duplicates: usize,
    /// What plausibility rules dislike about its live documents (kept all the same).
    pub doubted: DoubtCounts,
    /// Live documents placed here by a field set learned from the collection's named
    /// documents (their own namespace was lost).
    pub learned: usize,
    /// Live documents placed here by the extent chain (their extent header was lost).
    pub chained: usize,
    /// How many of its records (live or deleted) each kind of evidence decided.
    pub decided: Decided,
}

/// Records counted by what decided whether they are live, strongest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    /// MMAPv1's record list, walked from a surviving extent header.
    pub chain: usize,
    /// The record's own header: record offsets, or a free-list link.
    pub links: usize,
    /// The newest checkpoint of its WiredTiger file (reached, or not).
    pub checkpoint: usize,
    /// WiredTiger pages (a newer page of the file without the record) or the MMAPv1
    /// deleted mark; else the record is live, and versions of one `_id` are chosen.
    pub rules: usize,
}

impl Decided {
    /// Counts one record by what decided it: MMAPv1's links, or whether the newest
    /// checkpoint of its WiredTiger file is known.
    fn count(&mut self, liveness: Option<Liveness>, checkpoint: Option<bool>) {
        match (liveness, checkpoint) {
            (Some(Liveness::Live(Evidence::Chain) | Liveness::Deleted(Evidence::Chain)), _) => {
                self.chain += 1
            }
            (Some(_), _) => self.links += 1,
            (None, Some(_)) => self.checkpoint += 1,
            (None, None) => self.rules += 1,
        }
    }

    /// `chain 120, links 4, checkpoint 0, rules 0`.
    pub fn text(&self) -> String {
        format!(
            "chain {}, links {}, checkpoint {}, rules {}",
            self.chain, self.links, self.checkpoint, self.rules
        )
    }
}

impl Collection {
    /// A collection with nothing in it yet.
    pub(crate) fn empty() -> Collection {
        Collection {
            named_by: NamedBy::Fields,
            duplicates: 0,
            doubted: DoubtCounts::default(),
            learned: 0,
            chained: 0,
            decided: Decided::default(),
        }
    }

    /// Counts a live document placed here by `named_by`.
    fn count_live(&mut self, d: &DocEntry, named_by: NamedBy) {
        self.doubted.add(d.doubts);
        self.learned += usize::from(named_by == NamedBy::Learned);
        self.chained += usize::from(named_by == NamedBy::ExtentChain);
    }
}

/// Every collection, by `db.collection`.
pub type Collections = BTreeMap<String, Collection>;

/// The documents classification reads: front to back, as many times as it needs,
/// from memory (lent, not copied) or from the index file (never all held at once).
pub trait Docs {
    /// How many there are.
    fn count(&self) -> usize;
    /// All of them, in index order, a batch at a time: `each` gets the position of the
    /// batch's first document, and the batch. Lent, not handed over one by one: past
    /// one scan segment, moving each entry (120 bytes) through an iterator's layers
    /// took longer than decoding it.
    fn batches(&self, each: &mut dyn FnMut(usize, &[DocEntry]) -> io::Result<()>)
    -> io::Result<()>;
}

impl Docs for Vec<DocEntry> {
    fn count(&self) -> usize {
        self.len()
    }

    fn batches(
        &self,
        each: &mut dyn FnMut(usize, &[DocEntry]) -> io::Result<()>,
    ) -> io::Result<()> {
        each(0, self)
    }
}

impl Docs for DocsFile {
    fn count(&self) -> usize {
        self.len()
    }

    fn batches(
        &self,
        each: &mut dyn FnMut(usize, &[DocEntry]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.read_batches(each)
    }
}

/// Hands `each` every document of `docs` with its position, in index order.
fn each_doc(
    docs: &dyn Docs,
    mut each: impl FnMut(usize, &DocEntry) -> io::Result<()>,
) -> io::Result<()> {
    docs.batches(&mut |start, batch| (start..).zip(batch).try_for_each(|(i, d)| each(i, d)))
}

/// Which list of its collection a document is served in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum List {
    /// The live documents.
    Live,
    /// The deleted records.
    Deleted,
    /// The versions of the collection's `n`th `_id` with several (in `_id` order).
    Conflict(u64),
}

/// A document and where it is served: what classification sends out, sorted by
/// collection, list, then position in the index (disk order). Every collection
/// holds at least one, and a collection's number orders it by name among all the
/// namespaces classification met, so the distinct numbers in order are the
/// collections of [`Classification::collections`] in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// The collection, numbered in name order.
    pub coll: u32,
    /// The list.
    pub list: List,
    /// Position in the index's documents.
    pub doc: u64,
    /// In a conflict: whether this is the version the live collection holds.
    pub chosen: bool,
    /// What its row needs of the document.
    pub entry: RowSource,
}

/// What laying out a placed document's row needs of its index entry: where its bytes
/// lie, its lengths and its `_id`. Every placed document travels through a sort on disk
/// with it, so the rest of the entry (hashes, links, doubts) stays behind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowSource {
    /// See [`DocEntry::source`].
    pub source: u32,
    /// See [`DocEntry::offset`].
    pub offset: u64,
    /// See [`DocEntry::len`].
    pub len: u32,
    /// See [`DocEntry::json_len`].
    pub json_len: u32,
    /// See [`DocEntry::pretty_len`].
    pub pretty_len: u32,
    /// The WiredTiger page holding it (see [`DocEntry::wt`]).
    pub page: Option<u32>,
    /// See [`DocEntry::deleted`].
    pub deleted: bool,
    /// See [`DocEntry::id`].
    #[serde(with = "crate::index::id_bytes")]
    pub id: DocId,
}

impl From<&DocEntry> for RowSource {
    fn from(d: &DocEntry) -> RowSource {
        RowSource {
            source: d.source,
            offset: d.offset,
            len: d.len,
            json_len: d.json_len,
            pretty_len: d.pretty_len,
            page: d.wt.map(|w| w.page),
            deleted: d.deleted,
            id: d.id.clone(),
        }
    }
}

impl Ord for Placed {
    fn cmp(&self, other: &Placed) -> std::cmp::Ordering {
        (self.coll, self.list, self.doc).cmp(&(other.coll, other.list, other.doc))
    }
}

impl PartialOrd for Placed {
    fn partial_cmp(&self, other: &Placed) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What classification found: the collections' counts, and their documents sorted
/// for laying out.
pub struct Classification {
    /// Every collection, by `db.collection`, in the order of [`Placed::coll`].
    pub collections: Collections,
    /// Every document kept, where it goes, in row order.
    pub placed: Sorted<Placed>,
}

#[cfg(test)]
impl Classification {
    /// Every document of `docs` live in collection `ns` as named on disk (none without
    /// `ns`): for tests of what is served, which need no classification.
    pub(crate) fn all_live(docs: &[DocEntry], ns: Option<&str>, spill: &Spill) -> Classification {
        let mut placed = spill.sorter();
        let mut collections = Collections::new();
        if let Some(ns) = ns {
            let named = Collection {
                named_by: NamedBy::Disk,
                ..Collection::empty()
            };
            collections.insert(ns.to_string(), named);
            for (i, d) in docs.iter().enumerate() {
                let at = Placed {
                    coll: 0,
                    list: List::Live,
                    doc: i as u64,
                    chosen: false,
                    entry: d.into(),
                };
                placed.push(at).unwrap();
            }
        }
        Classification {
            collections,
            placed: placed.sorted().unwrap(),
        }
    }
}

/// A version of an `_id`, sorted by collection and `_id` to find conflicts: what
/// chooses among versions travels with it.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Version {
    ns: u32,
    id: DocId,
    doc: u64,
    /// Reached by its file's newest checkpoint, named on disk, its page's write
    /// generation, copies seen.
    rank: (bool, bool, u64, usize),
    deleted: bool,
    named_by: NamedBy,
    entry: DocEntry,
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> std::cmp::Ordering {
        (self.ns, &self.id, self.doc).cmp(&(other.ns, &other.id, other.doc))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What classification keeps per document: 8 bytes, in memory.
struct Columns {
    ns: Vec<u32>,
    named_by: Vec<NamedBy>,
    links: Vec<Option<Liveness>>,
    removed: Vec<bool>,
}

impl Columns {
    /// Whether document `i` (`d`) is a deleted record.
    fn deleted(&self, i: usize, d: &DocEntry) -> bool {
        d.deleted || self.removed[i] || matches!(self.links[i], Some(Liveness::Deleted(_)))
    }
}

/// Sorts the documents of `index` (read from `docs`) into collections, spilling
/// through `spill`.
///
/// Memory per document is a few bytes of columns and of two [`SeenTwice`] filters
/// (content hashes, `_id`s; at most 64 MB each); everything that groups documents
/// (byte-identical copies, versions of an `_id`, the rows of each collection) is an
/// external sort, so the documents are read front to back four times, never held.
pub fn classify(
    index: &Index,
    docs: &dyn Docs,
    schema: Option<&Schema>,
    spill: &Spill,
) -> io::Result<Classification> {
    let started = std::time::Instant::now();
    let lap = |what: &str| log::debug!("{:.2} s: {what}", started.elapsed().as_secs_f64());
    let mut placer = Placer::new(index, docs, schema)?;
    lap("shapes of the collections named on disk learned");
    let newest = checkpoint::newest(index, placer.files());
    let n = docs.count();
    let mut cols = Columns {
        ns: Vec::with_capacity(n),
        named_by: Vec::with_capacity(n),
        links: vec![None; n],
        removed: vec![false; n],
    };
    let mut versions = spill.sorter();
    let mut page_file: Vec<Option<FileKey>> = vec![None; index.wt_pages.len()];
    let mut walker = liveness::Walker::new(index);
    let mut seen = (SeenTwice::new(n), SeenTwice::new(n));
    each_doc(docs, |i, d| {
        let (ns, by) = placer.place(d);
        cols.ns.push(ns);
        cols.named_by.push(by);
        seen.0.push(d.hash);
        if !d.id.is_empty() {
            seen.1.push(id_key(ns, &d.id));
        }
        if let (Some(wt), Some((file, _))) = (d.wt, placer.files().of(index, d)) {
            versions.push((file, wt.record, i as u64, wt.page))?;
            if let Some(slot) = page_file.get_mut(wt.page as usize) {
                *slot = Some(file);
            }
        }
        walker.feed(i, d, &mut cols.links);
        Ok(())
    })?;
    walker.finish(&mut cols.links);
    lap("documents placed, record lists walked");
    removed_records(
        index,
        versions.sorted()?,
        &page_file,
        &newest,
        &mut cols.removed,
    )?;
    lap("removed WiredTiger records found");
    let names = placer.into_names();
    // Collections in name order: rows are laid out so.
    let mut by_name: Vec<u32> = (0..names.len() as u32).collect();
    by_name.sort_by(|&a, &b| names[a as usize].cmp(&names[b as usize]));
    let mut rank = vec![0u32; names.len()];
    for (r, &ns) in by_name.iter().enumerate() {
        rank[ns as usize] = r as u32;
    }
    let seen = (seen.0.finish(), seen.1.finish());
    let apart = exceptions(docs, &cols, &seen, spill)?;
    lap("byte-identical copies and shared _ids found");
    let (colls, placed) = place_all(index, docs, (&cols, &rank), (&newest, apart), spill)?;
    lap("versions of each _id chosen");
    let collections = names
        .into_iter()
        .zip(colls.into_iter().chain(std::iter::repeat(None)))
        .filter_map(|(ns, c)| Some((ns, c?)))
        .collect();
    Ok(Classification {
        collections,
        placed: placed.sorted()?,
    })
}

/// What sets a few documents apart, as sorted streams of positions: byte-identical
/// copies and documents that may share an `_id` with another of their collection.
struct Exceptions {
    /// `(position, copies)`: 0 for a copy dropped, the number of copies for the one
    /// kept (the most trusted: live, then named on disk, then first on disk) when it
    /// has some; every other document is kept, alone.
    copies: Sorted<(u64, u64)>,
    /// Documents whose [`id_key`] equals another's: their versions are sorted and
    /// compared; every other document with an `_id` is its only version.
    shared_ids: Sorted<u64>,
}

/// A document's hashes, waiting to be looked up in the filters of [`exceptions`].
struct Hashed {
    content: u64,
    pos: u64,
    /// Live, named on disk: which copy is kept.
    trust: (bool, bool),
    /// Its [`id_key`], if it has an `_id`.
    id: Option<u64>,
}

/// The hash of an `_id` in collection number `ns`: equal for versions of one `_id`.
fn id_key(ns: u32, id: &[u8]) -> u64 {
    xxh3_64_with_seed(id, u64::from(ns))
}

/// Finds the [`Exceptions`]: sorts (content hash, position) and ([`id_key`],
/// position), light records, of the documents whose hashes `seen` (content, `_id`)
/// may have met twice, so that only the few documents they single out travel through
/// the sort of versions with their entries.
fn exceptions(
    docs: &dyn Docs,
    cols: &Columns,
    seen: &(Filter, Filter),
    spill: &Spill,
) -> io::Result<Exceptions> {
    let mut by_hash = spill.sorter();
    let mut by_id = spill.sorter();
    // Looked up in the filters a batch at a time (see `SeenTwice`).
    let mut batch = Vec::with_capacity(seen::BATCH);
    let fetch = |h: &Hashed| {
        seen.0.prefetch(h.content);
        if let Some(key) = h.id {
            seen.1.prefetch(key);
        }
    };
    let mut sift = |batch: &mut Vec<Hashed>| {
        for (i, h) in batch.iter().enumerate() {
            if let Some(later) = batch.get(i + seen::AHEAD) {
                fetch(later);
            }
            if seen.0.maybe_again(h.content) {
                by_hash.push((h.content, h.pos, h.trust))?;
            }
            if let Some(key) = h.id.filter(|&k| seen.1.maybe_again(k)) {
                by_id.push((key, h.pos))?;
            }
        }
        batch.clear();
        io::Result::Ok(())
    };
    each_doc(docs, |i, d| {
        batch.push(Hashed {
            content: d.hash,
            pos: i as u64,
            trust: (!cols.deleted(i, d), cols.named_by[i].on_disk()),
            id: (!d.id.is_empty()).then(|| id_key(cols.ns[i], &d.id)),
        });
        match batch.len() == seen::BATCH {
            true => sift(&mut batch),
            false => Ok(()),
        }
    })?;
    sift(&mut batch)?;
    let mut copies = spill.sorter();
    let mut flush = |group: &mut Vec<(u64, u64, (bool, bool))>| -> io::Result<()> {
        // The first most trusted copy: positions ascend within a group.
        let best = group
            .iter()
            .reduce(|best, c| if c.2 > best.2 { c } else { best })
            .map(|b| b.1);
        if group.len() > 1 {
            for &(_, i, _) in group.iter() {
                let n = if Some(i) == best { group.len() } else { 0 };
                copies.push((i, n as u64))?;
            }
        }
        group.clear();
        Ok(())
    };
    let mut group = Vec::new();
    for copy in by_hash.sorted()? {
        let copy = copy?;
        if group
            .last()
            .is_some_and(|g: &(u64, u64, (bool, bool))| g.0 != copy.0)
        {
            flush(&mut group)?;
        }
        group.push(copy);
    }
    flush(&mut group)?;
    let mut shared_ids = spill.sorter();
    let mut last: Option<(u64, u64)> = None;
    let mut in_run = false;
    for key in by_id.sorted()? {
        let key = key?;
        match last {
            Some(l) if l.0 == key.0 => {
                if !in_run {
                    shared_ids.push(l.1)?;
                }
                shared_ids.push(key.1)?;
                in_run = true;
            }
            _ => in_run = false,
        }
        last = Some(key);
    }
    Ok(Exceptions {
        copies: copies.sorted()?,
        shared_ids: shared_ids.sorted()?,
    })
}

/// Places every document kept: deleted records and live documents without `_id` at
/// once, the others after sorting versions by collection and `_id` (a conflict when
/// one has several, one version chosen: a live record before a deleted one, then the
/// one its file's newest checkpoint reaches, then one named on disk, then the newest
/// page's, then the one seen in most copies, then the later on disk). Returns the
/// collections' counts by namespace number and the placed documents (collections by
/// number).
fn place_all(
    index: &Index,
    docs: &dyn Docs,
    (cols, rank): (&Columns, &[u32]),
    (newest, apart): (&[Option<bool>], Exceptions),
    spill: &Spill,
) -> io::Result<(Vec<Option<Collection>>, Sorter<Placed>)> {
    let mut colls: Vec<Option<Collection>> = Vec::new();
    let mut placed = spill.sorter();
    let mut versions = spill.sorter();
    let mut copies = apart.copies.peekable();
    let mut shared_ids = apart.shared_ids.peekable();
    each_doc(docs, |i, d| {
        let pos = i as u64;
        let n = match copies.next_if(|c| c.as_ref().is_ok_and(|c| c.0 == pos)) {
            Some(c) => c?.1 as usize,
            None => 1,
        };
        let shared = shared_ids
            .next_if(|s| s.as_ref().is_ok_and(|&s| s == pos))
            .transpose()?
            .is_some();
        if n == 0 {
            return Ok(());
        }
        let (ns, by) = (cols.ns[i], cols.named_by[i]);
        let slot = colls_slot(&mut colls, ns);
        let coll = slot.get_or_insert_with(Collection::empty);
        coll.named_by = coll.named_by.min(by);
        coll.duplicates += n - 1;
        coll.decided.count(cols.links[i], in_checkpoint(d, newest));
        let deleted = cols.deleted(i, d);
        let at = |list| Placed {
            coll: rank[ns as usize],
            list,
            doc: i as u64,
            chosen: false,
            entry: RowSource::from(d),
        };
        if deleted {
            placed.push(at(List::Deleted))?;
        }
        if !d.id.is_empty() && shared {
            let reached = in_checkpoint(d, newest) == Some(true);
            let rank = (reached, by.on_disk(), write_gen(index, d), n);
            versions.push(Version {
                ns,
                id: d.id.clone(),
                doc: i as u64,
                rank,
                deleted,
                named_by: by,
                entry: d.clone(),
            })?;
        } else if !deleted {
            // Without `_id`, or its collection's only version of it.
            coll.count_live(d, by);
            placed.push(at(List::Live))?;
        }
        Ok(())
    })?;
    // Only an error can be left over.
    copies.next().transpose()?;
    shared_ids.next().transpose()?;
    choose_versions(versions.sorted()?, (&mut colls, rank), &mut placed)?;
    Ok((colls, placed))
}

/// Places the versions of each `_id` that several documents of a collection may share
/// (`versions`, sorted by collection and `_id`): one chosen for the live collection
/// (see [`place_all`]), all listed as a conflict when there are several.
fn choose_versions(
    versions: Sorted<Version>,
    (colls, rank): (&mut Vec<Option<Collection>>, &[u32]),
    placed: &mut Sorter<Placed>,
) -> io::Result<()> {
    let mut conflicts = vec![0u64; colls.len()];
    let mut group: Vec<Version> = Vec::new();
    let mut flush = |group: &mut Vec<Version>| -> io::Result<()> {
        let Some(first) = group.first() else {
            return Ok(());
        };
        let ns = first.ns;
        let chosen = group
            .iter()
            .filter(|v| !v.deleted)
            .max_by_key(|v| (v.rank, v.doc))
            .map(|v| v.doc);
        let coll = colls_slot(colls, ns).get_or_insert_with(Collection::empty);
        let conflict = (group.len() > 1).then(|| {
            conflicts[ns as usize] += 1;
            conflicts[ns as usize] - 1
        });
        for v in group.drain(..) {
            let is_chosen = Some(v.doc) == chosen;
            if is_chosen {
                coll.count_live(&v.entry, v.named_by);
            }
            let at = |list, entry| Placed {
                coll: rank[ns as usize],
                list,
                doc: v.doc,
                chosen: is_chosen,
                entry,
            };
            match conflict {
                Some(k) if is_chosen => {
                    placed.push(at(List::Live, (&v.entry).into()))?;
                    placed.push(at(List::Conflict(k), (&v.entry).into()))?;
                }
                Some(k) => placed.push(at(List::Conflict(k), (&v.entry).into()))?,
                None if is_chosen => placed.push(at(List::Live, (&v.entry).into()))?,
                None => {}
            }
        }
        Ok(())
    };
    for v in versions {
        let v = v?;
        if group.last().is_some_and(|g| (g.ns, &g.id) != (v.ns, &v.id)) {
            flush(&mut group)?;
        }
        group.push(v);
    }
    flush(&mut group)
}

/// The slot of collection number `ns`, the list grown to hold it.
fn colls_slot(colls: &mut Vec<Option<Collection>>, ns: u32) -> &mut Option<Collection> {
    let ns = ns as usize;
    if colls.len() <= ns {
        colls.resize_with(ns + 1, || None);
    }
    &mut colls[ns]
}

/// Marks in `removed` the records a WiredTiger file no longer held, from every
/// version of every record of a known file sorted by (file, record id, position):
/// `(file, record, position, page)`. Where the file's newest checkpoint survived
/// whole, it decides: a record none of whose versions lies in a leaf page that
/// checkpoint reaches was removed. Elsewhere, a leaf page written after the record's
/// newest version holds every record between its first and last key, but not this one
/// (which misses removals at a page's edges). Only within one known file (on a raw
/// disk, pages of several collections mix, and their record ids overlap).
fn removed_records(
    index: &Index,
    versions: Sorted<(FileKey, i64, u64, u32)>,
    page_file: &[Option<FileKey>],
    reached: &[Option<bool>],
    removed: &mut [bool],
) -> io::Result<()> {
    // Leaf pages of known files whose checkpoint is unknown, by (file, first key).
    let mut spans: Vec<(FileKey, i64, usize)> = index
        .wt_pages
        .iter()
        .enumerate()
        .filter(|(n, p)| {
            p.kind == PageKind::RowLeaf && reached.get(*n).copied().flatten().is_none()
        })
        .filter_map(|(n, p)| Some((page_file[n]?, p.keys.0, n)))
        .collect();
    spans.sort_unstable();
    let mut next = 0;
    let mut open: Vec<usize> = Vec::new();
    let mut record: Vec<(FileKey, i64, u64, u32)> = Vec::new();
    let mut decide = |record: &mut Vec<(FileKey, i64, u64, u32)>| {
        let Some(&(file, key, _, _)) = record.first() else {
            return;
        };
        let checkpoint = |page: u32| reached.get(page as usize).copied().flatten();
        let gone = if record.iter().any(|v| checkpoint(v.3).is_some()) {
            !record.iter().any(|v| checkpoint(v.3) == Some(true))
        } else {
            // The pages of this file starting at or before `key`, still open after it.
            while let Some(&(f, first, n)) = spans.get(next)
                && (f, first) <= (file, key)
            {
                open.push(n);
                next += 1;
            }
            open.retain(|&n| page_file[n] == Some(file) && index.wt_pages[n].keys.1 >= key);
            let newest = record.iter().map(|v| page_gen(index, v.3)).max();
            open.iter().any(|&n| {
                let page = &index.wt_pages[n];
                newest < Some(page.write_gen)
                    && !record.iter().any(|v| v.3 as usize == n)
                    && !page.overflow_keys.contains(&key)
            })
        };
        for v in record.drain(..) {
            removed[v.2 as usize] = gone;
        }
    };
    for v in versions {
        let v = v?;
        if record.last().is_some_and(|r| (r.0, r.1) != (v.0, v.1)) {
            decide(&mut record);
        }
        record.push(v);
    }
    decide(&mut record);
    Ok(())
}

/// Whether the newest checkpoint of its file reaches the WiredTiger page holding
/// `d` (`None`: not known, or not a WiredTiger document).
fn in_checkpoint(d: &DocEntry, newest: &[Option<bool>]) -> Option<bool> {
    newest.get(d.wt?.page as usize).copied().flatten()
}

/// The write generation of WiredTiger page `page` (0 if there is none).
fn page_gen(index: &Index, page: u32) -> u64 {
    index.wt_pages.get(page as usize).map_or(0, |p| p.write_gen)
}

/// The write generation of the WiredTiger page holding `d` (0 for others).
fn write_gen(index: &Index, d: &DocEntry) -> u64 {
    d.wt.map_or(0, |w| page_gen(index, w.page))
}

#[cfg(test)]
mod tests;
