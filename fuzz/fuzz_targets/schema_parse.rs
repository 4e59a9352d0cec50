//! The `--schema` file parser on any text: never a panic, only a clear error or a
//! schema.
#![no_main]

use libfuzzer_sys::fuzz_target;
use salvagefs::classify::Schema;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Schema::from_json(text);
    }
});
