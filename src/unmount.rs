//! Leaving a mount without leaving a dead one: unmount when asked, and when something
//! still uses the mount, say who (as `fuser -vm` does) and keep serving; the second
//! request detaches the mount lazily (`umount -l`), so that nothing is left behind.

use std::path::Path;
use std::process::Command;

/// What an unmount attempt did.
pub enum Unmounted {
    /// The mount is gone.
    Done,
    /// Processes still use it: `pid (command)` of each.
    Busy(Vec<String>),
}

/// Asks the kernel to unmount `mountpoint` (lazily with `lazy`: detached now, freed when
/// its last user lets go).
pub fn unmount(mountpoint: &Path, lazy: bool) -> std::io::Result<Unmounted> {
    let mut cmd = Command::new("fusermount3");
    cmd.arg("-u");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd.arg(mountpoint).output()?;
    if out.status.success() {
        return Ok(Unmounted::Done);
    }
    let said = String::from_utf8_lossy(&out.stderr);
    if said.contains("busy") {
        return Ok(Unmounted::Busy(holders(mountpoint)));
    }
    Err(std::io::Error::other(said.trim().to_string()))
}

/// The processes with a working directory, root, executable or open file under
/// `mountpoint`: `pid (command)`.
pub fn holders(mountpoint: &Path) -> Vec<String> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in procs.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let dir = entry.path();
        let links = ["cwd", "root", "exe"].map(|l| dir.join(l));
        let fds = std::fs::read_dir(dir.join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|fd| fd.path());
        let uses = links
            .into_iter()
            .chain(fds)
            .filter_map(|l| std::fs::read_link(l).ok())
            .any(|target| target.starts_with(mountpoint));
        if uses {
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            found.push(format!("{pid} ({})", comm.trim()));
        }
    }
    found
}
