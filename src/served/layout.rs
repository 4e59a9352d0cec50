//! Lays classified documents out as rows, with each collection's name order, and
//! saves them in the index.

use std::io::{self, Write};
use std::path::Path;

use super::names;
use super::{
    BLOCK_ROWS, Classified, Row, Rows, ServedCollection, ServedConflict, read_range,
    unreadable_bytes,
};
use crate::classify::Collections;
use crate::index::Index;
use crate::index::file::{self, Section};

/// What laying out the rows gives besides the rows themselves.
pub struct Laid {
    /// The collections section.
    pub classified: Classified,
    /// The name order of each list, a u32 per row (see [`Section::Names`]).
    pub names: Vec<u8>,
    /// `(row, n)`: the documents whose file name needs a number `n` to be unique.
    pub renamed: Vec<(u64, u32)>,
    /// Per block of rows, the CRC-32 of the rows, then of their name entries.
    pub sums: Vec<u32>,
}

/// Writes rows, counting them and a CRC-32 per block, and the lists' name orders.
struct RowWriter<'a> {
    out: &'a mut dyn Write,
    rows: u64,
    crc: crc32fast::Hasher,
    row_sums: Vec<u32>,
    names: Vec<u8>,
    renamed: Vec<(u64, u32)>,
}

impl RowWriter<'_> {
    fn push(&mut self, row: &Row) -> io::Result<()> {
        let bytes = row.encode();
        self.out.write_all(&bytes)?;
        self.crc.update(&bytes);
        self.rows += 1;
        if self.rows.is_multiple_of(BLOCK_ROWS) {
            self.row_sums.push(std::mem::take(&mut self.crc).finalize());
        }
        Ok(())
    }

    /// Writes documents `docs` of `index` as one list; with `named`, the list is a
    /// `docs/` directory and gets its name order, else its name entries are unused.
    fn list(&mut self, index: &Index, docs: &[usize], named: bool) -> io::Result<Rows> {
        let mut rows = Rows {
            start: self.rows,
            ..Rows::default()
        };
        for &i in docs {
            let d = &index.docs[i];
            self.push(&Row::of(d, rows.bson, rows.json))?;
            rows.count += 1;
            rows.bson += u64::from(d.len);
            rows.json += u64::from(d.json_len);
            rows.pretty += u64::from(d.pretty_len);
            let page = d.wt.map(|w| w.page);
            let (start, end) = read_range(&index.wt_pages, page, d.offset, d.len);
            rows.unreadable += unreadable_bytes(&index.bad_ranges, d.source, start, end);
        }
        let count = u32::try_from(docs.len()).unwrap_or(u32::MAX);
        let order = match named {
            true => {
                let base = |j: u32| {
                    let d = &index.docs[docs[j as usize]];
                    names::id_name(&d.id, d.offset)
                };
                let (order, again) = names::order(count, base);
                let renamed = again
                    .into_iter()
                    .map(|(j, n)| (rows.start + u64::from(j), n));
                self.renamed.extend(renamed);
                order
            }
            false => (0..count).collect(),
        };
        self.names
            .extend(order.iter().flat_map(|j| j.to_le_bytes()));
        // A list longer than u32 (four billion documents) has no name order past it.
        let missing = docs.len().saturating_sub(order.len());
        self.names.extend(std::iter::repeat_n(0xff, missing * 4));
        Ok(rows)
    }

    /// The checksums of both tables, block by block.
    fn finish(mut self) -> (Vec<u8>, Vec<(u64, u32)>, Vec<u32>) {
        if !self.rows.is_multiple_of(BLOCK_ROWS) {
            self.row_sums.push(self.crc.finalize());
        }
        let name_sums = self
            .names
            .chunks(BLOCK_ROWS as usize * 4)
            .map(crc32fast::hash);
        let sums = self.row_sums.iter().zip(name_sums);
        let sums = sums.flat_map(|(&r, n)| [r, n]).collect();
        (self.names, self.renamed, sums)
    }
}

/// Writes the documents of `index` sorted into `collections` (by the schema of
/// fingerprint `schema`) as rows into `out`; returns the rest of what the index keeps
/// about them.
pub fn lay_out(
    index: &Index,
    collections: &Collections,
    schema: Option<[u8; 16]>,
    out: &mut dyn Write,
) -> io::Result<Laid> {
    let mut w = RowWriter {
        out,
        rows: 0,
        crc: crc32fast::Hasher::new(),
        row_sums: Vec::new(),
        names: Vec::new(),
        renamed: Vec::new(),
    };
    let mut served = Vec::with_capacity(collections.len());
    for (ns, c) in collections {
        let live = w.list(index, &c.docs, true)?;
        let deleted = w.list(index, &c.deleted, false)?;
        let conflicts = c
            .conflicts
            .iter()
            .map(|conflict| {
                Ok(ServedConflict {
                    rows: w.list(index, &conflict.versions, false)?,
                    chosen: conflict.chosen.and_then(|chosen| {
                        let at = conflict.versions.iter().position(|&v| v == chosen)?;
                        Some(at as u64)
                    }),
                })
            })
            .collect::<io::Result<_>>()?;
        served.push(ServedCollection {
            ns: ns.clone(),
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
    let rows = w.rows;
    let (names, renamed, sums) = w.finish();
    let classified = Classified {
        schema,
        rows,
        collections: served,
    };
    Ok(Laid {
        classified,
        names,
        renamed,
        sums,
    })
}

/// Saves `index` atomically at `path` with its documents sorted into `collections`
/// (by the schema of fingerprint `schema`): what a mount serves without classifying.
pub fn save(
    index: &Index,
    collections: &Collections,
    schema: Option<[u8; 16]>,
    path: &Path,
) -> io::Result<()> {
    file::save_atomically(path, |w| {
        index.write_sections(w)?;
        let mut laid = None;
        w.section(Section::Rows, |out| {
            laid = Some(lay_out(index, collections, schema, out)?);
            Ok(())
        })?;
        let laid = laid.ok_or_else(|| io::Error::other("rows not laid out"))?;
        w.section(Section::Names, |out| out.write_all(&laid.names))?;
        w.value(Section::Collections, &laid.classified)?;
        w.value(Section::Renamed, &laid.renamed)?;
        w.section(Section::RowChecksums, |out| {
            let sums = laid.sums.iter();
            sums.into_iter()
                .try_for_each(|s| out.write_all(&s.to_le_bytes()))
        })
    })
}
