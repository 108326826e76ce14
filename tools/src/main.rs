//! `layerp2p`: one program for every role and experiment of LayerP2P. This file only
//! parses the command line and hands over to `cmd/`; no protocol logic lives here.

mod cmd;
mod plot;
mod progress;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "layerp2p",
    version,
    about = "Peer-to-peer live streaming of layered video: the more a peer uploads, the more layers it plays."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// A whole swarm (tracker, seed, N peers) on real UDP over loopback in this process:
    /// per-class playback rate and chunk ratio per layer, and latency percentiles.
    Demo(cmd::demo::Args),
    /// Experiments on a real UDP swarm over loopback: `prototype` is DESIGN.md §9's
    /// wide-area experiment (Table I mixes, flash crowd, all three systems, several
    /// runs) with per-run JSON, a pooled report and PNG plots.
    Experiment(cmd::experiment::Args),
    /// Run the built-in synthetic layered source and print what it produces.
    Source(cmd::source::Args),
    /// Real layered H.264: the built-in clip, encoding, inspecting, decoding, PSNR and
    /// the layer-drop experiment.
    Video(cmd::video::Args),
    /// Trace-driven simulation at chunk level (one-day channel trace, Table II mixes):
    /// per-class tables, speed, JSON and PNG plots for LayerP2P and the baselines.
    Sim(cmd::sim::Args),
    /// Rerun the paper's comparisons (Table I and Table II, all three systems, several
    /// seeds with confidence intervals) and write docs/RESULTS.md with its plots.
    Reproduce(cmd::reproduce::Args),
    /// Run a tracker: the peer lists of a swarm.
    Tracker(cmd::node::TrackerArgs),
    /// Run a seed: ingests a video (a Y4M or H.264 file or pipe, the built-in clip, or
    /// synthetic) and serves it (embeds a tracker unless --tracker is given).
    Seed(cmd::node::SeedArgs),
    /// Run a relay (super-peer): a high-upload node that adds supply to the swarm.
    Relay(cmd::node::RelayArgs),
    /// Run a viewer peer; --upload-kbps 0 makes a free-rider; --output writes what it plays.
    Peer(cmd::node::PeerArgs),
    /// Make a channel key: the secret for `seed --key`, the public key (printed) for
    /// `peer`/`relay --channel-key`.
    Keygen(cmd::node::KeygenArgs),
    /// Measure a seed's LC throughput on loopback per shard count against a raw GSO
    /// blast in the same run (a benchmark; takes about (warm-up + secs) per count).
    BenchNode(cmd::bench_node::Args),
    /// Thousands of synthetic peers (real protocol state machines, one UDP socket each)
    /// against one seed or relay: delivered LC/s and Gbit/s, playback per class,
    /// request->LC latency, loss and the target's CPU use.
    Loadgen(cmd::loadgen::Args),
}

fn main() -> ExitCode {
    let command = cmd::config_file::overridable(Cli::command());
    let argv = match cmd::config_file::expand(std::env::args_os().collect(), &command) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("layerp2p: {e}");
            return ExitCode::FAILURE;
        }
    };
    let matches = command.clone().get_matches_from(argv);
    if let Some((role, sub)) = matches.subcommand()
        && cmd::config_file::ROLES.contains(&role)
        && sub.get_flag("print_config")
        && let Some(role) = command.find_subcommand(role)
    {
        print!("{}", cmd::config_file::effective(role, sub));
        return ExitCode::SUCCESS;
    }
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args),
        Command::Experiment(args) => cmd::experiment::run(args),
        Command::Source(args) => cmd::source::run(args),
        Command::Video(args) => cmd::video::run(args),
        Command::Sim(args) => cmd::sim::run(args),
        Command::Reproduce(args) => cmd::reproduce::run(args),
        Command::Tracker(args) => cmd::node::tracker(args),
        Command::Seed(args) => cmd::node::seed(args),
        Command::Relay(args) => cmd::node::relay(args),
        Command::Peer(args) => cmd::node::peer(args),
        Command::Keygen(args) => cmd::node::keygen(args),
        Command::BenchNode(args) => cmd::bench_node::run(args),
        Command::Loadgen(args) => cmd::loadgen::run_cmd(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("layerp2p: {e}");
            ExitCode::FAILURE
        }
    }
}
