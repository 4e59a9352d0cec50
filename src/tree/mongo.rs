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

use super::Tree;
use crate::classify::{Collection, Collections};
use crate::extent::{Extent, ExtentList};
use crate::index::{DocEntry, Index};
use crate::report;

/// Adds `/mongo` to `tree` (nothing when no document was found).
pub fn add(tree: &mut Tree, index: &Index, collections: &Collections) {
    if collections.is_empty() {
        return;
    }
    let mut tsv = String::from(
        "collection\tdocuments\tduplicates\tconflicts\tdeleted\tbytes\tdoubted\tliveness_by\tnamed_by\n",
    );
    let dirs = dir_names(collections.keys().map(String::as_str));
    for ((ns, coll), (db, name)) in collections.iter().zip(dirs) {
        let bytes: u64 = coll.docs.iter().map(|&i| index.docs[i].len as u64).sum();
        let _ = writeln!(
            tsv,
            "{ns}\t{}\t{}\t{}\t{}\t{bytes}\t{}\t{}\t{}",
            coll.docs.len(),
            coll.duplicates,
            coll.conflicts.len(),
            coll.deleted.len(),
            report::doubt_list(&coll.doubted),
            coll.decided.text(),
            coll.named_by_text(),
        );
        add_collection(
            tree,
            index,
            &format!("mongo/dump/{db}"),
            &format!("mongo/json/{db}"),
            &name,
            &coll.docs,
        );
        tree.add_file(
            &format!("mongo/dump/{db}"),
            &format!("{name}.metadata.json"),
            ExtentList::from_bytes(metadata(&name).into_bytes()),
        );
        add_docs(tree, index, &format!("mongo/docs/{db}/{name}"), &coll.docs);
        if !coll.deleted.is_empty() {
            add_collection(
                tree,
                index,
                &format!("mongo/deleted/dump/{db}"),
                &format!("mongo/deleted/json/{db}"),
                &name,
                &coll.deleted,
            );
        }
        add_conflicts(tree, index, &format!("mongo/conflicts/{db}/{name}"), coll);
    }
    tree.add_file(
        "mongo",
        "summary.tsv",
        ExtentList::from_bytes(tsv.into_bytes()),
    );
    if !index.wt_catalog.is_empty() {
        let mut tsv = String::from("file	collection	write_gen\n");
        for e in &index.wt_catalog {
            let _ = writeln!(tsv, "{}.wt\t{}\t{}", e.ident, e.ns, e.write_gen);
        }
        tree.add_file(
            "mongo",
            "wiredtiger.tsv",
            ExtentList::from_bytes(tsv.into_bytes()),
        );
    }
}

/// `<dump>/<name>.bson` and `<json>/<name>.json` for the documents `docs`.
fn add_collection(
    tree: &mut Tree,
    index: &Index,
    dump: &str,
    json: &str,
    name: &str,
    docs: &[usize],
) {
    let bson = docs.iter().flat_map(|&i| bson_extents(&index.docs[i], i));
    tree.add_file(dump, &format!("{name}.bson"), ExtentList::new(bson));
    let lines = docs.iter().map(|&i| Extent::Document {
        doc: i as u32,
        pretty: false,
        len: index.docs[i].json_len as u64,
    });
    tree.add_file(json, &format!("{name}.json"), ExtentList::new(lines));
}

/// One indented file per document, named after its `_id`: a lazy directory, since a
/// collection may hold millions of documents and few users list them all. It keeps
/// what naming needs in three flat vectors, not one allocation per document.
fn add_docs(tree: &mut Tree, index: &Index, dir: &str, docs: &[usize]) {
    let mut ids = Vec::new();
    let mut ends = Vec::with_capacity(docs.len());
    let mut files = Vec::with_capacity(docs.len());
    let mut bytes = 0;
    for &i in docs {
        let d = &index.docs[i];
        ids.extend_from_slice(&d.id);
        ends.push(ids.len());
        files.push((i as u32, d.pretty_len, d.offset));
        bytes += d.pretty_len as u64;
    }
    let make = move || {
        let mut used = Used::default();
        let mut start = 0;
        files
            .iter()
            .zip(&ends)
            .map(|(&(doc, len, offset), &end)| {
                let mut name = unique(&mut used, id_name(&ids[start..end], offset));
                start = end;
                name.push_str(".json");
                let text = Extent::Document {
                    doc,
                    pretty: true,
                    len: len as u64,
                };
                (name, ExtentList::new([text]))
            })
            .collect()
    };
    tree.add_lazy_dir(dir, docs.len() as u64, bytes, Box::new(make));
}

fn add_conflicts(tree: &mut Tree, index: &Index, dir: &str, coll: &Collection) {
    let mut used = Used::default();
    for conflict in &coll.conflicts {
        let first = &index.docs[conflict.versions[0]];
        let sub = format!(
            "{dir}/{}",
            unique(&mut used, id_name(&first.id, first.offset))
        );
        for &v in &conflict.versions {
            let d = &index.docs[v];
            let state = if Some(v) == conflict.chosen {
                "chosen"
            } else if d.deleted {
                "deleted"
            } else {
                "live"
            };
            // Where it is on disk: the document's offset, or its WiredTiger block's and
            // that page's write generation.
            let (offset, generation) = match d.wt.and_then(|w| index.wt_pages.get(w.page as usize))
            {
                Some(page) => (page.offset, format!("-gen{}", page.write_gen)),
                None => (d.offset, String::new()),
            };
            let place = if index.sources.len() > 1 {
                format!("{}-{offset:013}{generation}", d.source + 1)
            } else {
                format!("{offset:013}{generation}")
            };
            tree.add_file(&sub, &format!("{place}-{state}.json"), pretty(index, v));
        }
    }
}

fn pretty(index: &Index, i: usize) -> ExtentList {
    ExtentList::new([Extent::Document {
        doc: i as u32,
        pretty: true,
        len: index.docs[i].pretty_len as u64,
    }])
}

/// The stored bytes of document number `i`; a deleted record gets its length back.
fn bson_extents(d: &DocEntry, i: usize) -> Vec<Extent> {
    if d.wt.is_some() {
        vec![Extent::Stored {
            doc: i as u32,
            len: d.len as u64,
        }]
    } else if d.deleted {
        vec![
            Extent::Bytes(d.len.to_le_bytes().to_vec().into()),
            Extent::Source {
                source: d.source,
                offset: d.offset + 4,
                len: d.len as u64 - 4,
            },
        ]
    } else {
        vec![Extent::Source {
            source: d.source,
            offset: d.offset,
            len: d.len as u64,
        }]
    }
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

/// A path component that is never empty, `.`, `..`, or contains `/`, NUL or control
/// characters, and stays under 200 bytes.
fn safe_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c == '/' || c == '%' || c.is_control() {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
        if out.len() > 200 {
            break;
        }
    }
    match out.as_str() {
        "" | "." | ".." => format!("%{out}"),
        _ => out,
    }
}

/// A readable file name for a document's `_id`: ObjectId hex, the string, the number;
/// otherwise the hex of the value.
/// `id` is the document's `_id` as the index keeps it, `offset` where it lies.
fn id_name(id: &[u8], offset: u64) -> String {
    let (t, v) = match id.split_first() {
        Some((t, v)) => (*t, v),
        None => return format!("no_id-{offset:013}"),
    };
    let le = |n: usize| {
        v.get(..n)
            .map(|b| b.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64))
    };
    match t {
        0x07 => hex(v),
        0x02 if v.len() > 5 => safe_name(&String::from_utf8_lossy(&v[4..v.len() - 1])),
        0x10 => le(4)
            .map(|n| (n as u32 as i32).to_string())
            .unwrap_or_default(),
        0x12 => le(8).map(|n| (n as i64).to_string()).unwrap_or_default(),
        _ => {
            format!("id{t:02x}-{}", hex(&v[..v.len().min(32)]))
        }
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
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
