//! The fuzzers' invariants on every test run: the committed fuzz corpus (inputs that
//! reached new code in long `scripts/fuzz.sh` runs) and the inputs that once found a
//! bug (`fuzz/regressions/`) are replayed, and proptest adds fresh random inputs,
//! through the very functions the fuzz targets call.

use crate::invariants;

use std::path::Path;

use proptest::prelude::*;

type Invariant = fn(&[u8]);

const TARGETS: [(&str, Invariant); 7] = [
    ("fs_maps", invariants::fs_maps),
    ("flv_walk", invariants::flv_walk),
    ("bson_scan", invariants::bson_scan),
    ("extjson_render", invariants::extjson_render),
    ("index_load", invariants::index_load),
    ("schema_parse", invariants::schema_parse),
    ("wt_pages", invariants::wt_pages),
];

#[test]
fn committed_fuzz_corpus_replays_clean() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (target, check) in TARGETS {
        let dir = fuzz.join("corpus").join(target);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(inputs.len() > 10, "{target}: corpus nearly empty");
        // Inputs that once found a bug, kept apart so minimization never drops them.
        if let Ok(found) = std::fs::read_dir(fuzz.join("regressions").join(target)) {
            inputs.extend(found.flatten().map(|e| e.path()));
        }
        for input in inputs {
            // A running fuzzer may just have replaced the file: nothing to replay then.
            let Ok(bytes) = std::fs::read(&input) else {
                continue;
            };
            // A panic names the input, so it can be rerun with `cargo fuzz run`.
            eprintln!("{}", input.display());
            check(&bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_inputs_hold_every_invariant(data in proptest::collection::vec(any::<u8>(), 0..8192)) {
        for (_, check) in TARGETS {
            check(&data);
        }
    }
}
