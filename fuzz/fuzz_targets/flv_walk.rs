//! The FLV header finder and tag walker on any bytes: no panic, and every carved file,
//! gathered from its extents and walked again on its own, is itself, whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salvagefs::carve::flv::{self, WalkLimits};

fuzz_target!(|data: &[u8]| {
    let limits = WalkLimits {
        resync_window: 64 * 1024,
        ..WalkLimits::default()
    };
    for offset in flv::find_headers(data, data.len()).into_iter().take(64) {
        let Some(carved) = flv::walk(data, offset as u64, &limits) else {
            continue;
        };
        let bytes: Vec<u8> = carved
            .extents
            .iter()
            .flat_map(|&(o, l)| data[o as usize..(o + l) as usize].iter().copied())
            .collect();
        assert_eq!(bytes.len() as u64, carved.len());
        let again = flv::walk(&bytes[..], 0, &limits).expect("a carved file starts with a header");
        assert_eq!(again.len(), carved.len());
        assert_eq!(again.tags, carved.tags);
    }
});
