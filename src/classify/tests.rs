//! Classification driven by indexes built in memory: no disk, no FUSE, no pymongo.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;
use crate::carve::wiredtiger::Codec;
use crate::index::{CatalogEntry, DocEntry, DocId, NsEntry, NsHeader, WtPage, WtRef};
use crate::spill::Spill;

/// An index over sources with these file names, holding nothing yet.
fn index(names: &[&str]) -> Index {
    let paths: Vec<PathBuf> = names
        .iter()
        .map(|n| PathBuf::from(format!("/data/{n}")))
        .collect();
    Index::for_tests(&paths, 1 << 20)
}

/// A document at `offset` of source 0 with `_id` `id` and contents `hash`.
fn doc(offset: u64, id: u8, hash: u64) -> DocEntry {
    DocEntry {
        source: 0,
        offset,
        len: 32,
        deleted: false,
        hash,
        id: DocId::from_slice(&[0x10, id]),
        shape: 0,
        ns_header_ofs: None,
        json_len: 10,
        pretty_len: 12,
        wt: None,
        doubts: Default::default(),
        record_links: None,
    }
}

/// An MMAPv1 extent header naming `ns` for `offset..offset + len` of source 0.
fn extent(offset: u64, len: u64, ns: &str) -> NsHeader {
    NsHeader {
        source: 0,
        offset,
        len,
        file_ofs: offset as i32,
        ns: ns.to_string(),
        records: None,
        file_no: 0,
        chain: (None, None),
    }
}

/// A row-store leaf page of source `source` holding records `keys`, written at `write_gen`.
fn page(source: u32, offset: u64, write_gen: u64, keys: (i64, i64)) -> WtPage {
    WtPage {
        source,
        offset,
        disk_size: 4096,
        checksum: 0,
        kind: PageKind::RowLeaf,
        codec: Codec::None,
        write_gen,
        keys,
        overflow_keys: Vec::new(),
        file: None,
    }
}

/// A document of WiredTiger page `page`, record `record`.
fn wt_doc(source: u32, page: u32, record: i64, id: u8, hash: u64) -> DocEntry {
    DocEntry {
        source,
        wt: Some(WtRef { page, record }),
        ..doc(u64::from(page) * 100 + record as u64, id, hash)
    }
}

/// Versions of one `_id` with different contents, as classification lists them.
#[derive(Debug, PartialEq, Eq)]
struct Conflict {
    /// Every version (positions in the index), in disk order.
    versions: Vec<usize>,
    /// The version in the live collection, if any was live.
    chosen: Option<usize>,
}

/// A collection's counts and lists.
#[derive(Debug)]
struct Listed {
    counts: Collection,
    docs: Vec<usize>,
    deleted: Vec<usize>,
    conflicts: Vec<Conflict>,
}

impl std::ops::Deref for Listed {
    type Target = Collection;

    fn deref(&self) -> &Collection {
        &self.counts
    }
}

/// What classification makes of `idx`, its documents held in memory and every sort
/// spilled (a run per 1024 records).
fn classify(idx: &Index, schema: Option<&Schema>) -> BTreeMap<String, Listed> {
    let dir = tempfile::tempdir().unwrap();
    let spill = Spill::new(dir.path(), 1);
    let found = super::classify(idx, &idx.docs, schema, &spill).unwrap();
    let mut placed: Vec<Placed> = found.placed.map(Result::unwrap).collect();
    assert!(placed.is_sorted(), "placed out of order");
    let mut out = BTreeMap::new();
    for (rank, (ns, counts)) in found.collections.into_iter().enumerate() {
        let coll = placed.first().map(|p| p.coll);
        let end = placed.partition_point(|p| Some(p.coll) == coll);
        let mine: Vec<Placed> = placed.drain(..end).collect();
        assert!(!mine.is_empty(), "collection {rank} ({ns}) holds nothing");
        let of = |list: List| -> Vec<usize> {
            let docs = mine.iter().filter(|p| p.list == list);
            docs.map(|p| p.doc as usize).collect()
        };
        let mut conflicts = Vec::new();
        for k in 0.. {
            let versions = of(List::Conflict(k));
            if versions.is_empty() {
                break;
            }
            let chosen = mine
                .iter()
                .find(|p| p.list == List::Conflict(k) && p.chosen)
                .map(|p| p.doc as usize);
            conflicts.push(Conflict { versions, chosen });
        }
        let listed = Listed {
            counts,
            docs: of(List::Live),
            deleted: of(List::Deleted),
            conflicts,
        };
        out.insert(ns, listed);
    }
    assert!(placed.is_empty(), "documents placed in no collection");
    out
}

fn shapes(fields: &[&str]) -> Vec<Vec<String>> {
    vec![fields.iter().map(|f| f.to_string()).collect()]
}

#[test]
fn the_namespace_on_disk_beats_the_schema() {
    let mut idx = index(&["shop.0"]);
    idx.shapes = shapes(&["_id", "sku", "price"]);
    idx.ns_headers = vec![extent(0, 1000, "shop.products")];
    idx.docs = vec![
        DocEntry {
            ns_header_ofs: Some(0),
            ..doc(100, 1, 11)
        },
        // Past the extent: nothing on disk names it.
        doc(2000, 2, 22),
        // Its record header points to another extent: not this one's.
        DocEntry {
            ns_header_ofs: Some(4096),
            ..doc(200, 3, 33)
        },
    ];
    let schema = Schema::from_json(r#"{"shop.items": ["sku"]}"#).unwrap();
    let mut placer = Placer::new(&idx, &idx.docs, Some(&schema)).unwrap();
    let placed: Vec<(u32, NamedBy)> = idx.docs.iter().map(|d| placer.place(d)).collect();
    let names = placer.into_names();
    let shown: Vec<(&str, NamedBy)> = placed
        .iter()
        .map(|&(n, by)| (names[n as usize].as_str(), by))
        .collect();
    assert_eq!(
        shown,
        [
            ("shop.products", NamedBy::Disk),
            ("shop.items", NamedBy::Schema),
            ("shop.items", NamedBy::Schema)
        ]
    );
}

#[test]
fn wiredtiger_files_take_the_catalogs_name_else_their_own() {
    let mut idx = index(&["collection-2-99.wt", "collection-4-99.wt"]);
    idx.shapes = shapes(&["_id", "x"]);
    idx.wt_pages = vec![page(0, 0, 1, (1, 1)), page(1, 0, 1, (1, 1))];
    idx.wt_catalog = vec![
        CatalogEntry {
            ident: "collection-2-99".into(),
            ns: "old.name".into(),
            write_gen: 1,
        },
        CatalogEntry {
            ident: "collection-2-99".into(),
            ns: "app.users".into(),
            write_gen: 5,
        },
    ];
    idx.docs = vec![wt_doc(0, 0, 1, 1, 11), wt_doc(1, 1, 1, 2, 22)];
    let colls = classify(&idx, None);
    let named: Vec<(&str, NamedBy)> = colls
        .iter()
        .map(|(ns, c)| (ns.as_str(), c.named_by))
        .collect();
    assert_eq!(
        named,
        [
            ("app.users", NamedBy::Catalog),
            ("recovered.collection-4-99", NamedBy::File)
        ]
    );
    // With a schema, a file the catalog does not name goes by the schema instead.
    let schema = Schema::from_json(r#"{"app.things": ["x"]}"#).unwrap();
    let colls = classify(&idx, Some(&schema));
    assert_eq!(colls["app.things"].named_by, NamedBy::Schema);
    assert_eq!(colls["app.things"].docs, [1]);
}

#[test]
fn without_anything_on_disk_fields_name_the_collection() {
    let mut idx = index(&["disk.img"]);
    idx.shapes = vec![
        vec!["_id".into(), "sku".into(), "title".into(), "price".into()],
        vec!["_id".into()],
    ];
    idx.docs = vec![
        doc(0, 1, 11),
        DocEntry {
            shape: 1,
            ..doc(100, 2, 22)
        },
    ];
    let colls = classify(&idx, None);
    let names: Vec<&str> = colls.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["recovered.auto_id_only", "recovered.auto_sku_title_price"]
    );
    assert!(colls.values().all(|c| c.named_by == NamedBy::Fields));
}

#[test]
fn identical_copies_are_kept_once_the_most_trusted_one() {
    let mut idx = index(&["shop.0"]);
    idx.shapes = shapes(&["_id", "sku"]);
    idx.ns_headers = vec![extent(5000, 1000, "shop.products")];
    idx.docs = vec![
        // A stray copy nothing names, then the same bytes inside a named extent.
        doc(100, 1, 77),
        DocEntry {
            ns_header_ofs: Some(5000),
            ..doc(5100, 1, 77)
        },
    ];
    let colls = classify(&idx, None);
    assert_eq!(colls.len(), 1, "{colls:?}");
    let products = &colls["shop.products"];
    assert_eq!(
        (products.docs.as_slice(), products.duplicates),
        (&[1usize][..], 1)
    );
    assert!(products.conflicts.is_empty());
}

#[test]
fn conflicts_list_every_version_and_choose_live_then_newest() {
    let mut idx = index(&["collection-2-1.wt"]);
    idx.shapes = shapes(&["_id", "v"]);
    // Record 7 rewritten: an old page (write_gen 3) and a newer one (write_gen 9).
    idx.wt_pages = vec![page(0, 0, 3, (7, 7)), page(0, 4096, 9, (7, 7))];
    idx.docs = vec![wt_doc(0, 0, 7, 1, 100), wt_doc(0, 1, 7, 1, 200)];
    let colls = classify(&idx, None);
    let c = &colls["recovered.collection-2-1"];
    assert_eq!(c.docs, [1], "the newest page's version is live");
    assert_eq!(
        c.conflicts,
        [Conflict {
            versions: vec![0, 1],
            chosen: Some(1)
        }]
    );
    // A deleted MMAPv1 record is never chosen over a live one, even when later on disk.
    let mut mm = index(&["shop.0"]);
    mm.shapes = shapes(&["_id"]);
    mm.docs = vec![
        doc(0, 5, 1),
        DocEntry {
            deleted: true,
            ..doc(900, 5, 2)
        },
    ];
    let colls = classify(&mm, None);
    let c = colls.values().next().unwrap();
    assert_eq!(
        (c.docs.as_slice(), c.deleted.as_slice()),
        (&[0usize][..], &[1usize][..])
    );
    assert_eq!(c.conflicts[0].chosen, Some(0));
}

#[test]
fn a_record_a_newer_page_spans_without_holding_was_removed() {
    let mut idx = index(&["collection-2-1.wt"]);
    idx.shapes = shapes(&["_id"]);
    // Page 0 (old) held records 1..3; page 1, written later, spans 1..3 without 2.
    idx.wt_pages = vec![page(0, 0, 3, (1, 3)), page(0, 4096, 8, (1, 3))];
    idx.docs = vec![
        wt_doc(0, 0, 1, 1, 10),
        wt_doc(0, 0, 2, 2, 20),
        wt_doc(0, 0, 3, 3, 30),
        wt_doc(0, 1, 1, 1, 10),
        wt_doc(0, 1, 3, 3, 30),
    ];
    let colls = classify(&idx, None);
    let c = &colls["recovered.collection-2-1"];
    assert_eq!(c.deleted, [1], "record 2 was removed: deleted, not live");
    assert!(!c.docs.contains(&1));
    assert_eq!(c.docs.len(), 2);
    assert_eq!(c.duplicates, 2);
}

#[test]
fn documents_whose_namespace_was_lost_go_where_their_shape_was_named() {
    let mut idx = index(&["shop.0"]);
    idx.shapes = vec![
        vec!["_id".into(), "sku".into(), "title".into(), "price".into()],
        vec![
            "_id".into(),
            "sku".into(),
            "title".into(),
            "price".into(),
            "note".into(),
        ],
        vec!["_id".into(), "x".into()],
    ];
    idx.ns_headers = vec![extent(0, 1000, "shop.products")];
    let named = |offset, id, shape| DocEntry {
        shape,
        ns_header_ofs: Some(0),
        ..doc(offset, id, u64::from(id))
    };
    idx.docs = vec![
        named(100, 1, 0),
        named(200, 2, 0),
        named(300, 3, 1),
        // The extent header of these was overwritten.
        DocEntry {
            shape: 0,
            ..doc(5000, 4, 4)
        },
        DocEntry {
            shape: 1,
            ..doc(5100, 5, 5)
        },
        // A field set no named collection has.
        DocEntry {
            shape: 2,
            ..doc(5200, 6, 6)
        },
    ];
    let colls = classify(&idx, None);
    let products = &colls["shop.products"];
    assert_eq!(products.docs, [0, 1, 2, 3, 4]);
    assert_eq!((products.learned, products.named_by), (2, NamedBy::Disk));
    assert_eq!(colls["recovered.auto_x"].docs, [5]);
    // A schema that names the shape comes first.
    let schema = Schema::from_json(r#"{"shop.catalog": ["sku", "title", "price"]}"#).unwrap();
    let colls = classify(&idx, Some(&schema));
    assert_eq!(colls["shop.catalog"].docs, [3, 4]);
    assert_eq!(colls["recovered._unclassified"].docs, [5]);
}

#[test]
fn records_an_extent_list_passes_by_are_deleted_without_any_mark() {
    // An extent at 8192 of a data file that starts at 0 on the source: records at 8368
    // (A), 8432 (B), 8496 (C); B was deleted: A links to C, B's header holds a free
    // list link, and no EE mark.
    let mut idx = index(&["shop.0"]);
    idx.shapes = shapes(&["_id"]);
    idx.ns_headers = vec![NsHeader {
        records: Some((8368, 8496)),
        ..extent(8192, 4096, "shop.users")
    }];
    let record = |at: i32, id: u8, links| DocEntry {
        ns_header_ofs: Some(8192),
        record_links: Some(links),
        ..doc(at as u64 + 16, id, u64::from(id))
    };
    idx.docs = vec![
        record(8368, 1, (8496, -1)),
        record(8432, 2, (0, 9000)),
        record(8496, 3, (-1, 8368)),
    ];
    let colls = classify(&idx, None);
    let users = &colls["shop.users"];
    assert_eq!(
        (users.docs.as_slice(), users.deleted.as_slice()),
        (&[0usize, 2][..], &[1usize][..])
    );
    assert_eq!(users.decided.chain, 3);
    // The extent header lost: each record's own header still tells.
    idx.ns_headers.clear();
    let colls = classify(&idx, None);
    let lost = &colls["recovered.auto_id_only"];
    assert_eq!(
        (lost.docs.as_slice(), lost.deleted.as_slice()),
        (&[0usize, 2][..], &[1usize][..])
    );
    assert_eq!(lost.decided.links, 3);
}

#[test]
fn the_extent_chain_names_an_extent_whose_header_was_lost() {
    // shop.products holds many documents of the shape; shop.archive's second extent
    // (data file 0, offset 12288) lost its header. Its field set alone would send its
    // documents to products; the chain says archive.
    let mut idx = index(&["shop.0", "shop.ns"]);
    idx.shapes = shapes(&["_id", "sku", "title", "price"]);
    let archive = NsHeader {
        chain: (Some((0, 12288)), None),
        ..extent(8192, 4096, "shop.archive")
    };
    idx.ns_headers = vec![archive.clone(), extent(16384, 8192, "shop.products")];
    let in_extent = |offset, id, extent| DocEntry {
        ns_header_ofs: Some(extent),
        ..doc(offset, id, u64::from(id))
    };
    let lost = in_extent(12288 + 176 + 16, 9, 12288);
    idx.docs = vec![
        in_extent(8400, 1, 8192),
        lost.clone(),
        in_extent(16600, 2, 16384),
        in_extent(16700, 3, 16384),
        in_extent(16800, 4, 16384),
    ];
    let colls = classify(&idx, None);
    assert_eq!(colls["shop.archive"].docs, [0, 1], "{colls:?}");
    assert_eq!(colls["shop.archive"].chained, 1);
    // Named by the most trusted way among its documents, whatever their order.
    assert_eq!(colls["shop.archive"].named_by, NamedBy::Disk);
    assert_eq!(colls["shop.products"].docs, [2, 3, 4]);

    // The header with the link lost too: the namespace file's last extent names it.
    idx.ns_headers = vec![extent(16384, 8192, "shop.products")];
    idx.docs = vec![lost.clone(), in_extent(16600, 2, 16384)];
    idx.ns_entries = vec![NsEntry {
        source: 1,
        offset: 628,
        ns: "shop.archive".into(),
        extents: (Some((0, 8192)), Some((0, 12288))),
    }];
    assert_eq!(classify(&idx, None)["shop.archive"].docs, [0]);

    // Links that disagree name nothing: the field set decides, as without them.
    idx.ns_headers = vec![
        NsHeader {
            chain: (Some((0, 12288)), None),
            ..extent(0, 4096, "shop.other")
        },
        extent(16384, 8192, "shop.products"),
    ];
    let colls = classify(&idx, None);
    assert_eq!(colls["shop.products"].docs, [0, 1], "{colls:?}");
    assert_eq!(colls["shop.products"].learned, 1);
}
