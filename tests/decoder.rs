//! ffmpeg judging many probes in one run says of each what a run of its own says.

use crate::common::{fixture, noise, require, tag_offsets};
use salvagefs::scan::decoder::Decoder;

/// Probes cut from the fixtures: the first tags of each, whole and with a stretch of
/// noise written over a tag's data at several places.
fn probes() -> Vec<Vec<u8>> {
    let mut probes = Vec::new();
    for name in ["stream-av-1.flv", "video-only.flv", "audio-only.flv"] {
        let rec = fixture(name);
        let tags = tag_offsets(&rec);
        let prefix = rec[..tags[tags.len().min(40) - 1]].to_vec();
        probes.push(prefix.clone());
        for (k, &tag) in tags.iter().take(39).enumerate().skip(2).step_by(3) {
            let mut broken = prefix.clone();
            let at = tag + 11 + 40;
            let len = 700.min(broken.len().saturating_sub(at));
            broken[at..at + len].copy_from_slice(&noise(k as u64, len));
            probes.push(broken);
        }
    }
    probes
}

#[test]
fn probes_judged_together_get_the_verdicts_they_get_alone() {
    if !require(&["ffmpeg"], false) {
        return;
    }
    let decoder = Decoder::find().expect("ffmpeg runs");
    let probes = probes();
    let refs: Vec<&[u8]> = probes.iter().map(Vec::as_slice).collect();
    // Each probe decoded in a run of its own (judge() would answer from the memo).
    let alone: Vec<_> = refs
        .iter()
        .map(|p| decoder.judge_in_one_run(&[p])?.pop())
        .collect();
    let together = decoder.judge_all(&refs);
    assert_eq!(together, alone);
    // Judged again: the same verdicts, from the memo.
    assert_eq!(decoder.judge_all(&refs), alone);
    assert_eq!(
        refs.iter().map(|p| decoder.judge(p)).collect::<Vec<_>>(),
        alone
    );
    let clean = alone.iter().flatten().filter(|v| v.clean()).count();
    assert!(clean >= 3 && clean < alone.len(), "{alone:?}");
    assert!(
        decoder.batches(),
        "ffmpeg before 6.1 batches (Debian 12 has 5.1)"
    );
    let mut batched = 0;
    for (chunk, alone) in refs.chunks(4).zip(alone.chunks(4)) {
        if let Some(together) = decoder.judge_in_one_run(chunk) {
            assert_eq!(together.into_iter().map(Some).collect::<Vec<_>>(), alone);
            batched += 1;
        }
    }
    assert!(
        batched * 2 >= refs.len().div_ceil(4),
        "{batched} runs told apart"
    );
}
