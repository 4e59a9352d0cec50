//! salvagefs: scan a damaged disk once, then mount what could be carved from it as a
//! read-only filesystem whose files are computed, on read, from an offset index.
//!
//! Layers, leaf first (a module uses only modules above it in this list):
//!
//! - [`ahead`]: items made on another thread, a batch ahead of their user.
//! - [`extent`]: a virtual file is a list of extents (source ranges, bytes, documents);
//!   [`mapped`]: a source's bytes for the kernel to copy a reply from.
//! - [`source`]: read-only access to images and block devices that survives bad
//!   sectors; [`mountinfo`]: the one reader of the kernel's mount table; [`guard`]:
//!   never write the index onto a source, warn when a source is mounted read-write.
//! - [`carve`]: pure carvers, one module per format (FLV and its tags, fragments
//!   and joins, BSON, MMAPv1, WiredTiger); [`extjson`]: Extended JSON rendering.
//! - [`spill`]: sorting more records than memory holds, through runs on disk.
//! - [`index`]: the persisted result of a scan, a file of checksummed sections;
//!   [`spans`]: byte ranges and disk order, shared by [`scan`] and [`merge`].
//! - [`merge`]: joins indexes of disjoint ranges (a scan's segments, `--range` parts).
//! - [`scan`]: the parallel driver, a loop over one [`scan::stage::Stage`] per format.
//! - [`classify`]: documents to collections, copies, conflicts, removed records.
//! - [`served`]: the classified documents as fixed-width rows saved in the index and
//!   served from a memory map.
//! - [`known`]: tell surviving files from lost ones (`--known`).
//! - [`report`]: the counts and rows every output prints.
//! - [`tree`]: the mount's tree built from the index (pure); [`content`]: serves its
//!   files' bytes; [`fs`]: the thin FUSE layer over both.
//! - [`export`]: the same tree written into a directory, for machines without FUSE.
//! - [`cached`]: the indexes left in the cache directory, listed and pruned.
//! - [`pipeline`]: what the commands do, for the binary (`main.rs`, `cli.rs`,
//!   `steps.rs`, `mount.rs`).

pub mod ahead;
pub mod cached;
pub mod carve;
pub mod classify;
pub mod content;
pub mod export;
pub mod extent;
pub mod extjson;
pub mod fs;
pub mod guard;
pub mod index;
pub mod known;
pub mod mapped;
pub mod merge;
pub mod mountinfo;
pub mod pipeline;
pub mod report;
pub mod scan;
pub mod served;
pub mod source;
pub mod spans;
pub mod spill;
pub mod tree;
