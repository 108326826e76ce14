//! `layerp2p demo`: the README's main job. A whole swarm — tracker, seed and N peers —
//! on real UDP over loopback in this one process (glommio executors, batched
//! sendmmsg/GSO), on the built-in synthetic video. It shows progress, then prints per
//! class the playback rate and chunk ratio per layer, and the latency histograms.
//! Wiring only: the swarm is `runtime::local`.

use super::args::{MixArg, PolicyArg, Video};
use clap::Args as ClapArgs;
use layerp2p_codec::synthetic::SyntheticSource;
use layerp2p_codec::Kbps;
use layerp2p_engine::metrics::Latencies;
use layerp2p_engine::runtime::local::{run_local_swarm, LocalSwarmConfig};
use layerp2p_engine::PeerConfig;
use std::io::{IsTerminal, Write};
use std::time::Duration;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Upload mix of the peers (Table I of the paper).
    #[arg(long, value_enum, default_value_t = MixArg::Overloaded)]
    mix: MixArg,
    /// Scheduling policy of every node.
    #[arg(long, value_enum, default_value_t = PolicyArg::Layerp2p)]
    policy: PolicyArg,
    /// Number of viewer peers (besides the tracker and the seed).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(3..=2_000))]
    peers: u64,
    /// Wall-clock length of the run in seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(20..=86_400))]
    duration: u64,
    /// Peers join uniformly over this many seconds (a flash crowd).
    #[arg(long, default_value_t = 5)]
    join_over: u64,
    /// Playback lag behind the source, seconds.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(2..=600))]
    lag: u64,
    /// Playback is counted from this many seconds after a peer joins (tit-for-tat
    /// needs a few rate windows to tell contributors from free-riders).
    #[arg(long, default_value_t = 15)]
    startup: u64,
    /// Seed upload cap in kbps (the paper's: 2000 for 100 peers).
    #[arg(long, default_value_t = 2000)]
    seed_upload_kbps: u32,
    /// Most neighbours of the seed.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    seed_n_max: u64,
    /// The built-in video the seed streams.
    #[arg(long, value_enum, default_value_t = Video::Prototype)]
    video: Video,
    /// Executors (pinned cores) the nodes are spread over.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    shards: u64,
    /// Seed of every random choice (UDP timing still varies between runs).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

pub fn run(args: Args) -> Result<(), String> {
    if args.join_over + args.startup + 10 >= args.duration {
        return Err(format!(
            "--duration ({}) must exceed --join-over ({}) + --startup ({}) by more than 10 s, or no playback is counted",
            args.duration, args.join_over, args.startup
        ));
    }
    let mix = args.mix.mix();
    let source = args.video.synthetic(args.seed);
    let mut peer = PeerConfig::peer(args.policy.policy(), source.plan.clone(), Kbps(0));
    peer.lag = Duration::from_secs(args.lag);
    peer.startup = Duration::from_secs(args.startup);
    let cfg = LocalSwarmConfig {
        peer,
        seed_upload: Kbps(args.seed_upload_kbps),
        seed_n_max: args.seed_n_max as usize,
        classes: mix.names(),
        peers: mix.flash_crowd(args.peers as usize, Duration::from_secs(args.join_over), args.seed),
        duration: Duration::from_secs(args.duration),
        shards: args.shards as usize,
        seed: args.seed,
    };
    println!(
        "LayerP2P demo on real UDP (loopback): {} peers ({}), {} kbps seed, {} s, lag {} s, policy {}",
        args.peers,
        mix.classes.iter().map(|c| format!("{:.0}% {} @ {}", c.share * 100.0, c.name, c.upload)).collect::<Vec<_>>().join(", "),
        args.seed_upload_kbps,
        args.duration,
        args.lag,
        args.policy.policy()
    );
    let source = SyntheticSource::new(source).map_err(|e| e.to_string())?;
    let live = std::io::stderr().is_terminal();
    let total = args.duration;
    let report = run_local_swarm(cfg, Box::new(source), &mut |elapsed| {
        let line = format!("running {:>4}/{total} s", elapsed.as_secs());
        if live {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
        } else if elapsed.as_secs() % 10 == 0 {
            eprintln!("{line}");
        }
    })
    .map_err(|e| e.to_string())?;
    if live {
        eprintln!();
    }
    let mut latency = Latencies::default();
    report.swarm.peers.iter().for_each(|p| latency.merge(&p.stats.latency));
    println!("\n{}", report.swarm.table());
    println!("request→send latency (suppliers): {}", latency.request_to_send.summary());
    println!("LC delivery latency (receivers):  {}", latency.delivery.summary());
    let io = &report.io;
    println!(
        "UDP: {} datagrams out in {} send calls ({} dropped), {} in, {} malformed",
        io.datagrams_out, io.send_syscalls, io.send_dropped, io.datagrams_in, io.malformed
    );
    if let Some(path) = args.json {
        let json = serde_json::json!({ "policy": args.policy.policy().name(), "report": report.swarm, "latency": latency, "io": io });
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
