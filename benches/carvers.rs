//! Carver throughput per core on mixed data (criterion): the FLV header finder, the
//! orphan-run finder (fragment starts), the
//! BSON document scan of a buffer (finder, validation, JSON length measurement), and
//! both together as one scan chunk does them. Run: `cargo bench --bench carvers`.
//!
//! The data is 64 MiB built like a disk: random bytes, zeros, text, this machine's
//! executables, the FLV fixtures and the MongoDB fixture data files, in 1 MiB pieces.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use salvagefs::carve::{flv, fragments};
use salvagefs::extjson::JsonMode;
use salvagefs::scan::documents;

fn mixed(size: usize) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    let mut pieces: Vec<Vec<u8>> = vec![
        vec![0; 1 << 20],
        b"disk sector stream recording backup mongo offset video audio ".repeat(1 << 14),
        read(Path::new("/bin/bash")),
    ];
    for dir in ["flv", "bson"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(dir))
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        pieces.extend(files.iter().map(|p| read(p)));
    }
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut out = Vec::with_capacity(size);
    let mut i = 0;
    while out.len() < size {
        if i % 2 == 0 {
            // Random bytes between the pieces.
            out.extend((0..1 << 20).map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }));
        } else {
            out.extend_from_slice(&pieces[(i / 2) % pieces.len()]);
        }
        i += 1;
    }
    out.truncate(size);
    out
}

fn carvers(c: &mut Criterion) {
    let data = mixed(64 << 20);
    let mut group = c.benchmark_group("carvers");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("flv_find_headers", |b| {
        b.iter(|| flv::find_headers(black_box(&data), data.len()))
    });
    group.bench_function("flv_find_orphans", |b| {
        b.iter(|| {
            fragments::find_orphans(black_box(&data), 0, data.len())
                .orphans
                .len()
        })
    });
    group.bench_function("bson_scan_buffer", |b| {
        b.iter(|| {
            documents::scan_buffer(black_box(&data), 0, data.len(), 0, false, JsonMode::Relaxed)
        })
    });
    group.bench_function("bson_scan_buffer_any_offset", |b| {
        b.iter(|| {
            documents::scan_buffer(black_box(&data), 0, data.len(), 0, true, JsonMode::Relaxed)
        })
    });
    group.finish();
}

criterion_group!(benches, carvers);
criterion_main!(benches);
