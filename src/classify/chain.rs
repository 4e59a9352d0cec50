//! The collection of a record whose extent header was overwritten, read from the
//! extent chain: each collection's extents form a doubly linked list (every extent
//! header's `xnext` and `xprev`), and the namespace file (`<db>.ns`) names each
//! collection's first and last extent. An extent those links point to names its
//! collection even when its own header is gone.

use std::collections::HashMap;

use crate::carve::mmapv1::{DiskLoc, EXTENT_HEADER_LEN, RECORD_HEADER_LEN};
use crate::index::{DocEntry, Index};

/// Collections by the DiskLoc of an extent the chain links name.
pub struct Chains<'a> {
    /// `None` where two links disagree: no name then.
    by_extent: HashMap<DiskLoc, Option<&'a str>>,
}

impl<'a> Chains<'a> {
    /// The links of every extent header and namespace-file entry of `index`.
    pub fn new(index: &'a Index) -> Chains<'a> {
        let headers = index.ns_headers.iter().flat_map(|h| {
            [h.chain.0, h.chain.1]
                .into_iter()
                .flatten()
                .map(|at| (at, h.ns.as_str()))
        });
        let entries = index.ns_entries.iter().flat_map(|e| {
            [e.extents.0, e.extents.1]
                .into_iter()
                .flatten()
                .map(|at| (at, e.ns.as_str()))
        });
        let mut by_extent: HashMap<DiskLoc, Option<&str>> = HashMap::new();
        for (at, ns) in headers.chain(entries) {
            let slot = by_extent.entry(at).or_insert(Some(ns));
            if *slot != Some(ns) {
                *slot = None;
            }
        }
        for h in &index.ns_headers {
            // An extent whose header survived is named by it, not by links.
            by_extent.remove(&(h.file_no, h.file_ofs));
        }
        Chains { by_extent }
    }

    /// The collection the chain names for `doc`'s extent, when its record header points
    /// to an extent whose header is lost.
    pub fn namespace(&self, index: &Index, doc: &DocEntry) -> Option<&'a str> {
        if self.by_extent.is_empty() {
            return None;
        }
        let at = lost_extent(index, doc)?;
        self.by_extent.get(&at).copied().flatten()
    }
}

/// The DiskLoc of the extent `doc`'s record header points to, placed in its data file
/// by a surviving extent header just before or after it on the same source: the data
/// file starts at that header's offset minus its own offset in the file. The extent
/// must lie between that header's region and the document.
fn lost_extent(index: &Index, doc: &DocEntry) -> Option<DiskLoc> {
    let extent_ofs = doc.ns_header_ofs?;
    let headers = &index.ns_headers;
    let after = headers.partition_point(|h| (h.source, h.offset) <= (doc.source, doc.offset));
    let near = [after.checked_sub(1), Some(after)];
    near.into_iter()
        .flatten()
        .filter_map(|i| headers.get(i))
        .filter(|h| h.source == doc.source)
        .find_map(|h| {
            let file_start = h.offset.checked_sub(u64::try_from(h.file_ofs).ok()?)?;
            let extent = file_start + u64::try_from(extent_ofs).ok()?;
            let past_header = h.offset > doc.offset || extent >= h.offset + h.len;
            let before_doc = extent + (EXTENT_HEADER_LEN + RECORD_HEADER_LEN) as u64 <= doc.offset;
            (past_header && before_doc).then_some((h.file_no, extent_ofs))
        })
}
