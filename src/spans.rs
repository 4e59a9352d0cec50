//! Byte ranges on the sources and the order of what lies in them, in one place that the
//! scan and `merge` both call, so that a merged index equals a scan in one go: span
//! algebra (union, what is missing), the disk order of documents and WiredTiger pages,
//! the outermost of nested documents, and documents inside blocks another reading owns.

use crate::index::{DocEntry, Span, WtPage};

/// Keeps the outermost of nested byte ranges, fed in (source, offset) order: a BSON
/// document inside an accepted one is a sub-document, not a document.
#[derive(Default)]
pub struct Outermost {
    until: Option<(u32, u64)>,
}

impl Outermost {
    /// True if the range starting at `offset` lies outside every range kept so far
    /// (and keeps it).
    pub fn keep(&mut self, source: u32, offset: u64, len: u64) -> bool {
        if let Some((s, end)) = self.until
            && s == source
            && offset < end
        {
            return false;
        }
        self.until = Some((source, offset + len));
        true
    }
}

/// The union of two sorted lists of disjoint spans, with adjacent spans joined; the
/// first overlap is the error.
pub fn union(a: &[Span], b: &[Span]) -> Result<Vec<Span>, Span> {
    let mut all: Vec<Span> = a
        .iter()
        .chain(b)
        .copied()
        .filter(|s| !s.is_empty())
        .collect();
    all.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(all.len());
    for s in all {
        match out.last_mut() {
            Some(last) if last.source == s.source && s.start < last.end => {
                return Err(Span {
                    source: s.source,
                    start: s.start,
                    end: s.end.min(last.end),
                });
            }
            Some(last) if last.source == s.source && s.start == last.end => last.end = s.end,
            _ => out.push(s),
        }
    }
    Ok(out)
}

/// The parts of `want` that `have` does not cover (both sorted and disjoint).
pub fn missing(want: &[Span], have: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for w in want {
        let mut at = w.start;
        for h in have
            .iter()
            .filter(|h| h.source == w.source && h.end > w.start)
        {
            if h.start >= w.end {
                break;
            }
            if h.start > at {
                out.push(Span {
                    start: at,
                    end: h.start,
                    ..*w
                });
            }
            at = at.max(h.end);
        }
        if at < w.end {
            out.push(Span { start: at, ..*w });
        }
    }
    out
}

/// The order of [`crate::index::Index::docs`]: documents lying on a source by (source,
/// offset), then documents of WiredTiger pages by (page, offset in the page).
pub fn disk_order(d: &DocEntry) -> (bool, u64, u64) {
    match d.wt {
        None => (false, u64::from(d.source), d.offset),
        Some(w) => (true, u64::from(w.page), d.offset),
    }
}

/// [`disk_order`] made total (then length, deleted mark, hash), so that an unstable
/// sort, which needs no second copy of millions of documents, orders them the same
/// on every run and in every merge.
pub fn doc_order(d: &DocEntry) -> ((bool, u64, u64), u32, bool, u64) {
    (disk_order(d), d.len, d.deleted, d.hash)
}

/// `pages` sorted by (source, offset), and for each old position its new one.
pub fn in_disk_order(pages: Vec<WtPage>) -> (Vec<WtPage>, Vec<u32>) {
    let mut numbered: Vec<(u32, WtPage)> = (0..).zip(pages).collect();
    numbered.sort_by_key(|(_, p)| (p.source, p.offset));
    let mut renumber = vec![0u32; numbered.len()];
    for (new, (old, _)) in numbered.iter().enumerate() {
        renumber[*old as usize] = new as u32;
    }
    (numbered.into_iter().map(|(_, p)| p).collect(), renumber)
}

/// Drops the documents found on the source inside a claimed block (a WiredTiger block,
/// whose page's reading of its records, with record id and write generation, is the one
/// kept), from any list of items that hold a [`DocEntry`].
pub fn drop_claimed<T>(docs: &mut Vec<T>, claimed: &mut [Span], entry: impl Fn(&T) -> &DocEntry) {
    if claimed.is_empty() {
        return;
    }
    claimed.sort_unstable();
    docs.retain(|f| {
        let e = entry(f);
        if e.wt.is_some() {
            return true;
        }
        let after = claimed.partition_point(|s| (s.source, s.start) <= (e.source, e.offset));
        !claimed[..after]
            .last()
            .is_some_and(|s| s.source == e.source && e.offset < s.end)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(source: u32, start: u64, end: u64) -> Span {
        Span { source, start, end }
    }

    #[test]
    fn unions_and_gaps() {
        let parts = union(&[span(0, 0, 10), span(1, 0, 5)], &[span(0, 10, 20)]).unwrap();
        assert_eq!(parts, [span(0, 0, 20), span(1, 0, 5)]);
        assert_eq!(
            union(&[span(0, 0, 10)], &[span(0, 5, 20)]),
            Err(span(0, 5, 10))
        );
        let want = [span(0, 0, 100), span(1, 0, 50)];
        let have = [span(0, 10, 20), span(0, 30, 100)];
        assert_eq!(
            missing(&want, &have),
            [span(0, 0, 10), span(0, 20, 30), span(1, 0, 50)]
        );
        assert!(missing(&want, &want).is_empty());
    }

    #[test]
    fn outermost_drops_nested() {
        let mut o = Outermost::default();
        assert!(o.keep(0, 10, 100));
        assert!(!o.keep(0, 50, 10));
        assert!(o.keep(0, 110, 5));
        assert!(o.keep(1, 0, 5));
    }
}
