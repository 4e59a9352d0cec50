//! What the mount's files are read from: the sources, and the index's documents
//! rendered as Extended JSON on demand. A document read whole is rendered straight into
//! the reply; one read in pieces (split between two requests) goes through a bounded LRU
//! cache, so it is rendered once and memory stays bounded.
//! Documents are read through a small per-thread window of the source, so reading a
//! collection costs one `pread` per 256 KiB, not one per document. Documents of
//! WiredTiger pages are read from the page image, decompressed once per page and kept
//! (the thread's last page, and a bounded LRU cache shared by all threads).

use std::cell::RefCell;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::carve::wiredtiger;
use crate::extent::SourceReader;
use crate::extjson::{self, JsonMode};
use crate::index::WtPage;
use crate::served::{DocTable, Row};
use crate::source::Sources;

/// Bytes of rendered documents kept in memory at most.
const CACHE_BYTES: usize = 64 << 20;
/// Bytes of decompressed WiredTiger pages kept in memory at most.
const PAGE_CACHE_BYTES: usize = 64 << 20;

/// Bytes of source read at once for documents.
const WINDOW: usize = 256 << 10;

/// Tells one [`Content`] from another, so a thread's window is never used for the
/// sources of another mount (tests build several in one process).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A thread's last read of a source: `(content id, source, offset, bytes)`.
type Window = (u64, u32, u64, Vec<u8>);
/// A thread's last WiredTiger page image: `(content id, page, image)`.
type LastPage = Option<(u64, u32, Arc<[u8]>)>;

thread_local! {
    static LAST_READ: RefCell<Window> = const { RefCell::new((u64::MAX, 0, 0, Vec::new())) };
    /// A document's BSON bytes, before rendering.
    static BSON: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// The last WiredTiger page image the thread read a document from.
    static LAST_PAGE: RefCell<LastPage> = const { RefCell::new(None) };
}

/// Sources plus documents: the [`SourceReader`] behind every mounted file.
pub struct Content {
    id: u64,
    sources: Sources,
    docs: Arc<DocTable>,
    pages: Vec<WtPage>,
    mode: JsonMode,
    cache: Mutex<Cache<(u64, bool)>>,
    page_cache: Mutex<Cache<u32>>,
}

/// An LRU cache bounded by the bytes it holds.
struct Cache<K: std::hash::Hash + Eq> {
    entries: LruCache<K, Arc<[u8]>>,
    bytes: usize,
    limit: usize,
}

impl<K: std::hash::Hash + Eq> Cache<K> {
    fn new(limit: usize) -> Mutex<Cache<K>> {
        Mutex::new(Cache {
            entries: LruCache::unbounded(),
            bytes: 0,
            limit,
        })
    }

    fn insert(&mut self, key: K, value: Arc<[u8]>) {
        self.bytes += value.len();
        if let Some((_, old)) = self.entries.push(key, value) {
            self.bytes -= old.len();
        }
        while self.bytes > self.limit {
            match self.entries.pop_lru() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
        }
    }
}

impl Content {
    /// Serves `sources` and renders `docs` (the index's document rows, some of them in
    /// the WiredTiger `pages`) in `mode`.
    pub fn new(
        sources: Sources,
        docs: Arc<DocTable>,
        pages: Vec<WtPage>,
        mode: JsonMode,
    ) -> Content {
        Content {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            sources,
            docs,
            pages,
            mode,
            cache: Cache::new(CACHE_BYTES),
            page_cache: Cache::new(PAGE_CACHE_BYTES),
        }
    }

    /// The image of WiredTiger page `page`: the thread's last one, a cached one, or
    /// the block read and decompressed again. A block that no longer matches the
    /// checksum the scan saw is EIO: the source changed under the index.
    fn page_image(&self, page: u32) -> io::Result<Arc<[u8]>> {
        let held = LAST_PAGE.with_borrow(|last| match last {
            Some((id, p, image)) if *id == self.id && *p == page => Some(image.clone()),
            _ => None,
        });
        if let Some(image) = held {
            return Ok(image);
        }
        let lock = || self.page_cache.lock().unwrap_or_else(|e| e.into_inner());
        let cached = lock().entries.get(&page).cloned();
        let image = match cached {
            Some(image) => image,
            None => {
                let image: Arc<[u8]> = self.decode_page(page)?.into();
                lock().insert(page, image.clone());
                image
            }
        };
        LAST_PAGE.set(Some((self.id, page, image.clone())));
        Ok(image)
    }

    fn decode_page(&self, page: u32) -> io::Result<Vec<u8>> {
        let eio = || io::Error::from_raw_os_error(libc::EIO);
        let p = self.pages.get(page as usize).ok_or_else(eio)?;
        let mut block = vec![0u8; p.disk_size as usize];
        self.sources.read_source(p.source, p.offset, &mut block)?;
        let h = wiredtiger::header(&block).ok_or_else(eio)?;
        if h.checksum != p.checksum || !wiredtiger::checksum_ok(&block, &h) {
            log::warn!("WiredTiger block at {} changed since the scan", p.offset);
            return Err(eio());
        }
        let mut image = Vec::new();
        match wiredtiger::page_image(&block, &h, &mut image) {
            Some(codec) if codec == p.codec => Ok(image),
            _ => Err(eio()),
        }
    }

    /// Runs `f` on the stored BSON bytes of `d` (a deleted record's length restored).
    fn with_bson<T>(&self, d: &Row, f: impl FnOnce(&[u8]) -> io::Result<T>) -> io::Result<T> {
        if let Some(page) = d.page {
            let image = self.page_image(page)?;
            let bytes = usize::try_from(d.offset)
                .ok()
                .and_then(|at| image.get(at..at.checked_add(d.len as usize)?))
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))?;
            return f(bytes);
        }
        BSON.with_borrow_mut(|bytes| {
            bytes.resize(d.len as usize, 0);
            self.read_windowed(d.source, d.offset, bytes)?;
            if d.deleted && bytes.len() >= 4 {
                // The record's length was overwritten when it was deleted.
                bytes[..4].copy_from_slice(&d.len.to_le_bytes());
            }
            f(bytes)
        })
    }

    /// Fills `buf` from `source` at `offset` through this thread's window, refilled
    /// from `offset` on when it does not hold the bytes. A window that cannot be read
    /// whole (a bad sector further on) falls back to reading just `buf`.
    fn read_windowed(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let size = self.sources.size(source).unwrap_or(0);
        let end = offset.saturating_add(buf.len() as u64);
        if buf.len() > WINDOW / 2 || end > size {
            return self.sources.read_source(source, offset, buf);
        }
        LAST_READ.with_borrow_mut(|(id, src, start, data)| {
            let held = *id == self.id
                && *src == source
                && offset >= *start
                && end <= *start + data.len() as u64;
            if !held {
                data.resize((size - offset).min(WINDOW as u64) as usize, 0);
                if let Err(e) = self.sources.read_source(source, offset, data) {
                    *id = u64::MAX;
                    log::debug!("window at {offset}: {e}; reading the document alone");
                    return self.sources.read_source(source, offset, buf);
                }
                (*id, *src, *start) = (self.id, source, offset);
            }
            let at = (offset - *start) as usize;
            buf.copy_from_slice(&data[at..at + buf.len()]);
            Ok(())
        })
    }
}

impl SourceReader for Content {
    fn mapped(&self, source: u32, offset: u64, len: usize) -> Option<&[u8]> {
        self.sources.mapped(source, offset, len)
    }

    fn read_source(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.sources.read_source(source, offset, buf)
    }

    fn render_document(&self, doc: u64, pretty: bool, out: &mut Vec<u8>) -> io::Result<()> {
        self.with_bson(&self.docs.row(doc)?, |bytes| {
            extjson::render(bytes, self.mode, pretty, out)
                .map_err(|_| io::Error::from_raw_os_error(libc::EIO))?;
            out.push(b'\n');
            Ok(())
        })
    }

    fn document(&self, doc: u64, pretty: bool) -> io::Result<Arc<[u8]>> {
        let lock = || self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(text) = lock().entries.get(&(doc, pretty)) {
            return Ok(text.clone());
        }
        let mut text = Vec::new();
        self.render_document(doc, pretty, &mut text)?;
        let text: Arc<[u8]> = text.into();
        lock().insert((doc, pretty), text.clone());
        Ok(text)
    }

    fn read_stored(&self, doc: u64, within: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with_bson(&self.docs.row(doc)?, |bytes| {
            let part = usize::try_from(within)
                .ok()
                .and_then(|at| bytes.get(at..at.checked_add(buf.len())?))
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EIO))?;
            buf.copy_from_slice(part);
            Ok(())
        })
    }
}
