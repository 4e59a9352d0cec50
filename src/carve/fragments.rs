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

use serde::{Deserialize, Serialize};

use super::ByteSource;
use super::ext4::{Bitmaps, Volume};
use super::filemap::FileMap;
use super::flv_tag::{self, Tag};
use super::join::{Evidence, Join};

/// The finest granularity fragments can have: a disk sector (FAT and NTFS clusters,
/// images cut by sector).
pub const SECTOR: u64 = 512;

/// The granularity fragments start and end at: the filesystem's block size, or a
/// sector when no filesystem says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unit(pub u64);

impl Default for Unit {
    fn default() -> Unit {
        Unit(SECTOR)
    }
}

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

    /// Where, within a block of `unit`, the tag before it starts if it was
    /// contiguous: equal to the straddling tag's own position within its block.
    fn key(&self, unit: u64) -> u64 {
        self.at.wrapping_sub(self.prev_size as u64 + 4) % unit
    }
}

/// The fragment starts one chunk of a source holds.
#[derive(Debug, Default)]
pub struct ChunkOrphans {
    /// Orphan runs. One that starts in the chunk's first 4 bytes has its
    /// `prev_size` outside the chunk: 0 here, filled in by the caller.
    pub orphans: Vec<Orphan>,
    /// Where the chains followed to the chunk's end go on (at or past its end): an
    /// orphan that the next chunk finds on one of them is no fragment start.
    pub carried: Vec<u64>,
}

/// Chains followed at once: a fragment start inside another stream's tag data starts
/// a second one.
const MAX_CHAINS: usize = 4;

/// Orphan runs in `buf` (which holds the source from `base`), one per stretch of chained
/// tags, starting in blocks that begin before `limit`. `starts` is every position of
/// `buf` where a tag could start, ascending ([`tag_starts`], or the scan's one pass
/// over the chunk that finds them with every magic number).
///
/// Every block in which no chain followed so far has a tag header is searched: a
/// fragment can start in any block whose bytes are not provably another tag's
/// header, also inside a long tag's data and in a chunk's first block.
pub fn find_orphans(buf: &[u8], base: u64, limit: usize, starts: &[usize]) -> ChunkOrphans {
    let end = base + limit as u64;
    let mut search = Search::new(buf, base, starts);
    let mut block = base / SECTOR * SECTOR;
    while let Some(next) = search.next_block(block).filter(|&b| b < end) {
        search.block(next);
        block = next + SECTOR;
    }
    search.finish()
}

/// The search of one buffer for orphan runs, block by block: the chains followed so
/// far and what was found.
struct Search<'a> {
    buf: &'a [u8],
    base: u64,
    /// Where a tag could start in `buf`, ascending.
    starts: &'a [usize],
    chains: Vec<u64>,
    out: ChunkOrphans,
}

impl<'a> Search<'a> {
    fn new(buf: &'a [u8], base: u64, starts: &'a [usize]) -> Search<'a> {
        Search {
            buf,
            base,
            starts,
            chains: Vec::new(),
            out: ChunkOrphans::default(),
        }
    }

    /// The first block at or after `block` that can hold a header a chain reaches or a
    /// fragment start; `None` if none can. The blocks before it are passed over in one
    /// search, not one per block (the long tags of a recording, most of a disk when no
    /// chain is followed).
    fn next_block(&self, block: u64) -> Option<u64> {
        let (buf, base) = (self.buf, self.base);
        let lo = (block.max(base) - base) as usize;
        let chain_block = self.chains.iter().min().map(|&p| p / SECTOR * SECTOR);
        // A start before the chain's block has its stream id within 11 bytes past it.
        let reach = chain_block.map_or(buf.len(), |b| {
            ((b - base) as usize).saturating_add(11).min(buf.len())
        });
        let start_block = self
            .starts_in(lo, reach)
            .next()
            .filter(|&first| first + 10 < reach)
            .map(|first| (base + first as u64) / SECTOR * SECTOR);
        let next = start_block.into_iter().chain(chain_block).min()?;
        Some(block.max(next))
    }

    /// Follows the chains through `block` and, unless one of them has a tag header in
    /// it, searches it for a fragment start (then followed as a chain too).
    fn block(&mut self, block: u64) {
        let (buf, base) = (self.buf, self.base);
        let block_end = block + SECTOR;
        let mut has_header = false;
        self.chains.retain_mut(|p| {
            let (next, headers) = follow(buf, base, *p, block_end);
            has_header |= headers;
            next.map(|n| *p = n).is_some()
        });
        let to = block_end.min(base + buf.len() as u64);
        if !has_header && let Some(orphan) = self.first_run(block.max(base), to) {
            self.out.orphans.push(orphan);
            if let (Some(next), _) = follow(buf, base, orphan.at, block_end) {
                self.chains.truncate(MAX_CHAINS - 1);
                self.chains.insert(0, next);
            }
        }
    }

    /// The positions in `[from, to)` where a tag could start, ascending.
    fn starts_in(&self, from: usize, to: usize) -> impl Iterator<Item = usize> + '_ {
        let first = self.starts.partition_point(|&s| s < from);
        self.starts[first..]
            .iter()
            .copied()
            .take_while(move |&s| s < to)
    }

    /// The first position in `[from, to)` (absolute) where a fragment of audio/video
    /// tags can start.
    ///
    /// Anchored on the stream id, three zero bytes 8 bytes into every tag header: rare
    /// in random and compressed data, absent from text, and a zero-filled stretch is
    /// skipped whole; so most of a disk is passed over at memory speed.
    fn first_run(&self, from: u64, to: u64) -> Option<Orphan> {
        if from >= to {
            return None;
        }
        let (buf, base) = (self.buf, self.base);
        let (lo, hi) = ((from - base) as usize, (to - base) as usize);
        let block_end = from / SECTOR * SECTOR + SECTOR;
        self.starts_in(lo, hi)
            .find_map(|c| run_at(buf, base, c as u64, block_end))
    }

    /// What was found, and where the chains go on.
    fn finish(mut self) -> ChunkOrphans {
        self.out.carried = self.chains;
        self.out
    }
}

/// Every position of `buf` where a tag could start ([`could_start_tag`]), ascending.
pub fn tag_starts(buf: &[u8]) -> Vec<usize> {
    candidates(buf, 0, buf.len()).collect()
}

/// A tag could start at `at`: a byte 8 or 9 (audio, video) with three zero bytes 8
/// bytes on (a tag's stream id), all inside `buf`. Where `Search::first_run` tries
/// a tag.
pub fn could_start_tag(buf: &[u8], at: usize) -> bool {
    buf.get(at..at + 11)
        .is_some_and(|h| h[0] & 0xFE == 8 && h[8] | h[9] | h[10] == 0)
}

/// The first position in `[from, to)` where a tag could start ([`could_start_tag`]). Positions are tested 64 at a time by a loop the compiler turns into
/// vector compares, so everything without one, random or compressed data, zeros,
/// executables, the middle of long tags, passes at memory speed.
fn next_candidate(buf: &[u8], from: usize, to: usize) -> Option<usize> {
    const LANES: usize = 64;
    let to = to.min(buf.len().checked_sub(10)?);
    let mut c = from;
    while c + LANES <= to {
        // The type byte and the stream id's three bytes of each of the 64 positions.
        let lanes = |skip: usize| -> Option<&[u8; LANES]> {
            buf.get(c + skip..c + skip + LANES)?.try_into().ok()
        };
        let (Some(kind), Some(id0), Some(id1), Some(id2)) =
            (lanes(0), lanes(8), lanes(9), lanes(10))
        else {
            break;
        };
        // Zero exactly where a tag could start.
        let mut misses = [0u8; LANES];
        for k in 0..LANES {
            misses[k] = ((kind[k] & 0xFE) ^ 8) | id0[k] | id1[k] | id2[k];
        }
        // Any zero byte among them, eight at a time.
        let (words, _) = misses.as_chunks::<8>();
        let zeros = words.iter().fold(0, |any, w| {
            let w = u64::from_ne_bytes(*w);
            any | (w.wrapping_sub(0x0101_0101_0101_0101) & !w & 0x8080_8080_8080_8080)
        });
        if zeros != 0 {
            return misses.iter().position(|&m| m == 0).map(|k| c + k);
        }
        c += LANES;
    }
    (c..to).find(|&k| buf[k] & 0xFE == 8 && buf[k + 8] | buf[k + 9] | buf[k + 10] == 0)
}

/// Every position in `[from, to)` where a tag could start (see [`next_candidate`]),
/// ascending.
fn candidates(buf: &[u8], from: usize, to: usize) -> impl Iterator<Item = usize> + '_ {
    let mut at = from;
    std::iter::from_fn(move || {
        let c = next_candidate(buf, at, to)?;
        at = c + 1;
        Some(c)
    })
}

/// Follows a chain of tags from `p` to the first tag header at or past `block_end`;
/// `None` if it breaks before. Also says whether a whole tag was read on the way (a
/// header proven by its PreviousTagSize). A tag whose end lies past `buf` is taken on
/// trust: the next chunk checks it.
fn follow(buf: &[u8], base: u64, mut p: u64, block_end: u64) -> (Option<u64>, bool) {
    let mut headers = false;
    while p < block_end {
        let rel = p - base;
        if let Some(t) = flv_tag::tag_at(buf, rel) {
            headers = true;
            p += t.total_len();
            continue;
        }
        let mut h = [0u8; 12];
        match buf
            .read_at(rel, &mut h)
            .then(|| flv_tag::parse_tag_header(&h))
        {
            Some(Some(t)) if rel + t.total_len() > buf.len() as u64 => p += t.total_len(),
            _ => return (None, headers),
        }
    }
    (Some(p), headers)
}

/// A fragment start at `at` (relative to `buf`), as an orphan: two chained
/// audio/video tags, or one whose data runs past the end of its block (`block_end`,
/// absolute), which a fragment of a single block holds.
fn run_at(buf: &[u8], base: u64, at: u64, block_end: u64) -> Option<Orphan> {
    let mut h = [0u8; 12];
    let first = buf
        .read_at(at, &mut h)
        .then(|| flv_tag::parse_tag_header(&h))
        .flatten()
        .filter(|t| t.kind != 18 && plausible_codec(t))?;
    let prev = match at.checked_sub(4) {
        Some(p) => u32::from_be_bytes(buf.get(p as usize..at as usize)?.try_into().ok()?),
        None => 0,
    };
    let chained = flv_tag::tag_at(buf, at).is_some()
        && flv_tag::tag_at(buf, at + first.total_len())
            .is_some_and(|second| second.kind != 18 && second.ts.saturating_add(1_000) >= first.ts);
    let open =
        base + at + first.total_len() > block_end && (at < 4 || (11..1 << 24).contains(&prev));
    (chained || open).then_some(Orphan {
        at: at + base,
        prev_size: prev,
        ts: first.ts,
        kind: first.kind,
        codec: first.codec,
    })
}

/// The first data byte names a codec FLV defines: video frame type 1-5 with codec
/// 2-7 or 12 (HEVC, enhanced FLV's legacy id), or an audio format 1-11 other than the
/// reserved 9 (0, platform-endian PCM, is what a zero-filled block would claim).
fn plausible_codec(t: &Tag) -> bool {
    match t.kind {
        9 => matches!(t.codec >> 4, 1..=5) && matches!(t.codec & 15, 2..=7 | 12),
        _ => matches!(t.codec >> 4, 1..=8 | 10 | 11),
    }
}

/// The recording asking for its next fragment: where its header is, and whether the
/// filesystem has its first block allocated (`Some(true)`: a live file's) or free.
#[derive(Clone, Copy, Debug)]
pub struct Asking {
    /// Offset of its FLV header.
    pub file: u64,
    /// Live or deleted, when a filesystem says.
    pub side: Option<bool>,
}

/// The orphan runs of one source, found by the scan, by where their straddling tag
/// starts within its block; and the blocks where some chain or file starts, which
/// belong to other data and so end a fragment.
#[derive(Default)]
pub struct Continuations {
    by_key: HashMap<u64, Vec<Orphan>>,
    starts: HashSet<u64>,
    /// Source ranges some recording certainly holds, with the offset of its header,
    /// sorted: other data for every other recording.
    claimed: Vec<(u64, u64, u64)>,
    /// Joins across a lost fragment are allowed once the first walks are done: these
    /// are the source ranges their files cover (sorted), whose orphans are taken.
    walked: Option<Vec<(u64, u64)>>,
    /// Extent maps the filesystem left, by where their file starts.
    maps: HashMap<u64, Vec<FileMap>>,
    /// The block bitmaps of the filesystem on the source: live or deleted data.
    bitmaps: Option<Bitmaps>,
    /// Where fragments may start and end.
    unit: Unit,
}

/// How far a continuation's first timestamp may lie past the stream's last one.
const MAX_JUMP_MS: u32 = 5_000;

impl Continuations {
    /// Indexes `orphans` and the FLV `headers` of one source whose files fragment
    /// at `unit`.
    pub fn new(orphans: &[Orphan], headers: &[u64], unit: Unit) -> Continuations {
        let mut c = Continuations {
            unit,
            ..Continuations::default()
        };
        for o in orphans {
            c.by_key.entry(o.key(unit.0)).or_default().push(*o);
            c.starts.insert(o.at / unit.0);
        }
        c.starts.extend(headers.iter().map(|h| h / unit.0));
        c
    }

    /// Records that the recording whose header is at `owner` certainly holds
    /// `ranges` (start, end): other data for every other recording, and never offered
    /// as the next fragment in time across a hole.
    pub fn claim(&mut self, owner: u64, ranges: impl Iterator<Item = (u64, u64)>) {
        self.claimed.extend(ranges.map(|(s, e)| (s, e, owner)));
        self.claimed.sort_unstable();
    }

    /// The recording that certainly holds the block at `at`, if one does.
    fn owner(&self, at: u64) -> Option<u64> {
        let u = self.unit.0;
        let block = at / u * u..at / u * u + u;
        let i = self.claimed.partition_point(|c| c.0 < block.end);
        self.claimed[..i]
            .iter()
            .rev()
            .take(64)
            .find(|c| c.1 > block.start)
            .map(|c| c.2)
    }

    /// The granularity fragments start and end at on this source.
    pub fn unit(&self) -> Unit {
        self.unit
    }

    /// Adds the filesystem's evidence: its block bitmap and the extent maps found.
    pub fn add_filesystem(&mut self, volume: Option<Volume>, maps: Vec<FileMap>) {
        self.bitmaps = volume.map(Bitmaps::new);
        for m in maps {
            self.maps.entry(m.start()).or_default().push(m);
        }
        for list in self.maps.values_mut() {
            list.sort_by_key(|m| std::cmp::Reverse(m.extents()));
        }
    }

    /// Whether the filesystem has the block at `at` allocated (a live file's) or free
    /// (a deleted file's); `None` without a filesystem or bitmap.
    pub(super) fn in_use<S: ByteSource + ?Sized>(&self, src: &S, at: u64) -> Option<bool> {
        self.bitmaps.as_ref()?.in_use(src, at)
    }

    /// The joins an extent map of the file starting at `file` makes where its chain
    /// broke at `t`, checked against the tags; the first map that explains the break.
    pub(super) fn map_join<S: ByteSource + ?Sized>(
        &self,
        src: &S,
        file: u64,
        t: u64,
    ) -> Option<(Vec<Join>, u64)> {
        self.maps.get(&file)?.iter().find_map(|m| m.join_at(src, t))
    }

    /// The block at `at` is, by the filesystem's bitmap, on the other side of
    /// live/deleted than the recording (its first block's state): other data.
    fn other_side<S: ByteSource + ?Sized>(&self, src: &S, who: Asking, at: u64) -> bool {
        who.side
            .is_some_and(|s| self.in_use(src, at).is_some_and(|u| u != s))
    }

    /// The block at `at`, inside one of `who`'s tags, is visibly not `who`'s: another
    /// chain or file starts there, another recording certainly holds it, the
    /// filesystem puts it on the other side of live/deleted, it is not compressed
    /// media, or chained tags lie in it (a tag's data holds no tags).
    fn other_data<S: ByteSource + ?Sized>(&self, src: &S, who: Asking, at: u64) -> bool {
        self.starts.contains(&(at / self.unit.0))
            || self.owner(at).is_some_and(|owner| owner != who.file)
            || self.other_side(src, who, at)
            || {
                let mut block = vec![0u8; self.unit.0 as usize];
                !src.read_at(at, &mut block)
                    || !looks_like_media(&block)
                    || holds_chained_tags(src, at, &block)
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
        who: Asking,
        last_ts: u32,
        with_video: bool,
        fits_stream: impl Fn(&Tag) -> bool,
    ) -> Option<(Join, u64)> {
        const MAX_HOLE_MS: u32 = 120_000;
        let next = self
            .by_key
            .values()
            .flatten()
            .filter(|o| o.prev_size >= 11 && self.owner(o.at).is_none())
            .filter(|o| !self.taken(o.at) && !self.other_side(src, who, o.at))
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
                    earliest_from: 0,
                    to: at,
                    at_ms: tag.ts,
                    alternatives: 1,
                    lost_ms: Some((last_ts, tag.ts)),
                    evidence: Evidence::NextInTime,
                    decided: None,
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
        who: Asking,
        t: u64,
        last_ts: u32,
        fits_stream: impl Fn(&Tag) -> bool,
    ) -> Option<(Join, u64)> {
        let candidates = self.by_key.get(&(t % self.unit.0))?;
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
            if !fits_stream(&o.first_tag()) || !in_time || self.other_side(src, who, o.at) {
                continue;
            }
            let total = 11 + size as u64 + 4;
            let tag_end = t + total;
            // The continuation lies elsewhere: not where the tag would simply go on.
            if (t..=tag_end).contains(&o.at) {
                continue;
            }
            let join = match whole_header {
                Some(h) if h.size == size => self.split_in_data(src, who, t, tag_end, o),
                Some(_) => None,
                None => split_in_header(src, self.unit.0, t, tag_end, o, last_ts, &fits_stream),
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

    /// The straddling tag's header is whole on our side: the jump lies in its data, at
    /// a block boundary `b` in `(t + 11, tag_end]`, and the continuation then starts at
    /// `o.at - (tag_end - b)`. A split fits when no block of the tag on either side is
    /// visibly other data (another chain or file starts there, the filesystem puts it
    /// on the other side of live/deleted, or it is not compressed media). One fitting
    /// split is proven; of several, the last is taken and the others are counted.
    fn split_in_data<S: ByteSource + ?Sized>(
        &self,
        src: &S,
        who: Asking,
        t: u64,
        tag_end: u64,
        o: &Orphan,
    ) -> Option<Join> {
        let other = |b: u64| self.other_data(src, who, b);
        let unit = self.unit.0;
        let first = (t + 12).next_multiple_of(unit);
        if first > tag_end {
            return None;
        }
        let step = unit as usize;
        // Our side ends at the latest where other data begins.
        let ours_until = (first..tag_end).step_by(step).find(|&b| other(b));
        // Their side starts after the last block of other data before the orphan.
        let lowest = o.at.checked_sub(tag_end - first)?;
        let orphan_block = o.at / unit * unit;
        let theirs_from = (0..orphan_block.saturating_sub(lowest) / unit)
            .rev()
            .map(|k| lowest + k * unit)
            .find(|&b| other(b))
            .map_or(0, |b| b + unit);
        let fitting: Vec<u64> = (first..=tag_end)
            .step_by(step)
            .filter(|&b| ours_until.is_none_or(|u| b <= u))
            .filter(|&b| o.at - (tag_end - b) >= theirs_from)
            .collect();
        let from = *fitting.last()?;
        Some(Join {
            from,
            earliest_from: fitting[0],
            to: o.at - (tag_end - from),
            at_ms: o.ts,
            alternatives: 0,
            lost_ms: None,
            evidence: Evidence::StraddlingTag,
            decided: None,
        })
    }
}

/// The jump cuts the straddling tag's header (or falls right before it): the one block
/// boundary in `[t, t + 11)` is where our fragment ends, and the header put together
/// from both sides must be a tag of the announced size that continues the stream.
fn split_in_header<S: ByteSource + ?Sized>(
    src: &S,
    unit: u64,
    t: u64,
    tag_end: u64,
    o: &Orphan,
    last_ts: u32,
    fits_stream: &impl Fn(&Tag) -> bool,
) -> Option<Join> {
    let from = t.next_multiple_of(unit);
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
        earliest_from: from,
        to,
        at_ms: o.ts,
        alternatives: 0,
        lost_ms: None,
        evidence: Evidence::StraddlingTag,
        decided: None,
    })
}

/// Two chained audio/video tags start in `block`, which lies at `at` on `src` (read
/// past it for the tags' ends).
fn holds_chained_tags<S: ByteSource + ?Sized>(src: &S, at: u64, block: &[u8]) -> bool {
    candidates(block, 0, block.len()).any(|c| {
        let c = at + c as u64;
        flv_tag::tag_at(src, c).is_some_and(|t| flv_tag::tag_at(src, c + t.total_len()).is_some())
    })
}

/// Compressed audio and video never hold a run of zeros at the end of a block, nor
/// a block of text. Zeros, text and logs do, and so do the zero-padded stale copies
/// of a file's half-written last block (btrfs leaves them behind when it rewrites
/// that block elsewhere). (Byte variety proves nothing: a quiet audio track
/// compresses to frames as repetitive as any metadata.)
fn looks_like_media(block: &[u8]) -> bool {
    if block[block.len() - 16..].iter().all(|&b| b == 0) {
        return false;
    }
    let text = block
        .iter()
        .filter(|&&b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        .count();
    text * 100 < block.len() * 95
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `find_orphans` as it was before it passed over blocks: every block searched,
    /// tag starts by their plain definition.
    fn every_block(buf: &[u8], base: u64, limit: usize) -> ChunkOrphans {
        let starts: Vec<usize> = (0..buf.len())
            .filter(|&k| could_start_tag(buf, k))
            .collect();
        let mut search = Search::new(buf, base, &starts);
        let blocks = (base / SECTOR * SECTOR..base + limit as u64).step_by(SECTOR as usize);
        blocks.for_each(|block| search.block(block));
        search.finish()
    }

    /// Noise with zero stretches and runs of audio/video tags written into it.
    fn layout(seed: u64, len: usize, runs: &[(usize, u8, usize)]) -> Vec<u8> {
        let mut x = seed | 1;
        let mut buf: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for &(at, tags, size) in runs {
            let mut p = at % len;
            if tags == 0 {
                let n = (size * 7).min(len - p);
                buf[p..p + n].fill(0);
                continue;
            }
            for k in 0..tags as u32 {
                let kind = if k % 2 == 0 { 9u8 } else { 8 };
                let total = 11 + size + 4;
                if p + total > len {
                    break;
                }
                let ts = (k * 40).to_be_bytes();
                buf[p] = kind;
                buf[p + 1..p + 4].copy_from_slice(&(size as u32).to_be_bytes()[1..]);
                buf[p + 4..p + 7].copy_from_slice(&ts[1..]);
                buf[p + 7..p + 11].fill(0);
                buf[p + 11] = if kind == 9 { 0x17 } else { 0xAF };
                buf[p + 11 + size..p + total].copy_from_slice(&(11 + size as u32).to_be_bytes());
                p += total;
            }
        }
        buf
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Passing over blocks finds exactly what searching every block finds.
        #[test]
        fn passing_over_blocks_finds_what_every_block_finds(
            seed: u64,
            len in 600usize..40_000,
            base in 0u64..2048,
            runs in prop::collection::vec((0usize..40_000, 0u8..6, 1usize..1500), 0..12),
            cut in 0usize..600,
        ) {
            let buf = layout(seed, len, &runs);
            let limit = len - cut;
            let fast = find_orphans(&buf, base, limit, &tag_starts(&buf));
            let slow = every_block(&buf, base, limit);
            prop_assert_eq!(&fast.orphans, &slow.orphans);
            prop_assert_eq!(&fast.carried, &slow.carried);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The search 64 positions at a time finds the first position the plain
        /// definition gives: a byte 8 or 9, three zeros 8 bytes on, all in the buffer.
        #[test]
        fn candidate_search_finds_the_first_tag_start(
            bytes in prop::collection::vec(
                prop::sample::select(vec![0u8, 0, 0, 0, 8, 9, 1, 0x88, 0x0A, 0xFE]),
                0..700,
            ),
            from in 0usize..700,
            to in 0usize..800,
        ) {
            let last = to.min(bytes.len().saturating_sub(10));
            let plain = (from..last)
                .find(|&c| matches!(bytes[c], 8 | 9) && bytes[c + 8..c + 11] == [0, 0, 0]);
            prop_assert_eq!(next_candidate(&bytes, from, to), plain);
        }
    }
}
