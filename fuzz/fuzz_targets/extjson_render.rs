//! The Extended JSON writer on any bytes, validated or not: no panic; a document the
//! validator accepts always renders, and its rendering is valid JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salvagefs::carve::bson;
use salvagefs::extjson::{self, JsonMode};

fuzz_target!(|input: &[u8]| {
    let Some((&flags, doc)) = input.split_first() else {
        return;
    };
    let mode = if flags & 1 != 0 { JsonMode::Canonical } else { JsonMode::Relaxed };
    let pretty = flags & 2 != 0;
    let mut out = Vec::new();
    let rendered = extjson::render(doc, mode, pretty, &mut out);
    if bson::validate(doc).is_ok() {
        rendered.expect("a valid document renders");
        let text = std::str::from_utf8(&out).expect("JSON is UTF-8");
        assert!(text.starts_with('{') && text.ends_with('}'), "{text}");
    }
});
