//! Property tests of the FLV carver: on any bytes it never panics and stays bounded;
//! every carved file re-walks to itself and ends on a valid PreviousTagSize.

use crate::invariants;

use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_with_planted_headers(mut data in proptest::collection::vec(any::<u8>(), 0..20_000), at in proptest::collection::vec(0usize..20_000, 0..4)) {
        for a in at {
            if a + 13 <= data.len() {
                data[a..a + 13].copy_from_slice(b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00");
            }
        }
        invariants::flv_walk(&data);
    }

    #[test]
    fn damaged_real_recordings(cut in 0usize..1_000_000, flips in proptest::collection::vec((0usize..1_000_000, any::<u8>()), 0..64), block in proptest::option::of(0usize..240)) {
        let mut data = crate::common::fixture("stream-av-2.flv");
        for (at, v) in flips {
            let n = data.len();
            data[at % n] = v;
        }
        if let Some(b) = block {
            let start = b * 4096;
            if start + 4096 <= data.len() {
                data[start..start + 4096].copy_from_slice(&crate::common::noise(b as u64, 4096));
            }
        }
        data.truncate(cut.max(13));
        invariants::flv_walk(&data);
    }
}
