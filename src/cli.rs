//! Command-line arguments (clap). `--help` here and `man/salvagefs.1` say the same.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use salvagefs::extjson::JsonMode;

/// Recover FLV videos and MongoDB documents from a damaged disk, image or data files,
/// as a read-only filesystem.
#[derive(Parser, Debug)]
#[command(name = "salvagefs", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scan sources once and write the offset index (nothing is written to the sources)
    Scan(ScanArgs),
    /// Mount the recovered files read-only (scans first if the index is missing or stale)
    #[command(override_usage = "salvagefs mount [OPTIONS] <SOURCE>... <MOUNTPOINT>")]
    Mount(MountArgs),
}

/// Options shared by `scan` and `mount`.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Index file [default: $XDG_CACHE_HOME/salvagefs/<source>-<hash>.idx]; never on a source disk
    #[arg(long, value_name = "PATH")]
    pub index: Option<PathBuf>,
    /// Directory of surviving files: candidates whose first 500 KiB match one go to flv/known/
    #[arg(long, value_name = "DIR")]
    pub known: Option<PathBuf>,
    /// How far past a broken tag chain to look for its continuation, in bytes
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub repair_window: u64,
    /// Scan again even if a matching index exists
    #[arg(long)]
    pub rescan: bool,
    /// Try every offset as a BSON document, not only documents starting with _id (slow)
    #[arg(long)]
    pub bson_any: bool,
    /// Extended JSON flavour of mongo/json and mongo/docs (canonical keeps every number's type)
    #[arg(long, value_name = "MODE", value_enum, default_value_t = JsonMode::Relaxed)]
    pub json: JsonMode,
    /// Schema file {"db.coll": ["field", ...]}: a document goes to the collection whose fields it all has
    #[arg(long, value_name = "FILE", conflicts_with = "schema_from")]
    pub schema: Option<PathBuf>,
    /// Derive the schema from an old mongodump directory (DIR/<db>/<coll>.bson)
    #[arg(long, value_name = "DIR")]
    pub schema_from: Option<PathBuf>,
}

/// `salvagefs scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Disk images and/or block devices (/dev/sdb, /dev/md2, image.dd), opened read-only
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print a machine-readable JSON summary on stdout instead of the one-line summary
    #[arg(long)]
    pub json_summary: bool,
}

/// `salvagefs mount`.
#[derive(Args, Debug)]
pub struct MountArgs {
    /// Sources (as for scan), then the mountpoint: an existing, empty directory
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Stay in the foreground; Ctrl-C unmounts
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Mount options, comma separated: allow_other, allow_root
    #[arg(short = 'o', value_name = "OPTS")]
    pub options: Vec<String>,
    /// Serve unreadable sectors of a source as zeros instead of failing the read with
    /// EIO, so that cp and rsync copy everything readable (README.txt lists the files
    /// that touch unreadable ranges)
    #[arg(long)]
    pub fill_bad_sectors: bool,
    /// Worker threads serving requests
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// Internal: report readiness on stderr to the process that started this daemon
    #[arg(long, hide = true)]
    pub daemon_child: bool,
}
