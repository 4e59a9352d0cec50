//! Mount hygiene: SIGTERM unmounts a foreground mount cleanly; after `kill -9` the dead
//! mountpoint gets a clear error, `fusermount3 -u` releases it and a new mount works.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::*;

fn mounted(dir: &Path) -> bool {
    let canonical = std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(canonical.to_str().unwrap()))
}

fn wait_until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting until {what}");
}

#[test]
fn sigterm_unmounts_and_kill_9_is_recoverable() {
    if !require(&["fusermount3", "kill", "pgrep"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.img");
    std::fs::write(&img, fixture("short-av.flv")).unwrap();
    let idx = tmp.path().join("a.idx");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();

    let mut fg = Command::new(bin())
        .arg("mount")
        .arg(&img)
        .arg(&mnt)
        .arg("-f")
        .arg("--index")
        .arg(&idx)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("mounted", || mounted(&mnt));
    assert!(mnt.join("flv/0000000000000.flv").exists());
    ok(Command::new("kill").arg("-TERM").arg(fg.id().to_string()));
    let status = fg.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(!mounted(&mnt), "SIGTERM unmounted");

    // A daemon killed with -9 leaves a dead mount: clear error, then release and remount.
    let m = Mount::new(&[&img], &mnt, &["--index", idx.to_str().unwrap()]);
    let pids = ok(Command::new("pgrep").arg("-f").arg(format!(
        "{} --index {} --daemon-child",
        mnt.display(),
        idx.display()
    )));
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        ok(Command::new("kill").arg("-9").arg(pid));
    }
    wait_until("the mount is dead", || std::fs::metadata(&mnt).is_err());
    let out = salvagefs(&[&"mount", &img, &mnt, &"--index", &idx]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("fusermount3 -u"),
        "{err}"
    );
    ok(Command::new("fusermount3").arg("-u").arg(&mnt));
    std::mem::forget(m); // already released above
    let m = Mount::new(&[&img], &mnt, &["--index", idx.to_str().unwrap()]);
    assert!(m.path("flv/0000000000000.flv").exists());
}
