//! The WiredTiger side of the scan: blocks in a buffer to pages and documents.
//!
//! A chunk worker proves each block it finds by its checksum, rebuilds the page image
//! (decompressing it: this runs on every core, with the rest of the scan), and describes
//! every record of a leaf page whose value is a valid document, exactly as a document
//! found on the source is described. What a chunk cannot finish is left for afterwards:
//! blocks reaching past its buffer, files off the sector grid (followed from their first
//! block), values stored in overflow pages (matched to their leaf cell by the checksum
//! the cell records), and, on a raw disk, which file each page belongs to (traced from
//! the checkpoint roots WiredTiger's metadata names, through internal pages).

use std::cell::RefCell;
use std::collections::HashMap;

use bson::RawDocument;

use crate::carve::wiredtiger::{self as wt, Header, PageKind, SECTOR, Value};
use crate::extjson::JsonMode;
use crate::index::{CatalogEntry, Span, WtCheckpoint, WtInternal, WtPage, WtRef};
use rayon::prelude::*;

use super::anchors::{Anchors, Magic};
use super::stage::{Chunk, Finishing, Found, Stage};
use crate::scan::documents;
use crate::source::Source;
use crate::spans;

thread_local! {
    /// A page image, reused by every block a thread decodes.
    static IMAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A leaf cell whose value is in an overflow page.
pub struct OverflowRef {
    /// The leaf page (a position in [`PageFinds::pages`]).
    pub page: u32,
    /// The record id.
    pub record: i64,
    /// Size of the overflow block in allocation units.
    pub units: u64,
    /// Checksum of the overflow block.
    pub checksum: u32,
}

/// What the WiredTiger side found in one buffer (or in all of them, once joined).
#[derive(Default)]
pub struct PageFinds {
    /// Leaf pages that hold documents.
    pub pages: Vec<WtPage>,
    /// Overflow pages (kept only if a leaf cell points to them).
    pub overflow: Vec<WtPage>,
    /// Documents of one buffer's leaf pages; `entry.wt.page` is a position in `pages`
    /// (joined finds keep their documents in the scan's one list: see [`Self::append`]).
    pub docs: Vec<Found>,
    /// Values to fetch from overflow pages.
    pub overflow_refs: Vec<OverflowRef>,
    /// Entries of mongod's catalog.
    pub catalog: Vec<CatalogEntry>,
    /// Every block proven by its checksum: a document found on the source inside one
    /// is a copy of a page's record, not a document of its own.
    pub claimed: Vec<Span>,
    /// Blocks reaching past the buffer: `(source, offset)`, read whole afterwards.
    pub deferred: Vec<(u32, u64)>,
    /// Starts of files off the sector grid: `(source, offset)`, followed afterwards.
    pub unaligned: Vec<(u32, u64)>,
    /// Internal pages: `(checksum, disk_size, children)`.
    pub internal: Vec<(u32, u32, Vec<wt::Address>)>,
    /// Checkpoint roots named by WiredTiger's metadata: `(file name, order, root)`.
    pub roots: Vec<(String, u64, wt::Address)>,
}

impl PageFinds {
    /// Appends `other`, renumbering its pages after this one's; its documents go to
    /// `docs` (one list for all documents, so a million of them are not copied twice).
    pub fn append(&mut self, other: PageFinds, docs: &mut Vec<Found>) {
        let base = self.pages.len() as u32;
        self.pages.extend(other.pages);
        self.overflow.extend(other.overflow);
        docs.extend(other.docs.into_iter().map(|mut f| {
            if let Some(wt) = &mut f.entry.wt {
                wt.page += base;
            }
            f
        }));
        self.overflow_refs
            .extend(other.overflow_refs.into_iter().map(|mut r| {
                r.page += base;
                r
            }));
        self.catalog.extend(other.catalog);
        self.claimed.extend(other.claimed);
        self.deferred.extend(other.deferred);
        self.unaligned.extend(other.unaligned);
        self.internal.extend(other.internal);
        self.roots.extend(other.roots);
    }
}

/// Each chunk's documents with `base` added to their page numbers, on every core.
fn renumbered(mut parts: Vec<(Vec<Found>, u32)>) -> Vec<Vec<Found>> {
    parts.par_iter_mut().for_each(|(docs, base)| {
        for wt in docs.iter_mut().filter_map(|f| f.entry.wt.as_mut()) {
            wt.page += *base;
        }
    });
    parts.into_iter().map(|(docs, _)| docs).collect()
}

/// The WiredTiger stage.
pub struct WiredTiger;

impl Stage for WiredTiger {
    type Finds = PageFinds;

    fn find(c: &Chunk) -> PageFinds {
        scan_anchored(
            c.bytes,
            c.anchors,
            (c.start, c.len),
            c.source,
            c.settings.json,
        )
    }

    fn documents(finds: &PageFinds) -> usize {
        finds.docs.len()
    }

    fn finish(finds: Vec<PageFinds>, out: &mut Finishing) {
        let mut pages = PageFinds::default();
        // Each chunk's documents, their pages numbered as in the joined list.
        let mut parts = Vec::with_capacity(finds.len());
        for mut found in finds {
            parts.push((std::mem::take(&mut found.docs), pages.pages.len() as u32));
            pages.append(found, out.docs);
        }
        documents::gather(out.docs, renumbered(parts));
        // Files off the sector grid, each followed up to the next one of the same alignment
        // (past the end of this scan's range if need be: the scan of the next range, which
        // does not see the file's start, would not find its blocks).
        let mut unaligned = std::mem::take(&mut pages.unaligned);
        unaligned.sort_unstable();
        let follows: Vec<(u32, u64, u64)> = unaligned
            .iter()
            .enumerate()
            .map(|(i, &(src, start))| {
                let next = unaligned[i + 1..]
                    .iter()
                    .find(|&&(s, o)| s == src && o % SECTOR == start % SECTOR)
                    .map_or(out.sources[src as usize].size, |&(_, o)| o);
                (src, start, next)
            })
            .collect();
        let followed: Vec<PageFinds> = follows
            .par_iter()
            .map(|&(src, start, end)| {
                follow(
                    &out.sources[src as usize],
                    src,
                    start,
                    end,
                    out.settings.json,
                )
            })
            .collect();
        for found in followed {
            pages.append(found, out.docs);
        }

        out.progress.phase(&format!(
            "reading {} large WiredTiger pages and {} values stored apart",
            pages.deferred.len(),
            pages.overflow_refs.len()
        ));
        let long_blocks: Vec<PageFinds> = std::mem::take(&mut pages.deferred)
            .par_iter()
            .map(|&(src, offset)| {
                read_deferred(&out.sources[src as usize], src, offset, out.settings.json)
            })
            .collect();
        for found in long_blocks {
            pages.append(found, out.docs);
        }
        let wt_files = assign_files(&mut pages);
        adopt_orphans(&mut pages, out.docs);
        resolve_overflow(&mut pages, out.sources, out.settings.json, out.docs);
        order(&mut pages, out.docs);
        drop_claimed(out.docs, &mut pages.claimed);
        out.index.wt_pages = pages.pages;
        out.index.wt_catalog = pages.catalog;
        out.index.wt_files = wt_files;
        out.index.wt_internal = pages
            .internal
            .into_iter()
            .map(|(checksum, disk_size, children)| WtInternal {
                checksum,
                disk_size,
                children,
            })
            .collect();
        out.index.wt_internal.sort();
        out.index.wt_internal.dedup();
        out.index.wt_checkpoints = pages
            .roots
            .into_iter()
            .map(|(file, order, root)| WtCheckpoint { file, order, root })
            .collect();
        out.index.wt_checkpoints.sort();
        out.index.wt_checkpoints.dedup();
    }
}

/// Scans `buf`, which holds source `source` from offset `base`, for blocks on sector
/// boundaries and for the starts of files that are not; only blocks starting before
/// `limit` belong to this buffer.
pub fn scan_buffer(buf: &[u8], base: u64, limit: usize, source: u32, mode: JsonMode) -> PageFinds {
    scan_anchored(buf, &Anchors::find(buf), (base, limit), source, mode)
}

/// As [`scan_buffer`], given the magic numbers in `buf` (found once for every stage).
fn scan_anchored(
    buf: &[u8],
    anchors: &Anchors,
    (base, limit): (u64, usize),
    source: u32,
    mode: JsonMode,
) -> PageFinds {
    let mut finds = PageFinds::default();
    for at in wt::candidates(buf, base, limit) {
        let Some(h) = wt::header(&buf[at..]) else {
            continue;
        };
        match buf.get(at..at + h.disk_size as usize) {
            Some(block) => add_block(&mut finds, block, &h, source, base + at as u64, mode),
            None => finds.deferred.push((source, base + at as u64)),
        }
    }
    finds.unaligned = wt::file_starts_at(buf, limit, anchors.of(Magic::WiredTiger).iter().copied())
        .into_iter()
        .map(|at| (source, base + at as u64))
        .filter(|&(_, start)| start % wt::SECTOR != 0)
        .collect();
    finds
}

/// A file off the sector grid is followed until this many bytes past its last block
/// hold no block. A WiredTiger file is written block after block (freed blocks keep
/// their old, still valid, contents), so a gap this long means the file ended.
const FOLLOW_GIVE_UP: u64 = 1 << 20;

/// Looks for the blocks of a file whose first block is at `start`, off the sector grid
/// (a file embedded at an odd offset): at the file's own alignment, block after block,
/// from its start to `end` or until `FOLLOW_GIVE_UP` bytes hold no block. Reads only
/// block headers and the blocks found, so the bytes around are not read twice.
pub fn follow(src: &Source, index: u32, start: u64, end: u64, mode: JsonMode) -> PageFinds {
    let (mut finds, mut docs) = (PageFinds::default(), Vec::new());
    let (mut at, mut past_last_block) = (start, start);
    let end = end.min(src.size);
    while at < end && at < past_last_block + FOLLOW_GIVE_UP {
        let found = read_deferred(src, index, at, mode);
        at = match found.claimed.first().map(|block| block.end) {
            Some(block_end) => {
                past_last_block = block_end;
                finds.append(found, &mut docs);
                block_end
            }
            None => at + wt::SECTOR,
        };
    }
    finds.docs = docs;
    finds
}

/// Reads a deferred block whole from the source and adds what it holds.
pub fn read_deferred(src: &Source, index: u32, offset: u64, mode: JsonMode) -> PageFinds {
    let mut finds = PageFinds::default();
    let mut head = [0u8; wt::COMPRESS_SKIP];
    if src.read_exact_at(&mut head, offset).is_err() {
        return finds;
    }
    let Some(h) = wt::header(&head) else {
        return finds;
    };
    let mut block = vec![0u8; h.disk_size as usize];
    if src.read_exact_at(&mut block, offset).is_ok() {
        add_block(&mut finds, &block, &h, index, offset, mode);
    }
    finds
}

fn add_block(
    finds: &mut PageFinds,
    block: &[u8],
    h: &Header,
    source: u32,
    offset: u64,
    mode: JsonMode,
) {
    if !wt::checksum_ok(block, h) {
        return;
    }
    IMAGE.with_borrow_mut(|image| {
        let Some(codec) = wt::page_image(block, h, image) else {
            log::debug!(
                "WiredTiger block at {offset}: checksum matches, but no compressor decodes it"
            );
            return;
        };
        finds.claimed.push(Span {
            source,
            start: offset,
            end: offset + block.len() as u64,
        });
        let page = WtPage {
            source,
            offset,
            disk_size: h.disk_size,
            checksum: h.checksum,
            kind: h.kind,
            codec,
            write_gen: h.write_gen,
            keys: (0, 0),
            overflow_keys: Vec::new(),
            file: None,
        };
        match h.kind {
            PageKind::Overflow => {
                finds.overflow.push(page);
                return;
            }
            PageKind::RowInternal => {
                if let Some(children) = wt::children(image, h.entries) {
                    finds.internal.push((h.checksum, h.disk_size, children));
                }
                return;
            }
            PageKind::RowLeaf => {}
        }
        let Some(records) = wt::leaf_records(image, h.entries) else {
            return;
        };
        if records.is_empty() {
            // String keys: perhaps WiredTiger's own metadata, naming files' checkpoints.
            finds.roots.extend(wt::checkpoint_roots(image, h.entries));
            return;
        }
        let mut page = page;
        if let (Some(first), Some(last)) = (records.first(), records.last()) {
            page.keys = (first.key, last.key);
        }
        let number = finds.pages.len() as u32;
        let mut used = false;
        for r in records {
            match r.value {
                Value::Inline { offset: at, len } => {
                    let bytes = &image[at as usize..][..len as usize];
                    let Some(mut found) = documents::describe(bytes, mode) else {
                        continue;
                    };
                    if let Some(entry) = catalog_entry(bytes, &found, h.write_gen) {
                        finds.catalog.push(entry);
                        continue;
                    }
                    found.entry.source = source;
                    found.entry.offset = u64::from(at);
                    found.entry.wt = Some(WtRef {
                        page: number,
                        record: r.key,
                    });
                    finds.docs.push(found);
                    used = true;
                }
                Value::Overflow { units, checksum } => {
                    page.overflow_keys.push(r.key);
                    finds.overflow_refs.push(OverflowRef {
                        page: number,
                        record: r.key,
                        units,
                        checksum,
                    });
                    used = true;
                }
            }
        }
        if used {
            finds.pages.push(page);
        }
    });
}

/// A document of mongod's catalog: `{md, ns: "db.coll", ident: "collection-..."}`.
fn catalog_entry(bytes: &[u8], found: &Found, write_gen: u64) -> Option<CatalogEntry> {
    let has = |name: &str| found.fields.split_terminator('\0').any(|f| f == name);
    if !(has("ident") && has("ns") && has("md")) {
        return None;
    }
    let doc = RawDocument::from_bytes(bytes).ok()?;
    let ns = doc.get_str("ns").ok()?;
    let ident = doc.get_str("ident").ok()?;
    (ns.contains('.') && !ident.is_empty()).then(|| CatalogEntry {
        ident: ident.to_string(),
        ns: ns.to_string(),
        write_gen,
    })
}

/// Fetches the values stored in overflow pages: each leaf cell names its overflow block
/// by checksum and size; the block found with that checksum (and a size that is that
/// many allocation units) holds the document. Adds the documents to `docs` and the
/// overflow pages they live in to `finds.pages`.
pub fn resolve_overflow(
    finds: &mut PageFinds,
    sources: &[Source],
    mode: JsonMode,
    docs: &mut Vec<Found>,
) {
    let mut by_checksum: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, p) in finds.overflow.iter().enumerate() {
        by_checksum.entry(p.checksum).or_default().push(i);
    }
    let mut refs = std::mem::take(&mut finds.overflow_refs);
    // An overflow page belongs to the file of any leaf page pointing to it.
    let mut files: HashMap<u32, u32> = HashMap::new();
    for r in &refs {
        if let Some(file) = finds.pages.get(r.page as usize).and_then(|leaf| leaf.file) {
            files.insert(r.checksum, file);
        }
    }
    // Two versions of a leaf page point to the same unchanged value: one document.
    refs.sort_by_key(|r| (r.checksum, r.record));
    refs.dedup_by_key(|r| (r.checksum, r.record));
    let mut numbers: HashMap<usize, u32> = HashMap::new();
    for r in refs {
        let candidates = by_checksum.get(&r.checksum).map_or(&[][..], Vec::as_slice);
        let address = wt::Address {
            units: r.units,
            checksum: r.checksum,
        };
        let Some(&i) = candidates
            .iter()
            .find(|&&i| address.fits(finds.overflow[i].disk_size))
        else {
            log::info!(
                "overflow value of record {} not found (checksum {:08x})",
                r.record,
                r.checksum
            );
            continue;
        };
        let page = &finds.overflow[i];
        let Some(found) = overflow_document(&sources[page.source as usize], page, mode) else {
            continue;
        };
        let file = files.get(&r.checksum).copied();
        let number = *numbers.entry(i).or_insert_with(|| {
            finds.pages.push(WtPage {
                file,
                ..page.clone()
            });
            finds.pages.len() as u32 - 1
        });
        let mut found = found;
        found.entry.wt = Some(WtRef {
            page: number,
            record: r.record,
        });
        docs.push(found);
    }
}

/// Ties leaf pages to the file they belong to, where the file's name was lost (a raw
/// disk): WiredTiger's metadata names each file's checkpoint roots, and each internal
/// page names its children, all by checksum; the leaf pages reached from a file's roots
/// are that file's. Sets `file` on those pages and returns the file names, numbered.
pub fn assign_files(finds: &mut PageFinds) -> Vec<String> {
    if finds.roots.is_empty() {
        return Vec::new();
    }
    // Blocks by checksum: internal pages (children to visit) and leaf pages.
    let mut internal: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, (checksum, _, _)) in finds.internal.iter().enumerate() {
        internal.entry(*checksum).or_default().push(i);
    }
    let mut leaves: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, p) in finds.pages.iter().enumerate() {
        leaves.entry(p.checksum).or_default().push(i);
    }
    let mut names: Vec<String> = finds.roots.iter().map(|(n, _, _)| n.clone()).collect();
    names.sort();
    names.dedup();
    let mut seen = vec![false; finds.internal.len()];
    for (name, _, root) in &finds.roots {
        let file = names.binary_search(name).unwrap_or(0) as u32;
        let mut todo = vec![*root];
        while let Some(a) = todo.pop() {
            for &i in leaves.get(&a.checksum).map_or(&[][..], Vec::as_slice) {
                let page = &mut finds.pages[i];
                if a.fits(page.disk_size) && page.file.is_none() {
                    page.file = Some(file);
                }
            }
            for &i in internal.get(&a.checksum).map_or(&[][..], Vec::as_slice) {
                let (_, size, children) = &finds.internal[i];
                if a.fits(*size) && !std::mem::replace(&mut seen[i], true) {
                    todo.extend(children.iter().copied());
                }
            }
        }
    }
    names
}

/// Ties the leaf pages no traced file reached (old copies, whose internal pages and
/// metadata were overwritten) to the file holding the same records: a record id with
/// the same `_id` is one record of one collection. Each such page goes to the file most
/// of its records are found in.
pub fn adopt_orphans(finds: &mut PageFinds, docs: &[Found]) {
    if finds.roots.is_empty() || finds.pages.iter().all(|p| p.file.is_some()) {
        return;
    }
    let mut known: HashMap<(i64, &[u8]), u32, foldhash::fast::RandomState> = HashMap::default();
    for f in docs {
        if let Some(wt) = f.entry.wt
            && let Some(file) = finds.pages.get(wt.page as usize).and_then(|p| p.file)
        {
            known.insert((wt.record, &f.entry.id), file);
        }
    }
    let mut votes: HashMap<u32, HashMap<u32, usize>> = HashMap::new();
    for f in docs {
        if let Some(wt) = f.entry.wt
            && finds
                .pages
                .get(wt.page as usize)
                .is_some_and(|p| p.file.is_none())
            && let Some(&file) = known.get(&(wt.record, &f.entry.id[..]))
        {
            *votes.entry(wt.page).or_default().entry(file).or_default() += 1;
        }
    }
    for (page, counts) in votes {
        if let Some((&file, _)) = counts
            .iter()
            .max_by_key(|&(&t, &n)| (n, std::cmp::Reverse(t)))
        {
            finds.pages[page as usize].file = Some(file);
        }
    }
}

/// Reads an overflow block and describes the document it holds.
fn overflow_document(src: &Source, page: &WtPage, mode: JsonMode) -> Option<Found> {
    let mut block = vec![0u8; page.disk_size as usize];
    src.read_exact_at(&mut block, page.offset).ok()?;
    let h = wt::header(&block)?;
    if !wt::checksum_ok(&block, &h) {
        return None;
    }
    let mut image = Vec::new();
    wt::page_image(&block, &h, &mut image)?;
    let bytes = image.get(wt::HEADER_LEN..wt::HEADER_LEN + h.entries as usize)?;
    let mut found = documents::describe(bytes, mode)?;
    found.entry.source = page.source;
    found.entry.offset = wt::HEADER_LEN as u64;
    Some(found)
}

/// Puts the pages in disk order (the documents in `docs` follow their page) and sorts
/// the catalog.
pub fn order(finds: &mut PageFinds, docs: &mut [Found]) {
    let renumber;
    (finds.pages, renumber) = spans::in_disk_order(std::mem::take(&mut finds.pages));
    // Pages mostly are in disk order already (always, when there are none): then
    // the documents, millions of them, need not be visited.
    if renumber.iter().zip(0..).any(|(&new, old)| new != old) {
        for f in docs {
            if let Some(wt) = &mut f.entry.wt {
                wt.page = renumber[wt.page as usize];
            }
        }
    }
    finds.catalog.sort();
    finds.catalog.dedup();
}

/// Drops the documents found on the source inside a WiredTiger block (an uncompressed
/// page's records): the page's reading of them, with record id and write generation,
/// is the one kept.
pub fn drop_claimed(docs: &mut Vec<Found>, claimed: &mut [Span]) {
    spans::drop_claimed(docs, claimed, |f| &f.entry);
}
