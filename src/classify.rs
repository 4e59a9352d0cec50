//! Documents to collections, then de-duplication and conflicts.
//!
//! Where a document goes, in order of trust:
//! 1. the namespace written on disk: an MMAPv1 extent header whose own offset equals the
//!    `extentOfs` in the document's record header; or, for a document of a WiredTiger
//!    file (`collection-7-123.wt`), the namespace mongod's catalog gives that file;
//! 2. a schema (`--schema FILE`, or `--schema-from` an old mongodump): the collection
//!    whose listed fields the document all has, the most specific one when several do;
//!    none: `recovered._unclassified`;
//! 3. without a schema, the WiredTiger file it came from (`recovered.<file>`), else its
//!    set of top-level fields: `recovered.auto_<first fields>`.
//!
//! Byte-identical copies are kept once (the copy with the most trusted namespace).
//! Different documents sharing an `_id` in a collection are a conflict: one version
//! goes in the collection (a live record before a deleted one, then one whose namespace
//! was on disk, then the one from the WiredTiger page written last (highest
//! `write_gen`), then the version seen in most copies, then the later on disk), and
//! every version is listed. Deleted records are never live documents.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::carve::bson;
use crate::carve::wiredtiger::PageKind;
use crate::index::{DocEntry, Index};

/// Collections and the fields that identify their documents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    /// `(db.collection, fields)`, in file order.
    pub collections: Vec<(String, Vec<String>)>,
}

impl Schema {
    /// Parses `{"db.collection": ["field", ...], ...}`.
    pub fn from_json(text: &str) -> Result<Schema> {
        let value: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
        let Some(map) = value.as_object() else {
            bail!("expected an object {{\"db.collection\": [\"field\", ...]}}");
        };
        let mut collections = Vec::new();
        for (ns, fields) in map {
            if !valid_ns(ns) {
                bail!("{ns:?} is not a namespace of the form db.collection");
            }
            let Some(list) = fields.as_array() else {
                bail!("{ns}: expected a list of field names");
            };
            let names = list
                .iter()
                .map(|f| f.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .with_context(|| format!("{ns}: field names must be strings"))?;
            if names.is_empty() {
                bail!("{ns}: list at least one field");
            }
            collections.push((ns.clone(), names));
        }
        Ok(Schema { collections })
    }

    /// Reads a schema file.
    pub fn load(path: &Path) -> Result<Schema> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--schema {}: cannot read it", path.display()))?;
        Schema::from_json(&text).with_context(|| {
            format!(
                "--schema {}: give a JSON object {{\"db.collection\": [\"field\", ...]}}",
                path.display()
            )
        })
    }

    /// Derives a schema from a mongodump directory (`DIR/<db>/<coll>.bson`): each
    /// collection's fields are those present in every one of its dumped documents.
    pub fn from_dump(dir: &Path) -> Result<Schema> {
        let hint = "give the directory of an old mongodump (DIR/<db>/<coll>.bson)";
        let mut collections = Vec::new();
        let mut dbs: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("--schema-from {}: cannot read it; {hint}", dir.display()))?
            .flatten()
            .filter(|e| e.path().is_dir())
            .collect();
        dbs.sort_by_key(|e| e.file_name());
        for db in dbs {
            let mut files: Vec<_> = std::fs::read_dir(db.path())?
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "bson"))
                .collect();
            files.sort_by_key(|e| e.file_name());
            for file in files {
                let bytes = std::fs::read(file.path())?;
                let coll = file
                    .path()
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                let ns = format!("{}.{coll}", db.file_name().to_string_lossy());
                if let Some(fields) = common_fields(&bytes) {
                    collections.push((ns, fields));
                }
            }
        }
        if collections.is_empty() {
            bail!(
                "--schema-from {}: no documents found; {hint}",
                dir.display()
            );
        }
        Ok(Schema { collections })
    }

    /// The collection a document with these fields belongs to: the one with the most
    /// listed fields among those whose fields it all has.
    fn collection_for(&self, fields: &[String]) -> Option<&str> {
        let mut best: Option<(&str, usize)> = None;
        for (ns, wanted) in &self.collections {
            if wanted.iter().all(|w| fields.contains(w)) {
                match best {
                    Some((other, n)) if n == wanted.len() => {
                        log::info!(
                            "fields {fields:?} match {other} and {ns} equally; {other} wins"
                        );
                    }
                    Some((_, n)) if n > wanted.len() => {}
                    _ => best = Some((ns, wanted.len())),
                }
            }
        }
        best.map(|(ns, _)| ns)
    }
}

/// The fields present in every document of a concatenated BSON file, in the order of
/// the first document; `None` without a valid document.
fn common_fields(bytes: &[u8]) -> Option<Vec<String>> {
    let mut common: Option<Vec<String>> = None;
    let mut at = 0;
    while let Some(len) = bson::declared_len(&bytes[at..]) {
        let Some(doc) = bytes.get(at..at + len) else {
            break;
        };
        let Ok(summary) = bson::validate(doc) else {
            break;
        };
        common = Some(match common {
            None => summary.fields.iter().map(|f| f.to_string()).collect(),
            Some(c) => c
                .into_iter()
                .filter(|f| summary.fields.contains(&f.as_str()))
                .collect(),
        });
        at += len;
    }
    common
}

fn valid_ns(ns: &str) -> bool {
    matches!(ns.split_once('.'), Some((db, coll)) if !db.is_empty() && !coll.is_empty())
}

/// How a collection got its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamedBy {
    /// An MMAPv1 extent header on disk.
    Disk,
    /// mongod's catalog (`_mdb_catalog.wt`), for the WiredTiger file it came from.
    Catalog,
    /// The schema.
    Schema,
    /// The WiredTiger file it came from, whose collection the catalog does not name.
    File,
    /// The documents' field names.
    Fields,
}

impl NamedBy {
    /// Short word for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            NamedBy::Disk => "disk",
            NamedBy::Catalog => "catalog",
            NamedBy::Schema => "schema",
            NamedBy::File => "file",
            NamedBy::Fields => "fields",
        }
    }

    /// Written by MongoDB itself, not inferred.
    fn on_disk(self) -> bool {
        matches!(self, NamedBy::Disk | NamedBy::Catalog)
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
}

/// Every collection, by `db.collection`.
pub type Collections = BTreeMap<String, Collection>;

/// Sorts the index's documents into collections.
///
/// Linear in the number of documents apart from one sort by `_id` (a million documents
/// classify in a fraction of a second): namespaces are numbered, not copied per document.
pub fn classify(index: &Index, schema: Option<&Schema>) -> Collections {
    let docs = &index.docs;
    let mut names = Namespaces::default();
    // Where each document goes, decided once per shape when it is not on disk.
    let mut by_shape: Vec<Option<(u32, NamedBy)>> = vec![None; index.shapes.len()];
    let auto = auto_names(index);
    let files = WtFiles::new(index);
    let placed: Vec<(u32, NamedBy)> = docs
        .iter()
        .map(|d| {
            let file = files.of(index, d).map(|(_, name)| name);
            match (ns_on_disk(index, d), file) {
                (Some(ns), _) => (names.number(ns), NamedBy::Disk),
                (None, Some(name)) if let Some(ns) = files.namespace(name) => {
                    (names.number(ns), NamedBy::Catalog)
                }
                (None, Some(name)) if schema.is_none() => {
                    (names.number(&format!("recovered.{name}")), NamedBy::File)
                }
                _ => *by_shape[d.shape as usize].get_or_insert_with(|| {
                    let fields = &index.shapes[d.shape as usize];
                    match schema {
                        Some(s) => match s.collection_for(fields) {
                            Some(ns) => (names.number(ns), NamedBy::Schema),
                            None => (names.number("recovered._unclassified"), NamedBy::Schema),
                        },
                        None => (names.number(&auto[d.shape as usize]), NamedBy::Fields),
                    }
                }),
            }
        })
        .collect();

    let removed = removed_records(index, &files);
    let deleted = |i: usize| docs[i].deleted || removed[i];

    // Byte-identical copies: keep the most trusted one.
    let trust = |i: usize| (!deleted(i), placed[i].1.on_disk());
    let mut best: HashMap<u64, usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(docs.len(), Default::default());
    let mut copies = vec![1usize; docs.len()];
    for i in 0..docs.len() {
        match best.get_mut(&docs[i].hash) {
            None => {
                best.insert(docs[i].hash, i);
            }
            Some(kept) => {
                copies[*kept] += 1;
                if trust(i) > trust(*kept) {
                    copies[i] = copies[*kept];
                    *kept = i;
                }
            }
        }
    }
    let mut kept: Vec<usize> = best.into_values().collect();
    kept.sort_unstable();

    let mut colls: Vec<Collection> = (0..names.list.len())
        .map(|_| Collection {
            named_by: NamedBy::Fields,
            docs: Vec::new(),
            deleted: Vec::new(),
            duplicates: 0,
            conflicts: Vec::new(),
        })
        .collect();
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
            .max_by_key(|&i| (placed[i].1.on_disk(), write_gen(index, i), copies[i], i));
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
        .list
        .into_iter()
        .zip(colls)
        .zip(used)
        .filter(|(_, used)| *used)
        .map(|((ns, mut coll), _)| {
            coll.docs.sort_unstable();
            (ns, coll)
        })
        .collect()
}

/// Namespaces numbered in order of first use.
#[derive(Default)]
struct Namespaces {
    list: Vec<String>,
    numbers: HashMap<String, u32>,
}

impl Namespaces {
    fn number(&mut self, ns: &str) -> u32 {
        if let Some(&n) = self.numbers.get(ns) {
            return n;
        }
        let n = self.list.len() as u32;
        self.list.push(ns.to_string());
        self.numbers.insert(ns.to_string(), n);
        n
    }
}

/// Which WiredTiger file a document came from (`collection-7-123`), and what the
/// catalog calls it: the source's own name when the source is a `.wt` file, else the
/// file its page was traced to from WiredTiger's metadata (see [`Index::wt_trees`]).
struct WtFiles<'a> {
    /// Per source: its file name without `.wt`, if it is a WiredTiger file.
    sources: Vec<Option<&'a str>>,
    /// ident -> (write_gen, namespace): the latest catalog entry of each ident.
    catalog: HashMap<&'a str, (u64, &'a str)>,
}

/// A WiredTiger file: a source, or a file traced on a raw disk (its name's position in
/// [`Index::wt_trees`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FileKey {
    Source(u32),
    Tree(u32),
}

impl<'a> WtFiles<'a> {
    fn new(index: &'a Index) -> WtFiles<'a> {
        let mut catalog: HashMap<&str, (u64, &str)> = HashMap::new();
        for e in &index.wt_catalog {
            let slot = catalog.entry(&e.ident).or_insert((e.write_gen, &e.ns));
            if e.write_gen > slot.0 {
                *slot = (e.write_gen, &e.ns);
            }
        }
        let sources = index
            .sources
            .iter()
            .map(|s| {
                s.path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".wt"))
            })
            .collect();
        WtFiles { sources, catalog }
    }

    /// The file of a document of a WiredTiger page, if known, and its name.
    fn of(&self, index: &'a Index, d: &DocEntry) -> Option<(FileKey, &'a str)> {
        let wt = d.wt?;
        if let Some(name) = self.sources[d.source as usize] {
            return Some((FileKey::Source(d.source), name));
        }
        let tree = index.wt_pages.get(wt.page as usize)?.tree?;
        let name = index.wt_trees.get(tree as usize)?;
        Some((FileKey::Tree(tree), name))
    }

    /// The namespace the catalog gives file `name`.
    fn namespace(&self, name: &str) -> Option<&'a str> {
        self.catalog
            .get(name)
            .map(|&(_, ns)| ns)
            .filter(|ns| valid_ns(ns))
    }
}

/// Which documents are records a WiredTiger file no longer held: a leaf page written
/// after the record's newest version holds every record between its first and last
/// key, but not this one. Only within one known file (on a raw disk, pages of several
/// collections mix, and their record ids overlap).
fn removed_records(index: &Index, files: &WtFiles) -> Vec<bool> {
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
    for (n, page) in index.wt_pages.iter().enumerate() {
        let Some(file) = page_file[n].filter(|_| page.kind == PageKind::RowLeaf) else {
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
            if newest < Some(page.write_gen)
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

/// The write generation of the WiredTiger page holding document `i` (0 for others).
fn write_gen(index: &Index, i: usize) -> u64 {
    index.docs[i]
        .wt
        .and_then(|w| index.wt_pages.get(w.page as usize))
        .map_or(0, |p| p.write_gen)
}

/// The namespace of the extent holding `doc`, if its record header points to it.
fn ns_on_disk<'a>(index: &'a Index, doc: &DocEntry) -> Option<&'a str> {
    let extent_ofs = doc.extent_ofs?;
    let extents = &index.ns_extents;
    let after = extents.partition_point(|e| (e.source, e.offset) <= (doc.source, doc.offset));
    let e = extents[..after].last()?;
    (e.source == doc.source
        && doc.offset < e.offset + e.len
        && e.file_ofs == extent_ofs
        && !e.ns.contains('$'))
    .then_some(e.ns.as_str())
}

/// Readable, stable names for field sets: `recovered.auto_<first fields>`, made unique
/// with a number in shape order.
fn auto_names(index: &Index) -> Vec<String> {
    let mut used: HashMap<String, usize> = HashMap::new();
    index
        .shapes
        .iter()
        .map(|fields| {
            let mut base: String = fields
                .iter()
                .filter(|f| f.as_str() != "_id")
                .take(3)
                .map(|f| {
                    f.chars()
                        .map(|c| if c.is_alphanumeric() { c } else { '_' })
                        .take(20)
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("_");
            if base.is_empty() {
                base = "id_only".into();
            }
            let n = used.entry(base.clone()).or_insert(0);
            *n += 1;
            if *n == 1 {
                format!("recovered.auto_{base}")
            } else {
                format!("recovered.auto_{base}_{n}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_file_errors_explain() {
        assert!(Schema::from_json("[1]").is_err());
        assert!(Schema::from_json(r#"{"nodot": ["a"]}"#).is_err());
        assert!(Schema::from_json(r#"{"a.b": "x"}"#).is_err());
        assert!(Schema::from_json(r#"{"a.b": [1]}"#).is_err());
        let s = Schema::from_json(r#"{"a.b": ["x", "y"], "a.c": ["x"]}"#).unwrap();
        let fields = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(s.collection_for(&fields(&["x", "y", "z"])), Some("a.b"));
        assert_eq!(s.collection_for(&fields(&["x"])), Some("a.c"));
        assert_eq!(s.collection_for(&fields(&["y"])), None);
    }
}
