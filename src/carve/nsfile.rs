//! MMAPv1's namespace file (`<db>.ns`): a hash table of fixed 628-byte nodes, one per
//! collection (and index), each holding the namespace's name and its details, which
//! begin with the DiskLocs of the collection's first and last extent.
//!
//! A node is `hash` (i32), the name (128 bytes, NUL-padded), then the details. mongod
//! stores in `hash` a hash of the name, so a node checks itself: 31 bits that noise
//! rarely matches. Every database's table holds `<db>.system.namespaces`, which is what
//! the scan searches for. Pure functions over bytes, total on any input.

use super::mmapv1::{DiskLoc, disk_loc, i32_at};
use super::search;

/// Bytes of one node of the table.
pub const NODE_LEN: usize = 628;
/// Bytes of the name field.
const NAME_LEN: usize = 128;
/// What every database's namespace file names (after the database's name).
/// The name every namespace file holds (`<db>.system.namespaces`): where one is found.
pub const ANCHOR: &[u8] = b".system.namespaces\0";
/// Longest database name mongod accepts.
const MAX_DB_NAME: usize = 64;

/// One namespace of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NsNode<'a> {
    /// `db.collection` (or `db.collection.$index` for an index).
    pub ns: &'a str,
    /// The collection's first extent (`None`: it has none).
    pub first_extent: Option<DiskLoc>,
    /// The collection's last extent.
    pub last_extent: Option<DiskLoc>,
}

/// The hash mongod stores with a name: `x * 131 + byte` over the name's bytes read as
/// C's signed `char`, then kept positive and non-zero.
pub fn name_hash(name: &[u8]) -> u32 {
    let x = name.iter().fold(0u32, |x, &b| {
        x.wrapping_mul(131).wrapping_add_signed(i32::from(b as i8))
    });
    (x & 0x7fff_ffff) | 0x0800_0000
}

/// Parses the node at the start of `b`: only one whose stored hash is its name's.
pub fn parse_node(b: &[u8]) -> Option<NsNode<'_>> {
    let name_field = b.get(4..4 + NAME_LEN)?;
    let len = memchr::memchr(0, name_field)?;
    let name = &name_field[..len];
    let hash = u32::try_from(i32_at(b, 0)?).ok()?;
    if len < 3 || name_hash(name) != hash || b.len() < NODE_LEN {
        return None;
    }
    let ns = std::str::from_utf8(name).ok()?;
    let plausible = ns.contains('.') && !ns.starts_with('.') && !ns.chars().any(char::is_control);
    plausible.then_some(NsNode {
        ns,
        first_extent: disk_loc(b, 4 + NAME_LEN),
        last_extent: disk_loc(b, 4 + NAME_LEN + 8),
    })
}

/// Offsets before `limit` in `buf` of nodes naming some database's
/// `system.namespaces`: where a namespace table certainly is.
pub fn find_anchors(buf: &[u8], limit: usize) -> Vec<usize> {
    static FINDER: search::Lazy = search::Lazy::new(|| search::finder(ANCHOR));
    find_anchors_at(buf, limit, FINDER.find_iter(buf))
}

/// As [`find_anchors`], given where [`ANCHOR`] occurs in `buf` (ascending): the scan
/// finds every format's magic numbers in one pass.
pub fn find_anchors_at(
    buf: &[u8],
    limit: usize,
    hits: impl IntoIterator<Item = usize>,
) -> Vec<usize> {
    (hits.into_iter())
        .filter_map(|hit| {
            (1..=MAX_DB_NAME)
                .filter_map(|db| hit.checked_sub(db + 4))
                .find(|&at| {
                    parse_node(&buf[at..])
                        .is_some_and(|n| at + 4 + n.ns.len() + 1 == hit + ANCHOR.len())
                })
        })
        .filter(|&at| at < limit)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ns: &str, first: DiskLoc, last: DiskLoc) -> Vec<u8> {
        let mut b = vec![0u8; NODE_LEN];
        b[..4].copy_from_slice(&name_hash(ns.as_bytes()).to_le_bytes());
        b[4..4 + ns.len()].copy_from_slice(ns.as_bytes());
        for (at, v) in [(132, first.0), (136, first.1), (140, last.0), (144, last.1)] {
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    #[test]
    fn the_hash_is_mongods() {
        // "a.b": ((97 * 131) + 46) * 131 + 98, then | 0x0800_0000.
        assert_eq!(
            name_hash(b"a.b"),
            ((97 * 131 + 46) * 131 + 98) | 0x0800_0000
        );
        // Bytes above 0x7F count as negative, as C's char does on x86.
        assert_eq!(name_hash(&[0xff]), 0x7fff_ffff);
    }

    #[test]
    fn a_node_checks_itself_by_its_hash() {
        let b = node("shop.products", (0, 8192), (1, 4096));
        let n = parse_node(&b).unwrap();
        assert_eq!(n.ns, "shop.products");
        assert_eq!(
            (n.first_extent, n.last_extent),
            (Some((0, 8192)), Some((1, 4096)))
        );
        let mut wrong = b.clone();
        wrong[0] ^= 1;
        assert!(
            parse_node(&wrong).is_none(),
            "a hash that is not the name's"
        );
        assert!(parse_node(&b[..600]).is_none());
        let none = node("shop.empty", (-1, 0), (-1, 0));
        assert_eq!(parse_node(&none).unwrap().first_extent, None);
    }

    #[test]
    fn the_anchor_is_the_system_namespaces_node() {
        let mut buf = vec![0u8; 100];
        buf.extend(node("shop.users", (0, 8192), (0, 8192)));
        buf.extend(node("shop.system.namespaces", (0, 100), (0, 100)));
        // A name alone, without its node's hash, is not an anchor.
        buf.extend(b"xx.system.namespaces\0");
        buf.extend(vec![0u8; NODE_LEN]);
        assert_eq!(find_anchors(&buf, buf.len()), [100 + NODE_LEN]);
        assert_eq!(find_anchors(&buf, 100 + NODE_LEN), Vec::<usize>::new());
    }
}
