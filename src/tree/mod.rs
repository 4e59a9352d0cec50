//! The virtual tree shown in the mount, built from an index. Pure: no FUSE, no I/O.
//!
//! Inode numbers are positions in a deterministic construction order, so the same index
//! gives the same inode numbers on every mount (what `rsync` and `cp -u` rely on).

pub mod build;
pub mod mongo;

use std::collections::{HashMap, HashSet};

use crate::extent::ExtentList;

/// Inode number of the root directory (FUSE convention).
pub const ROOT: u64 = 1;

/// A file or directory of the tree.
#[derive(Debug)]
pub struct Node {
    /// Name within its parent (empty for the root).
    pub name: String,
    /// Inode of the parent directory (the root is its own parent).
    pub parent: u64,
    /// What the node holds.
    pub kind: NodeKind,
}

/// Directory entries or file contents.
#[derive(Debug)]
pub enum NodeKind {
    /// Children inode numbers, sorted by name.
    Dir(Vec<u64>),
    /// The file's bytes.
    File(ExtentList),
}

/// The whole tree; inode `n` is `nodes[n - 1]`.
///
/// Lookups binary-search a directory's sorted children; only directories are also kept
/// in a map while building (to find them again by path). A million document files cost
/// one node each and no hashing.
#[derive(Debug)]
pub struct Tree {
    nodes: Vec<Node>,
    dirs: HashMap<(u64, String), u64>,
    unreadable: HashSet<u64>,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new()
    }
}

impl Tree {
    /// A tree holding only the root directory.
    pub fn new() -> Tree {
        let root = Node {
            name: String::new(),
            parent: ROOT,
            kind: NodeKind::Dir(Vec::new()),
        };
        Tree {
            nodes: vec![root],
            dirs: HashMap::new(),
            unreadable: HashSet::new(),
        }
    }

    fn add(&mut self, parent: u64, name: &str, kind: NodeKind) -> u64 {
        let ino = self.nodes.len() as u64 + 1;
        self.nodes.push(Node {
            name: name.to_string(),
            parent,
            kind,
        });
        if let Some(Node {
            kind: NodeKind::Dir(children),
            ..
        }) = self.nodes.get_mut(parent as usize - 1)
        {
            children.push(ino);
        }
        ino
    }

    /// Adds (or finds) the directory at `path` (components separated by `/`).
    pub fn mkdir_p(&mut self, path: &str) -> u64 {
        path.split('/')
            .filter(|c| !c.is_empty())
            .fold(ROOT, |parent, name| {
                if let Some(&ino) = self.dirs.get(&(parent, name.to_string())) {
                    return ino;
                }
                let ino = self.add(parent, name, NodeKind::Dir(Vec::new()));
                self.dirs.insert((parent, name.to_string()), ino);
                ino
            })
    }

    /// Adds a file in directory `dir` (created if needed). Names within a directory
    /// must be unique (the callers make them so); this is not checked.
    pub fn add_file(&mut self, dir: &str, name: &str, content: ExtentList) -> u64 {
        let parent = self.mkdir_p(dir);
        self.add_file_in(parent, name, content)
    }

    /// Adds a file in the directory with inode `parent` (from [`Tree::mkdir_p`]): the
    /// way to add many files to one directory without resolving its path each time.
    pub fn add_file_in(&mut self, parent: u64, name: &str, content: ExtentList) -> u64 {
        self.add(parent, name, NodeKind::File(content))
    }

    /// Sorts every directory's entries by name; call once after building, before any
    /// lookup.
    pub fn finish(&mut self) {
        for i in 0..self.nodes.len() {
            let NodeKind::Dir(children) = &mut self.nodes[i].kind else {
                continue;
            };
            let mut children = std::mem::take(children);
            children.sort_unstable_by(|a, b| self.name(*a).cmp(self.name(*b)));
            self.nodes[i].kind = NodeKind::Dir(children);
        }
    }

    fn name(&self, ino: u64) -> &str {
        self.get(ino).map_or("", |n| n.name.as_str())
    }

    /// The node with inode `ino`.
    pub fn get(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(usize::try_from(ino).ok()?.checked_sub(1)?)
    }

    /// The child `name` of directory `parent`.
    pub fn lookup(&self, parent: u64, name: &str) -> Option<u64> {
        let NodeKind::Dir(children) = &self.get(parent)?.kind else {
            return None;
        };
        children
            .binary_search_by(|c| self.name(*c).cmp(name))
            .ok()
            .map(|i| children[i])
    }

    /// Looks a path up from the root (`flv/known/x.flv`).
    pub fn resolve(&self, path: &str) -> Option<u64> {
        path.split('/')
            .filter(|c| !c.is_empty())
            .try_fold(ROOT, |ino, name| self.lookup(ino, name))
    }

    /// Number of inodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: there is at least the root.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every file: inode and contents, in inode order.
    pub fn files(&self) -> impl Iterator<Item = (u64, &ExtentList)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(i, n)| match &n.kind {
                NodeKind::File(f) => Some((i as u64 + 1, f)),
                NodeKind::Dir(_) => None,
            })
    }

    /// Records that file `ino` holds bytes of an unreadable range.
    pub fn mark_unreadable(&mut self, ino: u64) {
        self.unreadable.insert(ino);
    }

    /// True if file `ino` holds bytes of an unreadable range: the mount serves it
    /// without the page cache, so that only reads of the bad bytes themselves fail
    /// (a cached read would fail a whole folio, up to megabytes around them).
    pub fn is_unreadable(&self, ino: u64) -> bool {
        self.unreadable.contains(&ino)
    }

    /// The path of inode `ino` from the root, without a leading `/`.
    pub fn path(&self, mut ino: u64) -> String {
        let mut parts = Vec::new();
        while let Some(node) = self.get(ino).filter(|_| ino != ROOT) {
            parts.push(node.name.as_str());
            ino = node.parent;
        }
        parts.reverse();
        parts.join("/")
    }

    /// Total bytes of all files (for `statfs`).
    pub fn total_bytes(&self) -> u64 {
        self.nodes
            .iter()
            .map(|n| match &n.kind {
                NodeKind::File(f) => f.len(),
                NodeKind::Dir(_) => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_resolves() {
        let mut t = Tree::new();
        t.add_file("flv", "b.flv", ExtentList::from_bytes(&b"bb"[..]));
        t.add_file("flv/known", "a.flv", ExtentList::from_bytes(&b"a"[..]));
        t.add_file("flv", "a.flv", ExtentList::from_bytes(&b"aaa"[..]));
        t.add_file("", "README.txt", ExtentList::from_bytes(&b"r"[..]));
        t.finish();
        let flv = t.resolve("flv").unwrap();
        let NodeKind::Dir(children) = &t.get(flv).unwrap().kind else {
            panic!()
        };
        let names: Vec<&str> = children
            .iter()
            .map(|c| t.get(*c).unwrap().name.as_str())
            .collect();
        assert_eq!(names, ["a.flv", "b.flv", "known"]);
        let paths: Vec<String> = t.files().map(|(i, _)| t.path(i)).collect();
        assert_eq!(
            paths,
            ["flv/b.flv", "flv/known/a.flv", "flv/a.flv", "README.txt"]
        );
        let a = t.resolve("flv/a.flv").unwrap();
        let NodeKind::File(f) = &t.get(a).unwrap().kind else {
            panic!()
        };
        assert_eq!(f.len(), 3);
        assert_eq!(t.get(a).unwrap().parent, flv);
        assert!(t.resolve("flv/nope").is_none());
        assert!(t.get(0).is_none());
        assert_eq!(t.total_bytes(), 7);
    }
}
