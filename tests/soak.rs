//! Load: a mount of a source holding hundreds of recordings, hit at once by 16 readers
//! doing random reads of random sizes, an `rsync -a` loop and an `ls -lR` loop. Every
//! byte read is checked against the fixtures placed in the image (never against the
//! mount itself); no read may fail; the daemon's peak memory stays bounded.
//!
//! The suite runs it for SALVAGEFS_SOAK_SECS seconds (default 15);
//! `scripts/soak.sh` runs the long version.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

const READERS: usize = 16;
const FILES: usize = 300;
/// The daemon may use this much memory at most, whatever the load.
const RSS_LIMIT_KB: u64 = 256 * 1024;

/// A small xorshift generator: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The image (recordings separated by noise) and, per carved file name, its bytes.
fn image(dir: &Path) -> (PathBuf, HashMap<String, Arc<Vec<u8>>>) {
    let fixtures: Vec<Arc<Vec<u8>>> = ["short-av.flv", "audio-only.flv", "video-only.flv"]
        .iter()
        .map(|n| Arc::new(fixture(n)))
        .collect();
    let mut img = Vec::new();
    let mut expected = HashMap::new();
    for i in 0..FILES {
        img.extend(noise(i as u64 + 100, 1_000 + i * 37));
        let f = &fixtures[i % fixtures.len()];
        expected.insert(format!("{:013}.flv", img.len()), f.clone());
        img.extend_from_slice(f);
    }
    img.extend(noise(99, 4_000));
    let path = dir.join("many.img");
    std::fs::write(&path, &img).unwrap();
    (path, expected)
}

/// The pid of the daemon serving `mountpoint`.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[test]
fn sixteen_readers_rsync_and_ls_for_a_while() {
    if !require(&["fusermount3", "rsync"], false) {
        return;
    }
    let secs: u64 = std::env::var("SALVAGEFS_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15);
    let tmp = tempfile::tempdir().unwrap();
    let (img, expected) = image(tmp.path());
    let idx = tmp.path().join("many.idx");
    let m = Mount::new(
        &[&img],
        &tmp.path().join("mnt"),
        &["--index", idx.to_str().unwrap()],
    );
    let listed = std::fs::read_dir(m.path("flv")).unwrap().count();
    assert_eq!(
        listed,
        FILES + 1,
        "every recording carved, plus candidates.tsv"
    );
    let pid = daemon_pid(&m.dir);

    let deadline = Instant::now() + Duration::from_secs(secs);
    let shared = Shared {
        names: Arc::new(expected.keys().cloned().collect()),
        expected: Arc::new(expected),
        verified: Arc::new(AtomicU64::new(0)),
        reads: Arc::new(AtomicU64::new(0)),
        failed: Arc::new(AtomicBool::new(false)),
    };
    let threads: Vec<_> = (0..READERS)
        .map(|r| {
            let (shared, flv) = (shared.clone(), m.path("flv"));
            std::thread::spawn(move || random_reads(r, &flv, &shared, deadline))
        })
        .collect();
    let Shared {
        expected,
        verified,
        reads,
        failed,
        ..
    } = shared;
    // rsync -a of the whole tree into a fresh directory, checked file by file.
    let rsyncs = {
        let (expected, verified, failed) = (expected.clone(), verified.clone(), failed.clone());
        let (src, dest) = (m.path(""), tmp.path().join("copy"));
        std::thread::spawn(move || {
            let mut runs = 0;
            while Instant::now() < deadline && !failed.load(Ordering::Relaxed) {
                let _ = std::fs::remove_dir_all(&dest);
                ok(Command::new("rsync").arg("-a").arg(&src).arg(&dest));
                for (name, want) in expected.iter() {
                    let got = std::fs::read(dest.join("flv").join(name)).unwrap();
                    assert!(got == **want, "rsync copy of {name} differs");
                    verified.fetch_add(got.len() as u64, Ordering::Relaxed);
                }
                runs += 1;
            }
            runs
        })
    };
    let listings = {
        let root = m.path("");
        std::thread::spawn(move || {
            let mut runs = 0;
            while Instant::now() < deadline {
                let out = ok(Command::new("ls").arg("-lR").arg(&root));
                assert!(out.stdout.len() > FILES * 40);
                runs += 1;
            }
            runs
        })
    };
    // As root, drop the page cache every half second, so that reads keep reaching
    // the daemon instead of the kernel's copy of what it served before.
    let dropper = std::thread::spawn(move || {
        let mut drops = 0;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(500));
            drops += std::fs::write("/proc/sys/vm/drop_caches", "1").is_ok() as u32;
        }
        drops
    });
    for t in threads {
        t.join().expect("a reader failed");
    }
    let cache_drops = dropper.join().unwrap();
    let rsync_runs = rsyncs.join().expect("rsync failed");
    let ls_runs = listings.join().expect("ls -lR failed");
    let peak = peak_rss_kb(pid);
    eprintln!(
        "soak: {secs}s, {READERS} readers, {} random reads, {} MB verified, {rsync_runs} rsync -a, {ls_runs} ls -lR, {cache_drops} page cache drops, 0 errors, daemon peak RSS {} MB",
        reads.load(Ordering::Relaxed),
        verified.load(Ordering::Relaxed) >> 20,
        peak >> 10
    );
    assert!(rsync_runs > 0 && ls_runs > 0);
    assert!(peak < RSS_LIMIT_KB, "daemon peak RSS {peak} kB");
}

/// What the soak's threads share: the expected bytes and the running counts.
#[derive(Clone)]
struct Shared {
    names: Arc<Vec<String>>,
    expected: Arc<HashMap<String, Arc<Vec<u8>>>>,
    verified: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

/// Reader `r`: random reads of random sizes (1 B .. 1 MiB, small ones as likely as
/// large ones) of random recordings until `deadline`, each checked against the original.
fn random_reads(r: usize, flv: &Path, s: &Shared, deadline: Instant) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (r as u64 + 1));
    while Instant::now() < deadline && !s.failed.load(Ordering::Relaxed) {
        let name = &s.names[rng.below(s.names.len() as u64) as usize];
        let want = &s.expected[name];
        let off = rng.below(want.len() as u64) as usize;
        let scale = rng.below(21);
        let len = 1 + rng.below(1 << scale) as usize;
        let end = (off + len).min(want.len());
        let mut buf = vec![0u8; end - off];
        let got =
            std::fs::File::open(flv.join(name)).and_then(|f| f.read_exact_at(&mut buf, off as u64));
        if let Err(e) = got {
            s.failed.store(true, Ordering::Relaxed);
            panic!("reader {r}: {name} at {off}+{}: {e}", buf.len());
        }
        if buf != want[off..end] {
            s.failed.store(true, Ordering::Relaxed);
            panic!("reader {r}: {name} at {off}+{}: wrong bytes", buf.len());
        }
        s.verified.fetch_add(buf.len() as u64, Ordering::Relaxed);
        s.reads.fetch_add(1, Ordering::Relaxed);
    }
}
