//! Ambiguous splits decided by decoding, file by file: each open join's candidate
//! splits judged by ffmpeg ([`super::decoder`]), a fragment lying wholly inside a
//! straddling tag searched for when none decodes, and the tag left out when nothing
//! settles the split.

use rayon::prelude::*;

use super::ReadAhead;
use super::decoder::Decoder;
use crate::carve::ByteSource;
use crate::carve::decoding::{self, Verdict};
use crate::carve::flv::Carved;
use crate::carve::join::{Decided, Join, OpenSplit};
use crate::carve::probe::{self, Straddle};
use crate::carve::splits::move_split;
use crate::index::FlvEntry;
use crate::source::Source;

/// A join of `file` may still lie at several block boundaries.
pub fn has_open_split(file: &Carved) -> bool {
    file.joins.iter().any(open)
}

/// The join's split may still lie at several block boundaries.
fn open(j: &Join) -> bool {
    j.earliest_from < j.from && j.lost_ms.is_none()
}

/// Decides by decoding every join of `flv` whose split the straddling tag leaves open
/// (on every core), for sources whose fragments start at multiples of `units[source]`.
/// A fragment lying wholly inside a straddling tag is looked for only among bytes no
/// carved file holds, so it is looked for in a second round, once the first has
/// settled every other split: the files left with an open split start over, with it.
pub fn decide_splits(flv: &mut [FlvEntry], sources: &[Source], units: &[u64], decoder: &Decoder) {
    let before: Vec<Option<Carved>> = (flv.iter())
        .map(|e| has_open_split(&e.carved).then(|| e.carved.clone()))
        .collect();
    let left_open: Vec<bool> = flv
        .par_iter_mut()
        .zip(&before)
        .map(|(e, before)| {
            let (source, unit) = (&sources[e.source as usize], units[e.source as usize]);
            before.is_some() && decide_file(&mut e.carved, (source, None), unit, decoder)
        })
        .collect();
    let claimed = Claimed::new(flv, sources.len());
    flv.par_iter_mut()
        .zip(before)
        .zip(left_open)
        .filter_map(|((e, before), left_open)| Some((e, before.filter(|_| left_open)?)))
        .for_each(|(e, before)| {
            let (source, unit) = (&sources[e.source as usize], units[e.source as usize]);
            let mut again = before;
            let claimed = claimed.of(e.source);
            decide_file(&mut again, (source, Some(claimed)), unit, decoder);
            e.carved = again;
        });
}

/// Decides the open splits of `file` one join after the other, looking for fragments
/// inside straddling tags when `claimed` (what carved files hold) is given; leaves the
/// tag out where a split stays open. True if one did.
fn decide_file(
    file: &mut Carved,
    (source, claimed): (&Source, Option<&[(u64, u64)]>),
    unit: u64,
    decoder: &Decoder,
) -> bool {
    let reader = ReadAhead::new(source);
    let mut straddles = Straddle::find_all(&reader, file);
    let (mut j, mut left_open) = (0, false);
    while j < straddles.len() {
        let Some(straddle) = straddles[j].take() else {
            j += 1;
            continue;
        };
        decide(file, (j, &straddle), source, unit, decoder);
        let inner = |file: &mut Carved, claimed| {
            find_inner(file, (j, &straddle), (source, claimed), unit, decoder)
        };
        if open(&file.joins[j]) && claimed.is_some_and(|c| inner(file, c)) {
            // Two joins now where there was one.
            straddles = Straddle::find_all(&reader, file);
            j += 2;
            continue;
        }
        // A split left open breaks the frames after it: leave its tag out before the
        // next join's probes decode them (the file shrinks, so the later tags are
        // found again).
        if open(&file.joins[j]) {
            left_open = true;
            if straddle.leave_out(&reader, file, j) {
                straddles = Straddle::find_all(&reader, file);
            }
        }
        j += 1;
    }
    left_open
}

/// Leaves out the straddling tag of every join whose split is still open (see
/// [`Straddle::leave_out`]): no byte around an unknown split is served.
pub fn leave_out_open_splits(flv: &mut [FlvEntry], sources: &[Source]) {
    for e in flv.iter_mut().filter(|e| has_open_split(&e.carved)) {
        let reader = ReadAhead::new(&sources[e.source as usize]);
        let straddles = Straddle::find_all(&reader, &e.carved);
        // From the last join back: leaving a tag out moves the file positions after it.
        for (j, straddle) in straddles.iter().enumerate().rev() {
            let Some(straddle) = straddle.as_ref().filter(|_| open(&e.carved.joins[j])) else {
                continue;
            };
            if !straddle.leave_out(&reader, &mut e.carved, j) {
                log::debug!(
                    "the tag across the join at {} stays in",
                    e.carved.joins[j].from
                );
            }
        }
    }
}

/// Decides join `j` of `file` (whose probes come from `straddle`), if its split is
/// open.
fn decide(
    file: &mut Carved,
    (j, straddle): (usize, &Straddle),
    source: &Source,
    unit: u64,
    decoder: &Decoder,
) {
    let join = &file.joins[j];
    if !open(join) || unit == 0 {
        return;
    }
    let (from, n) = (join.from, (join.from - join.earliest_from) / unit + 1);
    let split = |d: usize| from - d as u64 * unit;
    let reader = ReadAhead::new(source);
    let seen = std::sync::Mutex::new(Vec::new());
    let search = |straddle: &Straddle| {
        decoding::search(n as usize, |ds: &[usize]| {
            let verdicts = judge(decoder, ds, |d| straddle.probe(&reader, file, j, split(d)));
            for (d, verdict) in ds.iter().zip(&verdicts) {
                log::trace!("join at {from}, split at {}: {verdict:?}", split(*d));
            }
            let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.extend(ds.iter().zip(&verdicts).map(|(d, v)| (split(*d), *v)));
            verdicts
        })
    };
    let found = search(straddle).or_else(|| search(&straddle.settled()?));
    let Some(d) = found else {
        log::debug!("split of the join at {from} left open: decoding favours none of {n} splits");
        let seen = seen.into_inner().unwrap_or_else(|e| e.into_inner());
        file.joins[j].decided = Some(Decided::Open(open_split(&file.joins[j], n, seen)));
        return;
    };
    log::debug!(
        "split of the join at {from} decided by decoding: {} of {n} splits",
        split(d)
    );
    move_split(file, j, split(d), split(d));
    file.joins[j].decided = Some(Decided::Split(n as u32));
}

/// What decoding saw of the `n` splits of `join` it could not settle (`seen`: each
/// split decoded, with its verdict, in any order and maybe twice).
fn open_split(join: &Join, n: u64, mut seen: Vec<(u64, Option<Verdict>)>) -> OpenSplit {
    seen.sort_unstable_by_key(|&(split, _)| split);
    seen.dedup_by_key(|&mut (split, _)| split);
    let clean = seen.iter().filter(|(_, v)| v.is_some_and(|v| v.clean()));
    OpenSplit {
        range: (join.earliest_from, join.from),
        splits: n as u32,
        tried: seen.len() as u32,
        clean: clean.map(|&(split, _)| split).collect(),
    }
}

/// How far past a fragment's end a fragment lying wholly inside its straddling tag is
/// looked for.
const INNER_REACH: u64 = 4 << 20;
/// Sector boundaries (outside every carved file) tried as that fragment's start, the
/// nearest first: each costs a decode.
const INNER_CANDIDATES: usize = 256;
/// Once a start fits, how many of the next are tried too: a second that fits makes
/// the fragment ambiguous, and none is taken.
const INNER_TRIES: usize = 4;
/// Starts whose fragment length is searched for at most (see [`inner_starts`]): a
/// join whose tag holds no fragment would otherwise search every start that decodes a
/// little further by chance (woodblock seed 34: 74 of them, 3.5 minutes).
const INNER_LENGTHS: usize = 20;
/// Starts from which the frame decodes furthest that are tried before the nearest.
const INNER_FURTHEST: usize = 4;
/// Starts judged together: two full ffmpeg runs, one per core here, and a bound on
/// the probes held at once.
const INNER_CHUNK: usize = 48;

/// Splits later than where the search found the plateau's end that are checked for
/// an earlier end of it.
const PLATEAU_SLACK: usize = 8;

/// When no split of join `j` decodes, a fragment may lie wholly inside the straddling
/// tag (a keyframe of 200 KB over fragments of a few KB): no tag header marks it. The
/// splits past the fragment's true end all break at one macroblock (what followed the
/// fragment); where that stops is its end. The inner fragment starts at the nearest
/// unclaimed sector boundary from which the frame decodes further ([`inner_fits`]), and
/// its length is the one at which the whole frame decodes ([`decoding::search`] again).
/// True if found: the join becomes two.
fn find_inner(
    file: &mut Carved,
    (j, straddle): (usize, &Straddle),
    (source, claimed): (&Source, &[(u64, u64)]),
    unit: u64,
    decoder: &Decoder,
) -> bool {
    let reader = ReadAhead::new(source);
    let join = file.joins[j].clone();
    let split = |d: usize| join.from - d as u64 * unit;
    let probe_split = |d: usize| straddle.probe(&reader, file, j, split(d));
    let Some(plateau) = probe_split(0).and_then(|p| decoder.judge(&p)?.first_error) else {
        return false;
    };
    let on_plateau = |ds: &[usize]| -> Option<Vec<bool>> {
        let verdicts = judge(decoder, ds, probe_split).into_iter();
        Some(
            verdicts
                .map(|v| v.is_some_and(|v| v.first_error == Some(plateau)))
                .collect(),
        )
    };
    let on = |d: usize| on_plateau(&[d]).is_some_and(|v| v[0]);
    // The straddling tag bounds the splits of a plain join; with a fragment inside it
    // the piece may end earlier: anywhere after its start.
    let tag_splits = ((join.from - join.earliest_from) / unit + 1) as usize;
    if tag_splits < 2 {
        return false;
    }
    let earliest_on = on(tag_splits - 1);
    let n = match earliest_on {
        true => piece_splits(file, &join, unit),
        false => tag_splits,
    };
    // The earliest split, judged once: the piece's own only if it is another.
    if n < 2 || (earliest_on && (n == tag_splits || on(n - 1))) {
        return false;
    }
    let Some((mut lo, mut hi)) = decoding::boundary(0, n - 1, on_plateau) else {
        return false;
    };
    // The run of splits on the plateau from the latest one on ends at the fragment's
    // end; a too early split may land on the plateau too (the decoder notices the
    // wrong bytes late, or by chance), and the search may have met such a one. Each
    // round moves `lo` back: it ends.
    while lo > 0 {
        let window: Vec<usize> = (lo.saturating_sub(PLATEAU_SLACK)..=lo).collect();
        let Some(k) = on_plateau(&window).and_then(|on| on.iter().position(|on| !on)) else {
            break;
        };
        (lo, hi) = (window[k].saturating_sub(1), window[k]);
    }
    let Some(file_end) = straddle.tag_end_in_file() else {
        return false;
    };
    let Some(piece_end) = probe::piece_end_in_file(&file.extents, join.from) else {
        return false;
    };
    log::trace!(
        "join at {}: plateau {plateau:?} ends at split {} / {}",
        join.from,
        split(lo),
        split(hi)
    );
    // The plateau's end, and the splits up to LAG past it: a decoder may notice the
    // wrong bytes a little late (seed 1: H.263 broke at the plateau's macroblock from
    // one block before the fragment's end on).
    let late = (1..=decoding::LAG)
        .filter_map(|k| lo.checked_sub(k))
        .map(split);
    for a_end in [split(hi), split(lo)].into_iter().chain(late) {
        let rest = file_end - (piece_end - (join.from - a_end));
        let at = (j, a_end, rest);
        let on = (straddle, source, claimed);
        let search = inner_fits(file, at, on, unit, (decoder, plateau));
        let [(m, len, extents)] = &search.fits[..] else {
            if search.fits.len() > 1 {
                log::debug!(
                    "join at {}: {} fragments fit inside the tag; none taken",
                    join.from,
                    search.fits.len()
                );
                let fits = search.fits.iter().map(|f| (f.0, f.1)).collect();
                file.joins[j].decided = Some(Decided::InnerAmbiguous(fits));
            }
            continue;
        };
        let (m, len) = (*m, *len);
        log::debug!(
            "join at {}: a fragment inside the tag at {m} ({len} bytes)",
            join.from
        );
        // The piece after the inner fragment, as the layout placed it.
        let after = extents
            .iter()
            .position(|e| e.0 == m)
            .and_then(|k| extents.get(k + 1));
        let Some(&(b_start, _)) = after else {
            continue;
        };
        file.extents = extents.clone();
        let first = &mut file.joins[j];
        (first.from, first.earliest_from, first.to) = (a_end, a_end, m);
        first.decided = Some(Decided::Inner {
            starts: search.starts,
            checked: search.checked,
        });
        let mut second = first.clone();
        (second.from, second.earliest_from, second.to) = (m + len, m + len, b_start);
        file.joins.insert(j + 1, second);
        return true;
    }
    false
}

/// What the search for a fragment inside a tag found: the fragments that fit, the
/// starts judged, and how many were length-searched after the first fit.
struct InnerSearch {
    fits: Vec<InnerFit>,
    starts: u32,
    checked: u32,
}

/// The fragments inside the tag that make its frame decode: of the starts from which
/// the frame decodes past the plateau ([`inner_starts`]), the first that fits among
/// the first [`INNER_LENGTHS`], and any of the next [`INNER_TRIES`] that fit too (then
/// the fragment is ambiguous).
fn inner_fits(
    file: &Carved,
    at: (usize, u64, u64),
    (straddle, source, claimed): (&Straddle, &Source, &[(u64, u64)]),
    unit: u64,
    (decoder, plateau): (&Decoder, (u32, u32)),
) -> InnerSearch {
    let candidates = inner_candidates(source, at.1, unit, claimed);
    let mut search = InnerSearch {
        fits: Vec::new(),
        starts: candidates.len() as u32,
        checked: 0,
    };
    let starts = inner_starts(
        file,
        at,
        &candidates,
        (straddle, source),
        (decoder, plateau),
    );
    for m in starts.into_iter().take(INNER_LENGTHS) {
        if !search.fits.is_empty() {
            if search.checked as usize == INNER_TRIES {
                break;
            }
            search.checked += 1;
        }
        if let Some((len, extents)) = inner_length(file, at, m, (straddle, source), unit, decoder) {
            search.fits.push((m, len, extents));
        }
    }
    search
}

/// A fragment inside a straddling tag that makes its frame decode: its start, its
/// length and the file's pieces with it.
type InnerFit = (u64, u64, Vec<(u64, u64)>);

/// The length of a fragment inside the tag starting at `m`, and the file's pieces with
/// it: the one sector multiple at which the whole frame decodes
/// ([`decoding::search`]).
fn inner_length(
    file: &Carved,
    (j, a_end, rest): (usize, u64, u64),
    m: u64,
    (straddle, source): (&Straddle, &Source),
    unit: u64,
    decoder: &Decoder,
) -> Option<(u64, Vec<(u64, u64)>)> {
    // It ends on a sector boundary like every fragment.
    let (n_len, longest) = ((rest / unit) as usize, rest / unit * unit);
    let layout = |d: usize| probe::with_inner(file, j, a_end, (m, longest - d as u64 * unit));
    let reader = ReadAhead::new(source);
    let d = decoding::search(n_len, |ds: &[usize]| {
        judge(decoder, ds, |d| {
            straddle.probe_through(&reader, &layout(d)?)
        })
    })?;
    Some((longest - d as u64 * unit, layout(d)?))
}

/// Splits of join `j` from its latest back to just after the start of the piece it
/// ends.
fn piece_splits(file: &Carved, join: &Join, unit: u64) -> usize {
    let start = file
        .extents
        .iter()
        .find(|e| e.0 + e.1 == join.from)
        .map_or(join.from, |e| e.0);
    ((join.from - start) / unit) as usize
}

/// The first [`INNER_CANDIDATES`] sector boundaries within [`INNER_REACH`] past
/// `a_end` that lie outside every carved file (`claimed`, sorted, disjoint) and hold
/// something other than zeros: where a fragment inside the tag may start.
fn inner_candidates(source: &Source, a_end: u64, unit: u64, claimed: &[(u64, u64)]) -> Vec<u64> {
    let mut block = vec![0u8; unit as usize];
    let reader = ReadAhead::new(source);
    let mut found = Vec::new();
    let mut m = a_end + unit;
    while m <= a_end + INNER_REACH && found.len() < INNER_CANDIDATES {
        let k = claimed.partition_point(|&(_, end)| end <= m);
        match claimed.get(k) {
            Some(&(start, end)) if start <= m => m = end.next_multiple_of(unit),
            _ => {
                if reader.read_at(m, &mut block) && block.iter().any(|&b| b != 0) {
                    found.push(m);
                }
                m += unit;
            }
        }
    }
    found
}

/// The `starts` (see [`inner_candidates`]) from which the straddling frame
/// decodes further than where every later split breaks (`plateau`): the
/// [`INNER_FURTHEST`] decoding furthest, then the rest nearest first. How far is only
/// a hint (a decoder that resynchronizes reports errors late), and so is how near:
/// random bytes right after the fragment may decode past the plateau by chance (seed
/// 1: 29 starts nearer than the fragment did, a few macroblocks each).
fn inner_starts(
    file: &Carved,
    (j, a_end, rest): (usize, u64, u64),
    starts: &[u64],
    (straddle, source): (&Straddle, &Source),
    (decoder, plateau): (&Decoder, (u32, u32)),
) -> Vec<u64> {
    let reader = ReadAhead::new(source);
    // A chunk at a time: each probe holds a keyframe's window.
    let verdicts = starts.chunks(INNER_CHUNK).flat_map(|chunk| {
        judge(decoder, chunk, |m| {
            straddle.probe_through(&reader, &probe::with_inner(file, j, a_end, (m, rest))?)
        })
    });
    let mut reached: Vec<((u32, u32), u64)> = (verdicts.zip(starts.iter().copied()))
        .filter_map(|(v, m)| {
            let v = v?;
            let reach = match v.first_error {
                _ if v.clean() => (u32::MAX, u32::MAX),
                at => at.unwrap_or((0, 0)),
            };
            further(reach, plateau).then_some((reach, m))
        })
        .collect();
    reached.sort_unstable_by_key(|&(_, m)| m);
    let mut furthest = reached.clone();
    furthest.sort_by_key(|&(reach, _)| std::cmp::Reverse(reach));
    log::trace!(
        "inner after {a_end}: {} starts decode past the plateau, nearest {:?}, furthest {:?}",
        reached.len(),
        &reached[..reached.len().min(INNER_TRIES)],
        &furthest[..furthest.len().min(INNER_TRIES)]
    );
    let top: Vec<u64> = (furthest.iter().take(INNER_FURTHEST))
        .map(|&(_, m)| m)
        .collect();
    let rest = reached.iter().map(|&(_, m)| m).filter(|m| !top.contains(m));
    top.iter().copied().chain(rest).collect()
}

/// The source ranges carved files certainly hold, per source (sorted, overlaps
/// merged): a fragment inside another file's straddling tag is not among them.
struct Claimed {
    by_source: Vec<Vec<(u64, u64)>>,
}

impl Claimed {
    fn new(flv: &[FlvEntry], sources: usize) -> Claimed {
        let mut by_source = vec![Vec::new(); sources];
        for e in flv {
            let Some(list) = by_source.get_mut(e.source as usize) else {
                continue;
            };
            // A piece ending at an open split holds for sure only its bytes up to the
            // earliest split.
            list.extend(e.carved.extents.iter().map(|&(at, len)| {
                let end = at + len;
                let open = e.carved.joins.iter().find(|j| j.from == end && open(j));
                (at, open.map_or(end, |j| j.earliest_from.max(at)))
            }));
        }
        for list in &mut by_source {
            list.sort_unstable();
            let mut merged: Vec<(u64, u64)> = Vec::with_capacity(list.len());
            for &(start, end) in list.iter() {
                match merged.last_mut() {
                    Some(last) if start <= last.1 => last.1 = last.1.max(end),
                    _ => merged.push((start, end)),
                }
            }
            *list = merged;
        }
        Claimed { by_source }
    }

    fn of(&self, source: u32) -> &[(u64, u64)] {
        self.by_source
            .get(source as usize)
            .map_or(&[], Vec::as_slice)
    }
}

/// Verdicts on the probes `probe` makes of `items`, judged together (`None` where no
/// probe could be made or judged).
fn judge<T: Copy>(
    decoder: &Decoder,
    items: &[T],
    probe: impl Fn(T) -> Option<Vec<u8>>,
) -> Vec<Option<Verdict>> {
    let probes: Vec<Option<Vec<u8>>> = items.iter().map(|&item| probe(item)).collect();
    let made: Vec<&[u8]> = probes.iter().flatten().map(Vec::as_slice).collect();
    let mut verdicts = decoder.judge_all(&made).into_iter();
    let judged = probes
        .iter()
        .map(|p| p.as_ref().and_then(|_| verdicts.next().flatten()));
    judged.collect()
}

/// Macroblock `a` lies at least a row past `b` (30 macroblocks for decoders that count
/// them in one number): by far more than decoding random bytes by chance reaches.
fn further(a: (u32, u32), b: (u32, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 >= b.1.saturating_add(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn further_means_a_row_or_thirty_macroblocks() {
        assert!(further((12, 23), (5, 16)));
        assert!(!further((16, 23), (16, 17)));
        assert!(further((0, 290), (0, 250)));
        assert!(!further((0, 270), (0, 250)));
    }
}
