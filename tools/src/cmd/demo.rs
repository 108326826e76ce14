//! `layerp2p demo`: a whole swarm on the built-in video source, no setup. It runs the
//! real protocol core (tracker, seed, peers) in the discrete-event driver — virtual
//! time, so a 4-minute session takes seconds — and prints per-class results for each
//! chosen policy.

use clap::{Args as ClapArgs, ValueEnum};
use layerp2p_engine::sim::scenario::{prototype, Mix};
use layerp2p_engine::sim::Swarm;
use layerp2p_engine::{Policy, Time};
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
    let mut reports = Vec::new();
    for policy in policies {
        let cfg = prototype(
            policy,
            &mix,
            args.peers as usize,
            Duration::from_secs(args.join_over),
            Duration::from_secs(args.duration),
            args.seed,
        );
        let mut swarm = Swarm::new(cfg)?;
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
        let report = swarm.finish();
        println!("\n== {policy} ==\n{}", report.table());
        reports.push((policy, report));
    }
    if let Some(path) = args.json {
        let json: Vec<_> = reports.iter().map(|(p, r)| serde_json::json!({ "policy": p.name(), "report": r })).collect();
        let text = serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
