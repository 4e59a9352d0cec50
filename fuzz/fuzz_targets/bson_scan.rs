//! The document scan of one buffer (candidate finder, validator, deleted-record walker,
//! MMAPv1 headers, JSON length measurement) on any bytes: no panic, and every document
//! it accepts validates again on its own and renders to the length it recorded.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salvagefs::carve::bson;
use salvagefs::extjson::{self, JsonMode};
use salvagefs::scan::documents;

fuzz_target!(|input: &[u8]| {
    let Some((&flags, data)) = input.split_first() else {
        return;
    };
    let any = flags & 1 != 0;
    let mode = if flags & 2 != 0 { JsonMode::Canonical } else { JsonMode::Relaxed };
    let finds = documents::scan_buffer(data, 0, data.len(), 0, any, mode);
    for found in &finds.docs {
        let entry = &found.entry;
        let start = entry.offset as usize;
        let mut doc = data[start..start + entry.len as usize].to_vec();
        if entry.deleted {
            // The scan restores a deleted record's length; do the same here.
            let len = entry.len.to_le_bytes();
            doc[..4].copy_from_slice(&len);
        }
        bson::validate(&doc).expect("an accepted document re-validates");
        let mut line = Vec::new();
        extjson::render(&doc, mode, false, &mut line).expect("an accepted document renders");
        assert_eq!(line.len() as u64 + 1, entry.json_len as u64);
    }
});
