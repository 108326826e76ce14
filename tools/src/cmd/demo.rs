//! `layerp2p demo`: the README's main job. A whole swarm — tracker, seed and N peers —
//! on real UDP over loopback in this one process (glommio executors, batched
//! sendmmsg/GSO), on the built-in synthetic video or (`--video clip`) the built-in clip
//! as real H.264. It shows progress, then prints per class the playback rate and chunk
//! ratio per layer, the latency histograms and, with the clip, PSNR per class from
//! decoding what sampled viewers played. Wiring only: the run is
//! `experiment::run_observed` (shared with `layerp2p experiment`).

use super::args::{IncentiveArgs, MixArg, NeighbourArgs, PolicyArg, Video};
use clap::{Args as ClapArgs, ValueEnum};
use layerp2p_codec::Kbps;
use layerp2p_codec::video::Resolution;
use layerp2p_engine::PeerConfig;
use layerp2p_engine::lab::experiment::{CLIP_FRAMES, Stream, encode_clip, psnr_table, run_observed};
use layerp2p_engine::lab::record::Recorded;
use layerp2p_engine::metrics::Latencies;
use layerp2p_engine::runtime::local::LocalSwarmConfig;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// What the seed streams.
#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum DemoVideo {
    /// Synthetic, the paper's prototype video: 290/230/100 kbps VBR, 30 fps, 64-frame GOPs.
    Prototype,
    /// Synthetic, the paper's simulated video: 3 x 200 kbps CBR in 1250-byte LCs.
    Simulation,
    /// The built-in clip as real H.264 (3 temporal layers, encoded once and looped);
    /// adds PSNR per class.
    Clip,
}

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
    #[command(flatten)]
    incentive: IncentiveArgs,
    #[command(flatten)]
    neighbours: NeighbourArgs,
    /// Most neighbours of the seed (100: it takes every viewer; see `experiment
    /// prototype --help`).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    seed_n_max: u64,
    /// The video the seed streams.
    #[arg(long, value_enum, default_value_t = DemoVideo::Prototype)]
    video: DemoVideo,
    /// With --video clip: picture size of the clip, WIDTHxHEIGHT.
    #[arg(long, default_value = "176x144", value_parser = super::video::parse_resolution)]
    video_resolution: Resolution,
    /// With --video clip: encoder QP (lower = higher rate; 16 at 176x144 gives about
    /// the paper's 620 kbps).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(0..=51))]
    video_qp: u8,
    /// Viewers per class watched: their playback is decoded and scored with --video
    /// clip, and the JSON holds the per-second rates of the class's typical one.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    score_peers: u64,
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
    let synthetic = match args.video {
        DemoVideo::Simulation => Video::Simulation,
        DemoVideo::Prototype | DemoVideo::Clip => Video::Prototype,
    }
    .synthetic(args.seed);
    // The plan is replaced by the stream's in `run_observed`.
    let mut peer = PeerConfig::peer(args.policy.policy(), synthetic.plan.clone(), Kbps(0));
    peer.lag = Duration::from_secs(args.lag);
    peer.startup = Duration::from_secs(args.startup);
    args.incentive.apply(&mut peer.incentive);
    args.neighbours.apply(&mut peer)?;
    let cfg = LocalSwarmConfig {
        peer,
        seed_upload: Kbps(args.seed_upload_kbps),
        seed_n_max: args.seed_n_max as usize,
        classes: mix.names(),
        peers: mix.flash_crowd(args.peers as usize, Duration::from_secs(args.join_over), args.seed),
        duration: Duration::from_secs(args.duration),
        shards: args.shards as usize,
        links: Default::default(),
        seed: args.seed,
    };
    println!(
        "LayerP2P demo on real UDP (loopback): {} peers ({}), {} kbps seed, {} s, lag {} s, policy {}",
        args.peers,
        mix.classes
            .iter()
            .map(|c| format!("{:.0}% {} @ {}", c.share * 100.0, c.name, c.upload))
            .collect::<Vec<_>>()
            .join(", "),
        args.seed_upload_kbps,
        args.duration,
        args.lag,
        args.policy.policy()
    );
    let clip = match args.video {
        DemoVideo::Clip => {
            eprintln!("encoding {CLIP_FRAMES} frames of the built-in clip at {} ...", args.video_resolution);
            let clip = encode_clip(args.video_resolution, args.video_qp).map_err(|e| e.to_string())?;
            let rates: Vec<String> = clip.layer_rates().iter().map(|r| r.0.to_string()).collect();
            println!(
                "video: built-in clip {} at 30 fps, QP {}, layers {} kbps (looped every {CLIP_FRAMES} frames)",
                clip.cfg.resolution,
                clip.cfg.qp,
                rates.join(" / ")
            );
            Some(clip)
        }
        _ => None,
    };
    let stream = match &clip {
        Some(c) => Stream::Clip(c),
        None => Stream::Synthetic(synthetic),
    };
    let live = std::io::stderr().is_terminal();
    let total = args.duration;
    let observed = run_observed(cfg, stream, args.score_peers as usize, &mut |elapsed| {
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
    let report = &observed.local;
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
    let names: Vec<String> = report.swarm.classes.iter().map(|c| c.name.clone()).collect();
    if let Some(psnr) = &observed.psnr {
        println!(
            "\nPSNR (luma dB, mean over frames from each scored viewer's first played frame; lost frames repeat the last picture):"
        );
        print!("{}", psnr_table(&names, psnr));
    }
    if let Some(path) = args.json {
        let json = serde_json::json!({
            "policy": args.policy.policy().name(),
            "report": report.swarm,
            "latency": latency,
            "io": io,
            "psnr": observed.psnr,
            "typical": observed.typical,
        });
        let text = serde_json::to_string_pretty(&Recorded::new(&json)).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
