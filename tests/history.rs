//! MongoDB salvage where the storage structure decides. MMAPv1 data files with a
//! history of inserts, in-place and moving updates and deletes (most without the EE
//! mark), documents that plausibility rules dislike, two extent headers overwritten
//! (one only the namespace file `shop.ns` still names), 2% of the blocks overwritten
//! and a file truncated (scripts/make-mmapv1-history.py,
//! documents encoded by pymongo, the truth written before the damage). The mount is
//! checked by tests/check_history.py: intact live documents back byte-exact in their
//! collection, no deleted or older version among them, nothing invented. Likewise a
//! WiredTiger dbpath written by WiredTiger with three rounds of updates and removals at
//! page edges (scripts/make-wt-history.py), as files and laid on a raw image.

use std::path::Path;
use std::process::Command;

use crate::common::*;

/// Writes the files for `seed`, mounts them and returns the checker's verdict.
fn salvage(seed: u32) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tmp.path().join("data");
    ok(Command::new("python3")
        .arg(root.join("scripts/make-mmapv1-history.py"))
        .arg(&data)
        .arg(seed.to_string()));
    let idx = tmp.path().join("i.idx");
    let m = Mount::new(
        &[
            &data.join("shop.0"),
            &data.join("shop.1"),
            &data.join("shop.ns"),
        ],
        &tmp.path().join("mnt"),
        &["--index", idx.to_str().unwrap()],
    );
    let out = run(Command::new("python3")
        .arg(root.join("tests/check_history.py"))
        .arg(&m.dir)
        .arg(data.join("truth.json")));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let summary = std::fs::read_to_string(m.path("mongo/summary.tsv")).unwrap();
    assert!(
        out.status.success(),
        "seed {seed}: {said}{}\n{summary}",
        String::from_utf8_lossy(&out.stderr)
    );
    let readme = std::fs::read_to_string(m.path("README.txt")).unwrap();
    assert!(
        readme.contains("Records live or deleted by: MMAPv1 record lists"),
        "{readme}"
    );
    // archive's only extent header was overwritten: the namespace file names it.
    assert!(
        summary
            .lines()
            .any(|l| l.starts_with("shop.archive\t") && l.ends_with("\textent_chain")),
        "{summary}"
    );
    serde_json::from_str(&said).unwrap()
}

#[test]
fn the_storage_structure_decides_what_is_a_live_document() {
    if !require_pymongo() {
        return;
    }
    for seed in [20261130, 7] {
        let v = salvage(seed);
        assert_eq!(v["zombies"], 0, "{v}");
        assert_eq!(v["false"], 0, "{v}");
        assert_eq!(v["in_wrong_collection"], 0, "{v}");
        assert!(v["recovered"].as_f64().unwrap() >= 0.995, "{v}");
    }
}

/// Like `require_pymongo`, for WiredTiger's Python binding (the secantusdb wheel
/// ships WiredTiger 11.2.0 compiled): what writes the WiredTiger files.
fn require_wiredtiger() -> bool {
    let has = Command::new("python3")
        .args(["-c", "import wiredtiger"])
        .output()
        .is_ok_and(|o| o.status.success());
    has || skip_or_fail(
        "missing WiredTiger for Python: install with `python3 -m pip install --no-deps secantusdb==0.7.0b3`",
    )
}

#[test]
fn the_newest_wiredtiger_checkpoint_decides_what_is_live() {
    if !require_pymongo() || !require_wiredtiger() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let data = tmp.path().join("data");
    ok(Command::new("python3")
        .arg(root.join("scripts/make-wt-history.py"))
        .arg(&data));
    let db = data.join("dbpath");
    let files = [
        db.join("WiredTiger.wt"),
        db.join("_mdb_catalog.wt"),
        db.join("collection-7-42.wt"),
    ];
    let image = [data.join("disk.img")];
    for (name, sources) in [("files", &files[..]), ("raw disk", &image[..])] {
        let sources: Vec<&Path> = sources.iter().map(|p| p.as_path()).collect();
        let idx = tmp.path().join(format!("{name}.idx"));
        let m = Mount::new(
            &sources,
            &tmp.path().join(name.replace(' ', "-")),
            &["--index", idx.to_str().unwrap()],
        );
        let out = run(Command::new("python3")
            .arg(root.join("tests/check_history.py"))
            .arg(&m.dir)
            .arg(data.join("truth.json"))
            .arg("1.0"));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {said}");
        let readme = std::fs::read_to_string(m.path("README.txt")).unwrap();
        assert!(
            readme.contains("WiredTiger's newest checkpoint 3"),
            "{name}: {readme}"
        );
    }
}
