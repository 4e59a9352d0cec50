//! The file names of documents in `mongo/docs/<db>/<coll>/`: made from the `_id`
//! (ObjectId hex, the string, the number), unique within the directory, and found
//! again by name without holding every name: the index keeps, per collection, its
//! documents ordered by the hash of their name, so a lookup is a binary search over
//! the rows, and a listing reads the rows in disk order.

use std::fmt::Write as _;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;

use xxhash_rust::xxh3::xxh3_64;

use crate::spill::{Sorter, Spill};

/// What follows a name that another document of the directory had first: `%` never
/// comes before `~` in any other name ([`safe_name`] writes `%` only as `%XX`), so
/// `5%~2` cannot collide with a document whose `_id` is the string `5%~2` or `5~2`.
const AGAIN: &str = "%~";

/// The name of a document's file, without `.json`: [`id_name`], then `%~<n>` for the
/// `n`th document (from 2) of the directory whose `_id` gives the same name.
pub fn doc_name(id: &[u8], offset: u64, again: u32) -> String {
    let mut name = id_name(id, offset);
    if again >= 2 {
        let _ = write!(name, "{AGAIN}{again}");
    }
    name
}

/// The hash a directory's documents are ordered by.
pub fn name_hash(name: &str) -> u64 {
    xxh3_64(name.as_bytes())
}

/// Bytes of a document's entry in the hash order before the renamed ones are merged
/// back in: its name's hash (u64) and position (u32).
const UNMOVED_LEN: usize = 12;

/// The order of a directory's documents by the hash of their names, built from their
/// `_id`s in disk order, sorted through spilled runs: a collection may hold hundreds of
/// millions of documents. The sort holds each document's hash, position and where its
/// name lies in a file of names, read back only where hashes meet: 24 bytes a
/// document, half of what it took to sort their `_id`s and offsets instead.
pub struct NameOrder {
    by_hash: Sorter<(u64, u32, u64)>,
    /// Every name in push order, each as a `u16` length and its bytes.
    names: BufWriter<File>,
    names_len: u64,
    count: u32,
    name: String,
}

impl NameOrder {
    /// An order of no documents yet.
    pub fn new(spill: &Spill) -> io::Result<NameOrder> {
        Ok(NameOrder {
            by_hash: spill.sorter(),
            names: BufWriter::with_capacity(1 << 20, spill.file()?),
            names_len: 0,
            count: 0,
            name: String::new(),
        })
    }

    /// Adds the next document (in disk order) by its `_id` as the index keeps it and
    /// where it lies (see [`id_name`]).
    pub fn push(&mut self, id: &[u8], offset: u64) -> io::Result<()> {
        self.name.clear();
        write_id_name(&mut self.name, id, offset);
        let key = (name_hash(&self.name), self.count, self.names_len);
        self.by_hash.push(key)?;
        self.names
            .write_all(&(self.name.len() as u16).to_le_bytes())?;
        self.names.write_all(self.name.as_bytes())?;
        self.names_len += 2 + self.name.len() as u64;
        self.count += 1;
        Ok(())
    }

    /// Hands each document's position to `each` in the order of their names' hashes;
    /// returns which of them need a number to be unique: `(document, n)` for the `n`th
    /// document (n ≥ 2, disk order) with the same name.
    pub fn finish(
        self,
        spill: &Spill,
        mut each: impl FnMut(u32) -> io::Result<()>,
    ) -> io::Result<Vec<(u32, u32)>> {
        // In hash order, less the documents renamed (equal names share a hash; the
        // later ones get numbers, and so another hash): those are few, kept aside and
        // merged back in.
        let sorted = self.by_hash.sorted()?;
        // No two names share a hash, so none repeats: nothing is renamed, and the order
        // of the hashes is the order. The common case, decided without the stream of
        // the unmoved below (24 MB of fresh memory at 2 million documents, written and
        // read back: 60 ms of the save's critical path).
        if sorted
            .held()
            .is_some_and(|keys| keys.windows(2).all(|w| w[0].0 != w[1].0))
        {
            for key in sorted {
                each(key?.1)?;
            }
            return Ok(Vec::new());
        }
        let names = self.names.into_inner().map_err(|e| e.into_error())?;
        let name_at = |at: u64| -> io::Result<String> {
            let mut len = [0u8; 2];
            names.read_exact_at(&mut len, at)?;
            let mut name = vec![0; usize::from(u16::from_le_bytes(len))];
            names.read_exact_at(&mut name, at + 2)?;
            String::from_utf8(name).map_err(io::Error::other)
        };
        let mut unmoved = spill.stream(u64::from(self.count) * UNMOVED_LEN as u64)?;
        let (mut again, mut moved) = (Vec::new(), Vec::new());
        let mut run: Vec<(u64, u32)> = Vec::new();
        // The documents sharing one hash, by name: equal names, or (rarely) a collision.
        let mut named: Vec<(String, u32, u64)> = Vec::new();
        let mut flush =
            |run: &mut Vec<(u64, u32)>, named: &mut Vec<(String, u32, u64)>| -> io::Result<()> {
                if named.len() > 1 {
                    named.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                    for same in named.chunk_by(|a, b| a.0 == b.0) {
                        run.push((same[0].2, same[0].1));
                        for (k, (base, i, _)) in same.iter().enumerate().skip(1) {
                            let n = k as u32 + 1;
                            again.push((*i, n));
                            moved.push((name_hash(&format!("{base}{AGAIN}{n}")), *i));
                        }
                    }
                    run.sort_unstable();
                }
                named.clear();
                for (hash, i) in run.drain(..) {
                    unmoved.write_all(&hash.to_le_bytes())?;
                    unmoved.write_all(&i.to_le_bytes())?;
                }
                Ok(())
            };
        let mut last: Option<(u64, u32, u64)> = None;
        for key in sorted {
            let key = key?;
            match &last {
                Some(l) if l.0 == key.0 => {
                    if named.is_empty() {
                        named.push((name_at(l.2)?, l.1, l.0));
                        run.clear();
                    }
                    named.push((name_at(key.2)?, key.1, key.0));
                }
                _ => {
                    flush(&mut run, &mut named)?;
                    run.push((key.0, key.1));
                }
            }
            last = Some(key);
        }
        flush(&mut run, &mut named)?;
        moved.sort_unstable();
        let mut unmoved = unmoved.read_back()?;
        let mut moved = moved.into_iter().peekable();
        let mut entry = [0u8; UNMOVED_LEN];
        loop {
            let next = match unmoved.read_exact(&mut entry) {
                Ok(()) => Some((
                    u64::from_le_bytes(entry[..8].try_into().unwrap_or_default()),
                    u32::from_le_bytes(entry[8..].try_into().unwrap_or_default()),
                )),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => None,
                Err(e) => return Err(e),
            };
            while let Some(m) = moved.next_if(|&m| next.is_none_or(|n| m < n)) {
                each(m.1)?;
            }
            match next {
                Some((_, i)) => each(i)?,
                None => {
                    again.sort_unstable();
                    return Ok(again);
                }
            }
        }
    }
}

/// A path component that is never empty, `.`, `..`, or contains `/`, NUL or control
/// characters, and stays under 200 bytes.
pub fn safe_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c == '/' || c == '%' || c.is_control() {
            let mut b = [0u8; 4];
            for byte in c.encode_utf8(&mut b).bytes() {
                let _ = write!(out, "%{byte:02X}");
            }
        } else {
            out.push(c);
        }
        if out.len() > 200 {
            break;
        }
    }
    match out.as_str() {
        "" | "." | ".." => format!("%{out}"),
        _ => out,
    }
}

/// A readable file name for a document's `_id`: ObjectId hex, the string, the number;
/// otherwise the hex of the value.
/// `id` is the document's `_id` as the index keeps it, `offset` where it lies.
pub fn id_name(id: &[u8], offset: u64) -> String {
    let mut name = String::new();
    write_id_name(&mut name, id, offset);
    name
}

/// Appends [`id_name`] to `out` (the layout hashes millions of names through one buffer).
fn write_id_name(out: &mut String, id: &[u8], offset: u64) {
    let (t, v) = match id.split_first() {
        Some((t, v)) => (*t, v),
        None => {
            let _ = write!(out, "no_id-{offset:013}");
            return;
        }
    };
    let le = |n: usize| {
        v.get(..n)
            .map(|b| b.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64))
    };
    let _ = match t {
        0x07 => {
            push_hex(out, v);
            Ok(())
        }
        0x02 if v.len() > 5 => {
            out.push_str(&safe_name(&String::from_utf8_lossy(&v[4..v.len() - 1])));
            Ok(())
        }
        0x10 => match le(4) {
            Some(n) => write!(out, "{}", n as u32 as i32),
            None => Ok(()),
        },
        0x12 => match le(8) {
            Some(n) => write!(out, "{}", n as i64),
            None => Ok(()),
        },
        _ => {
            let _ = write!(out, "id{t:02x}-");
            push_hex(out, &v[..v.len().min(32)]);
            Ok(())
        }
    };
}

/// Appends the lower-case hex of `bytes` to `out`.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_names_come_in_hash_order_held_or_spilled() {
        let ids: Vec<Vec<u8>> = (0..3000i32)
            .map(|n| [&[0x10][..], &n.to_le_bytes()].concat())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        // Held in memory (the order read off the sorted hashes), then spilled in runs
        // of 1024 (through the stream of the unmoved).
        let orders: Vec<Vec<u32>> = [1 << 20, 1]
            .into_iter()
            .map(|budget| {
                let spill = Spill::new(dir.path(), budget);
                let mut names = NameOrder::new(&spill).unwrap();
                for id in &ids {
                    names.push(id, 0).unwrap();
                }
                let mut order = Vec::new();
                let again = names.finish(&spill, |i| {
                    order.push(i);
                    Ok(())
                });
                assert_eq!(again.unwrap(), []);
                order
            })
            .collect();
        assert_eq!(orders[0], orders[1]);
        assert_eq!(orders[0].len(), ids.len());
        let hashes: Vec<u64> = orders[0]
            .iter()
            .map(|&i| name_hash(&id_name(&ids[i as usize], 0)))
            .collect();
        assert!(hashes.is_sorted());
    }

    #[test]
    fn equal_names_get_numbers_in_disk_order_and_stay_findable() {
        // Int 5, long 5 and string "5" all read "5"; "5%~2" is a string id.
        let string = |s: &str| {
            let mut id = vec![0x02];
            id.extend_from_slice(&(s.len() as i32 + 1).to_le_bytes());
            id.extend_from_slice(s.as_bytes());
            id.push(0);
            id
        };
        let ids = [
            vec![0x10, 5, 0, 0, 0],
            string("a"),
            vec![0x12, 5, 0, 0, 0, 0, 0, 0, 0],
            string("5%~2"),
            string("5"),
            string("b"),
        ];
        let bases: Vec<String> = ids.iter().map(|id| id_name(id, 0)).collect();
        assert_eq!(bases, ["5", "a", "5", "5%25~2", "5", "b"]);
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path(), 1);
        let mut order = Vec::new();
        let mut names = NameOrder::new(&spill).unwrap();
        for id in &ids {
            names.push(id, 0).unwrap();
        }
        let again = names
            .finish(&spill, |i| {
                order.push(i);
                Ok(())
            })
            .unwrap();
        assert_eq!(again, [(2, 2), (4, 3)]);
        let names: Vec<String> = (0..bases.len())
            .map(|i| {
                let n = again.iter().find(|a| a.0 == i as u32).map_or(0, |a| a.1);
                let mut name = bases[i].to_string();
                if n >= 2 {
                    name.push_str(&format!("{AGAIN}{n}"));
                }
                name
            })
            .collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
        let hashes: Vec<u64> = order
            .iter()
            .map(|&i| name_hash(&names[i as usize]))
            .collect();
        assert!(hashes.is_sorted());
        assert_eq!(doc_name(&[0x10, 5, 0, 0, 0], 0, 3), "5%~3");
    }
}
