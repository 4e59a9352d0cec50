//! Carver throughput per core on mixed data (criterion): the FLV header finder, the
//! orphan-run finder (fragment starts), the
//! BSON document scan of a buffer (finder, validation, JSON length measurement), and
//! each scan stage's per-chunk finder on 2 MiB chunks as the scan runs them, alone and
//! all together, on data with and without documents; per document, validation, JSON
//! measuring and the whole description the scan makes; and the index entries' codec.
//! Run: `cargo bench --bench carvers`.
//!
//! The data is 64 MiB built like a disk: random bytes, zeros, text, this machine's
//! executables, the FLV fixtures and the MongoDB fixture data files, in 1 MiB pieces.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use salvagefs::carve::{bson, btrfs, ext4, flv, fragments, xfs};
use salvagefs::extjson;
use salvagefs::extjson::JsonMode;
use salvagefs::index::{DocEntry, ScanSettings, codec};
use salvagefs::scan::anchors::Anchors;
use salvagefs::scan::documents::{self, Documents};
use salvagefs::scan::flv::Flv;
use salvagefs::scan::stage::{Chunk, Stage};
use salvagefs::scan::wiredtiger::WiredTiger;

fn mixed(size: usize, with_documents: bool) -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let read = |p: &Path| std::fs::read(p).unwrap_or_default();
    let mut pieces: Vec<Vec<u8>> = vec![
        vec![0; 1 << 20],
        b"disk sector stream recording backup mongo offset video audio ".repeat(1 << 14),
        read(Path::new("/bin/bash")),
    ];
    let dirs: &[&str] = match with_documents {
        true => &["flv", "bson"],
        false => &["flv"],
    };
    for dir in dirs {
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

/// Runs a stage's finder over `data` cut into the scan's chunks (2 MiB plus overlap).
fn per_chunk<S: Stage>(data: &[u8], settings: &ScanSettings) -> usize {
    const CHUNK: usize = 2 << 20;
    let mut n = 0;
    for start in (0..data.len()).step_by(CHUNK) {
        let bytes = &data[start..(start + CHUNK + (64 << 10)).min(data.len())];
        let chunk = Chunk {
            bytes,
            anchors: &Anchors::find(bytes),
            start: start as u64,
            len: CHUNK.min(data.len() - start),
            source: 0,
            settings,
        };
        black_box(S::find(&chunk));
        n += 1;
    }
    n
}

/// Every stage alone and all of them on each chunk, as the scan's pass 1 does.
fn stages(c: &mut Criterion) {
    let settings = ScanSettings {
        resync_window: 0,
        bson_any: false,
        json: JsonMode::Relaxed,
    };
    for (name, with_documents) in [("stages_mixed", true), ("stages_no_documents", false)] {
        let data = mixed(64 << 20, with_documents);
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.sample_size(10);
        group.bench_function("flv", |b| b.iter(|| per_chunk::<Flv>(&data, &settings)));
        group.bench_function("documents", |b| {
            b.iter(|| per_chunk::<Documents>(&data, &settings))
        });
        group.bench_function("wiredtiger", |b| {
            b.iter(|| per_chunk::<WiredTiger>(&data, &settings))
        });
        group.bench_function("all", |b| {
            b.iter(|| {
                per_chunk::<Flv>(&data, &settings)
                    + per_chunk::<Documents>(&data, &settings)
                    + per_chunk::<WiredTiger>(&data, &settings)
            })
        });
        group.finish();
    }
}

fn carvers(c: &mut Criterion) {
    let data = mixed(64 << 20, true);
    let mut group = c.benchmark_group("carvers");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("flv_find_headers", |b| {
        b.iter(|| flv::find_headers(black_box(&data), data.len()))
    });
    group.bench_function("flv_find_orphans", |b| {
        b.iter(|| {
            let starts = fragments::tag_starts(black_box(&data));
            fragments::find_orphans(&data, 0, data.len(), &starts)
                .orphans
                .len()
        })
    });
    group.bench_function("ext4_extent_maps", |b| {
        b.iter(|| {
            let headers: Vec<usize> =
                memchr::memmem::find_iter(black_box(&data), ext4::HEADER_MAGIC).collect();
            ext4::find_extent_maps(&data, 0, data.len(), &headers).len()
        })
    });
    group.bench_function("xfs_inode_maps", |b| {
        b.iter(|| {
            let inodes: Vec<usize> =
                memchr::memmem::find_iter(black_box(&data), xfs::INODE_MAGIC).collect();
            xfs::inode_maps(&data, 0, data.len(), &inodes).len()
        })
    });
    group.bench_function("btrfs_leaf_runs", |b| {
        b.iter(|| btrfs::leaf_runs(black_box(&data), 0, data.len()).len())
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

/// The three steps the scan takes per document, on the MongoDB fixtures' documents
/// (pymongo-encoded, MMAPv1 data files and loose BSON): validation, measuring both
/// JSON renderings, and the whole description (both, plus hash, `_id` and field list).
fn per_document(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bson");
    let files: Vec<Vec<u8>> = ["shop.0", "blog.0", "loose.bin"]
        .iter()
        .map(|f| std::fs::read(root.join(f)).unwrap_or_default())
        .collect();
    let docs: Vec<&[u8]> = files
        .iter()
        .flat_map(|data| {
            let finds = documents::scan_buffer(data, 0, data.len(), 0, false, JsonMode::Relaxed);
            let at = |f: &salvagefs::scan::stage::Found| {
                &data[f.entry.offset as usize..][..f.entry.len as usize]
            };
            finds.docs.iter().map(at).collect::<Vec<_>>()
        })
        .collect();
    let mut group = c.benchmark_group("per_document");
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.sample_size(20);
    let count = |f: &dyn Fn(&[u8]) -> bool| docs.iter().filter(|d| f(d)).count();
    group.bench_function("validate", |b| {
        b.iter(|| count(&|d| bson::validate(d).is_ok()))
    });
    group.bench_function("measure_json", |b| {
        b.iter(|| count(&|d| extjson::measure(d, JsonMode::Relaxed).is_ok()))
    });
    group.bench_function("describe", |b| {
        b.iter(|| count(&|d| documents::describe(d, JsonMode::Relaxed).is_some()))
    });
    group.finish();
}

/// The index entries the scan makes of the MongoDB fixtures' documents, encoded and
/// decoded by the index's own codec and by postcard through serde (the same bytes):
/// what beginning an index and each pass of classification over an index file pay
/// per document.
fn index_entries(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bson");
    let entries: Vec<DocEntry> = ["shop.0", "blog.0", "loose.bin"]
        .iter()
        .flat_map(|f| {
            let data = std::fs::read(root.join(f)).unwrap_or_default();
            let finds = documents::scan_buffer(&data, 0, data.len(), 0, false, JsonMode::Relaxed);
            finds.docs.into_iter().map(|f| f.entry).collect::<Vec<_>>()
        })
        .collect();
    let bytes = postcard::to_allocvec(&entries).unwrap_or_default();
    let mut group = c.benchmark_group("index_entries");
    group.throughput(Throughput::Elements(entries.len() as u64));
    group.bench_function("encode_codec", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(bytes.len());
            entries.iter().for_each(|d| codec::encode(d, &mut out));
            out.len()
        })
    });
    group.bench_function("encode_postcard", |b| {
        b.iter(|| {
            let out = Vec::with_capacity(bytes.len());
            let fold = entries
                .iter()
                .try_fold(out, |out, d| postcard::to_extend(d, out));
            fold.map(|out| out.len()).unwrap_or_default()
        })
    });
    group.bench_function("decode_codec", |b| {
        b.iter(|| codec::decode_list(black_box(&bytes)).map(|d| d.len()))
    });
    group.bench_function("decode_postcard", |b| {
        b.iter(|| postcard::from_bytes::<Vec<DocEntry>>(black_box(&bytes)).map(|d| d.len()))
    });
    group.finish();
}

criterion_group!(benches, carvers, stages, per_document, index_entries);
criterion_main!(benches);
