//! What the mount's files are read from: the sources, and the index's documents
//! rendered as Extended JSON on demand, kept in a bounded LRU cache so that a
//! sequential `cat` of a collection renders each document once and memory stays bounded.

use std::io;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::extent::SourceReader;
use crate::extjson::{self, JsonMode};
use crate::index::DocEntry;
use crate::source::Sources;

/// Bytes of rendered documents kept in memory at most.
const CACHE_BYTES: usize = 64 << 20;

/// Sources plus documents: the [`SourceReader`] behind every mounted file.
pub struct Content {
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
            sources,
            docs,
            mode,
            cache: Mutex::new(Cache {
                entries: LruCache::new(NonZeroUsize::new(1 << 20).unwrap_or(NonZeroUsize::MIN)),
                bytes: 0,
            }),
        }
    }

    /// The BSON bytes of document `doc` as stored, with the length of a deleted record
    /// restored.
    pub fn bson(&self, doc: u32) -> io::Result<Vec<u8>> {
        let d = self.docs.get(doc as usize).ok_or(io::ErrorKind::NotFound)?;
        let mut bytes = vec![0u8; d.len as usize];
        self.sources.read_source(d.source, d.offset, &mut bytes)?;
        if d.deleted {
            bytes[..4].copy_from_slice(&d.len.to_le_bytes());
        }
        Ok(bytes)
    }
}

impl SourceReader for Content {
    fn read_source(&self, source: u32, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.sources.read_source(source, offset, buf)
    }

    fn document(&self, doc: u32, pretty: bool) -> io::Result<Arc<[u8]>> {
        let lock = || self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(text) = lock().entries.get(&(doc, pretty)) {
            return Ok(text.clone());
        }
        let bytes = self.bson(doc)?;
        let mut text = Vec::new();
        extjson::render(&bytes, self.mode, pretty, &mut text)
            .map_err(|_| io::Error::from_raw_os_error(libc::EIO))?;
        text.push(b'\n');
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
