//! The file names of documents in `mongo/docs/<db>/<coll>/`: made from the `_id`
//! (ObjectId hex, the string, the number), unique within the directory, and found
//! again by name without holding every name: the index keeps, per collection, its
//! documents ordered by the hash of their name, so a lookup is a binary search over
//! the rows, and a listing reads the rows in disk order.

use std::fmt::Write as _;

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_64;

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

/// The order of a directory's `count` documents by the hash of their names, and which
/// of them need a number to be unique: `(document, n)` for the `n`th document (n ≥ 2,
/// disk order) with the same name. `base(i)` is document `i`'s [`id_name`].
pub fn order(count: u32, base: impl Fn(u32) -> String + Sync) -> (Vec<u32>, Vec<(u32, u32)>) {
    // On every core: a collection may hold hundreds of millions of documents.
    let mut keys: Vec<(u64, u32)> = (0..count)
        .into_par_iter()
        .map(|i| (name_hash(&base(i)), i))
        .collect();
    keys.par_sort_unstable();
    // Documents whose names share a hash: the later ones of equal names get numbers.
    let mut again = Vec::new();
    for run in keys.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
        let mut names: Vec<(String, u32)> = run.iter().map(|&(_, i)| (base(i), i)).collect();
        names.sort_unstable();
        for same in names.chunk_by(|a, b| a.0 == b.0) {
            again.extend(same.iter().skip(1).zip(2..).map(|(&(_, i), n)| (i, n)));
        }
    }
    if !again.is_empty() {
        again.sort_unstable();
        for key in keys.iter_mut() {
            if let Ok(at) = again.binary_search_by_key(&key.1, |&(i, _)| i) {
                let mut name = base(key.1);
                let _ = write!(name, "{AGAIN}{}", again[at].1);
                key.0 = name_hash(&name);
            }
        }
        keys.par_sort_unstable();
    }
    (keys.into_iter().map(|(_, i)| i).collect(), again)
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
    let (t, v) = match id.split_first() {
        Some((t, v)) => (*t, v),
        None => return format!("no_id-{offset:013}"),
    };
    let le = |n: usize| {
        v.get(..n)
            .map(|b| b.iter().rev().fold(0u64, |a, &x| a << 8 | x as u64))
    };
    match t {
        0x07 => hex(v),
        0x02 if v.len() > 5 => safe_name(&String::from_utf8_lossy(&v[4..v.len() - 1])),
        0x10 => le(4)
            .map(|n| (n as u32 as i32).to_string())
            .unwrap_or_default(),
        0x12 => le(8).map(|n| (n as i64).to_string()).unwrap_or_default(),
        _ => {
            format!("id{t:02x}-{}", hex(&v[..v.len().min(32)]))
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_get_numbers_in_disk_order_and_stay_findable() {
        // Int 5, long 5 and string "5" all read "5"; "5%~2" is a string id.
        let bases = ["5", "a", "5", "5%25~2", "5", "b"];
        let (order, again) = order(bases.len() as u32, |i| bases[i as usize].to_string());
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
