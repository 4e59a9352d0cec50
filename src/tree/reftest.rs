//! The tree and its reads driven against a model, without the kernel (mountpoint-s3's
//! reftest idea): an index of carved files over in-memory sources is laid out by
//! [`build::build`], and every read of every file through [`ExtentList::read`] must
//! equal the same bytes cut from the model.

use std::io;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::Tree;
use super::build::{self, KnownMatches};
use crate::carve::flv::{Carved, Status};
use crate::classify::Classification;
use crate::extent::SourceReader;
use crate::index::{FlvEntry, Index};
use crate::report::FlvRow;
use crate::served::Served;

/// `index` as a mount serves it (no documents).
fn served(index: &Index) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let nothing = Classification::all_live(&[], None, &crate::spill::Spill::new(dir.path(), 1));
    Served::in_memory(index.clone(), nothing)
}

/// Sources held in memory.
struct Disk(Vec<Vec<u8>>);

impl SourceReader for Disk {
    fn read_source(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let bytes = self.0.get(source as usize).ok_or(io::ErrorKind::NotFound)?;
        let at = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let src = bytes
            .get(at..at + buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// Two sources of pseudo-random bytes, and an index of carved files whose pieces are
/// `pieces` (per file: source, then `(offset, len)` ranges).
fn model(pieces: &[(u32, Vec<(u64, u64)>)]) -> (Disk, Index) {
    let disk = Disk(
        (0..2u64)
            .map(|s| {
                (0..65_536u64)
                    .map(|i| (i * 31 + s * 7 + i / 251) as u8)
                    .collect()
            })
            .collect(),
    );
    let paths: Vec<PathBuf> = (0..2)
        .map(|s| PathBuf::from(format!("/dev/disk{s}")))
        .collect();
    let mut index = Index::for_tests(&paths, 65_536);
    index.flv = pieces
        .iter()
        .map(|(source, extents)| FlvEntry {
            source: *source,
            carved: Carved {
                offset: extents[0].0,
                extents: extents.clone(),
                status: match extents.len() {
                    1 => Status::Complete,
                    _ => Status::Reassembled,
                },
                gaps: Vec::new(),
                joins: Vec::new(),
                tags: 3,
                duration_ms: 1500,
                created_s: None,
                has_audio: true,
                has_video: true,
                headless: None,
            },
        })
        .collect();
    index.flv.sort_by_key(|e| (e.source, e.carved.offset));
    index.flv.dedup_by_key(|e| (e.source, e.carved.offset));
    (disk, index)
}

/// The model's bytes of one carved file.
fn expected(disk: &Disk, entry: &FlvEntry) -> Vec<u8> {
    let src = &disk.0[entry.source as usize];
    entry
        .carved
        .extents
        .iter()
        .flat_map(|&(o, l)| src[o as usize..(o + l) as usize].iter().copied())
        .collect()
}

fn file<'t>(tree: &'t Tree, path: &str) -> std::borrow::Cow<'t, crate::extent::ExtentList> {
    let ino = tree
        .resolve(path)
        .unwrap_or_else(|| panic!("{path} missing"));
    tree.file(ino)
        .unwrap_or_else(|| panic!("{path} is not a file"))
}

fn pieces() -> impl Strategy<Value = Vec<(u32, Vec<(u64, u64)>)>> {
    let piece = (0u64..60_000, 1u64..4_000);
    prop::collection::vec((0u32..2, prop::collection::vec(piece, 1..5)), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_read_equals_the_model(pieces in pieces(), reads in prop::collection::vec((0u64..20_000, 0usize..9_000), 1..20)) {
        let (disk, index) = model(&pieces);
        let tree = build::build(&served(&index), None, false);
        for (i, entry) in index.flv.iter().enumerate() {
            let row = FlvRow::new(&index, i, None);
            let list = file(&tree, &row.file);
            let want = expected(&disk, entry);
            prop_assert_eq!(list.len(), want.len() as u64);
            prop_assert_eq!(&list.read(0, want.len() + 10, &disk).unwrap(), &want);
            for &(at, size) in &reads {
                let got = list.read(at, size, &disk).unwrap();
                let from = (at as usize).min(want.len());
                let to = (from + size).min(want.len());
                prop_assert_eq!(&got[..], &want[from..to]);
            }
        }
    }

    #[test]
    fn inodes_are_stable_and_candidates_list_every_file(pieces in pieces()) {
        let (_, index) = model(&pieces);
        let (a, b) = (
            build::build(&served(&index), None, false),
            build::build(&served(&index), None, false),
        );
        let tsv = String::from_utf8(file(&a, "flv/candidates.tsv").read(0, 1 << 20, &Disk(Vec::new())).unwrap()).unwrap();
        let lines: Vec<&str> = tsv.lines().collect();
        prop_assert_eq!(lines.len(), index.flv.len() + 1);
        prop_assert!(lines.iter().all(|l| l.split('\t').count() == FlvRow::COLUMNS.len()));
        for i in 0..index.flv.len() {
            let path = FlvRow::new(&index, i, None).file;
            prop_assert_eq!(a.resolve(&path), b.resolve(&path));
            let prefix = format!("{path}\t");
            prop_assert!(lines[i + 1].starts_with(&prefix));
        }
    }
}

#[test]
fn known_files_move_to_flv_known() {
    let (disk, index) = model(&[(0, vec![(100, 500)]), (1, vec![(0, 64)])]);
    let matches = vec![Some(PathBuf::from("old/rec.flv")), None];
    let known = KnownMatches {
        dir: Path::new("/srv/surviving"),
        matches: &matches,
    };
    let tree = build::build(&served(&index), Some(&known), false);
    let moved = file(&tree, "flv/known/1-0000000000100.flv");
    assert_eq!(
        moved.read(0, 1000, &disk).unwrap(),
        expected(&disk, &index.flv[0])
    );
    assert!(tree.resolve("flv/2-0000000000000.flv").is_some());
    let readme = file(&tree, "README.txt").read(0, 1 << 20, &disk).unwrap();
    let readme = String::from_utf8(readme).unwrap();
    assert!(
        readme.contains("Known files from: /srv/surviving"),
        "{readme}"
    );
    assert!(
        readme.contains(
            "2 carved (2 complete, 0 repaired, 0 reassembled, 0 truncated), 1 known, 1 unknown"
        ),
        "{readme}"
    );
}
