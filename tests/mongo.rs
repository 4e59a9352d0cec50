//! MongoDB salvage end to end: damaged MMAPv1 data files, loose documents and hostile
//! records made by pymongo (scripts/make-bson-fixtures.py), scanned, mounted, and the
//! mount checked by pymongo (tests/check_mongo.py), `cp` and `rsync`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

fn bson_fixture(name: &str) -> PathBuf {
    fixtures().join("bson").join(name)
}

fn check(mount: &Mount, mode: &str) -> String {
    let out = ok(Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/check_mongo.py"))
        .arg(&mount.dir)
        .arg(bson_fixture("manifest.json"))
        .arg(mode));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    println!("{said}");
    said
}

#[test]
fn damaged_data_files_come_back_in_their_collections() {
    if !require_pymongo() || !require(&["rsync", "diff", "cp"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("i.idx");
    let sources = [&bson_fixture("shop.0") as &Path, &bson_fixture("blog.0")];
    let before: Vec<String> = sources.iter().map(|s| sha256(s)).collect();
    let m = Mount::new(
        &sources,
        &tmp.path().join("mnt"),
        &["--index", idx.to_str().unwrap()],
    );
    let said = check(&m, "disk");
    assert!(said.contains("recovered byte-identical"), "{said}");

    let summary = std::fs::read_to_string(m.path("mongo/summary.tsv")).unwrap();
    for ns in [
        "shop.customers",
        "shop.orders",
        "blog.posts",
        "blog.comments",
    ] {
        assert!(
            summary
                .lines()
                .any(|l| l.starts_with(ns) && l.ends_with("\tdisk")),
            "{ns} not named from disk:\n{summary}"
        );
    }
    // The stray copy of the customers extent is counted as duplicates, not shown twice.
    let customers = summary
        .lines()
        .find(|l| l.starts_with("shop.customers"))
        .unwrap();
    let duplicates: usize = customers.split('\t').nth(2).unwrap().parse().unwrap();
    assert!(duplicates > 0, "{customers}");

    // cp and rsync see the same bytes as each other.
    let (a, b) = (tmp.path().join("cp"), tmp.path().join("rsync"));
    ok(Command::new("cp").arg("-r").arg(m.path("mongo")).arg(&a));
    ok(Command::new("rsync")
        .arg("-a")
        .arg(format!("{}/", m.path("mongo").display()))
        .arg(&b));
    ok(Command::new("diff").arg("-r").arg(&a).arg(&b));
    drop(m);
    let after: Vec<String> = sources.iter().map(|s| sha256(s)).collect();
    assert_eq!(before, after, "a source changed");
}

#[test]
fn loose_documents_are_sorted_by_schema_by_old_dump_and_by_fields() {
    if !require_pymongo() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("i.idx");
    let idx = idx.to_str().unwrap();
    let loose = bson_fixture("loose.bin");
    let schema = bson_fixture("schema.json");
    let dump = bson_fixture("olddump");
    for (mode, extra) in [
        ("schema", vec!["--schema", schema.to_str().unwrap()]),
        ("schema-from", vec!["--schema-from", dump.to_str().unwrap()]),
        ("auto", vec![]),
    ] {
        let mut args = vec!["--index", idx];
        args.extend(extra);
        let m = Mount::new(&[&loose], &tmp.path().join(mode), &args);
        check(&m, mode);
    }
    // Another schema sorts the documents again, from the index: nothing is rescanned.
    let out = salvagefs_ok(&[&"scan", &loose, &"--index", &idx, &"--schema", &schema]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("nothing rescanned"), "{said}");
}

#[test]
fn hostile_records_are_refused_and_valid_neighbours_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("i.idx");
    let out = salvagefs_ok(&[
        &"scan",
        &bson_fixture("hostile.bin"),
        &"--index",
        &idx,
        &"--json-summary",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let total: u64 = v["mongo"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["documents"].as_u64().unwrap())
        .sum();
    assert_eq!(
        total, 10,
        "the 10 valid documents, none of the hostile ones: {v}"
    );
}

#[test]
fn bad_schema_arguments_get_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"nodot\": [\"a\"]}").unwrap();
    let idx = tmp.path().join("i.idx");
    let loose = bson_fixture("loose.bin");
    for args in [
        vec!["--schema", bad.to_str().unwrap()],
        vec!["--schema", "/nonexistent.json"],
        vec!["--schema-from", "/nonexistent"],
        vec!["--json", "fancy"],
    ] {
        let mut all: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"scan", &loose, &"--index", &idx];
        all.extend(args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>));
        let out = salvagefs(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(
            err.contains("schema") || err.contains("json"),
            "{args:?}: {err}"
        );
    }
}
