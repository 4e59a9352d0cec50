//! WiredTiger salvage end to end: real WiredTiger 11.2.0 files made by
//! scripts/make-wt-fixtures.sh (uncompressed, snappy, zstd, zlib, lz4), scanned and mounted,
//! the mount checked by pymongo (tests/check_wt.py); then the same files damaged,
//! embedded in a disk image at odd offsets, and without their catalog.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use salvagefs::carve::wiredtiger::PageKind;
use salvagefs::index::Index;

const COMPRESSORS: [&str; 5] = ["none", "snappy", "zstd", "zlib", "lz4"];
const CUSTOMERS: &str = "collection-2-1234567890123456789.wt";
const ORDERS: &str = "collection-4-1234567890123456789.wt";

fn wt(compressor: &str, file: &str) -> PathBuf {
    fixtures().join("wt").join(compressor).join(file)
}

fn check(mount: &Mount, naming: &str) -> String {
    let out = ok(Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_wt.py"))
        .arg(&mount.dir)
        .arg(fixtures().join("wt/manifest.json"))
        .arg(naming));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{said}");
    said
}

/// Scans `sources` into a fresh index and loads it.
fn scan(sources: &[&Path], idx: &Path) -> Index {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"scan", &"--index", &idx];
    for s in sources {
        args.push(s);
    }
    salvagefs_ok(&args);
    Index::load(idx).unwrap()
}

fn hashes(index: &Index) -> HashSet<u64> {
    index.docs.iter().map(|d| d.hash).collect()
}

#[test]
fn every_compressor_comes_back_byte_identical_in_its_collection() {
    if !require_pymongo() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for compressor in COMPRESSORS {
        let files = [
            wt(compressor, "_mdb_catalog.wt"),
            wt(compressor, CUSTOMERS),
            wt(compressor, ORDERS),
        ];
        let sources: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let before: Vec<String> = sources.iter().map(|s| sha256(s)).collect();
        let idx = tmp.path().join(format!("{compressor}.idx"));
        let m = Mount::new(
            &sources,
            &tmp.path().join(compressor),
            &["--index", idx.to_str().unwrap()],
        );
        let said = check(&m, "catalog");
        assert!(said.contains("documents verified"), "{compressor}: {said}");
        let readme = std::fs::read_to_string(m.path("README.txt")).unwrap();
        assert!(
            readme.contains("WiredTiger pages holding documents")
                && readme.contains("mongod's catalog: 2 entries"),
            "{readme}"
        );
        let catalog = std::fs::read_to_string(m.path("mongo/wiredtiger.tsv")).unwrap();
        assert!(
            catalog.contains(&format!("{ORDERS}\tshop.orders")),
            "{catalog}"
        );
        // Every page of the compressor's kind was read (the catalog is too small for
        // WiredTiger to bother compressing it).
        let index = Index::load(&idx).unwrap();
        let codecs: HashSet<&str> = index
            .wt_pages
            .iter()
            .filter(|p| p.source > 0)
            .map(|p| p.codec.as_str())
            .collect();
        assert_eq!(codecs, HashSet::from([compressor]));
        drop(m);
        let after: Vec<String> = sources.iter().map(|s| sha256(s)).collect();
        assert_eq!(before, after, "a source changed");
    }
}

#[test]
fn without_the_catalog_documents_are_grouped_per_file_or_by_schema() {
    if !require_pymongo() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let files = [wt("zstd", CUSTOMERS), wt("zstd", ORDERS)];
    let sources: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let idx = tmp.path().join("i.idx");
    let m = Mount::new(
        &sources,
        &tmp.path().join("file"),
        &["--index", idx.to_str().unwrap()],
    );
    assert!(check(&m, "file").contains("documents verified"));
    assert!(!m.path("mongo/wiredtiger.tsv").exists());
    drop(m);

    let schema = tmp.path().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"shop.customers": ["name", "email"], "shop.orders": ["customer", "items"]}"#,
    )
    .unwrap();
    let m = Mount::new(
        &sources,
        &tmp.path().join("schema"),
        &[
            "--index",
            idx.to_str().unwrap(),
            "--schema",
            schema.to_str().unwrap(),
        ],
    );
    assert!(check(&m, "schema").contains("documents verified"));
}

/// Overwrites about `fraction` of the 4 KiB blocks of `bytes` with `filler`, in runs
/// of 1 to 4 blocks at seeded positions (a filesystem reusing freed extents); returns
/// the overwritten byte ranges.
fn overwrite_blocks(bytes: &mut [u8], filler: &[u8], fraction: f64, seed: u64) -> Vec<(u64, u64)> {
    let blocks = bytes.len() / 4096;
    let mut hit = vec![false; blocks];
    let pick = noise(seed, 4 * blocks);
    let mut i = 0;
    while (hit.iter().filter(|&&h| h).count() as f64) < fraction * blocks as f64 {
        let at = u32::from_le_bytes([pick[i % pick.len()], pick[(i + 1) % pick.len()], 0, 0])
            as usize
            % blocks;
        let run = 1 + pick[(i + 2) % pick.len()] as usize % 4;
        hit[at..(at + run).min(blocks)].fill(true);
        i += 3;
    }
    let mut ranges = Vec::new();
    for (b, _) in hit.iter().enumerate().filter(|(_, h)| **h) {
        let at = b * 4096;
        let from = (b * 7919) % (filler.len() - 4096);
        bytes[at..at + 4096].copy_from_slice(&filler[from..from + 4096]);
        ranges.push((at as u64, at as u64 + 4096));
    }
    ranges
}

#[test]
fn overwritten_blocks_lose_only_their_own_pages() {
    let tmp = tempfile::tempdir().unwrap();
    // Unrelated data: this test's own executable.
    let filler = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let (mut intact_pages, mut damaged_pages) = (0, 0);
    for compressor in COMPRESSORS {
        for file in [CUSTOMERS, ORDERS] {
            let whole = scan(&[&wt(compressor, file)], &tmp.path().join("whole.idx"));
            let mut bytes = std::fs::read(wt(compressor, file)).unwrap();
            let seed = bytes.len() as u64;
            let damage = overwrite_blocks(&mut bytes, &filler, 0.3, seed);
            let damaged_file = tmp.path().join(file);
            std::fs::write(&damaged_file, &bytes).unwrap();
            let damaged = scan(&[&damaged_file], &tmp.path().join("damaged.idx"));

            let survived = hashes(&damaged);
            let all = hashes(&whole);
            assert!(
                survived.is_subset(&all),
                "{compressor}/{file}: a document that was never written"
            );
            for (i, page) in whole.wt_pages.iter().enumerate() {
                let end = page.offset + page.disk_size as u64;
                let hit = damage.iter().any(|&(s, e)| s < end && page.offset < e);
                // Overflow pages are reached through their leaf page's cell: only leaf
                // pages stand on their own.
                if page.kind != PageKind::RowLeaf {
                    continue;
                }
                let docs = whole
                    .docs
                    .iter()
                    .filter(|d| d.wt.is_some_and(|w| w.page as usize == i));
                if hit {
                    damaged_pages += 1;
                    continue;
                }
                intact_pages += 1;
                for d in docs {
                    assert!(
                        survived.contains(&d.hash),
                        "{compressor}/{file}: a document of an intact page at {} lost",
                        page.offset
                    );
                }
            }
        }
    }
    println!("{intact_pages} intact pages all recovered, {damaged_pages} damaged");
    assert!(
        intact_pages > 0 && damaged_pages > 0,
        "{intact_pages} intact, {damaged_pages} damaged: the damage must hit some pages and spare others"
    );
}

#[test]
fn files_embedded_at_odd_offsets_in_a_disk_image_are_found_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let mut image = noise(7, (1 << 20) + 1234);
    let mut want = HashSet::new();
    let mut catalog = Vec::new();
    for (n, compressor) in COMPRESSORS.iter().enumerate() {
        for file in ["_mdb_catalog.wt", CUSTOMERS, ORDERS] {
            let path = wt(compressor, file);
            let alone = scan(&[&path], &tmp.path().join("alone.idx"));
            want.extend(hashes(&alone));
            catalog.extend(alone.wt_catalog.iter().map(|e| e.ns.clone()));
            image.extend(std::fs::read(&path).unwrap());
            image.extend(noise(n as u64 + 11, 777 + 513 * n));
        }
    }
    // A fragment of a file, without its first block, on a sector boundary (as a
    // filesystem leaves it) that is not a 4 KiB one.
    image.resize(image.len().next_multiple_of(4096) + 512, 0);
    let fragment_at = image.len() as u64;
    let file = std::fs::read(wt("none", ORDERS)).unwrap();
    image.extend(&file[file.len() / 2..]);
    image.extend(vec![0u8; 3 << 20]);
    let disk = tmp.path().join("disk.img");
    std::fs::write(&disk, &image).unwrap();
    let found = scan(&[&disk], &tmp.path().join("disk.idx"));
    let alone = scan(&[&wt("none", ORDERS)], &tmp.path().join("alone.idx"));
    let in_fragment = |pages: &[salvagefs::index::WtPage], from: u64, len: u64| {
        pages
            .iter()
            .filter(|p| p.offset >= from && p.offset < from + len)
            .count()
    };
    let half = file.len() as u64 / 2;
    assert_eq!(
        in_fragment(&found.wt_pages, fragment_at, half),
        in_fragment(&alone.wt_pages, half, half),
        "the fragment's pages"
    );
    assert!(in_fragment(&found.wt_pages, fragment_at, half) > 0);
    assert_eq!(
        hashes(&found),
        want,
        "the documents of the files, found in the image"
    );
    assert!(
        found.docs.iter().all(|d| d.wt.is_some()),
        "each read from its page"
    );
    let mut names: Vec<String> = found.wt_catalog.iter().map(|e| e.ns.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, ["shop.customers", "shop.orders"]);
    assert!(found.wt_pages.iter().any(|p| p.offset % 4096 != 0));
}

#[test]
fn on_a_raw_disk_wiredtiger_metadata_names_the_collections() {
    if !require_pymongo() {
        return;
    }
    // A dbpath's files laid on a disk without their filesystem: sector-aligned with gaps,
    // the catalog at an odd offset; WiredTiger.wt names each file's checkpoint roots.
    let tmp = tempfile::tempdir().unwrap();
    let mut image = noise(3, 1 << 20);
    for (n, file) in [ORDERS, "WiredTiger.wt", CUSTOMERS, "_mdb_catalog.wt"]
        .iter()
        .enumerate()
    {
        image.extend(vec![0u8; 512 * (7 + 13 * n)]);
        if *file == "_mdb_catalog.wt" {
            image.extend(noise(4, 333));
        }
        image.extend(std::fs::read(wt("snappy", file)).unwrap());
    }
    image.extend(noise(5, 1 << 20));
    let disk = tmp.path().join("disk.img");
    std::fs::write(&disk, &image).unwrap();
    let idx = tmp.path().join("disk.idx");
    let m = Mount::new(
        &[&disk],
        &tmp.path().join("mnt"),
        &["--index", idx.to_str().unwrap()],
    );
    // Named by the catalog, rewritten records' old copies listed as versions, removed
    // records under deleted/: as with the files themselves.
    let said = check(&m, "catalog");
    assert!(said.contains("674 documents verified"), "{said}");
    let index = Index::load(&idx).unwrap();
    assert_eq!(
        index.wt_files,
        [
            "_mdb_catalog",
            "collection-2-1234567890123456789",
            "collection-4-1234567890123456789"
        ]
    );
}
