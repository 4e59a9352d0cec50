//! Where one document goes: the placement rule of [`super`]'s module doc, as an object
//! ([`Placer::place`]) that unit tests drive with an index built in memory.

use std::collections::{BTreeMap, HashMap};

use std::io;

use super::chain::Chains;
use super::schema::{Schema, valid_ns};
use super::{Docs, NamedBy};
use crate::index::{DocEntry, Index, WtPage};

/// Decides each document's collection, in order of trust: the namespace on disk, mongod's
/// catalog for its WiredTiger file, the file itself (without a schema), the schema, its
/// fields. Namespaces are numbered in order of first use, not copied per document.
pub struct Placer<'a> {
    index: &'a Index,
    schema: Option<&'a Schema>,
    names: Namespaces,
    /// Where each shape goes when nothing on disk names a document: decided once.
    by_shape: Vec<Option<(u32, NamedBy)>>,
    auto: Vec<String>,
    files: WtFiles<'a>,
    /// Where the documents of a WiredTiger file that no catalog names go, by file:
    /// its name is made once, not per document.
    by_file: HashMap<FileKey, u32, foldhash::fast::RandomState>,
    chains: Chains<'a>,
    learned: Learned,
    /// See [`ns_on_disk`].
    extents_before: usize,
}

impl<'a> Placer<'a> {
    /// A placer for the documents of `index` (read once from `docs`, to learn the
    /// shapes of the collections named on disk), with the user's schema if any.
    pub fn new(
        index: &'a Index,
        docs: &dyn Docs,
        schema: Option<&'a Schema>,
    ) -> io::Result<Placer<'a>> {
        let files = WtFiles::new(index);
        let chains = Chains::new(index);
        Ok(Placer {
            index,
            schema,
            names: Namespaces::default(),
            by_shape: vec![None; index.shapes.len()],
            auto: auto_names(index),
            learned: Learned::new(index, docs, (&files, &chains))?,
            files,
            by_file: HashMap::default(),
            chains,
            extents_before: 0,
        })
    }

    /// The namespace MongoDB itself wrote for `d`: its MMAPv1 extent header's (or, that
    /// header lost, the extent chain's), or the one mongod's catalog gives its
    /// WiredTiger file.
    fn named_on_disk(
        index: &'a Index,
        (files, chains): (&WtFiles<'a>, &Chains<'a>),
        d: &DocEntry,
        extents_before: &mut usize,
    ) -> Option<(&'a str, NamedBy)> {
        if let Some(ns) = ns_on_disk(index, d, extents_before) {
            return Some((ns, NamedBy::Disk));
        }
        if let Some(ns) = chains.namespace(index, d).filter(|ns| !ns.contains('$')) {
            return Some((ns, NamedBy::ExtentChain));
        }
        let (_, name) = files.of(index, d)?;
        files.namespace(name).map(|ns| (ns, NamedBy::Catalog))
    }

    /// The collection (numbered: see [`Placer::into_names`]) and how it was named.
    pub fn place(&mut self, d: &DocEntry) -> (u32, NamedBy) {
        let index = self.index;
        let on_disk = (&self.files, &self.chains);
        if let Some((ns, by)) = Self::named_on_disk(index, on_disk, d, &mut self.extents_before) {
            return (self.names.number(ns), by);
        }
        match self.files.of(index, d) {
            Some((file, name)) if self.schema.is_none() => {
                let names = &mut self.names;
                let by_file = self.by_file.entry(file);
                let n = by_file.or_insert_with(|| names.number(&format!("recovered.{name}")));
                (*n, NamedBy::File)
            }
            _ => self.by_fields(d.shape as usize),
        }
    }

    /// Where a document that nothing on disk names goes, by its field names.
    fn by_fields(&mut self, shape: usize) -> (u32, NamedBy) {
        if let Some(Some(placed)) = self.by_shape.get(shape) {
            return *placed;
        }
        let fields = self.index.shapes.get(shape).map_or(&[][..], Vec::as_slice);
        let by_schema = self.schema.and_then(|s| s.collection_for(fields));
        let placed = match (by_schema, self.learned.collection_for(shape, fields)) {
            (Some(ns), _) => (self.names.number(ns), NamedBy::Schema),
            (None, Some(ns)) => {
                let ns = ns.to_string();
                (self.names.number(&ns), NamedBy::Learned)
            }
            (None, None) if self.schema.is_some() => (
                self.names.number("recovered._unclassified"),
                NamedBy::Schema,
            ),
            (None, None) => {
                let ns = self
                    .auto
                    .get(shape)
                    .map_or("recovered.auto_unknown", String::as_str);
                (self.names.number(ns), NamedBy::Fields)
            }
        };
        if let Some(slot) = self.by_shape.get_mut(shape) {
            *slot = Some(placed);
        }
        placed
    }

    /// The WiredTiger files documents came from.
    pub(super) fn files(&self) -> &WtFiles<'a> {
        &self.files
    }

    /// The namespaces, by number.
    pub fn into_names(self) -> Vec<String> {
        self.names.list
    }
}

/// The shapes of the collections MongoDB named on disk, learned from their documents:
/// where a document nothing names goes when its field set is one of theirs (exactly,
/// else a superset of the fields every document of one collection has).
struct Learned {
    /// Per shape: the named collection holding most documents of exactly that shape.
    exact: Vec<Option<String>>,
    /// Per named collection, the fields all its documents have (at least three).
    common: Schema,
}

impl Learned {
    fn new(
        index: &Index,
        docs: &dyn Docs,
        (files, chains): (&WtFiles, &Chains),
    ) -> io::Result<Learned> {
        let mut counts: HashMap<(u32, &str), usize, foldhash::fast::RandomState> =
            HashMap::default();
        let mut extents_before = 0;
        // Neighbours mostly share shape and collection: counted as a run, the table
        // is looked up once per run, not hashed per document.
        let mut run: Option<((u32, &str), usize)> = None;
        super::each_doc(docs, |_, d| {
            let named = Placer::named_on_disk(index, (files, chains), d, &mut extents_before);
            if let Some((ns, _)) = named {
                match &mut run {
                    Some((key, n)) if *key == (d.shape, ns) => *n += 1,
                    _ => {
                        if let Some((key, n)) = run.replace(((d.shape, ns), 1)) {
                            *counts.entry(key).or_default() += n;
                        }
                    }
                }
            }
            Ok(())
        })?;
        if let Some((key, n)) = run {
            *counts.entry(key).or_default() += n;
        }
        let mut exact: Vec<Option<(usize, &str)>> = vec![None; index.shapes.len()];
        let mut common: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for (&(shape, ns), &n) in &counts {
            let Some(slot) = exact.get_mut(shape as usize) else {
                continue;
            };
            // Most documents wins; between equals, the first name in order (stable).
            if slot.is_none_or(|(m, other)| n > m || (n == m && ns < other)) {
                *slot = Some((n, ns));
            }
            let fields = &index.shapes[shape as usize];
            common
                .entry(ns)
                .and_modify(|c| c.retain(|f| fields.contains(f)))
                .or_insert_with(|| fields.clone());
        }
        let collections = common
            .into_iter()
            .filter(|(_, fields)| fields.len() >= 3)
            .map(|(ns, fields)| (ns.to_string(), fields))
            .collect();
        Ok(Learned {
            exact: exact
                .into_iter()
                .map(|e| e.map(|(_, ns)| ns.to_string()))
                .collect(),
            common: Schema { collections },
        })
    }

    /// The named collection whose documents look like `shape` (with `fields`).
    fn collection_for(&self, shape: usize, fields: &[String]) -> Option<&str> {
        match self.exact.get(shape) {
            Some(Some(ns)) => Some(ns),
            _ => self.common.collection_for(fields),
        }
    }
}

/// Namespaces numbered in order of first use.
#[derive(Default)]
struct Namespaces {
    list: Vec<String>,
    numbers: HashMap<String, u32, foldhash::fast::RandomState>,
    /// The number given last: documents come in disk order, mostly many of one
    /// collection in a row.
    last: Option<u32>,
}

impl Namespaces {
    fn number(&mut self, ns: &str) -> u32 {
        if let Some(n) = self.last.filter(|&n| self.list[n as usize] == ns) {
            return n;
        }
        let n = match self.numbers.get(ns) {
            Some(&n) => n,
            None => {
                let n = self.list.len() as u32;
                self.list.push(ns.to_string());
                self.numbers.insert(ns.to_string(), n);
                n
            }
        };
        self.last = Some(n);
        n
    }
}

/// Which WiredTiger file a document came from (`collection-7-123`), and what the
/// catalog calls it: the source's own name when the source is a `.wt` file, else the
/// file its page was traced to from WiredTiger's metadata (see [`Index::wt_files`]).
pub(super) struct WtFiles<'a> {
    /// Per source: its file name without `.wt`, if it is a WiredTiger file.
    sources: Vec<Option<&'a str>>,
    /// ident -> (write_gen, namespace): the latest catalog entry of each ident.
    catalog: HashMap<&'a str, (u64, &'a str)>,
}

/// A WiredTiger file: a source, or a file traced on a raw disk (its name's position in
/// [`Index::wt_files`]).
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub(super) enum FileKey {
    Source(u32),
    Traced(u32),
}

impl<'a> WtFiles<'a> {
    pub(super) fn new(index: &'a Index) -> WtFiles<'a> {
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
    pub(super) fn of(&self, index: &'a Index, d: &DocEntry) -> Option<(FileKey, &'a str)> {
        let wt = d.wt?;
        if let Some(name) = self.sources[d.source as usize] {
            return Some((FileKey::Source(d.source), name));
        }
        let file = index.wt_pages.get(wt.page as usize)?.file?;
        let name = index.wt_files.get(file as usize)?;
        Some((FileKey::Traced(file), name))
    }

    /// The name of the file a WiredTiger page belongs to, if known.
    pub(super) fn of_page(&self, index: &'a Index, page: &WtPage) -> Option<&'a str> {
        match self.sources.get(page.source as usize).copied().flatten() {
            Some(name) => Some(name),
            None => index.wt_files.get(page.file? as usize).map(String::as_str),
        }
    }

    /// The namespace the catalog gives file `name`.
    pub(super) fn namespace(&self, name: &str) -> Option<&'a str> {
        self.catalog
            .get(name)
            .map(|&(_, ns)| ns)
            .filter(|ns| valid_ns(ns))
    }
}

/// The namespace of the extent holding `doc`, if its record header points to it.
/// `extents_before` is how many extents start at or before the document looked at
/// last: documents come in disk order, so most lie in the same extent as the one
/// before and are placed without a search.
fn ns_on_disk<'a>(index: &'a Index, doc: &DocEntry, extents_before: &mut usize) -> Option<&'a str> {
    let ns_header_ofs = doc.ns_header_ofs?;
    let extents = &index.ns_headers;
    let at = (doc.source, doc.offset);
    let starts_before = |i: usize| extents.get(i).is_some_and(|e| (e.source, e.offset) <= at);
    let n = *extents_before;
    if !(n > 0 && starts_before(n - 1) && !starts_before(n)) {
        *extents_before = extents.partition_point(|e| (e.source, e.offset) <= at);
    }
    let e = extents[..*extents_before].last()?;
    (e.source == doc.source
        && doc.offset < e.offset + e.len
        && e.file_ofs == ns_header_ofs
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
