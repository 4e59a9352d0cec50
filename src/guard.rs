//! Protects what is being recovered: refuses to write the index onto a source disk,
//! and warns when a source is mounted read-write (every write by the mounted
//! filesystem may overwrite the very blocks being salvaged).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::mountinfo;
use crate::source::{Source, SourceKind};

/// `major:minor` of a device number, as sysfs and mountinfo spell it.
fn dev_name(dev: u64) -> String {
    format!(
        "{}:{}",
        libc::major(dev as libc::dev_t),
        libc::minor(dev as libc::dev_t)
    )
}

fn parse_dev(s: &str) -> Option<u64> {
    let (ma, mi) = s.trim().split_once(':')?;
    Some(libc::makedev(ma.parse().ok()?, mi.parse().ok()?))
}

/// The device and every block device under it: the whole disk of a partition, and
/// the members of an md RAID or device-mapper device (recursively).
fn underlying(dev: u64) -> HashSet<u64> {
    let mut seen = HashSet::new();
    let mut pending = vec![dev];
    while let Some(d) = pending.pop() {
        if !seen.insert(d) || seen.len() > 256 {
            continue;
        }
        let Ok(sys) = std::fs::canonicalize(format!("/sys/dev/block/{}", dev_name(d))) else {
            continue;
        };
        if sys.join("partition").exists()
            && let Some(disk) = sys
                .parent()
                .and_then(|p| std::fs::read_to_string(p.join("dev")).ok())
            && let Some(disk) = parse_dev(&disk)
        {
            pending.push(disk);
        }
        if let Ok(slaves) = std::fs::read_dir(sys.join("slaves")) {
            pending.extend(
                slaves
                    .flatten()
                    .filter_map(|s| std::fs::read_to_string(s.path().join("dev")).ok())
                    .filter_map(|s| parse_dev(&s)),
            );
        }
    }
    seen
}

/// Device numbers of the block-device sources and of everything beneath them.
fn source_devices(sources: &[Source]) -> Vec<(u64, HashSet<u64>, &Path)> {
    sources
        .iter()
        .filter_map(|s| match s.kind {
            SourceKind::BlockDevice { rdev } => Some((rdev, underlying(rdev), s.path.as_path())),
            SourceKind::Image => None,
        })
        .collect()
}

/// Refuses an index location on a filesystem that lives on a source disk.
pub fn check_index_location(index: &Path, sources: &[Source]) -> Result<(), String> {
    match source_under(index, sources) {
        None => Ok(()),
        Some(source) => Err(format!(
            "the index {} would be written onto {}, the disk being recovered; \
             use --index PATH on another disk",
            index.display(),
            source.display()
        )),
    }
}

/// The source disk that a file written at `path` would land on, if any.
pub fn source_under(path: &Path, sources: &[Source]) -> Option<PathBuf> {
    let mut dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.as_os_str().is_empty() {
        dir = PathBuf::from(".");
    }
    // The nearest existing ancestor tells which filesystem the file would land on.
    let meta = dir.ancestors().find_map(|d| std::fs::metadata(d).ok())?;
    let disks = underlying(meta.dev());
    source_devices(sources)
        .into_iter()
        .find(|(_, source_disks, _)| !disks.is_disjoint(source_disks))
        .map(|(_, _, source)| source.to_path_buf())
}

/// Warnings for block-device sources that (or whose partitions) are mounted read-write.
pub fn mounted_read_write(sources: &[Source]) -> Vec<String> {
    let mounts = mountinfo::mounts();
    let mut warnings = Vec::new();
    for (rdev, _, path) in source_devices(sources) {
        for m in &mounts {
            let Some(dev) = parse_dev(&m.device) else {
                continue;
            };
            if m.read_write() && underlying(dev).contains(&rdev) {
                let target = m.target.display();
                warnings.push(format!(
                    "WARNING: {} is mounted read-write on {target}: every write there may destroy \
                     what you are recovering. Remount it read-only (mount -o remount,ro {target}) \
                     or unmount it first.",
                    path.display()
                ));
            }
        }
    }
    warnings
}
