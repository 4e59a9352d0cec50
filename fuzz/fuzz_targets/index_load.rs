//! The index loader on any bytes: as they are (header checks), and wrapped in a valid
//! header with the right checksum, so that the decoder itself meets hostile payloads.
//! Never a panic; a decoded index encodes back to bytes that decode to the same index.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use salvagefs::index::Index;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.idx");
    let _ = Index::from_bytes(data, path);
    let wrapped = Index::wrap_payload(data);
    if let Ok(index) = Index::from_bytes(&wrapped, path) {
        let again = Index::from_bytes(&index.to_bytes(), path).expect("re-encoded index loads");
        assert_eq!(again.to_bytes(), index.to_bytes());
    }
});
