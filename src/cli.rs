//! Command-line arguments (clap). `--help` here and `man/salvagefs.1` say the same.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use salvagefs::extjson::JsonMode;

/// Recover FLV videos and MongoDB documents (MMAPv1 data files or WiredTiger .wt files,
/// compressed or not) from a damaged disk, image or data files, as a read-only filesystem.
#[derive(Parser, Debug)]
#[command(name = "salvagefs", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Say more: -v for progress notes, -vv for details (RUST_LOG=target=level overrides)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Say less: no progress bar and no log notes (errors and safety warnings still show)
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

/// Which shell `completions` writes a completion script for.
pub use clap_complete::Shell;

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scan sources once and write the offset index (nothing is written to the sources)
    Scan(ScanArgs),
    /// Mount the recovered files read-only (scans first if the index is missing or stale)
    Mount(MountArgs),
    /// Join the indexes of `scan --range` parts into the index of the whole sources
    Merge(MergeArgs),
    /// Write the tree the mount would show into a directory (no FUSE needed): same names,
    /// bytes and mtimes; files already complete are skipped, so it resumes
    #[command(override_usage = "salvagefs export [OPTIONS] <SOURCE>... <DEST>")]
    Export(ExportArgs),
    /// List or prune the indexes kept in the cache directory ($XDG_CACHE_HOME/salvagefs)
    #[command(subcommand)]
    Index(IndexCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout
    Completions {
        /// The shell
        shell: Shell,
    },
}

/// Options shared by `scan` and `mount`.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Save the scan's progress every SIZE bytes (to INDEX.partial/), so that an
    /// interrupted scan resumes there; a segment also ends at about three million
    /// documents, which the scan holds in memory; suffixes K, M, G, T (powers of 1024)
    #[arg(long, value_name = "SIZE", default_value = "8G", value_parser = parse_size)]
    pub checkpoint_every: u64,
    /// Memory each sort of the documents may hold before spilling sorted runs beside
    /// the index (classification sorts a few at a time); suffixes K, M, G, T
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub memory: u64,
    /// Index file [default: $XDG_CACHE_HOME/salvagefs/<source>-<hash>.idx]; never on a source disk
    #[arg(long, value_name = "PATH")]
    pub index: Option<PathBuf>,
    /// Directory of surviving files: candidates whose first 500 KiB match one go to flv/known/
    #[arg(long, value_name = "DIR")]
    pub known: Option<PathBuf>,
    /// How far past a broken tag chain to look for its continuation; suffixes K, M, G, T
    #[arg(long, value_name = "SIZE", default_value = "4M", value_parser = parse_size)]
    pub repair_window: u64,
    /// Scan again even if a matching index exists
    #[arg(long)]
    pub rescan: bool,
    /// Try every offset as a BSON document, not only documents starting with _id (slow)
    #[arg(long)]
    pub bson_any: bool,
    /// Extended JSON flavour of mongo/json and mongo/docs (canonical keeps every number's type)
    #[arg(long, value_name = "MODE", value_enum, default_value_t = JsonFlavour::Relaxed)]
    pub json: JsonFlavour,
    /// Schema file {"db.coll": ["field", ...]}: a document goes to the collection whose fields it all has
    #[arg(long, value_name = "FILE", conflicts_with = "schema_from")]
    pub schema: Option<PathBuf>,
    /// Derive the schema from an old mongodump directory (DIR/<db>/<coll>.bson)
    #[arg(long, value_name = "DIR")]
    pub schema_from: Option<PathBuf>,
}

/// `--json`'s values: the library's [`JsonMode`] as clap spells it (the library does
/// not depend on clap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum JsonFlavour {
    /// Numbers and dates as plain JSON where that loses nothing obvious (mongoexport's
    /// default; `jq`-friendly)
    Relaxed,
    /// Every number typed (`$numberInt`, `$numberLong`...): lossless on import
    Canonical,
}

impl From<JsonFlavour> for JsonMode {
    fn from(f: JsonFlavour) -> JsonMode {
        match f {
            JsonFlavour::Relaxed => JsonMode::Relaxed,
            JsonFlavour::Canonical => JsonMode::Canonical,
        }
    }
}

/// `salvagefs scan`.
#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Disk images, block devices and/or data files (/dev/sdb, image.dd, mydb.0,
    /// collection-7-123.wt with _mdb_catalog.wt), opened read-only
    #[arg(required = true, value_name = "SOURCE")]
    pub sources: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print a machine-readable JSON summary on stdout instead of the one-line summary
    #[arg(long)]
    pub json_summary: bool,
    /// Scan only what starts in bytes START..END of each source (END omitted: to the
    /// end; suffixes K, M, G, T), into a partial index for `salvagefs merge`
    #[arg(long, value_name = "START..END", value_parser = parse_range)]
    pub range: Option<(u64, u64)>,
}

/// `salvagefs index`.
#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Every index of the cache directory: size, first scan, whether its sources still match
    List,
    /// Remove the indexes whose sources changed or are gone, and leftover lock files
    Prune {
        /// Remove every index of the cache directory
        #[arg(long)]
        all: bool,
    },
}

/// `salvagefs export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The sources (as for scan), then the directory to write the tree into (the last
    /// path; created if missing, never on a source disk)
    #[arg(required = true, num_args = 1.., value_name = "SOURCE|DEST")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only the files whose path in the tree matches GLOB (repeatable): 'flv/*.flv',
    /// 'mongo/dump/**'
    #[arg(long, value_name = "GLOB")]
    pub only: Vec<String>,
    /// Write zeros for unreadable sectors instead of leaving those files out
    #[arg(long)]
    pub fill_bad_sectors: bool,
}

/// `salvagefs merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The partial indexes, from `salvagefs scan --range` over the same sources
    #[arg(required = true, value_name = "PART")]
    pub parts: Vec<PathBuf>,
    /// Where to write the whole index [default: the default index of the sources]
    #[arg(long, value_name = "PATH")]
    pub index: Option<PathBuf>,
    /// Memory the sort of the documents may hold before spilling sorted runs beside the
    /// index; suffixes K, M, G, T
    #[arg(long, value_name = "SIZE", default_value = "256M", value_parser = parse_size)]
    pub memory: u64,
}

/// `4096`, `512K`, `3G`, `2T`: a size in bytes, suffixes in powers of 1024.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_uppercase() {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err(format!("unknown size suffix in '{s}': use K, M, G or T")),
            };
            (&s[..i], shift)
        }
        _ => (s, 0),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("'{s}' is not a size (examples: 4096, 512K, 3G)"))
}

/// `START..END` or `START..`: a byte range, sizes as in [`parse_size`].
pub fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (start, end) = s
        .split_once("..")
        .ok_or_else(|| format!("'{s}' is not a range; write START..END, e.g. 0..500G"))?;
    let start = parse_size(start)?;
    let end = match end.trim() {
        "" => u64::MAX,
        e => parse_size(e)?,
    };
    if end <= start {
        return Err(format!("the range {s} is empty; END must be past START"));
    }
    Ok((start, end))
}

/// `salvagefs mount`.
#[derive(Args, Debug)]
#[command(override_usage = "salvagefs mount [OPTIONS] <SOURCE>... <MOUNTPOINT>")]
pub struct MountArgs {
    /// The sources (disk images, block devices and/or data files, as for scan), then the
    /// mountpoint, an existing, empty directory: the last path is the mountpoint, as for
    /// mount(8). Options may come before, between or after the paths
    #[arg(required = true, num_args = 1.., value_name = "SOURCE|MOUNTPOINT")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print a machine-readable JSON summary on stdout instead of the one-line summary
    #[arg(long)]
    pub json_summary: bool,
    /// Stay in the foreground; Ctrl-C unmounts
    #[arg(short = 'f', long)]
    pub foreground: bool,
    /// Mount options, comma separated: allow_other, allow_root, nonempty (mount over a
    /// directory that holds files, hiding them while mounted)
    #[arg(short = 'o', value_name = "OPTS")]
    pub options: Vec<String>,
    /// Serve unreadable sectors of a source as zeros instead of failing the read with
    /// EIO, so that cp and rsync copy everything readable (README.txt lists the files
    /// that touch unreadable ranges)
    #[arg(long)]
    pub fill_bad_sectors: bool,
    /// Serve files through the kernel's page cache instead of direct I/O: faster for
    /// readers that read 32 KiB at a time and compute in between (sha256sum), slower
    /// for copies (cat, cp, rsync), and the bytes are cached twice
    #[arg(long)]
    pub page_cache: bool,
    /// Worker threads serving requests
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// Internal: report readiness on stderr to the process that started this daemon
    #[arg(long, hide = true)]
    pub daemon_child: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ranges() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert_eq!(parse_size("3g"), Ok(3 << 30));
        assert!(parse_size("2X").is_err() && parse_size("").is_err());
        assert!(parse_size("99999999999T").is_err());
        assert_eq!(parse_range("0..500G"), Ok((0, 500 << 30)));
        assert_eq!(parse_range("1T.."), Ok((1 << 40, u64::MAX)));
        assert!(parse_range("5..5").is_err() && parse_range("5").is_err());
    }
}
