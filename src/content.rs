//! What the mount's files are read from: the sources, and the index's documents
//! rendered as Extended JSON on demand. A document read whole is rendered straight into
//! the reply; one read in pieces (split between two requests) goes through a bounded LRU
//! cache, so it is rendered once and memory stays bounded.
//! Documents are read through a small per-thread window of the source, so reading a
//! collection costs one `pread` per 256 KiB, not one per document.

use std::cell::RefCell;
use std::io;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::extent::SourceReader;
use crate::extjson::{self, JsonMode};
use crate::index::DocEntry;
use crate::source::Sources;

/// Bytes of rendered documents kept in memory at most.
const CACHE_BYTES: usize = 64 << 20;

/// Bytes of source read at once for documents.
const WINDOW: usize = 256 << 10;

/// Tells one [`Content`] from another, so a thread's window is never used for the
/// sources of another mount (tests build several in one process).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A thread's last read of a source: `(content id, source, offset, bytes)`.
type Window = (u64, u32, u64, Vec<u8>);

thread_local! {
    static LAST_READ: RefCell<Window> = const { RefCell::new((u64::MAX, 0, 0, Vec::new())) };
    /// A document's BSON bytes, before rendering.
    static BSON: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Sources plus documents: the [`SourceReader`] behind every mounted file.
pub struct Content {
    id: u64,
    sources: Sources,
    docs: Vec<DocEntry>,
    mode: JsonMode,
    cache: Mutex<Cache>,
}

struct Cache {
    entries: LruCache<(u32, bool), Arc<[u8]>>,
    bytes: usize,
}

impl Content {
    /// Serves `sources` and renders `docs` (the index's documents) in `mode`.
    pub fn new(sources: Sources, docs: Vec<DocEntry>, mode: JsonMode) -> Content {
        Content {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            sources,
            docs,
            mode,
            cache: Mutex::new(Cache {
                entries: LruCache::new(NonZeroUsize::new(1 << 20).unwrap_or(NonZeroUsize::MIN)),
                bytes: 0,
            }),
        }
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
    fn read_source(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.sources.read_source(source, offset, buf)
    }

    fn render_document(&self, doc: u32, pretty: bool, out: &mut Vec<u8>) -> io::Result<()> {
        let d = self.docs.get(doc as usize).ok_or(io::ErrorKind::NotFound)?;
        BSON.with_borrow_mut(|bytes| {
            bytes.resize(d.len as usize, 0);
            self.read_windowed(d.source, d.offset, bytes)?;
            if d.deleted {
                // The record's length was overwritten when it was deleted.
                bytes[..4].copy_from_slice(&d.len.to_le_bytes());
            }
            extjson::render(bytes, self.mode, pretty, out)
                .map_err(|_| io::Error::from_raw_os_error(libc::EIO))?;
            out.push(b'\n');
            Ok(())
        })
    }

    fn document(&self, doc: u32, pretty: bool) -> io::Result<Arc<[u8]>> {
        let lock = || self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(text) = lock().entries.get(&(doc, pretty)) {
            return Ok(text.clone());
        }
        let mut text = Vec::new();
        self.render_document(doc, pretty, &mut text)?;
        let text: Arc<[u8]> = text.into();
        let mut cache = lock();
        cache.bytes += text.len();
        if let Some((_, old)) = cache.entries.push((doc, pretty), text.clone()) {
            cache.bytes -= old.len();
        }
        while cache.bytes > CACHE_BYTES {
            match cache.entries.pop_lru() {
                Some((_, old)) => cache.bytes -= old.len(),
                None => break,
            }
        }
        Ok(text)
    }
}
