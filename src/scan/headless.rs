//! Recordings whose header was overwritten: an `rm` followed by new writes reuses a
//! deleted file's first blocks first, and most of the recording may still lie on the
//! disk. Every long run of chained tags that no carved file holds is walked like a
//! recording (with its fragments) and served as `flv/headless/<offset>.flv` behind a
//! synthesized header, with the codec sequence headers of a recording that has the
//! same codecs when the run has none (marked as borrowed).

use rayon::prelude::*;

use super::ReadAhead;
use crate::carve::flv::{self, Carved, Headless, WalkLimits};
use crate::carve::flv_tag;
use crate::carve::fragments::{Continuations, Orphan};
use crate::index::FlvEntry;
use crate::source::Source;

/// Fewer chained tags than this are not worth a file (about two seconds of a stream).
const MIN_TAGS: u64 = 100;

/// Walks run at once: enough to keep every core busy, few enough that walks from
/// starts that a run found earlier in the same wave turns out to hold waste little.
const WAVE: usize = 1024;

/// Adds to `flv` the headless recordings of every source.
pub fn add(
    sources: &[Source],
    orphans: &[Vec<Orphan>],
    fragments: &[Continuations],
    flv: &mut Vec<FlvEntry>,
    limits: &WalkLimits,
) {
    let found: Vec<FlvEntry> = (0..sources.len())
        .into_par_iter()
        .flat_map_iter(|src| {
            let own: Vec<&FlvEntry> = flv.iter().filter(|e| e.source as usize == src).collect();
            of_source(
                &sources[src],
                src as u32,
                (&orphans[src], &fragments[src]),
                &own,
                limits,
            )
        })
        .collect();
    flv.extend(found);
}

/// The headless recordings of one source, given the files carved from it.
fn of_source(
    source: &Source,
    src: u32,
    (orphans, fragments): (&[Orphan], &Continuations),
    carved: &[&FlvEntry],
    limits: &WalkLimits,
) -> Vec<FlvEntry> {
    let reader = ReadAhead::new(source);
    let mut held: Vec<(u64, u64)> = carved
        .iter()
        .flat_map(|e| e.carved.extents.iter().map(|&(o, l)| (o, o + l)))
        .collect();
    held.sort_unstable();
    let mut starts: Vec<u64> = orphans.iter().map(|o| o.at).collect();
    starts.sort_unstable();
    starts.retain(|&at| !inside(&held, at) && !continues_a_chain(source, at));
    let mut out: Vec<FlvEntry> = Vec::new();
    // Walks do not depend on each other: a wave of them runs in parallel, and the
    // runs are then taken in disk order exactly as one walk after another would.
    for wave in starts.chunks(WAVE) {
        let runs: Vec<Option<Carved>> = wave
            .par_iter()
            .with_min_len(16)
            .map_init(
                || ReadAhead::new(source),
                |reader, &at| flv::walk_headless(reader, at, MIN_TAGS, (limits, fragments)),
            )
            .collect();
        for (&at, run) in wave.iter().zip(runs) {
            let Some(mut run) = run.filter(|_| !inside(&held, at)) else {
                continue;
            };
            if run.extents.iter().any(|&(o, l)| overlaps(&held, o, o + l)) {
                continue;
            }
            run.headless = Some(borrow(&reader, at, carved));
            for &(o, l) in &run.extents {
                let i = held.partition_point(|h| h.0 < o);
                held.insert(i, (o, o + l));
            }
            out.push(FlvEntry {
                source: src,
                carved: run,
            });
        }
    }
    out
}

/// The tag before `at` (where its PreviousTagSize points) is whole: `at` is no
/// fragment start but the middle of a chain (one a scan segment saw only the end of).
/// Read with small reads: most candidates are dismissed here.
fn continues_a_chain(source: &Source, at: u64) -> bool {
    let mut prev = [0u8; 4];
    if at < 4 || source.read_exact_at(&mut prev, at - 4).is_err() {
        return false;
    }
    let Some(before) = at.checked_sub(4 + u32::from_be_bytes(prev) as u64) else {
        return false;
    };
    let mut header = [0u8; 12];
    source.read_exact_at(&mut header, before).is_ok()
        && flv_tag::parse_tag_header(&header)
            .is_some_and(|t| t.size.checked_add(11) == Some(u32::from_be_bytes(prev)))
}

/// The sequence headers a run at `at` needs: its own if it has them, else those of
/// the first carved recording with the same codecs.
fn borrow(src: &ReadAhead, at: u64, carved: &[&FlvEntry]) -> Headless {
    if !flv::sequence_headers(src, at).is_empty() {
        return Headless::default();
    }
    let codecs = flv::first_codecs(src, at);
    carved
        .iter()
        .filter(|e| e.carved.headless.is_none())
        .map(|e| e.carved.offset)
        .filter(|&o| flv::first_codecs(src, o + flv::HEADER_LEN as u64) == codecs)
        .map(|o| Headless {
            donor: Some(o),
            borrowed: flv::sequence_headers(src, o + flv::HEADER_LEN as u64),
        })
        .find(|h| !h.borrowed.is_empty())
        .unwrap_or_default()
}

/// `at` lies in one of the sorted ranges.
fn inside(held: &[(u64, u64)], at: u64) -> bool {
    overlaps(held, at, at + 1)
}

/// `[start, end)` meets one of the sorted ranges.
fn overlaps(held: &[(u64, u64)], start: u64, end: u64) -> bool {
    let i = held.partition_point(|h| h.0 < end);
    held[..i].iter().rev().take(64).any(|h| h.1 > start)
}
