//! Fuzz target: see `invariants::fs_maps`.
#![no_main]

#[allow(dead_code)] // each target uses one of the invariants
#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::fs_maps(data));
