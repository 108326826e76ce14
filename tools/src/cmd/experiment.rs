//! `layerp2p experiment prototype`: DESIGN.md §9's prototype experiment on a real UDP swarm
//! over loopback — 1 tracker, 1 seed, N peers of Table I's mix joining as a flash
//! crowd, then staying — for each chosen policy and several runs. Writes one JSON per
//! run, a pooled summary JSON, and PNG plots (playback-rate CDF per class, chunk ratio
//! per layer per class, time series of a typical peer per class). Wiring only: runs and
//! pooling are `layerp2p_engine::lab::experiment`.

use super::args::{IncentiveArgs, MixArg, NeighbourArgs, PolicySet};
use crate::plot::{self, Panel, SeriesPanel};
use crate::progress::Progress;
use clap::{Args as ClapArgs, Subcommand};
use layerp2p_codec::Kbps;
use layerp2p_codec::video::Resolution;
use layerp2p_engine::lab::experiment::{
    Aggregate, CLIP_FRAMES, Prototype, Published, RunFile, RunResult, diagnostics, diagnostics_table, encode_clip,
    per_run_table, psnr_gap_table, psnr_table, published_overloaded,
};
use layerp2p_engine::lab::pool::{RunRecord, Summary, by_system, pool_systems, read_runs, write_json};
use layerp2p_engine::lab::record::Provenance;
use layerp2p_engine::runtime::link::Links;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(ClapArgs, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand, Debug)]
enum What {
    /// DESIGN.md §9's wide-area prototype experiment (Table I mixes) on real UDP sockets.
    Prototype(PrototypeArgs),
    /// Pool per-run JSON files of `prototype` (from one or several invocations, real
    /// or --simulate) into the same report, summary JSON and plots, plus every run's
    /// line and the PSNR gap between the systems per seed.
    Report(ReportArgs),
}

#[derive(ClapArgs, Debug)]
pub struct ReportArgs {
    /// Per-run JSON files (`{scenario}-{policy}-run{k}.json`), of one scenario; runs
    /// of several systems are pooled per system.
    #[arg(required = true, value_name = "RUN.json")]
    files: Vec<PathBuf>,
    /// Directory for the summary JSON and the PNG plots (created).
    #[arg(long, default_value = "experiment-report")]
    out: PathBuf,
}

#[derive(ClapArgs, Debug)]
pub struct PrototypeArgs {
    /// Table I scenario: underloaded (resource index 1.23) or overloaded with
    /// free-riders (0.82).
    #[arg(long, value_enum, default_value_t = MixArg::Overloaded)]
    scenario: MixArg,
    /// Systems to run (all: LayerP2P, Single-Incent, Single-Layer, one after another).
    #[arg(long, value_enum, default_value_t = PolicySet::All)]
    policy: PolicySet,
    /// Runs per system (run k uses seed + k: other join times and class draws).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// Viewer peers (the paper: 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(3..=2_000))]
    peers: u64,
    /// Peers join uniformly over this many seconds (the paper: 120).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    join_over: u64,
    /// Seconds everyone stays after the join period (the paper: 1200). A run lasts
    /// --join-over + --duration seconds of wall-clock time.
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u64).range(20..=86_400))]
    duration: u64,
    /// Playback lag behind the source, seconds (the paper: 30).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=600))]
    lag: u64,
    /// Playback is counted from this many seconds after a peer joins.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    startup: u64,
    /// Seed upload cap in kbps (the paper: 2000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    seed_upload_kbps: u32,
    /// Neighbours the seed accepts (the paper does not say). 100: the seed takes every
    /// viewer, so no early joiner (a free-rider, say) holds one of its few slots for
    /// the whole run; with 20 some flash crowds collapse (docs/decisions/0001).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    seed_n_max: u64,
    /// Wide-area realism on loopback: each viewer's one-way access delay is drawn
    /// uniformly from MIN..MAX ms (e.g. 10..100; RTT between two viewers is the sum of
    /// their delays). Applied in-process to what each viewer receives; the tracker and
    /// the seed have no link of their own.
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_delay_range)]
    delay_ms: Option<(u64, u64)>,
    /// Wide-area realism: share of the datagrams each viewer receives that is lost
    /// (0..1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_loss)]
    loss: f64,
    /// Executors (pinned cores) the nodes are spread over.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    shards: u64,
    /// Seed of run 0.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    incentive: IncentiveArgs,
    #[command(flatten)]
    neighbours: NeighbourArgs,
    /// Stream the built-in clip as real H.264 (encoded once, looped) instead of the
    /// synthetic prototype video, and report PSNR Q1..Q3, Q per class.
    #[arg(long)]
    video: bool,
    /// With --video: picture size of the clip, WIDTHxHEIGHT.
    #[arg(long, default_value = "176x144", value_parser = super::video::parse_resolution)]
    video_resolution: Resolution,
    /// With --video: encoder QP (16 at 176x144 gives about the paper's 620 kbps).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(0..=51))]
    video_qp: u8,
    /// Viewers per class watched in each run: the time series (and PSNR with --video).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    watch_per_class: u64,
    /// Run the same setup (peers, join times, seed, lag, video) in the chunk-level
    /// simulator instead of on sockets, in virtual time: the reference the real swarm
    /// is compared with. Prints each run's table; writes `{scenario}-{policy}-sim-run{k}.json`.
    #[arg(long)]
    simulate: bool,
    /// With --simulate: one-way latency of every message, ms (loopback is under 1).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=10_000))]
    sim_latency_ms: u64,
    /// Directory for the per-run JSON, summary.json and the PNG plots (created).
    #[arg(long, default_value = "experiment-out")]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<(), String> {
    match args.what {
        What::Prototype(a) => prototype(a),
        What::Report(a) => report(a),
    }
}

fn prototype(args: PrototypeArgs) -> Result<(), String> {
    if args.startup + 10 >= args.duration {
        return Err(format!(
            "--duration ({}) must exceed --startup ({}) by more than 10 s, or late joiners count no playback",
            args.duration, args.startup
        ));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let setup = Prototype {
        mix: args.scenario.mix(),
        peers: args.peers as usize,
        join_over: Duration::from_secs(args.join_over),
        stay: Duration::from_secs(args.duration),
        lag: Duration::from_secs(args.lag),
        startup: Duration::from_secs(args.startup),
        seed_upload: Kbps(args.seed_upload_kbps),
        seed_n_max: args.seed_n_max as usize,
        shards: args.shards as usize,
        links: Links {
            delay_min: Duration::from_millis(args.delay_ms.map_or(0, |d| d.0)),
            delay_max: Duration::from_millis(args.delay_ms.map_or(0, |d| d.1)),
            loss: args.loss,
        },
        watch_per_class: args.watch_per_class as usize,
        incentive: args.incentive.resolve(),
        neighbours: args.neighbours.for_viewers()?,
        seed: args.seed,
    };
    let scenario = format!("{:?}", args.scenario).to_lowercase();
    let policies = args.policy.policies();
    let total = args.join_over + args.duration;
    println!(
        "prototype experiment, {scenario}: {} peers ({}), {} kbps seed, join over {} s then stay {} s, lag {} s; {} system(s) x {} run(s) = about {} min",
        args.peers,
        setup
            .mix
            .classes
            .iter()
            .map(|c| format!("{:.0}% {} @ {}", c.share * 100.0, c.name, c.upload))
            .collect::<Vec<_>>()
            .join(", "),
        args.seed_upload_kbps,
        args.join_over,
        args.duration,
        args.lag,
        policies.len(),
        args.runs,
        (total * policies.len() as u64 * u64::from(args.runs)).div_ceil(60)
    );
    let clip = if args.video {
        eprintln!("encoding {CLIP_FRAMES} frames of the built-in clip at {} ...", args.video_resolution);
        let clip = encode_clip(args.video_resolution, args.video_qp).map_err(|e| e.to_string())?;
        let rates: Vec<String> = clip.layer_rates().iter().map(|r| r.0.to_string()).collect();
        println!(
            "video: built-in clip {} at 30 fps, QP {}, layers {} kbps",
            clip.cfg.resolution,
            clip.cfg.qp,
            rates.join(" / ")
        );
        Some(clip)
    } else {
        None
    };
    if args.delay_ms.is_some() || args.loss > 0.0 {
        if args.simulate {
            return Err("--delay-ms and --loss shape the real swarm; with --simulate use --sim-latency-ms".into());
        }
        let (lo, hi) = args.delay_ms.unwrap_or((0, 0));
        println!(
            "viewer access links: one-way delay {lo}..{hi} ms each (uniform), {:.1} % of received datagrams lost",
            args.loss * 100.0
        );
    }
    if args.simulate {
        return simulate(&args, &setup, clip.as_ref(), &scenario);
    }
    let started = Instant::now();
    let mut progress = Progress::new();
    let mut results: Vec<RunResult> = Vec::new();
    for &policy in &policies {
        for run in 0..args.runs {
            let r = setup
                .run(policy, run, clip.as_ref(), &mut |elapsed| {
                    if progress.due(false) {
                        progress.show(&format!(
                            "{policy:<13} run {}/{}  {:>5}/{total} s  ({:.0} s wall in all)",
                            run + 1,
                            args.runs,
                            elapsed.as_secs(),
                            started.elapsed().as_secs_f64()
                        ));
                    }
                })
                .map_err(|e| e.to_string())?;
            progress.finish();
            let path = args.out.join(format!("{scenario}-{}-run{run}.json", policy.name().to_lowercase()));
            write_json(&path, &r.record(&scenario)).map_err(|e| e.to_string())?;
            let cpu: Vec<String> =
                r.observed.local.shard_cpu_s.iter().map(|c| format!("{:.0} %", c * 100.0 / total as f64)).collect();
            println!(
                "{policy} run {run} (seed {}): wrote {}\n{}{}shard CPU (share of one core over the run): {}; node timers run > 20 ms late: {} of {} (latest {:.0} ms); datagrams lost on the simulated links: {}",
                r.seed,
                path.display(),
                r.observed.local.swarm.table(),
                diagnostics_table(&diagnostics(&r.observed.local.swarm, setup.startup)),
                cpu.join(", "),
                r.observed.local.io.timers_late,
                r.observed.local.io.timers_run,
                r.observed.local.io.timer_late_max_us as f64 / 1e3,
                r.observed.local.io.link_lost
            );
            results.push(r);
        }
    }
    let files: Vec<RunFile> =
        results.iter().map(|r| r.file(&scenario)).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    report_pooled(
        &args.out,
        &scenario,
        &format!("prototype, {scenario}, {} peers, {} run(s)", args.peers, args.runs),
        &files,
    )
}

/// `experiment report`: reads the runs back and reports them as `prototype` does.
fn report(args: ReportArgs) -> Result<(), String> {
    let (scenario, files) = read_runs(&args.files).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let what = format!("prototype, {scenario}, {} run(s) of {} system(s) pooled", files.len(), by_system(&files).len());
    report_pooled(&args.out, &scenario, &what, &files)
}

/// Per system (in the order first seen): the pooled table, PSNR and DESIGN.md §11's
/// figures; then every run's line and the PSNR gaps; writes the summary JSON and the
/// plots into `out`.
fn report_pooled(out: &Path, scenario: &str, what: &str, files: &[RunFile]) -> Result<(), String> {
    let pooled = pool_systems(files).map_err(|e| e.to_string())?;
    for p in &pooled {
        let (policy, agg) = (p.policy, &p.aggregate);
        println!("\n== {policy}, {} run(s) pooled ==\n{}", p.runs.len(), agg.report.table());
        if !agg.exact {
            println!(
                "(alpha pooled weighting each run by its peers: some files predate the LC counts that make it exact)"
            );
        }
        let names: Vec<String> = agg.report.classes.iter().map(|c| c.name.clone()).collect();
        if let Some(psnr) = &agg.psnr {
            println!("PSNR (luma dB):\n{}", psnr_table(&names, psnr));
        }
        if scenario == "overloaded" {
            println!(
                "DESIGN.md §11 (LayerP2P, overloaded prototype) beside this {policy} run:\n{}",
                published_lines(&p.published)
            );
        }
    }
    println!("\nEvery run:\n{}", per_run_table(&files.iter().collect::<Vec<_>>()));
    if let Some((base, others)) = pooled.split_first() {
        let others: Vec<(&str, &Aggregate, &[&RunFile])> =
            others.iter().map(|p| (p.policy, &p.aggregate, p.runs.as_slice())).collect();
        print!("{}", psnr_gap_table((base.policy, &base.aggregate, &base.runs), &others));
    }
    let summary_path = out.join(format!("{scenario}-summary.json"));
    write_json(&summary_path, &Summary::of(scenario, &pooled)).map_err(|e| e.to_string())?;
    let panels: Vec<Panel> =
        pooled.iter().map(|p| Panel { title: p.policy.to_string(), report: &p.aggregate.report }).collect();
    let cdf = out.join(format!("{scenario}-playback-cdf.png"));
    plot::playback_cdf(&cdf, &format!("Playback rate per class — {what}"), &panels)?;
    let alpha = out.join(format!("{scenario}-chunk-ratio.png"));
    plot::chunk_ratio(&alpha, &format!("Received chunk ratio per layer — {what}"), &panels)?;
    let series: Vec<SeriesPanel> = pooled
        .iter()
        .filter_map(|p| {
            Some(SeriesPanel {
                title: p.policy.to_string(),
                classes: p.aggregate.report.classes.iter().map(|c| c.name.clone()).collect(),
                typical: p.runs.iter().find_map(|r| r.typical.as_ref())?,
                y_max: p.aggregate.report.full_rate_kbps as f64,
            })
        })
        .collect();
    let ts = out.join(format!("{scenario}-typical-peer.png"));
    plot::time_series(&ts, &format!("Played rate of a typical peer per class (first run) — {what}"), &series)?;
    println!("\nwrote {}, {}, {} and {}", summary_path.display(), cdf.display(), alpha.display(), ts.display());
    Ok(())
}

/// `--simulate`: every policy and run of `setup` in the simulator; per-run tables,
/// JSON and DESIGN.md §11's figures.
fn simulate(
    args: &PrototypeArgs,
    setup: &Prototype,
    clip: Option<&layerp2p_codec::video::droptest::TestClip>,
    scenario: &str,
) -> Result<(), String> {
    let latency = Duration::from_millis(args.sim_latency_ms);
    for &policy in &args.policy.policies() {
        for run in 0..args.runs {
            let started = Instant::now();
            let sim = setup.simulate(policy, run, clip, latency).map_err(|e| e.to_string())?;
            let report = &sim.report;
            let path = args.out.join(format!("{scenario}-{}-sim-run{run}.json", policy.name().to_lowercase()));
            let record = RunRecord {
                provenance: Provenance::current(),
                scenario,
                policy: policy.name(),
                run,
                seed: setup.run_seed(run),
                simulated: true,
                latency_ms: Some(args.sim_latency_ms),
                parameters: &sim.parameters,
                report,
                diagnostics: diagnostics(report, setup.startup),
                psnr: sim.psnr.as_ref(),
                typical: None,
                io: None,
                shard_cpu_s: None,
            };
            write_json(&path, &record).map_err(|e| e.to_string())?;
            let diag = record.diagnostics;
            println!(
                "{policy} run {run}, simulated ({:.1} s): wrote {}\n{}{}",
                started.elapsed().as_secs_f64(),
                path.display(),
                report.table(),
                diagnostics_table(&diag)
            );
            if let Some(psnr) = &sim.psnr {
                let names: Vec<String> = report.classes.iter().map(|c| c.name.clone()).collect();
                println!("PSNR (luma dB):\n{}", psnr_table(&names, psnr));
            }
            if matches!(args.scenario, MixArg::Overloaded) {
                println!("{}", published_lines(&published_overloaded(report)));
            }
        }
    }
    Ok(())
}

/// DESIGN.md §11's figures beside ours, one indented line each.
fn published_lines(published: &[Published]) -> String {
    let line = |p: &Published| {
        let m = p.measured.map_or("-".to_string(), |v| format!("{:.0} %", v * 100.0));
        format!("  {:<32} published {:<7} measured {m}", p.figure, p.published)
    };
    published.iter().map(line).collect::<Vec<_>>().join("\n")
}

/// `MIN..MAX` milliseconds, MIN <= MAX.
fn parse_delay_range(s: &str) -> Result<(u64, u64), String> {
    let (lo, hi) = s.split_once("..").ok_or_else(|| format!("expected MIN..MAX in ms (e.g. 10..100), got {s:?}"))?;
    let ms = |v: &str| v.trim().parse::<u64>().map_err(|_| format!("{v:?} is not a whole number of ms"));
    let (lo, hi) = (ms(lo)?, ms(hi)?);
    if lo > hi || hi > 10_000 {
        return Err(format!("need MIN <= MAX <= 10000 ms, got {lo}..{hi}"));
    }
    Ok((lo, hi))
}

fn parse_loss(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("loss must be a share in 0..1 (e.g. 0.01), got {s:?}")),
    }
}
