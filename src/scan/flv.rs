//! The FLV side of the scan: headers and runs of tags without a header (possible
//! fragment starts) found per chunk, then every header's tag chain walked, with the
//! fragments that provably continue it.

use rayon::prelude::*;

use super::anchors::Magic;
use super::decoder::Decoder;
use super::filesystem::{self, Filesystem, FoundMaps};
use super::split_decisions;
use super::stage::{Chunk, Finishing, Stage};
use super::{ReadAhead, headless};
use crate::carve::flv::{self, WalkLimits};
use crate::carve::fragments::{self, ChunkOrphans, Continuations, Orphan};
use crate::carve::splits;
use crate::carve::{btrfs, ext4, xfs};
use crate::index::FlvEntry;
use crate::source::Source;

/// The FLV stage.
pub struct Flv;

/// What one chunk holds of FLV.
pub struct FlvFinds {
    /// The chunk's source.
    source: u32,
    /// Where the chunk starts on its source.
    start: u64,
    /// Offsets of FLV headers.
    headers: Vec<u64>,
    /// Runs of tags without a header: possible fragment starts.
    orphans: ChunkOrphans,
    /// Extent lists a filesystem left: where fragmented files' blocks are.
    maps: FoundMaps,
}

impl Stage for Flv {
    type Finds = FlvFinds;

    fn find(c: &Chunk) -> FlvFinds {
        FlvFinds {
            source: c.source,
            start: c.start,
            headers: flv::find_headers_at(c.bytes, c.len, c.anchors.of(Magic::Flv).iter().copied())
                .into_iter()
                .map(|p| c.start + p as u64)
                .collect(),
            orphans: fragments::find_orphans(c.bytes, c.start, c.len, c.anchors.tag_starts()),
            maps: FoundMaps {
                ext4: ext4::find_extent_maps(
                    c.bytes,
                    c.start,
                    c.len,
                    c.anchors.of(Magic::Ext4Extents),
                ),
                xfs: xfs::inode_maps(c.bytes, c.start, c.len, c.anchors.of(Magic::XfsInode)),
                btrfs: btrfs::leaf_runs(c.bytes, c.start, c.len),
            },
        }
    }

    fn finish(finds: Vec<FlvFinds>, out: &mut Finishing) {
        let mut headers: Vec<(u32, u64)> = Vec::new();
        let mut orphans: Vec<Vec<Orphan>> = vec![Vec::new(); out.sources.len()];
        let mut carried: Option<(u32, Vec<u64>)> = None;
        let mut maps: Vec<FoundMaps> = out.sources.iter().map(|_| FoundMaps::default()).collect();
        for mut f in finds {
            if let Some(found) = maps.get_mut(f.source as usize) {
                found.ext4.append(&mut f.maps.ext4);
                found.xfs.append(&mut f.maps.xfs);
                found.btrfs.append(&mut f.maps.btrfs);
            }
            headers.extend(f.headers.iter().map(|&h| (f.source, h)));
            let source = &out.sources[f.source as usize];
            // The chunk could not know the chains the chunk before carried into it:
            // it took their next tags for fragment starts.
            if let Some((_, chains)) = carried.take().filter(|c| c.0 == f.source) {
                f.orphans.orphans.retain(|o| !chains.contains(&o.at));
            }
            fill_prev_sizes(source, f.start, &mut f.orphans.orphans);
            if let Some(list) = orphans.get_mut(f.source as usize) {
                list.extend(f.orphans.orphans);
            }
            carried = Some((f.source, f.orphans.carried));
        }
        headers.sort_unstable();
        out.progress
            .phase(&format!("walking {} FLV candidates", headers.len()));
        let limits = WalkLimits {
            resync_window: out.settings.resync_window,
            ..WalkLimits::default()
        };
        let filesystems = (out.sources.iter().zip(maps).enumerate())
            .map(|(src, (source, found))| filesystem::read(source, src as u32, &headers, found))
            .collect();
        let mut fragments = continuations(&headers, &orphans, filesystems);
        let mut flv = walk_all(out.sources, &headers, &mut fragments, &limits);
        decide_by_decoding(&mut flv, out, &fragments);
        out.progress
            .phase("looking for recordings whose header is lost");
        headless::add(out.sources, &orphans, &fragments, &mut flv, &limits);
        out.index.flv = flv;
    }
}

/// Reads the PreviousTagSize of orphans that start in their chunk's first 4 bytes
/// (it lies in the chunk before); drops those it does not fit.
fn fill_prev_sizes(source: &Source, start: u64, orphans: &mut Vec<Orphan>) {
    orphans.retain_mut(|o| {
        if o.at >= start + 4 {
            return true;
        }
        let mut prev = [0u8; 4];
        let read = o.at >= 4 && source.read_exact_at(&mut prev, o.at - 4).is_ok();
        o.prev_size = u32::from_be_bytes(prev);
        read && (11..1 << 24).contains(&o.prev_size)
    });
}

/// Per source, the fragment starts found and what its filesystem says.
fn continuations(
    headers: &[(u32, u64)],
    orphans: &[Vec<Orphan>],
    filesystems: Vec<Filesystem>,
) -> Vec<Continuations> {
    orphans
        .iter()
        .zip(filesystems)
        .enumerate()
        .map(|(src, (found, fs))| {
            let own: Vec<u64> = headers
                .iter()
                .filter(|h| h.0 as usize == src)
                .map(|h| h.1)
                .collect();
            let mut c = Continuations::new(found, &own, fs.unit);
            c.add_filesystem(fs.ext4, fs.maps);
            c
        })
        .collect()
}

/// Walks every header's chain; then walks again, knowing where other recordings
/// provably continue, the files whose joins were uncertain or that were cut off.
fn walk_all(
    sources: &[Source],
    headers: &[(u32, u64)],
    fragments: &mut [Continuations],
    limits: &WalkLimits,
) -> Vec<FlvEntry> {
    let mut flv = walk(sources, headers, fragments, limits);
    narrow_splits(&mut flv, fragments);
    // What one recording certainly holds is other data for every other recording:
    // files whose joins were uncertain are walked again knowing it.
    // Files cut off mid-stream are walked again too: now their lost fragments can be
    // stepped over to the next one in time, which no other file covers.
    let uncertain: Vec<(u32, u64)> = flv
        .iter()
        .filter(|e| {
            e.carved.status == flv::Status::Truncated || e.carved.joins.iter().any(|j| !j.proven())
        })
        .map(|e| (e.source, e.carved.offset))
        .collect();
    if uncertain.is_empty() {
        return flv;
    }
    for e in &flv {
        fragments[e.source as usize].claim(e.carved.offset, splits::certain(&e.carved));
    }
    for (src, fragments) in fragments.iter_mut().enumerate() {
        let walked = flv.iter().filter(|e| e.source as usize == src);
        fragments.allow_holes(walked.flat_map(|e| e.carved.extents.clone()).collect());
    }
    for entry in walk(sources, &uncertain, fragments, limits) {
        if let Some(old) = flv
            .iter_mut()
            .find(|e| (e.source, e.carved.offset) == (entry.source, entry.carved.offset))
        {
            *old = entry;
        }
    }
    narrow_splits(&mut flv, fragments);
    flv
}

/// Decides the splits that the straddling tags and the other files leave open by
/// decoding each candidate (when ffmpeg is there), then narrows again by what those
/// files now certainly hold; a straddling tag whose split is still open is left out.
fn decide_by_decoding(flv: &mut [FlvEntry], out: &Finishing, fragments: &[Continuations]) {
    for e in flv
        .iter_mut()
        .filter(|e| split_decisions::has_open_split(&e.carved))
    {
        let reader = ReadAhead::new(&out.sources[e.source as usize]);
        let unit = fragments[e.source as usize].unit().0;
        splits::merge_same_splits(&reader, &mut e.carved, unit);
    }
    let count = flv
        .iter()
        .filter(|e| split_decisions::has_open_split(&e.carved))
        .count();
    if count == 0 {
        return;
    }
    if let Some(decoder) = Decoder::find() {
        out.progress
            .phase(&format!("decoding the split points of {count} recordings"));
        let units: Vec<u64> = fragments.iter().map(|f| f.unit().0).collect();
        split_decisions::decide_splits(flv, out.sources, &units, &decoder);
        narrow_splits(flv, fragments);
    } else {
        out.progress.warn(&format!(
            "ffmpeg not found: the tags cut by {count} recordings' ambiguous splits are left out (install it, e.g. apt-get install ffmpeg, and scan again with --rescan)"
        ));
    }
    split_decisions::leave_out_open_splits(flv, out.sources);
}

/// Narrows every ambiguous split by what the other files of its source certainly
/// hold (see [`splits::narrow`]).
fn narrow_splits(flv: &mut [FlvEntry], fragments: &[Continuations]) {
    for (src, fragments) in fragments.iter().enumerate() {
        let mut files: Vec<&mut flv::Carved> = flv
            .iter_mut()
            .filter(|e| e.source as usize == src)
            .map(|e| &mut e.carved)
            .collect();
        splits::narrow(&mut files, fragments.unit());
    }
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
