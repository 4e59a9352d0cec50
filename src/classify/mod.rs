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

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::carve::wiredtiger::PageKind;
use crate::index::{DocEntry, DoubtCounts, Index};
use liveness::{Evidence, Liveness};
pub use place::Placer;
use place::{FileKey, WtFiles};
pub use schema::Schema;

/// How a collection got its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// Documents sharing an `_id` with different contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// Every version (positions in [`Index::docs`]), in disk order.
    pub versions: Vec<usize>,
    /// The version in the live collection, if any was live.
    pub chosen: Option<usize>,
}

/// One collection's documents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// How the name was found (the most trusted way among its documents).
    pub named_by: NamedBy,
    /// Live documents (positions in [`Index::docs`]), in disk order.
    pub docs: Vec<usize>,
    /// Deleted records, in disk order.
    pub deleted: Vec<usize>,
    /// Byte-identical copies dropped.
    pub duplicates: usize,
    /// `_id`s with more than one version.
    pub conflicts: Vec<Conflict>,
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
            docs: Vec::new(),
            deleted: Vec::new(),
            duplicates: 0,
            conflicts: Vec::new(),
            doubted: DoubtCounts::default(),
            learned: 0,
            chained: 0,
            decided: Decided::default(),
        }
    }
}

/// Every collection, by `db.collection`.
pub type Collections = BTreeMap<String, Collection>;

/// Sorts the index's documents into collections.
///
/// Linear in the number of documents apart from one sort by `_id` (a million documents
/// classify in a fraction of a second): namespaces are numbered, not copied per document.
pub fn classify(index: &Index, schema: Option<&Schema>) -> Collections {
    let docs = &index.docs;
    let mut placer = Placer::new(index, schema);
    let placed: Vec<(u32, NamedBy)> = docs.iter().map(|d| placer.place(d)).collect();
    let newest = checkpoint::newest(index, placer.files());
    let removed = removed_records(index, placer.files(), &newest);
    let links = liveness::mmapv1(index);
    let names = placer.into_names();
    let deleted =
        |i: usize| docs[i].deleted || removed[i] || matches!(links[i], Some(Liveness::Deleted(_)));

    let (kept, copies) = identical_copies(docs, |i| (!deleted(i), placed[i].1.on_disk()));
    let mut colls: Vec<Collection> = (0..names.len()).map(|_| Collection::empty()).collect();
    let mut used = vec![false; colls.len()];
    let mut with_id = Vec::new();
    for &i in &kept {
        let (ns, named_by) = placed[i];
        let coll = &mut colls[ns as usize];
        if !used[ns as usize] || named_by.on_disk() {
            coll.named_by = named_by;
        }
        used[ns as usize] = true;
        coll.duplicates += copies[i] - 1;
        coll.decided
            .count(links[i], in_checkpoint(index, &newest, i));
        if deleted(i) {
            coll.deleted.push(i);
        }
        if docs[i].id.is_empty() {
            if !deleted(i) {
                coll.docs.push(i);
            }
        } else {
            with_id.push(i);
        }
    }
    // Versions of one `_id` in one collection, in disk order.
    with_id.sort_unstable_by(|&a, &b| {
        (placed[a].0, &docs[a].id, a).cmp(&(placed[b].0, &docs[b].id, b))
    });
    for versions in
        with_id.chunk_by(|&a, &b| placed[a].0 == placed[b].0 && docs[a].id == docs[b].id)
    {
        let coll = &mut colls[placed[versions[0]].0 as usize];
        let chosen = versions
            .iter()
            .copied()
            .filter(|&i| !deleted(i))
            .max_by_key(|&i| {
                let reached = in_checkpoint(index, &newest, i) == Some(true);
                (
                    reached,
                    placed[i].1.on_disk(),
                    write_gen(index, i),
                    copies[i],
                    i,
                )
            });
        if let Some(c) = chosen {
            coll.docs.push(c);
        }
        if versions.len() > 1 {
            coll.conflicts.push(Conflict {
                versions: versions.to_vec(),
                chosen,
            });
        }
    }
    names
        .into_iter()
        .zip(colls)
        .zip(used)
        .filter(|(_, used)| *used)
        .map(|((ns, mut coll), _)| {
            coll.docs.sort_unstable();
            for &i in &coll.docs {
                coll.doubted.add(docs[i].doubts);
                coll.learned += usize::from(placed[i].1 == NamedBy::Learned);
                coll.chained += usize::from(placed[i].1 == NamedBy::ExtentChain);
            }
            (ns, coll)
        })
        .collect()
}

/// Byte-identical copies (same hash): the positions of the documents kept, the most
/// trusted copy of each (by `trust`, the first on disk among equals), and per document
/// how many copies its kept one stands for (meaningful for the kept ones).
///
/// By sorting (hash, position) pairs rather than with a map of every hash: 16 bytes
/// per document instead of a table of up to twice as many 17-byte slots.
fn identical_copies<T: Ord>(
    docs: &[DocEntry],
    trust: impl Fn(usize) -> T,
) -> (Vec<usize>, Vec<usize>) {
    let mut by_hash: Vec<(u64, usize)> =
        docs.iter().enumerate().map(|(i, d)| (d.hash, i)).collect();
    by_hash.sort_unstable();
    let mut copies = vec![1usize; docs.len()];
    let mut kept: Vec<usize> = by_hash
        .chunk_by(|a, b| a.0 == b.0)
        .map(|same| {
            // The first most trusted copy: positions ascend within a group.
            let best = same
                .iter()
                .map(|&(_, i)| i)
                .reduce(|best, i| if trust(i) > trust(best) { i } else { best })
                .unwrap_or_default();
            copies[best] = same.len();
            best
        })
        .collect();
    kept.sort_unstable();
    (kept, copies)
}

/// Which documents are records a WiredTiger file no longer held. Where the file's
/// newest checkpoint survived whole, it decides: a record none of whose versions lies
/// in a leaf page that checkpoint reaches was removed. Elsewhere, a leaf page written
/// after the record's newest version holds every record between its first and last
/// key, but not this one (which misses removals at a page's edges). Only within one
/// known file (on a raw disk, pages of several collections mix, and their record ids
/// overlap).
fn removed_records(index: &Index, files: &WtFiles, reached: &[Option<bool>]) -> Vec<bool> {
    let docs = &index.docs;
    let mut removed = vec![false; docs.len()];
    // Every version of every record of a known file, by (file, record id).
    let mut versions: Vec<(FileKey, i64, usize)> = Vec::new();
    let mut page_file: Vec<Option<FileKey>> = vec![None; index.wt_pages.len()];
    for (i, d) in docs.iter().enumerate() {
        if let (Some(wt), Some((file, _))) = (d.wt, files.of(index, d)) {
            versions.push((file, wt.record, i));
            if let Some(slot) = page_file.get_mut(wt.page as usize) {
                *slot = Some(file);
            }
        }
    }
    if versions.is_empty() {
        return removed;
    }
    versions.sort_unstable();
    let records: Vec<&[(FileKey, i64, usize)]> =
        versions.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)).collect();
    for record in &records {
        let checkpoint = |&(_, _, i): &(FileKey, i64, usize)| in_checkpoint(index, reached, i);
        if record.iter().any(|v| checkpoint(v).is_some()) {
            let gone = !record.iter().any(|v| checkpoint(v) == Some(true));
            for &(_, _, i) in record.iter() {
                removed[i] = gone;
            }
        }
    }
    for (n, page) in index.wt_pages.iter().enumerate() {
        let known = page_file[n].filter(|_| page.kind == PageKind::RowLeaf);
        let Some(file) = known.filter(|_| reached.get(n).copied().flatten().is_none()) else {
            continue;
        };
        let (first, last) = page.keys;
        let from = records.partition_point(|r| (r[0].0, r[0].1) < (file, first));
        let to = records.partition_point(|r| (r[0].0, r[0].1) <= (file, last));
        for record in &records[from..to] {
            let newest = record.iter().map(|&(_, _, i)| write_gen(index, i)).max();
            let here = |&(_, _, i): &(FileKey, i64, usize)| {
                docs[i].wt.is_some_and(|w| w.page as usize == n)
            };
            let decided = record
                .iter()
                .any(|&(_, _, i)| in_checkpoint(index, reached, i).is_some());
            if newest < Some(page.write_gen)
                && !decided
                && !record.iter().any(here)
                && !page.overflow_keys.contains(&record[0].1)
            {
                for &(_, _, i) in record.iter() {
                    removed[i] = true;
                }
            }
        }
    }
    removed
}

/// Whether the newest checkpoint of its file reaches the WiredTiger page holding
/// document `i` (`None`: not known, or not a WiredTiger document).
fn in_checkpoint(index: &Index, newest: &[Option<bool>], i: usize) -> Option<bool> {
    let page = index.docs[i].wt?.page;
    newest.get(page as usize).copied().flatten()
}

/// The write generation of the WiredTiger page holding document `i` (0 for others).
fn write_gen(index: &Index, i: usize) -> u64 {
    index.docs[i]
        .wt
        .and_then(|w| index.wt_pages.get(w.page as usize))
        .map_or(0, |p| p.write_gen)
}

#[cfg(test)]
mod tests;
