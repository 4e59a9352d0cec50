//! The virtual tree shown in the mount, built from an index. Pure: no FUSE, no I/O.
//!
//! Inode numbers are positions in a deterministic construction order, so the same index
//! gives the same inode numbers on every mount (what `rsync` and `cp -u` rely on).

pub mod build;
pub mod flv;
pub mod mongo;
pub mod readme;
#[cfg(test)]
mod reftest;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::OnceLock;

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
    /// A directory whose files are made on first use: number of [`Tree`]'s lazy dirs.
    LazyDir(usize),
    /// The file's bytes.
    File(ExtentList),
}

impl Node {
    /// True for directories, lazy or not.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir(_) | NodeKind::LazyDir(_))
    }
}

/// Makes the files of a lazy directory, in inode order; names must be unique.
pub type MakeFiles = Box<dyn Fn() -> Vec<(String, ExtentList)> + Send + Sync>;

/// Inodes of lazy directories' files start here, far above the eagerly built nodes,
/// so they are fixed when the directory is added and stable across mounts.
const LAZY_BASE: u64 = 1 << 40;

/// A directory of many files (a collection's one-file-per-document view) that costs
/// nothing until someone looks into it: a million documents mount instantly.
struct LazyDir {
    /// Inode of the directory itself.
    dir: u64,
    /// Inode of its first file.
    first: u64,
    /// Number of files.
    count: u64,
    /// Total size of the files (for `statfs`, without building them).
    bytes: u64,
    make: MakeFiles,
    built: OnceLock<Built>,
}

/// A lazy directory's files once made: nodes in inode order, inodes sorted by name.
struct Built {
    nodes: Vec<Node>,
    sorted: Vec<u64>,
}

impl LazyDir {
    fn built(&self) -> &Built {
        self.built.get_or_init(|| {
            let nodes: Vec<Node> = (self.make)()
                .into_iter()
                .map(|(name, content)| Node {
                    name,
                    parent: self.dir,
                    kind: NodeKind::File(content),
                })
                .collect();
            let mut order: Vec<usize> = (0..nodes.len()).collect();
            order.sort_unstable_by(|&a, &b| nodes[a].name.cmp(&nodes[b].name));
            let sorted = order.into_iter().map(|i| self.first + i as u64).collect();
            Built { nodes, sorted }
        })
    }
}

impl fmt::Debug for LazyDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyDir")
            .field("dir", &self.dir)
            .field("first", &self.first)
            .field("count", &self.count)
            .field("built", &self.built.get().is_some())
            .finish()
    }
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
    lazy: Vec<LazyDir>,
    unreadable: HashSet<u64>,
    /// Files with a time of their own (a recording's creation date), by inode.
    mtimes: HashMap<u64, u64>,
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
            lazy: Vec::new(),
            unreadable: HashSet::new(),
            mtimes: HashMap::new(),
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
        self.add(parent, name, NodeKind::File(content))
    }

    /// Adds the directory at `path` (which must not exist yet) holding `count` files
    /// of `bytes` in all, made by `make` when the directory is first used.
    pub fn add_lazy_dir(&mut self, path: &str, count: u64, bytes: u64, make: MakeFiles) {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent = self.mkdir_p(parent);
        let dir = self.add(parent, name, NodeKind::LazyDir(self.lazy.len()));
        let first = self.lazy.last().map_or(LAZY_BASE, |l| l.first + l.count);
        self.lazy.push(LazyDir {
            dir,
            first,
            count,
            bytes,
            make,
            built: OnceLock::new(),
        });
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
        if ino < LAZY_BASE {
            return self.nodes.get(usize::try_from(ino).ok()?.checked_sub(1)?);
        }
        let at = self
            .lazy
            .partition_point(|l| l.first <= ino)
            .checked_sub(1)?;
        let lazy = &self.lazy[at];
        lazy.built()
            .nodes
            .get(usize::try_from(ino - lazy.first).ok()?)
    }

    /// The entries of directory `ino`, sorted by name; `None` for a file.
    pub fn children(&self, ino: u64) -> Option<&[u64]> {
        match &self.get(ino)?.kind {
            NodeKind::Dir(children) => Some(children),
            NodeKind::LazyDir(i) => Some(&self.lazy[*i].built().sorted),
            NodeKind::File(_) => None,
        }
    }

    /// The child `name` of directory `parent`.
    pub fn lookup(&self, parent: u64, name: &str) -> Option<u64> {
        let children = self.children(parent)?;
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
        self.nodes.len() + self.lazy.iter().map(|l| l.count as usize).sum::<usize>()
    }

    /// Always false: there is at least the root.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every file: inode and contents, in inode order (building lazy directories).
    pub fn files(&self) -> impl Iterator<Item = (u64, &ExtentList)> {
        let eager = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64 + 1, n));
        let lazy = self.lazy.iter().flat_map(|l| {
            let nodes = l.built().nodes.iter();
            nodes.enumerate().map(|(i, n)| (l.first + i as u64, n))
        });
        eager.chain(lazy).filter_map(|(ino, n)| match &n.kind {
            NodeKind::File(f) => Some((ino, f)),
            _ => None,
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

    /// Gives file `ino` a time of its own (seconds since the epoch): what it says about
    /// itself, rather than when the data was scanned.
    pub fn set_mtime(&mut self, ino: u64, secs: u64) {
        self.mtimes.insert(ino, secs);
    }

    /// The time of file `ino`, if it has one of its own.
    pub fn mtime(&self, ino: u64) -> Option<u64> {
        self.mtimes.get(&ino).copied()
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
        let eager: u64 = self
            .nodes
            .iter()
            .map(|n| match &n.kind {
                NodeKind::File(f) => f.len(),
                _ => 0,
            })
            .sum();
        eager + self.lazy.iter().map(|l| l.bytes).sum::<u64>()
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
