//! Lays classified documents out as rows, with each collection's name order, and
//! saves them in the index: a stream in, a stream out, whatever the number of
//! documents.

use std::io::{self, Seek, Write};
use std::iter::Peekable;
use std::path::Path;

use super::names;
use super::{
    BLOCK_ROWS, Classified, Row, Rows, ServedCollection, ServedConflict, read_range,
    unreadable_bytes,
};
use crate::classify::{Classification, List, Placed};
use crate::index::Index;
use crate::index::file::{self, Section};
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
/// per block.
struct Blocks<'a> {
    out: &'a mut dyn Write,
    entries: u64,
    crc: crc32fast::Hasher,
    sums: Vec<u32>,
}

impl<'a> Blocks<'a> {
    fn new(out: &'a mut dyn Write) -> Blocks<'a> {
        Blocks {
            out,
            entries: 0,
            crc: crc32fast::Hasher::new(),
            sums: Vec::new(),
        }
    }

    fn push(&mut self, entry: &[u8]) -> io::Result<()> {
        self.out.write_all(entry)?;
        self.crc.update(entry);
        self.entries += 1;
        if self.entries.is_multiple_of(BLOCK_ROWS) {
            self.sums.push(std::mem::take(&mut self.crc).finalize());
        }
        Ok(())
    }

    fn finish(mut self) -> Vec<u32> {
        if !self.entries.is_multiple_of(BLOCK_ROWS) {
            self.sums.push(self.crc.finalize());
        }
        self.sums
    }
}

/// Writes rows and, per list, its name order.
struct RowWriter<'a, 'b> {
    index: &'b Index,
    spill: &'b Spill,
    rows: Blocks<'a>,
    names: Blocks<'a>,
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
        let mut rows = Rows {
            start: self.rows.entries,
            ..Rows::default()
        };
        let mut chosen = None;
        let here =
            |p: &io::Result<Placed>| p.as_ref().is_ok_and(|p| (p.coll, p.list) == (coll, list));
        let (index, spill) = (self.index, self.spill);
        let mut order = names::NameOrder::new(spill);
        while let Some(p) = placed.next_if(here) {
            let Placed {
                entry: d,
                chosen: is_chosen,
                ..
            } = p?;
            self.rows
                .push(&Row::of(&d, rows.bson, rows.json).encode())?;
            if is_chosen {
                chosen = Some(rows.count);
            }
            if named && rows.count < u64::from(u32::MAX) {
                order.push(&d.id, d.offset)?;
            }
            rows.count += 1;
            rows.bson += u64::from(d.len);
            rows.json += u64::from(d.json_len);
            rows.pretty += u64::from(d.pretty_len);
            let (start, end) = read_range(&index.wt_pages, d.page, d.offset, d.len);
            rows.unreadable += unreadable_bytes(&index.bad_ranges, d.source, start, end);
        }
        let names = &mut self.names;
        let mut written = 0u64;
        if named {
            let again = order.finish(spill, |j| {
                written += 1;
                names.push(&j.to_le_bytes())
            })?;
            let renamed = again
                .into_iter()
                .map(|(j, n)| (rows.start + u64::from(j), n));
            self.renamed.extend(renamed);
        }
        // A list that is not a directory has unused name entries, and so has a
        // directory past four billion documents beyond them.
        for j in written..rows.count {
            let entry = if named { u32::MAX } else { j as u32 };
            names.push(&entry.to_le_bytes())?;
        }
        Ok((rows, chosen))
    }
}

/// Writes the documents of `index` as `classification` placed them (by the schema of
/// fingerprint `schema`) as rows into `out` and their name orders into `names`;
/// returns the rest of what the index keeps about them.
pub fn lay_out(
    index: &Index,
    classification: Classification,
    schema: Option<[u8; 16]>,
    spill: &Spill,
    (out, names): (&mut dyn Write, &mut dyn Write),
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
    let row_sums = w.rows.finish();
    let name_sums = w.names.finish();
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

/// Saves `index` atomically at `path`, its documents copied from `docs` and laid out
/// as `classification` placed them (by the schema of fingerprint `schema`): what a
/// mount serves without classifying. The name orders wait in a file of `spill`'s.
pub fn save(
    index: &Index,
    docs: &DocsFile,
    (classification, schema): (Classification, Option<[u8; 16]>),
    spill: &Spill,
    path: &Path,
) -> io::Result<()> {
    // Buffered: a name entry is four bytes, and each was once a system call.
    let mut names = io::BufWriter::new(spill.file()?);
    file::save_atomically(path, true, |w| {
        index.write_head_and_meta(w)?;
        w.section(Section::Docs, |out| docs.copy_to(out))?;
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
        let mut names = names.into_inner().map_err(|e| e.into_error())?;
        names.rewind()?;
        w.section(Section::Names, |out| io::copy(&mut names, out).map(|_| ()))?;
        w.value(Section::Collections, &laid.classified)?;
        w.value(Section::Renamed, &laid.renamed)?;
        w.section(Section::RowChecksums, |out| {
            let sums = laid.sums.iter();
            sums.into_iter()
                .try_for_each(|s| out.write_all(&s.to_le_bytes()))
        })
    })
}
