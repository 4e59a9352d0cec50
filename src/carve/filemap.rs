//! A file's blocks as its filesystem listed them ([`super::ext4`]'s extent maps), turned
//! into source byte ranges: where a walk whose tag chain breaks at the end of one extent
//! goes on. Every join it offers is checked against the tags first: the straddling tag,
//! read through the map, must end with its own PreviousTagSize, so a stale or foreign
//! map proves nothing and is not used.

use super::ByteSource;
use super::ext4::{ExtentMap, MapKind};
use super::flv_tag;
use super::join::{Evidence, Join};

/// One extent in bytes: `len` bytes of the file from `logical` lie at `source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    logical: u64,
    source: u64,
    len: u64,
}

/// An extent map in source bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMap {
    pieces: Vec<Piece>,
    /// Where the map was found on the source.
    pub found_at: u64,
    /// What held it.
    pub kind: MapKind,
}

impl FileMap {
    /// `map` for a filesystem starting at `fs_offset` with blocks of `block_size`.
    pub fn new(map: &ExtentMap, fs_offset: u64, block_size: u64) -> Option<FileMap> {
        let pieces = map
            .extents
            .iter()
            .map(|e| {
                Some(Piece {
                    logical: e.logical as u64 * block_size,
                    source: fs_offset.checked_add(e.physical.checked_mul(block_size)?)?,
                    len: e.len as u64 * block_size,
                })
            })
            .collect::<Option<Vec<Piece>>>()?;
        Some(FileMap {
            pieces,
            found_at: map.found_at,
            kind: map.kind,
        })
    }

    /// Where the file's first byte lies on the source.
    pub fn start(&self) -> u64 {
        self.pieces.first().map_or(0, |p| p.source)
    }

    /// Number of extents.
    pub fn extents(&self) -> usize {
        self.pieces.len()
    }

    /// The joins that continue a chain broken at `t` (where the next tag should start)
    /// as the map says, and where the walk resumes; `None` unless `t` lies in a piece,
    /// the tag there crosses into a later one, and it reads whole through the map.
    pub fn join_at<S: ByteSource + ?Sized>(&self, src: &S, t: u64) -> Option<(Vec<Join>, u64)> {
        let view = Mapped { src, map: self };
        let i = self
            .pieces
            .iter()
            .position(|p| (p.source..=p.source + p.len).contains(&t))
            .or_else(|| self.ran_past(src, &view, t))?;
        let logical = self.pieces[i].logical + (t - self.pieces[i].source);
        let tag = flv_tag::tag_at(&view, logical)?;
        let resume = logical + tag.total_len();
        let c = self.piece_of(resume)?;
        if c <= i {
            return None;
        }
        let joins = (i..c)
            .map(|k| Join {
                from: self.pieces[k].source + self.pieces[k].len,
                earliest_from: self.pieces[k].source + self.pieces[k].len,
                to: self.pieces[k + 1].source,
                at_ms: tag.ts,
                alternatives: 0,
                lost_ms: None,
                evidence: Evidence::ExtentMap(self.found_at),
                decided: None,
            })
            .collect();
        let p = self.pieces[c];
        Some((joins, p.source + (resume - p.logical)))
    }

    /// The piece whose end the chain ran past into bytes identical to what follows it
    /// in the file (btrfs leaves the old copy of a rewritten last block right after an
    /// extent): the chain broke at `t`, up to a block later, in that copy.
    fn ran_past<S: ByteSource + ?Sized>(&self, src: &S, view: &Mapped<S>, t: u64) -> Option<usize> {
        const STALE: u64 = 65536;
        let i = self
            .pieces
            .iter()
            .position(|p| t > p.source + p.len && t - (p.source + p.len) <= STALE)?;
        let p = self.pieces[i];
        let n = (t - (p.source + p.len)) as usize;
        let (mut stale, mut real) = (vec![0u8; n], vec![0u8; n]);
        let same = src.read_at(p.source + p.len, &mut stale)
            && view.read_at(p.logical + p.len, &mut real)
            && stale == real;
        same.then_some(i)
    }

    /// The piece holding logical byte `at` (the last one for its very end).
    fn piece_of(&self, at: u64) -> Option<usize> {
        let last = self.pieces.last()?;
        if at == last.logical + last.len {
            return Some(self.pieces.len() - 1);
        }
        self.pieces
            .iter()
            .position(|p| (p.logical..p.logical + p.len).contains(&at))
    }
}

/// The file's bytes in logical order, read through its map.
struct Mapped<'a, S: ?Sized> {
    src: &'a S,
    map: &'a FileMap,
}

impl<S: ByteSource + ?Sized> ByteSource for Mapped<'_, S> {
    fn len(&self) -> u64 {
        self.map.pieces.last().map_or(0, |p| p.logical + p.len)
    }

    fn read_at(&self, mut offset: u64, mut buf: &mut [u8]) -> bool {
        while !buf.is_empty() {
            let Some(i) = self.map.piece_of(offset) else {
                return false;
            };
            let p = self.map.pieces[i];
            let within = offset - p.logical;
            let n = (p.len - within).min(buf.len() as u64) as usize;
            if n == 0 || !self.src.read_at(p.source + within, &mut buf[..n]) {
                return false;
            }
            buf = &mut buf[n..];
            offset += n as u64;
        }
        true
    }
}
