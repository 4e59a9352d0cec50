//! The one reader of `/proc/self/mountinfo`: what is mounted where, with the kernel's
//! octal escapes undone, for the guard (is a source mounted read-write?) and the
//! `mount` command (is the mountpoint taken? which device is our mount?).

use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One line of mountinfo, as far as salvagefs needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// `major:minor` of the mounted device.
    pub device: String,
    /// Where it is mounted.
    pub target: PathBuf,
    /// Per-mount options (`rw`, `ro`, `nosuid`, ...).
    pub options: Vec<String>,
}

impl Mount {
    /// True when the mount is writable.
    pub fn read_write(&self) -> bool {
        self.options.iter().any(|o| o == "rw")
    }
}

/// Every mount this process sees, most recent last; none when mountinfo is unreadable.
pub fn mounts() -> Vec<Mount> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| parse(&text))
        .unwrap_or_default()
}

/// Parses mountinfo text: "36 25 0:39 / /mnt/my\040disk rw,nosuid - fuse ...", the
/// device in the third field, the mountpoint in the fifth, its options in the sixth.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            Some(Mount {
                device: f.get(2)?.to_string(),
                target: PathBuf::from(std::ffi::OsString::from_vec(unescape(f.get(4)?))),
                options: f.get(5)?.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as a backslash and three octal
/// digits.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            let d = std::str::from_utf8(d).ok()?;
            u8::from_str_radix(d, 8).ok()
        });
        match octal {
            Some(v) if b[i] == b'\\' => {
                out.push(v);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_targets_and_options() {
        let text = "36 25 0:39 / /mnt/my\\040disk\\134x ro,nosuid shared:1 - fuse.salvagefs salvagefs ro\n\
                    22 1 8:2 / / rw,relatime - ext4 /dev/sda2 rw\n\
                    garbage\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].device, "0:39");
        assert_eq!(m[0].target, PathBuf::from("/mnt/my disk\\x"));
        assert!(!m[0].read_write());
        assert_eq!(m[1].target, PathBuf::from("/"));
        assert!(m[1].read_write());
    }

    #[test]
    fn a_trailing_backslash_is_kept() {
        assert_eq!(unescape("a\\"), b"a\\");
        assert_eq!(unescape("a\\04"), b"a\\04");
        assert_eq!(unescape("\\011"), b"\t");
    }
}
