//! Fuzz target: see `invariants::flv_walk`.
#![no_main]

#[allow(dead_code)] // each target uses one of the invariants
#[path = "../invariants.rs"]
mod invariants;

libfuzzer_sys::fuzz_target!(|data: &[u8]| invariants::flv_walk(data));
