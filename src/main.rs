//! The `salvagefs` command: a thin layer over the library (see `lib.rs`).

mod cli;
mod mount;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use salvagefs::index::ScanSettings;
use salvagefs::pipeline::{self, IndexOrigin, Prepared, ScanPlan};
use salvagefs::scan::Progress;

use cli::{Cli, Command, CommonArgs, MergeArgs, ScanArgs};

fn main() -> ExitCode {
    // Behave like other Unix tools when piped into `head`: die quietly on a closed pipe.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Scan(args) => scan(args),
        Command::Mount(args) => mount::run(args),
        Command::Merge(args) => merge(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of causes, outermost first.
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("salvagefs: error: {}", msg.join(": "));
            ExitCode::FAILURE
        }
    }
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Bar {
        if !std::io::stderr().is_terminal() {
            return Bar(ProgressBar::hidden());
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template(
            "{msg:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_message("scanning");
        Bar(bar)
    }
}

impl Progress for Bar {
    fn warn(&self, message: &str) {
        self.0.suspend(|| eprintln!("salvagefs: {message}"));
    }
    fn begin(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn phase(&self, name: &str) {
        self.0.set_message(name.to_string());
    }
}

/// The scan options and plan that the command line asks for.
fn scan_options(common: &CommonArgs, range: Option<(u64, u64)>) -> (ScanSettings, ScanPlan) {
    let settings = ScanSettings {
        resync_window: common.repair_window,
        bson_any: common.bson_any,
        json: common.json,
    };
    let plan = ScanPlan {
        range,
        checkpoint_every: common.checkpoint_every,
        rescan: common.rescan,
    };
    (settings, plan)
}

/// Says why an index was not used, if it was not.
fn report_origin(origin: &IndexOrigin, index_path: &std::path::Path) {
    if let IndexOrigin::Rescanned(reason) = origin {
        eprintln!(
            "salvagefs: index {} not used ({reason}); scanned again",
            index_path.display()
        );
    }
}

/// Opens the sources and gets their index, with a progress bar while scanning.
fn prepare(
    sources: &[std::path::PathBuf],
    common: &CommonArgs,
    range: Option<(u64, u64)>,
) -> anyhow::Result<Prepared> {
    let bar = Bar::new();
    let (settings, plan) = scan_options(common, range);
    let prepared = pipeline::prepare(sources, common.index.as_deref(), &settings, &plan, &bar);
    bar.0.finish_and_clear();
    let prepared = prepared?;
    report_origin(&prepared.origin, &prepared.index_path);
    Ok(prepared)
}

/// Makes sure a matching index exists (scanning with a progress bar if not), without
/// loading it: for `mount`, whose daemon loads it.
fn ensure_index(sources: &[std::path::PathBuf], common: &CommonArgs) -> anyhow::Result<()> {
    let bar = Bar::new();
    let (settings, plan) = scan_options(common, None);
    let ensured = pipeline::ensure(sources, common.index.as_deref(), &settings, &plan, &bar);
    bar.0.finish_and_clear();
    let (origin, path) = ensured?;
    report_origin(&origin, &path);
    Ok(())
}

fn scan(args: ScanArgs) -> anyhow::Result<()> {
    let schema = pipeline::load_schema(
        args.common.schema.as_deref(),
        args.common.schema_from.as_deref(),
    )?;
    let prepared = prepare(&args.sources, &args.common, args.range)?;
    let index_path = prepared.index_path.clone();
    let reused = prepared.origin == IndexOrigin::Reused;
    let index = prepared.index.clone();
    let sources = salvagefs::source::Sources::new(prepared.sources, false);
    let known = args
        .common
        .known
        .as_deref()
        .map(|dir| pipeline::match_known(&index, &sources, dir))
        .transpose()?;
    let bytes: u64 = index.covered.iter().map(|s| s.len()).sum();
    let count = |st: &str| {
        index
            .flv
            .iter()
            .filter(|e| e.carved.status.as_str() == st)
            .count()
    };
    let known_count = known.as_ref().map(|k| k.iter().flatten().count());
    let catalog = pipeline::catalog(&index, schema.as_ref());
    let live: usize = catalog.values().map(|c| c.docs.len()).sum();
    let deleted: usize = catalog.values().map(|c| c.deleted.len()).sum();
    if args.json_summary {
        let candidates: Vec<serde_json::Value> = index
            .flv
            .iter()
            .enumerate()
            .map(|(i, e)| {
                serde_json::json!({
                    "source": index.sources[e.source as usize].path,
                    "offset": e.carved.offset,
                    "bytes": e.carved.len(),
                    "duration_s": e.carved.duration_ms as f64 / 1000.0,
                    "tags": e.carved.tags,
                    "status": e.carved.status.as_str(),
                    "extents": e.carved.extents,
                    "known_as": known.as_ref().and_then(|k| k[i].as_ref()),
                })
            })
            .collect();
        let summary = serde_json::json!({
            "index": index_path,
            "index_reused": reused,
            "sources": index.sources.iter().map(|s| serde_json::json!({"path": s.path, "bytes": s.size})).collect::<Vec<_>>(),
            "bytes_scanned": bytes,
            "scan_seconds": index.scan_seconds,
            "flv": {"total": index.flv.len(), "complete": count("complete"), "repaired": count("repaired"), "reassembled": count("reassembled"),
                    "truncated": count("truncated"), "known": known_count},
            "bad_ranges": index.bad_ranges.iter().map(|b| [b.source as u64, b.start, b.end]).collect::<Vec<_>>(),
            "candidates": candidates,
            "wiredtiger": {
                "pages": index.wt_pages.len(),
                "by_compressor": index.wt_pages.iter().fold(serde_json::Map::new(), |mut m, p| {
                    let n = m.get(p.codec.as_str()).and_then(|v| v.as_u64()).unwrap_or(0);
                    m.insert(p.codec.as_str().into(), (n + 1).into());
                    m
                }),
                "catalog": index.wt_catalog.iter().map(|e| serde_json::json!({"file": format!("{}.wt", e.ident), "collection": e.ns})).collect::<Vec<_>>(),
            },
            "mongo": catalog.iter().map(|(ns, c)| (ns.clone(), serde_json::json!({
                "documents": c.docs.len(), "deleted": c.deleted.len(), "duplicates": c.duplicates,
                "conflicts": c.conflicts.len(), "named_by": c.named_by.as_str()}))).collect::<serde_json::Map<_, _>>(),
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let rate = bytes as f64 / index.scan_seconds.max(1e-9) / 1e6;
    let how = if reused {
        "index up to date, nothing rescanned (use --rescan to force)".to_string()
    } else {
        format!(
            "scanned {:.1} MB in {:.2} s ({rate:.0} MB/s)",
            bytes as f64 / 1e6,
            index.scan_seconds
        )
    };
    let known_part = known_count
        .map(|k| format!(", {k} known, {} unknown", index.flv.len() - k))
        .unwrap_or_default();
    println!(
        "{how}: {} FLV ({} complete, {} repaired, {} reassembled, {} truncated){known_part}; {live} MongoDB documents in {} collections, {deleted} deleted; {} unreadable ranges; index {}",
        index.flv.len(),
        count("complete"),
        count("repaired"),
        count("reassembled"),
        count("truncated"),
        catalog.len(),
        index.bad_ranges.len(),
        index_path.display()
    );
    Ok(())
}

fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let (index, path) = pipeline::merge_parts(&args.parts, args.index.as_deref())?;
    println!(
        "merged {} parts: {} FLV, {} MongoDB documents, {} unreadable ranges; index {}",
        args.parts.len(),
        index.flv.len(),
        index.docs.len(),
        index.bad_ranges.len(),
        path.display()
    );
    Ok(())
}
