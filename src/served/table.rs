//! The rows and name orders of an index, mapped (or held, for an index made in
//! memory), each block checked against its checksum the first time it is read: a
//! damaged block makes the reads that need it fail with EIO and is logged once, the
//! rest keeps serving.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};

use super::names;
use super::{BLOCK_ROWS, ROW_LEN, Row, Rows};

/// A block: not checked yet, checked and good, or damaged.
const UNCHECKED: u8 = 0;
const GOOD: u8 = 1;
const BAD: u8 = 2;

/// Fixed-width items at `start` of the file, a CRC-32 per block of [`BLOCK_ROWS`].
struct Blocks {
    what: &'static str,
    start: usize,
    width: usize,
    count: u64,
    sums: Vec<u32>,
    state: Vec<AtomicU8>,
}

impl Blocks {
    /// `None` when the items do not fit in `len` bytes or the sums do not match.
    fn new(
        what: &'static str,
        (start, width, count): (usize, usize, u64),
        sums: Vec<u32>,
        len: usize,
    ) -> Option<Blocks> {
        let bytes = usize::try_from(count).ok()?.checked_mul(width)?;
        let fits = start.checked_add(bytes)? <= len;
        (fits && sums.len() as u64 == count.div_ceil(BLOCK_ROWS)).then(|| Blocks {
            what,
            start,
            width,
            count,
            state: (0..sums.len()).map(|_| AtomicU8::new(UNCHECKED)).collect(),
            sums,
        })
    }

    /// Item `i`: EIO past the end or in a block that fails its checksum.
    fn get<'a>(&self, all: &'a [u8], i: u64) -> io::Result<&'a [u8]> {
        let eio = || io::Error::from_raw_os_error(libc::EIO);
        if i >= self.count {
            return Err(eio());
        }
        let block = (i / BLOCK_ROWS) as usize;
        let state = &self.state[block];
        if state.load(Ordering::Relaxed) == UNCHECKED {
            let first = block as u64 * BLOCK_ROWS;
            let end = (first + BLOCK_ROWS).min(self.count);
            let bytes = &all[self.at(first)..self.at(end)];
            match crc32fast::hash(bytes) == self.sums[block] {
                true => state.store(GOOD, Ordering::Relaxed),
                false if state.swap(BAD, Ordering::Relaxed) != BAD => log::error!(
                    "index {} {first}..{end} fail their checksum; what needs them reads as EIO (scan again with --rescan)",
                    self.what
                ),
                false => {}
            }
        }
        match state.load(Ordering::Relaxed) {
            BAD => Err(eio()),
            _ => Ok(&all[self.at(i)..self.at(i) + self.width]),
        }
    }

    fn at(&self, i: u64) -> usize {
        self.start + i as usize * self.width
    }
}

/// The documents' rows and, per `docs/` directory, their order by name.
pub struct DocTable {
    bytes: Box<dyn AsRef<[u8]> + Send + Sync>,
    rows: Blocks,
    names: Blocks,
    renamed: Vec<(u64, u32)>,
}

impl fmt::Debug for DocTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DocTable")
            .field("rows", &self.rows.count)
            .finish()
    }
}

impl DocTable {
    /// `rows` rows at byte `starts.0` of `bytes` and as many name entries at
    /// `starts.1`, `sums` holding a row and a name checksum per block, `renamed`
    /// sorted; `None` when the sizes disagree.
    pub fn new(
        bytes: Box<dyn AsRef<[u8]> + Send + Sync>,
        starts: (usize, usize),
        rows: u64,
        sums: &[u32],
        renamed: Vec<(u64, u32)>,
    ) -> Option<DocTable> {
        let len = (*bytes).as_ref().len();
        let row_sums = sums.iter().step_by(2).copied().collect();
        let name_sums = sums.iter().skip(1).step_by(2).copied().collect();
        let rows = Blocks::new("rows", (starts.0, ROW_LEN, rows), row_sums, len)?;
        let names = Blocks::new("names", (starts.1, 4, rows.count), name_sums, len)?;
        Some(DocTable {
            bytes,
            rows,
            names,
            renamed,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> u64 {
        self.rows.count
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.count == 0
    }

    /// Row number `row`.
    pub fn row(&self, row: u64) -> io::Result<Row> {
        let bytes = self.rows.get((*self.bytes).as_ref(), row)?;
        let bytes: &[u8; ROW_LEN] = bytes
            .try_into()
            .map_err(|_| io::Error::from_raw_os_error(libc::EIO))?;
        Ok(Row::decode(bytes))
    }

    /// The file name of row `row`'s document in its `docs/` directory, `.json` not
    /// included.
    pub fn name(&self, row: u64) -> io::Result<String> {
        let r = self.row(row)?;
        let again = match self.renamed.binary_search_by_key(&row, |&(r, _)| r) {
            Ok(at) => self.renamed[at].1,
            Err(_) => 0,
        };
        Ok(names::doc_name(&r.id, r.offset, again))
    }

    /// The row of the document of `list` whose name hash is the `j`th smallest.
    fn by_name(&self, list: Rows, j: u64) -> io::Result<u64> {
        let entry = self
            .names
            .get((*self.bytes).as_ref(), list.start.saturating_add(j))?;
        let at = u32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
        match u64::from(at) < list.count {
            true => Ok(list.start + u64::from(at)),
            false => Err(io::Error::from_raw_os_error(libc::EIO)),
        }
    }

    /// The row of the document of `list` named `name` (without `.json`), by binary
    /// search over the list's name order.
    pub fn find(&self, list: Rows, name: &str) -> Option<u64> {
        let hash = names::name_hash(name);
        let key = |j| -> Option<(u64, u64)> {
            let row = self.by_name(list, j).ok()?;
            Some((names::name_hash(&self.name(row).ok()?), row))
        };
        let (mut lo, mut hi) = (0, list.count);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match key(mid)?.0 < hash {
                true => lo = mid + 1,
                false => hi = mid,
            }
        }
        (lo..list.count)
            .map_while(|j| key(j).filter(|&(h, _)| h == hash))
            .find(|&(_, row)| self.name(row).is_ok_and(|n| n == name))
            .map(|(_, row)| row)
    }
}
