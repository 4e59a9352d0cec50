//! Fuzz target: see `invariants::wt_pages`.
#![no_main]

#[allow(dead_code)] // each target uses one of the invariants
#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::wt_pages(data));
