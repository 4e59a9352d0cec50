//! Lays the classified documents out under `/mongo`:
//!
//! ```text
//! mongo/summary.tsv                      per collection: documents, duplicates, conflicts...
//! mongo/dump/<db>/<coll>.bson            the live documents, as stored (mongorestore --dir)
//! mongo/dump/<db>/<coll>.metadata.json   the default _id index, for mongorestore
//! mongo/json/<db>/<coll>.json            one Extended JSON document per line
//! mongo/docs/<db>/<coll>/<_id>.json      one indented document per file
//! mongo/conflicts/<db>/<coll>/<_id>/     every version of an _id with several versions
//! mongo/deleted/{dump,json}/<db>/...     deleted records, never mixed with live ones
//! mongo/wiredtiger.tsv                   mongod's catalog as found: file -> collection
//! ```
//!
//! Nothing is rendered here: `.json` files are lists of document extents whose lengths
//! the scan measured.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use super::{DirTable, Tree};
use crate::extent::{Extent, ExtentList};
use crate::index::{Index, Span, WtPage};
use crate::report;
use crate::served::names::{id_name, safe_name};
use crate::served::{self, DocTable, Rows, RowsFile, Served, ServedCollection};

/// Adds `/mongo` to `tree` (nothing when no document was found); returns the files
/// that hold bytes of unreadable ranges, with how many.
pub fn add(tree: &mut Tree, served: &Served) -> Vec<(u64, u64)> {
    let collections = &served.classified.collections;
    let mut unreadable = Vec::new();
    if collections.is_empty() {
        return unreadable;
    }
    let mut tsv = String::from(
        "collection\tdocuments\tduplicates\tconflicts\tdeleted\tbytes\tdoubted\tliveness_by\tnamed_by\n",
    );
    let dirs = dir_names(collections.iter().map(|c| c.ns.as_str()));
    for (coll, (db, name)) in collections.iter().zip(dirs) {
        let _ = writeln!(
            tsv,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            coll.ns,
            coll.live.count,
            coll.duplicates,
            coll.conflicts.len(),
            coll.deleted.count,
            coll.live.bson,
            report::doubt_list(&coll.doubted),
            coll.decided.text(),
            coll.named_by_text(),
        );
        let table = &served.table;
        let (dump, json) = (format!("mongo/dump/{db}"), format!("mongo/json/{db}"));
        unreadable.extend(add_collection(
            tree,
            table,
            (&dump, &json),
            &name,
            coll.live,
        ));
        tree.add_file(
            &dump,
            &format!("{name}.metadata.json"),
            ExtentList::from_bytes(metadata(&name).into_bytes()),
        );
        let docs = format!("mongo/docs/{db}/{name}");
        let dir = add_docs(tree, served, &docs, coll.live);
        if coll.live.unreadable > 0 {
            // README.txt names the directory; its files say which they are (stat).
            unreadable.push((dir, coll.live.unreadable));
        }
        if coll.deleted.count > 0 {
            let dump = format!("mongo/deleted/dump/{db}");
            let json = format!("mongo/deleted/json/{db}");
            unreadable.extend(add_collection(
                tree,
                table,
                (&dump, &json),
                &name,
                coll.deleted,
            ));
        }
        let dir = format!("mongo/conflicts/{db}/{name}");
        unreadable.extend(add_conflicts(tree, served, &dir, coll));
    }
    tree.add_file(
        "mongo",
        "summary.tsv",
        ExtentList::from_bytes(tsv.into_bytes()),
    );
    let index = &served.index;
    if !index.wt_catalog.is_empty() {
        let mut tsv = String::from("file\tcollection\twrite_gen\n");
        for e in &index.wt_catalog {
            let _ = writeln!(tsv, "{}.wt\t{}\t{}", e.ident, e.ns, e.write_gen);
        }
        tree.add_file(
            "mongo",
            "wiredtiger.tsv",
            ExtentList::from_bytes(tsv.into_bytes()),
        );
    }
    unreadable
}

/// `<dump>/<name>.bson` and `<json>/<name>.json` for the documents `rows`; returns
/// the two files when their documents lie in unreadable ranges.
fn add_collection(
    tree: &mut Tree,
    table: &Arc<DocTable>,
    (dump, json): (&str, &str),
    name: &str,
    rows: Rows,
) -> Vec<(u64, u64)> {
    let file = |json| {
        ExtentList::Lazy(Arc::new(RowsFile {
            table: table.clone(),
            rows,
            json,
        }))
    };
    let bson = tree.add_file(dump, &format!("{name}.bson"), file(false));
    let json = tree.add_file(json, &format!("{name}.json"), file(true));
    match rows.unreadable {
        0 => Vec::new(),
        n => vec![(bson, n), (json, n)],
    }
}

/// One indented file per document, named after its `_id`: a directory read from the
/// index's rows, since a collection may hold millions of documents. Returns its inode.
fn add_docs(tree: &mut Tree, served: &Served, dir: &str, rows: Rows) -> u64 {
    // What tells a document in an unreadable range: only kept when there are some.
    let index = &served.index;
    let damage = (rows.unreadable > 0).then(|| Damage {
        bad: index.bad_ranges.clone(),
        pages: index.wt_pages.clone(),
    });
    let docs = DocsDir {
        table: served.table.clone(),
        rows,
        damage,
    };
    tree.add_table_dir(dir, Box::new(docs))
}

/// The scan's unreadable ranges, and the WiredTiger pages documents are read from.
#[derive(Debug)]
struct Damage {
    bad: Vec<Span>,
    pages: Vec<WtPage>,
}

/// A collection's `docs/` directory: file `i` is the `i`th live document, listed in
/// disk order and found by name through the index's name order.
#[derive(Debug)]
struct DocsDir {
    table: Arc<DocTable>,
    rows: Rows,
    damage: Option<Damage>,
}

impl DirTable for DocsDir {
    fn len(&self) -> u64 {
        self.rows.count
    }

    fn bytes(&self) -> u64 {
        self.rows.pretty
    }

    fn name(&self, i: u64) -> Option<String> {
        let mut name = self.table.name(self.rows.start + i).ok()?;
        name.push_str(".json");
        Some(name)
    }

    fn file(&self, i: u64) -> Option<ExtentList> {
        let row = self.rows.start + i;
        Some(pretty(row, self.table.row(row).ok()?.pretty_len))
    }

    fn find(&self, name: &str) -> Option<u64> {
        let row = self.table.find(self.rows, name.strip_suffix(".json")?)?;
        Some(row - self.rows.start)
    }

    fn unreadable(&self, i: u64) -> bool {
        let (Some(damage), Ok(d)) = (&self.damage, self.table.row(self.rows.start + i)) else {
            return false;
        };
        let (start, end) = served::read_range(&damage.pages, d.page, d.offset, d.len);
        served::unreadable_bytes(&damage.bad, d.source, start, end) > 0
    }
}

/// `<dir>/<_id>/<place>-<state>.json` for every version of each conflicting `_id`;
/// returns the files that lie in unreadable ranges.
fn add_conflicts(
    tree: &mut Tree,
    served: &Served,
    dir: &str,
    coll: &ServedCollection,
) -> Vec<(u64, u64)> {
    let (index, table) = (&served.index, &served.table);
    let mut used = Used::default();
    let mut unreadable = Vec::new();
    for conflict in &coll.conflicts {
        let versions: Vec<(u64, served::Row)> = conflict
            .rows
            .iter()
            .filter_map(|n| Some((n, table.row(n).ok()?)))
            .collect();
        let Some((_, first)) = versions.first() else {
            continue;
        };
        let sub = format!(
            "{dir}/{}",
            unique(&mut used, id_name(&first.id, first.offset))
        );
        for (n, d) in &versions {
            let state = if Some(n - conflict.rows.start) == conflict.chosen {
                "chosen"
            } else if d.deleted {
                "deleted"
            } else {
                "live"
            };
            let name = format!("{}-{state}.json", place(index, d));
            let ino = tree.add_file(&sub, &name, pretty(*n, d.pretty_len));
            let (start, end) = served::read_range(&index.wt_pages, d.page, d.offset, d.len);
            match served::unreadable_bytes(&index.bad_ranges, d.source, start, end) {
                0 => {}
                bytes => unreadable.push((ino, bytes)),
            }
        }
    }
    unreadable
}

/// Where a version is on disk: the document's offset, or its WiredTiger block's and
/// that page's write generation (with the source's number when there are several).
fn place(index: &Index, d: &served::Row) -> String {
    let (offset, generation) = match d.page.and_then(|p| index.wt_pages.get(p as usize)) {
        Some(page) => (page.offset, format!("-gen{}", page.write_gen)),
        None => (d.offset, String::new()),
    };
    if index.sources.len() > 1 {
        format!("{}-{offset:013}{generation}", d.source + 1)
    } else {
        format!("{offset:013}{generation}")
    }
}

/// Row `row`'s document as one indented file.
fn pretty(row: u64, len: u32) -> ExtentList {
    ExtentList::new([Extent::Document {
        doc: row,
        pretty: true,
        len: u64::from(len),
    }])
}

/// `db` and `collection` of each namespace, made safe as path components and unique:
/// two namespaces that sanitize alike (names cut at 200 bytes) get `~2`, `~3`...
fn dir_names<'a>(namespaces: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    let mut used: HashMap<String, Used> = HashMap::new();
    namespaces
        .map(|ns| {
            let (db, coll) = ns.split_once('.').unwrap_or(("recovered", ns));
            let db = safe_name(db);
            let name = unique(used.entry(db.clone()).or_default(), safe_name(coll));
            (db, name)
        })
        .collect()
}

/// Names already given in one directory.
type Used = HashSet<String, foldhash::fast::RandomState>;

/// `name`, or `name~2`, `name~3`... if taken.
fn unique(used: &mut Used, name: String) -> String {
    let mut candidate = name.clone();
    let mut n = 1;
    while !used.insert(candidate.clone()) {
        n += 1;
        candidate = format!("{name}~{n}");
    }
    candidate
}

/// What mongorestore needs beside a `.bson`: the default `_id` index.
fn metadata(collection: &str) -> String {
    let name = serde_json::to_string(collection).unwrap_or_default();
    format!(
        "{{\"options\":{{}},\"indexes\":[{{\"v\":2,\"key\":{{\"_id\":1}},\"name\":\"_id_\"}}],\"collectionName\":{name},\"type\":\"collection\"}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_path_components() {
        assert_eq!(safe_name("a/b"), "a%2Fb");
        assert_eq!(safe_name(".."), "%..");
        assert_eq!(safe_name(""), "%");
        assert_eq!(safe_name("c-00001/ship"), "c-00001%2Fship");
        assert!(safe_name(&"x".repeat(1000)).len() <= 201);
        let mut used = Used::default();
        assert_eq!(unique(&mut used, "a".into()), "a");
        assert_eq!(unique(&mut used, "a".into()), "a~2");
        let long = "c".repeat(300);
        let (a, b) = (format!("db.{long}a"), format!("db.{long}b"));
        let dirs = dir_names([a.as_str(), b.as_str(), "db./..", "d/b.x"].into_iter());
        assert_eq!(dirs[0].1.len(), dirs[1].1.len() - 2);
        assert!(dirs[1].1.ends_with("~2"));
        assert_eq!(dirs[2], ("db".into(), "%2F..".into()));
        assert_eq!(dirs[3], ("d%2Fb".into(), "x".into()));
        for (db, name) in &dirs {
            for part in [db, name] {
                assert!(part.len() < 255 - ".metadata.json".len());
                assert!(!part.contains(['/', '\0']) && part != "." && part != "..");
            }
        }
    }
}
