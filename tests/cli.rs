//! The command line as people type it: options anywhere around the paths (as mount(8),
//! sshfs and squashfuse accept them), `mount` saying what it found, and clear errors.

use std::path::{Path, PathBuf};

use crate::common::*;

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/sample.img")
}

fn survivors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/survivors")
}

#[test]
fn mount_takes_options_anywhere_and_says_what_it_found() {
    if !require(&["fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("s.idx");
    let (img, known) = (sample(), survivors());
    let orders: [Vec<&dyn AsRef<std::ffi::OsStr>>; 3] = [
        vec![&img, &"--known", &known, &"--index", &idx],
        vec![&"--index", &idx, &img, &"--known", &known],
        vec![&"--known", &known, &img, &"--index", &idx],
    ];
    for (n, order) in orders.into_iter().enumerate() {
        let dir = tmp.path().join(format!("mnt{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"mount"];
        args.extend(order);
        args.push(&dir);
        let out = salvagefs_ok(&args);
        let m = Mount { dir };
        let said = String::from_utf8_lossy(&out.stdout);
        let first = if n == 0 {
            "scanned"
        } else {
            "index up to date"
        };
        assert!(said.starts_with(first), "order {n}: {said}");
        assert!(
            said.contains(
                ": 5 FLV (4 complete, 1 repaired, 0 reassembled, 0 truncated), 4 known, 1 unknown;"
            ),
            "order {n}: {said}"
        );
        let known = std::fs::read_dir(m.path("flv/known")).unwrap();
        let flv = known
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".flv"));
        assert_eq!(flv.count(), 4);
    }
    let dir = tmp.path().join("json");
    std::fs::create_dir_all(&dir).unwrap();
    let out = salvagefs_ok(&[&"mount", &img, &dir, &"--json-summary", &"--index", &idx]);
    let _m = Mount { dir };
    let text = String::from_utf8_lossy(&out.stdout);
    let json_end = text.rfind('}').unwrap() + 1;
    let v: serde_json::Value = serde_json::from_str(&text[..json_end]).unwrap();
    assert_eq!(
        (v["flv"]["total"].as_u64(), v["index_reused"].as_bool()),
        (Some(5), Some(true))
    );
}

#[test]
fn mount_with_one_path_says_what_to_give() {
    let out = salvagefs(&[&"mount", &sample()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("name the sources, then the mountpoint"),
        "{err}"
    );
}

#[test]
fn a_mountpoint_holding_files_is_refused_unless_asked() {
    if !require(&["fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (idx, dir) = (tmp.path().join("s.idx"), tmp.path().join("mnt"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let out = salvagefs(&[&"mount", &sample(), &dir, &"--index", &idx]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("is not empty"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    salvagefs_ok(&[
        &"mount",
        &sample(),
        &dir,
        &"--index",
        &idx,
        &"-o",
        &"nonempty",
    ]);
    let m = Mount { dir };
    assert!(m.path("README.txt").exists());
}

#[test]
fn sizes_take_suffixes_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("s.idx");
    let out = salvagefs_ok(&[
        &"scan",
        &sample(),
        &"--index",
        &idx,
        &"--repair-window",
        &"4M",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 FLV"));
    let out = salvagefs(&[
        &"scan",
        &sample(),
        &"--index",
        &idx,
        &"--repair-window",
        &"4X",
    ]);
    assert!(!out.status.success());
}

#[test]
fn a_rescan_of_unchanged_sources_keeps_every_mtime() {
    if !require(&["fusermount3"], false) {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("s.idx");
    let mtimes = |extra: &[&dyn AsRef<std::ffi::OsStr>]| {
        let dir = tmp.path().join("mnt");
        std::fs::create_dir_all(&dir).unwrap();
        let img = sample();
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"mount", &img, &dir, &"--index", &idx];
        args.extend_from_slice(extra);
        salvagefs_ok(&args);
        let m = Mount { dir };
        let flv = std::fs::read_dir(m.path("flv")).unwrap();
        let mut times: Vec<(String, i64)> = flv
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into(),
                    e.metadata().unwrap().mtime(),
                )
            })
            .collect();
        times.sort();
        times
    };
    let first = mtimes(&[]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(mtimes(&[&"--rescan"]), first);
}

#[test]
fn help_man_page_and_readme_name_the_same_options() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let man = std::fs::read_to_string(root.join("man/salvagefs.1")).unwrap();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut checked = 0;
    for command in ["scan", "mount", "merge", "completions"] {
        assert!(
            man.contains(&format!(".B salvagefs {command}")),
            "man: {command}"
        );
        assert!(
            readme.contains(&format!("salvagefs {command}")),
            "README: {command}"
        );
        let help = salvagefs_ok(&[&command, &"--help"]);
        for line in String::from_utf8_lossy(&help.stdout).lines() {
            let Some(at) = line
                .find("--")
                .filter(|_| line.trim_start().starts_with('-'))
            else {
                continue;
            };
            let name: String = line[at + 2..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            let in_man = man.contains(&format!("\\-\\-{}", name.replace('-', "\\-")));
            assert!(in_man, "--{name} of {command} is not in the man page");
            assert!(
                readme.contains(&format!("--{name}")),
                "--{name} of {command} is not in README.md"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} options found in --help");
}

#[test]
fn completions_and_verbosity() {
    for shell in ["bash", "zsh", "fish"] {
        let out = salvagefs_ok(&[&"completions", &shell]);
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("salvagefs") && script.contains("mount"),
            "{shell}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let idx = tmp.path().join("q.idx");
    let quiet = salvagefs_ok(&[&"-q", &"scan", &sample(), &"--index", &idx]);
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let loud = salvagefs_ok(&[&"scan", &"-v", &sample(), &"--index", &idx]);
    assert!(String::from_utf8_lossy(&loud.stderr).contains("INFO"));
}

#[test]
fn export_writes_the_mounts_tree_and_resumes() {
    if !require(&["fusermount3", "diff"], false) {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let (img, known, idx) = (sample(), survivors(), tmp.path().join("s.idx"));
    let dir = tmp.path().join("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    salvagefs_ok(&[&"mount", &img, &dir, &"--index", &idx, &"--known", &known]);
    let m = Mount { dir };
    let dest = tmp.path().join("export");
    let out = salvagefs_ok(&[&"export", &img, &dest, &"--index", &idx, &"--known", &known]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("8 files written"));
    // The same tree: names, bytes and mtimes.
    ok(std::process::Command::new("diff")
        .arg("-r")
        .arg(&m.dir)
        .arg(&dest));
    for rel in ["README.txt", "flv/candidates.tsv", "flv"] {
        let (a, b) = (
            std::fs::metadata(m.path(rel)).unwrap(),
            std::fs::metadata(dest.join(rel)).unwrap(),
        );
        assert_eq!(a.mtime(), b.mtime(), "{rel}");
    }
    // Again: nothing to do. A file cut short (an interrupted copy) is written again.
    let out = salvagefs_ok(&[&"export", &img, &dest, &"--index", &idx, &"--known", &known]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("0 files written (0 bytes), 8 already complete")
    );
    let tsv = dest.join("flv/candidates.tsv");
    std::fs::write(&tsv, "cut").unwrap();
    let out = salvagefs_ok(&[&"export", &img, &dest, &"--index", &idx, &"--known", &known]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 files written"));
    ok(std::process::Command::new("diff")
        .arg("-r")
        .arg(&m.dir)
        .arg(&dest));
    // --only: just the lost recordings.
    let some = tmp.path().join("some");
    salvagefs_ok(&[
        &"export",
        &img,
        &some,
        &"--index",
        &idx,
        &"--known",
        &known,
        &"--only",
        &"flv/*.flv",
    ]);
    let names: Vec<String> = std::fs::read_dir(some.join("flv"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(".flv"));
    assert!(!some.join("README.txt").exists());
}

/// True while `dir` is a mountpoint (in this process's view).
fn mounted(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    info.lines().any(|l| l.split(' ').nth(4) == dir.to_str())
}

/// Sends `signal` to `pid`.
fn signal(pid: u32, signal: &str) {
    ok(std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string()));
    std::thread::sleep(std::time::Duration::from_millis(700));
}

#[test]
fn signals_never_leave_a_dead_mount_and_name_who_holds_it() {
    if !require(&["fusermount3", "kill", "sleep"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (idx, img) = (tmp.path().join("s.idx"), sample());
    salvagefs_ok(&[&"scan", &img, &"--index", &idx]);
    for (mode, sig) in [("foreground", "INT"), ("daemon", "TERM")] {
        let dir = tmp.path().join(mode);
        std::fs::create_dir_all(&dir).unwrap();
        let log = tmp.path().join(format!("{mode}.err"));
        let mut fg = None;
        let pid = if mode == "foreground" {
            let child = std::process::Command::new(bin())
                .args(["mount", "-f", "--index"])
                .arg(&idx)
                .arg(&img)
                .arg(&dir)
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            for _ in 0..50 {
                if mounted(&dir) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let pid = child.id();
            fg = Some(child);
            pid
        } else {
            salvagefs_ok(&[&"mount", &img, &dir, &"--index", &idx]);
            daemon_pid(&dir)
        };
        let mut holder = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec sleep 30")
            .current_dir(&dir)
            .spawn()
            .unwrap();
        // The holder is named by its command: wait until sh has become sleep.
        let comm = format!("/proc/{}/comm", holder.id());
        for _ in 0..100 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        signal(pid, sig);
        assert!(
            mounted(&dir),
            "{mode}: the first signal took a busy mount down"
        );
        assert!(
            std::fs::read_dir(&dir).is_ok(),
            "{mode}: the busy mount stopped serving"
        );
        if mode == "foreground" {
            let said = std::fs::read_to_string(&log).unwrap();
            assert!(
                said.contains("is busy") && said.contains("(sleep)"),
                "{said}"
            );
        }
        signal(pid, sig);
        assert!(
            !mounted(&dir),
            "{mode}: the second signal did not detach the mount"
        );
        holder.kill().unwrap();
        holder.wait().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(700));
        assert!(
            std::fs::metadata(&dir).is_ok(),
            "{mode}: a dead mount was left"
        );
        if let Some(child) = fg.as_mut() {
            assert!(child.try_wait().unwrap().is_some(), "{mode}: still running");
        } else {
            // Exited (a zombie until whoever adopted it reaps it) or gone.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(
                stat.is_empty() || stat.contains(") Z "),
                "{mode}: still running: {stat}"
            );
        }
    }
}

#[test]
fn cached_indexes_are_listed_and_the_stale_ones_pruned() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let run_in_cache = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let mut cmd = std::process::Command::new(bin());
        cmd.env("XDG_CACHE_HOME", &cache);
        for a in args {
            cmd.arg(a);
        }
        ok(&mut cmd)
    };
    let copy = tmp.path().join("copy.img");
    std::fs::copy(sample(), &copy).unwrap();
    run_in_cache(&[&"scan", &sample()]);
    run_in_cache(&[&"scan", &copy]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&copy)
        .unwrap();
    std::io::Write::write_all(&mut f, b"more").unwrap();
    let listed = String::from_utf8_lossy(&run_in_cache(&[&"index", &"list"]).stdout).to_string();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed
            .lines()
            .any(|l| l.contains("copy.img") && l.contains("stale")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.contains("sample.img") && l.ends_with("current")),
        "{listed}"
    );
    run_in_cache(&[&"index", &"prune"]);
    let listed = String::from_utf8_lossy(&run_in_cache(&[&"index", &"list"]).stdout).to_string();
    assert_eq!(listed.lines().count(), 1, "{listed}");
    run_in_cache(&[&"index", &"prune", &"--all"]);
    let listed = run_in_cache(&[&"index", &"list"]);
    assert!(listed.stdout.is_empty());
}

#[test]
fn the_mounts_readme_speaks_plainly_and_lists_what_exists() {
    if !require(&["fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (idx, dir) = (tmp.path().join("s.idx"), tmp.path().join("mnt"));
    std::fs::create_dir_all(&dir).unwrap();
    salvagefs_ok(&[&"mount", &sample(), &dir, &"--index", &idx]);
    let m = Mount { dir };
    let readme = std::fs::read_to_string(m.path("README.txt")).unwrap();
    assert!(
        !readme.contains("unix time") && !readme.contains("Image"),
        "{readme}"
    );
    assert!(
        readme.contains("bytes, file)") && readme.contains("Scanned 20"),
        "{readme}"
    );
    assert!(
        !readme.contains("mongo/") && !readme.contains("flv/known/"),
        "{readme}"
    );
    assert!(readme.contains("flv/candidates.tsv"), "{readme}");
}

#[test]
fn a_recording_keeps_the_date_its_metadata_gives() {
    if !require(&["ffmpeg", "fusermount3"], false) {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let flv = tmp.path().join("dated.flv");
    ok(std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-f", "lavfi", "-i"])
        .arg("testsrc=duration=1:size=64x48:rate=10")
        .args([
            "-metadata",
            "creationdate=2019-06-03T14:55:37Z",
            "-c:v",
            "flv1",
        ])
        .arg(&flv));
    let (idx, dir) = (tmp.path().join("d.idx"), tmp.path().join("mnt"));
    std::fs::create_dir_all(&dir).unwrap();
    salvagefs_ok(&[&"mount", &flv, &dir, &"--index", &idx]);
    let m = Mount { dir };
    let carved = m.path("flv/0000000000000.flv");
    assert_eq!(std::fs::metadata(&carved).unwrap().mtime(), 1_559_573_737);
    let dest = tmp.path().join("export");
    salvagefs_ok(&[&"export", &flv, &dest, &"--index", &idx]);
    let exported = dest.join("flv/0000000000000.flv");
    assert_eq!(std::fs::metadata(exported).unwrap().mtime(), 1_559_573_737);
}
