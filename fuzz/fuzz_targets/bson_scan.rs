//! Fuzz target: see `invariants::bson_scan`.
#![no_main]

#[allow(dead_code)] // each target uses one of the invariants
#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::bson_scan(data));
