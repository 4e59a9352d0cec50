//! Property tests of the BSON carver and the Extended JSON writer on hostile bytes:
//! real pymongo-made documents with bytes flipped, cut and spliced into noise. Nothing
//! panics, every document the scan keeps re-validates and renders to valid JSON, and
//! the buffer scan finds the same documents however the bytes are split into chunks.

use proptest::prelude::*;
use salvagefs::carve::bson;
use salvagefs::extjson::{self, JsonMode};
use salvagefs::scan::documents;

fn real_documents() -> Vec<u8> {
    std::fs::read(crate::common::fixtures().join("bson/loose.bin")).unwrap()[..60_000].to_vec()
}

fn damaged() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec((0usize..60_000, any::<u8>()), 0..40),
        0usize..60_000,
        0usize..60_000,
    )
        .prop_map(|(flips, a, b)| {
            let mut data = real_documents();
            for (at, byte) in flips {
                data[at] = byte;
            }
            let (from, to) = (a.min(b), a.max(b));
            data[from..to].rotate_left((to - from) / 3);
            data
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn kept_documents_revalidate_and_render(data in damaged()) {
        for any in [false, true] {
            let found = documents::scan_buffer(&data, 0, data.len(), 0, any, JsonMode::Relaxed);
            for f in &found.docs {
                let e = &f.entry;
                let mut bytes = data[e.offset as usize..][..e.len as usize].to_vec();
                if e.deleted {
                    bytes[..4].copy_from_slice(&e.len.to_le_bytes());
                }
                prop_assert!(bson::validate(&bytes).is_ok());
                for (pretty, len) in [(false, e.json_len), (true, e.pretty_len)] {
                    let mut out = Vec::new();
                    extjson::render(&bytes, JsonMode::Relaxed, pretty, &mut out).unwrap();
                    prop_assert_eq!(out.len() + 1, len as usize);
                    prop_assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = bson::validate(&data);
        let _ = bson::deleted_len(&data, data.len());
        let mut out = Vec::new();
        let _ = extjson::render(&data, JsonMode::Canonical, true, &mut out);
        let _ = documents::scan_buffer(&data, 0, data.len(), 0, true, JsonMode::Relaxed);
    }

    #[test]
    fn chunk_boundaries_do_not_lose_or_repeat_documents(split in 1usize..60_000) {
        let data = real_documents();
        let whole: Vec<u64> = documents::into_entries(
            documents::scan_buffer(&data, 0, data.len(), 0, false, JsonMode::Relaxed).docs,
        ).0.iter().map(|d| d.offset).collect();
        // Two chunks as the scan makes them: the first sees `split` bytes plus an
        // overlap, the second starts at `split`; longer documents are deferred.
        let overlap = 4096;
        let first = documents::scan_buffer(&data[..(split + overlap).min(data.len())], 0, split, 0, false, JsonMode::Relaxed);
        let second = documents::scan_buffer(&data[split..], split as u64, data.len() - split, 0, false, JsonMode::Relaxed);
        let mut found = first.docs;
        found.extend(second.docs);
        let deferred: Vec<u64> = first.deferred.iter().chain(&second.deferred).map(|d| d.1).collect();
        let (docs, _) = documents::into_entries(found);
        let mut offsets: Vec<u64> = docs.iter().map(|d| d.offset).collect();
        offsets.extend(deferred.iter().filter(|o| whole.contains(o)));
        offsets.sort_unstable();
        prop_assert_eq!(offsets, whole);
    }
}
