//! The integration suite, one binary with a module per area (linked once, as in
//! ripgrep's tests/tests.rs): real fixtures, real tools, real FUSE mounts.

mod common;
#[allow(dead_code)] // fuzz-only helpers of the shared invariants
#[path = "../fuzz/invariants.rs"]
mod invariants;

mod bad_sectors;
mod bson_properties;
mod carve_properties;
mod cli;
mod decoder;
mod filesystems;
mod flv;
mod fragments;
mod fuzz_invariants;
mod history;
mod mongo;
mod mount_hygiene;
mod ranges;
mod safety;
mod soak;
mod wiredtiger;
