//! A dying disk, for real: the image is served by a FUSE filesystem that answers EIO on
//! injected bad sectors (and sleeps on slow ones), and salvagefs scans and mounts that
//! file as its source. The scan must skip and report exactly the bad sectors, the mount
//! must answer EIO only for reads that touch them (or zeros with --fill-bad-sectors),
//! and a read stuck on a slow sector must not stall the rest of the mount.

use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::faulty::{Faults, FaultyDisk};
use crate::common::*;

const SECTOR: u64 = 4096;

/// The test image: noise, a recording, noise, an MMAPv1 data file, noise, a short
/// recording, noise. Returns the bytes and where each part starts.
struct Layout {
    bytes: Vec<u8>,
    long_flv: u64,
    shop: u64,
    short_flv: u64,
}

fn layout() -> Layout {
    let mut bytes = noise(11, 100_003);
    let long_flv = bytes.len() as u64;
    bytes.extend(fixture("stream-av-1.flv"));
    bytes.extend(noise(12, 50_000));
    let shop = bytes.len() as u64;
    bytes.extend(std::fs::read(fixtures().join("bson/shop.0")).unwrap());
    bytes.extend(noise(13, 30_000));
    let short_flv = bytes.len() as u64;
    bytes.extend(fixture("short-av.flv"));
    bytes.extend(noise(14, 20_000));
    Layout {
        bytes,
        long_flv,
        shop,
        short_flv,
    }
}

/// A sector-aligned range in the second half of the recording at `at` that holds no
/// byte of a tag header or PreviousTagSize: the walk never needs it, so the carved file
/// stays complete and the bad sector lies inside it.
fn sector_inside_payload(flv: &[u8], at: u64) -> Range<u64> {
    let framing: Vec<Range<u64>> = tag_offsets(flv)
        .iter()
        .map(|&t| at + t as u64 - 4..at + t as u64 + 11)
        .collect();
    let mut s = (at + flv.len() as u64 / 2).next_multiple_of(SECTOR);
    while framing.iter().any(|f| f.start < s + SECTOR && s < f.end) {
        s += SECTOR;
    }
    assert!(s + SECTOR < at + flv.len() as u64, "no payload-only sector");
    s..s + SECTOR
}

/// Documents of the manifest that live in shop.0 and should come back.
fn shop_documents() -> Vec<(u64, u64)> {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("bson/manifest.json")).unwrap(),
    )
    .unwrap();
    manifest["documents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["file"] == "shop.0" && d["state"] == "live" && d["intact"] == true)
        .map(|d| (d["offset"].as_u64().unwrap(), d["len"].as_u64().unwrap()))
        .collect()
}

/// Every document of every `mongo/dump/**/*.bson` file of a mount.
fn dumped_documents(mount: &Path) -> Vec<Vec<u8>> {
    let mut docs = Vec::new();
    let mut dirs = vec![mount.join("mongo/dump")];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "bson") {
                let b = std::fs::read(&p).unwrap();
                let mut at = 0;
                while at + 4 <= b.len() {
                    let n = i32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
                    docs.push(b[at..at + n].to_vec());
                    at += n;
                }
            }
        }
    }
    docs
}

fn occurrences(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
fn bad_sectors_are_skipped_reported_and_fail_only_their_reads() {
    if !require(&["fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = layout();
    let long = fixture("stream-av-1.flv");
    let short = fixture("short-av.flv");
    // One bad sector in noise, one inside the recording's payload, one in the data
    // file's documents.
    let in_noise = 2 * SECTOR..3 * SECTOR;
    let in_flv = sector_inside_payload(&long, img.long_flv);
    let in_shop = {
        let s = (img.shop + 20_000).next_multiple_of(SECTOR);
        s..s + SECTOR
    };
    let bad = vec![in_noise.clone(), in_flv.clone(), in_shop.clone()];
    let disk = FaultyDisk::mount(
        &tmp.path().join("faulty"),
        img.bytes.clone(),
        Faults {
            bad: bad.clone(),
            ..Faults::default()
        },
    );
    let idx = tmp.path().join("disk.idx");
    let idx_arg = idx.to_str().unwrap();

    // The scan goes through, reports each bad sector exactly and says so.
    let out = salvagefs_ok(&[
        &"scan",
        &"--json-summary",
        &"--index",
        &idx_arg,
        &disk.image(),
    ]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let expected: Vec<[u64; 3]> = bad.iter().map(|r| [0, r.start, r.end]).collect();
    assert_eq!(
        summary["bad_ranges"],
        serde_json::json!(expected),
        "{summary}"
    );
    assert!(disk.faults.lock().unwrap().eio_replies > 0);

    // The default mount: README.txt names the damaged file; reads of it that touch the
    // bad sector fail with EIO, all other reads are exact.
    let m = Mount::new(
        &[disk.image()],
        &tmp.path().join("mnt"),
        &["--index", idx_arg],
    );
    let long_name = format!("flv/{:013}.flv", img.long_flv);
    let short_name = format!("flv/{:013}.flv", img.short_flv);
    let readme = std::fs::read_to_string(m.path("README.txt")).unwrap();
    assert!(
        readme.contains("Unreadable ranges: 3 (12288 bytes"),
        "{readme}"
    );
    assert!(
        readme.contains(&format!("  {long_name}: 4096 unreadable bytes")),
        "{readme}"
    );
    assert!(readme.contains("fail with EIO"), "{readme}");
    let tsv = std::fs::read_to_string(m.path("flv/candidates.tsv")).unwrap();
    assert!(
        tsv.lines()
            .any(|l| l.starts_with(&long_name) && l.contains("\tcomplete\t")),
        "{tsv}"
    );

    let err = std::fs::read(m.path(&long_name)).expect_err("a read over a bad sector fails");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    let before_bad = (in_flv.start - img.long_flv) as usize;
    let mut head = vec![0u8; before_bad];
    std::fs::File::open(m.path(&long_name))
        .unwrap()
        .read_exact_at(&mut head, 0)
        .expect("the bytes before the bad sector read fine");
    assert!(head == long[..before_bad]);

    slow_sector_stalls_only_its_read(&disk, &m, img.short_flv, &short_name, &short);
    documents_off_the_bad_sector_come_back(&m, &img, &in_shop);
    drop(m);

    // --fill-bad-sectors: the same file reads whole, zeros where the sector failed.
    let m = Mount::new(
        &[disk.image()],
        &tmp.path().join("mnt2"),
        &["--index", idx_arg, "--fill-bad-sectors"],
    );
    let readme = std::fs::read_to_string(m.path("README.txt")).unwrap();
    assert!(
        readme.contains("read as zeros (mounted with --fill-bad-sectors)"),
        "{readme}"
    );
    let filled = std::fs::read(m.path(&long_name)).expect("filled read succeeds");
    let mut want = long.clone();
    want[before_bad..before_bad + SECTOR as usize].fill(0);
    assert!(
        filled == want,
        "filled file differs from the original outside the bad sector"
    );
}

/// A slow sector (a drive retrying) stalls only the read that needs it: `ls` and
/// `README.txt` answer at once meanwhile.
fn slow_sector_stalls_only_its_read(
    disk: &FaultyDisk,
    m: &Mount,
    short_at: u64,
    short_name: &str,
    short: &[u8],
) {
    {
        let mut f = disk.faults.lock().unwrap();
        f.slow.push(short_at..short_at + SECTOR);
        f.slow_for = Duration::from_secs(3);
    }
    let short_path = m.path(short_name);
    let reader = std::thread::spawn(move || {
        let t = Instant::now();
        (std::fs::read(short_path), t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    ok(std::process::Command::new("ls")
        .arg("-lR")
        .arg(m.path("mongo")));
    std::fs::read_to_string(m.path("README.txt")).unwrap();
    let ls_took = t.elapsed();
    let (bytes, read_took) = reader.join().unwrap();
    assert!(
        read_took >= Duration::from_secs(3),
        "the slow sector was not hit"
    );
    assert!(
        ls_took < Duration::from_secs(1),
        "ls waited for the slow read: {ls_took:?}"
    );
    assert!(bytes.unwrap() == *short, "short recording differs");
    disk.faults.lock().unwrap().slow.clear();
}

/// Documents on the bad sector are lost (unless a copy lies elsewhere); every other one
/// comes back byte-identical.
fn documents_off_the_bad_sector_come_back(m: &Mount, img: &Layout, in_shop: &Range<u64>) {
    let dumped = dumped_documents(&m.dir);
    let shop0 = &img.bytes[img.shop as usize..];
    let (mut lost, mut kept) = (0, 0);
    for (off, len) in shop_documents() {
        let (start, end) = (img.shop + off, img.shop + off + len);
        let doc = &shop0[off as usize..(off + len) as usize];
        let found = dumped.iter().any(|d| d == doc);
        if start < in_shop.end && in_shop.start < end {
            if occurrences(&img.bytes, doc) == 1 {
                assert!(!found, "a document on the bad sector was served");
                lost += 1;
            }
        } else {
            assert!(found, "document at shop.0+{off} missing");
            kept += 1;
        }
    }
    assert!(lost > 0 && kept > 300, "lost {lost}, kept {kept}");
}
