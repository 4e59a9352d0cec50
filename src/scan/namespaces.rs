//! The MMAPv1 namespace-file stage: finds the tables of `<db>.ns` files and keeps
//! every namespace in them with its first and last extent ([`NsEntry`]).
//!
//! A chunk finds anchors only (the node of `<db>.system.namespaces`, which every
//! table holds); `finish` reads the table around each anchor from the source, node by
//! node at the table's 628-byte stride, as far as nodes keep appearing. The table is
//! 16 MiB by default, so it spans chunks; reading it in `finish` finds each node once.

use super::anchors::Magic;
use super::stage::{Chunk, Finishing, Stage};
use crate::carve::nsfile::{self, NODE_LEN};
use crate::index::NsEntry;
use crate::source::Source;

/// How far past the last node found a walk looks for more: a default table's size, so
/// a walk from any node of a default table covers all of it.
const REACH: u64 = 16 << 20;
/// Nodes read per request.
const NODES_PER_READ: usize = 1600;

/// The stage of MMAPv1 namespace files.
pub struct Namespaces;

impl Stage for Namespaces {
    /// `(source, offset)` of each anchor node.
    type Finds = Vec<(u32, u64)>;

    fn find(c: &Chunk) -> Self::Finds {
        nsfile::find_anchors_at(
            c.bytes,
            c.len,
            c.anchors.of(Magic::Namespaces).iter().copied(),
        )
        .into_iter()
        .map(|at| (c.source, c.start + at as u64))
        .collect()
    }

    fn finish(finds: Vec<Self::Finds>, out: &mut Finishing) {
        let mut found: Vec<NsEntry> = Vec::new();
        for (source, anchor) in finds.into_iter().flatten() {
            let known = found
                .iter()
                .any(|e| e.source == source && e.offset == anchor);
            if let (false, Some(src)) = (known, out.sources.get(source as usize)) {
                found.extend(walk_table(src, source, anchor));
            }
        }
        found.sort();
        found.dedup();
        out.index.ns_entries = found;
    }
}

/// The nodes of the table holding the node at `anchor`, both ways from it.
fn walk_table(src: &Source, source: u32, anchor: u64) -> Vec<NsEntry> {
    let mut entries = Vec::new();
    for forward in [true, false] {
        let mut last_found = anchor;
        let mut at = anchor;
        loop {
            let (from, count) = match forward {
                true => (at, NODES_PER_READ as u64),
                false => {
                    let count = (at / NODE_LEN as u64).min(NODES_PER_READ as u64);
                    (at - count * NODE_LEN as u64, count)
                }
            };
            let end = (from + count * NODE_LEN as u64).min(src.size);
            if end <= from || last_found.abs_diff(from) > REACH {
                break;
            }
            let mut buf = vec![0u8; (end - from) as usize];
            src.read_salvaging(&mut buf, from);
            for (i, node) in buf.chunks_exact(NODE_LEN).enumerate() {
                if let Some(n) = nsfile::parse_node(node) {
                    let offset = from + (i * NODE_LEN) as u64;
                    last_found = offset;
                    entries.push(NsEntry {
                        source,
                        offset,
                        ns: n.ns.to_string(),
                        extents: (n.first_extent, n.last_extent),
                    });
                }
            }
            at = if forward { end } else { from };
            if !forward && from == 0 {
                break;
            }
        }
    }
    entries
}
