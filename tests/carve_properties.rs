//! Property tests of the FLV carver: on any bytes it never panics and stays bounded;
//! every carved file re-walks to itself and ends on a valid PreviousTagSize.

mod common;

use proptest::prelude::*;
use salvagefs::carve::flv::{self, WalkLimits};
use salvagefs::carve::fragments::{self, Continuations};

/// The carved file's bytes, gathered from its extents.
fn gather(data: &[u8], extents: &[(u64, u64)]) -> Vec<u8> {
    extents
        .iter()
        .flat_map(|&(o, l)| data[o as usize..(o + l) as usize].iter().copied())
        .collect()
}

fn check_all_headers(data: &[u8]) {
    let limits = WalkLimits {
        resync_window: 64 * 1024,
        ..WalkLimits::default()
    };
    let headers = flv::find_headers(data, data.len());
    let starts: Vec<u64> = headers.iter().map(|&h| h as u64).collect();
    let mut fragments = Continuations::new(&fragments::find_orphans(data, 0, data.len()), &starts);
    // Joins across lost fragments too (normally only in the scan's second walk).
    fragments.allow_holes(Vec::new());
    for offset in headers {
        let Some(c) = flv::walk(data, offset as u64, &limits, &fragments) else {
            continue;
        };
        let bytes = gather(data, &c.extents);
        assert_eq!(bytes.len() as u64, c.len());
        assert!(bytes.len() >= flv::HEADER_LEN);
        let tail = u32::from_be_bytes(bytes[bytes.len() - 4..].try_into().unwrap());
        if c.tags == 0 {
            assert_eq!(tail, 0);
        } else {
            // The last tag's PreviousTagSize: 11 + data size of the last tag.
            assert!(
                tail >= 11 && tail as usize + 4 <= bytes.len(),
                "tail {tail}"
            );
            let last_tag = bytes.len() - 4 - tail as usize;
            assert!(
                matches!(bytes[last_tag], 8 | 9 | 18),
                "PreviousTagSize points at a tag"
            );
        }
        // The carved file, walked on its own, is itself, whole and intact.
        let again = flv::walk(&bytes[..], 0, &limits, &Continuations::default())
            .expect("carved file has a header");
        assert_eq!(again.len(), bytes.len() as u64);
        assert_eq!(again.extents.len(), 1);
        assert_eq!(again.tags, c.tags);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_with_planted_headers(mut data in proptest::collection::vec(any::<u8>(), 0..20_000), at in proptest::collection::vec(0usize..20_000, 0..4)) {
        for a in at {
            if a + 13 <= data.len() {
                data[a..a + 13].copy_from_slice(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
            }
        }
        check_all_headers(&data);
    }

    #[test]
    fn damaged_real_recordings(cut in 0usize..1_000_000, flips in proptest::collection::vec((0usize..1_000_000, any::<u8>()), 0..64), block in proptest::option::of(0usize..240)) {
        let mut data = common::fixture("stream-av-2.flv");
        for (at, v) in flips {
            let n = data.len();
            data[at % n] = v;
        }
        if let Some(b) = block {
            let start = b * 4096;
            if start + 4096 <= data.len() {
                data[start..start + 4096].copy_from_slice(&common::noise(b as u64, 4096));
            }
        }
        data.truncate(cut.max(13));
        check_all_headers(&data);
    }
}
