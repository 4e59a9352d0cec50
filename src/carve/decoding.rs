//! Choosing a join's split by decoding: which of the splits a straddling tag allows
//! gives a frame the decoder accepts.
//!
//! Measured on woodblock's layouts (512-byte fragments between random data), the right
//! split is the only one whose probe ([`super::probe`]) decodes without an error line
//! from ffmpeg, or with at least two fewer when a frame near it is damaged anyway,
//! for H.264, Sorenson H.263, AAC and MP3 alike. A join's tag may allow hundreds of
//! splits; video decoders also say at which macroblock they noticed the first error.
//! Every split later than the right one breaks the frame at the same byte (the data
//! that followed the fragment), every earlier one sooner: a binary search finds where
//! that changes, and the splits around it are all decoded.
//!
//! The judge takes several splits at once ([`Judge`]): a decoder that starts slowly
//! judges them together.

/// A decoder's verdict on one probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Error lines the decoder printed: 0 when every frame decodes.
    pub errors: u32,
    /// Where the first error was noticed, in macroblocks (row, then column, in the
    /// order they are coded), for decoders that say.
    pub first_error: Option<(u32, u32)>,
    /// The decoder concealed a frame before it logged any error: it dropped a slice
    /// whole (other data in place of its size or its data; woodblock seed 13). Such a
    /// probe wins nothing by having fewer errors than the others: its frame was not
    /// decoded at all.
    pub dropped: bool,
}

impl Verdict {
    /// The probe decodes without a single error.
    pub fn clean(&self) -> bool {
        self.errors == 0
    }
}

/// Verdicts on the splits asked for, in their order; `None` for one the decoder could
/// not judge.
pub trait Judge: Fn(&[usize]) -> Vec<Option<Verdict>> {}
impl<F: Fn(&[usize]) -> Vec<Option<Verdict>>> Judge for F {}

/// A split that decodes with this many fewer error lines than every other is the one.
const MARGIN: u32 = 2;

/// Up to this many splits, every one is decoded.
const DECODE_ALL: usize = 16;
/// Without error positions to search by, up to this many are decoded, else none.
const DECODE_ALL_BLIND: usize = 96;
/// When the search by error positions finds nothing (they are noisy: H.263 notices a
/// wrong byte late), up to this many are decoded.
const DECODE_ALL_NOISY: usize = 128;
/// Splits just after the right one that may break elsewhere than the later ones: the
/// bytes after them differ from the later splits', and the decoder notices the wrong
/// bytes only some way in (woodblock seed 40: one split after the right one broke at
/// macroblock (2, 10), every later one at (2, 14)).
pub const LAG: usize = 2;
/// Splits judged together in each round of the search.
const SEARCH_WIDTH: usize = 7;
/// Splits decoded on either side of where the search ends (a decoder notices a wrong
/// byte a little after it, so the change may show a few splits late).
const AROUND: usize = 8;

/// The one split of `n` (0 the latest, as the walk took it, `n - 1` the earliest)
/// whose probe `judge` finds clean; `None` if none or several are, or the decoder
/// could not run.
///
/// A split is also refused when the split just after it does not first break where
/// the latest one does: past the right split, every later split leaves the same
/// wrong bytes first (what followed the fragment). When the right split is not among
/// them at all (a fragment lies wholly inside the straddling tag and was never
/// found), random bytes that happen to decode betray themselves that way.
pub fn search(n: usize, judge: impl Judge) -> Option<usize> {
    let judge = Memo::new(judge);
    // The first round: every split, or the two ends.
    let first: Vec<usize> = match n {
        0 => return None,
        _ if n <= DECODE_ALL => (0..n).collect(),
        _ => vec![0, n - 1],
    };
    judge.get_all(&first);
    let latest = judge.get(0)?;
    let plateau = Plateau::of(n, latest, &judge)?;
    let all = |limit: usize| (n <= limit).then(|| pick(0..n, plateau, &judge)).flatten();
    let found = if n <= DECODE_ALL {
        pick(0..n, plateau, &judge)
    } else if latest.clean() || latest.first_error.is_some() {
        bisect(n, plateau, &judge).or_else(|| all(DECODE_ALL_NOISY))
    } else {
        all(DECODE_ALL_BLIND)
    }?;
    breaks_like_the_plateau(found, plateau, &judge).then_some(found)
}

/// Where the splits past the right one break (what followed the fragment): where the
/// latest split does, or, when that one decodes clean (it is the right one, or clean
/// by chance) and the next does not, where the next does. Without it, a split that
/// decodes by chance far from a clean latest one looked as good (woodblock seed 17:
/// the earliest of 21 splits, 10 KB of random bytes in an H.264 frame, decoded clean
/// and was taken).
#[derive(Clone, Copy)]
struct Plateau {
    /// The split it is read from.
    at: usize,
    /// That split's verdict.
    verdict: Verdict,
}

impl Plateau {
    /// The plateau of `n` splits whose latest decodes as `latest`.
    fn of(n: usize, latest: Verdict, judge: &Memo<impl Judge>) -> Option<Plateau> {
        let next = match latest.clean() && n > 1 {
            true => Some(judge.get(1)?),
            false => None,
        };
        // Two clean splits side by side show no plateau (seed 8: the earlier one of
        // such a pair is 512 bytes of random data that decoded).
        Some(match next.filter(|v| !v.clean()) {
            Some(verdict) => Plateau { at: 1, verdict },
            None => Plateau {
                at: 0,
                verdict: latest,
            },
        })
    }

    /// `v` breaks where the plateau does, with no more errors.
    fn holds(&self, v: Verdict) -> bool {
        v.errors <= self.verdict.errors && v.first_error == self.verdict.first_error
    }
}

/// Past the right split, every later split first breaks where the `plateau` does, but
/// for the first [`LAG`] of them, which the decoder may notice a little early or late:
/// true when one of those after `d` (not the plateau's own split, unless it is the one
/// just after `d`) does with none clean before it, or there is none, or no position
/// is known.
fn breaks_like_the_plateau(d: usize, plateau: Plateau, judge: &Memo<impl Judge>) -> bool {
    let Some(room) = d.checked_sub(plateau.at).filter(|&r| r > 0) else {
        return true;
    };
    if plateau.verdict.first_error.is_none() {
        return true;
    }
    // The plateau's own split proves nothing about a split next to it when the latest
    // is clean: that one is the whole plateau.
    let after: Vec<usize> = (1..=LAG.min(room))
        .filter(|&k| (k == 1 && plateau.at == 0) || k < room)
        .collect();
    let verdicts = judge.get_all(&after.iter().map(|k| d - k).collect::<Vec<_>>());
    for v in verdicts {
        match v {
            Some(v) if v.first_error == plateau.verdict.first_error => return true,
            // Broken elsewhere: within the lag, look one further.
            Some(v) if !v.clean() => continue,
            // Clean too, or the decoder could not run: that one is no plateau.
            _ => return false,
        }
    }
    false
}

/// Finds where splits stop breaking as late as the `plateau` does, and decodes the
/// splits around it.
fn bisect(n: usize, plateau: Plateau, judge: &Memo<impl Judge>) -> Option<usize> {
    // As late or later than the right split: clean, or broken exactly where the
    // plateau breaks (what followed the fragment). Not merely later: a too early split
    // may break anywhere, later too, by chance (woodblock seed 35: a band of early
    // splits broke a row past the latest and led the search away from the right one).
    let not_too_early = |ds: &[usize]| -> Option<Vec<bool>> {
        let verdicts = judge.get_all(ds).into_iter();
        verdicts
            .map(|v| v.map(|v| v.clean() || plateau.holds(v)))
            .collect()
    };
    // The earliest split counts as on the plateau only by breaking there: one that
    // decodes clean may do so by chance, and the search then looks between.
    let lo = match judge.get(n - 1).is_some_and(|v| plateau.holds(v)) {
        true => n - 1,
        false => boundary(0, n - 1, not_too_early)?.0,
    };
    pick(
        lo.saturating_sub(AROUND)..(lo + AROUND + 1).min(n),
        plateau,
        judge,
    )
}

/// Where `fits` stops holding between split `lo` (it holds) and `hi` (it does not): the
/// last split that fits and the next, judging [`SEARCH_WIDTH`] splits together per
/// round. `None` if `fits` could not judge.
pub fn boundary(
    mut lo: usize,
    mut hi: usize,
    fits: impl Fn(&[usize]) -> Option<Vec<bool>>,
) -> Option<(usize, usize)> {
    while hi > lo + 1 {
        let step = (hi - lo).div_ceil(SEARCH_WIDTH + 1);
        let splits: Vec<usize> = (lo + step..hi).step_by(step).collect();
        let fit = fits(&splits).filter(|fit| fit.len() == splits.len())?;
        match fit.iter().position(|fits| !fits) {
            Some(0) => hi = splits[0],
            Some(k) => (lo, hi) = (splits[k - 1], splits[k]),
            None => lo = *splits.last()?,
        }
    }
    Some((lo, hi))
}

/// The split in `range` that decodes: the only clean one; of several clean ones, the
/// only one after which later splits break as the `plateau` does (not the latest,
/// which has none after it, when another does); with none clean, the one with at
/// least [`MARGIN`] fewer errors than every other, unless its frame was dropped.
fn pick(
    range: std::ops::Range<usize>,
    plateau: Plateau,
    judge: &Memo<impl Judge>,
) -> Option<usize> {
    let splits: Vec<usize> = range.collect();
    let verdicts: Vec<(usize, Verdict)> = (judge.get_all(&splits).into_iter())
        .zip(&splits)
        .map(|(v, &d)| Some((d, v?)))
        .collect::<Option<_>>()?;
    let clean: Vec<usize> = verdicts
        .iter()
        .filter(|v| v.1.clean())
        .map(|v| v.0)
        .collect();
    match clean[..] {
        [d] => return Some(d),
        [_, _, ..] => {
            let mut fits: Vec<usize> = clean
                .into_iter()
                .filter(|&d| breaks_like_the_plateau(d, plateau, judge))
                .collect();
            // A clean latest split has no later splits to show a plateau; an earlier
            // one that has one beats it.
            if plateau.at == 1 && fits.len() > 1 {
                fits.retain(|&d| d != 0);
            }
            return match fits[..] {
                [d] => Some(d),
                _ => None,
            };
        }
        [] => {}
    }
    let dropped = |d: usize| verdicts.iter().any(|(e, v)| *e == d && v.dropped);
    let mut by_errors: Vec<(u32, usize)> = verdicts.iter().map(|(d, v)| (v.errors, *d)).collect();
    by_errors.sort_unstable();
    match by_errors[..] {
        [(best, d), (next, _), ..] if best + MARGIN <= next && !dropped(d) => Some(d),
        _ => None,
    }
}

/// A judge that decodes each split once.
struct Memo<F> {
    judge: F,
    seen: std::sync::Mutex<std::collections::HashMap<usize, Option<Verdict>>>,
}

impl<F: Judge> Memo<F> {
    fn new(judge: F) -> Self {
        Memo {
            judge,
            seen: Default::default(),
        }
    }

    fn get(&self, d: usize) -> Option<Verdict> {
        self.get_all(&[d])[0]
    }

    /// Verdicts on `splits`, those not judged yet judged together.
    fn get_all(&self, splits: &[usize]) -> Vec<Option<Verdict>> {
        let Ok(mut seen) = self.seen.lock() else {
            return vec![None; splits.len()];
        };
        let mut new: Vec<usize> = splits
            .iter()
            .copied()
            .filter(|d| !seen.contains_key(d))
            .collect();
        new.dedup();
        if !new.is_empty() {
            seen.extend(new.iter().copied().zip((self.judge)(&new)));
        }
        splits
            .iter()
            .map(|d| seen.get(d).copied().flatten())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe that broke: `errors` error lines, the first at macroblock `at`.
    fn broken(errors: u32, at: (u32, u32)) -> Verdict {
        Verdict {
            errors,
            first_error: Some(at),
            dropped: false,
        }
    }

    /// A judge that takes one split at a time.
    fn each(judge: impl Fn(usize) -> Option<Verdict> + Sync) -> impl Judge {
        move |splits: &[usize]| splits.iter().map(|&d| judge(d)).collect()
    }

    /// A decoder on a frame whose right split is `right`: later splits break it where
    /// the fragment ended (row 100), earlier ones sooner, noticed `lag` splits late.
    fn decoder(right: usize, lag: usize) -> impl Fn(usize) -> Option<Verdict> + Sync {
        move |d| {
            let row = 100 - d.saturating_sub(right + lag).min(99) as u32;
            Some(match d {
                _ if d == right => Verdict::default(),
                _ => broken(3, (if d < right { 100 } else { row }, 7)),
            })
        }
    }

    /// Only split `right` decodes.
    fn blind(right: usize) -> impl Fn(usize) -> Option<Verdict> + Sync {
        move |d| {
            Some(Verdict {
                errors: if d == right { 0 } else { 2 },
                first_error: None,
                dropped: false,
            })
        }
    }

    #[test]
    fn few_splits_are_all_decoded() {
        assert_eq!(search(10, each(decoder(7, 0))), Some(7));
    }

    #[test]
    fn many_splits_are_searched_in_few_rounds() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        for right in [0, 1, 50, 199, 380] {
            for lag in [0, 3] {
                let (decoded, rounds) = (AtomicUsize::new(0), AtomicUsize::new(0));
                let judge = decoder(right, lag);
                let counted = |splits: &[usize]| {
                    decoded.fetch_add(splits.len(), Relaxed);
                    rounds.fetch_add(1, Relaxed);
                    splits.iter().map(|&d| judge(d)).collect()
                };
                assert_eq!(search(381, counted), Some(right), "lag {lag}");
                assert!(decoded.into_inner() <= 48, "too many decoded");
                assert!(rounds.into_inner() <= 6, "too many rounds");
            }
        }
    }

    #[test]
    fn too_early_splits_that_break_later_than_the_latest_do_not_mislead_the_search() {
        // Past the right split every split breaks at (100, 7); before it, at (100, 20):
        // later, but not where the latest breaks.
        let right = 115;
        let judge = |d: usize| {
            Some(match d {
                _ if d == right => Verdict::default(),
                _ => broken(3, (100, if d < right { 7 } else { 20 })),
            })
        };
        assert_eq!(search(267, each(judge)), Some(right));
    }

    #[test]
    fn fewer_errors_by_a_margin_decide() {
        let errors = |d: usize| {
            Some(Verdict {
                errors: if d == 4 { 5 } else { 7 },
                first_error: None,
                dropped: false,
            })
        };
        assert_eq!(search(10, each(errors)), Some(4));
        let close = |d: usize| {
            Some(Verdict {
                errors: if d == 4 { 6 } else { 7 },
                first_error: None,
                dropped: false,
            })
        };
        assert_eq!(search(10, each(close)), None);
    }

    #[test]
    fn a_split_that_decodes_by_chance_is_refused() {
        // The right split is missing; split 5 decodes, but the splits after it break
        // at places that move with them: the bytes after split 5 are not what followed
        // the fragment.
        let judge = |d: usize| {
            Some(match d {
                5 => Verdict::default(),
                _ => broken(2, (if d < 5 { 10 + d as u32 } else { 1 }, 0)),
            })
        };
        assert_eq!(search(12, each(judge)), None);
        assert_eq!(search(200, each(judge)), None);
    }

    #[test]
    fn a_clean_latest_split_beats_an_earlier_one_clean_by_chance() {
        // Woodblock seed 17: the latest split is right, the earliest decodes clean by
        // chance (random bytes), the splits between break sooner the earlier they are.
        for n in [12, 21, 200] {
            let judge = |d: usize| {
                Some(match d {
                    0 => Verdict::default(),
                    _ if d == n - 1 => Verdict::default(),
                    _ => broken(2, (100 - d as u32, 3)),
                })
            };
            assert_eq!(search(n, each(judge)), Some(0), "{n} splits");
        }
    }

    #[test]
    fn a_latest_split_clean_by_chance_does_not_hide_the_right_one() {
        // The right split is 10; the latest decodes by chance, and the splits between
        // break where what followed the fragment begins.
        for n in [14, 200] {
            let judge = |d: usize| {
                Some(match d {
                    0 | 10 => Verdict::default(),
                    _ => broken(2, (if d < 10 { 50 } else { 60 - d as u32 / 4 }, 3)),
                })
            };
            assert_eq!(search(n, each(judge)), Some(10), "{n} splits");
        }
    }

    #[test]
    fn the_split_just_after_the_right_one_may_break_elsewhere() {
        let judge = |d: usize| {
            Some(match d {
                6 => Verdict::default(),
                5 => broken(2, (2, 10)),
                _ => broken(2, (if d < 6 { 2 } else { 1 }, 14)),
            })
        };
        assert_eq!(search(7, each(judge)), Some(6));
        assert_eq!(search(200, each(judge)), Some(6));
    }

    #[test]
    fn of_two_clean_splits_the_one_later_splits_break_after_wins() {
        // Splits 3 and 4 both decode (the bytes between them do not matter to the
        // decoder); past 3, every split breaks where the latest does.
        let judge = |d: usize| {
            Some(match d {
                3 | 4 => Verdict::default(),
                _ => broken(2, (if d < 3 { 9 } else { 8 - d as u32 / 2 }, 0)),
            })
        };
        assert_eq!(search(12, each(judge)), Some(3));
    }

    #[test]
    fn a_dropped_frame_wins_nothing_by_fewer_errors() {
        // Seed 13: the right split, but a 512-byte fragment inside the tag is missing;
        // the decoder drops the frame, logging one concealment where the others log
        // three errors. The split stays open, and the fragment is looked for.
        let judge = |d: usize| {
            Some(Verdict {
                errors: if d == 2 { 1 } else { 3 },
                first_error: (d != 2).then_some((16 - d as u32, 3)),
                dropped: d == 2,
            })
        };
        assert_eq!(search(16, each(judge)), None);
    }

    #[test]
    fn one_clean_split_wins_however_few_errors_the_others_show() {
        let judge = |d: usize| {
            Some(Verdict {
                errors: match d {
                    6 => 0,
                    2 => 1,
                    _ => 2,
                },
                first_error: None,
                dropped: false,
            })
        };
        assert_eq!(search(10, each(judge)), Some(6));
    }

    #[test]
    fn a_clean_latest_split_and_a_clean_next_one_decide_nothing() {
        // Woodblock seed 8: the latest split is right, the next one's 512 bytes of
        // random data decode too.
        let judge = |d: usize| {
            Some(match d {
                0 | 1 => Verdict::default(),
                _ => broken(2, (100 - d as u32, 3)),
            })
        };
        assert_eq!(search(15, each(judge)), None);
        assert_eq!(search(200, each(judge)), None);
    }

    #[test]
    fn two_clean_splits_decide_nothing() {
        let judge = |d: usize| {
            Some(Verdict {
                errors: u32::from(d != 3 && d != 4),
                first_error: None,
                dropped: false,
            })
        };
        assert_eq!(search(10, each(judge)), None);
    }

    #[test]
    fn a_decoder_that_cannot_run_decides_nothing() {
        assert_eq!(search(10, each(|_| None)), None);
        assert_eq!(search(300, each(|_| None)), None);
    }

    #[test]
    fn without_error_positions_only_few_splits_are_tried() {
        assert_eq!(search(90, each(blind(40))), Some(40));
        assert_eq!(search(200, each(blind(40))), None);
    }

    /// Any verdict, or none.
    fn any_verdict() -> impl proptest::strategy::Strategy<Value = Option<Verdict>> {
        use proptest::prelude::*;
        proptest::option::weighted(
            0.95,
            (
                0u32..4,
                proptest::option::of((0u32..20, 0u32..30)),
                any::<bool>(),
            )
                .prop_map(|(errors, first_error, dropped)| Verdict {
                    errors: errors.max(u32::from(dropped)),
                    first_error: first_error.filter(|_| errors > 0),
                    dropped,
                }),
        )
    }

    proptest::proptest! {
        /// Whatever the decoder says, the search ends, names one of the splits or none,
        /// asks about each split at most once and only about splits that exist, and
        /// never takes one the decoder could not judge.
        #[test]
        fn any_verdicts_give_a_split_that_exists(
            verdicts in proptest::collection::vec(any_verdict(), 0..300),
        ) {
            let n = verdicts.len();
            let asked = std::sync::Mutex::new(Vec::new());
            let judge = |ds: &[usize]| -> Vec<Option<Verdict>> {
                asked.lock().unwrap().extend_from_slice(ds);
                ds.iter().map(|&d| verdicts.get(d).copied().flatten()).collect()
            };
            let found = search(n, judge);
            let mut asked = asked.into_inner().unwrap();
            proptest::prop_assert!(asked.iter().all(|&d| d < n));
            let before = asked.len();
            asked.sort_unstable();
            asked.dedup();
            proptest::prop_assert_eq!(before, asked.len(), "a split asked twice");
            if let Some(d) = found {
                proptest::prop_assert!(d < n && verdicts[d].is_some());
            }
        }
    }
}
