//! `layerp2p loadgen`: thousands of synthetic peers against one seed or relay. Parses
//! flags into a `loadgen::Setup`, prints the live line on stderr and the report on
//! stdout; the work is in `layerp2p_engine::lab::loadgen`.

use super::args::{MixArg, PolicyArg};
use clap::Args as ClapArgs;
use layerp2p_codec::Kbps;
use layerp2p_engine::lab::loadgen::{Setup, Viewer, run};
use layerp2p_engine::lab::record::Recorded;
use layerp2p_engine::swarm::{Mix, PeerClass};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Synthetic peers to run (each a full protocol state machine on its own socket).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    peers: u64,
    /// Length of the run in seconds, ramp included.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    duration: u64,
    /// Peers join uniformly at random within this many seconds.
    #[arg(long, default_value_t = 10)]
    ramp: u64,
    /// Upload mix of the synthetic peers (ignored when --class is given).
    #[arg(long, value_enum, default_value_t = MixArg::Underloaded)]
    mix: MixArg,
    /// A custom class NAME:KBPS:SHARE, e.g. --class dsl:300:0.4 --class fiber:2000:0.6
    /// (uploads at the prototype's 620 kbps video; scaled with --video-kbps).
    #[arg(long, value_parser = parse_class)]
    class: Vec<PeerClass>,
    /// Full video rate: the prototype's 290/230/100 kbps layers scaled to this total.
    /// Class uploads scale with it, so the resource index stays the same.
    #[arg(long, default_value_t = 620, value_parser = clap::value_parser!(u32).range(3..=100_000))]
    video_kbps: u32,
    /// Video frame rate: with small frames each frame is one LC, so this bounds LC/s.
    /// An external target must run the same video (620 kbps, 30 fps = `--video prototype`).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=1000))]
    fps: u32,
    /// Scheduling policy of the peers (and of the built-in target).
    #[arg(long, value_enum, default_value_t = PolicyArg::Layerp2p)]
    policy: PolicyArg,
    /// Playback lag in seconds behind the source (the exchange window).
    #[arg(long, default_value_t = 10)]
    lag: u64,
    /// Seconds after a peer joins before its playback is counted.
    #[arg(long, default_value_t = 5)]
    startup: u64,
    /// Neighbours each synthetic peer seeks (below this it looks for more).
    #[arg(long, default_value_t = 10)]
    n_min: usize,
    /// Neighbours each synthetic peer accepts at most. 1 makes a star: the peers learn
    /// no address but the target's, so the target alone serves them (a pure load test).
    #[arg(long, default_value_t = 20)]
    n_max: usize,
    /// Seconds after which a peer drops its least-contributing neighbour and finds
    /// another (the paper's 30). With --n-max 1 that neighbour is the target: set this
    /// beyond --duration for a pure load test of the target.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    adaptation: u64,
    /// Threads the synthetic peers are spread over, pinned to cores (default: one per core).
    #[arg(long)]
    shards: Option<usize>,
    /// Node under test, an already running seed or relay (needs --tracker). Without
    /// it a tracker and a seed are started in this process.
    #[arg(long, requires = "tracker")]
    target: Option<SocketAddr>,
    /// Tracker of the external target's channel.
    #[arg(long, requires = "target")]
    tracker: Option<SocketAddr>,
    /// The channel's public key (64 hex digits, what `layerp2p seed --key` prints), to
    /// load-test a signed seed or a relay of its channel: the peers join that channel
    /// and check every LC against the seed's manifests.
    #[arg(long, requires = "target", value_parser = super::node::parse_key_arg)]
    channel_key: Option<layerp2p_engine::channel::PublicKey>,
    /// Process id of the external target, to report its CPU use.
    #[arg(long, requires = "target")]
    target_pid: Option<u32>,
    /// Upload limit of the built-in seed, in Mbit/s.
    #[arg(long, default_value_t = 10_000, conflicts_with = "target")]
    target_upload_mbps: u32,
    /// Executors of the built-in seed (SO_REUSEPORT shards, pinned from core 0).
    #[arg(long, default_value_t = 1, conflicts_with = "target", value_parser = clap::value_parser!(u64).range(1..=64))]
    target_shards: u64,
    /// What each synthetic viewer is: `full`, a whole protocol peer (neighbours, both
    /// schedulers, playback); or `lean`, a star viewer of the target alone (Join,
    /// Connect and token echo, a buffer map and a request each round, playback
    /// accounting) that costs the load generator far less CPU per LC, uploads nothing
    /// and checks no content (--n-min/--n-max do not apply to it). The built-in seed
    /// serves it every layer; start an external seed with --upper-layers-to-all, or it
    /// keeps the upper layers for viewers that upload (docs/decisions/0018).
    #[arg(long, value_enum, default_value_t = ViewerArg::Full)]
    viewer: ViewerArg,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Also write the report (with every second's figures) as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ViewerArg {
    Full,
    Lean,
}

/// Parses NAME:KBPS:SHARE.
fn parse_class(s: &str) -> Result<PeerClass, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [name, kbps, share] = parts[..] else {
        return Err(format!("expected NAME:KBPS:SHARE, got {s:?}"));
    };
    if name.is_empty() {
        return Err("class name is empty".into());
    }
    let kbps: u32 = kbps.parse().map_err(|_| format!("upload {kbps:?} is not a whole number of kbps"))?;
    let share: f64 = share.parse().map_err(|_| format!("share {share:?} is not a number"))?;
    if !(share > 0.0 && share.is_finite()) {
        return Err(format!("share must be positive, got {share}"));
    }
    Ok(PeerClass { name: name.into(), upload: Kbps(kbps), share })
}

pub fn run_cmd(args: Args) -> Result<(), String> {
    if args.ramp >= args.duration {
        return Err(format!("--ramp ({}) must be shorter than --duration ({})", args.ramp, args.duration));
    }
    let mix = if args.class.is_empty() { args.mix.mix() } else { Mix { classes: args.class.clone() } };
    let mut setup = Setup::small(args.peers as usize, Duration::from_secs(args.duration));
    setup.mix = mix;
    setup.video_kbps = args.video_kbps;
    setup.fps = args.fps;
    setup.policy = args.policy.policy();
    setup.ramp = Duration::from_secs(args.ramp);
    setup.lag = Duration::from_secs(args.lag);
    setup.startup = Duration::from_secs(args.startup);
    setup.n_min = args.n_min;
    setup.n_max = args.n_max;
    setup.adaptation = Duration::from_secs(args.adaptation);
    if let Some(shards) = args.shards {
        if shards == 0 || shards > 256 {
            return Err(format!("--shards must be 1 to 256, got {shards}"));
        }
        setup.shards = shards;
    }
    setup.seed = args.seed;
    setup.viewer = match args.viewer {
        ViewerArg::Full => Viewer::Full,
        ViewerArg::Lean => Viewer::Lean,
    };
    setup.external = args.target.zip(args.tracker).map(|(t, k)| (t, k, args.target_pid));
    setup.channel_key = args.channel_key;
    setup.target_upload = Kbps(args.target_upload_mbps.saturating_mul(1000));
    setup.target_shards = args.target_shards as usize;
    let cfg = setup.config()?;
    eprintln!(
        "loadgen: {} {} joining over {} s, {} s run, {} shards, video {} kbps at {} fps, target {}",
        args.peers,
        match args.viewer {
            ViewerArg::Full => "peers",
            ViewerArg::Lean => "lean viewers",
        },
        args.ramp,
        args.duration,
        cfg.shards,
        args.video_kbps,
        args.fps,
        args.target.map_or_else(|| "built-in seed".to_string(), |t| t.to_string())
    );
    let report = run(cfg, &mut |s| eprintln!("{}", s.line())).map_err(|e| e.to_string())?;
    println!("{}", report.table());
    if let Some(path) = args.json {
        let text = serde_json::to_string_pretty(&Recorded::new(&report)).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_parse_and_bad_ones_say_why() {
        let c = parse_class("dsl:300:0.4").expect("valid");
        assert_eq!((c.name.as_str(), c.upload, c.share), ("dsl", Kbps(300), 0.4));
        assert!(parse_class("dsl:300").expect_err("refused").contains("NAME:KBPS:SHARE"));
        assert!(parse_class(":300:0.4").expect_err("refused").contains("empty"));
        assert!(parse_class("dsl:fast:0.4").expect_err("refused").contains("kbps"));
        assert!(parse_class("dsl:300:-1").expect_err("refused").contains("positive"));
        assert!(parse_class("dsl:300:nan").expect_err("refused").contains("positive"));
    }
}
