//! Recordings lost the way issue 15's users lost them: four recorders writing at once
//! through the kernel's own ext4, XFS and btrfs (with logs, thumbnails and uploads in
//! between), then `mv rec04.flv rec01.flv` or `rm`. The truth (every file's extents by
//! `filefrag`, its bytes) is written down before the mistake by
//! scripts/make-fs-recordings.py; scripts/judge-recordings.py scores the export.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

/// What the judge found: the lost recording exact / partial / missing, bytes of other
/// files inside carved files, joins that say they are unproven.
struct Verdict {
    lost: String,
    other_bytes: u64,
    unproven: u64,
    line: String,
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// Loses a recording on `fs` (`args` for make-fs-recordings.py), exports what
/// salvagefs finds (no FUSE needed) and judges it.
fn lose_and_salvage(dir: &Path, args: &[&str]) -> Verdict {
    let set = dir.join("set");
    ok(Command::new("python3")
        .arg(scripts().join("make-fs-recordings.py"))
        .arg(&set)
        .args(["--seconds", "10", "--size-mb", "160"])
        .args(args));
    let img = set.join("disk.img");
    let out = dir.join("out");
    salvagefs_ok(&[
        &"export",
        &img,
        &out,
        &"--only",
        &"flv/**",
        &"--index",
        &dir.join("idx"),
    ]);
    let judged = ok(Command::new("python3")
        .arg(scripts().join("judge-recordings.py"))
        .arg(set.join("truth.json"))
        .arg(&img)
        .arg(&out)
        .arg("--json"));
    let v: serde_json::Value = serde_json::from_slice(&judged.stdout).unwrap();
    Verdict {
        lost: v["lost"].as_str().unwrap().to_string(),
        other_bytes: v["other_bytes"].as_u64().unwrap(),
        unproven: v["unproven"].as_u64().unwrap(),
        line: v.to_string(),
    }
}

fn tools(mkfs: &str) -> bool {
    require(
        &["python3", "ffmpeg", "filefrag", "mount", "umount", mkfs],
        true,
    )
}

/// On ext4 the extent tree of the lost file (a leaf block, or an inode copy in the
/// journal) says where every fragment is: the recording comes back exact, every join
/// says it rests on the filesystem's map, no byte of another file is glued in.
fn ext4_exact(args: &[&str]) {
    if !tools("mke2fs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let v = lose_and_salvage(tmp.path(), args);
    assert_eq!(v.lost, "exact", "{}", v.line);
    assert_eq!(v.other_bytes, 0, "{}", v.line);
    assert_eq!(v.unproven, 0, "{}", v.line);
}

#[test]
fn ext4_fresh_mv_over_the_recording() {
    ext4_exact(&["--fs", "ext4", "--mistake", "mv", "--seed", "3"]);
}

#[test]
fn ext4_nearly_full_rm_while_the_others_record() {
    ext4_exact(&[
        "--fs",
        "ext4",
        "--fill",
        "95",
        "--mistake",
        "rm-live",
        "--seed",
        "4",
    ]);
}

/// XFS, without reading its structures: the straddling tags say which fragment comes
/// next, and the other recordings' certain bytes say where each split is.
#[test]
fn xfs_mv_over_the_recording() {
    if !tools("mkfs.xfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let v = lose_and_salvage(
        tmp.path(),
        &["--fs", "xfs", "--mistake", "mv", "--seed", "5"],
    );
    assert_eq!(v.lost, "exact", "{}", v.line);
    assert_eq!(v.other_bytes, 0, "{}", v.line);
    assert_eq!(v.unproven, 0, "{}", v.line);
}
