//! Every protocol parameter, with the paper's values as defaults (DESIGN.md §8).
//!
//! The paper leaves eps, d_l and d_s open; our choices and reasons are documented on
//! each field. Limits that bound memory are here too, so they are checked in one place.

use crate::integrity::ContentAuth;
use crate::policy::Policy;
use crate::wire::{ChannelId, Role};
use layerp2p_codec::{Kbps, LayerPlan};
use std::net::SocketAddr;
use std::time::Duration;

/// How the receiver scheduler picks, for each LC, one supplier among the neighbours
/// that hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HolderChoice {
    /// Uniformly at random, as DESIGN.md §6 states.
    Uniform,
    /// At random with weight d(n,k) + `floor`: ask most the neighbours that serve us
    /// most (they are the ones whose tit-for-tat favours us), while every holder keeps
    /// a chance in proportion to `floor` (new neighbours, and finding out). A request
    /// to a neighbour that never serves (a free-rider advertises what it holds) waits
    /// out the round and costs the LC a round; this keeps such requests rare. Not the
    /// default: contributors gain a little, but a free-rider opening links to everyone
    /// learns where the idle upload is and gains more, to above the base layer in
    /// `tests/freeriders.rs`, and neighbours lying in their maps cost contributors
    /// more (docs/EXPERIMENTS.md, "Probes that were not adopted").
    ByRate {
        /// Weight every holder gets on top of its d(n,k), so none drops to zero.
        floor: Kbps,
    },
    /// At random with weight the share of our requests the holder served lately
    /// (`Neighbour::served_permille`) plus 5 %: a holder that served all we asked has
    /// upload we left unused (a work-conserving supplier gives it to whoever asks,
    /// free-riders included); one that served little is busy or never serves. Not
    /// the default: in `tests/freeriders.rs` free-riders lose more and contributors
    /// gain, but low contributors gain so much that `tests/trace_sim.rs`'s "high above
    /// low" fails (docs/decisions/0007).
    ByServed,
}

/// The incentive parameters (DESIGN.md §4-§6, §8: eps, d_l, d_s are ours to choose) and
/// how a receiver picks among the holders of an LC. One value for all three systems,
/// so differences between them come from the policy alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Incentive {
    /// eps of DESIGN.md §5: keeps every receiver with a non-empty queue pickable, so the
    /// supplier is work-conserving and new neighbours can get started. 1 kbps is
    /// small against any real contribution.
    pub epsilon: Kbps,
    /// d_l: the rate an initiator assumes its receptor gave it. DESIGN.md §4 calls it
    /// large (an optimistic unchoke); we default to 0: a peer that lost its good
    /// neighbours can only find room at free-riders (contributors sit at N_max), so
    /// what an initiator credits lands mostly on them, at contributors' expense
    /// (docs/decisions/0001-d-large-zero.md).
    pub d_large: Kbps,
    /// d_s: the rate a receptor assumes its initiator gave it. Zero, so a free-rider
    /// gains nothing by opening many neighbour relationships.
    pub d_small: Kbps,
    /// Credit added to d(n,k) once, when a new neighbour serves us its first LC: an
    /// optimistic start that only a neighbour that uploads can earn (a free-rider
    /// never does), unlike d_l and d_s, which it collects on every link it opens.
    /// Zero by default (docs/decisions/0005-first-lc-credit-not-adopted.md).
    pub first_lc_credit: Kbps,
    /// How the receiver picks a supplier among the neighbours holding an LC
    /// (default uniform, as DESIGN.md §6).
    pub holder_choice: HolderChoice,
    /// A tit-for-tat seed asks each neighbour for one LC per round, so its d(n,k)
    /// tells contributors from free-riders, and when full it drops, every adaptation
    /// period, its least contributor if that one gave nothing back (`Peer::audit`). DESIGN.md §3 has the seed
    /// serve "like any other supplier", but a seed downloads nothing, so without this
    /// it serves everyone alike and never adapts: its slots drift to free-riders
    /// (always seeking, they take every slot that frees) until much of its upload goes
    /// to peers that forward nothing (docs/decisions/0002-seed-audit-and-push.md).
    /// Costs each neighbour one LC a round.
    pub seed_audit: bool,
    /// An auditing seed pushes every LC it ingests once, unrequested, to a neighbour
    /// chosen with weight d(seed,k), before it serves requests (`Peer::push_target`):
    /// every LC of every layer enters the swarm at once, at a contributor.
    pub seed_push: bool,
    /// A pushing seed credits d(seed,k) with the copies of the LCs it pushed to k
    /// that its other neighbours got, not from the seed, a few rounds later
    /// (`peer::spread`): the audit alone rates every contributor alike, so the seed
    /// split its upload evenly whatever each forwards (docs/decisions/0015).
    pub seed_spread_credit: bool,
    /// Under LayerP2P a supplier queues requests for layers above the base only from
    /// neighbours that sent it an LC within this window, when it can tell: an
    /// auditing seed always (every contributor answers its audit), a peer while its
    /// upload is spare (`Peer::serves_upper_layers`). `None` serves every layer to
    /// every neighbour. The supplier is work-conserving, so without it a viewer that
    /// uploads nothing plays the whole video whenever upload is spare
    /// (docs/decisions/0018-upper-layers-for-uploaders.md).
    pub upper_layers_window: Option<Duration>,
}

impl Default for Incentive {
    fn default() -> Incentive {
        Incentive {
            epsilon: Kbps(1),
            d_large: Kbps(0),
            d_small: Kbps(0),
            first_lc_credit: Kbps(0),
            holder_choice: HolderChoice::Uniform,
            seed_audit: true,
            seed_push: true,
            seed_spread_credit: true,
            upper_layers_window: Some(Duration::from_secs(30)),
        }
    }
}

/// Configuration of one node (peer, seed or relay).
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// What this node is; a seed serves and never seeks neighbours, a relay keeps more of them.
    pub role: Role,
    /// The channel (live stream) this node joins; Connects for other channels are declined.
    pub channel: ChannelId,
    /// Which of the three systems this node runs: LayerP2P, Single-Incent or Single-Layer.
    pub policy: Policy,
    /// Layers and their rates; decides the threshold layer l_n.
    pub plan: LayerPlan,
    /// U(n): the most this node uploads (LC data; signalling is not counted). With
    /// `upload_auto`, the ceiling of the measured rate.
    pub upload: Kbps,
    /// Measure U(n) instead (`peer::uplink`): the rate where the uplink starts to
    /// queue; the token bucket and l_n follow it.
    pub upload_auto: bool,
    /// NAT traversal (docs/PROTOCOL.md): ask the tracker to introduce a peer that did
    /// not answer our Connect, and punch towards a peer it introduces. Off, a peer
    /// behind a NAT reaches another NAT'd peer only by chance.
    pub nat_traversal: bool,
    /// The access link's download capacity, when the user knows it; `None` takes it
    /// as no bottleneck, as DESIGN.md §6 does. See `threshold_layer`.
    pub download: Option<Kbps>,
    /// T: period of buffer-map exchange and request scheduling.
    pub round: Duration,
    /// Playback lag behind the source's encoding point.
    pub lag: Duration,
    /// Time after joining before playback is counted: LCs due earlier could not
    /// have been fetched and are neither played nor counted as missed.
    pub startup: Duration,
    /// How often playback consumes due LCs (the deadline resolution).
    pub play_tick: Duration,
    /// Below this many neighbours the node seeks more.
    pub n_min: usize,
    /// At this many neighbours the node declines every request.
    pub n_max: usize,
    /// Every period the least-contributing neighbour is replaced.
    pub adaptation: Duration,
    /// The tit-for-tat parameters DESIGN.md §8 leaves open, and the receiver's choice of
    /// supplier.
    pub incentive: Incentive,
    /// Time constant of the d(n,k) moving average.
    pub rate_window: Duration,
    /// Round-trip time assumed until one is measured.
    pub default_rtt: Duration,
    /// Token-bucket depth, as time at the upload rate (at least two LCs).
    pub burst: Duration,
    /// Give up on a neighbour request not answered within this.
    pub connect_timeout: Duration,
    /// Drop a neighbour not heard from within this.
    pub neighbour_timeout: Duration,
    /// Tracker address; `None` for a node that only accepts (e.g. a test seed).
    pub tracker: Option<SocketAddr>,
    /// How often to refresh with the tracker.
    pub tracker_refresh: Duration,
    /// Most queued requests per receiver at the supplier.
    pub max_queue: usize,
    /// Most addresses kept from tracker lists.
    pub max_candidates: usize,
    /// Connects that go, in list order, to the head of each new tracker list (a
    /// deployed tracker leads with the channel's longest-present peers,
    /// `TrackerConfig::oldest_in_list`); the rest go to random candidates. 0 with the
    /// simulator's tracker, whose lists are plain random samples.
    pub list_head_tries: usize,
    /// Emit `Event::Played` / `Event::Missed` for each LC (for reassembly and output).
    pub emit_playback: bool,
    /// Content integrity: `Off` (the simulator's default, phantom payloads), or the
    /// channel key that signs (seed) or checks (everyone) manifests of LC hashes.
    pub content_auth: ContentAuth,
    /// Emit `Event::Received` for each new LC (a sharded relay's upstream fans them
    /// out to its serving shards).
    pub emit_received: bool,
    /// Record the request-to-send and delivery latencies (`PeerStats::latency`). Off
    /// in the trace-driven simulator, whose reports do not show them: the two
    /// histograms and the table of request send times were ~20 KB of a simulated
    /// viewer's ~90 KB (docs/decisions/0016-simulated-viewer-memory.md).
    pub record_latency: bool,
}

/// A researcher's changes to the neighbour parameters of DESIGN.md §4 and §8 (N_min,
/// N_max, the adaptation period) and to the d(n,k) averaging window; `None` keeps
/// the role's value. `PeerConfig::validate` checks the result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeighbourOverrides {
    /// Replaces `PeerConfig::n_min`: below this many neighbours the node seeks more.
    pub n_min: Option<usize>,
    /// Replaces `PeerConfig::n_max`: at this many neighbours the node declines every Connect.
    pub n_max: Option<usize>,
    /// Replaces `PeerConfig::adaptation`: how often the least-contributing neighbour is replaced.
    pub adaptation: Option<Duration>,
    /// Replaces `PeerConfig::rate_window`: time constant of the d(n,k) moving average.
    pub rate_window: Option<Duration>,
}

impl NeighbourOverrides {
    /// Sets the given values in `cfg`.
    pub fn apply(&self, cfg: &mut PeerConfig) {
        cfg.n_min = self.n_min.unwrap_or(cfg.n_min);
        cfg.n_max = self.n_max.unwrap_or(cfg.n_max);
        cfg.adaptation = self.adaptation.unwrap_or(cfg.adaptation);
        cfg.rate_window = self.rate_window.unwrap_or(cfg.rate_window);
    }
}

impl PeerConfig {
    /// A peer with the paper's parameters.
    pub fn peer(policy: Policy, plan: LayerPlan, upload: Kbps) -> PeerConfig {
        PeerConfig {
            role: Role::Peer,
            channel: ChannelId(1),
            policy,
            plan,
            upload,
            upload_auto: false,
            nat_traversal: true,
            download: None,
            round: Duration::from_secs(1),
            lag: Duration::from_secs(30),
            startup: Duration::from_secs(10),
            play_tick: Duration::from_millis(100),
            n_min: 10,
            n_max: 20,
            adaptation: Duration::from_secs(30),
            incentive: Incentive::default(),
            rate_window: Duration::from_secs(10),
            default_rtt: Duration::from_millis(100),
            burst: Duration::from_millis(20),
            connect_timeout: Duration::from_secs(2),
            neighbour_timeout: Duration::from_secs(5),
            tracker: None,
            tracker_refresh: Duration::from_secs(30),
            max_queue: 4096,
            max_candidates: 256,
            list_head_tries: 5,
            emit_playback: false,
            content_auth: ContentAuth::Off,
            emit_received: false,
            record_latency: true,
        }
    }

    /// l_n of DESIGN.md §6: the largest layer whose cumulative rate the node can expect
    /// to download. DESIGN.md §6 expects a peer to get back what it uploads, U(n); a
    /// downlink narrower than that caps what it can get, so l_n counts the smaller
    /// of the two, and the layers its link cannot carry are probing requests.
    pub fn threshold_layer(&self) -> usize {
        let expected = self.download.map_or(self.upload, |d| d.min(self.upload));
        self.plan.threshold_layer(expected)
    }

    /// A seed: serves the source's LCs, never seeks neighbours, plays nothing.
    pub fn seed(policy: Policy, plan: LayerPlan, upload: Kbps) -> PeerConfig {
        PeerConfig { role: Role::Seed, n_min: 0, ..PeerConfig::peer(policy, plan, upload) }
    }

    /// A relay (super-peer): a peer with high upload and room for more neighbours.
    pub fn relay(policy: Policy, plan: LayerPlan, upload: Kbps) -> PeerConfig {
        PeerConfig { role: Role::Relay, n_max: 200, ..PeerConfig::peer(policy, plan, upload) }
    }

    /// The protocol parameters a run's outcome depends on, recorded in its JSON so a
    /// result can be traced to the values that made it.
    pub fn parameters(&self) -> serde_json::Value {
        let i = &self.incentive;
        let holder_choice = match i.holder_choice {
            HolderChoice::Uniform => serde_json::json!("uniform"),
            HolderChoice::ByRate { floor } => serde_json::json!({ "by_rate_floor_kbps": floor.0 }),
            HolderChoice::ByServed => serde_json::json!("by_served"),
        };
        serde_json::json!({
            "policy": self.policy.name(),
            "round_s": self.round.as_secs_f64(),
            "lag_s": self.lag.as_secs_f64(),
            "startup_s": self.startup.as_secs_f64(),
            "n_min": self.n_min,
            "n_max": self.n_max,
            "adaptation_s": self.adaptation.as_secs_f64(),
            "rate_window_s": self.rate_window.as_secs_f64(),
            "epsilon_kbps": i.epsilon.0,
            "d_large_kbps": i.d_large.0,
            "d_small_kbps": i.d_small.0,
            "first_lc_credit_kbps": i.first_lc_credit.0,
            "holder_choice": holder_choice,
            "seed_audit": i.seed_audit,
            "seed_push": i.seed_push,
            "seed_spread_credit": i.seed_spread_credit,
            "nat_traversal": self.nat_traversal,
        })
    }

    /// Checks the values a user can get wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.round.is_zero() || self.play_tick.is_zero() {
            return Err(ConfigError::ZeroPeriod);
        }
        if self.n_min > self.n_max || self.n_max == 0 {
            return Err(ConfigError::Neighbours { n_min: self.n_min, n_max: self.n_max });
        }
        if self.lag < self.round * 2 {
            return Err(ConfigError::LagTooShort { lag: self.lag, min: self.round * 2 });
        }
        if self.incentive.epsilon.0 == 0 {
            return Err(ConfigError::ZeroEpsilon);
        }
        if self.max_queue == 0 {
            return Err(ConfigError::ZeroQueue);
        }
        Ok(())
    }
}

/// A `PeerConfig` value a node cannot run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `round` or `play_tick` is zero.
    #[error("round and play tick must be positive")]
    ZeroPeriod,
    /// N_min above N_max, or N_max zero.
    #[error("need 0 <= n_min <= n_max and n_max > 0, got {n_min} / {n_max}")]
    Neighbours {
        /// The neighbour floor requested (N_min).
        n_min: usize,
        /// The neighbour ceiling requested (N_max).
        n_max: usize,
    },
    /// The playback lag is shorter than two rounds, too short to fetch an LC before its deadline.
    #[error("playback lag {lag:?} must be at least two rounds ({min:?})")]
    LagTooShort {
        /// The playback lag given.
        lag: Duration,
        /// Two rounds, the shortest lag allowed.
        min: Duration,
    },
    /// `incentive.epsilon` is zero.
    #[error("epsilon must be positive (the supplier must stay work-conserving)")]
    ZeroEpsilon,
    /// `max_queue` is zero.
    #[error("max_queue must be positive")]
    ZeroQueue,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_downlink_narrower_than_the_upload_lowers_the_threshold_layer_and_a_wider_one_does_not() {
        // Prototype layers: R = 290 / 520 / 620 kbps.
        let mut cfg = PeerConfig::peer(Policy::LayerP2P, LayerPlan::prototype(), Kbps(700));
        assert_eq!(cfg.threshold_layer(), 3);
        cfg.download = Some(Kbps(400));
        assert_eq!(cfg.threshold_layer(), 1);
        cfg.download = Some(Kbps(520));
        assert_eq!(cfg.threshold_layer(), 2);
        cfg.upload = Kbps(300);
        cfg.download = Some(Kbps(100_000));
        assert_eq!(cfg.threshold_layer(), 1, "a wide downlink does not buy layers the upload does not earn");
    }

    #[test]
    fn overrides_change_only_what_is_given_and_are_recorded() {
        let mut cfg = PeerConfig::peer(Policy::LayerP2P, LayerPlan::simulation(), Kbps(300));
        cfg.incentive.holder_choice = HolderChoice::ByRate { floor: Kbps(25) };
        let overrides =
            NeighbourOverrides { n_max: Some(30), adaptation: Some(Duration::from_secs(10)), ..Default::default() };
        overrides.apply(&mut cfg);
        assert_eq!(
            (cfg.n_min, cfg.n_max, cfg.adaptation, cfg.rate_window),
            (10, 30, Duration::from_secs(10), Duration::from_secs(10))
        );
        let p = cfg.parameters();
        assert_eq!(
            (p["n_min"].as_u64(), p["n_max"].as_u64(), p["adaptation_s"].as_f64()),
            (Some(10), Some(30), Some(10.0))
        );
        assert_eq!(p["holder_choice"]["by_rate_floor_kbps"].as_u64(), Some(25));
        assert_eq!(p["policy"], "layerp2p");
    }
}
