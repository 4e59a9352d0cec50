//! Fragmented recordings come back whole: pieces on block boundaries, out of order,
//! among other data or next to another recording's pieces; on a real ext4 filesystem
//! whose allocator scattered the file; and nothing else is ever glued together.

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;

const BLOCK: usize = 4096;

/// Text of `n` bytes: a busy disk's logs and documents between the pieces.
fn text(n: usize) -> Vec<u8> {
    b"2026-11-22 03:14:07 stream ended, recording closed, uploading to storage box\n"
        .iter()
        .copied()
        .cycle()
        .take(n)
        .collect()
}

/// `file` cut at the block-multiple offsets `cuts` into pieces.
fn pieces(file: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(file.len());
    bounds
        .windows(2)
        .map(|w| file[w[0]..w[1]].to_vec())
        .collect()
}

/// Lays `parts` out in the given order, each on a block boundary, padded to whole blocks
/// and followed by `gap` more blocks of `filler(bytes)`; returns the image and where
/// each part lies.
fn lay_out(
    parts: &[&[u8]],
    gap: usize,
    filler: impl Fn(usize) -> Vec<u8>,
) -> (Vec<u8>, Vec<usize>) {
    let mut img = filler(3 * BLOCK);
    let mut at = Vec::new();
    for p in parts {
        at.push(img.len());
        img.extend_from_slice(p);
        let pad = (BLOCK - img.len() % BLOCK) % BLOCK;
        img.extend(filler(pad + gap * BLOCK));
    }
    (img, at)
}

fn candidates(mount: &Mount) -> Vec<BTreeMap<String, String>> {
    let tsv = std::fs::read_to_string(mount.path("flv/candidates.tsv")).unwrap();
    let mut lines = tsv.lines();
    let head: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .map(|l| {
            head.iter()
                .map(|h| h.to_string())
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}

fn mount_image(dir: &Path, img: &[u8]) -> (PathBuf, Mount) {
    let path = dir.join("disk.img");
    std::fs::write(&path, img).unwrap();
    let idx = dir.join("disk.idx");
    let m = Mount::new(
        &[&path],
        &dir.join("mnt"),
        &["--index", idx.to_str().unwrap()],
    );
    (path, m)
}

#[test]
fn out_of_order_fragments_among_text_and_another_container() {
    if !require(&["ffprobe", "ffmpeg", "fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rec = fixture("stream-av-2.flv");
    let parts = pieces(&rec, &[60 * BLOCK, 130 * BLOCK, 170 * BLOCK]);
    // Another container of the same kind of content sits on the disk too.
    let mp4 = tmp.path().join("other.mp4");
    ok(Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=3:size=320x240",
        ])
        .args(["-c:v", "libx264", "-threads", "1"])
        .arg(&mp4));
    let mp4 = std::fs::read(&mp4).unwrap();
    let order = [
        &parts[2][..],
        &mp4,
        &parts[0],
        &noise(5, 100_000),
        &parts[3],
        &parts[1],
    ];
    let (img, at) = lay_out(&order, 2, text);
    let (_, m) = mount_image(tmp.path(), &img);

    let found = candidates(&m);
    assert_eq!(found.len(), 1, "{found:?}");
    let c = &found[0];
    assert_eq!(c["file"], format!("flv/{:013}.flv", at[2]));
    assert_eq!(c["status"], "reassembled");
    assert_eq!(c["bytes"], rec.len().to_string());
    let expected_pieces: Vec<String> = [2, 5, 0, 4]
        .iter()
        .zip(&parts)
        .map(|(&k, p)| format!("{}+{}", at[k], p.len()))
        .collect();
    assert_eq!(c["fragments"], expected_pieces.join("; "));

    let file = m.path(&c["file"]);
    assert_eq!(
        sha256(&file),
        sha256(&fixtures().join("flv/stream-av-2.flv"))
    );
    let want = ffprobe_clean(&fixtures().join("flv/stream-av-2.flv"));
    assert!((ffprobe_clean(&file) - want).abs() < 0.01);
    ffmpeg_decodes_cleanly(&file);
    let view = std::fs::read_to_string(m.path(&format!("{}.extents.txt", c["file"]))).unwrap();
    assert_eq!(
        view.lines().filter(|l| !l.starts_with('#')).count(),
        4,
        "{view}"
    );
    assert!(view.contains("proven by the straddling tag"), "{view}");
}

#[test]
fn two_similar_recordings_interleaved_borrow_nothing() {
    if !require(&["ffprobe", "fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let a = fixture("stream-av-1.flv");
    let b = fixture("stream-av-2.flv");
    let pa = pieces(&a, &[50 * BLOCK, 140 * BLOCK, 250 * BLOCK]);
    let pb = pieces(&b, &[40 * BLOCK, 100 * BLOCK, 170 * BLOCK]);
    // Pieces of both, right next to each other as when two streams were recorded at
    // once, the second recording's partly out of order.
    let order = [
        &pa[0][..],
        &pb[0],
        &pa[1],
        &pb[2],
        &pa[2],
        &pb[1],
        &pa[3],
        &pb[3],
    ];
    let (img, at) = lay_out(&order, 0, |n| noise(n as u64 + 9, n));
    let (_, m) = mount_image(tmp.path(), &img);
    let found = candidates(&m);
    assert_eq!(found.len(), 2, "{found:?}");
    for (c, (name, start)) in found
        .iter()
        .zip([("stream-av-1.flv", at[0]), ("stream-av-2.flv", at[1])])
    {
        assert_eq!(c["file"], format!("flv/{start:013}.flv"));
        assert_eq!(c["status"], "reassembled", "{c:?}");
        let file = m.path(&c["file"]);
        assert_eq!(
            sha256(&file),
            sha256(&fixtures().join("flv").join(name)),
            "{name}"
        );
        let view = std::fs::read_to_string(m.path(&format!("{}.extents.txt", c["file"]))).unwrap();
        assert!(!view.contains("shares source bytes"), "{view}");
    }
}

/// The first block past `from` in which a tag starts within its first kilobyte and runs
/// past it: where a stale copy of the block's first kilobyte holds a whole tag header.
fn block_with_an_early_tag(rec: &[u8], from: usize) -> usize {
    let mut at = 13;
    while at + 11 < rec.len() {
        let size = u32::from_be_bytes([0, rec[at + 1], rec[at + 2], rec[at + 3]]) as usize;
        let (block, within) = (at / BLOCK * BLOCK, at % BLOCK);
        if block >= from && within > 0 && within < 900 && at + 11 + size > block + 1024 {
            return block;
        }
        at += 11 + size + 4;
    }
    panic!("no tag starts early in a block");
}

/// btrfs rewrites a file's tail block elsewhere and leaves the first write behind,
/// zero-filled past what was written (seen on a kernel-written btrfs, bench/fragments.sh
/// seed 11). When the next extent's first block begins with whole tags, the chain runs on
/// into the stale copy and breaks in its zeros: the file left the extent in the tag
/// before the break, and the recording still comes back exact.
#[test]
fn a_chain_breaking_in_a_stale_copy_jumps_from_the_tag_before() {
    if !require(&["ffprobe", "fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rec = fixture("stream-av-1.flv");
    let cut = block_with_an_early_tag(&rec, 40 * BLOCK);
    let mut first = rec[..cut].to_vec();
    first.extend_from_slice(&rec[cut..cut + 1024]);
    first.extend(std::iter::repeat_n(0u8, BLOCK - 1024));
    let (img, at) = lay_out(&[&first[..], &rec[cut..]], 2, text);
    let (_, m) = mount_image(tmp.path(), &img);
    let found = candidates(&m);
    assert_eq!(found.len(), 1, "{found:?}");
    let c = &found[0];
    assert_eq!(c["file"], format!("flv/{:013}.flv", at[0]));
    assert_eq!(c["status"], "reassembled", "{c:?}");
    assert_eq!(
        sha256(&m.path(&c["file"])),
        sha256(&fixtures().join("flv/stream-av-1.flv"))
    );
}

#[test]
fn a_lost_middle_fragment_leaves_a_hole_and_the_rest_plays() {
    if !require(&["ffprobe", "ffmpeg", "fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rec = fixture("stream-av-1.flv");
    let parts = pieces(&rec, &[100 * BLOCK, 180 * BLOCK]);
    // The middle fragment was overwritten in place by other data.
    let lost = noise(77, parts[1].len());
    let order = [&parts[2][..], &parts[0], &lost];
    let (img, at) = lay_out(&order, 2, text);
    let (_, m) = mount_image(tmp.path(), &img);
    let found = candidates(&m);
    assert_eq!(found.len(), 1, "{found:?}");
    let c = &found[0];
    assert_eq!(c["file"], format!("flv/{:013}.flv", at[1]));
    assert_eq!(c["status"], "reassembled");
    assert!(c["skipped"].starts_with("lost fragment ("), "{c:?}");
    let file = m.path(&c["file"]);
    // It plays to the end: the last fragment is there whole, entered at a keyframe.
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.ends_with(&parts[2][parts[2].len() - 100_000..]));
    assert!(bytes.starts_with(&parts[0][..parts[0].len() - 100_000]));
    let want = ffprobe_clean(&fixtures().join("flv/stream-av-1.flv"));
    assert!((ffprobe_clean(&file) - want).abs() < 0.1);
    ffmpeg_decodes_cleanly(&file);
}

#[test]
fn random_data_text_and_whole_files_are_never_reassembled() {
    if !require(&["fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut img = noise(3, 2 << 20);
    img.extend(text(1 << 20));
    for name in ["short-av.flv", "video-only.flv", "audio-only.flv"] {
        img.extend(fixture(name));
        img.extend(noise(img.len() as u64, 50_000));
    }
    let (_, m) = mount_image(tmp.path(), &img);
    let found = candidates(&m);
    assert_eq!(found.len(), 3);
    assert!(
        found
            .iter()
            .all(|c| c["status"] == "complete" && c["fragments"] == "-"),
        "{found:?}"
    );
}

/// Fills a fresh ext4 filesystem with text files, deletes every other one, then writes
/// the recording second half first (each half synced), so the allocator scatters it
/// over the holes, partly backwards. Returns the image after the recording was deleted.
fn fragmented_ext4(dir: &Path, rec: &[u8]) -> PathBuf {
    let img = dir.join("ext4.img");
    ok(Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-b", "4096"])
        .arg(&img)
        .arg("24M"));
    let mnt = dir.join("fs");
    std::fs::create_dir_all(&mnt).unwrap();
    ok(Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&mnt));
    let fill = || -> std::io::Result<()> {
        for i in 0.. {
            let f = mnt.join(format!("filler-{i:04}.txt"));
            if std::fs::write(&f, text(64 << 10)).is_err() {
                let _ = std::fs::remove_file(&f);
                break;
            }
        }
        ok(&mut Command::new("sync"));
        for i in (0..).step_by(2) {
            if std::fs::remove_file(mnt.join(format!("filler-{i:04}.txt"))).is_err() {
                break;
            }
        }
        ok(&mut Command::new("sync"));
        let mut f = std::fs::File::create(mnt.join("recording.flv"))?;
        let half = (rec.len() / 2) / BLOCK * BLOCK;
        f.seek(SeekFrom::Start(half as u64))?;
        f.write_all(&rec[half..])?;
        f.sync_all()?;
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&rec[..half])?;
        f.sync_all()
    };
    let filled = fill();
    let map = run(Command::new("filefrag")
        .arg("-v")
        .arg(mnt.join("recording.flv")));
    let _ = std::fs::remove_file(mnt.join("recording.flv"));
    ok(Command::new("umount").arg(&mnt));
    filled.unwrap();
    // "   0:        0..      15:      34816..     34831:     16: ...": per extent, the
    // logical then the physical block range.
    let stat = String::from_utf8_lossy(&map.stdout);
    let physical: Vec<u64> = stat
        .lines()
        .filter(|l| {
            l.trim_start()
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit())
        })
        .filter_map(|l| l.split(':').nth(2)?.split("..").next()?.trim().parse().ok())
        .collect();
    eprintln!(
        "the recording lay in {} extents, at blocks {physical:?}",
        physical.len()
    );
    assert!(physical.len() >= 3, "not fragmented enough: {stat}");
    assert!(
        physical.windows(2).any(|w| w[1] < w[0]),
        "no fragment out of order: {stat}"
    );
    img
}

#[test]
fn a_recording_scattered_by_ext4_comes_back_exact() {
    if !require(
        &[
            "mke2fs",
            "filefrag",
            "mount",
            "umount",
            "ffprobe",
            "fusermount3",
        ],
        true,
    ) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let rec = fixture("stream-av-1.flv");
    let img = fragmented_ext4(tmp.path(), &rec);
    let idx = tmp.path().join("ext4.idx");
    let m = Mount::new(
        &[&img],
        &tmp.path().join("mnt"),
        &["--index", idx.to_str().unwrap()],
    );
    let found = candidates(&m);
    let c = found
        .iter()
        .find(|c| c["status"] == "reassembled")
        .unwrap_or_else(|| panic!("nothing reassembled: {found:?}"));
    let file = m.path(&c["file"]);
    assert_eq!(
        sha256(&file),
        sha256(&fixtures().join("flv/stream-av-1.flv"))
    );
    let want = ffprobe_clean(&fixtures().join("flv/stream-av-1.flv"));
    assert!((ffprobe_clean(&file) - want).abs() < 0.01);
    ffmpeg_decodes_cleanly(&file);
}

#[test]
fn a_recording_whose_header_was_overwritten_plays_from_its_first_keyframe() {
    if !require(&["ffprobe", "ffmpeg", "fusermount3"], false) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lost = fixture("stream-av-1.flv");
    // An earlier recording by the same recorder (same settings, other picture).
    let donor = tmp.path().join("earlier.flv");
    ok(Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-f", "lavfi", "-i"])
        .args(["testsrc2=size=320x240:rate=25:alpha=0", "-f", "lavfi", "-i"])
        .args([
            "sine=frequency=220:sample_rate=44100",
            "-t",
            "3",
            "-c:v",
            "libx264",
        ])
        .args([
            "-preset",
            "ultrafast",
            "-g",
            "25",
            "-b:v",
            "1200k",
            "-c:a",
            "aac",
        ])
        .args(["-b:a", "96k", "-fflags", "+bitexact", "-flags", "+bitexact"])
        .args(["-map_metadata", "-1"])
        .arg(&donor));
    let intact = std::fs::read(&donor).unwrap();
    // `rm` then new writes: the first blocks of the recording now hold an upload.
    let mut headless = lost.clone();
    headless[..3 * BLOCK].copy_from_slice(&noise(7, 3 * BLOCK));
    let (img, at) = lay_out(&[&intact, &headless], 2, |n| noise(8, n));
    let (_, m) = mount_image(tmp.path(), &img);
    let found = candidates(&m);
    let row = found
        .iter()
        .find(|c| c["file"].starts_with("flv/headless/"))
        .unwrap_or_else(|| panic!("no headless recording: {found:?}"));
    let file = m.path(&row["file"]);
    let bytes = std::fs::read(&file).unwrap();
    // Its tags from the first keyframe on are the recording's own, to the end.
    let tags = tag_offsets(&lost);
    let key = *tags
        .iter()
        .find(|&&t| t >= 3 * BLOCK && lost[t] == 9 && lost[t + 11] >> 4 == 1)
        .unwrap();
    assert!(
        bytes.ends_with(&lost[key..]),
        "the run is the recording's tail"
    );
    let view = std::fs::read_to_string(m.path(&format!("{}.extents.txt", row["file"]))).unwrap();
    assert!(
        view.contains(&format!("sequence headers of the recording at {}", at[0])),
        "{view}"
    );
    // Playable: the borrowed parameter sets decode it, almost to the original's end.
    ffmpeg_decodes_cleanly(&file);
    let want = ffprobe_clean(&fixtures().join("flv/stream-av-1.flv"));
    assert!(ffprobe_clean(&file) > want * 0.8);
}
