//! ffmpeg as the judge of a probe: how many error lines it prints, and at which
//! macroblock it noticed the first.
//!
//! FFmpeg decodes every codec FLV carries and reports each error it meets; no Rust
//! crate decodes H.264, Sorenson H.263, AAC and MP3 alike. It runs as a separate
//! process on a probe of a few hundred kilobytes (a file in, error lines out), so a
//! decoder crash on hostile bytes costs one verdict, never the scan. Without ffmpeg,
//! [`super::split_decisions`] leaves the tags of ambiguous splits out.
//!
//! Starting ffmpeg costs more than decoding a probe (it links ~200 libraries: 0.1 s
//! here), so probes judged together go to one run as separate inputs
//! ([`Decoder::judge_all`]), and [`batch`] tells from the log which input each error
//! line is about. A probe judged once is not decoded again: the second round of
//! [`super::split_decisions`] decides again the joins of files it starts over.

use std::collections::HashMap;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_128;

use crate::carve::decoding::Verdict;

mod batch;

/// A decode taking longer is given up: a probe is a few hundred kilobytes and decodes
/// in a tenth of a second.
const DECODE_TIMEOUT: Duration = Duration::from_secs(60);

/// Probes decoded in one ffmpeg run at most.
const BATCH: usize = 24;

/// The ffmpeg that judges probes.
pub struct Decoder {
    program: String,
    /// Its log keeps each input's lines in decoding order (see [`batch`]).
    batches: bool,
    /// Verdicts given so far, by the xxh3-128 of the probe (a scan judges a few
    /// thousand probes at most).
    judged: Mutex<HashMap<u128, Verdict>>,
}

impl Decoder {
    /// ffmpeg from `PATH`, if it runs.
    pub fn find() -> Option<Decoder> {
        let program = "ffmpeg".to_string();
        let out = Command::new(&program)
            .args(["-hide_banner", "-version"])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())?;
        let batches = batch::sequential(&String::from_utf8_lossy(&out.stdout));
        let judged = Mutex::default();
        Some(Decoder {
            program,
            batches,
            judged,
        })
    }

    /// Verdicts on `probes`, in their order, decoded on every core: several probes per
    /// ffmpeg run where its log allows (a run whose log does not is judged again one
    /// probe per run); probes judged before are not decoded again.
    pub fn judge_all(&self, probes: &[&[u8]]) -> Vec<Option<Verdict>> {
        let keys: Vec<u128> = probes.iter().map(|p| xxh3_128(p)).collect();
        let mut verdicts: Vec<Option<Verdict>> = {
            let judged = self.judged.lock().unwrap_or_else(|e| e.into_inner());
            keys.iter().map(|k| judged.get(k).copied()).collect()
        };
        let new: Vec<usize> = (0..probes.len())
            .filter(|&k| verdicts[k].is_none())
            .collect();
        let fresh = self.decode_all(&new.iter().map(|&k| probes[k]).collect::<Vec<_>>());
        let mut judged = self.judged.lock().unwrap_or_else(|e| e.into_inner());
        for (k, verdict) in new.into_iter().zip(fresh) {
            if let Some(v) = &verdict {
                judged.insert(keys[k], *v);
            }
            verdicts[k] = verdict;
        }
        verdicts
    }

    /// [`Decoder::judge_all`] without the memo.
    fn decode_all(&self, probes: &[&[u8]]) -> Vec<Option<Verdict>> {
        if !self.batches || probes.len() < 2 {
            return probes.par_iter().map(|p| self.decode_one(p)).collect();
        }
        let per_run = (probes.len().div_ceil(rayon::current_num_threads())).clamp(2, BATCH);
        let runs: Vec<Vec<Option<Verdict>>> = probes
            .par_chunks(per_run)
            .map(|chunk| match self.judge_in_one_run(chunk) {
                Some(verdicts) => verdicts.into_iter().map(Some).collect(),
                None => chunk.iter().map(|p| self.decode_one(p)).collect(),
            })
            .collect();
        runs.concat()
    }

    /// `probe` decoded in a run of its own, without the memo.
    fn decode_one(&self, probe: &[u8]) -> Option<Verdict> {
        self.judge_in_one_run(&[probe])?.pop()
    }

    /// Whether this ffmpeg's log allows judging several probes in one run.
    pub fn batches(&self) -> bool {
        self.batches
    }

    /// One ffmpeg run over `probes` (written to a temporary directory, each decoded
    /// single-threaded so that its verdict is the same every time): `None` if ffmpeg
    /// could not run or did not finish in time, or, for several probes, if it failed
    /// or its log could not be told apart by input.
    pub fn judge_in_one_run(&self, probes: &[&[u8]]) -> Option<Vec<Verdict>> {
        let dir = tempfile::Builder::new()
            .prefix("salvagefs-probes")
            .tempdir()
            .ok()?;
        let mut command = Command::new(&self.program);
        command.args(["-nostdin", "-hide_banner", "-nostats", "-debug_ts"]);
        command.args(["-loglevel", "level+debug"]);
        for (k, probe) in probes.iter().enumerate() {
            let path = dir.path().join(format!("{k}.flv"));
            std::fs::write(&path, probe).ok()?;
            command.args(["-threads", "1", "-err_detect", "aggressive"]);
            command.args(["-f", "flv", "-i"]).arg(path);
        }
        for k in 0..probes.len() {
            command.args(["-map", &k.to_string(), "-f", "null", "-"]);
        }
        let mut child = (command.stdin(Stdio::null()).stdout(Stdio::null()))
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let stderr = child.stderr.take()?;
        let timeout = DECODE_TIMEOUT * probes.len() as u32;
        std::thread::scope(|s| {
            let reader =
                s.spawn(move || batch::verdicts(std::io::BufReader::new(stderr), probes.len()));
            let status = finish_in_time(&mut child, timeout);
            let verdicts = reader.join().ok().flatten();
            // A run that failed may have stopped before decoding every input.
            let complete = status.is_some_and(|s| s.success() || probes.len() == 1);
            verdicts.filter(|_| complete)
        })
    }

    /// The verdict on `probe` (a whole FLV file), decoded in a run of its own unless
    /// it was judged before.
    pub fn judge(&self, probe: &[u8]) -> Option<Verdict> {
        self.judge_all(&[probe]).pop().flatten()
    }
}

/// How `child` exited, waiting up to `timeout`, else kills it: `None` then. Hostile
/// bytes must not hang the scan.
fn finish_in_time(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Counts `line` of ffmpeg's log with levels into `v` if it is an error line, noting
/// where the first error was noticed ("[error] error while decoding MB 10 8" from H.264,
/// "[error] Error at MB: 250" from H.263).
fn count(v: &mut Verdict, line: &str) {
    if is_error(line) {
        v.dropped |= v.errors == 0 && line.contains("[info] concealing ");
        v.errors += 1;
        if v.first_error.is_none() {
            v.first_error = macroblock(line);
        }
    }
}

/// An error line: at level error, or H.264 saying at level info that it concealed
/// errors (woodblock seed 14: 512 random bytes in place of a frame's last NAL unit
/// size made it drop the whole slice, conceal all 510 macroblocks and log no error).
fn is_error(line: &str) -> bool {
    line.contains("[error] ") || line.contains("[info] concealing ")
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
            batch::verdicts(stderr.as_bytes(), 1).unwrap()[0],
            Verdict {
                errors: 4,
                first_error: Some((8, 10)),
                dropped: false,
            }
        );
        let concealed = "[h264 @ 0x1] [info] concealing 510 DC, 510 AC, 510 MV errors in P frame\n";
        let alone = batch::verdicts(concealed.as_bytes(), 1).unwrap()[0];
        assert_eq!((alone.errors, alone.dropped), (1, true));
        let h263 = batch::verdicts(&b"[flv @ 0x2] [error] Error at MB: 250\n"[..], 1).unwrap();
        assert_eq!(h263[0].first_error, Some((0, 250)));
        assert!(batch::verdicts(&b"\n"[..], 1).unwrap()[0].clean());
    }
}
