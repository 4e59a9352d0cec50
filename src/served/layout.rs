//! Lays classified documents out as rows, with each collection's name order, and
//! saves them in the index: a stream in, a stream out, whatever the number of
//! documents.

use std::io::{self, Seek, Write};
use std::iter::Peekable;
use std::path::Path;
use std::sync::mpsc;

use super::names;
use super::{
    BLOCK_ROWS, Classified, Row, Rows, ServedCollection, ServedConflict, read_range,
    unreadable_bytes,
};
use crate::carve::bson::DocId;
use crate::classify::{Classification, List, Placed, RowSource};
use crate::index::Index;
use crate::index::file::{Pending, Section};
use crate::index::stream::DocsFile;
use crate::spill::{Sorted, Spill};

/// What laying out the rows gives besides the rows and name order themselves.
pub struct Laid {
    /// The collections section.
    pub classified: Classified,
    /// `(row, n)`: the documents whose file name needs a number `n` to be unique.
    pub renamed: Vec<(u64, u32)>,
    /// Per block of rows, the CRC-32 of the rows, then of their name entries.
    pub sums: Vec<u32>,
}

/// Writes a table in blocks of [`BLOCK_ROWS`] entries, counting them and a CRC-32
/// per block. A block is gathered, then checksummed and written whole: entries of a
/// few bytes, each checksummed on its own, took the CRC's slow path for short input.
struct Blocks<'a, W: Write + ?Sized> {
    out: &'a mut W,
    entries: u64,
    block: Vec<u8>,
    sums: Vec<u32>,
}

impl<'a, W: Write + ?Sized> Blocks<'a, W> {
    fn new(out: &'a mut W) -> Blocks<'a, W> {
        Blocks {
            out,
            entries: 0,
            block: Vec::new(),
            sums: Vec::new(),
        }
    }

    fn push(&mut self, entry: &[u8]) -> io::Result<()> {
        self.block.extend_from_slice(entry);
        self.entries += 1;
        match self.entries.is_multiple_of(BLOCK_ROWS) {
            true => self.end_block(),
            false => Ok(()),
        }
    }

    /// Checksums and writes the block gathered.
    fn end_block(&mut self) -> io::Result<()> {
        self.sums.push(crc32fast::hash(&self.block));
        self.out.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }

    /// The checksums of every block, the last one written.
    fn finish(mut self) -> io::Result<Vec<u32>> {
        if !self.entries.is_multiple_of(BLOCK_ROWS) {
            self.end_block()?;
        }
        Ok(self.sums)
    }
}

/// Documents handed at once to the thread making a directory's name order.
const NAME_BATCH: usize = 4096;

/// Writes rows and, per list, its name order.
struct RowWriter<'a, 'b> {
    index: &'b Index,
    spill: &'b Spill,
    rows: Blocks<'a, dyn Write + 'a>,
    names: Blocks<'a, dyn Write + Send + 'a>,
    renamed: Vec<(u64, u32)>,
}

impl RowWriter<'_, '_> {
    /// Writes the documents `placed` holds next for collection `coll`'s list `list`
    /// as one list of rows; with `named`, the list is a `docs/` directory and gets its
    /// name order, else its name entries are unused. Returns the list and, for a
    /// conflict, its chosen version.
    fn list<I: Iterator<Item = io::Result<Placed>>>(
        &mut self,
        placed: &mut Peekable<I>,
        (coll, list): (u32, List),
        named: bool,
    ) -> io::Result<(Rows, Option<u64>)> {
        let (rows, chosen, written) = match named {
            true => self.named_rows(placed, (coll, list))?,
            false => {
                let (rows, chosen) =
                    write_rows(self.index, &mut self.rows, placed, (coll, list), |_| {})?;
                (rows, chosen, 0)
            }
        };
        // A list that is not a directory has unused name entries, and so has a
        // directory past four billion documents beyond them.
        for j in written..rows.count {
            let entry = if named { u32::MAX } else { j as u32 };
            self.names.push(&entry.to_le_bytes())?;
        }
        Ok((rows, chosen))
    }

    /// Writes a `docs/` directory's rows as [`RowWriter::list`] does, while another
    /// thread makes its name order from their `_id`s (hashing every name and sorting
    /// them took as long as the rows themselves: 2 million documents, half a second on
    /// one core, the other idle). Also returns how many name entries it wrote.
    fn named_rows<I: Iterator<Item = io::Result<Placed>>>(
        &mut self,
        placed: &mut Peekable<I>,
        (coll, list): (u32, List),
    ) -> io::Result<(Rows, Option<u64>, u64)> {
        let (index, spill, names) = (self.index, self.spill, &mut self.names);
        let (rows, (written, again)) = std::thread::scope(|s| {
            let (to_namer, batches) = mpsc::sync_channel::<Vec<(DocId, u64)>>(4);
            let namer = s.spawn(move || {
                let mut order = names::NameOrder::new(spill)?;
                for (id, offset) in batches.iter().flatten() {
                    order.push(&id, offset)?;
                }
                let mut written = 0u64;
                let again = order.finish(spill, |j| {
                    written += 1;
                    names.push(&j.to_le_bytes())
                })?;
                Ok::<_, io::Error>((written, again))
            });
            let (mut batch, mut named) = (Vec::with_capacity(NAME_BATCH), 0u64);
            let rows = write_rows(index, &mut self.rows, placed, (coll, list), |d| {
                if named < u64::from(u32::MAX) {
                    batch.push((d.id.clone(), d.offset));
                    named += 1;
                }
                if batch.len() == NAME_BATCH {
                    // A namer that stopped tells why when joined.
                    let _ = to_namer.send(std::mem::take(&mut batch));
                }
            });
            let _ = to_namer.send(batch);
            drop(to_namer);
            let failed = || io::Error::other("the thread ordering document names failed");
            let order = namer.join().unwrap_or_else(|_| Err(failed()));
            rows.and_then(|rows| Ok((rows, order?)))
        })?;
        let (rows, chosen) = rows;
        let again = again.into_iter();
        let renamed = again.map(|(j, n)| (rows.start + u64::from(j), n));
        self.renamed.extend(renamed);
        Ok((rows, chosen, written))
    }
}

/// Writes the documents `placed` holds next for collection `coll`'s list `list` as
/// rows into `out`, handing each to `each`; returns the list and, for a conflict,
/// its chosen version.
fn write_rows<I: Iterator<Item = io::Result<Placed>>>(
    index: &Index,
    out: &mut Blocks<'_, dyn Write + '_>,
    placed: &mut Peekable<I>,
    (coll, list): (u32, List),
    mut each: impl FnMut(&RowSource),
) -> io::Result<(Rows, Option<u64>)> {
    let mut rows = Rows {
        start: out.entries,
        ..Rows::default()
    };
    let mut chosen = None;
    let here = |p: &io::Result<Placed>| p.as_ref().is_ok_and(|p| (p.coll, p.list) == (coll, list));
    while let Some(p) = placed.next_if(here) {
        let Placed {
            entry: d,
            chosen: is_chosen,
            ..
        } = p?;
        out.push(&Row::of(&d, rows.bson, rows.json).encode())?;
        if is_chosen {
            chosen = Some(rows.count);
        }
        each(&d);
        rows.count += 1;
        rows.bson += u64::from(d.len);
        rows.json += u64::from(d.json_len);
        rows.pretty += u64::from(d.pretty_len);
        let (start, end) = read_range(&index.wt_pages, d.page, d.offset, d.len);
        rows.unreadable += unreadable_bytes(&index.bad_ranges, d.source, start, end);
    }
    Ok((rows, chosen))
}

/// Writes the documents of `index` as `classification` placed them (by the schema of
/// fingerprint `schema`) as rows into `out` and their name orders into `names`;
/// returns the rest of what the index keeps about them.
pub fn lay_out(
    index: &Index,
    classification: Classification,
    schema: Option<[u8; 16]>,
    spill: &Spill,
    (out, names): (&mut dyn Write, &mut (dyn Write + Send)),
) -> io::Result<Laid> {
    let mut w = RowWriter {
        index,
        spill,
        rows: Blocks::new(out),
        names: Blocks::new(names),
        renamed: Vec::new(),
    };
    let Classification {
        collections,
        placed,
    } = classification;
    let mut placed: Peekable<Sorted<Placed>> = placed.peekable();
    let mut served = Vec::with_capacity(collections.len());
    for (ns, c) in collections {
        if matches!(placed.peek(), Some(Err(_))) {
            placed.next().transpose()?;
        }
        let Some(Ok(first)) = placed.peek() else {
            break;
        };
        let coll = first.coll;
        let (live, _) = w.list(&mut placed, (coll, List::Live), true)?;
        let (deleted, _) = w.list(&mut placed, (coll, List::Deleted), false)?;
        let mut conflicts = Vec::new();
        while let Some(Ok(Placed {
            coll: c2,
            list: List::Conflict(k),
            ..
        })) = placed.peek()
            && *c2 == coll
        {
            let k = *k;
            let (rows, chosen) = w.list(&mut placed, (coll, List::Conflict(k)), false)?;
            conflicts.push(ServedConflict { rows, chosen });
        }
        served.push(ServedCollection {
            ns,
            named_by: c.named_by,
            learned: c.learned as u64,
            chained: c.chained as u64,
            live,
            deleted,
            conflicts,
            duplicates: c.duplicates as u64,
            doubted: c.doubted,
            decided: c.decided,
        });
    }
    if let Some(p) = placed.next() {
        p?;
        return Err(io::Error::other("documents placed in no collection"));
    }
    let rows = w.rows.entries;
    let row_sums = w.rows.finish()?;
    let name_sums = w.names.finish()?;
    let sums = row_sums
        .into_iter()
        .zip(name_sums)
        .flat_map(|(r, n)| [r, n])
        .collect();
    let classified = Classified {
        schema,
        rows,
        collections: served,
    };
    Ok(Laid {
        classified,
        renamed: w.renamed,
        sums,
    })
}

/// Where the documents of a classified index come from.
pub enum DocsFrom<'a> {
    /// The documents section of the unclassified index saved before classifying.
    File(&'a DocsFile),
    /// The index itself, begun while the documents were classified: its head, meta and
    /// documents sections are written (see [`begin`]).
    Begun(Box<Pending>),
}

/// Begins the index of `index` at `path` with its head, meta and documents sections,
/// for [`save`] to finish once they are classified: a short scan's documents are
/// written once, while they are classified, not saved unclassified first and copied.
pub fn begin(index: &Index, path: &Path) -> io::Result<Pending> {
    let mut pending = Pending::create(path)?;
    index.write_sections(pending.writer())?;
    pending.start_writeback();
    Ok(pending)
}

/// Saves `index` atomically at `path` (a begun index knows its own), with the
/// documents of `docs`, laid out as `classification` placed them (by the schema of
/// fingerprint `schema`): what a mount serves without classifying. The name orders
/// wait in a file of `spill`'s.
pub fn save(
    index: &Index,
    docs: DocsFrom,
    (classification, schema): (Classification, Option<[u8; 16]>),
    spill: &Spill,
    path: &Path,
) -> io::Result<()> {
    let mut pending = match docs {
        DocsFrom::Begun(pending) => *pending,
        DocsFrom::File(file) => {
            let mut pending = Pending::create(path)?;
            index.write_head_and_meta(pending.writer())?;
            pending
                .writer()
                .copied_section(Section::Docs, file.section()?)?;
            pending
        }
    };
    let w = pending.writer();
    // Buffered: a name entry is four bytes, and each was once a system call.
    let mut names = io::BufWriter::new(spill.file()?);
    let mut laid = None;
    w.section(Section::Rows, |out| {
        laid = Some(lay_out(
            index,
            classification,
            schema,
            spill,
            (out, &mut names),
        )?);
        Ok(())
    })?;
    let laid = laid.ok_or_else(|| io::Error::other("rows not laid out"))?;
    // The rows (most of what is left) reach the disk while the name orders are
    // copied in, not all during the fsync that ends the save.
    pending.start_writeback();
    let w = pending.writer();
    let mut names = names.into_inner().map_err(|e| e.into_error())?;
    names.rewind()?;
    w.section(Section::Names, |out| io::copy(&mut names, out).map(|_| ()))?;
    w.value(Section::Collections, &laid.classified)?;
    w.value(Section::Renamed, &laid.renamed)?;
    w.section(Section::RowChecksums, |out| {
        laid.sums
            .iter()
            .try_for_each(|s| out.write_all(&s.to_le_bytes()))
    })?;
    pending.commit(true)
}
