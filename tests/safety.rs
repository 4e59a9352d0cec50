//! The source is sacred: no index onto a source disk, loud warnings for read-write
//! mounted sources, concurrent scans that cannot corrupt the index.

use std::process::Command;

use crate::common::*;

#[test]
fn refuses_index_on_the_source_disk_and_warns_when_it_is_mounted_rw() {
    if !require(&["mke2fs", "losetup", "mount", "umount"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("fs.img");
    ok(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4"])
        .arg(&img)
        .arg("16M"));
    let out = ok(Command::new("losetup").args(["-f", "--show"]).arg(&img));
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mnt = tmp.path().join("m");
    std::fs::create_dir(&mnt).unwrap();
    ok(Command::new("mount").arg(&dev).arg(&mnt));
    struct Cleanup(String, std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.1).status();
            let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
        }
    }
    let _cleanup = Cleanup(dev.clone(), mnt.clone());

    let on_source = mnt.join("salvage.idx");
    let out = salvagefs(&[&"scan", &dev, &"--index", &on_source]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("use --index PATH on another disk"), "{err}");
    assert!(err.contains("mounted read-write"), "{err}");
    assert!(!on_source.exists());

    let elsewhere = tmp.path().join("ok.idx");
    let out = salvagefs_ok(&[&"scan", &dev, &"--index", &elsewhere]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING"));
}

#[test]
fn concurrent_scans_leave_a_valid_index() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.img");
    let mut data = noise(11, 3 << 20);
    data.extend_from_slice(&fixture("stream-av-2.flv"));
    std::fs::write(&img, &data).unwrap();
    let idx = tmp.path().join("shared.idx");
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (img, idx) = (img.clone(), idx.clone());
            std::thread::spawn(move || {
                Command::new(bin())
                    .arg("scan")
                    .arg(&img)
                    .arg("--index")
                    .arg(&idx)
                    .arg("--rescan")
                    .arg("--json-summary")
                    .output()
                    .unwrap()
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap();
        assert!(out.status.success());
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["flv"]["complete"], 1);
    }
    let out = salvagefs(&[&"scan", &img, &"--index", &idx]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing rescanned"),
        "the index survived intact"
    );
}

#[test]
fn a_damaged_foreign_or_older_index_is_never_served() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.img");
    let mut data = noise(12, 1 << 20);
    data.extend_from_slice(&fixture("short-av.flv"));
    std::fs::write(&img, &data).unwrap();
    let idx = tmp.path().join("a.idx");
    salvagefs_ok(&[&"scan", &img, &"--index", &idx]);
    let good = std::fs::read(&idx).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let mut older = good.clone();
    older[16..20].copy_from_slice(&1u32.to_le_bytes());
    // A flip inside the second section (what the scan found besides documents),
    // whose offset the header gives: the head still fits, the rest does not.
    let mut in_meta = good.clone();
    let meta_at = u64::from_le_bytes(good[40..48].try_into().unwrap()) as usize;
    in_meta[meta_at + 2] ^= 0x01;
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("truncated", good[..good.len() - 7].to_vec(), "truncated"),
        ("bit-flipped", flipped, "unusable"),
        ("meta-flipped", in_meta, "meta section checksum mismatch"),
        ("older", older, "format version 1"),
        (
            "foreign",
            std::fs::read("/bin/sh").unwrap(),
            "not a salvagefs index",
        ),
    ];
    for (what, bytes, reason) in cases {
        std::fs::write(&idx, bytes).unwrap();
        let out = salvagefs_ok(&[&"scan", &img, &"--index", &idx, &"--json-summary"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(reason) && err.contains("scanned again"),
            "{what}: {err}"
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            json["flv"]["complete"], 1,
            "{what}: the rescan found the file"
        );
        let out = salvagefs_ok(&[&"scan", &img, &"--index", &idx]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("nothing rescanned"),
            "{what}: the rescan wrote a good index"
        );
    }
}

#[test]
fn other_users_see_nothing_without_allow_other() {
    if !require(&["fusermount3", "setpriv"], true) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // The mountpoints must be reachable by the other user for the test to mean anything.
    let mut perms = std::fs::metadata(tmp.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(tmp.path(), perms).unwrap();
    let img = tmp.path().join("a.img");
    std::fs::write(&img, fixture("short-av.flv")).unwrap();
    let idx = tmp.path().join("a.idx");
    let idx = idx.to_str().unwrap();
    let as_nobody = |cmd: &str| {
        run(Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
            ])
            .arg(cmd))
    };
    let m = Mount::new(&[&img], &tmp.path().join("private"), &["--index", idx]);
    let out = as_nobody(&format!("ls {}", m.dir.display()));
    assert!(!out.status.success(), "another user listed a private mount");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));

    let shared = Mount::new(
        &[&img],
        &tmp.path().join("shared"),
        &["--index", idx, "-o", "allow_other"],
    );
    let out = as_nobody(&format!(
        "cat {}/flv/0000000000000.flv | wc -c",
        shared.dir.display()
    ));
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        fixture("short-av.flv").len().to_string()
    );
    let out = as_nobody(&format!(
        "touch {0}/x || echo > {0}/README.txt || rm {0}/README.txt",
        shared.dir.display()
    ));
    assert!(!out.status.success(), "another user changed the mount");
    drop(m);
}
