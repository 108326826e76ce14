//! Command-line value types several subcommands share (policy, peer mix, video) and
//! their mapping onto engine and codec types. Parsing only.

use clap::ValueEnum;
use layerp2p_codec::synthetic::{PayloadKind, SyntheticConfig};
use layerp2p_engine::Policy;
use layerp2p_engine::swarm::Mix;

#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum PolicyArg {
    /// Tit-for-tat supplier, prioritized receiver: the more a peer uploads, the more layers it plays.
    Layerp2p,
    /// Tit-for-tat supplier, plain random receiver (layers not prioritized).
    SingleIncent,
    /// Round-robin supplier, plain random receiver: no incentive.
    SingleLayer,
}

impl PolicyArg {
    pub fn policy(self) -> Policy {
        match self {
            PolicyArg::Layerp2p => Policy::LayerP2P,
            PolicyArg::SingleIncent => Policy::SingleIncent,
            PolicyArg::SingleLayer => Policy::SingleLayer,
        }
    }
}

/// The systems a comparing command runs: one of DESIGN.md §7, or all three side by side.
#[derive(Copy, Clone, Debug, ValueEnum, PartialEq, Eq)]
pub enum PolicySet {
    /// Tit-for-tat supplier, prioritized receiver.
    Layerp2p,
    /// Tit-for-tat supplier, plain random receiver.
    SingleIncent,
    /// Round-robin supplier, plain random receiver.
    SingleLayer,
    /// All three, side by side.
    All,
}

impl PolicySet {
    /// The systems to run, in the order they are reported.
    pub fn policies(self) -> Vec<Policy> {
        match self {
            PolicySet::All => Policy::ALL.to_vec(),
            PolicySet::Layerp2p => vec![Policy::LayerP2P],
            PolicySet::SingleIncent => vec![Policy::SingleIncent],
            PolicySet::SingleLayer => vec![Policy::SingleLayer],
        }
    }
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum MixArg {
    /// Table I, resource index 0.82: 10 % free-riders, 30 % at 300 kbps, 60 % at 700 kbps.
    Overloaded,
    /// Table I, resource index 1.23: 40 % at 400 kbps, 60 % at 1000 kbps.
    Underloaded,
}

impl MixArg {
    pub fn mix(self) -> Mix {
        match self {
            MixArg::Overloaded => Mix::overloaded(),
            MixArg::Underloaded => Mix::underloaded(),
        }
    }
}

#[derive(Copy, Clone, Debug, ValueEnum)]
pub enum Video {
    /// The paper's prototype video: 290/230/100 kbps VBR, 30 fps, 64-frame GOPs.
    Prototype,
    /// The paper's simulated video: 3 x 200 kbps CBR in 1250-byte LCs.
    Simulation,
}

impl Video {
    /// The built-in synthetic source for this video, with payload bytes that can be
    /// checked end to end (what goes on the wire).
    pub fn synthetic(self, seed: u64) -> SyntheticConfig {
        let mut cfg = match self {
            Video::Prototype => SyntheticConfig::prototype(),
            Video::Simulation => SyntheticConfig::simulation(),
        };
        cfg.payload = PayloadKind::Pattern;
        cfg.seed = seed;
        cfg
    }
}

/// The incentive parameters DESIGN.md §8 leaves open (eps, d_l, d_s), for every command
/// that builds peers. Unset flags keep `engine::config::Incentive::default()`, whose
/// fields say why each value was chosen.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct IncentiveArgs {
    /// eps of DESIGN.md §5 in kbps: the weight a receiver that gave us nothing still gets
    /// (keeps the supplier work-conserving). Must be positive [default: 1].
    #[arg(long, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub epsilon_kbps: Option<u32>,
    /// d_l of DESIGN.md §4 in kbps: the rate an initiator assumes its new receptor gave it
    /// [default: 0].
    #[arg(long, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub d_large_kbps: Option<u32>,
    /// d_s of DESIGN.md §4 in kbps: the rate a receptor assumes its new initiator gave it
    /// [default: 0].
    #[arg(long, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub d_small_kbps: Option<u32>,
    /// Credit in kbps added once to a new neighbour's d(n,k) when it serves its first
    /// LC: an optimistic start only uploaders earn [default: 0].
    #[arg(long, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub first_lc_credit_kbps: Option<u32>,
    /// The receiver picks each LC's supplier among its holders with weight
    /// d(n,k) + KBPS, asking most those that serve it most, instead of uniformly
    /// (DESIGN.md §6, the default). An experiment, not adopted: see docs/EXPERIMENTS.md.
    #[arg(long, value_name = "KBPS", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub holder_floor_kbps: Option<u32>,
    /// Ask each LC of a holder drawn with weight the share of our requests it served
    /// lately, instead of uniformly. An experiment, not adopted: docs/decisions/0007.
    #[arg(long, conflicts_with = "holder_floor_kbps")]
    pub holder_by_served: bool,
    /// The seed no longer asks each neighbour for one LC a round: it serves every
    /// neighbour alike, never drops one and pushes nothing (the paper's seed; see
    /// docs/decisions/0002-seed-audit-and-push.md).
    #[arg(long)]
    pub no_seed_audit: bool,
    /// The auditing seed no longer pushes each new LC once to a contributor before
    /// serving requests (see docs/decisions/0002-seed-audit-and-push.md).
    #[arg(long)]
    pub no_seed_push: bool,
    /// The pushing seed no longer credits a neighbour with the copies of what it
    /// pushed there that reached its other neighbours: it rates contributors by
    /// its audit alone, all alike (see docs/decisions/0015-seed-spread-credit.md).
    #[arg(long)]
    pub no_seed_spread_credit: bool,
    /// Suppliers serve layers above the base to every neighbour that asks, as the
    /// paper's work-conserving supplier does: with upload to spare a free-rider then
    /// plays the whole video (see docs/decisions/0018-upper-layers-for-uploaders.md).
    #[arg(long)]
    pub upper_layers_to_all: bool,
}

/// The neighbour-management parameters of DESIGN.md §4 and §8 (paper: 10 / 20 neighbours,
/// a 30 s adaptation period) and the d(n,k) averaging window, for researchers who
/// vary them. Unset flags keep `engine::config::PeerConfig::peer`'s values.
#[derive(clap::Args, Clone, Copy, Debug, Default)]
pub struct NeighbourArgs {
    /// N_min of DESIGN.md §4: below this many neighbours a viewer seeks more [default: 10].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub n_min: Option<u16>,
    /// N_max of DESIGN.md §4: at this many neighbours a viewer declines every request
    /// [default: 20].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub n_max: Option<u16>,
    /// Adaptation period of DESIGN.md §4 in seconds: each period a viewer replaces the
    /// neighbour it receives least from [default: 30].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub adapt_secs: Option<u32>,
    /// Time constant in seconds of the moving average behind d(n,k) [default: 10].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub rate_window_secs: Option<u32>,
}

impl NeighbourArgs {
    /// The engine's overrides for these flags.
    pub fn overrides(&self) -> layerp2p_engine::NeighbourOverrides {
        use std::time::Duration;
        layerp2p_engine::NeighbourOverrides {
            n_min: self.n_min.map(usize::from),
            n_max: self.n_max.map(usize::from),
            adaptation: self.adapt_secs.map(|s| Duration::from_secs(s.into())),
            rate_window: self.rate_window_secs.map(|s| Duration::from_secs(s.into())),
        }
    }

    /// The overrides for viewers (`PeerConfig::peer`'s values elsewhere), refused as
    /// `apply` refuses them.
    pub fn for_viewers(&self) -> Result<layerp2p_engine::NeighbourOverrides, String> {
        let mut viewer = layerp2p_engine::PeerConfig::peer(
            Policy::LayerP2P,
            layerp2p_codec::LayerPlan::simulation(),
            layerp2p_codec::Kbps(0),
        );
        self.apply(&mut viewer)?;
        Ok(self.overrides())
    }

    /// Overrides the given values in `cfg`; refuses, naming the flags, an N_min above
    /// the resulting N_max.
    pub fn apply(&self, cfg: &mut layerp2p_engine::PeerConfig) -> Result<(), String> {
        self.overrides().apply(cfg);
        if cfg.n_min > cfg.n_max {
            return Err(format!("--n-min {} is above --n-max {}", cfg.n_min, cfg.n_max));
        }
        Ok(())
    }
}

impl IncentiveArgs {
    /// The defaults with the given values overridden.
    pub fn resolve(&self) -> layerp2p_engine::Incentive {
        let mut incentive = layerp2p_engine::Incentive::default();
        self.apply(&mut incentive);
        incentive
    }

    /// Overrides the given values in `cfg`, leaving the others at their defaults.
    pub fn apply(&self, cfg: &mut layerp2p_engine::Incentive) {
        use layerp2p_codec::Kbps;
        if let Some(v) = self.epsilon_kbps {
            cfg.epsilon = Kbps(v);
        }
        if let Some(v) = self.d_large_kbps {
            cfg.d_large = Kbps(v);
        }
        if let Some(v) = self.d_small_kbps {
            cfg.d_small = Kbps(v);
        }
        if let Some(v) = self.first_lc_credit_kbps {
            cfg.first_lc_credit = Kbps(v);
        }
        if self.holder_by_served {
            cfg.holder_choice = layerp2p_engine::HolderChoice::ByServed;
        }
        if let Some(v) = self.holder_floor_kbps {
            cfg.holder_choice = layerp2p_engine::HolderChoice::ByRate { floor: Kbps(v) };
        }
        if self.no_seed_audit {
            cfg.seed_audit = false;
        }
        if self.no_seed_push {
            cfg.seed_push = false;
        }
        if self.no_seed_spread_credit {
            cfg.seed_spread_credit = false;
        }
        if self.upper_layers_to_all {
            cfg.upper_layers_window = None;
        }
    }
}

/// An address this node sends to (a tracker): it must name a port, since port 0
/// reaches nobody. (Port 0 in a listen address is fine: the system picks one.)
pub fn parse_contact_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr =
        s.trim().parse().map_err(|e| format!("{s:?} is not an address like 127.0.0.1:7700 ({e})"))?;
    if addr.port() == 0 {
        return Err(format!("{addr} has port 0, which reaches nobody: give the port the other side listens on"));
    }
    if addr.ip().is_multicast() {
        return Err(format!("{addr} is a multicast address: give one node's address"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contact_addresses_need_a_real_port() {
        let err = parse_contact_addr("127.0.0.1:0").expect_err("port 0");
        assert!(err.contains("port 0"), "{err}");
        assert!(parse_contact_addr("224.0.0.1:7700").is_err());
        assert!(parse_contact_addr("localhost").is_err());
        assert_eq!(parse_contact_addr("[::1]:7700"), Ok("[::1]:7700".parse().expect("addr")));
    }
    use layerp2p_codec::{Kbps, LayerPlan};
    use layerp2p_engine::{PeerConfig, Policy};
    use std::time::Duration;

    fn viewer() -> PeerConfig {
        PeerConfig::peer(Policy::LayerP2P, LayerPlan::simulation(), Kbps(300))
    }

    #[test]
    fn neighbour_flags_override_only_what_is_given() {
        let mut cfg = viewer();
        let args = NeighbourArgs { n_min: Some(15), adapt_secs: Some(10), ..Default::default() };
        args.apply(&mut cfg).expect("valid overrides");
        assert_eq!((cfg.n_min, cfg.n_max), (15, 20));
        assert_eq!(cfg.adaptation, Duration::from_secs(10));
        assert_eq!(cfg.rate_window, viewer().rate_window);
    }

    #[test]
    fn neighbour_flags_reject_n_min_above_n_max() {
        let args = NeighbourArgs { n_min: Some(25), ..Default::default() };
        let err = args.apply(&mut viewer()).expect_err("25 > 20");
        assert!(err.contains("--n-min 25 is above --n-max 20"), "{err}");
        // The prototype's viewers are checked the same way, before any run starts.
        let err = args.for_viewers().expect_err("25 > 20");
        assert!(err.contains("--n-min 25 is above --n-max 20"), "{err}");
        let ok = NeighbourArgs { n_min: Some(25), n_max: Some(30), rate_window_secs: Some(4), ..Default::default() };
        let o = ok.for_viewers().expect("25 <= 30");
        assert_eq!(
            (o.n_min, o.n_max, o.adaptation, o.rate_window),
            (Some(25), Some(30), None, Some(Duration::from_secs(4)))
        );
    }
}
