//! What a decoder needs to judge one candidate split of a join: a small FLV file.
//!
//! A straddling tag proves which fragment comes next, not where inside the tag the
//! jump happened. Every candidate split gives the tag different bytes, and only the
//! right one gives the decoder the frame the recorder wrote: a wrong one puts other
//! data into the middle of a compressed frame, which the decoder soon finds invalid.
//! A probe holds the FLV header, the codec's sequence headers, and the tags of the
//! straddling tag's stream from the last keyframe before it to two tags after it, read
//! through the file as that split would serve it.

use super::ByteSource;
use super::flv::{Carved, HEADER_LEN, sequence_headers};
use super::flv_tag::{TAG_HEADER_LEN, Tag, tag_at, tag_header_at};
use super::splits::move_split;

/// Audio tags before the straddling one that go into an audio probe: enough for a
/// decoder's state (MP3's bit reservoir reaches back a few frames).
const AUDIO_BEFORE: usize = 8;
/// Tags after the straddling one that go into a probe: a wrong split may only show
/// when the next frame reads the bit reservoir or references the broken one.
const TAGS_AFTER: usize = 2;
/// A probe starts at most this far before its straddling tag; a keyframe further
/// back is left out (every candidate then misses the same references).
const MAX_WINDOW: u64 = 16 << 20;
/// Tags walked to find a join's straddling tag: bounds the work on hostile input.
const MAX_TAGS: usize = 1 << 20;

/// Where the probes of join `j` of a file come from: positions in the file, the same
/// for every candidate split (a split moves bytes, not lengths).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Straddle {
    /// Tag kind of the straddling tag: 8 audio, 9 video.
    pub kind: u8,
    /// The tags of a probe, as `(position in the file, length with PreviousTagSize)`:
    /// sequence headers first, then the window in order.
    tags: Vec<(u64, u64)>,
    /// The straddling tag: position in the file, length with PreviousTagSize.
    tag: (u64, u64),
    /// How many of the last `tags` reach past the next join's earliest split, into
    /// bytes no decision has settled yet.
    unsettled: usize,
}

impl Straddle {
    /// The straddling tag of every join of `file` (on `src`) and the tags its probes
    /// need, in one walk over the file's tags; `None` for a join whose tags cannot be
    /// walked up to it, or whose straddling tag's header is not before every split.
    pub fn find_all<S: ByteSource + ?Sized>(src: &S, file: &Carved) -> Vec<Option<Straddle>> {
        let view = Extents::new(src, &file.extents);
        let splits: Vec<Option<(u64, u64)>> = (file.joins.iter())
            .map(|j| {
                let latest = piece_end_in_file(&file.extents, j.from)?;
                Some((
                    latest.checked_sub(j.from.checked_sub(j.earliest_from)?)?,
                    latest,
                ))
            })
            .collect();
        let sequence = sequence_headers(&view, HEADER_LEN as u64);
        let mut found = vec![None; splits.len()];
        // Where join `i`'s earliest split lies in the file: bytes from there on are not
        // settled until it is decided.
        let earliest_of = |i: usize| splits.get(i).copied().flatten().map_or(u64::MAX, |s| s.0);
        let (mut next, mut at) = (0, HEADER_LEN as u64);
        let mut before: Vec<Seen> = Vec::new();
        while next < splits.len() && before.len() < MAX_TAGS {
            // A tag whose PreviousTagSize lies past the next join's earliest split may
            // read it from the wrong side of that split: its header decides.
            let unsettled = |t: &Tag| at + t.total_len() > earliest_of(next);
            let tag = tag_at(&view, at).or_else(|| tag_header_at(&view, at).filter(unsettled));
            let Some(tag) = tag else { break };
            // Its PreviousTagSize too: a split there breaks the chain as surely.
            let end = at + tag.total_len();
            // Every join whose latest split this tag runs past: it straddles those
            // whose every split lies past its header and first data byte.
            while let Some(&split) = splits.get(next) {
                match split {
                    Some((_, latest)) if end <= latest => break,
                    Some((earliest, _)) if at + TAG_HEADER_LEN < earliest => {
                        // A keyframe needs no tag before it.
                        let seen = if keyframe(&tag) { &[][..] } else { &before[..] };
                        let tag = (at, tag.kind, tag.total_len());
                        let settled = earliest_of(next + 1);
                        found[next] =
                            Some(Straddle::around(&view, (seen, &sequence), tag, settled));
                    }
                    _ => {}
                }
                next += 1;
            }
            before.push(Seen {
                at,
                kind: tag.kind,
                keyframe: keyframe(&tag),
            });
            at += tag.total_len();
        }
        found
    }

    /// The probe's tags for the straddling tag at `at`: the sequence headers of its
    /// kind, the tags `before` it that a decoder needs, itself and two after (counting
    /// those that reach past `settled`, where the next join's split may lie).
    fn around<S: ByteSource + ?Sized>(
        view: &S,
        (before, sequence): (&[Seen], &[(u64, u64)]),
        (at, kind, len): (u64, u8, u64),
        settled: u64,
    ) -> Straddle {
        let mut window = window_before(view, before, kind, at);
        window.push((at, len));
        let (mut next, mut after, mut unsettled) = (at + len, 0, 0);
        while after < TAGS_AFTER && next - at <= MAX_WINDOW {
            let Some(tag) = tag_at(view, next) else { break };
            if tag.kind == kind {
                window.push((next, tag.total_len()));
                after += 1;
                unsettled += usize::from(next + tag.total_len() > settled);
            }
            next += tag.total_len();
        }
        let mut tags: Vec<(u64, u64)> = (sequence.iter())
            .filter(|&&(pos, _)| kind_at(view, pos) == Some(kind) && pos < window[0].0)
            .copied()
            .collect();
        tags.extend(window);
        Straddle {
            kind,
            tags,
            tag: (at, len),
            unsettled,
        }
    }

    /// The same straddle without the tags after it that reach into the next join's
    /// unsettled bytes, if it has any: a second opinion when every probe fails alike
    /// because of what such a tag reads past an undecided split (the right split's
    /// probe too), at the price of fewer frames to tell the splits apart by.
    pub fn settled(&self) -> Option<Straddle> {
        (self.unsettled > 0).then(|| Straddle {
            kind: self.kind,
            tags: self.tags[..self.tags.len() - self.unsettled].to_vec(),
            tag: self.tag,
            unsettled: 0,
        })
    }

    /// Leaves the straddling tag of join `j` out of `file` when no split of it can be
    /// decided: the file then ends its piece before the tag and goes on right after it,
    /// so that no byte of whatever lies around the unknown split (another file's, or a
    /// fragment wholly inside the tag that was never found) is served as the
    /// recording's. The join says which time range is missing. False if the tag does
    /// not lie within the two pieces around the join.
    pub fn leave_out<S: ByteSource + ?Sized>(&self, src: &S, file: &mut Carved, j: usize) -> bool {
        let view = Extents::new(src, &file.extents);
        let (at, len) = self.tag;
        let Some(join) = file.joins.get(j) else {
            return false;
        };
        let Some(split) = piece_end_in_file(&file.extents, join.from) else {
            return false;
        };
        let Some(k) = file.extents.iter().position(|e| e.0 + e.1 == join.from) else {
            return false;
        };
        let piece_start = split - file.extents[k].1;
        let after = file.extents.get(k + 1).map_or(0, |e| e.1);
        if at < piece_start || at + len > split + after || k + 1 >= file.extents.len() {
            return false;
        }
        let (mut here, mut next) = ([0u8; 8], [0u8; 8]);
        if !view.read_at(at, &mut here) || !view.read_at(at + len, &mut next) {
            return false;
        }
        let ts = |h: [u8; 8]| u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let (from, to) = (join.from - (split - at), join.to + (at + len - split));
        file.extents[k].1 -= split - at;
        file.extents[k + 1] = (to, after - (at + len - split));
        let join = &mut file.joins[j];
        (join.from, join.earliest_from, join.to) = (from, from, to);
        join.lost_ms = Some((ts(here), ts(next)));
        file.tags = file.tags.saturating_sub(1);
        true
    }

    /// Where the straddling tag ends in the file.
    pub fn tag_end_in_file(&self) -> Option<u64> {
        self.tag.0.checked_add(self.tag.1)
    }

    /// The probe for splitting join `j` of `file` at `split` (a source offset in the
    /// join's range): the FLV file a decoder is given. `None` if bytes are unreadable.
    pub fn probe<S: ByteSource + ?Sized>(
        &self,
        src: &S,
        file: &Carved,
        j: usize,
        split: u64,
    ) -> Option<Vec<u8>> {
        let mut moved = file.clone();
        move_split(&mut moved, j, split, split);
        self.probe_through(src, &moved.extents)
    }

    /// The probe read through `extents` (a layout of the same length as the file's).
    pub fn probe_through<S: ByteSource + ?Sized>(
        &self,
        src: &S,
        extents: &[(u64, u64)],
    ) -> Option<Vec<u8>> {
        let view = Extents::new(src, extents);
        let total: u64 = self.tags.iter().map(|t| t.1).sum();
        let mut out = vec![0u8; HEADER_LEN + usize::try_from(total).ok()?];
        let flags = if self.kind == 8 { 4 } else { 1 };
        out[..HEADER_LEN].copy_from_slice(&[b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]);
        let mut at = HEADER_LEN;
        for &(pos, len) in &self.tags {
            let n = len as usize;
            if n < 15 || !view.read_at(pos, &mut out[at..at + n]) {
                return None;
            }
            // The PreviousTagSize the header implies: where a layout under test puts
            // wrong bytes there, FLV demuxers would drop the whole tag unjudged.
            let size = u32::try_from(len - 4).ok()?;
            out[at + n - 4..at + n].copy_from_slice(&size.to_be_bytes());
            at += n;
        }
        Some(out)
    }
}

/// The layout of `file` with a fragment `inner` (source offset, length) inside the
/// straddling tag of join `j`: the piece before ends at `a_end` (a source offset in
/// it), then `inner`, then the piece after starts where the file's length says. `None`
/// if that does not fit the pieces.
pub fn with_inner(
    file: &Carved,
    j: usize,
    a_end: u64,
    inner: (u64, u64),
) -> Option<Vec<(u64, u64)>> {
    let join = file.joins.get(j)?;
    let k = file.extents.iter().position(|e| e.0 + e.1 == join.from)?;
    let (start, _) = file.extents[k];
    let (to, after) = *file.extents.get(k + 1)?;
    if !(start < a_end && a_end < join.from) {
        return None;
    }
    // The piece after starts where the bytes the inner fragment does not hold resume.
    let b_start = (to + a_end + inner.1).checked_sub(join.from)?;
    let end = to + after;
    if b_start >= end {
        return None;
    }
    let mut extents = file.extents.clone();
    extents[k] = (start, a_end - start);
    extents[k + 1] = (b_start, end - b_start);
    extents.insert(k + 1, inner);
    Some(extents)
}

/// Position in the file where the piece of `extents` ending at source offset `end`
/// ends: where a join's split lies in the file.
pub fn piece_end_in_file(extents: &[(u64, u64)], end: u64) -> Option<u64> {
    let mut at = 0;
    extents.iter().find_map(|&(offset, len)| {
        at += len;
        (offset + len == end).then_some(at)
    })
}

/// A tag met on the way to the straddling one.
struct Seen {
    at: u64,
    kind: u8,
    keyframe: bool,
}

/// The tags of kind `kind` a probe holds before the straddling tag at `at`: video from
/// the last keyframe, audio the last few.
fn window_before<S: ByteSource + ?Sized>(
    view: &S,
    before: &[Seen],
    kind: u8,
    at: u64,
) -> Vec<(u64, u64)> {
    let tags: Vec<&Seen> = before
        .iter()
        .filter(|t| t.kind == kind && at - t.at <= MAX_WINDOW)
        .collect();
    let first = if kind == 9 {
        tags.iter().rposition(|t| t.keyframe).unwrap_or(tags.len())
    } else {
        tags.len().saturating_sub(AUDIO_BEFORE)
    };
    let chosen = tags[first..].iter().map(|t| t.at);
    chosen
        .filter_map(|pos| Some((pos, tag_at(view, pos)?.total_len())))
        .collect()
}

/// A video keyframe: decodes without the tags before it.
fn keyframe(tag: &Tag) -> bool {
    tag.kind == 9 && tag.codec >> 4 == 1
}

/// The kind of the tag at `pos`.
fn kind_at<S: ByteSource + ?Sized>(view: &S, pos: u64) -> Option<u8> {
    tag_at(view, pos).map(|t| t.kind)
}

/// A carved file's bytes in file order, read through its extents.
struct Extents<'a, S: ?Sized> {
    src: &'a S,
    /// `(position in the file, source offset, length)` of each extent.
    pieces: Vec<(u64, u64, u64)>,
}

impl<'a, S: ByteSource + ?Sized> Extents<'a, S> {
    fn new(src: &'a S, extents: &[(u64, u64)]) -> Self {
        let mut at = 0;
        let pieces = extents
            .iter()
            .map(|&(offset, len)| {
                at += len;
                (at - len, offset, len)
            })
            .collect();
        Extents { src, pieces }
    }
}

impl<S: ByteSource + ?Sized> ByteSource for Extents<'_, S> {
    fn len(&self) -> u64 {
        self.pieces.last().map_or(0, |p| p.0 + p.2)
    }

    fn read_at(&self, mut offset: u64, mut buf: &mut [u8]) -> bool {
        while !buf.is_empty() {
            let Some(p) = self
                .pieces
                .iter()
                .find(|p| (p.0..p.0 + p.2).contains(&offset))
            else {
                return false;
            };
            let within = offset - p.0;
            let n = (p.2 - within).min(buf.len() as u64) as usize;
            if !self.src.read_at(p.1 + within, &mut buf[..n]) {
                return false;
            }
            buf = &mut buf[n..];
            offset += n as u64;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carve::flv::Status;
    use crate::carve::join::Join;

    /// A tag of `kind` with `size` data bytes (first byte `codec`) at time `ts`.
    fn tag(kind: u8, codec: u8, size: u32, ts: u8) -> Vec<u8> {
        let s = size.to_be_bytes();
        let mut t = vec![kind, s[1], s[2], s[3], 0, 0, ts, 0, 0, 0, 0, codec];
        t.extend((1..size).map(|i| (i * 7 + 1) as u8));
        t.extend((size + 11).to_be_bytes());
        t
    }

    #[test]
    fn an_inner_fragment_sits_between_the_pieces_and_keeps_the_length() {
        let mut file = carved(
            vec![(0, 4096), (20480, 8192)],
            Join::straddling(1024, 4096, 20480),
        );
        // The piece ends at 2048; 1024 bytes at 9216 follow; the next piece then starts
        // 1024 bytes before where the join put it.
        let extents = with_inner(&file, 0, 2048, (9216, 1024)).unwrap();
        assert_eq!(extents, vec![(0, 2048), (9216, 1024), (19456, 9216)]);
        let total = |e: &[(u64, u64)]| e.iter().map(|p| p.1).sum::<u64>();
        assert_eq!(total(&extents), total(&file.extents));
        // An inner fragment longer than what follows the split does not fit.
        assert!(with_inner(&file, 0, 2048, (9216, 2048 + 8192 + 16384)).is_none());
        file.joins.clear();
        assert!(with_inner(&file, 0, 2048, (9216, 1024)).is_none());
    }

    fn carved(extents: Vec<(u64, u64)>, join: Join) -> Carved {
        Carved {
            offset: 0,
            extents,
            status: Status::Reassembled,
            gaps: Vec::new(),
            joins: vec![join],
            tags: 4,
            duration_ms: 120,
            created_s: None,
            has_audio: false,
            has_video: true,
            headless: None,
        }
    }

    #[test]
    fn a_second_opinion_leaves_out_tags_that_reach_into_the_next_join() {
        let mut rec = vec![b'F', b'L', b'V', 1, 1, 0, 0, 0, 9, 0, 0, 0, 0];
        rec.extend(tag(9, 0x17, 100, 0));
        rec.extend(tag(9, 0x27, 3000, 40));
        rec.extend(tag(9, 0x27, 50, 80));
        let long = tag(9, 0x27, 4000, 120);
        let long_at = rec.len() as u64;
        rec.extend(&long);
        rec.extend(tag(9, 0x27, 50, 160));
        rec.extend(tag(9, 0x27, 50, 200));
        // Three pieces: file bytes 0..2048 at 0, 2048..5120 at 8192, the rest at 20480.
        // The second join's split may lie anywhere from file byte 4608 on, inside the
        // long tag after the first join's straddling tag.
        let mut src: Vec<u8> = (0..20480u32).map(|i| (i * 31 % 251) as u8).collect();
        src[..2048].copy_from_slice(&rec[..2048]);
        src[8192..11264].copy_from_slice(&rec[2048..5120]);
        src.extend_from_slice(&rec[5120..]);
        let mut file = carved(
            vec![(0, 2048), (8192, 3072), (20480, rec.len() as u64 - 5120)],
            Join::straddling(512, 2048, 8192),
        );
        file.joins.push(Join::straddling(10752, 11264, 20480));
        assert!(long_at < 4608 && long_at + long.len() as u64 > 4608);
        let straddles = Straddle::find_all(&src[..], &file);
        let first = straddles[0]
            .as_ref()
            .expect("the tag across the first join");
        let settled = first
            .settled()
            .expect("its second tag after reaches past 4608");
        let probe = |s: &Straddle| s.probe(&src[..], &file, 0, 2048).unwrap().len();
        assert_eq!(probe(first) - probe(&settled), long.len());
        assert_eq!(settled.settled(), None);
        let last = straddles[1]
            .as_ref()
            .expect("the long tag across the second join");
        assert_eq!(last.settled(), None, "no join after the last");
    }

    #[test]
    fn a_split_inside_the_previous_tag_size_still_has_its_straddling_tag() {
        let mut rec = vec![b'F', b'L', b'V', 1, 1, 0, 0, 0, 9, 0, 0, 0, 0];
        rec.extend(tag(9, 0x17, 100, 0));
        let at = rec.len();
        // Ends at 2049 with its PreviousTagSize: the latest split, 2048, cuts that.
        let straddling = tag(9, 0x27, 2049 - at as u32 - 15, 40);
        rec.extend(&straddling);
        rec.extend(tag(9, 0x27, 50, 80));
        rec.extend(tag(9, 0x27, 50, 120));
        // The fragment really ends at 1024; other bytes follow it up to 2048.
        let mut src: Vec<u8> = (0..9216u32).map(|i| (i * 31 % 251) as u8).collect();
        src[..1024].copy_from_slice(&rec[..1024]);
        src.extend_from_slice(&rec[1024..]);
        let file = carved(
            vec![(0, 2048), (10240, rec.len() as u64 - 2048)],
            Join::straddling(512, 2048, 10240),
        );
        let straddles = Straddle::find_all(&src[..], &file);
        let straddle = straddles[0].as_ref().expect("the tag across the split");
        let probe = straddle.probe(&src[..], &file, 0, 1024).unwrap();
        let data = &straddling[..straddling.len() - 4];
        assert!(probe.windows(data.len()).any(|w| w == data));
    }

    #[test]
    fn a_tag_left_out_leaves_the_rest_of_the_file_whole() {
        let mut rec = vec![b'F', b'L', b'V', 1, 1, 0, 0, 0, 9, 0, 0, 0, 0];
        rec.extend(tag(9, 0x17, 100, 0));
        let straddle_at = rec.len() as u64;
        rec.extend(tag(9, 0x27, 3000, 40));
        let straddle_end = rec.len() as u64;
        rec.extend(tag(9, 0x27, 50, 80));
        rec.extend(tag(9, 0x27, 50, 120));
        // Cut at 2048: the rest lies at 8192 on the source, random-looking bytes between.
        let mut src: Vec<u8> = (0..8192u32).map(|i| (i * 31 % 251) as u8).collect();
        src[..2048].copy_from_slice(&rec[..2048]);
        src.extend_from_slice(&rec[2048..]);
        let rest = rec.len() as u64 - 2048;
        let mut file = carved(
            vec![(0, 2048), (8192, rest)],
            Join::straddling(512, 2048, 8192),
        );
        let straddles = Straddle::find_all(&src[..], &file);
        let straddle = straddles[0].as_ref().expect("the tag across the join");
        assert!(straddle.probe(&src[..], &file, 0, 1024).is_some());
        assert!(straddle.leave_out(&src[..], &mut file, 0));
        let after = 8192 + straddle_end - 2048;
        assert_eq!(
            file.extents,
            vec![(0, straddle_at), (after, rec.len() as u64 - straddle_end)]
        );
        assert_eq!(file.joins[0].lost_ms, Some((40, 80)));
        let served: Vec<u8> = (file.extents.iter())
            .flat_map(|&(o, l)| src[o as usize..(o + l) as usize].to_vec())
            .collect();
        let mut want = rec[..straddle_at as usize].to_vec();
        want.extend_from_slice(&rec[straddle_end as usize..]);
        assert_eq!(served, want);
    }
}
