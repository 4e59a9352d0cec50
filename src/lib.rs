//! salvagefs: scan a damaged disk once, then mount what could be carved from it as a
//! read-only filesystem whose files are computed, on read, from an offset index.
//!
//! Layers, leaf first: [`source`] (read-only access that survives bad sectors),
//! [`carve`] (pure carvers), [`scan`] (parallel driver), [`index`] (the persisted
//! result), [`known`] (tell surviving files from lost ones), [`extent`] and [`tree`]
//! (the virtual files), [`fs`] (the FUSE layer) and [`pipeline`] (what the commands do).

pub mod carve;
pub mod classify;
pub mod content;
pub mod extent;
pub mod extjson;
pub mod fs;
pub mod guard;
pub mod index;
pub mod known;
pub mod merge;
pub mod mountinfo;
pub mod pipeline;
pub mod report;
pub mod scan;
pub mod source;
pub mod spans;
pub mod tree;
