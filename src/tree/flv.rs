//! The `flv/` directory: every carved video, `candidates.tsv` (one [`FlvRow`] per
//! candidate) and, for a file made of several pieces, `<file>.extents.txt`.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::Tree;
use crate::carve::flv::Headless;
use crate::carve::join::{Decided, Evidence, Join};
use crate::extent::{Extent, ExtentList};
use crate::index::{FlvEntry, Index};
use crate::report::{self, FlvRow};
use crate::served::unreadable_bytes;

/// Adds `flv/`, `flv/known/` and `flv/candidates.tsv` for every candidate of `index`;
/// `known` holds, per candidate, the surviving file it matches (`--known`). Returns
/// the files that hold bytes of unreadable ranges, with how many.
pub fn add(tree: &mut Tree, index: &Index, known: Option<&[Option<PathBuf>]>) -> Vec<(u64, u64)> {
    let rows = FlvRow::all(index, known);
    let shared = shared_fragments(index);
    let mut unreadable = Vec::new();
    tree.mkdir_p("flv");
    for (i, row) in rows.iter().enumerate() {
        let (dir, name) = row.file.rsplit_once('/').unwrap_or(("flv", &row.file));
        let ino = tree.add_file(dir, name, flv_extents(row.entry));
        let c = &row.entry.carved;
        let borrowed = c.headless.iter().flat_map(|h| &h.borrowed);
        let bad: u64 = (c.extents.iter().chain(borrowed))
            .map(|&(at, len)| unreadable_bytes(&index.bad_ranges, row.entry.source, at, at + len))
            .sum();
        if bad > 0 {
            unreadable.push((ino, bad));
        }
        if let Some(created) = row.entry.carved.created_s {
            tree.set_mtime(ino, created);
        }
        if row.entry.carved.extents.len() > 1 || row.entry.carved.headless.is_some() {
            let text = extents_view(&row.file, row.entry, &shared[i]);
            tree.add_file(
                dir,
                &format!("{name}.extents.txt"),
                ExtentList::from_bytes(text.into_bytes()),
            );
        }
    }
    let tsv = report::candidates_tsv(&rows);
    tree.add_file(
        "flv",
        "candidates.tsv",
        ExtentList::from_bytes(tsv.into_bytes()),
    );
    unreadable
}

/// The bytes of a carved FLV as an extent list (behind a synthesized header and
/// borrowed sequence headers for a headless one).
pub fn flv_extents(entry: &FlvEntry) -> ExtentList {
    let c = &entry.carved;
    let source = |&(offset, len): &(u64, u64)| Extent::Source {
        source: entry.source,
        offset,
        len,
    };
    let prefix = c.headless.iter().flat_map(|h| {
        let header = Headless::header(c.has_audio, c.has_video);
        std::iter::once(Extent::Bytes(header.to_vec().into())).chain(h.borrowed.iter().map(source))
    });
    ExtentList::new(prefix.chain(c.extents.iter().map(source)))
}

/// Per FLV entry, the other entries that use some of the same source bytes: a fragment
/// claimed by two reassembled files is shown in both, never silently.
fn shared_fragments(index: &Index) -> Vec<Vec<usize>> {
    let mut pieces: Vec<(u32, u64, u64, usize)> = index
        .flv
        .iter()
        .enumerate()
        .filter(|(_, e)| e.carved.extents.len() > 1)
        .flat_map(|(i, e)| {
            e.carved
                .extents
                .iter()
                .map(move |&(o, l)| (e.source, o, o + l, i))
        })
        .collect();
    pieces.sort_unstable();
    let mut shared = vec![Vec::new(); index.flv.len()];
    for (k, a) in pieces.iter().enumerate() {
        for b in pieces[k + 1..]
            .iter()
            .take_while(|b| b.0 == a.0 && b.1 < a.2)
        {
            if a.3 != b.3 && !shared[a.3].contains(&b.3) {
                shared[a.3].push(b.3);
                shared[b.3].push(a.3);
            }
        }
    }
    shared
}

/// `<file>.extents.txt`: where each piece of a repaired or reassembled file comes from,
/// so a user can check what was joined.
fn extents_view(path: &str, entry: &FlvEntry, shared_with: &[usize]) -> String {
    let c = &entry.carved;
    let mut t = format!(
        "# {path}: {} from {} pieces of source {}\n# file_offset\tsource_offset\tbytes\thow it continues\n",
        c.status.as_str(),
        c.extents.len(),
        entry.source + 1
    );
    if let Some(h) = &c.headless {
        let _ = writeln!(
            t,
            "# its header was overwritten: served behind a synthesized FLV header{}",
            match h.donor {
                Some(d) => format!(
                    " and the codec sequence headers of the recording at {d} (borrowed: same codecs)"
                ),
                None => String::new(),
            }
        );
    }
    let mut at = c.headless.as_ref().map_or(0, |h| h.prefix_len());
    for (k, &(offset, len)) in c.extents.iter().enumerate() {
        let next = c.extents.get(k + 1).map(|e| e.0);
        let how = match next {
            None => "end of the recording".to_string(),
            Some(to) => match c.joins.iter().find(|j| j.to == to) {
                Some(j) => join_view(j),
                None => format!(
                    "damage skipped, resumes at {to} where a run of tags continues the stream: check this gap (the run may be another recording's, made at the same time with the same codecs)"
                ),
            },
        };
        let _ = writeln!(t, "{at}\t{offset}\t{len}\t{how}");
        at += len;
    }
    for other in shared_with {
        let _ = writeln!(
            t,
            "# shares source bytes with candidate #{} of candidates.tsv",
            other + 1
        );
    }
    t
}

/// How a join is described in `.extents.txt`: where the file goes on, what says so,
/// and whether a user should check it.
fn join_view(j: &Join) -> String {
    let (to, at) = (j.to, j.at_ms as f64 / 1000.0);
    let secs = |ms: u32| ms as f64 / 1000.0;
    match (j.evidence, j.lost_ms, &j.decided) {
        (Evidence::StraddlingTag, Some((a, b)), decided) => format!(
            "fragment continues at {to}, proven by the straddling tag, but where inside the tag is not: the tag ({:.3}s-{:.3}s) is left out so that no other data comes in{}; check this join",
            secs(a),
            secs(b),
            left_out_alternatives(decided.as_ref())
        ),
        (_, Some((a, b)), _) => format!(
            "the next fragment is lost ({:.3}s-{:.3}s missing); continues at the keyframe at {to}, the next fragment in time: check this join",
            secs(a),
            secs(b)
        ),
        (Evidence::ExtentMap(map), _, _) => format!(
            "fragment continues at {to} ({at:.3}s), as the filesystem's extent map at {map} says and the straddling tag confirms"
        ),
        (_, _, Some(Decided::Split(n))) => format!(
            "fragment continues at {to} ({at:.3}s), proven by the straddling tag; of the {n} splits it allows, only this one decodes without error"
        ),
        (_, _, Some(Decided::Inner { starts, checked })) => format!(
            "fragment continues at {to} ({at:.3}s), inside a straddling tag no split of which decodes: found by decoding, a sector no carved file holds from which the frame decodes whole ({starts} starts judged; none of the next {checked} that decode further fits), not proven by the tag; check this join"
        ),
        _ if j.proven() => {
            format!("fragment continues at {to} ({at:.3}s), proven by the straddling tag")
        }
        _ => format!(
            "fragment continues at {to} ({at:.3}s); {} other fragments fit, and the split may lie up to {} bytes earlier: check this join",
            j.alternatives,
            j.from - j.earliest_from
        ),
    }
}

/// What decoding saw at a left-out tag, for the user to try by hand: the splits that
/// decoded without error, or the fragments inside the tag that each made its frame
/// decode.
fn left_out_alternatives(decided: Option<&Decided>) -> String {
    let listed = |items: Vec<String>| match items.len() {
        0..=16 => items.join(", "),
        n => format!("{}, and {} more", items[..16].join(", "), n - 16),
    };
    match decided {
        Some(Decided::InnerAmbiguous(fits)) => format!(
            "; {} fragments inside the tag each make its frame decode (source offset+length: {}), so none is taken",
            fits.len(),
            listed(fits.iter().map(|(m, len)| format!("{m}+{len}")).collect())
        ),
        Some(Decided::Open(open)) => format!(
            "; the split lies at one of {} block boundaries from {} to {}: of {} decoded, {} without error{}",
            open.splits,
            open.range.0,
            open.range.1,
            open.tried,
            open.clean.len(),
            match open.clean.is_empty() {
                true => String::new(),
                false => format!(
                    " (at {})",
                    listed(open.clean.iter().map(u64::to_string).collect())
                ),
            }
        ),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carve::join::OpenSplit;

    /// A join chosen as the nearest fragment that fits is evidence, not proof, and a
    /// left-out tag lists the fragments that each fitted: the user checks those.
    #[test]
    fn joins_decoding_chose_say_how_sure_they_are() {
        let mut j = Join::straddling(4096, 4096, 65536);
        j.decided = Some(Decided::Split(9));
        assert!(join_view(&j).contains("only this one decodes"));
        j.decided = Some(Decided::Inner {
            starts: 48,
            checked: 4,
        });
        let view = join_view(&j);
        assert!(!j.proven());
        assert!(view.contains("not proven") && view.contains("check this join"));
        j.decided = Some(Decided::InnerAmbiguous(vec![(8192, 1024), (12288, 512)]));
        j.lost_ms = Some((40, 80));
        let view = join_view(&j);
        assert!(view.contains("8192+1024, 12288+512"), "{view}");
        assert!(view.contains("check this join"), "{view}");
        j.decided = Some(Decided::Open(OpenSplit {
            range: (7119872, 7128576),
            splits: 18,
            tried: 18,
            clean: vec![7127040, 7127552, 7128064, 7128576],
        }));
        let view = join_view(&j);
        assert!(view.contains("from 7119872 to 7128576"), "{view}");
        assert!(view.contains("4 without error (at 7127040, 7127552, 7128064, 7128576)"));
    }
}
