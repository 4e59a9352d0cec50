//! The `salvagefs` command: a thin layer over the library (see `lib.rs`).

mod cli;
mod mount;
mod steps;
mod unmount;

use std::process::ExitCode;

use clap::Parser;

use salvagefs::pipeline::{self, IndexOrigin};
use salvagefs::report::{self, FlvRow, Summary};

use cli::{Cli, Command, ExportArgs, MergeArgs, ScanArgs};

fn main() -> ExitCode {
    // Behave like other Unix tools when piped into `head`: die quietly on a closed pipe.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    steps::set_quiet(cli.quiet);
    let result = match cli.command {
        Command::Scan(args) => scan(args),
        Command::Mount(args) => mount::run(args),
        Command::Merge(args) => merge(args),
        Command::Export(args) => export(args),
        Command::Index(cli::IndexCommand::List) => {
            index_list();
            Ok(())
        }
        Command::Index(cli::IndexCommand::Prune { all }) => index_prune(all),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "salvagefs", &mut std::io::stdout());
            Ok(())
        }
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

fn scan(args: ScanArgs) -> anyhow::Result<()> {
    let prepared = steps::prepare(&args.sources, &args.common, args.range)?;
    let (index_path, served) = (prepared.index_path, prepared.served);
    let reused = prepared.origin == IndexOrigin::Reused;
    let sources = salvagefs::source::Sources::new(prepared.sources, false);
    let index = &served.index;
    let known = args
        .common
        .known
        .as_deref()
        .map(|dir| pipeline::match_known(index, &sources, dir))
        .transpose()?;
    let summary = Summary::new(index, &served.classified, known.as_deref());
    if args.json_summary {
        let rows = FlvRow::all(index, known.as_deref());
        let json = report::json_summary(
            &summary,
            &rows,
            index,
            &served.classified,
            (&index_path, reused),
        );
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    let how = if reused {
        "index up to date, nothing rescanned (use --rescan to force)".to_string()
    } else {
        let rate = summary.bytes_scanned as f64 / summary.scan_seconds.max(1e-9) / 1e6;
        format!(
            "scanned {:.1} MB in {:.2} s ({rate:.0} MB/s)",
            summary.bytes_scanned as f64 / 1e6,
            summary.scan_seconds
        )
    };
    println!("{}", summary.one_line(&how, &index_path));
    Ok(())
}

fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let (index, docs, path) =
        pipeline::merge_parts(&args.parts, args.index.as_deref(), args.memory)?;
    println!(
        "merged {} parts: {} FLV, {} MongoDB documents, {} unreadable ranges; index {}",
        args.parts.len(),
        index.flv.len(),
        docs,
        index.bad_ranges.len(),
        path.display()
    );
    Ok(())
}

fn export(args: ExportArgs) -> anyhow::Result<()> {
    let Some((dest, sources)) = args.paths.split_last().filter(|(_, s)| !s.is_empty()) else {
        anyhow::bail!(
            "name the sources, then the directory to write into: salvagefs export /dev/sdb /srv/salvage"
        );
    };
    let mut only = globset::GlobSetBuilder::new();
    for pattern in &args.only {
        // As in a shell: `*` stays within one directory, `**` crosses them.
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build();
        only.add(glob.map_err(|e| {
            anyhow::anyhow!(
                "--only {pattern}: {e}; write a glob such as 'flv/*.flv' or 'mongo/dump/**'"
            )
        })?);
    }
    let only = only.build()?;
    let prepared = steps::prepare(sources, &args.common, None)?;
    if let Some(source) = salvagefs::guard::source_under(&dest.join("x"), &prepared.sources) {
        anyhow::bail!(
            "{} is on {}, the disk being recovered; export to another disk",
            dest.display(),
            source.display()
        );
    }
    let how = steps::how(&prepared.origin);
    let built = pipeline::build_tree(
        prepared,
        args.common.known.as_deref(),
        (args.fill_bad_sectors, false),
    )?;
    println!("{how}: {}", built.summary);
    std::fs::create_dir_all(dest)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dest.display()))?;
    let bar = steps::Bar::new();
    bar.0.set_message("exporting");
    let only = (!args.only.is_empty()).then_some(&only);
    let done =
        salvagefs::export::export(&built.tree, &built.content, built.mtime, dest, only, &bar);
    bar.0.finish_and_clear();
    let done = done.map_err(|e| anyhow::anyhow!("cannot export into {}: {e}", dest.display()))?;
    println!(
        "exported into {}: {} files written ({} bytes), {} already complete",
        dest.display(),
        done.written,
        done.bytes,
        done.skipped
    );
    if let Some((path, e)) = done.failed.first() {
        anyhow::bail!(
            "{} files could not be exported ({path}: {e}); use --fill-bad-sectors to write zeros for unreadable sectors",
            done.failed.len()
        );
    }
    Ok(())
}

/// `salvagefs index list`: one line per index of the cache directory.
fn index_list() {
    for c in salvagefs::cached::list() {
        let state = c
            .stale
            .as_deref()
            .map_or("current".to_string(), |why| format!("stale ({why})"));
        let first = std::time::UNIX_EPOCH + std::time::Duration::from_secs(c.created);
        let sources: Vec<String> = c.sources.iter().map(|s| s.display().to_string()).collect();
        println!(
            "{}\t{}\t{}\t{}\t{state}",
            c.path.display(),
            indicatif::HumanBytes(c.bytes),
            humantime::format_rfc3339_seconds(first),
            sources.join(" ")
        );
    }
}

/// `salvagefs index prune`: removes stale (or, with `all`, every) cached index.
fn index_prune(all: bool) -> anyhow::Result<()> {
    let dir = salvagefs::index::cache_dir();
    let removed = salvagefs::cached::prune(all)
        .map_err(|e| anyhow::anyhow!("cannot prune {}: {e}", dir.display()))?;
    for path in &removed {
        println!("removed {}", path.display());
    }
    println!("{} files removed from {}", removed.len(), dir.display());
    Ok(())
}
