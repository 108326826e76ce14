//! `layerp2p demo`: a whole swarm on the built-in video source, no setup. It runs the
//! real protocol core (tracker, seed, peers) in the discrete-event driver — virtual
//! time, so a 4-minute session takes seconds — and prints per-class results for each
//! chosen policy. With `--video`, the seed streams the built-in clip as real H.264
//! (3 temporal layers) and the report adds PSNR per class (Q1/Q2/Q3/Q), from decoding
//! what sampled viewers of each class played.

use clap::{Args as ClapArgs, ValueEnum};
use layerp2p_engine::sim::scenario::{prototype, Mix};
use layerp2p_engine::sim::Swarm;
use layerp2p_engine::{Policy, Time};
use layerp2p_codec::source::LcSource;
use layerp2p_codec::video::droptest::{self, TestClip};
use layerp2p_codec::video::encoder::EncoderConfig;
use layerp2p_codec::video::quality::Quality;
use layerp2p_codec::video::source::{ReplayFeed, VideoSource};
use layerp2p_codec::video::{FrameRate, Resolution};
use layerp2p_codec::LayerId;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum MixArg {
    /// Table I, resource index 0.82: 10 % free-riders, 30 % at 300 kbps, 60 % at 700 kbps.
    Overloaded,
    /// Table I, resource index 1.23: 40 % at 400 kbps, 60 % at 1000 kbps.
    Underloaded,
}

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum PolicyArg {
    Layerp2p,
    SingleIncent,
    SingleLayer,
    /// All three, side by side.
    All,
}

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Upload mix of the peers.
    #[arg(long, value_enum, default_value_t = MixArg::Overloaded)]
    mix: MixArg,
    /// System to run.
    #[arg(long, value_enum, default_value_t = PolicyArg::All)]
    policy: PolicyArg,
    /// Number of peers (besides the tracker and the 2 Mbps seed).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    peers: u64,
    /// Simulated session length in seconds.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(30..=86_400))]
    duration: u64,
    /// Peers join uniformly over this many seconds (a flash crowd).
    #[arg(long, default_value_t = 60)]
    join_over: u64,
    /// Seed of every random choice; the same seed gives the same result.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the reports as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Stream the built-in clip as real H.264 (encoded once, looped) instead of the
    /// synthetic source, and report PSNR per class.
    #[arg(long)]
    video: bool,
    /// With --video: picture size of the clip, WIDTHxHEIGHT.
    #[arg(long, default_value = "176x144", value_parser = super::video::parse_resolution)]
    video_resolution: Resolution,
    /// With --video: encoder QP (lower = higher rate; 16 at 176x144 gives about the
    /// paper's 620 kbps).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(0..=51))]
    video_qp: u8,
    /// With --video: viewers per class whose playback is decoded and scored.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    score_peers: u64,
}

/// Frames of the looped clip: 5 GOPs of 64, so every loop starts with an IDR.
const VIDEO_FRAMES: u32 = 320;

/// The encoded clip for `--video`.
fn video_clip(args: &Args) -> Result<TestClip, String> {
    let cfg = EncoderConfig { qp: args.video_qp, ..EncoderConfig::new(args.video_resolution, FrameRate::FPS_30) };
    eprintln!("encoding {VIDEO_FRAMES} frames of the built-in clip at {} ...", args.video_resolution);
    TestClip::encode(cfg, VIDEO_FRAMES).map_err(|e| e.to_string())
}

/// PSNR per class from the viewers' playback logs: up to `per_class` viewers each,
/// spread evenly over the class in join order (early joiners fare differently).
fn score_classes(clip: &TestClip, classes: &[String], logs: &[(usize, Vec<(u32, u16)>)], per_class: usize) -> Result<Vec<(usize, Quality)>, String> {
    let by_frame = clip.lcs_by_frame();
    let mut out = Vec::new();
    for class in 0..classes.len() {
        let mut q = Quality::new(clip.cfg.layers);
        let mut scored = 0;
        let members: Vec<&Vec<(u32, u16)>> = logs.iter().filter(|(c, _)| *c == class).map(|(_, log)| log).collect();
        let picks = per_class.min(members.len());
        for log in (0..picks).map(|k| members[k * members.len() / picks]) {
            if let Some(pq) = droptest::score_played(clip, &by_frame, log).map_err(|e| e.to_string())? {
                q.merge(&pq);
            }
            scored += 1;
        }
        out.push((scored, q));
    }
    Ok(out)
}

pub fn run(args: Args) -> Result<(), String> {
    let mix = match args.mix {
        MixArg::Overloaded => Mix::overloaded(),
        MixArg::Underloaded => Mix::underloaded(),
    };
    let policies: Vec<Policy> = match args.policy {
        PolicyArg::All => Policy::ALL.to_vec(),
        PolicyArg::Layerp2p => vec![Policy::LayerP2P],
        PolicyArg::SingleIncent => vec![Policy::SingleIncent],
        PolicyArg::SingleLayer => vec![Policy::SingleLayer],
    };
    if args.join_over >= args.duration {
        return Err(format!("--join-over ({}) must be shorter than --duration ({})", args.join_over, args.duration));
    }
    println!(
        "LayerP2P demo: {} peers ({}), one 2 Mbps seed, flash crowd over {} s, {} s session, seed {}",
        args.peers,
        mix.classes.iter().map(|c| format!("{:.0}% {} @ {}", c.share * 100.0, c.name, c.upload)).collect::<Vec<_>>().join(", "),
        args.join_over,
        args.duration,
        args.seed
    );
    let clip = if args.video { Some(video_clip(&args)?) } else { None };
    if let Some(c) = &clip {
        let rates = c.layer_rates();
        println!("video: built-in clip {} at 30 fps, QP {}, layers {} kbps (looped every {VIDEO_FRAMES} frames)", c.cfg.resolution, c.cfg.qp, rates.iter().map(|r| r.0.to_string()).collect::<Vec<_>>().join(" / "));
    }
    let mut reports = Vec::new();
    for policy in policies {
        let mut cfg = prototype(
            policy,
            &mix,
            args.peers as usize,
            Duration::from_secs(args.join_over),
            Duration::from_secs(args.duration),
            args.seed,
        );
        let mut swarm = match &clip {
            Some(c) => {
                let source = VideoSource::new(Box::new(ReplayFeed::new(c.units.clone(), true)), c.cfg.rate, c.cfg.layers, c.units.len())
                    .map_err(|e| e.to_string())?;
                cfg.peer.plan = source.plan().clone();
                cfg.peer.emit_playback = true;
                Swarm::with_source(cfg, Box::new(source))?
            }
            None => Swarm::new(cfg)?,
        };
        let started = Instant::now();
        // A live line on a terminal; four plain lines when logged to a file.
        let live = std::io::stderr().is_terminal();
        let steps = if live { 50 } else { 4 };
        for i in 1..=steps {
            let t = args.duration * i / steps;
            swarm.run_until(Time::from_secs(t));
            let line = format!(
                "{policy:<13} simulated {t:>5}/{} s  nodes {:>5}  LCs delivered {:>9}  ({:.1} s wall)",
                args.duration,
                swarm.alive(),
                swarm.lc_deliveries,
                started.elapsed().as_secs_f64()
            );
            if live {
                eprint!("\r{line}");
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{line}");
            }
        }
        if live {
            eprintln!();
        }
        let logs = swarm.take_playback();
        let report = swarm.finish();
        println!("\n== {policy} ==\n{}", report.table());
        let mut psnr = Vec::new();
        if let Some(c) = &clip {
            eprintln!("decoding and scoring up to {} viewers per class ...", args.score_peers);
            psnr = score_classes(c, &report.classes.iter().map(|k| k.name.clone()).collect::<Vec<_>>(), &logs, args.score_peers as usize)?;
            println!("PSNR (luma dB, mean over frames from each viewer's first played frame; lost frames repeat the last picture):");
            println!("{:<14} {:>6} {:>7} {:>7} {:>7} {:>7} {:>10}", "class", "scored", "Q1", "Q2", "Q3", "Q", "concealed");
            let show = |m: Option<f64>| m.map_or("-".to_string(), |v| format!("{v:.2}"));
            for (k, (scored, q)) in report.classes.iter().zip(&psnr) {
                let l = |n| LayerId::new(n).and_then(|l| q.layer(l));
                let pct = if q.all.frames > 0 { 100.0 * q.concealed as f64 / q.all.frames as f64 } else { 0.0 };
                println!("{:<14} {:>6} {:>7} {:>7} {:>7} {:>7} {:>9.1}%", k.name, scored, show(l(1)), show(l(2)), show(l(3)), show(q.overall()), pct);
            }
        }
        reports.push((policy, report, psnr));
    }
    if let Some(path) = args.json {
        let json: Vec<_> = reports
            .iter()
            .map(|(p, r, q)| {
                let psnr: Vec<_> = r.classes.iter().zip(q).map(|(k, (scored, q))| serde_json::json!({ "class": k.name, "scored": scored, "quality": q })).collect();
                serde_json::json!({ "policy": p.name(), "report": r, "psnr": psnr })
            })
            .collect();
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
