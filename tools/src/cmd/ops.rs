//! What an operator adds to every node role: `--metrics-listen` (Prometheus metrics and
//! health over HTTP), `--log-format` (logs through `tracing`, filtered by `RUST_LOG`),
//! `--config`/`--print-config` (read by `config_file` before clap parses), and the
//! signal handling of a graceful drain. Wiring only; the engine does the work.

use layerp2p_engine::runtime::exposition::Exposition;
use layerp2p_engine::runtime::http::{HttpServer, metrics_routes};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A node gets this long from the first SIGTERM/SIGINT to exit; then it exits anyway.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// Exit status when a second signal or the drain limit cuts the drain short.
const CUT_SHORT_EXIT: i32 = 130;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for journald, Loki, ...).
    Json,
}

/// Operator flags every node role shares.
#[derive(clap::Args, Debug)]
pub struct Ops {
    /// Serve Prometheus metrics at http://ADDR/metrics and health at /healthz (200
    /// while every shard's loop runs; 503 once one stalls for 3 s or the node drains).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Format of the log lines on stderr; RUST_LOG filters them (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Read flags from this TOML file: keys are flag names (`upload-kbps = 5000`);
    /// flags on the command line override it; an unknown key is an error.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration (flags, file and defaults) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl Ops {
    /// Starts logging; a second call (tests) keeps the first subscriber.
    pub fn init_logs(&self) {
        use tracing_subscriber::EnvFilter;
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Text => builder.with_target(false).try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
    }

    /// Serves `metrics` on `--metrics-listen`, if given; the server stops when dropped.
    pub fn serve_metrics<M: Exposition>(&self, metrics: &Arc<M>) -> Result<Option<HttpServer>, String> {
        let Some(addr) = self.metrics_listen else { return Ok(None) };
        let server =
            HttpServer::bind(addr, metrics_routes(metrics.clone())).map_err(|e| format!("--metrics-listen: {e}"))?;
        tracing::info!(addr = %server.local_addr(), "metrics at /metrics, health at /healthz");
        Ok(Some(server))
    }
}

/// The stop flag of a node: the first SIGINT or SIGTERM sets it (the node drains:
/// healthz fails, neighbours and tracker are told it leaves, it exits); a second one
/// exits at once, and so does the drain itself once it takes `DRAIN_LIMIT`.
pub fn drain_on_signals() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(sig, CUT_SHORT_EXIT, stop.clone())
            .and_then(|_| signal_hook::flag::register(sig, stop.clone()))
            .map_err(|e| format!("cannot handle signal {sig}: {e}"))?;
    }
    let watched = stop.clone();
    std::thread::Builder::new()
        .name("layerp2p-drain".into())
        .spawn(move || {
            while !watched.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
            std::thread::sleep(DRAIN_LIMIT);
            tracing::error!("drain took longer than {} s: exiting", DRAIN_LIMIT.as_secs());
            std::process::exit(CUT_SHORT_EXIT);
        })
        .map_err(|e| format!("cannot start the drain watchdog: {e}"))?;
    Ok(stop)
}
