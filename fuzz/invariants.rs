//! What must hold for any input, shared by the fuzz targets (`fuzz_targets/`) and the
//! test suite (`tests/fuzz_invariants.rs`, which replays the committed corpus and
//! random inputs through the same functions). Each function panics on a violation.

use std::path::Path;

use salvagefs::carve::bson;
use salvagefs::carve::flv::{self, WalkLimits};
use salvagefs::carve::fragments::{self, Continuations, Unit};
use salvagefs::carve::nsfile;
use salvagefs::carve::probe::Straddle;
use salvagefs::carve::wiredtiger;
use salvagefs::classify::Schema;
use salvagefs::extent::ExtentList;
use salvagefs::extjson::{self, JsonMode};
use salvagefs::index::{DocEntry, Index, codec, file};
use salvagefs::scan::documents;
use salvagefs::served::{RowsFile, Served};

/// FLV header finder and tag walker (with fragment joins): every carved file, gathered
/// from its extents, ends on a PreviousTagSize that points at its last tag, and walked
/// again on its own is itself, whole and in one piece.
pub fn flv_walk(data: &[u8]) {
    let limits = WalkLimits {
        resync_window: 64 * 1024,
        ..WalkLimits::default()
    };
    let headers = flv::find_headers(data, data.len());
    let starts: Vec<u64> = headers.iter().map(|&h| h as u64).collect();
    let mut fragments = Continuations::new(
        &fragments::find_orphans(data, 0, data.len(), &fragments::tag_starts(data)).orphans,
        &starts,
        Unit::default(),
    );
    // Joins across lost fragments too (normally only in the scan's second walk).
    fragments.allow_holes(Vec::new());
    // A bound per input, so that a fuzz input full of headers stays fast.
    for offset in headers.into_iter().take(64) {
        let Some(carved) = flv::walk(data, offset as u64, &limits, &fragments) else {
            continue;
        };
        let bytes: Vec<u8> = carved
            .extents
            .iter()
            .flat_map(|&(o, l)| data[o as usize..(o + l) as usize].iter().copied())
            .collect();
        assert_eq!(bytes.len() as u64, carved.len());
        assert!(bytes.len() >= flv::HEADER_LEN);
        let tail = u32::from_be_bytes(bytes[bytes.len() - 4..].try_into().unwrap_or_default());
        if carved.tags == 0 {
            assert_eq!(tail, 0);
        } else {
            // The last tag's PreviousTagSize: 11 + data size of the last tag.
            assert!(
                tail >= 11 && tail as usize + 4 <= bytes.len(),
                "tail {tail}"
            );
            let last_tag = bytes.len() - 4 - tail as usize;
            assert!(
                matches!(bytes[last_tag], 8 | 9 | 18),
                "PreviousTagSize points at a tag"
            );
        }
        probes_hold_to_the_file(data, &carved);
        let again = flv::walk(&bytes[..], 0, &limits, &Continuations::default())
            .expect("a carved file starts with a header");
        assert_eq!(again.len(), carved.len());
        assert_eq!(again.extents.len(), 1);
        assert_eq!(again.tags, carved.tags);
    }
}

/// Every probe of every join (its earliest, latest and a middle split) is an FLV file
/// no longer than the carved file plus a header.
fn probes_hold_to_the_file(data: &[u8], carved: &flv::Carved) {
    let straddles = Straddle::find_all(data, carved);
    assert_eq!(straddles.len(), carved.joins.len());
    for (j, (join, straddle)) in carved.joins.iter().zip(&straddles).enumerate() {
        let Some(straddle) = straddle else {
            continue;
        };
        let middle = join.earliest_from + (join.from - join.earliest_from) / 2;
        for split in [join.earliest_from, middle, join.from] {
            if let Some(probe) = straddle.probe(data, carved, j, split) {
                assert!(probe.starts_with(b"FLV"));
                assert!(probe.len() as u64 <= carved.len() + flv::HEADER_LEN as u64);
            }
        }
    }
}

/// The document scan of one buffer (candidates, validator, deleted records, MMAPv1
/// headers, JSON length measurement), flags in the first byte: every accepted document
/// validates again on its own and renders to the lengths the scan recorded. Namespace-
/// file nodes parse at every offset without a panic, and every anchor is one.
pub fn bson_scan(input: &[u8]) {
    let Some((&flags, data)) = input.split_first() else {
        return;
    };
    let any = flags & 1 != 0;
    let mode = if flags & 2 != 0 {
        JsonMode::Canonical
    } else {
        JsonMode::Relaxed
    };
    let finds = documents::scan_buffer(data, 0, data.len(), 0, any, mode);
    for found in &finds.docs {
        let entry = &found.entry;
        let start = entry.offset as usize;
        let mut doc = data[start..start + entry.len as usize].to_vec();
        if entry.deleted {
            // The mount gives a deleted record its length back; do the same here.
            doc[..4].copy_from_slice(&entry.len.to_le_bytes());
        }
        bson::validate(&doc).expect("an accepted document re-validates");
        let mut line = Vec::new();
        extjson::render(&doc, mode, false, &mut line).expect("an accepted document renders");
        assert_eq!(line.len() as u64 + 1, entry.json_len as u64);
        let mut pretty = Vec::new();
        extjson::render(&doc, mode, true, &mut pretty).expect("and renders indented");
        assert_eq!(pretty.len() as u64 + 1, entry.pretty_len as u64);
    }
    // MMAPv1 namespace-file nodes: parsing is total, and an anchor is a node naming a
    // database's system.namespaces.
    for at in 0..data.len() {
        let _ = nsfile::parse_node(&data[at..]);
    }
    for at in nsfile::find_anchors(data, data.len()) {
        let node = nsfile::parse_node(&data[at..]).expect("an anchor parses");
        assert!(node.ns.ends_with(".system.namespaces"), "{}", node.ns);
    }
}

/// The Extended JSON writer on any bytes, flags in the first byte: never a panic; it
/// renders exactly what the validator accepts (it follows the validator's walk), as
/// one JSON object; measuring (the same writer into a counter, in the same walk)
/// accepts the same, summarizes as the validator does, and gives both renderings'
/// lengths.
pub fn extjson_render(input: &[u8]) {
    let Some((&flags, doc)) = input.split_first() else {
        return;
    };
    let mode = if flags & 1 != 0 {
        JsonMode::Canonical
    } else {
        JsonMode::Relaxed
    };
    let mut out = Vec::new();
    let rendered = extjson::render(doc, mode, flags & 2 != 0, &mut out);
    let measured = extjson::measure(doc, mode);
    let valid = bson::validate(doc);
    assert_eq!(
        rendered.is_ok(),
        valid.is_ok(),
        "render accepts what validates"
    );
    let (Ok(valid), Ok(measured)) = (valid, measured) else {
        return;
    };
    assert_eq!(measured.summary, valid, "one walk, one summary");
    let (mut line, mut pretty) = (Vec::new(), Vec::new());
    extjson::render(doc, mode, false, &mut line).expect("renders on one line");
    extjson::render(doc, mode, true, &mut pretty).expect("renders indented");
    assert_eq!((measured.line, measured.pretty), (line.len(), pretty.len()));
    let text = std::str::from_utf8(&out).expect("JSON is UTF-8");
    assert!(text.starts_with('{') && text.ends_with('}'), "{text}");
}

/// The index loader, on the bytes as they are and cut into sections behind a valid
/// header with the right checksums (so the decoders meet hostile sections): the
/// documents section decodes as postcard decodes it; a decoded index encodes back to
/// bytes that decode to the same index; opened for serving, every row and every
/// collection's files read without a panic.
pub fn index_load(data: &[u8]) {
    let path = Path::new("fuzz.idx");
    let _ = Index::from_bytes(data, path);
    // The first bytes give the sections' lengths (in 16-byte units), one each.
    let (cuts, mut rest) = data.split_at(data.len().min(file::Section::ALL.len()));
    let mut sections: [&[u8]; file::Section::ALL.len()] = [&[]; file::Section::ALL.len()];
    for (section, &cut) in sections.iter_mut().zip(cuts) {
        let (this, next) = rest.split_at(rest.len().min(cut as usize * 16));
        (*section, rest) = (this, next);
    }
    // The documents' own decoder reads any section as postcard reads it.
    let docs = sections[file::Section::Docs as usize];
    let theirs = postcard::from_bytes::<Vec<DocEntry>>(docs).ok();
    assert!(codec::decode_list(docs).ok() == theirs);
    let framed = file::frame(sections).expect("frames in memory");
    if let Ok(index) = Index::from_bytes(&framed, path) {
        // Compared as bytes: a section may hold a NaN scan time, never equal to itself.
        let bytes = index.to_bytes().expect("an index encodes");
        let again = Index::from_bytes(&bytes, path).expect("re-encoded index loads");
        assert!(again.to_bytes().ok() == Some(bytes));
    }
    let Ok(file) = file::IndexFile::parse(framed, path) else {
        return;
    };
    if let Ok(Some(served)) = Served::from_file(file, None) {
        for row in 0..served.table.len().min(10_000) {
            let _ = served.table.row(row);
        }
        for c in &served.classified.collections {
            for json in [false, true] {
                let file = ExtentList::Lazy(std::sync::Arc::new(RowsFile {
                    table: served.table.clone(),
                    rows: c.live,
                    json,
                }));
                let _ = file.visit(0, file.len().min(1 << 20), &mut |_, _| Ok(()));
            }
            for row in c.live.iter().take(1_000) {
                if let Ok(name) = served.table.name(row) {
                    let _ = served.table.find(c.live, &name);
                }
            }
        }
    }
}

/// The `--schema` parser on any text: a schema or an error, never a panic.
pub fn schema_parse(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Schema::from_json(text);
    }
}

/// WiredTiger pages, flags in the first byte: the bytes as found on a disk, or wrapped
/// in headers with a valid checksum (so that the fuzzer reaches the decompressors and
/// the cell reader), as an uncompressed page image or as a compressed payload whose
/// image size the next three bytes declare. Never a panic; every document found lies in
/// its page image and re-validates there.
pub fn wt_pages(input: &[u8]) {
    let Some((&flags, data)) = input.split_first() else {
        return;
    };
    let block = match flags & 3 {
        0 => data.to_vec(),
        1 => wt_block(flags >> 3, data.len() + wiredtiger::HEADER_LEN, false, data),
        _ => {
            let declared = data
                .iter()
                .take(3)
                .fold(0usize, |n, &b| n << 8 | b as usize);
            let mem = wiredtiger::COMPRESS_SKIP + declared % (1 << 20);
            wt_block(flags >> 3, mem, true, data)
        }
    };
    let mut finds =
        salvagefs::scan::wiredtiger::scan_buffer(&block, 0, block.len(), 0, JsonMode::Relaxed);
    // Tracing files through metadata and internal pages, and adopting orphan pages.
    let files = salvagefs::scan::wiredtiger::assign_files(&mut finds);
    let docs = std::mem::take(&mut finds.docs);
    salvagefs::scan::wiredtiger::adopt_orphans(&mut finds, &docs);
    finds.docs = docs;
    for page in &finds.pages {
        assert!(page.file.is_none_or(|t| (t as usize) < files.len()));
    }
    for span in &finds.claimed {
        assert!(span.start < span.end && span.end <= block.len() as u64);
    }
    for found in &finds.docs {
        let (entry, wt) = (&found.entry, found.entry.wt.expect("a page's document"));
        let page = &finds.pages[wt.page as usize];
        let bytes = &block[page.offset as usize..][..page.disk_size as usize];
        let h = wiredtiger::header(bytes).expect("an accepted block's header");
        let mut image = Vec::new();
        assert_eq!(
            wiredtiger::page_image(bytes, &h, &mut image),
            Some(page.codec)
        );
        let doc = &image[entry.offset as usize..][..entry.len as usize];
        bson::validate(doc).expect("a page's document re-validates");
    }
}

/// A block around `body`: leaf, overflow or internal page headers (by the low bits of
/// `kind`), the image size `mem`, then `body`, padded to 512 bytes, with its CRC32C.
fn wt_block(kind: u8, mem: usize, compressed: bool, body: &[u8]) -> Vec<u8> {
    let head = if compressed {
        wiredtiger::COMPRESS_SKIP
    } else {
        wiredtiger::HEADER_LEN
    };
    let mut block = vec![0u8; head];
    block.extend_from_slice(body);
    block.resize(block.len().next_multiple_of(512), 0);
    block[8] = 1; // write generation
    block[16..20].copy_from_slice(&(mem as u32).to_le_bytes());
    let entries = u32::from(kind >> 2);
    block[20..24].copy_from_slice(&entries.to_le_bytes());
    block[24] = [7, 5, 6, 7][usize::from(kind & 3)];
    block[25] = u8::from(compressed);
    let size = block.len() as u32;
    block[28..32].copy_from_slice(&size.to_le_bytes());
    block[36] = 1; // the checksum covers the whole block
    let crc = crc32c::crc32c(&block);
    block[32..36].copy_from_slice(&crc.to_le_bytes());
    block
}

/// Filesystem evidence (ext4 extent lists, XFS inodes and log runs, btrfs leaves and
/// chunk trees, ext4 bitmaps) read from hostile bytes: never a panic, every map
/// found starts at logical block 0 with extents in order, and a join it offers on the
/// same bytes resumes inside the map's own pieces.
pub fn fs_maps(data: &[u8]) {
    use salvagefs::carve::filemap::FileMap;
    use salvagefs::carve::{btrfs, ext4, xfs};
    use salvagefs::scan::anchors::{Anchors, Magic};
    let anchors = Anchors::find(data);
    let mut maps = ext4::find_extent_maps(data, 0, data.len(), anchors.of(Magic::Ext4Extents));
    maps.extend(xfs::inode_maps(
        data,
        0,
        data.len(),
        anchors.of(Magic::XfsInode),
    ));
    maps.extend(xfs::log_maps(data, 0));
    maps.extend(btrfs::files(&btrfs::leaf_runs(data, 0, data.len())));
    let _ = btrfs::Chunks::read(data);
    if let Some(v) = ext4::Volume::detect(data, 0) {
        let bitmaps = ext4::Bitmaps::new(v);
        for at in (0..data.len() as u64).step_by(4096).take(64) {
            let _ = bitmaps.in_use(data, at);
        }
    }
    if let Some(sb) = xfs::Superblock::detect(data) {
        let _ = sb.log_range();
    }
    for m in maps.into_iter().take(32) {
        let mut next = 0;
        for e in &m.extents {
            assert_eq!(e.logical, next, "extents in order from block 0");
            next = e.logical.saturating_add(e.len);
        }
        let Some(file) = FileMap::new(&m, 0, 512) else {
            continue;
        };
        for t in (0..data.len() as u64).step_by(509).take(64) {
            if let Some((joins, resume)) = file.join_at(data, t) {
                assert!(!joins.is_empty());
                assert!(joins.iter().all(|j| j.from <= j.earliest_from.max(j.from)));
                assert!(resume >= joins.last().map_or(0, |j| j.to));
            }
        }
    }
}
