//! Which probe each line of ffmpeg's log is about, when one run decodes several (one
//! input each).
//!
//! Up to FFmpeg 6.0 the command line tool decodes in its main thread, and with
//! `-threads 1` per input a decoder decodes (and logs errors) only while it is sent a
//! packet of its own input. With `-debug_ts` each packet is announced before it is
//! sent ("demuxer+ffmpeg -> ist_index:3 ...", streams numbered over all inputs in
//! order). Demuxers read ahead in threads of their own, but each one says at debug
//! level which file it opens. So the error lines divide cleanly:
//! - before the decoding loop, an input's lines (from probing its streams) come before
//!   its "Input #K" summary;
//! - a demuxer's logging context (`[flv @ 0x…]`) belongs to the file it opened;
//! - any other context errs right after a packet of its own input is announced, every
//!   time (flushing a decoder at the end only returns frames decoded already);
//! - "Error while decoding stream #K:S" names its input.
//!
//! An error line that breaks these rules makes the whole log unusable (`None`), and
//! the probes are judged one per run instead: a wrong verdict would move a split.

use std::collections::HashMap;
use std::io::{BufRead, Read};

use crate::carve::decoding::Verdict;

/// Longer log lines are cut (a hostile probe's metadata could be long).
const LINE_LIMIT: u64 = 4096;

/// Whether the ffmpeg whose `-version` output this is keeps each input's lines in
/// decoding order: releases before 6.1, which moved demuxers and decoders to threads
/// of their own.
pub fn sequential(version: &str) -> bool {
    let Some(rest) = version.strip_prefix("ffmpeg version ") else {
        return false;
    };
    let mut numbers = rest
        .trim_start_matches('n')
        .split(|c: char| !c.is_ascii_digit())
        .map(|w| w.parse::<u32>().ok());
    match (numbers.next().flatten(), numbers.next().flatten()) {
        (Some(major), _) if major < 6 => true,
        (Some(6), Some(0)) => true,
        _ => false,
    }
}

/// Each input's verdict from the log of a run over `inputs` probes, or `None` if an
/// error line cannot be told apart.
pub fn verdicts(mut log: impl BufRead, inputs: usize) -> Option<Vec<Verdict>> {
    let mut lines = Attribution::new(inputs);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut log).take(LINE_LIMIT).read_until(b'\n', &mut line);
        if read.ok()? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        for part in text.split(['\r', '\n']).filter(|part| !part.is_empty()) {
            lines.feed(part)?;
        }
    }
    // A run of one probe judges it even if ffmpeg could not open it.
    (inputs == 1 || lines.opened == inputs).then_some(lines.verdicts)
}

/// What the log said so far about which input is which.
struct Attribution {
    verdicts: Vec<Verdict>,
    /// "Input #K" summaries seen: before the K-th, lines are about input K.
    opened: usize,
    /// The lines of the last input's summary are being read.
    in_summary: bool,
    /// The input of each stream, numbered over all inputs.
    streams: Vec<usize>,
    /// The input whose packet was announced last.
    packet: Option<usize>,
    /// The input of each logging context, and whether it was met before the decoding
    /// loop (a demuxer or a probe's decoder, which need not follow a packet).
    contexts: HashMap<String, (usize, bool)>,
}

impl Attribution {
    fn new(inputs: usize) -> Attribution {
        Attribution {
            verdicts: vec![Verdict::default(); inputs],
            opened: 0,
            in_summary: false,
            streams: Vec::new(),
            packet: None,
            contexts: HashMap::new(),
        }
    }

    /// Takes one line in; `None` if it breaks the rules.
    fn feed(&mut self, line: &str) -> Option<()> {
        let inputs = self.verdicts.len();
        if inputs == 1 {
            super::count(&mut self.verdicts[0], line);
            return Some(());
        }
        if let Some(rest) = line.strip_prefix("[info] Input #") {
            (number(rest)? == self.opened && self.opened < inputs).then_some(())?;
            self.opened += 1;
            self.in_summary = true;
            return Some(());
        }
        if self.in_summary && line.starts_with("[info]  ") {
            // The summary of the input just opened lists its streams.
            if let Some(rest) = line.strip_prefix("[info]   Stream #") {
                (number(rest)? + 1 == self.opened).then_some(())?;
                self.streams.push(self.opened - 1);
            }
            return Some(());
        }
        self.in_summary = false;
        if self.opened < inputs {
            return self.before_loop(line);
        }
        if let Some((_, rest)) = line.split_once("demuxer+ffmpeg -> ist_index:") {
            self.packet = Some(*self.streams.get(number(rest)?)?);
            return Some(());
        }
        if !super::is_error(line) {
            return Some(());
        }
        let input = match context(line) {
            Some(name) => match self.contexts.get(name) {
                Some(&(input, true)) => input,
                // Erring after another input's packet: not in order.
                Some(&(input, false)) => (Some(input) == self.packet).then_some(input)?,
                None => {
                    let input = self.packet?;
                    self.contexts.insert(name.to_string(), (input, false));
                    input
                }
            },
            None => number(line.split_once("Error while decoding stream #")?.1)?,
        };
        super::count(self.verdicts.get_mut(input)?, line);
        Some(())
    }

    /// A line before the decoding loop, about the input being opened: its contexts are
    /// that input's.
    fn before_loop(&mut self, line: &str) -> Option<()> {
        let input = self.opened;
        if let Some(name) = context(line) {
            let (owner, _) = *self
                .contexts
                .entry(name.to_string())
                .or_insert((input, true));
            (owner == input).then_some(())?;
        }
        super::count(&mut self.verdicts[input], line);
        Some(())
    }
}

/// The logging context a line starts with ("h264 @ 0x55d5c8a0f0c0").
fn context(line: &str) -> Option<&str> {
    let (name, _) = line.strip_prefix('[')?.split_once(']')?;
    name.contains(" @ ").then_some(name)
}

/// The number `text` starts with.
fn number(text: &str) -> Option<usize> {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of ffmpeg 5.1's log over two inputs, the second broken.
    const TWO_INPUTS: &str = "\
[info] Input #0, flv, from '0.flv':
[info]   Duration: 00:00:01.20, start: 0.200000, bitrate: 42 kb/s
[info]   Stream #0:0: Video: h264 (High), yuv420p(progressive), 160x120, 10 fps
[flv @ 0x5500] [error] Packet mismatch 1569666024 209 3174
[info] Input #1, flv, from '1.flv':
[info]   Stream #1:0: Video: h264 (High), yuv420p(progressive), 160x120, 10 fps
[info]   Stream #1:1: Audio: aac (LC), 44100 Hz, stereo, fltp
[info] Stream mapping:
[info]   Stream #0:0 -> #0:0 (h264 (native) -> wrapped_avframe (native))
[info] demuxer+ffmpeg -> ist_index:0 type:video pkt_pts:0
[info] demuxer+ffmpeg -> ist_index:2 type:audio pkt_pts:0
[aac @ 0x5600] [error] Input buffer exhausted before END element found
[info] demuxer+ffmpeg -> ist_index:1 type:video pkt_pts:0
[h264 @ 0x5700] [error] error while decoding MB 4 7, bytestream -5
[h264 @ 0x5700] [info] concealing 80 DC, 80 AC, 80 MV errors in I frame
[info] demuxer+ffmpeg -> ist_index:0 type:video pkt_pts:100
[info] demuxer+ffmpeg -> ist_index:1 type:video pkt_pts:100
[h264 @ 0x5700] [error] co located POCs unavailable
[error] Error while decoding stream #1:0: Invalid data found when processing input
";

    #[test]
    fn each_error_line_counts_for_the_input_it_is_about() {
        let judged = verdicts(TWO_INPUTS.as_bytes(), 2).unwrap();
        assert!(judged[0].clean());
        assert_eq!((judged[1].errors, judged[1].first_error), (6, Some((7, 4))));
        let demuxer_line = "[flv @ 0x5500] [error] Packet mismatch";
        let moved = TWO_INPUTS.replace(demuxer_line, "[info]").replace(
            "[info] Input #0",
            &format!("{demuxer_line}\n[info] Input #0"),
        );
        let judged = verdicts(moved.as_bytes(), 2).unwrap();
        assert_eq!((judged[0].errors, judged[1].errors), (1, 5));
        // A demuxer reads ahead in its own thread: its errors are its file's.
        let read_ahead = moved.replace(
            "[h264 @ 0x5700] [error] co located",
            "[flv @ 0x5500] [error] Packet mismatch 1 2 3\n[h264 @ 0x5700] [error] co located",
        );
        let judged = verdicts(read_ahead.as_bytes(), 2).unwrap();
        assert_eq!((judged[0].errors, judged[1].errors), (2, 5));
    }

    #[test]
    fn a_log_that_cannot_be_told_apart_is_refused() {
        let log = |from: &str, to: &str| TWO_INPUTS.replacen(from, to, 1);
        // A decoder logging after the other input's packet.
        let crossed = log(
            "ist_index:1 type:video pkt_pts:100",
            "ist_index:0 type:video pkt_pts:100",
        );
        assert_eq!(verdicts(crossed.as_bytes(), 2), None);
        // An error line without a logging context that names no stream.
        let unnamed = log(
            "Error while decoding stream #1:0",
            "Cannot determine format",
        );
        assert_eq!(verdicts(unnamed.as_bytes(), 2), None);
        // An input that never opened, a packet of a stream nobody listed.
        assert_eq!(verdicts(TWO_INPUTS.as_bytes(), 3), None);
        assert_eq!(
            verdicts(log("ist_index:2", "ist_index:9").as_bytes(), 2),
            None
        );
    }

    #[test]
    fn versions_before_6_1_decode_in_one_thread() {
        assert!(sequential(
            "ffmpeg version 5.1.9-0+deb12u1 Copyright (c) 2000-2025"
        ));
        assert!(sequential("ffmpeg version n6.0 Copyright"));
        assert!(sequential("ffmpeg version 4.4.2-0ubuntu0.22.04.1"));
        assert!(!sequential("ffmpeg version 6.1.1-3ubuntu5"));
        assert!(!sequential("ffmpeg version 7.0.2-static"));
        assert!(!sequential("ffmpeg version N-112128-gfa20f5cd9e"));
        assert!(!sequential("avconv version 12"));
    }
}
