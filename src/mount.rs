//! `salvagefs mount`: prepare the index (scanning in the foreground, with progress),
//! then serve the tree from a daemon that returns control once the mount is ready.
//!
//! The daemon is this same program re-executed with `-f --daemon-child`: the parent
//! reads the child's stderr until the child says `READY` (mounted) or exits (its error
//! line is passed on), so `salvagefs mount` fails or succeeds exactly as the mount does.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use fuser::{Config, MountOption, SessionACL};

use salvagefs::fs::SalvageFs;
use salvagefs::pipeline::IndexOrigin;
use salvagefs::{mountinfo, pipeline};

use crate::cli::MountArgs;
use crate::unmount::{self, Unmounted};

const READY: &str = "READY";
/// Prefix of the daemon's line that carries the scan's one-line summary.
const SUMMARY: &str = "SUMMARY\t";
/// Prefix of the daemon's line that carries the `--json-summary` JSON.
const JSON: &str = "JSON\t";

/// Prints a report line of the daemon on stdout as `scan` prints its own: the one-line
/// summary after how the index came to be (`origin`, as this process knows it), or the
/// JSON summary, indented.
fn print_report(line: &str, origin: &IndexOrigin) {
    if let Some(counts) = line.strip_prefix(SUMMARY) {
        println!("{}: {counts}", crate::steps::how(origin));
    } else if let Some(json) = line.strip_prefix(JSON) {
        let pretty = serde_json::from_str::<serde_json::Value>(json).and_then(|mut v| {
            v["index_reused"] = (*origin == IndexOrigin::Reused).into();
            serde_json::to_string_pretty(&v)
        });
        println!("{}", pretty.unwrap_or_else(|_| json.to_string()));
    }
}

/// Runs `salvagefs mount`.
pub fn run(args: MountArgs) -> Result<()> {
    let (mountpoint, sources) = match args.paths.split_last() {
        Some((mountpoint, sources)) if !sources.is_empty() => (mountpoint, sources),
        _ => bail!(
            "name the sources, then the mountpoint: salvagefs mount /dev/sdb /mnt/salvage (or salvagefs scan SOURCE without mounting)"
        ),
    };
    let nonempty = option_words(&args).any(|o| o == "nonempty");
    check_mountpoint(mountpoint, nonempty)?;
    check_fuse()?;
    let config = fuse_config(&args)?;
    if !args.foreground && !args.daemon_child {
        let origin = crate::steps::ensure_index(sources, &args.common)?;
        return start_daemon(mountpoint, &origin);
    }
    let prepared = crate::steps::prepare(sources, &args.common, None)?;
    let origin = prepared.origin.clone();
    let built = pipeline::build_tree(
        prepared,
        args.common.known.as_deref(),
        (args.fill_bad_sectors, args.json_summary),
    )?;
    let report = match &built.json {
        Some(json) => format!("{JSON}{json}"),
        None => format!("{SUMMARY}{}", built.summary),
    };
    let fs = SalvageFs::new(built.tree, built.content, built.mtime, !args.page_cache);
    let session = fuser::Session::new(fs, mountpoint, &config)
        .with_context(|| format!("cannot mount on {}", mountpoint.display()))?;

    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("cannot install the signal handler")?;
    let background = session
        .spawn()
        .context("cannot start the filesystem thread")?;
    raise_readahead(mountpoint);
    if args.daemon_child {
        // The starting process prints what was found, then that the mount is ready.
        eprintln!("{report}");
        announce_ready_and_detach();
    } else {
        print_report(&report, &origin);
        eprintln!(
            "salvagefs: mounted on {}; Ctrl-C or `fusermount3 -u {}` unmounts",
            mountpoint.display(),
            mountpoint.display()
        );
    }
    let canonical = std::fs::canonicalize(mountpoint)?;
    let mut signals = 0;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            // SIGINT/SIGTERM/SIGHUP: unmount (the session then ends, below); if busy,
            // say who holds the mount and go on serving. The second detaches it
            // lazily: gone from the tree at once, served until its users let go. A
            // third exits now. Never a dead mount.
            Ok(()) => {
                signals += 1;
                if signals >= 3 {
                    std::mem::forget(background);
                    return Ok(());
                }
                if let Unmounted::Busy(holders) = unmount::unmount(&canonical, signals == 2)? {
                    let who = match holders.is_empty() {
                        true => "an unknown process".to_string(),
                        false => holders.join(", "),
                    };
                    let message = format!(
                        "salvagefs: {} is busy, still serving; used by {who}; close them or signal again to detach it lazily",
                        mountpoint.display()
                    );
                    tell(&message, args.daemon_child);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) if !background.guard.is_finished() => continue,
            // Unmounted from outside (fusermount3 -u / umount): the session ended. Do not
            // drop the session: its drop unmounts by path, and the path may already
            // hold a new mount (a quick remount) that we must not take down.
            _ => {
                std::mem::forget(background);
                return Ok(());
            }
        }
    }
}

/// Tells the user something while serving: on stderr in the foreground; the daemon's
/// stderr is gone, so it writes to the terminal it was started from, if any (else to
/// the log, which only `-f` shows).
fn tell(message: &str, daemon: bool) {
    use std::io::Write;
    let tty = daemon
        .then(|| {
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/tty")
                .ok()
        })
        .flatten();
    match tty {
        Some(mut tty) => {
            let _ = writeln!(tty, "{message}");
        }
        None if daemon => log::warn!("{message}"),
        None => eprintln!("{message}"),
    }
}

/// The kernel caps a FUSE mount's readahead at 128 KiB whatever the daemon asks for;
/// as root, raise it to 1 MiB through sysfs (sequential reads of large recordings get
/// about 20% faster). Without the rights this is skipped: it is only an optimization.
/// The mount's device number comes from /proc/self/mountinfo, not from a `stat` of the
/// mountpoint: that would cache the root's attributes for a day, and a `stat` after the
/// daemon died would then still succeed instead of telling that the mount is dead.
fn raise_readahead(mountpoint: &Path) {
    let Ok(path) = std::fs::canonicalize(mountpoint) else {
        return;
    };
    let device = mountinfo::mounts()
        .into_iter()
        .rev()
        .find(|m| m.target == path)
        .map(|m| m.device);
    let Some(device) = device else {
        return;
    };
    let knob = format!("/sys/class/bdi/{device}/read_ahead_kb");
    if let Err(e) = std::fs::write(&knob, "1024") {
        log::debug!("readahead left at the kernel's default ({knob}: {e})");
    }
}

/// The words of every `-o`, comma-separated lists split.
fn option_words(args: &MountArgs) -> impl Iterator<Item = &str> {
    args.options
        .iter()
        .flat_map(|o| o.split(','))
        .filter(|o| !o.is_empty())
}

/// The FUSE configuration: read-only, kernel permission checks, several workers.
fn fuse_config(args: &MountArgs) -> Result<Config> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName("salvagefs".into()),
        MountOption::Subtype("salvagefs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoExec,
    ];
    for opt in option_words(args) {
        config.acl = match opt {
            "allow_other" => SessionACL::All,
            "allow_root" => SessionACL::RootAndOwner,
            "ro" | "nonempty" => continue,
            other => bail!(
                "unknown mount option -o {other}; supported: allow_other, allow_root, nonempty"
            ),
        };
    }
    config.n_threads = Some(args.threads.clamp(1, 64));
    Ok(config)
}

/// Clear errors for the mountpoints people get wrong.
fn check_mountpoint(mp: &Path, nonempty: bool) -> Result<()> {
    let shown = mp.display();
    match std::fs::metadata(mp) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            bail!(
                "{shown} is a dead mount (its daemon was killed); release it with `fusermount3 -u {shown}`"
            )
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("mountpoint {shown} does not exist; create it with `mkdir -p {shown}`")
        }
        Err(e) => bail!("mountpoint {shown}: {e}"),
        Ok(m) if !m.is_dir() => {
            bail!("mountpoint {shown} is not a directory; give an empty directory")
        }
        Ok(_) => {}
    }
    let canonical = std::fs::canonicalize(mp)?;
    let busy = mountinfo::mounts().iter().any(|m| m.target == canonical);
    if busy {
        bail!(
            "{shown} is already a mountpoint; unmount it first (`fusermount3 -u {shown}`) or pick another directory"
        );
    }
    if !nonempty && std::fs::read_dir(mp)?.next().is_some() {
        bail!(
            "mountpoint {shown} is not empty: the mount would hide its files; give an empty directory (or -o nonempty)"
        );
    }
    Ok(())
}

/// FUSE must be there: else say so, and that `export` works without it (the kernel's
/// own error would blame the mountpoint).
fn check_fuse() -> Result<()> {
    let hint = "salvagefs export SOURCE... DIR writes the same tree into a directory without FUSE";
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "/dev/fuse is missing (no FUSE in this container or rescue system; modprobe fuse, or apt-get install fuse3); {hint}"
        ),
        Err(e) => bail!("cannot open /dev/fuse ({e}); {hint}"),
    }
}

/// Re-executes this program as the mount daemon and waits until it is mounted.
fn start_daemon(mountpoint: &Path, origin: &IndexOrigin) -> Result<()> {
    let exe: PathBuf = std::env::current_exe().context("cannot find the salvagefs executable")?;
    let mut child = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .arg("--daemon-child")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .context("cannot start the mount daemon")?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow!("no pipe to the mount daemon"))?;
    let mut last_error = None;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap_or_default();
        if line.starts_with(SUMMARY) || line.starts_with(JSON) {
            print_report(&line, origin);
            continue;
        }
        if line == READY {
            println!(
                "salvagefs: mounted on {}; unmount with `fusermount3 -u {}`",
                mountpoint.display(),
                mountpoint.display()
            );
            return Ok(());
        }
        if let Some(msg) = line.strip_prefix("salvagefs: error: ") {
            last_error = Some(msg.to_string());
        } else if !line.is_empty() {
            eprintln!("{line}");
        }
    }
    let status = child.wait()?;
    bail!(last_error.unwrap_or_else(|| format!(
        "the mount daemon exited ({status}) before the mount was ready"
    )))
}

/// After `READY` nobody reads our stderr any more: point it at /dev/null so that later
/// log lines cannot fail (or kill us with SIGPIPE).
fn announce_ready_and_detach() {
    use std::io::Write;
    use std::os::fd::{AsRawFd, FromRawFd};
    // The starting process exits once it reads READY; from then on the pipe behind
    // stderr is closed, and a log line written there would kill the daemon (SIGPIPE).
    // So stderr goes to /dev/null first, and READY is written through a copy of the pipe.
    // SAFETY: signal() with SIG_IGN has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // SAFETY: dup of stderr, a descriptor this process holds open.
    let pipe = unsafe { libc::dup(2) };
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: both descriptors are open; dup2 replaces stderr atomically.
        unsafe { libc::dup2(null.as_raw_fd(), 2) };
    }
    if pipe >= 0 {
        // SAFETY: `pipe` is the descriptor dup returned, owned by nothing else.
        let mut pipe = unsafe { std::fs::File::from_raw_fd(pipe) };
        let _ = writeln!(pipe, "{READY}");
    }
}
