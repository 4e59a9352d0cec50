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

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::extent::ExtentList;

/// Inode number of the root directory (FUSE convention).
pub const ROOT: u64 = 1;

/// A file or directory of the tree.
#[derive(Clone, Debug)]
pub struct Node {
    /// Name within its parent (empty for the root).
    pub name: String,
    /// Inode of the parent directory (the root is its own parent).
    pub parent: u64,
    /// What the node holds.
    pub kind: NodeKind,
}

/// Directory entries or file contents.
#[derive(Clone, Debug)]
pub enum NodeKind {
    /// Children inode numbers, sorted by name.
    Dir(Vec<u64>),
    /// A directory whose files are read from a table: number of [`Tree`]'s tables.
    TableDir(usize),
    /// The file's bytes.
    File(ExtentList),
}

impl Node {
    /// True for directories of either kind.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, NodeKind::Dir(_) | NodeKind::TableDir(_))
    }
}

/// The files of a directory too large to hold (a collection's one file per document),
/// read from a table on demand: listing and looking up a file cost no memory per file.
pub trait DirTable: Send + Sync + fmt::Debug {
    /// Number of files.
    fn len(&self) -> u64;
    /// True when there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Total size of the files (for `statfs`).
    fn bytes(&self) -> u64;
    /// The name of file `i` (`None`: unreadable, such as a damaged block of the index).
    fn name(&self, i: u64) -> Option<String>;
    /// The contents of file `i`.
    fn file(&self, i: u64) -> Option<ExtentList>;
    /// The number of the file named `name`.
    fn find(&self, name: &str) -> Option<u64>;
    /// True when file `i` holds bytes of an unreadable range.
    fn unreadable(&self, i: u64) -> bool;
}

/// Inodes of table directories' files start here, far above the eagerly built nodes,
/// so they are fixed when the directory is added and stable across mounts.
const TABLE_BASE: u64 = 1 << 40;

/// A table directory: its inode, its first file's inode, the table.
#[derive(Debug)]
struct TableDir {
    dir: u64,
    first: u64,
    table: Box<dyn DirTable>,
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
    tables: Vec<TableDir>,
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
            tables: Vec::new(),
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

    /// Adds the directory at `path` (which must not exist yet) whose files `table`
    /// lists; returns its inode.
    pub fn add_table_dir(&mut self, path: &str, table: Box<dyn DirTable>) -> u64 {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let parent = self.mkdir_p(parent);
        let dir = self.add(parent, name, NodeKind::TableDir(self.tables.len()));
        let first = self
            .tables
            .last()
            .map_or(TABLE_BASE, |t| t.first + t.table.len());
        self.tables.push(TableDir { dir, first, table });
        dir
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
        match ino < TABLE_BASE {
            true => self.get_eager(ino).map_or("", |n| n.name.as_str()),
            false => "",
        }
    }

    fn get_eager(&self, ino: u64) -> Option<&Node> {
        self.nodes.get(usize::try_from(ino).ok()?.checked_sub(1)?)
    }

    /// The table directory holding file `ino`, and the file's number in it.
    fn in_table(&self, ino: u64) -> Option<(&TableDir, u64)> {
        let at = self
            .tables
            .partition_point(|t| t.first <= ino)
            .checked_sub(1)?;
        let t = &self.tables[at];
        let i = ino - t.first;
        (i < t.table.len()).then_some((t, i))
    }

    /// The node with inode `ino` (a table directory's file is made on the spot).
    pub fn get(&self, ino: u64) -> Option<Cow<'_, Node>> {
        if ino < TABLE_BASE {
            return self.get_eager(ino).map(Cow::Borrowed);
        }
        let (t, i) = self.in_table(ino)?;
        Some(Cow::Owned(Node {
            name: t.table.name(i)?,
            parent: t.dir,
            kind: NodeKind::File(t.table.file(i)?),
        }))
    }

    /// The contents of file `ino`.
    pub fn file(&self, ino: u64) -> Option<Cow<'_, ExtentList>> {
        if ino < TABLE_BASE {
            return match &self.get_eager(ino)?.kind {
                NodeKind::File(f) => Some(Cow::Borrowed(f)),
                _ => None,
            };
        }
        let (t, i) = self.in_table(ino)?;
        t.table.file(i).map(Cow::Owned)
    }

    /// Entry `i` of directory `dir` (sorted by name, or in table order): its inode and
    /// name. `None` past the last entry.
    pub fn entry(&self, dir: u64, i: u64) -> Option<(u64, Cow<'_, str>)> {
        match &self.get_eager(dir)?.kind {
            NodeKind::Dir(children) => {
                let &child = children.get(usize::try_from(i).ok()?)?;
                Some((child, Cow::Borrowed(self.name(child))))
            }
            NodeKind::TableDir(t) => {
                let t = &self.tables[*t];
                let name = (i < t.table.len()).then(|| t.table.name(i))?;
                // A name that cannot be read (a damaged block) is listed by number.
                let name = name.unwrap_or_else(|| format!("unreadable-{i}"));
                Some((t.first + i, Cow::Owned(name)))
            }
            NodeKind::File(_) => None,
        }
    }

    /// The child `name` of directory `parent`.
    pub fn lookup(&self, parent: u64, name: &str) -> Option<u64> {
        match &self.get_eager(parent)?.kind {
            NodeKind::Dir(children) => children
                .binary_search_by(|c| self.name(*c).cmp(name))
                .ok()
                .map(|i| children[i]),
            NodeKind::TableDir(t) => {
                let t = &self.tables[*t];
                t.table.find(name).map(|i| t.first + i)
            }
            NodeKind::File(_) => None,
        }
    }

    /// Looks a path up from the root (`flv/known/x.flv`).
    pub fn resolve(&self, path: &str) -> Option<u64> {
        path.split('/')
            .filter(|c| !c.is_empty())
            .try_fold(ROOT, |ino, name| self.lookup(ino, name))
    }

    /// Number of inodes.
    pub fn len(&self) -> usize {
        let tables: u64 = self.tables.iter().map(|t| t.table.len()).sum();
        self.nodes.len() + tables as usize
    }

    /// Always false: there is at least the root.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Records that file `ino` holds bytes of an unreadable range.
    pub fn mark_unreadable(&mut self, ino: u64) {
        self.unreadable.insert(ino);
    }

    /// True if file `ino` holds bytes of an unreadable range: the mount serves it
    /// without the page cache, so that only reads of the bad bytes themselves fail
    /// (a cached read would fail a whole folio, up to megabytes around them).
    pub fn is_unreadable(&self, ino: u64) -> bool {
        match ino < TABLE_BASE {
            true => self.unreadable.contains(&ino),
            false => self
                .in_table(ino)
                .is_some_and(|(t, i)| t.table.unreadable(i)),
        }
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
            parts.push(node.name.clone());
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
        eager + self.tables.iter().map(|t| t.table.bytes()).sum::<u64>()
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
        let names: Vec<String> = (0..)
            .map_while(|i| t.entry(flv, i))
            .map(|(_, name)| name.into_owned())
            .collect();
        assert_eq!(names, ["a.flv", "b.flv", "known"]);
        let a = t.resolve("flv/a.flv").unwrap();
        assert_eq!(t.path(a), "flv/a.flv");
        assert_eq!(t.file(a).unwrap().len(), 3);
        assert_eq!(t.get(a).unwrap().parent, flv);
        assert!(t.resolve("flv/nope").is_none());
        assert!(t.get(0).is_none());
        assert!(t.file(flv).is_none());
        assert_eq!(t.total_bytes(), 7);
    }

    /// `n` files `f0`, `f1`... of `i + 1` bytes each.
    #[derive(Debug)]
    struct Numbered(u64);
    impl DirTable for Numbered {
        fn len(&self) -> u64 {
            self.0
        }
        fn bytes(&self) -> u64 {
            self.0 * (self.0 + 1) / 2
        }
        fn name(&self, i: u64) -> Option<String> {
            Some(format!("f{i}"))
        }
        fn file(&self, i: u64) -> Option<ExtentList> {
            Some(ExtentList::from_bytes(vec![b'x'; i as usize + 1]))
        }
        fn find(&self, name: &str) -> Option<u64> {
            name.strip_prefix('f')?.parse().ok().filter(|&i| i < self.0)
        }
        fn unreadable(&self, i: u64) -> bool {
            i == 7
        }
    }

    #[test]
    fn table_directories_list_and_find_without_holding_their_files() {
        let mut t = Tree::new();
        t.add_file("", "README.txt", ExtentList::from_bytes(&b"r"[..]));
        t.add_table_dir("mongo/docs/a", Box::new(Numbered(3)));
        t.add_table_dir("mongo/docs/b", Box::new(Numbered(1_000_000)));
        t.finish();
        let b = t.resolve("mongo/docs/b").unwrap();
        let f = t.resolve("mongo/docs/b/f999999").unwrap();
        assert_eq!(
            f,
            TABLE_BASE + 3 + 999_999,
            "inodes follow the tables' order"
        );
        assert_eq!(t.path(f), "mongo/docs/b/f999999");
        assert_eq!(t.file(f).unwrap().len(), 1_000_000);
        assert_eq!(t.entry(b, 5).unwrap(), (TABLE_BASE + 3 + 5, "f5".into()));
        assert!(t.entry(b, 1_000_000).is_none());
        assert!(t.resolve("mongo/docs/a/f3").is_none());
        assert!(t.get(TABLE_BASE + 3 + 1_000_000).is_none());
        assert!(t.is_unreadable(TABLE_BASE + 3 + 7) && !t.is_unreadable(TABLE_BASE + 3 + 8));
        assert_eq!(t.len(), 6 + 3 + 1_000_000);
        assert_eq!(t.total_bytes(), 1 + 6 + 500_000_500_000);
    }
}
