//! Fragmented recordings: where a broken tag chain continues elsewhere on the disk.
//!
//! A filesystem stores a file in blocks; when the file is fragmented, its bytes jump
//! from the end of one run of blocks to the start of another, anywhere on the disk. The
//! tag straddling the jump is cut in two, but FLV says exactly how the second part must
//! look: the straddling tag of data size `S` ends with a PreviousTagSize of `11 + S`,
//! right before the next tag. Both jump ends lie on block boundaries, so the next tag's
//! position within its block is fixed too: it is where the straddling tag would end
//! had the file been contiguous. An orphan run (tags chained without a header before
//! them) whose preceding PreviousTagSize and position in its block both fit, and whose
//! timestamps and codecs continue the stream, is the continuation.
//!
//! The scan indexes orphan runs ([`find_orphans`], once per run, not per block) and the
//! walker asks `Continuations::find` when its chain breaks.

use std::collections::{HashMap, HashSet};

use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};

use super::ByteSource;
use super::flv_tag::{self, Tag};

/// Filesystem block size: fragments start and end on these boundaries.
pub const BLOCK: u64 = 4096;

/// A run of at least two chained audio/video tags that no header or chain leads into
/// from the block before: the possible start of a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Orphan {
    /// Position of its first tag.
    pub at: u64,
    /// The PreviousTagSize right before it: `11 +` the data size of the tag before.
    pub prev_size: u32,
    /// Timestamp of its first tag (ms).
    pub ts: u32,
    /// Type (8 audio, 9 video) and first data byte (codec) of its first tag.
    pub kind: u8,
    /// See `kind`.
    pub codec: u8,
}

impl Orphan {
    /// Its first tag, as far as the run tells it (the size is not kept).
    fn first_tag(&self) -> Tag {
        Tag {
            kind: self.kind,
            size: 0,
            ts: self.ts,
            codec: self.codec,
        }
    }

    /// Where, within a block, the tag before it starts if it was contiguous: equal to
    /// the straddling tag's own position within its block.
    fn key(&self) -> u64 {
        self.at.wrapping_sub(self.prev_size as u64 + 4) % BLOCK
    }
}

/// Orphan runs in `buf` (which holds the source from `base`), one per stretch of chained
/// tags, starting in blocks that begin before `limit`.
pub fn find_orphans(buf: &[u8], base: u64, limit: usize) -> Vec<Orphan> {
    let mut out = Vec::new();
    let end = base + limit as u64;
    let mut block = base.next_multiple_of(BLOCK);
    // The next tag of the chain followed so far, if any.
    let mut chain: Option<u64> = None;
    let zeros = Finder::new(b"\0\0\0");
    while block < end {
        let block_end = block + BLOCK;
        if chain.is_none() {
            // A chain that no earlier block leads into: its first run is an orphan.
            let to = block_end.min(base + buf.len() as u64);
            if let Some(orphan) = first_run(buf, base, block.max(base), to, &zeros) {
                out.push(orphan);
                chain = Some(orphan.at);
            }
        }
        // Follow the chain through this block; if it breaks here, nothing else in
        // the block can start a fragment (fragments start with their block).
        if let Some(mut p) = chain {
            while p < block_end {
                match flv_tag::tag_at(buf, p - base) {
                    Some(t) => p += t.total_len(),
                    None => break,
                }
            }
            chain = (p >= block_end).then_some(p);
        }
        block = block_end;
    }
    out
}

/// The first position in `[from, to)` where two audio/video tags chain.
///
/// Anchored on the stream id, three zero bytes 8 bytes into every tag header: rare in
/// random and compressed data, absent from text, and a zero-filled stretch is skipped
/// whole; so most of a disk is passed over at memory speed.
fn first_run(buf: &[u8], base: u64, from: u64, to: u64, zeros: &Finder) -> Option<Orphan> {
    if from >= to || from < base + 4 {
        return None;
    }
    let (lo, hi) = ((from - base) as usize, (to - base) as usize);
    let zeros_end = (hi + 10).min(buf.len());
    let mut pos = lo + 8;
    while pos + 3 <= zeros_end {
        let z = pos + zeros.find(&buf[pos..zeros_end])?;
        let run_end = first_nonzero(&buf[z..zeros_end]).map_or(zeros_end, |n| z + n);
        // Tags whose stream id lies in this stretch of zeros start 8 bytes before it.
        let starts = (z - 8).max(lo)..z.min(hi).min(run_end - 10);
        if let Some(orphan) = starts
            .filter(|&c| matches!(buf[c], 8 | 9))
            .find_map(|c| run_at(buf, base, c as u64))
        {
            return Some(orphan);
        }
        pos = run_end.max(z + 1);
    }
    None
}

/// Position of the first non-zero byte, eight bytes at a time (disks hold long
/// stretches of zeros).
fn first_nonzero(bytes: &[u8]) -> Option<usize> {
    let (words, tail) = bytes.as_chunks::<8>();
    let word = words.iter().position(|w| u64::from_ne_bytes(*w) != 0);
    let from = word.map_or(bytes.len() - tail.len(), |w| w * 8);
    bytes[from..].iter().position(|&b| b != 0).map(|n| from + n)
}

/// Two chained audio/video tags at `at` (relative to `buf`), as an orphan.
fn run_at(buf: &[u8], base: u64, at: u64) -> Option<Orphan> {
    let first = flv_tag::tag_at(buf, at)?;
    let second = flv_tag::tag_at(buf, at + first.total_len())?;
    let prev: [u8; 4] = buf.get(at as usize - 4..at as usize)?.try_into().ok()?;
    (second.kind != 18 && second.ts.saturating_add(1_000) >= first.ts).then_some(Orphan {
        at: at + base,
        prev_size: u32::from_be_bytes(prev),
        ts: first.ts,
        kind: first.kind,
        codec: first.codec,
    })
}

/// Where a walk jumped from one fragment to the next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// End of the fragment left (a block boundary).
    pub from: u64,
    /// Start of the fragment entered (a block boundary).
    pub to: u64,
    /// Timestamp (ms) where the stream continues.
    pub at_ms: u32,
    /// Other fragments, or other split points within the straddling tag, that fit the
    /// evidence as well: 0 when the join is unambiguous.
    pub alternatives: u32,
    /// For a join across a lost fragment (overwritten, or nowhere in the source): the
    /// time range missing, in ms. The file jumps from its last whole tag to the next
    /// fragment's first keyframe.
    pub lost_ms: Option<(u32, u32)>,
}

/// The orphan runs of one source, found by the scan, by where their straddling tag
/// starts within its block; and the blocks where some chain or file starts, which
/// belong to other data and so end a fragment.
#[derive(Default)]
pub struct Continuations {
    by_key: HashMap<u64, Vec<Orphan>>,
    starts: HashSet<u64>,
    /// Blocks where some recording provably continues: never offered across a hole.
    claimed: HashSet<u64>,
    /// Joins across a lost fragment are allowed once the first walks are done: these
    /// are the source ranges their files cover (sorted), whose orphans are taken.
    walked: Option<Vec<(u64, u64)>>,
}

/// How far a continuation's first timestamp may lie past the stream's last one.
const MAX_JUMP_MS: u32 = 5_000;

impl Continuations {
    /// Indexes `orphans` and the FLV `headers` of one source.
    pub fn new(orphans: &[Orphan], headers: &[u64]) -> Continuations {
        let mut c = Continuations::default();
        for o in orphans {
            c.by_key.entry(o.key()).or_default().push(*o);
            c.starts.insert(o.at / BLOCK);
        }
        c.starts.extend(headers.iter().map(|h| h / BLOCK));
        c
    }

    /// Records that fragments start at `positions` (proven by another recording's
    /// joins): those blocks are other data for everyone else.
    pub fn mark_starts(&mut self, positions: impl Iterator<Item = u64>) {
        for block in positions.map(|p| p / BLOCK) {
            self.starts.insert(block);
            self.claimed.insert(block);
        }
    }

    /// Allows joins across lost fragments, now that `walked` (the source ranges of
    /// every carved file, whose runs belong to them) is known.
    pub fn allow_holes(&mut self, mut walked: Vec<(u64, u64)>) {
        walked.sort_unstable();
        self.walked = Some(walked);
    }

    /// Inside a range some carved file already covers.
    fn taken(&self, at: u64) -> bool {
        let Some(walked) = &self.walked else {
            return true;
        };
        let i = walked.partition_point(|r| r.0 <= at);
        walked[..i].iter().rev().take(64).any(|&(o, l)| at < o + l)
    }

    /// When no fragment continues a stream exactly (the next one was overwritten or
    /// lies beyond the source), the fragment that comes next in time: same codecs, not
    /// the start of a file, not proven to belong elsewhere, first timestamp after
    /// `last_ts` (within two minutes), entered at its first video keyframe (with video)
    /// so that playback resumes cleanly. Returns the join and where the walk resumes.
    pub(super) fn find_after_hole<S: ByteSource + ?Sized>(
        &self,
        src: &S,
        last_ts: u32,
        with_video: bool,
        fits_stream: impl Fn(&Tag) -> bool,
    ) -> Option<(Join, u64)> {
        const MAX_HOLE_MS: u32 = 120_000;
        let next = self
            .by_key
            .values()
            .flatten()
            .filter(|o| o.prev_size >= 11 && !self.claimed.contains(&(o.at / BLOCK)))
            .filter(|o| !self.taken(o.at))
            .filter(|o| o.ts > last_ts && o.ts <= last_ts.saturating_add(MAX_HOLE_MS))
            .filter(|o| fits_stream(&o.first_tag()))
            .min_by_key(|o| (o.ts, o.at))?;
        // Walk the fragment's chain to its first keyframe (a bounded number of tags).
        let mut at = next.at;
        for _ in 0..10_000 {
            let tag = flv_tag::tag_at(src, at)?;
            let keyframe = tag.kind == 9 && tag.codec >> 4 == 1;
            if !with_video || keyframe {
                let join = Join {
                    from: 0,
                    to: at,
                    at_ms: tag.ts,
                    alternatives: 1,
                    lost_ms: Some((last_ts, tag.ts)),
                };
                return Some((join, at));
            }
            at += tag.total_len();
        }
        None
    }

    /// The continuation of a stream whose chain broke at `t` (where the next tag
    /// should start): the join and the position of the first tag after the straddling
    /// one, choosing among fitting orphans the one whose first timestamp follows
    /// `last_ts` most closely.
    pub(super) fn find<S: ByteSource + ?Sized>(
        &self,
        src: &S,
        t: u64,
        last_ts: u32,
        fits_stream: impl Fn(&Tag) -> bool,
    ) -> Option<(Join, u64)> {
        let candidates = self.by_key.get(&(t % BLOCK))?;
        let mut ours = [0u8; 12];
        let whole_header = src
            .read_at(t, &mut ours)
            .then(|| flv_tag::parse_tag_header(&ours))
            .flatten();
        let mut fits: Vec<(u32, Join, u64)> = Vec::new();
        for o in candidates {
            let Some(size) = o.prev_size.checked_sub(11) else {
                continue;
            };
            let in_time = o.ts.saturating_add(1_000) >= last_ts
                && o.ts <= last_ts.saturating_add(MAX_JUMP_MS);
            if !fits_stream(&o.first_tag()) || !in_time {
                continue;
            }
            let total = 11 + size as u64 + 4;
            let tag_end = t + total;
            // The continuation lies elsewhere: not where the tag would simply go on.
            if (t..=tag_end).contains(&o.at) {
                continue;
            }
            let join = match whole_header {
                Some(h) if h.size == size => self.split_in_data(src, t, tag_end, o),
                Some(_) => None,
                None => split_in_header(src, t, tag_end, o, last_ts, &fits_stream),
            };
            if let Some(join) = join {
                fits.push((o.ts.abs_diff(last_ts), join, o.at));
            }
        }
        fits.sort_by_key(|(distance, j, _)| (*distance, j.to));
        let alternatives = fits.len().saturating_sub(1) as u32;
        let (_, mut best, resume) = fits.into_iter().next()?;
        best.alternatives += alternatives;
        Some((best, resume))
    }

    /// The straddling tag's header is whole on our side: the jump lies in its data,
    /// at a block boundary in `(t + 11, tag_end]`. The first boundary whose block is
    /// visibly other data (another chain or file starts there, or it is not compressed
    /// media) is where our fragment ends; with no such evidence, the last one.
    fn split_in_data<S: ByteSource + ?Sized>(
        &self,
        src: &S,
        t: u64,
        tag_end: u64,
        o: &Orphan,
    ) -> Option<Join> {
        let first = (t + 12).next_multiple_of(BLOCK);
        let boundaries: Vec<u64> = (first..=tag_end).step_by(BLOCK as usize).collect();
        let last = *boundaries.last()?;
        let evident = boundaries
            .iter()
            .copied()
            .find(|&b| self.starts.contains(&(b / BLOCK)) || !looks_like_media(src, b));
        let from = evident.unwrap_or(last);
        let to = o.at.checked_sub(tag_end - from)?;
        Some(Join {
            from,
            to,
            at_ms: o.ts,
            alternatives: if evident.is_some() {
                0
            } else {
                boundaries.len() as u32 - 1
            },
            lost_ms: None,
        })
    }
}

/// The jump cuts the straddling tag's header (or falls right before it): the one block
/// boundary in `[t, t + 11)` is where our fragment ends, and the header put together
/// from both sides must be a tag of the announced size that continues the stream.
fn split_in_header<S: ByteSource + ?Sized>(
    src: &S,
    t: u64,
    tag_end: u64,
    o: &Orphan,
    last_ts: u32,
    fits_stream: &impl Fn(&Tag) -> bool,
) -> Option<Join> {
    let from = t.next_multiple_of(BLOCK);
    if from >= t + 11 {
        return None;
    }
    let to = o.at.checked_sub(tag_end - from)?;
    let mine = (from - t) as usize;
    let mut header = [0u8; 12];
    if !src.read_at(t, &mut header[..mine]) || !src.read_at(to, &mut header[mine..]) {
        return None;
    }
    let tag = flv_tag::parse_tag_header(&header)?;
    let in_time = tag.ts.saturating_add(1_000) >= last_ts && tag.ts <= o.ts.saturating_add(1_000);
    (tag.size + 11 == o.prev_size && fits_stream(&tag) && in_time).then_some(Join {
        from,
        to,
        at_ms: o.ts,
        alternatives: 0,
        lost_ms: None,
    })
}

/// Compressed audio and video look random: nearly every byte value occurs in a block.
/// Text, zeros and most file-system metadata do not.
fn looks_like_media<S: ByteSource + ?Sized>(src: &S, at: u64) -> bool {
    let mut block = [0u8; BLOCK as usize];
    if !src.read_at(at, &mut block) {
        return false;
    }
    let mut seen = [false; 256];
    block.iter().for_each(|&b| seen[b as usize] = true);
    seen.iter().filter(|&&s| s).count() >= 160
}
