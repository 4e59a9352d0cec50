//! The FLV side of the scan: headers and runs of tags without a header (possible
//! fragment starts) found per chunk, then every header's tag chain walked, with the
//! fragments that provably continue it.

use rayon::prelude::*;

use super::ReadAhead;
use super::stage::{Chunk, Finishing, Stage};
use crate::carve::flv::{self, WalkLimits};
use crate::carve::fragments::{self, Continuations, Orphan};
use crate::index::FlvEntry;
use crate::source::Source;

/// The FLV stage.
pub struct Flv;

/// What one chunk holds of FLV.
pub struct FlvFinds {
    /// The chunk's source.
    source: u32,
    /// Offsets of FLV headers.
    headers: Vec<u64>,
    /// Runs of tags without a header: possible fragment starts.
    orphans: Vec<Orphan>,
}

impl Stage for Flv {
    type Finds = FlvFinds;

    fn find(c: &Chunk) -> FlvFinds {
        FlvFinds {
            source: c.source,
            headers: flv::find_headers(c.bytes, c.len)
                .into_iter()
                .map(|p| c.start + p as u64)
                .collect(),
            orphans: fragments::find_orphans(c.bytes, c.start, c.len),
        }
    }

    fn finish(finds: Vec<FlvFinds>, out: &mut Finishing) {
        let mut headers: Vec<(u32, u64)> = Vec::new();
        let mut orphans: Vec<Vec<Orphan>> = vec![Vec::new(); out.sources.len()];
        for f in finds {
            headers.extend(f.headers.into_iter().map(|h| (f.source, h)));
            if let Some(list) = orphans.get_mut(f.source as usize) {
                list.extend(f.orphans);
            }
        }
        headers.sort_unstable();
        out.progress
            .phase(&format!("walking {} FLV candidates", headers.len()));
        let limits = WalkLimits {
            resync_window: out.settings.resync_window,
            ..WalkLimits::default()
        };
        out.index.flv = walk_all(out.sources, &headers, &orphans, &limits);
    }
}

/// Walks every header's chain; then walks again, knowing where other recordings
/// provably continue, the files whose joins were uncertain or that were cut off.
fn walk_all(
    sources: &[Source],
    headers: &[(u32, u64)],
    orphans: &[Vec<Orphan>],
    limits: &WalkLimits,
) -> Vec<FlvEntry> {
    let mut fragments: Vec<Continuations> = orphans
        .iter()
        .enumerate()
        .map(|(src, found)| {
            let own: Vec<u64> = headers
                .iter()
                .filter(|h| h.0 as usize == src)
                .map(|h| h.1)
                .collect();
            Continuations::new(found, &own)
        })
        .collect();
    let mut flv = walk(sources, headers, &fragments, limits);
    // Where one recording provably continues is other data for every other recording:
    // files whose joins were uncertain are walked again knowing those fragment starts.
    // Files cut off mid-stream are walked again too: now their lost fragments can be
    // stepped over to the next one in time, which no other file covers.
    let uncertain: Vec<(u32, u64)> = flv
        .iter()
        .filter(|e| {
            e.carved.status == flv::Status::Truncated
                || e.carved.joins.iter().any(|j| j.alternatives > 0)
        })
        .map(|e| (e.source, e.carved.offset))
        .collect();
    if uncertain.is_empty() {
        return flv;
    }
    for e in &flv {
        let proven = e.carved.joins.iter().filter(|j| j.alternatives == 0);
        fragments[e.source as usize].mark_starts(proven.map(|j| j.to));
    }
    for (src, fragments) in fragments.iter_mut().enumerate() {
        let walked = flv.iter().filter(|e| e.source as usize == src);
        fragments.allow_holes(walked.flat_map(|e| e.carved.extents.clone()).collect());
    }
    for entry in walk(sources, &uncertain, &fragments, limits) {
        if let Some(old) = flv
            .iter_mut()
            .find(|e| (e.source, e.carved.offset) == (entry.source, entry.carved.offset))
        {
            *old = entry;
        }
    }
    flv
}

/// Walks the chains of `headers`, on every core.
fn walk(
    sources: &[Source],
    headers: &[(u32, u64)],
    fragments: &[Continuations],
    limits: &WalkLimits,
) -> Vec<FlvEntry> {
    headers
        .par_iter()
        .filter_map(|&(src, offset)| {
            let reader = ReadAhead::new(&sources[src as usize]);
            let fragments = &fragments[src as usize];
            flv::walk(&reader, offset, limits, fragments).map(|carved| FlvEntry {
                source: src,
                carved,
            })
        })
        .collect()
}
