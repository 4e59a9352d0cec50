//! Which WiredTiger leaf pages hold a file's live records: those its newest checkpoint
//! reaches. WiredTiger's metadata (every copy of `WiredTiger.wt` found) names each
//! checkpoint's root block; internal pages name their children; all by checksum and
//! size. Old pages stay in the file as free blocks until WiredTiger reuses them: the
//! records on them are older versions or removed.
//!
//! Only decided for a file whose newest tree was found whole (every block it names)
//! and none of whose leaf pages was written after that tree's newest page (else a newer
//! checkpoint existed and its metadata was lost: its pages would look unreached).

use std::collections::{HashMap, HashSet};

use super::place::WtFiles;
use crate::carve::wiredtiger::{Address, PageKind};
use crate::index::Index;

/// Per page of `index.wt_pages`: whether the newest checkpoint of its file reaches it
/// (`None`: not known, or not a leaf page).
pub fn newest(index: &Index, files: &WtFiles) -> Vec<Option<bool>> {
    let mut out = vec![None; index.wt_pages.len()];
    if index.wt_checkpoints.is_empty() {
        return out;
    }
    let blocks = Blocks::new(index);
    let mut by_file: HashMap<&str, Vec<usize>> = HashMap::new();
    // Leaf pages only: an overflow value's page is judged through its leaf record.
    let leaves = index.wt_pages.iter().enumerate();
    for (i, page) in leaves.filter(|(_, p)| p.kind == PageKind::RowLeaf) {
        if let Some(name) = files.of_page(index, page) {
            by_file.entry(name).or_default().push(i);
        }
    }
    for (name, pages) in by_file {
        let of_file = index.wt_checkpoints.iter().filter(|c| c.file == name);
        let Some(order) = of_file.clone().map(|c| c.order).max() else {
            continue;
        };
        let roots = of_file.filter(|c| c.order == order).map(|c| c.root);
        let Some(reached) = blocks.reach(index, roots) else {
            continue;
        };
        let written = |i: &usize| index.wt_pages[*i].write_gen;
        let newest = reached.iter().map(written).max();
        if pages.iter().all(|i| Some(written(i)) <= newest) {
            for i in pages {
                out[i] = Some(reached.contains(&i));
            }
        }
    }
    out
}

/// Leaf pages and internal pages by checksum, to follow addresses.
struct Blocks {
    leaves: HashMap<u32, Vec<usize>>,
    internal: HashMap<u32, Vec<usize>>,
}

impl Blocks {
    fn new(index: &Index) -> Blocks {
        let mut leaves: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, p) in index.wt_pages.iter().enumerate() {
            leaves.entry(p.checksum).or_default().push(i);
        }
        let mut internal: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, p) in index.wt_internal.iter().enumerate() {
            internal.entry(p.checksum).or_default().push(i);
        }
        Blocks { leaves, internal }
    }

    /// The leaf pages the trees under `roots` reach, if there is a root and every block
    /// they name was found.
    fn reach(&self, index: &Index, roots: impl Iterator<Item = Address>) -> Option<HashSet<usize>> {
        let mut todo: Vec<Address> = roots.collect();
        let any_root = !todo.is_empty();
        let (mut reached, mut visited) = (HashSet::new(), HashSet::new());
        while let Some(a) = todo.pop() {
            if !visited.insert(a) {
                continue;
            }
            let inner = self.internal.get(&a.checksum).into_iter().flatten();
            if let Some(&i) = inner
                .into_iter()
                .find(|&&i| a.fits(index.wt_internal[i].disk_size))
            {
                todo.extend(index.wt_internal[i].children.iter().copied());
                continue;
            }
            let leaves = self.leaves.get(&a.checksum).into_iter().flatten();
            let fitting: Vec<usize> = leaves
                .copied()
                .filter(|&i| a.fits(index.wt_pages[i].disk_size))
                .collect();
            if fitting.is_empty() {
                return None;
            }
            reached.extend(fitting);
        }
        any_root.then_some(reached)
    }
}
