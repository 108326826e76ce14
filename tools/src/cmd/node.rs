//! `layerp2p tracker | seed | relay | peer`: the deployable roles on real UDP. Wiring
//! only: flags become a `NodeSpec`, the engine's `runtime::role` runs it; this file
//! prints the live status line and the exit summary and turns Ctrl-C into a stop.

use super::args::{PolicyArg, Video};
use clap::Args as ClapArgs;
use layerp2p_codec::synthetic::SyntheticSource;
use layerp2p_codec::{Kbps, LcSource};
use layerp2p_engine::runtime::role::{run_node, run_tracker, NodeSpec};
use layerp2p_engine::runtime::status::{NodeSummary, Status};
use layerp2p_engine::wire::Role;
use layerp2p_engine::{PeerConfig, TrackerConfig};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Flags every role shares.
#[derive(ClapArgs, Debug)]
pub struct Common {
    /// Run for this many seconds, then stop as on Ctrl-C (0: until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    duration: u64,
    /// Machine-readable output: one JSON status object per second and the summary
    /// as JSON, on stdout.
    #[arg(long)]
    json: bool,
    /// Pin the (first) executor to this core; further shards take the next cores.
    #[arg(long, default_value_t = 0)]
    core: usize,
    /// Seed of every random choice the node makes.
    #[arg(long, default_value_t = 1)]
    rng_seed: u64,
}

/// Flags of the roles that run the protocol (seed, relay, peer).
#[derive(ClapArgs, Debug)]
pub struct Protocol {
    /// Scheduling policy; every node of a swarm should use the same.
    #[arg(long, value_enum, default_value_t = PolicyArg::Layerp2p)]
    policy: PolicyArg,
    /// Layer plan of the stream (the seed's video).
    #[arg(long, value_enum, default_value_t = Video::Prototype)]
    video: Video,
    /// Playback lag behind the source, seconds (at least 2).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=600))]
    lag: u64,
}

#[derive(ClapArgs, Debug)]
pub struct TrackerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:7700")]
    listen: SocketAddr,
    #[command(flatten)]
    common: Common,
}

#[derive(ClapArgs, Debug)]
pub struct SeedArgs {
    /// Address to listen on (all shards share it).
    #[arg(long, default_value = "0.0.0.0:7701")]
    listen: SocketAddr,
    /// Register with this tracker; without it the seed runs its own at --tracker-listen.
    #[arg(long)]
    tracker: Option<SocketAddr>,
    /// Where the embedded tracker listens (when --tracker is not given).
    #[arg(long, default_value = "0.0.0.0:7700")]
    tracker_listen: SocketAddr,
    /// Upload cap of the whole seed in kbps, split equally over the shards.
    #[arg(long, default_value_t = 2000)]
    upload_kbps: u32,
    /// Executors (one pinned core each) sharing the port through SO_REUSEPORT.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    shards: u64,
    /// Most neighbours of the whole seed, split over the shards.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    n_max: u64,
    #[command(flatten)]
    protocol: Protocol,
    #[command(flatten)]
    common: Common,
}

/// Where a relay or peer listens and which swarm it joins.
#[derive(ClapArgs, Debug)]
pub struct Member {
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// The swarm's tracker.
    #[arg(long)]
    tracker: SocketAddr,
}

#[derive(ClapArgs, Debug)]
pub struct RelayArgs {
    #[command(flatten)]
    member: Member,
    /// Upload cap in kbps (a super-peer's is high).
    #[arg(long, default_value_t = 10_000)]
    upload_kbps: u32,
    /// Most neighbours.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    n_max: u64,
    #[command(flatten)]
    protocol: Protocol,
    #[command(flatten)]
    common: Common,
}

#[derive(ClapArgs, Debug)]
pub struct PeerArgs {
    #[command(flatten)]
    member: Member,
    /// Upload cap in kbps; 0 makes a free-rider.
    #[arg(long)]
    upload_kbps: u32,
    #[command(flatten)]
    protocol: Protocol,
    #[command(flatten)]
    common: Common,
}

/// Sets `stop` on Ctrl-C (SIGINT) and SIGTERM.
fn stop_on_signals() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).map_err(|e| format!("cannot handle signal {sig}: {e}"))?;
    }
    Ok(stop)
}

/// Prints each status (a live line on a terminal, JSON lines with --json, a line
/// every 10 s otherwise) and sets `stop` once --duration has passed.
fn status_printer(common: &Common, stop: Arc<AtomicBool>) -> impl FnMut(&Status) + use<> {
    let (json, duration) = (common.json, common.duration);
    let live = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut last_plain = 0u64;
    move |s: &Status| {
        if json {
            if let Ok(line) = serde_json::to_string(s) {
                println!("{line}");
            }
        } else if live {
            eprint!("\r\x1b[2K{s}");
            let _ = std::io::stderr().flush();
        } else if s.elapsed_s as u64 >= last_plain + 10 {
            last_plain = s.elapsed_s as u64;
            eprintln!("{s}");
        }
        if duration > 0 && start.elapsed() >= Duration::from_secs(duration) {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

fn finish(common: &Common, summary: NodeSummary) -> Result<(), String> {
    if std::io::stderr().is_terminal() && !common.json {
        eprintln!();
    }
    if common.json {
        println!("{}", serde_json::to_string(&serde_json::json!({ "summary": summary })).map_err(|e| e.to_string())?);
    } else {
        print!("{}", summary.text());
    }
    Ok(())
}

pub fn tracker(args: TrackerArgs) -> Result<(), String> {
    let stop = stop_on_signals()?;
    eprintln!("tracker listening on {} (Ctrl-C to stop)", args.listen);
    let mut print = status_printer(&args.common, stop.clone());
    let summary = run_tracker(args.listen, TrackerConfig::default(), args.common.rng_seed, args.common.core, stop, &mut print)
        .map_err(|e| e.to_string())?;
    finish(&args.common, summary)
}

fn config(role: Role, p: &Protocol, upload: u32, tracker: Option<SocketAddr>) -> PeerConfig {
    let plan = p.video.synthetic(1).plan;
    let mut pc = match role {
        Role::Seed => PeerConfig::seed(p.policy.policy(), plan, Kbps(upload)),
        Role::Relay => PeerConfig::relay(p.policy.policy(), plan, Kbps(upload)),
        Role::Peer => PeerConfig::peer(p.policy.policy(), plan, Kbps(upload)),
    };
    pc.lag = Duration::from_secs(p.lag);
    pc.tracker = tracker;
    pc
}

fn node(spec: NodeSpec, source: Option<Box<dyn LcSource>>, common: &Common) -> Result<(), String> {
    let stop = stop_on_signals()?;
    let mut print = status_printer(common, stop.clone());
    let summary = run_node(spec, source, stop, &mut print).map_err(|e| e.to_string())?;
    finish(common, summary)
}

/// Where the embedded tracker is reached from this host.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr }
}

pub fn seed(args: SeedArgs) -> Result<(), String> {
    let tracker = args.tracker.unwrap_or(reachable(args.tracker_listen));
    let mut peer = config(Role::Seed, &args.protocol, args.upload_kbps, Some(tracker));
    peer.n_max = args.n_max as usize;
    let source = SyntheticSource::new(args.protocol.video.synthetic(args.common.rng_seed)).map_err(|e| e.to_string())?;
    let spec = NodeSpec {
        peer,
        listen: args.listen,
        shards: args.shards as usize,
        embedded_tracker: args.tracker.is_none().then_some(args.tracker_listen),
        first_core: args.common.core,
        rng_seed: args.common.rng_seed,
    };
    match args.tracker {
        Some(t) => eprintln!("seed on {} with tracker {t}, {} shard(s) (Ctrl-C to stop)", args.listen, args.shards),
        None => eprintln!("seed on {} with its own tracker on {}, {} shard(s) (Ctrl-C to stop)", args.listen, args.tracker_listen, args.shards),
    }
    node(spec, Some(Box::new(source)), &args.common)
}

/// Runs a relay or peer that joins `m.tracker`'s swarm.
fn member(role: Role, m: &Member, upload: u32, n_max: Option<u64>, protocol: &Protocol, common: &Common) -> Result<(), String> {
    let mut peer = config(role, protocol, upload, Some(m.tracker));
    if let Some(n) = n_max {
        peer.n_max = n as usize;
    }
    let spec = NodeSpec { peer, listen: m.listen, shards: 1, embedded_tracker: None, first_core: common.core, rng_seed: common.rng_seed };
    node(spec, None, common)
}

pub fn relay(args: RelayArgs) -> Result<(), String> {
    member(Role::Relay, &args.member, args.upload_kbps, Some(args.n_max), &args.protocol, &args.common)
}

pub fn peer(args: PeerArgs) -> Result<(), String> {
    member(Role::Peer, &args.member, args.upload_kbps, None, &args.protocol, &args.common)
}
