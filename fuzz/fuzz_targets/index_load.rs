//! Fuzz target: see `invariants::index_load`.
#![no_main]

#[allow(dead_code)] // each target uses one of the invariants
#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::index_load(data));
