//! The source is sacred: no index onto a source disk, loud warnings for read-write
//! mounted sources, concurrent scans that cannot corrupt the index.

mod common;

use std::process::Command;

use common::*;

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
