//! ffmpeg as the judge of a probe: how many error lines it prints, and at which
//! macroblock it noticed the first.
//!
//! FFmpeg decodes every codec FLV carries and reports each error it meets; no Rust
//! crate decodes H.264, Sorenson H.263, AAC and MP3 alike. It runs as a separate
//! process on a probe of a few hundred kilobytes (stdin in, error lines out), so a
//! decoder crash on hostile bytes costs one verdict, never the scan. Without ffmpeg,
//! [`super::split_decisions`] leaves the tags of ambiguous splits out.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::carve::decoding::Verdict;

/// A decode taking longer is given up: a probe is a few hundred kilobytes and decodes
/// in a tenth of a second.
const DECODE_TIMEOUT: Duration = Duration::from_secs(60);

/// Bytes of ffmpeg's log kept per decode.
const LOG_LIMIT: u64 = 1 << 20;

/// The ffmpeg that judges probes.
pub struct Decoder {
    program: String,
}

impl Decoder {
    /// ffmpeg from `PATH`, if it runs.
    pub fn find() -> Option<Decoder> {
        let program = "ffmpeg".to_string();
        let runs = Command::new(&program)
            .args(["-hide_banner", "-version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        runs.then_some(Decoder { program })
    }

    /// Decodes `probe` (a whole FLV file), single-threaded so that its verdict is the
    /// same every time; `None` if ffmpeg could not run or did not finish in time.
    pub fn judge(&self, probe: &[u8]) -> Option<Verdict> {
        let mut child = Command::new(&self.program)
            .args([
                "-nostdin",
                "-hide_banner",
                "-loglevel",
                "level+info",
                "-threads",
                "1",
            ])
            .args(["-err_detect", "aggressive", "-f", "flv", "-i", "pipe:0"])
            .args(["-f", "null", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let (mut stdin, mut stderr) = (child.stdin.take()?, child.stderr.take()?);
        let log = std::thread::scope(|s| {
            // Written from another thread: ffmpeg may stop reading to write errors, or
            // stop early (a broken pipe), and then its errors say why.
            s.spawn(move || {
                let _ = stdin.write_all(probe);
            });
            let reader = s.spawn(move || {
                // The first megabyte is plenty to judge by; the rest is drained unread.
                let mut log = Vec::new();
                let _ = (&mut stderr).take(LOG_LIMIT).read_to_end(&mut log);
                let _ = std::io::copy(&mut stderr, &mut std::io::sink());
                log
            });
            let finished = finish_in_time(&mut child);
            let log = reader.join().unwrap_or_default();
            finished.then_some(log)
        })?;
        Some(verdict(&String::from_utf8_lossy(&log)))
    }
}

/// Waits for `child` up to [`DECODE_TIMEOUT`], else kills it: false then. Hostile bytes
/// must not hang the scan.
fn finish_in_time(child: &mut Child) -> bool {
    let deadline = Instant::now() + DECODE_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return true,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

/// Error lines, and where the first error was noticed, from ffmpeg's log with levels
/// ("[error] error while decoding MB 10 8" from H.264, "[error] Error at MB: 250" from
/// H.263).
fn verdict(stderr: &str) -> Verdict {
    let mut v = Verdict::default();
    for line in stderr.lines().filter(|l| l.contains("[error] ")) {
        v.errors += 1;
        if v.first_error.is_none() {
            v.first_error = macroblock(line);
        }
    }
    v
}

/// The macroblock an error line names, as (row, column) or (0, number).
fn macroblock(line: &str) -> Option<(u32, u32)> {
    let numbers = |rest: &str| -> Vec<u32> {
        rest.split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .take(2)
            .filter_map(|w| w.parse().ok())
            .collect()
    };
    if let Some((_, rest)) = line.split_once("error while decoding MB ") {
        let xy = numbers(rest);
        return Some((*xy.get(1)?, xy[0]));
    }
    let (_, rest) = line.split_once("Error at MB: ")?;
    Some((0, *numbers(rest).first()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_count_error_lines_and_find_the_first_broken_macroblock() {
        let stderr = "[h264 @ 0x1] [error] Invalid NAL unit size (118905 > 79306).\n\
                      [h264 @ 0x1] [error] error while decoding MB 10 8\n\
                      [h264 @ 0x1] [info] concealing 250 DC, 250 AC, 250 MV errors in P frame\n\
                      [info] Stream mapping:\n\
                      [h264 @ 0x1] [error] error while decoding MB 3 2\n";
        assert_eq!(
            verdict(stderr),
            Verdict {
                errors: 3,
                first_error: Some((8, 10))
            }
        );
        let h263 = verdict("[flv @ 0x2] [error] Error at MB: 250\n");
        assert_eq!(h263.first_error, Some((0, 250)));
        assert!(verdict("\n").clean());
    }
}
