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

use rayon::prelude::*;

/// A decoder's verdict on one probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Error lines the decoder printed: 0 when every frame decodes.
    pub errors: u32,
    /// Where the first error was noticed, in macroblocks (row, then column, in the
    /// order they are coded), for decoders that say.
    pub first_error: Option<(u32, u32)>,
}

impl Verdict {
    /// The probe decodes without a single error.
    pub fn clean(&self) -> bool {
        self.errors == 0
    }
}

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
const LAG: usize = 2;
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
pub fn search(n: usize, judge: impl Fn(usize) -> Option<Verdict> + Sync) -> Option<usize> {
    let judge = Memo::new(judge);
    let latest = judge.get(0)?;
    let all = |limit: usize| (n <= limit).then(|| pick(0..n, latest, &judge)).flatten();
    let found = if n <= DECODE_ALL {
        pick(0..n, latest, &judge)
    } else if latest.clean() || latest.first_error.is_some() {
        bisect(n, latest, &judge).or_else(|| all(DECODE_ALL_NOISY))
    } else {
        all(DECODE_ALL_BLIND)
    }?;
    breaks_like_the_latest(found, latest, &judge).then_some(found)
}

/// Past the right split, every later split first breaks where the `latest` does, but
/// for the first [`LAG`] of them, which the decoder may notice a little early or late:
/// true when one of those after `d` (not the latest itself, unless it is the one just
/// after `d`) does with none clean before it, or there is none, or no position is known.
fn breaks_like_the_latest(
    d: usize,
    latest: Verdict,
    judge: &Memo<impl Fn(usize) -> Option<Verdict> + Sync>,
) -> bool {
    if d == 0 || latest.first_error.is_none() {
        return true;
    }
    for k in (1..=LAG.min(d)).filter(|&k| k == 1 || k < d) {
        match judge.get(d - k) {
            Some(v) if v.first_error == latest.first_error => return true,
            // Broken elsewhere: within the lag, look one further.
            Some(v) if !v.clean() => continue,
            // Clean too, or the decoder could not run: that one is no plateau.
            _ => return false,
        }
    }
    false
}

/// Finds where splits stop breaking as late as the `latest` does, and decodes the
/// splits around it.
fn bisect(
    n: usize,
    latest: Verdict,
    judge: &Memo<impl Fn(usize) -> Option<Verdict> + Sync>,
) -> Option<usize> {
    // As late or later than the right split: clean, or broken exactly where the latest
    // split breaks (what followed the fragment). Not merely later: a too early split
    // may break anywhere, later too, by chance (woodblock seed 35: a band of early
    // splits broke a row past the latest and led the search away from the right one).
    let not_too_early = |d: usize| {
        judge.get(d).map(|v| {
            v.clean() || (v.errors <= latest.errors && v.first_error == latest.first_error)
        })
    };
    let (mut lo, mut hi) = (0, n - 1);
    if not_too_early(hi)? {
        lo = hi;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if not_too_early(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    pick(
        lo.saturating_sub(AROUND)..(lo + AROUND + 1).min(n),
        latest,
        judge,
    )
}

/// The split in `range` that decodes: the only clean one; of several clean ones, the
/// only one after which later splits break as the `latest` does; with none clean, the
/// one with at least [`MARGIN`] fewer errors than every other.
fn pick(
    range: std::ops::Range<usize>,
    latest: Verdict,
    judge: &Memo<impl Fn(usize) -> Option<Verdict> + Sync>,
) -> Option<usize> {
    let verdicts: Vec<(usize, Verdict)> = range
        .into_par_iter()
        .map(|d| judge.get(d).map(|v| (d, v)))
        .collect::<Option<_>>()?;
    let clean: Vec<usize> = verdicts
        .iter()
        .filter(|v| v.1.clean())
        .map(|v| v.0)
        .collect();
    match clean[..] {
        [d] => return Some(d),
        [_, _, ..] => {
            let fits: Vec<usize> = clean
                .into_iter()
                .filter(|&d| breaks_like_the_latest(d, latest, judge))
                .collect();
            return match fits[..] {
                [d] => Some(d),
                _ => None,
            };
        }
        [] => {}
    }
    let mut by_errors: Vec<(u32, usize)> = verdicts.iter().map(|(d, v)| (v.errors, *d)).collect();
    by_errors.sort_unstable();
    match by_errors[..] {
        [(best, d), (next, _), ..] if best + MARGIN <= next => Some(d),
        _ => None,
    }
}

/// A judge that decodes each split once.
struct Memo<F> {
    judge: F,
    seen: std::sync::Mutex<std::collections::HashMap<usize, Option<Verdict>>>,
}

impl<F: Fn(usize) -> Option<Verdict> + Sync> Memo<F> {
    fn new(judge: F) -> Self {
        Memo {
            judge,
            seen: Default::default(),
        }
    }

    fn get(&self, d: usize) -> Option<Verdict> {
        let known = self.seen.lock().ok().and_then(|s| s.get(&d).copied());
        known.unwrap_or_else(|| {
            let v = (self.judge)(d);
            if let Ok(mut seen) = self.seen.lock() {
                seen.insert(d, v);
            }
            v
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A decoder on a frame whose right split is `right`: later splits break it where
    /// the fragment ended (row 100), earlier ones sooner, noticed `lag` splits late.
    fn decoder(right: usize, lag: usize) -> impl Fn(usize) -> Option<Verdict> + Sync {
        move |d| {
            let row = 100 - d.saturating_sub(right + lag).min(99) as u32;
            Some(match d {
                _ if d == right => Verdict::default(),
                _ => Verdict {
                    errors: 3,
                    first_error: Some((if d < right { 100 } else { row }, 7)),
                },
            })
        }
    }

    /// Only split `right` decodes.
    fn blind(right: usize) -> impl Fn(usize) -> Option<Verdict> + Sync {
        move |d| {
            Some(Verdict {
                errors: if d == right { 0 } else { 2 },
                first_error: None,
            })
        }
    }

    #[test]
    fn few_splits_are_all_decoded() {
        assert_eq!(search(10, decoder(7, 0)), Some(7));
    }

    #[test]
    fn many_splits_are_searched() {
        for right in [0, 1, 50, 199, 380] {
            for lag in [0, 3] {
                let decoded = std::sync::atomic::AtomicUsize::new(0);
                let judge = decoder(right, lag);
                let counted = |d| {
                    decoded.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    judge(d)
                };
                assert_eq!(search(381, counted), Some(right), "lag {lag}");
                assert!(decoded.into_inner() <= 32, "too many decoded");
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
                _ => Verdict {
                    errors: 3,
                    first_error: Some((100, if d < right { 7 } else { 20 })),
                },
            })
        };
        assert_eq!(search(267, judge), Some(right));
    }

    #[test]
    fn fewer_errors_by_a_margin_decide() {
        let errors = |d: usize| {
            Some(Verdict {
                errors: if d == 4 { 5 } else { 7 },
                first_error: None,
            })
        };
        assert_eq!(search(10, errors), Some(4));
        let close = |d: usize| {
            Some(Verdict {
                errors: if d == 4 { 6 } else { 7 },
                first_error: None,
            })
        };
        assert_eq!(search(10, close), None);
    }

    #[test]
    fn a_split_that_decodes_by_chance_is_refused() {
        // The right split is missing; split 5 decodes, but the splits after it break
        // at places that move with them: the bytes after split 5 are not what followed
        // the fragment.
        let judge = |d: usize| {
            Some(match d {
                5 => Verdict::default(),
                _ => Verdict {
                    errors: 2,
                    first_error: Some((if d < 5 { 10 + d as u32 } else { 1 }, 0)),
                },
            })
        };
        assert_eq!(search(12, judge), None);
        assert_eq!(search(200, judge), None);
    }

    #[test]
    fn the_split_just_after_the_right_one_may_break_elsewhere() {
        let judge = |d: usize| {
            Some(match d {
                6 => Verdict::default(),
                5 => Verdict {
                    errors: 2,
                    first_error: Some((2, 10)),
                },
                _ => Verdict {
                    errors: 2,
                    first_error: Some((if d < 6 { 2 } else { 1 }, 14)),
                },
            })
        };
        assert_eq!(search(7, judge), Some(6));
        assert_eq!(search(200, judge), Some(6));
    }

    #[test]
    fn of_two_clean_splits_the_one_later_splits_break_after_wins() {
        // Splits 3 and 4 both decode (the bytes between them do not matter to the
        // decoder); past 3, every split breaks where the latest does.
        let judge = |d: usize| {
            Some(match d {
                3 | 4 => Verdict::default(),
                _ => Verdict {
                    errors: 2,
                    first_error: Some((if d < 3 { 9 } else { 8 - d as u32 / 2 }, 0)),
                },
            })
        };
        assert_eq!(search(12, judge), Some(3));
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
            })
        };
        assert_eq!(search(10, judge), Some(6));
    }

    #[test]
    fn two_clean_splits_decide_nothing() {
        let judge = |d: usize| {
            Some(Verdict {
                errors: u32::from(d != 3 && d != 4),
                first_error: None,
            })
        };
        assert_eq!(search(10, judge), None);
    }

    #[test]
    fn a_decoder_that_cannot_run_decides_nothing() {
        assert_eq!(search(10, |_| None), None);
        assert_eq!(search(300, |_| None), None);
    }

    #[test]
    fn without_error_positions_only_few_splits_are_tried() {
        assert_eq!(search(90, blind(40)), Some(40));
        assert_eq!(search(200, blind(40)), None);
    }
}
