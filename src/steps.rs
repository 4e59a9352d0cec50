//! The steps `scan` and `mount` share on the command line: the scan's options from the
//! arguments, a progress bar while the library prepares the index, and what to say
//! about the index that was used.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use salvagefs::index::ScanSettings;
use salvagefs::pipeline::{self, IndexOrigin, Prepared, ScanPlan};
use salvagefs::scan::Progress;

use crate::cli::CommonArgs;

/// A progress bar on stderr when it is a terminal; nothing otherwise.
pub struct Bar(pub ProgressBar);

/// `-q`: no progress bar.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Hides every progress bar (`-q`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

impl Bar {
    /// A bar on a terminal, hidden otherwise (and with `-q`).
    pub fn new() -> Bar {
        if !std::io::stderr().is_terminal() || QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            return Bar(ProgressBar::hidden());
        }
        // Until the size is known, a spinner and the time: never "0 B/0 B".
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message("opening the sources");
        // Moves on its own, so a long phase never looks hung.
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        Bar(bar)
    }
}

impl Progress for Bar {
    fn warn(&self, message: &str) {
        self.0.suspend(|| eprintln!("salvagefs: {message}"));
    }
    fn begin(&self, total: u64) {
        let style = ProgressStyle::with_template(
            "{spinner} {msg:20} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        self.0.set_style(style.progress_chars("=> "));
        self.0.set_message("scanning");
        self.0.set_length(total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn phase(&self, name: &str) {
        // With RUST_LOG=debug, where the time goes (the bar shows only the present).
        log::debug!("{:.2} s: {name}", self.0.elapsed().as_secs_f64());
        self.0.set_message(name.to_string());
    }
}

/// The scan options and plan that the command line asks for.
fn scan_options(common: &CommonArgs, range: Option<(u64, u64)>) -> (ScanSettings, ScanPlan) {
    let settings = ScanSettings {
        resync_window: common.repair_window,
        bson_any: common.bson_any,
        json: common.json.into(),
    };
    let plan = ScanPlan {
        range,
        checkpoint_every: common.checkpoint_every,
        rescan: common.rescan,
        memory: common.memory,
    };
    (settings, plan)
}

/// Says why an index was not used, if it was not.
fn report_origin(origin: &IndexOrigin, index_path: &std::path::Path) {
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    if let IndexOrigin::Rescanned(reason) = origin {
        eprintln!(
            "salvagefs: index {} not used ({reason}); scanned again",
            index_path.display()
        );
    }
}

/// Opens the sources and gets their index, with a progress bar while scanning.
pub fn prepare(
    sources: &[std::path::PathBuf],
    common: &CommonArgs,
    range: Option<(u64, u64)>,
) -> anyhow::Result<Prepared> {
    let schema = pipeline::load_schema(common.schema.as_deref(), common.schema_from.as_deref())?;
    let bar = Bar::new();
    let (settings, plan) = scan_options(common, range);
    let options = (&settings, schema.as_ref());
    let prepared = pipeline::prepare(sources, common.index.as_deref(), options, &plan, &bar);
    bar.0.finish_and_clear();
    let prepared = prepared?;
    report_origin(&prepared.origin, &prepared.index_path);
    Ok(prepared)
}

/// Makes sure a matching index exists (scanning with a progress bar if not), without
/// loading it: for `mount`, whose daemon loads it.
pub fn ensure_index(
    sources: &[std::path::PathBuf],
    common: &CommonArgs,
) -> anyhow::Result<IndexOrigin> {
    let schema = pipeline::load_schema(common.schema.as_deref(), common.schema_from.as_deref())?;
    let bar = Bar::new();
    let (settings, plan) = scan_options(common, None);
    let options = (&settings, schema.as_ref());
    let ensured = pipeline::ensure(sources, common.index.as_deref(), options, &plan, &bar);
    bar.0.finish_and_clear();
    let (origin, path) = ensured?;
    report_origin(&origin, &path);
    Ok(origin)
}

/// How the index came to be, as the summary line starts.
pub fn how(origin: &IndexOrigin) -> &'static str {
    match origin {
        IndexOrigin::Reused => "index up to date, nothing rescanned (use --rescan to force)",
        IndexOrigin::Scanned | IndexOrigin::Rescanned(_) => "scanned",
    }
}
