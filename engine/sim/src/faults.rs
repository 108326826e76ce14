//! Faults and adversaries the simulator injects, so the real core is tested against
//! them: datagram loss, duplication and reordering (random extra delay) on every
//! link; scenario events (a fraction of the viewers crashing at once, the tracker
//! restarting with no state, the source pausing); and hostile viewers (forging the
//! LCs they send, opening many neighbour links, lying in their buffer maps).
//!
//! Owns the fault model, its own seeded RNG (so a run with faults is as reproducible
//! as one without) and what it observed. `sim` calls it from small hooks: when a
//! packet leaves a node, when a viewer joins, when a peer emits an event, and when a
//! scheduled fault fires. It never changes the protocol core.

use super::{Role as NodeRole, SEED, SimEvent, Swarm, TRACKER};
use bytes::Bytes;
use layerp2p_codec::{BufferMap, LayerId, LayerWindow, Lc};
use layerp2p_proto::config::PeerConfig;
use layerp2p_proto::peer::Event;
use layerp2p_proto::time::Time;
use layerp2p_proto::tracker::{Tracker, TrackerConfig};
use layerp2p_proto::wire::{BufferMapMsg, Message, Packet};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;

/// First payload byte of a forged LC. The simulator's payloads are phantoms (all
/// zeros), so a payload starting with this byte is a forgery wherever it is seen.
pub const FORGED_BYTE: u8 = 0xF0;

/// A scheduled fault.
#[derive(Clone, Debug, PartialEq)]
pub enum FaultEvent {
    /// This fraction of the viewers present crash at once: no goodbye, their
    /// neighbours and the tracker find out by timeout.
    MassDeparture { fraction: f64 },
    /// The tracker restarts and forgets every peer.
    TrackerRestart,
    /// The source produces nothing for this long (LCs of that span never exist).
    SourcePause(Duration),
}

/// How a hostile viewer departs from the protocol.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// Every LC it sends has its payload replaced (pollution).
    Forge,
    /// Seeks and accepts this many neighbours (n_min = n_max = `links`).
    ManyLinks { links: usize },
    /// Advertises every LC of every layer in its buffer maps.
    LyingMaps,
    /// Uploads to the seed only (its LCs to anyone else never arrive): it answers the
    /// seed's audit to look like a contributor there, and gives its neighbours nothing.
    SeedOnly,
}

/// Faults of one run.
#[derive(Clone, Debug, Default)]
pub struct FaultConfig {
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram arrives twice.
    pub duplicate: f64,
    /// Each arrival is delayed by a further uniform 0..jitter, so datagrams reorder.
    pub jitter: Duration,
    /// Scheduled events, at simulated times.
    pub events: Vec<(Time, FaultEvent)>,
    /// Hostile viewers: (index into `SwarmConfig::peers`, strategy).
    pub hostile: Vec<(usize, Strategy)>,
}

/// What the fault model did and saw.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FaultStats {
    pub datagrams: u64,
    /// Wire bytes of LC data and of manifests sent (content-integrity overhead).
    pub data_bytes: u64,
    pub manifest_bytes: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// LCs forged by hostile viewers.
    pub forged_sent: u64,
    /// Forged LCs sent by anyone else: must stay 0 with content checking on.
    pub forged_forwarded: u64,
    /// Forged LCs a viewer that is not a forger played: must stay 0 with checking on.
    pub forged_played: u64,
    /// An LC a viewer played when it had already played it or a later one of its layer.
    pub played_twice: u64,
    /// Viewers crashed by `MassDeparture`.
    pub departed: u64,
    /// Neighbour relationships viewers saw end (`Event::NeighbourDown`).
    pub neighbours_lost: u64,
    pub tracker_restarts: u64,
    /// Per second of simulated time, over honest viewers: base-layer LCs played and
    /// missed (needs `emit_playback` on the viewers).
    pub base_played: Vec<u64>,
    pub base_missed: Vec<u64>,
}

impl FaultStats {
    /// Base-layer ratio in second `s` (None when nothing was due then).
    pub fn base_ratio(&self, s: usize) -> Option<f64> {
        let played = *self.base_played.get(s)?;
        let total = played + self.base_missed.get(s).copied().unwrap_or(0);
        (total > 0).then(|| played as f64 / total as f64)
    }

    /// First second at or after `from` from which the base-layer ratio stays at or
    /// above `level` until `until`: when playback recovered.
    pub fn recovered_at(&self, from: usize, until: usize, level: f64) -> Option<usize> {
        let mut candidate = None;
        for s in from..until {
            match self.base_ratio(s) {
                Some(r) if r < level => candidate = None,
                _ => candidate = candidate.or(Some(s)),
            }
        }
        candidate
    }
}

/// The fault model's state during a run.
#[derive(Debug)]
pub struct Faults {
    cfg: FaultConfig,
    rng: ChaCha8Rng,
    /// Scenario entry -> strategy.
    hostile: HashMap<usize, Strategy>,
    /// Per (node, layer): the last sequence played.
    last_played: HashMap<(usize, LayerId), u32>,
    source_paused_until: Time,
    pub stats: FaultStats,
}

fn forge(lc: &mut Lc) {
    lc.payload = Bytes::from(vec![FORGED_BYTE; lc.payload.len().max(1)]);
}

fn is_forged(lc: &Lc) -> bool {
    lc.payload.first() == Some(&FORGED_BYTE)
}

/// LCs per layer a lying map claims from its window start (over a minute of video).
const LIE_LCS: u32 = 2048;

/// A buffer map claiming every LC of every layer from the window start on.
fn lying_map(m: &BufferMapMsg) -> BufferMapMsg {
    let layers = m
        .map
        .layers()
        .iter()
        .map(|w| {
            let bits = vec![0xFF; LIE_LCS as usize / 8];
            LayerWindow::from_bits(w.start(), LIE_LCS, &bits).unwrap_or_else(|_| w.clone())
        })
        .collect();
    BufferMapMsg { map: BufferMap::from_layers(layers), ..m.clone() }
}

impl Faults {
    pub fn new(cfg: FaultConfig, seed: u64) -> Faults {
        Faults {
            hostile: cfg.hostile.iter().cloned().collect(),
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xFA17_5EED),
            last_played: HashMap::new(),
            source_paused_until: Time::ZERO,
            stats: FaultStats::default(),
        }
    }

    /// The strategy of scenario entry `spec`, if it is hostile.
    pub fn strategy(&self, spec: Option<usize>) -> Option<&Strategy> {
        self.hostile.get(&spec?)
    }

    /// Adjusts a hostile viewer's configuration as it joins.
    pub fn configure(&self, spec: usize, cfg: &mut PeerConfig) {
        if let Some(Strategy::ManyLinks { links }) = self.hostile.get(&spec) {
            cfg.n_min = *links;
            cfg.n_max = *links;
        }
    }

    /// A packet leaves a node (scenario entry `spec`) with link delay `delay`: applies
    /// the sender's strategy, checks honest senders forward no forgery, and returns
    /// the arrival delays (none if lost, two if duplicated).
    /// A datagram of viewer `spec` (to the seed if `to_seed`) leaves: the delays of the
    /// copies that arrive.
    pub fn transmit(
        &mut self,
        spec: Option<usize>,
        to_seed: bool,
        packet: &mut Packet,
        delay: Duration,
    ) -> Vec<Duration> {
        let strategy = self.strategy(spec).cloned();
        if strategy == Some(Strategy::SeedOnly)
            && !to_seed
            && packet.messages.iter().any(|m| matches!(m, Message::Data(_)))
        {
            return Vec::new();
        }
        for m in &mut packet.messages {
            match (m, &strategy) {
                (Message::Data(lc), Some(Strategy::Forge)) => {
                    forge(lc);
                    self.stats.forged_sent += 1;
                }
                (Message::Data(lc), _) if is_forged(lc) => self.stats.forged_forwarded += 1,
                (Message::BufferMap(bm), Some(Strategy::LyingMaps)) => *bm = lying_map(bm),
                _ => {}
            }
        }
        for m in &packet.messages {
            match m {
                Message::Data(_) => self.stats.data_bytes += m.wire_len() as u64,
                Message::Manifest(_) => self.stats.manifest_bytes += m.wire_len() as u64,
                _ => {}
            }
        }
        self.stats.datagrams += 1;
        if self.rng.random_bool(self.cfg.loss.clamp(0.0, 1.0)) {
            self.stats.lost += 1;
            return Vec::new();
        }
        let copies = if self.rng.random_bool(self.cfg.duplicate.clamp(0.0, 1.0)) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let jitter = self.cfg.jitter.as_micros() as u64;
        (0..copies).map(|_| delay + Duration::from_micros(self.rng.random_range(0..=jitter))).collect()
    }

    /// An event of viewer `node` (scenario entry `spec`) at `now`.
    pub fn observe(&mut self, now: Time, node: usize, spec: Option<usize>, event: &Event) {
        let forger = matches!(self.strategy(spec), Some(Strategy::Forge));
        let honest = self.strategy(spec).is_none();
        let (id, played) = match event {
            Event::Played(lc) => {
                if !forger && is_forged(lc) {
                    self.stats.forged_played += 1;
                }
                (lc.id(), true)
            }
            Event::Missed(id) => (*id, false),
            Event::NeighbourDown { .. } => {
                self.stats.neighbours_lost += 1;
                return;
            }
            _ => return,
        };
        // Playback consumes each layer in sequence order: anything at or below the
        // last consumed sequence would be counted twice.
        if let Some(&last) = self.last_played.get(&(node, id.layer))
            && id.seq.0 <= last
        {
            self.stats.played_twice += 1;
        }
        self.last_played.insert((node, id.layer), id.seq.0);
        if honest && id.layer == LayerId::BASE {
            let s = now.as_secs_f64() as usize;
            let series = if played { &mut self.stats.base_played } else { &mut self.stats.base_missed };
            if series.len() <= s {
                series.resize(s + 1, 0);
            }
            series[s] += 1;
        }
    }

    /// Whether the source is paused at `now`.
    pub fn source_paused(&self, now: Time) -> bool {
        now < self.source_paused_until
    }
}

impl Swarm {
    /// This run with faults injected (scheduled events are queued now).
    pub fn with_faults(mut self, cfg: FaultConfig) -> Swarm {
        for (k, (at, _)) in cfg.events.iter().enumerate() {
            self.route(TRACKER, *at, super::FAULT_ORDER + k as u64, SimEvent::Fault(k));
        }
        self.faults = Some(Box::new(Faults::new(cfg, self.cfg.seed)));
        self
    }

    /// What the fault model did and saw so far.
    pub fn fault_stats(&self) -> Option<&FaultStats> {
        self.faults.as_ref().map(|f| &f.stats)
    }

    /// Viewers alive now (tracker and seed excluded).
    pub fn viewers_alive(&self) -> usize {
        self.nodes.iter().filter(|n| n.alive && n.spec.is_some()).count()
    }

    /// Runs scheduled fault `k`.
    pub(super) fn apply_fault(&mut self, k: usize) {
        let Some(faults) = self.faults.as_mut() else { return };
        let Some((_, event)) = faults.cfg.events.get(k).cloned() else { return };
        match event {
            FaultEvent::MassDeparture { fraction } => {
                let mut viewers: Vec<usize> =
                    (0..self.nodes.len()).filter(|&i| self.nodes[i].alive && self.nodes[i].spec.is_some()).collect();
                viewers.shuffle(&mut faults.rng);
                let n = (viewers.len() as f64 * fraction.clamp(0.0, 1.0)).round() as usize;
                faults.stats.departed += n as u64;
                for &i in &viewers[..n] {
                    self.remove(i);
                }
            }
            FaultEvent::TrackerRestart => {
                faults.stats.tracker_restarts += 1;
                let seed = faults.rng.random();
                self.nodes[TRACKER].role = NodeRole::Tracker(Box::new(Tracker::new(TrackerConfig::one_prefix(), seed)));
                self.nodes[TRACKER].wake_at = None;
                self.after_activity(TRACKER);
            }
            FaultEvent::SourcePause(d) => faults.source_paused_until = self.now + d,
        }
        debug_assert!(self.nodes[SEED].alive);
    }
}
