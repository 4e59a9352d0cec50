//! Ambiguous splits decided by decoding, file by file: each open join's candidate
//! splits judged by ffmpeg ([`super::decoder`]), a fragment lying wholly inside a
//! straddling tag searched for when none decodes, and the tag left out when nothing
//! settles the split.

use rayon::prelude::*;

use super::ReadAhead;
use super::decoder::Decoder;
use crate::carve::ByteSource;
use crate::carve::decoding;
use crate::carve::flv::Carved;
use crate::carve::join::Join;
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
pub fn decide_splits(flv: &mut [FlvEntry], sources: &[Source], units: &[u64], decoder: &Decoder) {
    flv.par_iter_mut()
        .filter(|e| has_open_split(&e.carved))
        .for_each(|e| {
            let source = &sources[e.source as usize];
            let unit = units[e.source as usize];
            let reader = ReadAhead::new(source);
            let mut straddles = Straddle::find_all(&reader, &e.carved);
            let mut j = 0;
            while j < straddles.len() {
                let Some(straddle) = straddles[j].take() else {
                    j += 1;
                    continue;
                };
                decide(&mut e.carved, (j, &straddle), source, unit, decoder);
                if open(&e.carved.joins[j])
                    && find_inner(&mut e.carved, (j, &straddle), source, unit, decoder)
                {
                    // Two joins now where there was one.
                    straddles = Straddle::find_all(&reader, &e.carved);
                    j += 2;
                    continue;
                }
                // A split left open breaks the frames after it: leave its tag out
                // before the next join's probes decode them (the file shrinks, so
                // the later tags are found again).
                if open(&e.carved.joins[j]) && straddle.leave_out(&reader, &mut e.carved, j) {
                    straddles = Straddle::find_all(&reader, &e.carved);
                }
                j += 1;
            }
        });
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
    let search = |straddle: &Straddle| {
        decoding::search(n as usize, |d| {
            let probe = straddle.probe(&ReadAhead::new(source), file, j, split(d))?;
            let verdict = decoder.judge(&probe);
            log::trace!("join at {from}, split at {}: {verdict:?}", split(d));
            verdict
        })
    };
    let found = search(straddle).or_else(|| search(&straddle.settled()?));
    if let Some(d) = found {
        log::debug!(
            "split of the join at {from} decided by decoding: {} of {n} splits",
            split(d)
        );
        move_split(file, j, split(d), split(d));
        file.joins[j].decoded = Some(n as u32);
    } else {
        log::debug!("split of the join at {from} left open: decoding favours none of {n} splits");
    }
}

/// Sector boundaries past a fragment's end searched for a fragment lying wholly inside
/// its straddling tag.
const INNER_REACH: u64 = 64;

/// Splits later than where the bisection found the plateau's end that are checked for
/// an earlier end of it.
const PLATEAU_SLACK: usize = 8;

/// When no split of join `j` decodes, a fragment may lie wholly inside the straddling
/// tag (a keyframe of 200 KB over fragments of a few KB): no tag header marks it. The
/// splits past the fragment's true end all break at one macroblock (what followed the
/// fragment); where that stops is its end. The inner fragment is the one of the next
/// sector boundaries from which the frame decodes furthest, and its length the one at
/// which the whole frame decodes ([`decoding::search`] again). True if found: the join
/// becomes two.
fn find_inner(
    file: &mut Carved,
    (j, straddle): (usize, &Straddle),
    source: &Source,
    unit: u64,
    decoder: &Decoder,
) -> bool {
    let reader = ReadAhead::new(source);
    let join = file.joins[j].clone();
    let n = ((join.from - join.earliest_from) / unit + 1) as usize;
    let split = |d: usize| join.from - d as u64 * unit;
    let judge_split = |d: usize| decoder.judge(&straddle.probe(&reader, file, j, split(d))?);
    let Some(plateau) = judge_split(0).and_then(|v| v.first_error) else {
        return false;
    };
    let on_plateau = |d: usize| judge_split(d).is_some_and(|v| v.first_error == Some(plateau));
    if n < 2 || on_plateau(n - 1) {
        return false;
    }
    let (mut lo, mut hi) = (0, n - 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if on_plateau(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // The run of splits on the plateau from the latest one on ends at the fragment's
    // end; a too early split may land on the plateau too (the decoder notices the
    // wrong bytes late, or by chance), and the bisection may have met such a one.
    // Each round moves `lo` back: it ends.
    while lo > 0
        && let Some(k) = (lo.saturating_sub(PLATEAU_SLACK)..=lo).find(|&k| !on_plateau(k))
    {
        (lo, hi) = (k.saturating_sub(1), k);
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
    for a_end in [split(hi), split(lo)] {
        let rest = file_end - (piece_end - (join.from - a_end));
        let at = (j, a_end, rest);
        let Some(m) = inner_start(file, at, (straddle, source), unit, (decoder, plateau)) else {
            continue;
        };
        // It ends on a sector boundary like every fragment.
        let (n_len, longest) = ((rest / unit) as usize, rest / unit * unit);
        let layout = |d: usize| probe::with_inner(file, j, a_end, (m, longest - d as u64 * unit));
        let found = decoding::search(n_len, |d| {
            let probe = straddle.probe_through(&ReadAhead::new(source), &layout(d)?)?;
            decoder.judge(&probe)
        });
        let Some((d, extents)) = found.and_then(|d| Some((d, layout(d)?))) else {
            continue;
        };
        let len = longest - d as u64 * unit;
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
        file.extents = extents;
        let first = &mut file.joins[j];
        (first.from, first.earliest_from, first.to) = (a_end, a_end, m);
        first.decoded = Some(n as u32);
        let mut second = first.clone();
        (second.from, second.earliest_from, second.to) = (m + len, m + len, b_start);
        second.decoded = Some(n_len as u32);
        file.joins.insert(j + 1, second);
        return true;
    }
    false
}

/// The sector boundary within [`INNER_REACH`] past `a_end` from which the straddling
/// frame decodes furthest past where every later split breaks (`plateau`), if one does
/// so alone.
fn inner_start(
    file: &Carved,
    (j, a_end, rest): (usize, u64, u64),
    (straddle, source): (&Straddle, &Source),
    unit: u64,
    (decoder, plateau): (&Decoder, (u32, u32)),
) -> Option<u64> {
    let mut block = vec![0u8; unit as usize];
    let reader = ReadAhead::new(source);
    let mut reached: Vec<((u32, u32), u64)> = (1..=INNER_REACH)
        .map(|i| a_end + i * unit)
        .filter(|&m| reader.read_at(m, &mut block) && block.iter().any(|&b| b != 0))
        .collect::<Vec<u64>>()
        .into_par_iter()
        .filter_map(|m| {
            let layout = probe::with_inner(file, j, a_end, (m, rest))?;
            let probe = straddle.probe_through(&ReadAhead::new(source), &layout)?;
            let v = decoder.judge(&probe)?;
            let reach = match v.first_error {
                _ if v.clean() => (u32::MAX, u32::MAX),
                at => at.unwrap_or((0, 0)),
            };
            Some((reach, m))
        })
        .collect();
    reached.sort_unstable();
    log::trace!(
        "inner after {a_end}: best {:?}",
        &reached[reached.len().saturating_sub(3)..]
    );
    match reached[..] {
        [.., (second, _), (best, m)] if further(best, plateau) && further(best, second) => Some(m),
        [(best, m)] if further(best, plateau) => Some(m),
        _ => None,
    }
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
