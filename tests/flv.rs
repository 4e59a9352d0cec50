//! End to end, FLV: real ffmpeg fixtures, real ext4 images, loop devices, FUSE mounts,
//! cp, rsync, sha256sum, ffprobe.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const FIXTURES: [&str; 5] = [
    "stream-av-1.flv",
    "stream-av-2.flv",
    "short-av.flv",
    "video-only.flv",
    "audio-only.flv",
];

/// Garbage, then each fixture, each followed by garbage: returns the image and offsets.
fn image_with_fixtures(dir: &Path) -> (PathBuf, Vec<(usize, &'static str)>) {
    let mut img = noise(1, 100_003);
    let mut placed = Vec::new();
    for (i, name) in FIXTURES.iter().enumerate() {
        placed.push((img.len(), *name));
        img.extend_from_slice(&fixture(name));
        img.extend_from_slice(&noise(i as u64 + 7, 10_000 + i * 3_333));
    }
    let path = dir.join("disk.img");
    std::fs::write(&path, &img).unwrap();
    (path, placed)
}

#[test]
fn every_fixture_is_carved_byte_exact_and_plays() {
    if !require(&["ffprobe", "fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (img, placed) = image_with_fixtures(tmp.path());
    let idx = tmp.path().join("disk.idx");
    let m = Mount::new(
        &[&img],
        &tmp.path().join("mnt"),
        &["--index", idx.to_str().unwrap()],
    );
    for (offset, name) in &placed {
        let carved = m.path(&format!("flv/{offset:013}.flv"));
        let bytes = std::fs::read(&carved).unwrap_or_else(|e| panic!("{name} at {offset}: {e}"));
        assert!(
            bytes == fixture(name),
            "{name}: carved bytes differ from the original"
        );
        assert_eq!(
            std::fs::metadata(&carved).unwrap().len(),
            bytes.len() as u64
        );
        assert!(ffprobe_clean(&carved) > 2.0, "{name}: duration");
    }
    let tsv = std::fs::read_to_string(m.path("flv/candidates.tsv")).unwrap();
    assert_eq!(tsv.lines().count(), 1 + FIXTURES.len(), "{tsv}");
    assert!(
        tsv.lines().skip(1).all(|l| l.contains("\tcomplete\t")),
        "{tsv}"
    );
    assert!(
        tsv.contains("\taudio+video\t") && tsv.contains("\tvideo\t") && tsv.contains("\taudio\t")
    );
    let readme = std::fs::read_to_string(m.path("README.txt")).unwrap();
    assert!(readme.contains("5 carved (5 complete"), "{readme}");
}

/// The pretix incident: an ext4 filesystem with recordings/, one lost by a mistyped
/// `mv`. Returns the image, the directory of survivors and the lost recording.
fn incident_image(dir: &Path) -> (PathBuf, PathBuf, &'static str) {
    let root = dir.join("root/recordings");
    std::fs::create_dir_all(&root).unwrap();
    let names = [
        ("recording-16677.flv", "video-only.flv"),
        ("recording-16678.flv", "stream-av-1.flv"),
        ("recording-16679.flv", "stream-av-2.flv"),
        ("recording-16680.flv", "short-av.flv"),
        ("recording-16681.flv", "audio-only.flv"),
    ];
    for (name, fx) in names {
        std::fs::write(root.join(name), fixture(fx)).unwrap();
    }
    let img = dir.join("ext4.img");
    ok(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-d"])
        .arg(dir.join("root"))
        .arg(&img)
        .arg("32M"));
    // `mv recording-16678.flv recording-16679.flv`: 16679's inode is freed, its blocks stay.
    let cmds = dir.join("mv.debugfs");
    std::fs::write(
        &cmds,
        "rm recordings/recording-16679.flv\n\
         ln recordings/recording-16678.flv recordings/recording-16679.flv\n\
         unlink recordings/recording-16678.flv\n",
    )
    .unwrap();
    ok(Command::new("debugfs")
        .arg("-w")
        .arg("-f")
        .arg(&cmds)
        .arg(&img));
    let ls = ok(Command::new("debugfs")
        .args(["-R", "ls -l recordings"])
        .arg(&img));
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(
        !ls.contains("16678") && ls.contains("16679"),
        "the mv did not happen: {ls}"
    );
    // The survivors, read back from the image itself.
    let known = dir.join("survivors");
    std::fs::create_dir_all(&known).unwrap();
    ok(Command::new("debugfs")
        .arg("-R")
        .arg(format!("rdump recordings {}", known.display()))
        .arg(&img));
    assert_eq!(
        std::fs::read_dir(known.join("recordings")).unwrap().count(),
        4
    );
    (img, known, "stream-av-2.flv")
}

/// Mounts `source` with the survivors as --known and checks the incident's outcome.
fn mount_and_check_incident(source: &Path, dir: &Path, known: &Path, lost: &str) {
    let idx = dir.join(format!(
        "{}.idx",
        source.file_name().unwrap().to_string_lossy()
    ));
    let args = [
        "--index",
        idx.to_str().unwrap(),
        "--known",
        known.to_str().unwrap(),
    ];
    let m = Mount::new(&[source], &dir.join("mnt"), &args);
    let lost_files: Vec<PathBuf> = std::fs::read_dir(m.path("flv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "flv"))
        .collect();
    assert_eq!(
        lost_files.len(),
        1,
        "exactly the lost recording is unknown: {lost_files:?}"
    );
    let original = fixtures().join("flv").join(lost);
    assert_eq!(sha256(&lost_files[0]), sha256(&original));
    ffprobe_clean(&lost_files[0]);
    let known = std::fs::read_dir(m.path("flv/known")).unwrap().count();
    assert_eq!(known, 4, "all survivors are recognised");
    let tsv = std::fs::read_to_string(m.path("flv/candidates.tsv")).unwrap();
    assert!(tsv.contains("recordings/recording-16679.flv"), "{tsv}");
}

#[test]
fn incident_lost_recording_on_ext4_comes_back_exact() {
    if !require(
        &["mke2fs", "debugfs", "ffprobe", "sha256sum", "fusermount3"],
        false,
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (img, known, lost) = incident_image(tmp.path());
    mount_and_check_incident(&img, tmp.path(), &known, lost);
}

#[test]
fn incident_through_a_read_only_loop_device() {
    if !require(
        &[
            "mke2fs",
            "debugfs",
            "ffprobe",
            "sha256sum",
            "fusermount3",
            "losetup",
        ],
        true,
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (img, known, lost) = incident_image(tmp.path());
    let out = ok(Command::new("losetup")
        .args(["-r", "-f", "--show"])
        .arg(&img));
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }
    let _detach = Detach(dev.clone());
    let idx = tmp.path().join("loop.idx");
    let out = salvagefs_ok(&[&"scan", &dev, &"--index", &idx, &"--json-summary"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        json["bytes_scanned"],
        32 << 20,
        "block device size read with BLKGETSIZE64"
    );
    mount_and_check_incident(Path::new(&dev), tmp.path(), &known, lost);
}

#[test]
fn overwritten_block_is_repaired_and_plays_to_the_end() {
    if !require(&["ffmpeg", "ffprobe", "fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut flv = fixture("stream-av-1.flv");
    // Overwrite the 4 KiB block (aligned, as a filesystem block would be) holding a tag
    // header in the middle of the recording.
    let tags = tag_offsets(&flv);
    let middle = tags[tags.len() / 2];
    let block = middle / 4096 * 4096;
    flv[block..block + 4096].copy_from_slice(&noise(99, 4096));
    let mut img = noise(5, 8192);
    let at = img.len();
    img.extend_from_slice(&flv);
    img.extend_from_slice(&noise(6, 20_000));
    let path = tmp.path().join("damaged.img");
    std::fs::write(&path, &img).unwrap();
    let idx = tmp.path().join("d.idx");
    let m = Mount::new(
        &[&path],
        &tmp.path().join("mnt"),
        &["--index", idx.to_str().unwrap()],
    );
    let tsv = std::fs::read_to_string(m.path("flv/candidates.tsv")).unwrap();
    let row = tsv.lines().nth(1).unwrap();
    assert!(row.contains("\trepaired\t"), "{row}");
    let carved = m.path(&format!("flv/{at:013}.flv"));
    ffmpeg_decodes_cleanly(&carved);
    let duration = ffprobe_clean(&carved);
    assert!((duration - 8.0).abs() < 0.1, "duration {duration}");
    // The repaired file is the original minus a short damaged stretch, ending exactly
    // where the original ends.
    let bytes = std::fs::read(&carved).unwrap();
    assert!(bytes.len() < flv.len() && bytes.len() > flv.len() - 32_768);
    assert_eq!(bytes[bytes.len() - 4096..], flv[flv.len() - 4096..]);
    assert_eq!(bytes[..block - 8192], flv[..block - 8192]);
}

#[test]
fn copies_are_exact_sources_untouched_and_writes_refused() {
    if !require(&["rsync", "sha256sum", "fusermount3", "diff"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (img, _) = image_with_fixtures(tmp.path());
    let before = (sha256(&img), std::fs::metadata(&img).unwrap().mtime());
    let idx = tmp.path().join("c.idx");
    let mnt = tmp.path().join("mnt");
    let (inode, mtime) = {
        let m = Mount::new(&[&img], &mnt, &["--index", idx.to_str().unwrap()]);
        let cp = tmp.path().join("cp");
        ok(Command::new("cp").arg("-r").arg(&m.dir).arg(&cp));
        ok(Command::new("diff").arg("-r").arg(&m.dir).arg(&cp));
        let r = tmp.path().join("rsync");
        ok(Command::new("rsync")
            .arg("-a")
            .arg(format!("{}/", m.dir.display()))
            .arg(&r));
        ok(Command::new("diff").arg("-r").arg(&m.dir).arg(&r));
        let again = ok(Command::new("rsync")
            .args(["-a", "--stats"])
            .arg(format!("{}/", m.dir.display()))
            .arg(&r));
        let stats = String::from_utf8_lossy(&again.stdout);
        assert!(
            stats.contains("Number of regular files transferred: 0"),
            "{stats}"
        );
        // Files are served with direct I/O, and stay mappable.
        let flv = std::fs::read_dir(m.dir.join("flv")).unwrap();
        let first = (flv.map(|e| e.unwrap().path()))
            .find(|p| p.extension().is_some_and(|x| x == "flv"))
            .unwrap();
        let file = std::fs::File::open(&first).unwrap();
        // SAFETY: a read-only mapping of a file whose contents never change.
        let mapped = unsafe { memmap2::Mmap::map(&file) }.unwrap();
        assert!(
            mapped[..] == std::fs::read(&first).unwrap()[..],
            "{first:?}"
        );

        for (what, cmd) in [
            ("create", format!("touch {}/new", m.dir.display())),
            ("write", format!("echo x >> {}/README.txt", m.dir.display())),
            ("mkdir", format!("mkdir {}/flv/d", m.dir.display())),
            ("unlink", format!("rm -f {}/README.txt", m.dir.display())),
            (
                "rename",
                format!("mv {0}/README.txt {0}/flv/x", m.dir.display()),
            ),
            (
                "setattr",
                format!("chmod 666 {}/README.txt", m.dir.display()),
            ),
            (
                "setxattr",
                format!(
                    "setfattr -n user.x -v 1 {}/README.txt 2>&1 || python3 -c \"import os; os.setxattr('{}/README.txt', 'user.x', b'1')\"",
                    m.dir.display(),
                    m.dir.display()
                ),
            ),
        ] {
            let out = run(Command::new("sh").arg("-c").arg(&cmd));
            let err = String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout);
            assert!(
                !out.status.success() && err.contains("Read-only file system"),
                "{what}: {err}"
            );
        }
        // Modes an owner can work with in a copy; the mount refuses writes all the same.
        let meta = std::fs::metadata(m.path("README.txt")).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o644);
        assert_eq!(
            std::fs::metadata(m.path("flv")).unwrap().mode() & 0o777,
            0o755
        );
        let copy = tmp.path().join("copy");
        ok(Command::new("cp").arg("-a").arg(m.path("flv")).arg(&copy));
        assert_eq!(std::fs::metadata(&copy).unwrap().mode() & 0o777, 0o755);
        let readme_copy = tmp.path().join("README.copy");
        ok(Command::new("cp")
            .arg("-a")
            .arg(m.path("README.txt"))
            .arg(&readme_copy));
        assert_eq!(
            std::fs::metadata(&readme_copy).unwrap().mode() & 0o777,
            0o644
        );
        (meta.ino(), meta.mtime())
    };
    // Remount the same index: same inode numbers and mtimes (what rsync and cp -u use).
    {
        let m = Mount::new(&[&img], &mnt, &["--index", idx.to_str().unwrap()]);
        let meta = std::fs::metadata(m.path("README.txt")).unwrap();
        assert_eq!((meta.ino(), meta.mtime()), (inode, mtime));
    }
    assert_eq!(
        (sha256(&img), std::fs::metadata(&img).unwrap().mtime()),
        before,
        "the source changed"
    );
}

/// Asserts a clean one-line error and a failure exit.
fn fails_with(out: &std::process::Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success: {err}"
    );
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line expected: {err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

#[test]
fn bad_input_gets_clear_errors_never_panics() {
    if !require(&["fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let idx = t.join("b.idx");
    fails_with(
        &salvagefs(&[&"scan", &t.join("nope.img"), &"--index", &idx]),
        "no such file or device",
    );
    fails_with(
        &salvagefs(&[&"scan", &t, &"--index", &idx]),
        "is a directory",
    );
    fails_with(
        &salvagefs(&[&"mount", &t.join("nope.img"), &t.join("mnt")]),
        "does not exist",
    );

    let empty = t.join("empty.img");
    std::fs::write(&empty, b"").unwrap();
    let out = salvagefs_ok(&[&"scan", &empty, &"--index", &idx]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 FLV"));

    let no_flv = t.join("noflv.img");
    std::fs::write(&no_flv, noise(3, 1 << 20)).unwrap();
    let file_mp = t.join("file");
    std::fs::write(&file_mp, b"x").unwrap();
    fails_with(
        &salvagefs(&[&"mount", &no_flv, &file_mp, &"--index", &idx]),
        "is not a directory",
    );
    fails_with(
        &salvagefs(&[&"mount", &no_flv, &t.join("missing"), &"--index", &idx]),
        "mkdir -p",
    );
    std::fs::create_dir(t.join("mp")).unwrap();
    fails_with(
        &salvagefs(&[
            &"mount",
            &no_flv,
            &t.join("mp"),
            &"-o",
            &"bogus",
            &"--index",
            &idx,
        ]),
        "unknown mount option",
    );
    {
        let m = Mount::new(
            &[&no_flv],
            &t.join("mnt"),
            &["--index", idx.to_str().unwrap()],
        );
        let names: Vec<_> = std::fs::read_dir(m.path("flv"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["candidates.tsv"]);
        fails_with(
            &salvagefs(&[&"mount", &no_flv, &m.dir, &"--index", &idx]),
            "already a mountpoint",
        );
    }

    // A corrupt index is detected, never served: rescanned with a message.
    std::fs::write(&idx, b"salvagefs-index\n garbage").unwrap();
    let out = salvagefs(&[&"scan", &no_flv, &"--index", &idx]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("unusable") && err.contains("scanned again"),
        "{err}"
    );
    // A stale one (the source changed) too.
    std::fs::write(&no_flv, noise(4, 1 << 20)).unwrap();
    let out = salvagefs(&[&"scan", &no_flv, &"--index", &idx]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale"));
    // And a matching one is reused without a scan.
    let out = salvagefs(&[&"scan", &no_flv, &"--index", &idx]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing rescanned"));
}

#[test]
fn default_index_lives_in_the_xdg_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.img");
    std::fs::write(&img, fixture("short-av.flv")).unwrap();
    let out = run(Command::new(bin())
        .arg("scan")
        .arg(&img)
        .arg("--json-summary")
        .env("XDG_CACHE_HOME", tmp.path().join("cache")));
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let index = PathBuf::from(json["index"].as_str().unwrap());
    assert!(
        index.starts_with(tmp.path().join("cache/salvagefs")),
        "{index:?}"
    );
    assert!(index.exists());
    assert_eq!(json["flv"]["complete"], 1);
}
