//! Helpers for the end-to-end tests: the real binary, real tools, real FUSE mounts.

pub mod faulty;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The salvagefs binary built by cargo for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_salvagefs"))
}

/// The committed fixtures directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join("flv").join(name))
        .expect("fixture missing: run scripts/make-flv-fixtures.sh")
}

/// The Debian package that provides a tool the tests run.
fn package_of(tool: &str) -> &str {
    match tool {
        "ffmpeg" | "ffprobe" => "ffmpeg",
        "fusermount3" => "fuse3",
        "mke2fs" | "filefrag" => "e2fsprogs",
        "mkfs.xfs" => "xfsprogs",
        "mkfs.btrfs" => "btrfs-progs",
        "losetup" | "setpriv" => "util-linux",
        "mount" | "umount" => "mount",
        "kill" | "pgrep" => "procps",
        "diff" => "diffutils",
        "cp" | "sha256sum" => "coreutils",
        other => other,
    }
}

/// True if every tool is on PATH (and we are root when `root` is set). A missing tool
/// fails the test with the command that installs it; only an explicit
/// `SALVAGEFS_SKIP_MISSING=1` turns that into a skip, which is printed.
pub fn require(tools: &[&str], root: bool) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| {
            Command::new("sh")
                .args(["-c", &format!("command -v {t}")])
                .output()
                .map_or(true, |o| !o.status.success())
        })
        .collect();
    // SAFETY: geteuid has no preconditions.
    let not_root = root && unsafe { libc::geteuid() } != 0;
    if missing.is_empty() && !not_root {
        return true;
    }
    let mut packages: Vec<&str> = missing.iter().map(|t| package_of(t)).collect();
    packages.dedup();
    let mut msg = String::new();
    if !missing.is_empty() {
        msg = format!(
            "missing {}: install with `apt-get install -y {}`",
            missing.join(", "),
            packages.join(" ")
        );
    }
    if not_root {
        msg.push_str(if msg.is_empty() { "" } else { "; " });
        msg.push_str("this test needs root (loop devices, mounts): run it with sudo");
    }
    skip_or_fail(&msg)
}

/// A test cannot run here: fails saying why, unless `SALVAGEFS_SKIP_MISSING=1` asks
/// for a skip (then says so on stderr and returns false).
pub fn skip_or_fail(msg: &str) -> bool {
    if std::env::var("SALVAGEFS_SKIP_MISSING").as_deref() == Ok("1") {
        eprintln!("SKIPPED (SALVAGEFS_SKIP_MISSING=1): {msg}");
        return false;
    }
    panic!("{msg} (or set SALVAGEFS_SKIP_MISSING=1 to skip such tests)");
}

/// Like [`require`], for pymongo: the independent BSON implementation the checks use.
pub fn require_pymongo() -> bool {
    if !require(&["python3", "fusermount3"], true) {
        return false;
    }
    let has = Command::new("python3")
        .args(["-c", "import bson, pymongo"])
        .output()
        .is_ok_and(|o| o.status.success());
    has || skip_or_fail("missing pymongo: install with `python3 -m pip install pymongo==4.10.1`")
}

/// Runs a command, returning its output; panics if it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command and insists on success.
pub fn ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `salvagefs ARGS...`
pub fn salvagefs(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(bin());
    for a in args {
        cmd.arg(a);
    }
    run(&mut cmd)
}

/// `salvagefs ARGS...`, which must succeed (its stderr is shown if not).
pub fn salvagefs_ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let out = salvagefs(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// sha256 of a file, by the real `sha256sum`.
pub fn sha256(path: &Path) -> String {
    let out = ok(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `ffprobe -v error` prints nothing and succeeds; returns the duration it reports.
pub fn ffprobe_clean(path: &Path) -> f64 {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0.0)
}

/// `ffmpeg -v error -i X -f null -` decodes every frame without a single error.
pub fn ffmpeg_decodes_cleanly(path: &Path) {
    let out = run(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"]));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deterministic filler bytes (xorshift), for garbage between carved files.
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A live salvagefs mount, unmounted when dropped.
pub struct Mount {
    pub dir: PathBuf,
}

impl Mount {
    /// `salvagefs mount SOURCES... DIR EXTRA...`; panics unless it succeeds.
    pub fn new(sources: &[&Path], dir: &Path, extra: &[&str]) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let mut cmd = Command::new(bin());
        cmd.arg("mount").args(sources).arg(dir).args(extra);
        ok(&mut cmd);
        Mount {
            dir: dir.to_path_buf(),
        }
    }

    /// A path inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        for _ in 0..50 {
            let out = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.dir)
                .output();
            if out.is_ok_and(|o| o.status.success()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = Command::new("fusermount3")
            .arg("-uz")
            .arg(&self.dir)
            .output();
    }
}

/// The offsets of tag starts in an FLV file (independent of the carver under test).
pub fn tag_offsets(flv: &[u8]) -> Vec<usize> {
    let mut pos = 13;
    let mut out = Vec::new();
    while pos + 11 <= flv.len() {
        out.push(pos);
        let size = u32::from_be_bytes([0, flv[pos + 1], flv[pos + 2], flv[pos + 3]]) as usize;
        pos += 15 + size;
    }
    out
}

/// The pid of the daemon serving the mount on `mountpoint`.
pub fn daemon_pid(mountpoint: &Path) -> u32 {
    let want = mountpoint.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
            args.contains(&&b"--daemon-child"[..]) && args.contains(&want)
        })
        .expect("the mount daemon is running")
}
