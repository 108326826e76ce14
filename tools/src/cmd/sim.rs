//! `layerp2p sim`: the trace-driven simulation of DESIGN.md §9 at chunk level. Picks a
//! trace (generated or from a file), a window and scale of it, an upload mix and the
//! systems to compare; runs the real `Peer`/`Tracker` in `engine::sim::Swarm`; prints
//! per-class tables and speed, and writes JSON and PNG plots. Wiring only: every
//! algorithm lives in the engine.

use super::args::{IncentiveArgs, NeighbourArgs, PolicySet};
use crate::plot::{self, Panel};
use crate::progress::Progress;
use clap::{Args as ClapArgs, ValueEnum};
use layerp2p_codec::Kbps;
use layerp2p_engine::lab::record::Provenance;
use layerp2p_engine::lab::trace_run::{
    RunProgress, SystemRecord, SystemRun, TraceRun, TraceRunFile, groups_with_settled, run_systems,
};
use layerp2p_engine::sim::DOWNLINK_BUFFER;
use layerp2p_engine::sim::nat::{NatConfig, nat_groups};
use layerp2p_engine::sim::scenario::ClassDraw;
use layerp2p_engine::sim::trace::{DayTraceConfig, Trace, generate_day};
use layerp2p_engine::swarm::Mix;
use layerp2p_engine::swarm::mix::Load;
use layerp2p_engine::{PeerConfig, Policy, Time};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FORMATS: &str = "\
Trace format (--trace FILE, --write-trace FILE): one session per line,
`ARRIVAL DEPARTURE` in seconds from the trace start (decimals allowed; spaces, tabs
or a comma between); `#` starts a comment; blank lines are ignored; a bad line is
reported with its number. The built-in generator (--trace generate) makes a one-day
channel: time 0 is 04:00, concurrency from ~150 to over 9,000 (evening peak),
~100,000 sessions with log-normal lengths (20 s to 20 h), flash crowds at 12:30
and 20:30.

Custom mix format (--mix or --mix-file): one class per line or per `;`,
`NAME UPLOAD_KBPS SHARE_PERCENT`, e.g. \"free 0 10; low 300 30; high 700 60\".

Example (the overloaded Table II scenario, evening hours, 1/10 of the peers):
  layerp2p sim --scenario overloaded --policy all --from-hour 15 --hours 2 \\
      --scale 0.1 --json out.json --plots plots/";

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum Scenario {
    /// DESIGN.md Table II, "contributed, overloaded" row: resource index 0.73.
    Overloaded,
    /// DESIGN.md Table II, "contributed, underloaded" row: resource index 1.26.
    Underloaded,
    /// DESIGN.md Table I (prototype) overloaded mix: 10 % free-riders, 30 % @ 300, 60 % @ 700 kbps.
    Table1Overloaded,
    /// DESIGN.md Table I (prototype) underloaded mix: 40 % @ 400, 60 % @ 1000 kbps.
    Table1Underloaded,
}

#[derive(ClapArgs, Debug)]
#[command(after_help = FORMATS)]
pub struct Args {
    /// Upload mix (ignored when --mix or --mix-file is given).
    #[arg(long, value_enum, default_value_t = Scenario::Overloaded)]
    scenario: Scenario,
    /// A custom upload mix inline: "NAME KBPS SHARE%; NAME KBPS SHARE%; ...".
    #[arg(long, conflicts_with = "mix_file")]
    mix: Option<String>,
    /// A custom upload mix from a file (one `NAME KBPS SHARE%` per line).
    #[arg(long)]
    mix_file: Option<PathBuf>,
    /// System(s) to run; `all` runs the three on the same trace and mix.
    #[arg(long, value_enum, default_value_t = PolicySet::All)]
    policy: PolicySet,
    /// `generate` for the built-in one-day trace, or a trace file (format above).
    #[arg(long, default_value = "generate")]
    trace: String,
    /// Seed of the generated trace (defaults to --seed).
    #[arg(long)]
    trace_seed: Option<u64>,
    /// Write the (generated or read) full trace to this file, before windowing.
    #[arg(long)]
    write_trace: Option<PathBuf>,
    /// Only prepare the trace (and write it with --write-trace), print its figures, and exit.
    #[arg(long)]
    trace_only: bool,
    /// Start of the simulated window, in hours after the trace start.
    #[arg(long, default_value_t = 0.0, value_parser = start_hour)]
    from_hour: f64,
    /// Length of the simulated window in hours (a full day is 24).
    #[arg(long, default_value_t = 24.0, value_parser = window_hours)]
    hours: f64,
    /// Keep this fraction of the sessions, chosen at random (same dynamics, fewer peers).
    #[arg(long, default_value_t = 1.0, value_parser = fraction)]
    scale: f64,
    /// Sessions already running at the window start join spread over this many seconds.
    #[arg(long, default_value_t = 60)]
    ramp_secs: u64,
    /// One-way latency of every message in ms (0 = instantaneous signalling, as in the
    /// paper; an LC still takes its size over the sender's upload rate).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    latency_ms: u64,
    /// Download capacity of every viewer's access link in kbps: LCs reaching a viewer
    /// cross it one after another, behind at most 250 ms of backlog (later ones are
    /// dropped and asked for again). Each viewer knows its cap: a cap below its
    /// upload lowers its threshold layer l_n (the layers asked for first). Unset:
    /// downlinks are unconstrained, as in the paper (only the suppliers' uplinks
    /// limit a transfer).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    download_kbps: Option<u32>,
    /// Put viewers behind home NATs: `default` (measured shares: 32 % cone, 32 %
    /// port-restricted, 8 % symmetric) or e.g. `cone=0.25,port=0.25,symmetric=0.1`;
    /// the rest are open. Results then also come per group and NAT (open / NAT).
    #[arg(long)]
    nat: Option<layerp2p_engine::sim::nat::NatShares>,
    /// NAT traversal (introductions and hole punching): `on` or `off` (only with --nat
    /// does it change anything).
    #[arg(long, default_value = "on", value_parser = on_off, action = clap::ArgAction::Set)]
    nat_traversal: bool,
    /// Viewers measure their upload (`--upload-kbps auto`) instead of being told it:
    /// each class's upload becomes the rate of its viewers' uplinks, drop-tail queues
    /// 400 ms deep that every datagram they send crosses. Free-riders upload nothing
    /// either way.
    #[arg(long)]
    measured_upload: bool,
    /// Table II groups are also shown over the peers that played at least this many
    /// seconds (past the start-up transient); 0 turns that off.
    #[arg(long, default_value_t = 300)]
    settled_secs: u64,
    /// How sessions get their upload class: `sessions` gives each class its share of
    /// the sessions (shuffled), `viewing-time` its share of the viewing time, so the
    /// window's supply is the mix's resource index (see docs/EXPERIMENTS.md).
    #[arg(long, value_enum, default_value_t = ClassDrawArg::Sessions)]
    class_draw: ClassDrawArg,
    /// Seed of every random choice; the same seed gives the same result.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    incentive: IncentiveArgs,
    #[command(flatten)]
    neighbours: NeighbourArgs,
    /// Systems simulated at once, one thread each (default: one per core, at most the
    /// number of systems). Each run is deterministic on its own, so this changes wall
    /// time only.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: Option<u64>,
    /// Split each system's run over this many threads (conservative time windows as
    /// long as --latency-ms, which must then be at least 1). Any N gives the same
    /// result, which differs from the default sequential run's (events of one instant
    /// run in per-node order, not swarm-wide scheduling order).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=64))]
    threads: Option<u64>,
    /// Write the reports (per class, per policy, speed, trace figures) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write playback-cdf.png and chunk-ratio.png into this directory (created if missing).
    #[arg(long)]
    plots: Option<PathBuf>,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
enum ClassDrawArg {
    /// Each class its share of the sessions; its share of the viewing time is left to chance.
    Sessions,
    /// Each class its share of the viewing time: the window's supply is the mix's.
    ViewingTime,
}

/// The flag's value as typed, for the header line and the JSON.
fn class_draw_name(draw: ClassDrawArg) -> String {
    draw.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
}

impl ClassDrawArg {
    fn draw(self) -> ClassDraw {
        match self {
            ClassDrawArg::Sessions => ClassDraw::Sessions,
            ClassDrawArg::ViewingTime => ClassDraw::ViewingTime,
        }
    }
}

fn parse_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() { Ok(v) } else { Err(format!("{s} is not finite")) }
}
/// Longest window and latest start, in hours: a year is far beyond any trace.
const MAX_HOURS: f64 = 24.0 * 365.0;
fn start_hour(s: &str) -> Result<f64, String> {
    parse_f64(s).and_then(|v| {
        if (0.0..=MAX_HOURS).contains(&v) { Ok(v) } else { Err(format!("{v} must be in [0, {MAX_HOURS}] hours")) }
    })
}
fn window_hours(s: &str) -> Result<f64, String> {
    parse_f64(s).and_then(|v| {
        if v > 0.0 && v <= MAX_HOURS { Ok(v) } else { Err(format!("{v} must be in (0, {MAX_HOURS}] hours")) }
    })
}
fn fraction(s: &str) -> Result<f64, String> {
    parse_f64(s).and_then(|v| if v > 0.0 && v <= 1.0 { Ok(v) } else { Err(format!("{v} must be in (0, 1]")) })
}

fn mix_of(args: &Args) -> Result<Mix, String> {
    let text = match (&args.mix, &args.mix_file) {
        (Some(m), _) => Some(m.clone()),
        (None, Some(p)) => {
            Some(std::fs::read_to_string(p).map_err(|e| format!("cannot read mix {}: {e}", p.display()))?)
        }
        (None, None) => None,
    };
    if let Some(t) = text {
        return Mix::parse(&t).map_err(|e| e.to_string());
    }
    Ok(match args.scenario {
        Scenario::Overloaded => Mix::table_two(Load::Overloaded),
        Scenario::Underloaded => Mix::table_two(Load::Underloaded),
        Scenario::Table1Overloaded => Mix::overloaded(),
        Scenario::Table1Underloaded => Mix::underloaded(),
    })
}

fn trace_of(args: &Args) -> Result<Trace, String> {
    if args.trace == "generate" {
        let cfg = DayTraceConfig { seed: args.trace_seed.unwrap_or(args.seed), ..DayTraceConfig::default() };
        return Ok(generate_day(&cfg));
    }
    let text = std::fs::read_to_string(&args.trace).map_err(|e| format!("cannot read trace {}: {e}", args.trace))?;
    Trace::parse(&text).map_err(|e| format!("{}: {e}", args.trace))
}

fn secs_to_time(s: f64) -> Time {
    Time((s * 1e6) as u64)
}

/// The progress line of one run.
trait StatusLine {
    fn line(&self, policy: Policy) -> String;
    fn short(&self, policy: Policy) -> String;
}

impl StatusLine for RunProgress {
    /// The full line of a run that has the terminal to itself.
    fn line(&self, policy: Policy) -> String {
        let bar: String = (0..30).map(|i| if (i as f64) < self.done * 30.0 { '#' } else { '.' }).collect();
        format!(
            "{policy:<13} [{bar}] {:>5.1}%  sim {:>6.2}/{:.2} h  viewers {:>6}  LCs {:>12}  {:>7.0} k LC/s  wall {:>6.0} s  eta {:>6.0} s",
            self.done * 100.0,
            self.simulated_h,
            self.total_h,
            self.viewers,
            self.lcs,
            self.lcs as f64 / self.wall_secs.max(1e-9) / 1000.0,
            self.wall_secs,
            self.eta_secs()
        )
    }

    /// A short form, for several runs on one line.
    fn short(&self, policy: Policy) -> String {
        format!("{policy} {:.1}% eta {:.0} s", self.done * 100.0, self.eta_secs())
    }
}

/// The progress line of every system being run: one full line for a single run,
/// the short forms side by side for several.
struct Board {
    progress: Progress,
    policies: Vec<Policy>,
    /// Each system's latest status, and whether it has finished.
    runs: Vec<Option<(RunProgress, bool)>>,
}

impl Board {
    fn new(policies: &[Policy]) -> Board {
        Board { progress: Progress::new(), policies: policies.to_vec(), runs: policies.iter().map(|_| None).collect() }
    }

    fn update(&mut self, i: usize, status: RunProgress, last: bool) {
        self.runs[i] = Some((status, last));
        if !self.progress.due(last) {
            return;
        }
        let running = self.runs.iter().flatten().filter(|(_, finished)| !finished).count();
        let line = match &self.runs[i] {
            Some((r, _)) if running <= 1 => r.line(self.policies[i]),
            _ => {
                let short = |(&p, r): (&Policy, &Option<(RunProgress, bool)>)| match r {
                    None => format!("{p} queued"),
                    Some((_, true)) => format!("{p} done"),
                    Some((r, false)) => r.short(p),
                };
                self.policies.iter().zip(&self.runs).map(short).collect::<Vec<_>>().join("  |  ")
            }
        };
        self.progress.show(&line);
    }
}

pub fn run(args: Args) -> Result<(), String> {
    let threads = args.threads.map(|t| t as usize);
    if threads.is_some_and(|t| t > 1) && args.latency_ms < 1 {
        return Err(format!(
            "--threads {} needs --latency-ms 1 or more: the link latency is the lookahead of the parallel time windows",
            threads.unwrap_or(1)
        ));
    }
    if threads.is_some() && args.nat.is_some() {
        return Err("--nat is simulated on one thread only: drop --threads".into());
    }
    if threads.is_some() && args.measured_upload {
        return Err("--measured-upload is simulated on one thread only: drop --threads".into());
    }
    let mix = mix_of(&args)?;
    let full = trace_of(&args)?;
    let stats = full.stats();
    println!(
        "trace: {} sessions over {:.1} h; concurrency peak {}, mean {:.0}, min after the first hour {}; session length p1 {:.0} s, median {:.0} s, p99 {:.1} h, max {:.1} h",
        stats.sessions,
        stats.span_secs / 3600.0,
        stats.peak_concurrent,
        stats.mean_concurrent,
        stats.min_concurrent_after_first_hour,
        stats.session_p01_secs,
        stats.session_p50_secs,
        stats.session_p99_secs / 3600.0,
        stats.session_max_secs / 3600.0
    );
    if let Some(path) = &args.write_trace {
        let comment =
            format!("layerp2p sim trace: source {}, seed {}", args.trace, args.trace_seed.unwrap_or(args.seed));
        std::fs::write(path, full.to_text(&comment)).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote trace to {}", path.display());
    }
    if args.trace_only {
        return Ok(());
    }
    let from = secs_to_time(args.from_hour * 3600.0);
    let duration = Duration::from_secs_f64(args.hours * 3600.0);
    let mut trace = full.window(from, from + duration, Duration::from_secs(args.ramp_secs));
    if args.scale < 1.0 {
        trace = trace.thin(args.scale, args.seed);
    }
    if trace.sessions.is_empty() {
        return Err(format!(
            "no session of the trace falls in hours {} .. {}",
            args.from_hour,
            args.from_hour + args.hours
        ));
    }
    let policies = args.policy.policies();
    println!(
        "simulating hours {:.2} .. {:.2} of the trace at scale {}: {} sessions; mix {} (resource index {:.2} for 600 kbps), classes by {}; seed {}",
        args.from_hour,
        args.from_hour + args.hours,
        args.scale,
        trace.sessions.len(),
        mix.classes
            .iter()
            .map(|c| format!("{:.1}% {} @ {}", c.share * 100.0, c.name, c.upload))
            .collect::<Vec<_>>()
            .join(", "),
        mix.resource_index(&layerp2p_codec::LayerPlan::simulation()),
        class_draw_name(args.class_draw),
        args.seed
    );
    if let Some(down) = args.download_kbps {
        println!("downlinks: every viewer's capped at {down} kbps (LCs queue there first come, first served)");
    }
    let table_two = args.mix.is_none()
        && args.mix_file.is_none()
        && matches!(args.scenario, Scenario::Overloaded | Scenario::Underloaded);
    let jobs = args.jobs.map_or_else(layerp2p_engine::lab::parallel::default_jobs, |j| j as usize);
    let started = Instant::now();
    if let Some(nat) = &args.nat {
        println!(
            "NATs: {:.0} % cone, {:.0} % port-restricted, {:.0} % symmetric, the rest open; traversal {}",
            nat.cone * 100.0,
            nat.port_restricted * 100.0,
            nat.symmetric * 100.0,
            if args.nat_traversal { "on" } else { "off" }
        );
    }
    let configure = |peer: &mut PeerConfig| {
        peer.nat_traversal = args.nat_traversal;
        args.incentive.apply(&mut peer.incentive);
        args.neighbours.apply(peer)
    };
    let run = TraceRun {
        mix: &mix,
        trace: &trace,
        draw: args.class_draw.draw(),
        duration,
        latency: Duration::from_millis(args.latency_ms),
        download: args.download_kbps.map(Kbps),
        nat: args.nat.map(|shares| NatConfig { shares, ..NatConfig::default() }),
        measured_uploads: args.measured_upload,
        seed: args.seed,
        configure: &configure,
        threads,
    };
    let board = Mutex::new(Board::new(&policies));
    let progress = |i, status, last| board.lock().unwrap_or_else(|e| e.into_inner()).update(i, status, last);
    let outcomes = run_systems(&run, &policies, jobs, &progress).map_err(|e| e.to_string())?;
    board.into_inner().unwrap_or_else(|e| e.into_inner()).progress.finish();
    if outcomes.len() > 1 {
        println!(
            "{} systems in {:.1} s wall, {} at a time",
            outcomes.len(),
            started.elapsed().as_secs_f64(),
            jobs.clamp(1, outcomes.len())
        );
    }
    for SystemRun { policy, report, speed, .. } in &outcomes {
        let groups = if table_two { groups_with_settled(report, args.settled_secs) } else { Vec::new() };
        println!("\n== {policy} ==\n{}", report.table_with_groups(&groups));
        if args.nat.is_some() {
            let by_nat = nat_groups(report, mix.classes.len(), args.settled_secs as f64);
            println!("by NAT, peers that played {} s or more:\n{}", args.settled_secs, group_table(&by_nat));
            println!("home NATs dropped {} datagrams", speed.nat_drops);
        }
        println!(
            "concurrent viewers: peak {}, mean {:.0}; {} LC deliveries in {:.1} s wall: {:.0} LC/s, {:.1} s wall per simulated hour; peak RSS {}",
            speed.peak_concurrent,
            speed.mean_concurrent,
            speed.lc_deliveries,
            speed.wall_secs,
            speed.lc_deliveries_per_wall_sec,
            speed.wall_secs_per_simulated_hour,
            speed.peak_rss_kb.map_or("unknown".to_string(), |kb| format!("{:.1} MB", kb as f64 / 1024.0))
        );
        if args.download_kbps.is_some() {
            println!(
                "downlinks dropped {} LCs (backlog beyond {} ms)",
                speed.downlink_drops,
                DOWNLINK_BUFFER.as_millis()
            );
        }
    }
    if let Some(path) = &args.json {
        let runs = outcomes
            .iter()
            .map(|r| SystemRecord {
                policy: r.policy.name(),
                parameters: &r.parameters,
                report: &r.report,
                groups: if table_two { groups_with_settled(&r.report, args.settled_secs) } else { Vec::new() },
                speed: &r.speed,
            })
            .collect();
        let file = TraceRunFile {
            provenance: Provenance::current(),
            trace: &args.trace,
            trace_stats: &stats,
            from_hour: args.from_hour,
            hours: args.hours,
            scale: args.scale,
            class_draw: &class_draw_name(args.class_draw),
            latency_ms: args.latency_ms,
            download_kbps: args.download_kbps,
            seed: args.seed,
            runs,
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    if let Some(dir) = &args.plots {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let panels: Vec<Panel> =
            outcomes.iter().map(|r| Panel { title: r.policy.name().to_string(), report: &r.report }).collect();
        let what = format!(
            "{:?} mix, hours {}..{} at scale {}",
            args.scenario,
            args.from_hour,
            args.from_hour + args.hours,
            args.scale
        );
        let cdf = dir.join("playback-cdf.png");
        plot::playback_cdf(&cdf, &format!("Playback rate per class — {what}"), &panels)?;
        let alpha = dir.join("chunk-ratio.png");
        plot::chunk_ratio(&alpha, &format!("Received chunk ratio per layer — {what}"), &panels)?;
        println!("wrote {} and {}", cdf.display(), alpha.display());
    }
    Ok(())
}

/// `on` / `off` as a flag value.
fn on_off(s: &str) -> Result<bool, String> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("`{s}`: expected on or off")),
    }
}

/// One row per group: peers, mean rate and the share of each layer played.
fn group_table(groups: &[layerp2p_engine::swarm::ClassReport]) -> String {
    let mut s = format!("{:<22} {:>5} {:>7}", "group", "peers", "R mean");
    let layers = groups.first().map_or(0, |g| g.alpha.len());
    for l in 1..=layers {
        s += &format!(" {:>7}", format!("a(L{l})"));
    }
    s.push('\n');
    for g in groups {
        s += &format!("{:<22} {:>5} {:>7.0}", g.name, g.peers, g.rate_mean);
        for a in &g.alpha {
            s += &format!(" {:>6.1}%", a * 100.0);
        }
        s.push('\n');
    }
    s
}
