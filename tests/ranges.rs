//! Scanning in parts: `scan --range` parts joined by `salvagefs merge`, and a scan saved
//! segment by segment, give exactly the index of one whole scan; a scan killed at 60%
//! resumes from its checkpoint instead of starting over.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::faulty::{Faults, FaultyDisk};
use crate::common::*;
use salvagefs::index::Index;

const MIB: usize = 1 << 20;

/// Recordings, MongoDB data files and WiredTiger files over noise, several of them
/// across the 2 MiB chunk boundaries and the part boundaries used below (13 MiB, 27 MiB).
fn image() -> Vec<u8> {
    let bson = |f: &str| std::fs::read(fixtures().join("bson").join(f)).unwrap();
    let wt = |f: &str| std::fs::read(fixtures().join("wt").join(f)).unwrap();
    let mut img = noise(21, 40 * MIB);
    let mut put = |at: usize, bytes: Vec<u8>| img[at..at + bytes.len()].copy_from_slice(&bytes);
    put(8 * MIB - 500_000, fixture("stream-av-1.flv"));
    put(13 * MIB - 300_000, bson("shop.0"));
    put(16 * MIB - 100_003, bson("loose.bin"));
    put(27 * MIB - 700_000, bson("blog.0"));
    put(27 * MIB + 600_000, fixture("short-av.flv"));
    put(32 * MIB - 20_000, fixture("video-only.flv"));
    put(
        20 * MIB + 12_345,
        wt("zstd/collection-2-1234567890123456789.wt"),
    );
    put(
        24 * MIB - 150_001,
        wt("snappy/collection-4-1234567890123456789.wt"),
    );
    put(35 * MIB + 777, wt("snappy/_mdb_catalog.wt"));
    img
}

/// The index as a scan in one go would make it, apart from when and how fast.
fn comparable(path: &Path) -> Index {
    let mut idx = Index::load(path).unwrap();
    idx.created = 0;
    idx.scan_seconds = 0.0;
    idx
}

fn scan(img: &Path, idx: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.arg("scan").arg(img).arg("--index").arg(idx).args(extra);
    ok(&mut cmd)
}

#[test]
fn parts_and_segments_merge_into_the_whole_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("disk.img");
    std::fs::write(&img, image()).unwrap();
    let whole = tmp.path().join("whole.idx");
    scan(&img, &whole, &[]);
    let want = comparable(&whole);
    assert!(
        want.flv.len() == 3 && want.docs.len() > 1000 && want.wt_pages.len() > 5,
        "{} FLV, {} docs, {} WiredTiger pages",
        want.flv.len(),
        want.docs.len(),
        want.wt_pages.len()
    );

    let parts: Vec<PathBuf> = ["0..13M", "13M..27M", "27M.."]
        .iter()
        .enumerate()
        .map(|(i, range)| {
            let part = tmp.path().join(format!("part{i}.idx"));
            scan(&img, &part, &["--range", range]);
            part
        })
        .collect();
    // A part alone is not the whole: mounting or scanning with it rescans.
    let merged = tmp.path().join("merged.idx");
    let out = salvagefs(&[&"merge", &parts[0], &parts[2], &"--index", &merged]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("do not cover bytes 13631488..28311552"),
        "{err}"
    );
    let out = salvagefs_ok(&[
        &"merge", &parts[2], &parts[0], &parts[1], &"--index", &merged,
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("merged 3 parts"));
    assert!(
        comparable(&merged) == want,
        "merged parts differ from the whole scan"
    );
    let out = salvagefs(&[&"merge", &parts[0], &parts[0], &"--index", &merged]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("both cover bytes 0..13631488"));
    // The merged index is used as is.
    let out = scan(&img, &merged, &[]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing rescanned"));

    // Checkpoints every chunk change nothing either.
    let segmented = tmp.path().join("segmented.idx");
    scan(&img, &segmented, &["--checkpoint-every", "8M"]);
    assert!(
        comparable(&segmented) == want,
        "a segmented scan differs from the whole scan"
    );
    assert!(!tmp.path().join("segmented.idx.partial").exists());
}

#[test]
fn an_interrupted_scan_resumes_from_its_checkpoint() {
    if !require(&["fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let size = 40 * MIB as u64;
    // The disk stalls at 60% for long enough to kill the scan there.
    let stall = 24 * MIB as u64 + 4096;
    let mut faults = Faults {
        slow_for: Duration::from_secs(8),
        ..Faults::default()
    };
    faults.slow.push(stall..stall + 4096);
    let disk = FaultyDisk::mount(&tmp.path().join("faulty"), image(), faults);
    let idx = tmp.path().join("disk.idx");
    let partial = tmp.path().join("disk.idx.partial");
    let mut first = Command::new(bin())
        .arg("scan")
        .arg(disk.image())
        .args(["--index", idx.to_str().unwrap(), "--checkpoint-every", "8M"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let covered = loop {
        assert!(Instant::now() < deadline, "no checkpoint before the stall");
        // One index per segment done.
        let segments = std::fs::read_dir(&partial).into_iter().flatten().flatten();
        let done = segments.filter_map(|e| Index::load(&e.path()).ok());
        let covered: u64 = done.flat_map(|p| p.covered).map(|s| s.end - s.start).sum();
        if covered >= 16 * MIB as u64 {
            break covered;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(300));
    first.kill().unwrap();
    first.wait().unwrap();
    {
        let mut f = disk.faults.lock().unwrap();
        f.slow.clear();
        f.bytes_read = 0;
    }
    let out = ok(Command::new(bin()).arg("scan").arg(disk.image()).args([
        "--index",
        idx.to_str().unwrap(),
        "--checkpoint-every",
        "8M",
    ]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("resuming the interrupted scan"), "{err}");
    let read = disk.faults.lock().unwrap().bytes_read;
    assert!(
        read < size - covered + 4 * MIB as u64,
        "the resumed scan read {read} bytes of {size}, {covered} were done"
    );
    assert!(!partial.exists());
    // And the result is the whole scan's.
    let whole = tmp.path().join("whole.idx");
    std::fs::write(tmp.path().join("copy.img"), image()).unwrap();
    scan(&tmp.path().join("copy.img"), &whole, &[]);
    let (a, b) = (comparable(&idx), comparable(&whole));
    assert_eq!((a.flv.len(), a.docs.len()), (b.flv.len(), b.docs.len()));
    assert!(a.docs == b.docs && a.shapes == b.shapes);
}
