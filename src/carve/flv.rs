//! FLV carving: find headers, walk the tag chain to the exact end, repair small gaps.
//!
//! An FLV file is a 9-byte header, a zero PreviousTagSize, then tags, each followed by a
//! PreviousTagSize equal to 11 + its data size. That back-pointer is what makes exact
//! carving possible: a chain of tags whose sizes all check out is the file, and the
//! first tag that does not check out is its end, or damage. For damage, we look ahead a
//! bounded window for a run of tags that continues the same stream (same codecs,
//! timestamps that pick up where the chain broke) and skip the garbage in between.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::ByteSource;
use super::flv_tag::{TAG_HEADER_LEN, Tag, parse_tag_header, tag_at};
use super::fragments::{Asking, Continuations};
use super::join::Join;
use super::search;

/// FLV file header (9 bytes) plus PreviousTagSize0 (4 bytes).
pub const HEADER_LEN: usize = 13;
/// What every FLV file starts with.
pub const MAGIC: &[u8; 4] = b"FLV\x01";

/// How a carved file ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// The chain ran cleanly to the end of the data or to bytes that are not a tag.
    Complete,
    /// The file ends before its own metadata says it does, or where the source ends
    /// (it may have been repaired or reassembled as far as it goes).
    Truncated,
    /// Damaged regions were skipped; the file is several extents and plays through.
    Repaired,
    /// The file was put together from fragments lying apart on the disk.
    Reassembled,
}

impl Status {
    /// Every status, in the order summaries count them.
    pub const ALL: [Status; 4] = [
        Status::Complete,
        Status::Repaired,
        Status::Reassembled,
        Status::Truncated,
    ];

    /// The word used in `candidates.tsv` and summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Complete => "complete",
            Status::Truncated => "truncated",
            Status::Repaired => "repaired",
            Status::Reassembled => "reassembled",
        }
    }
}

/// A skipped damaged region of a repaired file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Offset (in the source) of the first skipped byte.
    pub from: u64,
    /// Number of bytes skipped.
    pub len: u64,
    /// Timestamp (ms) of the last tag before the gap.
    pub before_ms: u32,
    /// Timestamp (ms) of the first tag after the gap.
    pub after_ms: u32,
}

/// One carved FLV file: where its bytes are and what we learnt walking them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Carved {
    /// Offset of the `FLV` header.
    pub offset: u64,
    /// The file's bytes, in order: `(offset, len)` ranges of the source.
    pub extents: Vec<(u64, u64)>,
    /// How the walk ended.
    pub status: Status,
    /// Regions skipped by repair.
    pub gaps: Vec<Gap>,
    /// Jumps from one fragment to the next, for a reassembled file.
    pub joins: Vec<Join>,
    /// Number of tags in the carved file.
    pub tags: u64,
    /// Duration in ms: `onMetaData.duration` when present, else the last timestamp.
    pub duration_ms: u64,
    /// When the recording was made, from its own metadata (`onMetaData.creationdate`,
    /// seconds since the epoch), when it says.
    pub created_s: Option<u64>,
    /// Audio tags were found.
    pub has_audio: bool,
    /// Video tags were found.
    pub has_video: bool,
    /// For a run of tags whose header was overwritten: what is put before it to make
    /// it a playable file.
    pub headless: Option<Headless>,
}

impl Headless {
    /// The FLV header a headless recording is served behind: version 1, the streams
    /// it holds, no metadata.
    pub fn header(has_audio: bool, has_video: bool) -> [u8; HEADER_LEN] {
        let flags = (has_audio as u8) << 2 | has_video as u8;
        [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
    }

    /// Bytes served before the run: the header and the borrowed tags.
    pub fn prefix_len(&self) -> u64 {
        HEADER_LEN as u64 + self.borrowed.iter().map(|b| b.1).sum::<u64>()
    }
}

/// What a headless recording is served with: a synthesized FLV header, then the
/// codec sequence headers (H.264 parameter sets, AAC configuration) its decoder needs,
/// borrowed from a recording with the same codecs when the run has none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Headless {
    /// Header offset of the recording the sequence headers come from.
    pub donor: Option<u64>,
    /// Those tags on the source, whole (each with its PreviousTagSize).
    pub borrowed: Vec<(u64, u64)>,
}

impl Carved {
    /// Size of the carved file in bytes (with what a headless one is served behind).
    pub fn len(&self) -> u64 {
        let prefix = self.headless.as_ref().map_or(0, Headless::prefix_len);
        prefix + self.extents.iter().map(|e| e.1).sum::<u64>()
    }
    /// True for a header with nothing after it (never produced by [`walk`], which
    /// always includes the 13 header bytes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Bounds of the walk; the defaults suit stream recordings.
#[derive(Clone, Copy, Debug)]
pub struct WalkLimits {
    /// How far past a break to look for a continuation.
    pub resync_window: u64,
    /// How many chained tags a continuation needs before we trust it.
    pub resync_tags: usize,
    /// Maximum number of repairs per file, so hostile data cannot make a walk quadratic.
    pub max_gaps: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            resync_window: 4 << 20,
            resync_tags: 3,
            max_gaps: 256,
        }
    }
}

/// True if `b` starts with a plausible FLV header: version 1, only the audio/video flag
/// bits set (at least one), header size 9, PreviousTagSize0 = 0.
pub fn is_header(b: &[u8]) -> bool {
    b.len() >= HEADER_LEN
        && &b[0..4] == MAGIC
        && b[4] & !0x05 == 0
        && b[4] != 0
        && b[5..9] == [0, 0, 0, 9]
        && b[9..13] == [0, 0, 0, 0]
}

/// Offsets (relative to `buf`) of every FLV header that starts before `limit`.
/// `buf` should extend at least `HEADER_LEN - 1` bytes past `limit` so that headers
/// straddling the limit are seen whole.
pub fn find_headers(buf: &[u8], limit: usize) -> Vec<usize> {
    static HEADER: search::Lazy = search::Lazy::new(|| search::finder(MAGIC));
    find_headers_at(buf, limit, HEADER.find_iter(buf))
}

/// As [`find_headers`], given where [`MAGIC`] occurs in `buf` (ascending): the
/// scan finds every format's magic numbers in one pass.
pub fn find_headers_at(
    buf: &[u8],
    limit: usize,
    hits: impl IntoIterator<Item = usize>,
) -> Vec<usize> {
    (hits.into_iter())
        .take_while(|&p| p < limit)
        .filter(|&p| is_header(&buf[p..]))
        .collect()
}

/// What the stream looked like so far: used to recognise its continuation.
#[derive(Clone, Copy, Default)]
struct Stream {
    audio_codec: Option<u8>,
    video_codec: Option<u8>,
    last_ts: u32,
    tags: u64,
    bytes: u64,
}

impl Stream {
    fn push(&mut self, tag: &Tag) {
        match tag.kind {
            8 => {
                self.audio_codec.get_or_insert(tag.codec);
            }
            9 => {
                self.video_codec.get_or_insert(tag.codec & 0x0f);
            }
            _ => {}
        }
        if tag.kind != 18 {
            self.last_ts = self.last_ts.max(tag.ts);
        }
        self.tags += 1;
        self.bytes += tag.total_len();
    }

    /// Same codecs as the stream so far (a script tag says nothing either way).
    fn same_codec(&self, tag: &Tag) -> bool {
        match tag.kind {
            8 => self.audio_codec.is_none_or(|c| c == tag.codec),
            9 => self.video_codec.is_none_or(|c| c == tag.codec & 0x0f),
            _ => true,
        }
    }

    /// Whether a run starting at `ts`, found `skipped` bytes later, can continue this
    /// stream: timestamps go on where they stopped, no further than the lost bytes
    /// could have lasted at the stream's bitrate (with generous slack).
    fn continues_at(&self, ts: u32, skipped: u64) -> bool {
        const JITTER_MS: u32 = 1_000;
        if ts.saturating_add(JITTER_MS) < self.last_ts {
            return false;
        }
        let rate = self.bytes.max(1) * 1000 / (self.last_ts as u64).max(1); // bytes per second
        let lost_ms = skipped.saturating_mul(1000) / rate.max(1);
        (ts as u64) <= self.last_ts as u64 + 2 * lost_ms + 2_000
    }
}

/// Walks the tag chain of the FLV file whose header is at `offset` in `src`; where the
/// chain breaks, it continues in a fragment from `fragments` that provably fits, else
/// after damage skipped within reach. Returns `None` if there is no valid header there.
pub fn walk<S: ByteSource + ?Sized>(
    src: &S,
    offset: u64,
    limits: &WalkLimits,
    fragments: &Continuations,
) -> Option<Carved> {
    let mut header = [0u8; HEADER_LEN];
    if !src.read_at(offset, &mut header) || !is_header(&header) {
        return None;
    }
    Some(walk_tags(
        src,
        (offset, offset + HEADER_LEN as u64),
        limits,
        fragments,
    ))
}

/// Walks a run of tags whose header was overwritten, like [`walk`]: a headless
/// recording from the first video keyframe at or after `at` (so that it plays from
/// its first frame; from `at` without video), `None` when fewer than `min_tags` tags
/// chain.
pub fn walk_headless<S: ByteSource + ?Sized>(
    src: &S,
    at: u64,
    min_tags: u64,
    (limits, fragments): (&WalkLimits, &Continuations),
) -> Option<Carved> {
    let start = first_keyframe(src, at).unwrap_or(at);
    let carved = walk_tags(src, (start, start), limits, fragments);
    (carved.tags >= min_tags).then_some(carved)
}

/// The first video keyframe in the chain from `at` (a bounded number of tags).
fn first_keyframe<S: ByteSource + ?Sized>(src: &S, mut at: u64) -> Option<u64> {
    for _ in 0..1_000 {
        let tag = tag_at(src, at)?;
        if tag.kind == 9 && tag.codec >> 4 == 1 {
            return Some(at);
        }
        at += tag.total_len();
    }
    None
}

/// Walks the tags from `first_tag` of the file that starts at `offset`.
fn walk_tags<S: ByteSource + ?Sized>(
    src: &S,
    (offset, first_tag): (u64, u64),
    limits: &WalkLimits,
    fragments: &Continuations,
) -> Carved {
    let end_of_data = src.len();
    let mut stream = Stream::default();
    let mut extents: Vec<(u64, u64)> = Vec::new();
    let mut gaps = Vec::new();
    let mut joins: Vec<Join> = Vec::new();
    let mut extent_start = offset;
    let mut pos = first_tag;
    let mut meta = Metadata::default();
    let mut cut_off = false;
    let who = Asking {
        file: offset,
        side: fragments.in_use(src, offset),
    };
    let mut recent = Recent::default();

    loop {
        if let Some(tag) = tag_at(src, pos) {
            if tag.kind == 18 && stream.tags == 0 {
                meta = read_metadata(src, pos + TAG_HEADER_LEN, tag.size);
            }
            recent.note(pos, stream);
            stream.push(&tag);
            pos += tag.total_len();
            continue;
        }
        if pos >= end_of_data {
            break;
        }
        cut_off |= header_fits_but_runs_past_end(src, pos, end_of_data);
        // The file's own metadata says this is its end: nothing to look for.
        let carved_len = extents.iter().map(|e| e.1).sum::<u64>() + (pos - extent_start);
        let ends_as_announced = meta.filesize == Some(carved_len) && gaps.is_empty();
        if ends_as_announced || gaps.len() + joins.len() >= limits.max_gaps || stream.tags == 0 {
            break;
        }
        let at = (pos, extent_start);
        if let Some(jump) = jump(src, fragments, (who, at), &stream, &recent, &joins) {
            if let Some((start, before)) = jump.restart {
                (pos, stream) = (start, before);
            }
            // The straddling tag is whole again: its start here, its rest there.
            stream.tags += 1;
            let mut part = pos;
            for join in jump.joins {
                stream.bytes += join.from - part;
                extents.push((extent_start, join.from - extent_start));
                (extent_start, part) = (join.to, join.to);
                joins.push(join);
            }
            stream.bytes += jump.resume - part;
            pos = jump.resume;
            cut_off = false;
            continue;
        }
        match find_continuation(src, pos, &stream, limits)
            .filter(|&(resume, _)| in_place(src, pos, resume))
        {
            Some((resume, first_ts)) => {
                extents.push((extent_start, pos - extent_start));
                gaps.push(Gap {
                    from: pos,
                    len: resume - pos,
                    before_ms: stream.last_ts,
                    after_ms: first_ts,
                });
                extent_start = resume;
                pos = resume;
                cut_off = false;
            }
            None => {
                let announced = meta
                    .duration_ms
                    .is_some_and(|d| d > stream.last_ts as u64 + 1_000)
                    || meta.filesize.is_some_and(|f| f > carved_len);
                let Some((join, resume)) =
                    across_hole(src, fragments, (who, announced), pos, &stream, &joins)
                else {
                    break;
                };
                extents.push((extent_start, pos - extent_start));
                extent_start = resume;
                pos = resume;
                joins.push(join);
            }
        }
    }
    extents.push((extent_start, pos - extent_start));

    let status = ending(&stream, &meta, (&extents, &gaps, &joins), cut_off);
    Carved {
        offset,
        extents,
        status,
        gaps,
        joins,
        tags: stream.tags,
        duration_ms: meta.duration_ms.unwrap_or(stream.last_ts as u64),
        created_s: meta.created_s,
        has_audio: stream.audio_codec.is_some(),
        has_video: stream.video_codec.is_some(),
        headless: (first_tag == offset).then(Headless::default),
    }
}

/// How far past a break a stale copy's zero-filled tail is looked for.
const STALE_REACH: u64 = 64 << 10;
/// Whole tags before a break in a stale copy from which the file may have jumped.
const STALE_TAGS: usize = 16;

/// The last whole tags' starts, and the stream before each: where a file may have
/// left a stale copy.
#[derive(Default)]
struct Recent(VecDeque<(u64, Stream)>);

impl Recent {
    fn note(&mut self, pos: u64, before: Stream) {
        if self.0.len() == STALE_TAGS {
            self.0.pop_front();
        }
        self.0.push_back((pos, before));
    }
}

/// Where a broken chain goes on.
struct Jump {
    joins: Vec<Join>,
    /// Where the walk resumes.
    resume: u64,
    /// When the file left inside an earlier tag: its start, and the stream before it.
    restart: Option<(u64, Stream)>,
}

/// Where the chain of `who` broken at `pos` (in the extent from `extent_start`) goes
/// on: a fragment that continues the straddling tag, else one that continues a tag
/// before it, when the break lies in a stale copy.
fn jump<S: ByteSource + ?Sized>(
    src: &S,
    fragments: &Continuations,
    (who, (pos, extent_start)): (Asking, (u64, u64)),
    stream: &Stream,
    recent: &Recent,
    joins: &[Join],
) -> Option<Jump> {
    next_fragment(src, fragments, who, pos, stream, joins)
        .map(|(joins, resume)| Jump {
            joins,
            resume,
            restart: None,
        })
        .or_else(|| {
            let stale = recent.0.iter().filter(|t| t.0 >= extent_start);
            from_stale_copy(src, fragments, (who, pos), stale, joins)
        })
        .filter(|j| j.joins.first().is_some_and(|j| j.from > extent_start))
}

/// The chain broke at `pos` in a stale copy of a block: btrfs leaves the first write
/// of a rewritten block behind, zero-filled past what was written, and the copy holds
/// what the fragment the file goes on in starts with (whole tags, maybe). The file
/// left this place inside one of the tags before (`recent`, newest last, each with the
/// stream before it): the first whose continuation starts with the very bytes the copy
/// holds up to the break.
fn from_stale_copy<'a, S: ByteSource + ?Sized>(
    src: &S,
    fragments: &Continuations,
    (who, pos): (Asking, u64),
    recent: impl DoubleEndedIterator<Item = &'a (u64, Stream)>,
    joins: &[Join],
) -> Option<Jump> {
    let unit = fragments.unit().0.max(16);
    let mut tail = [0u8; 16];
    let zero_tail = (pos / unit + 1..=(pos + STALE_REACH) / unit)
        .any(|b| src.read_at(b * unit - 16, &mut tail) && tail == [0u8; 16]);
    if !zero_tail {
        return None;
    }
    recent.rev().find_map(|&(start, before)| {
        let (joins, resume) = next_fragment(src, fragments, who, start, &before, joins)?;
        let first = joins.first()?;
        let copy = first.from <= pos && same_bytes(src, (first.from, first.to), pos + 12);
        copy.then_some(Jump {
            joins,
            resume,
            restart: Some((start, before)),
        })
    })
}

/// The bytes from `from` up to `until` are the same at `to`: a copy.
fn same_bytes<S: ByteSource + ?Sized>(src: &S, (from, to): (u64, u64), until: u64) -> bool {
    let Some(n) = until.checked_sub(from).filter(|&n| n <= STALE_REACH) else {
        return false;
    };
    let (mut here, mut there) = (vec![0u8; n as usize], vec![0u8; n as usize]);
    src.read_at(from, &mut here) && src.read_at(to, &mut there) && here == there
}

/// Where the chain broken at `pos` goes on, in another fragment of the file that
/// `who` is: as the filesystem's extent map says,
/// else where the straddling tag provably fits. A fragment already entered is not
/// offered again.
fn next_fragment<S: ByteSource + ?Sized>(
    src: &S,
    fragments: &Continuations,
    who: Asking,
    pos: u64,
    stream: &Stream,
    joins: &[Join],
) -> Option<(Vec<Join>, u64)> {
    let fits = |t: &Tag| stream.same_codec(t);
    let (jumps, resume) = fragments.map_join(src, who.file, pos).or_else(|| {
        let (join, resume) = fragments.find(src, who, pos, stream.last_ts, fits)?;
        Some((vec![join], resume))
    })?;
    let new = jumps.iter().all(|j| joins.iter().all(|k| k.to != j.to));
    new.then_some((jumps, resume))
}

/// The chain broke inside a tag (or the file's metadata says it goes on) and no
/// fragment continues it: the next fragment is lost, go on with the one that comes
/// next in time (`announced`: the metadata says the file goes on).
fn across_hole<S: ByteSource + ?Sized>(
    src: &S,
    fragments: &Continuations,
    (who, announced): (Asking, bool),
    pos: u64,
    stream: &Stream,
    joins: &[Join],
) -> Option<(Join, u64)> {
    let mut h = [0u8; 12];
    let mid_tag = src.read_at(pos, &mut h) && parse_tag_header(&h).is_some();
    if !mid_tag && !announced {
        return None;
    }
    let with_video = stream.video_codec.is_some();
    let fits = |t: &Tag| stream.same_codec(t);
    let (mut join, resume) =
        fragments.find_after_hole(src, who, stream.last_ts, with_video, fits)?;
    if joins.iter().any(|j| j.to == join.to) || resume == pos {
        return None;
    }
    (join.from, join.earliest_from) = (pos, pos);
    Some((join, resume))
}

/// The codecs of the first audio and video tags from `at` (audio format, video
/// codec id), looking at a bounded number of tags.
pub fn first_codecs<S: ByteSource + ?Sized>(src: &S, mut at: u64) -> (Option<u8>, Option<u8>) {
    let mut stream = Stream::default();
    for _ in 0..64 {
        let Some(tag) = tag_at(src, at) else { break };
        stream.push(&tag);
        at += tag.total_len();
    }
    (stream.audio_codec.map(|c| c >> 4), stream.video_codec)
}

/// The codec sequence headers among the first tags from `at`: H.264's parameter sets
/// (video codec 7, packet type 0) and AAC's configuration (audio format 10, packet
/// type 0), as whole tags on the source.
pub fn sequence_headers<S: ByteSource + ?Sized>(src: &S, mut at: u64) -> Vec<(u64, u64)> {
    let mut found = Vec::new();
    for _ in 0..64 {
        let Some(tag) = tag_at(src, at) else { break };
        let mut packet_type = [0u8; 1];
        let avc = tag.kind == 9 && tag.codec & 0x0f == 7;
        let aac = tag.kind == 8 && tag.codec >> 4 == 10;
        if (avc || aac)
            && src.read_at(at + TAG_HEADER_LEN + 1, &mut packet_type)
            && packet_type[0] == 0
        {
            found.push((at, tag.total_len()));
        }
        at += tag.total_len();
    }
    found
}

/// How a walk ended, from the pieces it found (extents, gaps, joins), whether the
/// source cut it off, and what the file's own metadata announced.
fn ending(
    stream: &Stream,
    meta: &Metadata,
    (extents, gaps, joins): (&[(u64, u64)], &[Gap], &[Join]),
    cut_off: bool,
) -> Status {
    let carved_len: u64 = extents.iter().map(|e| e.1).sum();
    let short_of_metadata = meta
        .duration_ms
        .is_some_and(|d| (stream.last_ts as u64) + 1_000 < d)
        || (gaps.is_empty()
            && joins.iter().all(|j| j.lost_ms.is_none())
            && meta.filesize.is_some_and(|f| carved_len < f));
    // Ending early says more than how far it got: a file put together from pieces
    // that still stops short of its own duration is truncated.
    if cut_off || short_of_metadata || stream.tags == 0 {
        Status::Truncated
    } else if !joins.is_empty() {
        Status::Reassembled
    } else if !gaps.is_empty() {
        Status::Repaired
    } else {
        Status::Complete
    }
}

/// A tag header is at `pos` but its data or PreviousTagSize lies past the end of data:
/// the file was cut off by the end of the source.
fn header_fits_but_runs_past_end<S: ByteSource + ?Sized>(src: &S, pos: u64, end: u64) -> bool {
    let mut h = [0u8; 12];
    if !src.read_at(pos, &mut h) {
        return end - pos < 12;
    }
    parse_tag_header(&h).is_some_and(|t| pos + t.total_len() > end)
}

/// A repair that resumes at `resume` can be damage in place: the tag at `pos`, if its
/// header is whole, announces where the next one is, and in place no tag starts
/// before that. A run found earlier is another fragment's, maybe another recording's
/// made at the same time with the same codecs: only a fragment join may take it.
fn in_place<S: ByteSource + ?Sized>(src: &S, pos: u64, resume: u64) -> bool {
    let mut h = [0u8; 12];
    match src
        .read_at(pos, &mut h)
        .then(|| parse_tag_header(&h))
        .flatten()
    {
        Some(tag) => resume >= pos + tag.total_len(),
        None => true,
    }
}

/// Looks for the first run of valid tags in `(pos, pos + window]`. If that run continues
/// `stream` (same codecs, timestamps picking up where they stopped), it is the
/// continuation; if it does not, the stream has really ended and we ran into other data,
/// so there is no continuation (skipping further could glue a foreign file on). The next
/// FLV header ends the search too: that is another file.
fn find_continuation<S: ByteSource + ?Sized>(
    src: &S,
    pos: u64,
    stream: &Stream,
    limits: &WalkLimits,
) -> Option<(u64, u32)> {
    let window_end = pos.saturating_add(limits.resync_window).min(src.len());
    const STEP: usize = 64 * 1024;
    let mut buf = vec![0u8; STEP + 12];
    let mut base = pos + 1;
    while base < window_end {
        let n = ((window_end - base) as usize).min(STEP);
        let avail = (src.len() - base).min((n + 12) as u64) as usize;
        if !src.read_at(base, &mut buf[..avail]) {
            return None;
        }
        let window = &buf[..avail];
        if let Some(h) =
            memchr::memmem::find_iter(window, MAGIC).find(|&h| h < n && is_header(&window[h..]))
        {
            // Another file starts here: search only up to it.
            return search_runs(src, &window[..h], base, pos, stream, limits).flatten();
        }
        if let Some(found) = search_runs(src, &window[..n.min(avail)], base, pos, stream, limits) {
            return found;
        }
        base += n as u64;
    }
    None
}

/// Tries every audio/video tag start in `bytes` (which lie at `base`); `Some(result)`
/// once the first valid run decides, `None` if there was none.
fn search_runs<S: ByteSource + ?Sized>(
    src: &S,
    bytes: &[u8],
    base: u64,
    pos: u64,
    stream: &Stream,
    limits: &WalkLimits,
) -> Option<Option<(u64, u32)>> {
    for i in memchr::memchr2_iter(8, 9, bytes) {
        let at = base + i as u64;
        if let Some(run) = valid_run(src, at, limits.resync_tags) {
            let continues = run.iter().all(|t| stream.same_codec(t))
                && stream.continues_at(run[0].ts, at - pos);
            return Some(continues.then_some((at, run[0].ts)));
        }
    }
    None
}

/// The first `run_tags` tags at `at` if they are all valid, chained, audio or video, with
/// timestamps that do not go back (fewer if the data ends exactly after them).
fn valid_run<S: ByteSource + ?Sized>(src: &S, at: u64, run_tags: usize) -> Option<Vec<Tag>> {
    let mut run: Vec<Tag> = Vec::with_capacity(run_tags);
    let mut pos = at;
    while run.len() < run_tags && (run.is_empty() || pos != src.len()) {
        let tag = tag_at(src, pos)?;
        let backwards = run
            .last()
            .is_some_and(|p| tag.ts.saturating_add(1_000) < p.ts);
        if tag.kind == 18 || backwards {
            return None;
        }
        pos += tag.total_len();
        run.push(tag);
    }
    Some(run)
}

/// The parts of `onMetaData` we use.
#[derive(Default)]
struct Metadata {
    duration_ms: Option<u64>,
    filesize: Option<u64>,
    created_s: Option<u64>,
}

/// Reads `onMetaData` from a script tag's data (AMF0). Anything unexpected: no metadata.
fn read_metadata<S: ByteSource + ?Sized>(src: &S, at: u64, size: u32) -> Metadata {
    let len = (size as usize).min(64 * 1024);
    let mut data = vec![0u8; len];
    if !src.read_at(at, &mut data) {
        return Metadata::default();
    }
    parse_on_metadata(&data).unwrap_or_default()
}

fn parse_on_metadata(d: &[u8]) -> Option<Metadata> {
    let mut r = Amf { d, pos: 0 };
    if r.u8()? != 2 || r.short_string()? != b"onMetaData" {
        return None;
    }
    match r.u8()? {
        8 => {
            r.take(4)?; // ECMA array: approximate count, then pairs like an object
        }
        3 => {}
        _ => return None,
    }
    let mut meta = Metadata::default();
    loop {
        let key = r.short_string()?;
        if key.is_empty() {
            break; // object end marker follows (0x09)
        }
        let ty = r.u8()?;
        if ty == 0 {
            let v = f64::from_be_bytes(r.take(8)?.try_into().ok()?);
            let valid = (0.0..1e12).contains(&v);
            match key {
                b"duration" if valid => meta.duration_ms = Some((v * 1000.0).round() as u64),
                b"filesize" if valid => meta.filesize = Some(v as u64),
                _ => {}
            }
        } else if key == b"creationdate" && (ty == 2 || ty == 11) {
            meta.created_s = r.date(ty);
        } else {
            r.skip_value(ty, 0)?;
        }
    }
    Some(meta)
}

/// A bounds-checked reader over AMF0 bytes.
struct Amf<'a> {
    d: &'a [u8],
    pos: usize,
}

impl<'a> Amf<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.d.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<usize> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn short_string(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
    /// A date written as an AMF date (type 11: milliseconds since the epoch) or as an
    /// RFC 3339 string (type 2, as ffmpeg writes `-metadata creationdate=...`), in
    /// seconds since the epoch; `None` when it is neither, or not between 1990 and 2100.
    fn date(&mut self, ty: u8) -> Option<u64> {
        let secs = match ty {
            11 => {
                let ms = f64::from_be_bytes(self.take(10)?[..8].try_into().ok()?);
                (ms / 1000.0) as u64
            }
            _ => {
                let text = std::str::from_utf8(self.short_string()?).ok()?;
                let when = humantime::parse_rfc3339_weak(text.trim()).ok()?;
                when.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs()
            }
        };
        (631_152_000..4_102_444_800).contains(&secs).then_some(secs)
    }

    /// Skips one value of type `ty`; nesting is bounded.
    fn skip_value(&mut self, ty: u8, depth: u32) -> Option<()> {
        if depth > 16 {
            return None;
        }
        match ty {
            0 => self.take(8).map(drop),
            1 => self.take(1).map(drop),
            2 => self.short_string().map(drop),
            3 | 8 => {
                if ty == 8 {
                    self.take(4)?;
                }
                loop {
                    if self.short_string()?.is_empty() {
                        return (self.u8()? == 9).then_some(());
                    }
                    let t = self.u8()?;
                    self.skip_value(t, depth + 1)?;
                }
            }
            5 | 6 => Some(()),
            10 => {
                let n = self.u32()?;
                for _ in 0..n {
                    let t = self.u8()?;
                    self.skip_value(t, depth + 1)?;
                }
                Some(())
            }
            11 => self.take(10).map(drop),
            12 => {
                let n = self.u32()?;
                self.take(n).map(drop)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a synthetic FLV: header, then `n` alternating audio/video tags of the
    /// given data size, timestamps 40 ms apart.
    fn synth(n: u32, data: usize) -> Vec<u8> {
        let mut v = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
        for i in 0..n {
            let kind = if i % 2 == 0 { 9 } else { 8 };
            let ts = i * 40;
            let size = data as u32;
            v.push(kind);
            v.extend_from_slice(&size.to_be_bytes()[1..]);
            v.extend_from_slice(&ts.to_be_bytes()[1..]);
            v.push((ts >> 24) as u8);
            v.extend_from_slice(&[0, 0, 0]);
            let codec = if kind == 9 { 0x17 } else { 0xaf };
            v.push(codec);
            v.extend(std::iter::repeat_n(0x55, data - 1));
            v.extend_from_slice(&(11 + size).to_be_bytes());
        }
        v
    }

    #[test]
    fn walks_to_exact_end_before_garbage() {
        let flv = synth(50, 300);
        let mut disk = vec![0xAAu8; 1000];
        disk.extend_from_slice(&flv);
        disk.extend(std::iter::repeat_n(0x33, 5000));
        let c = walk(
            &disk[..],
            1000,
            &WalkLimits::default(),
            &Continuations::default(),
        )
        .unwrap();
        assert_eq!(c.extents, vec![(1000, flv.len() as u64)]);
        assert_eq!(c.status, Status::Complete);
        assert_eq!(c.tags, 50);
        assert!(c.has_audio && c.has_video);
        assert_eq!(c.duration_ms, 49 * 40);
    }

    #[test]
    fn cut_off_by_end_of_data_is_truncated_and_ends_on_a_tag() {
        let flv = synth(20, 300);
        let cut = &flv[..flv.len() - 100];
        let c = walk(cut, 0, &WalkLimits::default(), &Continuations::default()).unwrap();
        assert_eq!(c.status, Status::Truncated);
        let len = c.len() as usize;
        assert_eq!(len, 13 + 19 * 315);
        let pts = u32::from_be_bytes(cut[len - 4..len].try_into().unwrap());
        assert_eq!(pts, 311);
    }

    #[test]
    fn repairs_an_overwritten_block() {
        let mut flv = synth(200, 300);
        let hole = 20_000..24_096;
        for (i, b) in flv[hole.clone()].iter_mut().enumerate() {
            *b = (i * 7 % 251) as u8;
        }
        let c = walk(
            &flv[..],
            0,
            &WalkLimits::default(),
            &Continuations::default(),
        )
        .unwrap();
        assert_eq!(c.status, Status::Repaired);
        assert_eq!(c.extents.len(), 2);
        assert!(c.extents[0].1 <= hole.start as u64);
        assert!(c.extents[1].0 >= hole.end as u64);
        assert_eq!(c.extents[1].0 + c.extents[1].1, flv.len() as u64);
        assert_eq!(c.gaps.len(), 1);
    }

    #[test]
    fn does_not_join_the_next_file() {
        let a = synth(30, 300);
        let b = synth(60, 300);
        let mut disk = a.clone();
        disk.extend(std::iter::repeat_n(0u8, 4096));
        disk.extend_from_slice(&b);
        let c = walk(
            &disk[..],
            0,
            &WalkLimits::default(),
            &Continuations::default(),
        )
        .unwrap();
        assert_eq!(c.extents, vec![(0, a.len() as u64)]);
        // Even with the next file's header destroyed, its timestamps restart at 0
        // far behind ours... but a stream that late could still match: check that a
        // header-less copy whose timestamps restart is not joined.
        let mut disk2 = a.clone();
        disk2.extend(std::iter::repeat_n(0u8, 4096));
        disk2.extend_from_slice(&b[13..]);
        let c2 = walk(
            &disk2[..],
            0,
            &WalkLimits::default(),
            &Continuations::default(),
        )
        .unwrap();
        assert_eq!(c2.status, Status::Complete);
        assert_eq!(c2.len(), a.len() as u64);
    }

    #[test]
    fn finds_headers_and_rejects_bad_ones() {
        let mut buf = vec![0u8; 100];
        buf[10..23].copy_from_slice(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
        buf[40..53].copy_from_slice(b"FLV\x01\x07\x00\x00\x00\x09\x00\x00\x00\x00");
        assert_eq!(find_headers(&buf, 100), vec![10]);
        assert_eq!(find_headers(&buf, 10), Vec::<usize>::new());
        assert!(
            walk(
                &buf[..],
                40,
                &WalkLimits::default(),
                &Continuations::default()
            )
            .is_none()
        );
    }

    #[test]
    fn metadata_duration_is_parsed() {
        let mut d = vec![2, 0, 10];
        d.extend_from_slice(b"onMetaData");
        d.extend_from_slice(&[8, 0, 0, 0, 2]);
        d.extend_from_slice(&[0, 5]);
        d.extend_from_slice(b"width");
        d.push(0);
        d.extend_from_slice(&320f64.to_be_bytes());
        d.extend_from_slice(&[0, 8]);
        d.extend_from_slice(b"duration");
        d.push(0);
        d.extend_from_slice(&8.023f64.to_be_bytes());
        d.extend_from_slice(&[0, 0, 9]);
        let m = parse_on_metadata(&d).unwrap();
        assert_eq!(m.duration_ms, Some(8023));
    }
}
