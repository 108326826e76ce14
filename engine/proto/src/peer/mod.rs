//! `Peer`: one node of the mesh — a viewer, a seed or a relay — as a sans-IO state
//! machine. It owns neighbour management (DESIGN.md §4), the supplier scheduler (§5), the
//! receiver scheduler (§6) and playback accounting (§10). It never reads a clock,
//! touches a socket or uses a global RNG.

pub mod fasthash;
pub mod nat;
pub mod neighbours;
pub mod playback;
pub mod receiver;
pub mod spread;
pub mod store;
pub mod supplier;
pub mod uplink;

use crate::bucket::TokenBucket;
use crate::config::PeerConfig;
use crate::integrity::{self, ContentAuth, ManifestBuilder, Manifests, Verdict};
use crate::metrics::{Latencies, RequestTimes};
use crate::node::{Node, Transmit};
use crate::policy::{Policy, SupplierPolicy};
use crate::time::Time;
use crate::wire::{BufferMapMsg, MAX_REQUEST_IDS, ManifestMsg, Message, Packet, PeerId, Reason, Role};
use ed25519_dalek::VerifyingKey;
use layerp2p_codec::{Insert, Kbps, Lc, LcId, MAX_LC_PAYLOAD, MAX_WINDOW_LCS, WindowError};
use neighbours::{MANIFESTS_SENT_MEMORY, Neighbour, Neighbours, Silent};
use playback::{LayerStats, Playback};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;
use supplier::Supplier;

/// Largest data message on the wire: tokens for this must be present before an LC
/// is picked, so the bucket never runs negative.
fn max_data_cost() -> usize {
    data_cost(MAX_LC_PAYLOAD)
}

/// Bytes an LC of `payload` bytes costs on the wire (its own datagram).
pub fn data_cost(payload: usize) -> usize {
    crate::wire::PACKET_HEADER_LEN + crate::wire::data_wire_len(payload)
}

/// Most packets waiting in the control outbox, besides two per allowed neighbour (a
/// round queues one per neighbour); beyond that, control replies are dropped, so a
/// flood of requests cannot grow memory.
const MAX_OUTBOX: usize = 1024;
/// Most events kept for a driver that does not poll them.
const MAX_EVENTS: usize = 65_536;
/// Handshakes to unvalidated addresses are padded to this size, so that every reply
/// fits within three times what the other side received (anti-amplification).
pub const HANDSHAKE_SIZE: usize = 1200;
/// A node sends an address that has not proven it receives there at most this
/// multiple of what it received from it.
pub const AMPLIFICATION_LIMIT: u64 = 3;
/// Most neighbours still completing address validation at once (their own table:
/// they never count towards N_max, and the oldest gives way to a new one, so a
/// flood of unvalidated Connects can neither fill nor block the validated slots).
pub const MAX_HANDSHAKES: usize = 16;
/// How long a validated neighbour that fell silent is remembered, to be re-admitted
/// at once if it comes back (a stalled node is silent for a while, not gone).
pub const SILENT_KEPT_FOR: Duration = Duration::from_secs(120);
/// Most silent neighbours remembered.
const MAX_SILENT: usize = 64;
/// Below this share of its upload in use by neighbours that upload, a peer has upload
/// to spare and keeps its upper layers for them (`Peer::serves_upper_layers`). Lower,
/// peers in overloaded swarms withhold from contributors downstream of them; higher,
/// a free-rider's own take hides the spare.
const SPARE_UPLOAD_USE: f64 = 0.7;
/// How long a peer that declined or did not answer is skipped.
const REFUSED_FOR: Duration = Duration::from_secs(60);
/// How long a neighbour caught forging content (or signing falsely) is refused.
pub const BAN_FOR: Duration = Duration::from_secs(600);
/// Most shunned addresses remembered; beyond that new ones are not recorded (each
/// must first have been a neighbour, so they accrue slowly).
const MAX_SHUNNED: usize = 1024;
/// Most fresh LCs a seed keeps waiting to be pushed (a few seconds of video); older
/// ones are dropped, they can still be requested.
const MAX_FRESH: usize = 1024;
/// Candidates a peer tries, after the first declines, to replace the neighbour its
/// adaptation dropped (DESIGN.md §4: "replaces it with a new one"). Most candidates in a
/// settled swarm are at N_max and decline; with one try the freed slot went to
/// whoever asked next, mostly free-riders (always seeking) and the just-dropped, and
/// a high-upload late joiner stayed among low contributors, short of the upper
/// layers (docs/decisions/0004-replacement-tries.md).
pub const REPLACEMENT_TRIES: u8 = 5;
/// Least interval between tracker requests for more peers.
const TRACKER_ASK_INTERVAL: Duration = Duration::from_secs(5);

pub use crate::config::ConfigError;

/// What happened, for drivers that care (reassembly, logs, UIs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A neighbour relationship was established.
    NeighbourUp {
        /// The neighbour's address.
        addr: SocketAddr,
        /// True if this node sent the Connect, false if it accepted one.
        initiator: bool,
    },
    /// A neighbour relationship ended (timeout, Disconnect, adaptation, ban or leave).
    NeighbourDown {
        /// The former neighbour's address.
        addr: SocketAddr,
    },
    /// An LC reached its deadline in time (only with `emit_playback`).
    Played(Lc),
    /// An LC missed its deadline (only with `emit_playback`).
    Missed(LcId),
    /// A new LC arrived in time (only with `emit_received`).
    Received(Lc),
}

/// Least counted playback time a rate is reported over.
pub const MIN_RATE_SECONDS: f64 = 1.0;

/// Counters of one node.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PeerStats {
    /// Per layer, index 0 = layer 1.
    pub layers: Vec<LayerStats>,
    /// LC data bytes sent and received (payload + LC header).
    pub bytes_up: u64,
    /// LC data bytes received from neighbours, duplicates included (payload + LC header).
    pub bytes_down: u64,
    /// LCs sent to neighbours, requested or pushed.
    pub lcs_up: u64,
    /// Of `lcs_up`, LCs a seed pushed unrequested (`Incentive::seed_push`).
    pub lcs_pushed: u64,
    /// LCs received from neighbours, duplicates and late ones included.
    pub lcs_down: u64,
    /// LCs received that this node already held.
    pub duplicates: u64,
    /// LCs dropped: from non-neighbours, of unknown layers, or beyond the window.
    pub rejected: u64,
    /// LC ids requested of this node by its neighbours.
    pub requests_received: u64,
    /// Requests dropped unserved because their ttl ran out in the supplier queue.
    pub requests_expired: u64,
    /// Request batches cut short because the receiver's supplier queue was full (`max_queue`).
    pub requests_overflowed: u64,
    /// Neighbour relationships established.
    pub neighbours_added: u64,
    /// Neighbour relationships ended.
    pub neighbours_removed: u64,
    /// Outgoing control packets dropped because the outbox was full.
    pub control_dropped: u64,
    /// Requests ignored because their sender had not proven its address.
    pub unvalidated_requests: u64,
    /// Requests above the base layer not queued because their sender had not
    /// uploaded to us lately (`Incentive::upper_layers_window`).
    pub requests_withheld: u64,
    /// Packets withheld from an unvalidated address to respect the 3x limit.
    pub amplification_limited: u64,
    /// LCs whose hash contradicts a verified manifest (their sender is banned).
    pub forged: u64,
    /// LCs dropped because no verified manifest covered them yet (asked again later).
    pub unverified: u64,
    /// Manifests with a bad signature (their sender is banned).
    pub bad_manifests: u64,
    /// Neighbours dropped and refused for forging.
    pub neighbours_banned: u64,
    /// Disconnects and Declines ignored because they did not echo the token we gave
    /// their claimed sender (forged teardowns).
    pub unauthenticated_control: u64,
    /// Request-to-send (supplier) and request-to-arrival (receiver) latencies.
    pub latency: Latencies,
}

impl PeerStats {
    /// Playback rate R over `seconds` of counted playback, all layers; 0 below
    /// `MIN_RATE_SECONDS` (a rate over a moment is noise, not a rate).
    pub fn playback_rate(&self, seconds: f64) -> Kbps {
        if seconds < MIN_RATE_SECONDS {
            return Kbps(0);
        }
        let bytes: u64 = self.layers.iter().map(|l| l.played_bytes).sum();
        Kbps((bytes as f64 * 8.0 / seconds / 1000.0) as u32)
    }

    /// Adds `other`'s counters and latencies (the shards of one node, or a class).
    /// Destructures `other` so that a new field cannot be left out of the sum.
    pub fn merge(&mut self, other: &PeerStats) {
        let PeerStats {
            layers,
            bytes_up,
            bytes_down,
            lcs_up,
            lcs_pushed,
            lcs_down,
            duplicates,
            rejected,
            requests_received,
            requests_expired,
            requests_overflowed,
            neighbours_added,
            neighbours_removed,
            control_dropped,
            unvalidated_requests,
            requests_withheld,
            amplification_limited,
            forged,
            unverified,
            bad_manifests,
            neighbours_banned,
            unauthenticated_control,
            latency,
        } = other;
        if self.layers.len() < layers.len() {
            self.layers.resize(layers.len(), LayerStats::default());
        }
        for (a, b) in self.layers.iter_mut().zip(layers) {
            let LayerStats { played, played_bytes, missed, late } = b;
            a.played += played;
            a.played_bytes += played_bytes;
            a.missed += missed;
            a.late += late;
        }
        self.bytes_up += bytes_up;
        self.bytes_down += bytes_down;
        self.lcs_up += lcs_up;
        self.lcs_pushed += lcs_pushed;
        self.lcs_down += lcs_down;
        self.duplicates += duplicates;
        self.rejected += rejected;
        self.requests_received += requests_received;
        self.requests_expired += requests_expired;
        self.requests_overflowed += requests_overflowed;
        self.neighbours_added += neighbours_added;
        self.neighbours_removed += neighbours_removed;
        self.control_dropped += control_dropped;
        self.unvalidated_requests += unvalidated_requests;
        self.requests_withheld += requests_withheld;
        self.amplification_limited += amplification_limited;
        self.forged += forged;
        self.unverified += unverified;
        self.bad_manifests += bad_manifests;
        self.neighbours_banned += neighbours_banned;
        self.unauthenticated_control += unauthenticated_control;
        self.latency.merge(latency);
    }

    /// alpha over all layers; `None` while nothing was counted.
    pub fn overall_ratio(&self) -> Option<f64> {
        let played: u64 = self.layers.iter().map(|l| l.played).sum();
        let missed: u64 = self.layers.iter().map(|l| l.missed).sum();
        playback::in_time_ratio(played, missed)
    }
}

/// One node of the mesh (viewer, seed or relay) as a sans-IO state machine: packets and time in, packets and
/// events out.
#[derive(Debug)]
pub struct Peer {
    cfg: PeerConfig,
    id: PeerId,
    rng: ChaCha8Rng,
    left: bool,
    threshold: usize,
    /// Share of the bucket's rate that went to neighbours that upload, averaged over
    /// `rate_window`: below `SPARE_UPLOAD_USE`, upper layers are kept for them
    /// (`serves_upper_layers`). What the others take does not count, or a free-rider
    /// asking for everything would make the upload look used and keep it coming.
    upload_use: f64,
    /// LC bytes sent this round to neighbours that uploaded to us lately.
    bytes_up_to_uploaders: u64,
    neighbours: Neighbours,
    /// Connects sent: when, and the token we handed out.
    pending: HashMap<SocketAddr, (Time, u64)>,
    refused: HashMap<SocketAddr, Time>,
    /// Addresses whose Connects we decline until the given time: forgers (for
    /// `BAN_FOR`) and the neighbour adaptation last dropped (for one period, so a
    /// non-contributor cannot come straight back).
    shunned: HashMap<SocketAddr, Time>,
    /// The channel key LCs are checked against (`None`: content is not checked).
    content_key: Option<VerifyingKey>,
    /// Verified manifests, to check LCs against and forward.
    manifests: Manifests,
    /// The seed's signer (only with `ContentAuth::Sign`).
    builder: Option<ManifestBuilder>,
    candidates: Vec<SocketAddr>,
    /// Connects still to go, in list order, to the head of the latest tracker list.
    head_tries: usize,
    store: store::Store,
    playback: Playback,
    supplier: Supplier,
    bucket: TokenBucket,
    /// This round's requests per neighbour slot (filled by the receiver scheduler, or
    /// by a seed's audit), handed over as request messages.
    requests: Vec<Vec<LcId>>,
    outbox: VecDeque<Transmit>,
    /// A seed's newly ingested LCs still to be pushed once each (`Peer::push_target`).
    fresh: VecDeque<LcId>,
    /// A seed's pushed LCs, followed to credit whoever forwards them (`spread`).
    spread: spread::Spread,
    /// Scratch for `credit_spread`.
    spread_due: Vec<spread::Due>,
    events: VecDeque<Event>,
    next_round: Time,
    next_play: Time,
    next_adapt: Time,
    next_refresh: Time,
    last_tracker_ask: Option<Time>,
    /// Further candidates to try if the one asked to replace an adaptation's drop
    /// declines (`REPLACEMENT_TRIES`).
    replace_tries: u8,
    /// When each outstanding request of ours left, for the delivery latency.
    requested: RequestTimes,
    /// The tracker's return-routability token for our address (0: none yet), echoed
    /// in every Join, Refresh and Leave.
    tracker_token: u64,
    /// Validated neighbours that fell silent, by address (at most `MAX_SILENT`).
    silent: HashMap<SocketAddr, Silent>,
    /// When the last round ran: a much longer gap means this node itself stalled.
    last_round: Time,
    /// The NAT in front of us and hole punching (`nat`).
    nat: nat::Nat,
    /// The measured upload (`upload_auto`), and LC bytes sent up to its last update.
    uplink: Option<(uplink::Uplink, u64)>,
    stats: PeerStats,
}

impl Peer {
    /// A node that starts at `now`. `seed` drives every random choice it makes.
    pub fn new(cfg: PeerConfig, seed: u64, now: Time) -> Result<Peer, ConfigError> {
        cfg.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let layers = cfg.plan.layers();
        let id = PeerId(rng.random());
        // Random phases so that peers started together do not act in lockstep.
        let phase =
            |rng: &mut ChaCha8Rng, d: Duration| Duration::from_micros(rng.random_range(0..d.as_micros().max(1) as u64));
        let next_round = now + phase(&mut rng, cfg.round);
        let next_adapt = now + cfg.adaptation + phase(&mut rng, cfg.adaptation);
        let mut peer = Peer {
            threshold: cfg.threshold_layer(),
            upload_use: 1.0,
            bytes_up_to_uploaders: 0,
            id,
            left: false,
            neighbours: Neighbours::default(),
            pending: HashMap::new(),
            refused: HashMap::new(),
            shunned: HashMap::new(),
            content_key: cfg.content_auth.verifying_key(),
            manifests: Manifests::new(layers),
            builder: match &cfg.content_auth {
                ContentAuth::Sign(key) => Some(ManifestBuilder::new(key.clone(), cfg.channel, layers)),
                _ => None,
            },
            candidates: Vec::new(),
            head_tries: 0,
            store: store::Store::new(layers),
            playback: Playback::new(layers, cfg.lag, now + cfg.startup),
            supplier: Supplier::new(cfg.policy.supplier(), cfg.max_queue),
            bucket: TokenBucket::new(cfg.upload, cfg.burst, 2 * max_data_cost() as u64, now),
            requests: Vec::new(),
            outbox: VecDeque::new(),
            fresh: VecDeque::new(),
            spread: spread::Spread::default(),
            spread_due: Vec::new(),
            events: VecDeque::new(),
            next_round,
            next_play: now + cfg.play_tick,
            next_adapt,
            next_refresh: now + cfg.tracker_refresh,
            last_tracker_ask: Some(now),
            replace_tries: 0,
            requested: RequestTimes::default(),
            tracker_token: 0,
            silent: HashMap::new(),
            last_round: now,
            nat: nat::Nat::default(),
            uplink: cfg.upload_auto.then(|| (uplink::Uplink::new(cfg.upload.bits_per_sec() as f64), 0)),
            stats: PeerStats { layers: vec![LayerStats::default(); layers], ..Default::default() },
            rng,
            cfg,
        };
        if let Some((up, _)) = &peer.uplink {
            let start = Kbps((up.rate_bps() / 1000.0) as u32);
            peer.apply_upload(now, start);
        }
        if let Some(tracker) = peer.cfg.tracker {
            let join = Message::Join { channel: peer.cfg.channel, peer: peer.id, role: peer.cfg.role };
            peer.send(tracker, Self::padded(vec![join]));
        }
        Ok(peer)
    }

    /// This node's random identity, announced to the tracker and to neighbours.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The configuration this node runs with.
    pub fn config(&self) -> &PeerConfig {
        &self.cfg
    }

    /// The node's own addresses (bound port, every local IP), so it can tell whether
    /// the address public nodes see it at is its own (no NAT).
    pub fn set_local_addrs(&mut self, local: Vec<SocketAddr>) {
        self.nat.set_local(local);
    }

    /// The NAT type measured and the address the tracker sees.
    pub fn nat_status(&self) -> nat::NatStatus {
        self.nat.status()
    }

    /// Neighbours that proved their address (those that hold a slot, at most N_max).
    pub fn neighbour_count(&self) -> usize {
        self.neighbours.validated_len()
    }

    /// Contacts still completing address validation (`MAX_HANDSHAKES` at most).
    pub fn handshake_count(&self) -> usize {
        self.neighbours.unvalidated_len()
    }

    /// Addresses of the current neighbours.
    pub fn neighbour_addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.neighbours.iter().filter(|(_, n)| n.validated).map(|(_, n)| n.addr)
    }

    /// Each neighbour with the LC bytes sent to and received from it.
    pub fn neighbour_traffic(&self) -> impl Iterator<Item = (SocketAddr, u64, u64)> + '_ {
        self.neighbours.iter().map(|(_, n)| (n.addr, n.bytes_up, n.bytes_down))
    }

    /// d(n,k) for neighbour `addr`, in kbps.
    pub fn download_rate_from(&self, addr: &SocketAddr) -> Option<Kbps> {
        let slot = self.neighbours.slot_of(addr)?;
        Some(Kbps((self.neighbours.get(slot)?.rate.bits_per_sec() / 1000) as u32))
    }

    /// The measured upload and the uplink's queueing delay (`upload_auto` only).
    pub fn upload_estimate(&self) -> Option<(Kbps, Option<Duration>)> {
        let (up, _) = self.uplink.as_ref()?;
        Some((Kbps((up.rate_bps() / 1000.0) as u32), up.queueing_delay()))
    }

    /// The playback threshold layer l_n.
    pub fn threshold_layer(&self) -> usize {
        self.threshold
    }

    /// When playback started being counted.
    pub fn counted_since(&self) -> Time {
        self.playback.count_from()
    }

    /// Counters, with per-layer playback figures filled in.
    pub fn stats(&self) -> PeerStats {
        PeerStats { layers: self.playback.layers.clone(), ..self.stats.clone() }
    }

    /// Requests waiting at this node's supplier.
    pub fn queued_requests(&self) -> usize {
        self.supplier.queued()
    }

    /// The next event not yet taken by the driver, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// A seed's ingest: adds a freshly produced LC to the store.
    pub fn push_lc(&mut self, now: Time, lc: Lc) -> Result<(), WindowError> {
        if lc.header.id.layer.index() >= self.cfg.plan.layers() {
            self.stats.rejected += 1;
            return Ok(());
        }
        self.playback.observe(now, lc.header.time);
        if let Some(builder) = &mut self.builder {
            for m in builder.add(&lc) {
                self.manifests.insert(m);
            }
        }
        let id = lc.header.id;
        self.store.insert(lc)?;
        if self.audits() && self.cfg.incentive.seed_push {
            if self.fresh.len() >= MAX_FRESH {
                self.fresh.pop_front();
            }
            self.fresh.push_back(id);
        }
        Ok(())
    }

    /// Verified manifests held (the seed's own included).
    pub fn manifest_count(&self) -> usize {
        self.manifests.len()
    }

    /// Leaves the channel: tells neighbours and the tracker, then goes quiet.
    pub fn leave(&mut self, _now: Time) {
        if self.left {
            return;
        }
        let addrs: Vec<SocketAddr> = self.neighbours.iter().map(|(_, n)| n.addr).collect();
        for addr in addrs {
            self.disconnect(addr, Reason::Leaving);
        }
        if let Some(tracker) = self.cfg.tracker {
            let leave = self.to_tracker(Message::Leave { channel: self.cfg.channel, peer: self.id });
            self.send(tracker, leave);
        }
        self.left = true;
    }

    fn send(&mut self, dst: SocketAddr, messages: Vec<Message>) {
        // Each round queues a packet per neighbour, so the bound grows with N_max.
        if self.outbox.len() >= MAX_OUTBOX + 2 * self.cfg.n_max {
            self.stats.control_dropped += 1;
            return;
        }
        self.outbox.push_back(Transmit { dst, packet: Packet { messages } });
    }

    /// Pads `messages` so the packet is at least `HANDSHAKE_SIZE` bytes.
    fn padded(mut messages: Vec<Message>) -> Vec<Message> {
        let len = Packet { messages: messages.clone() }.wire_len();
        let pad = HANDSHAKE_SIZE.saturating_sub(len + crate::wire::codec::MESSAGE_HEADER_LEN);
        if len < HANDSHAKE_SIZE {
            messages.push(Message::Padding { len: pad as u16 });
        }
        messages
    }

    /// `msg` for the tracker, echoing its token once we have one.
    fn to_tracker(&self, msg: Message) -> Vec<Message> {
        let mut messages = vec![msg];
        if self.tracker_token != 0 {
            messages.push(Message::Token { nonce: 0, echo: self.tracker_token });
        }
        messages
    }

    /// A datagram from the tracker: a new token is stored and echoed at once, so the
    /// tracker lists us now rather than at the next refresh.
    fn on_tracker_token(&mut self, token: Option<(u64, u64)>) {
        let Some((nonce, _)) = token else { return };
        if nonce == 0 || nonce == self.tracker_token {
            return;
        }
        self.tracker_token = nonce;
        if let Some(tracker) = self.cfg.tracker {
            let refresh = Message::Refresh { channel: self.cfg.channel, peer: self.id, want_peers: false };
            let messages = self.to_tracker(refresh);
            self.send(tracker, messages);
        }
    }

    /// Sends to a neighbour. While it is unvalidated, no datagram may be larger than
    /// the latest it sent us, and all together stay within 3x what it sent.
    fn send_to_neighbour(&mut self, slot: usize, messages: Vec<Message>) {
        let Some(n) = self.neighbours.get_mut(slot) else { return };
        if !n.validated {
            let len = Packet { messages: messages.clone() }.wire_len() as u64;
            if len > n.last_in || n.unvalidated_out + len > AMPLIFICATION_LIMIT * n.unvalidated_in {
                self.stats.amplification_limited += 1;
                return;
            }
            n.unvalidated_out += len;
        }
        let addr = n.addr;
        self.send(addr, messages);
    }

    fn token_for(&self, slot: usize) -> Option<Message> {
        self.neighbours.get(slot).map(|n| Message::Token { nonce: n.token_out, echo: n.token_in })
    }

    /// Tells neighbour `addr` the relationship is over, echoing its token: only a
    /// Disconnect that proves it comes from the neighbour is acted on.
    fn disconnect(&mut self, addr: SocketAddr, reason: Reason) {
        let mut messages = vec![Message::Disconnect { reason }];
        messages.extend(self.neighbours.slot_of(&addr).and_then(|slot| self.token_for(slot)));
        self.send(addr, messages);
    }

    /// A Disconnect or Decline from `from` counts only if it echoes the token we
    /// gave `from` (as a neighbour, or in our pending Connect): anyone can forge a
    /// source address, only the real party knows the token. A mismatch is counted.
    fn authentic_teardown(&mut self, from: SocketAddr, token: Option<(u64, u64)>) -> bool {
        let expected = match self.neighbours.slot_of(&from).and_then(|slot| self.neighbours.get(slot)) {
            Some(n) => n.token_out,
            None => match self.pending.get(&from) {
                Some(&(_, nonce)) => nonce,
                None => return false,
            },
        };
        let authentic = token.is_some_and(|(_, echo)| echo == expected);
        if !authentic {
            self.stats.unauthenticated_control += 1;
        }
        authentic
    }

    fn event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    // ---- neighbour management (DESIGN.md §4) ----

    #[allow(clippy::too_many_arguments)]
    fn add_neighbour(
        &mut self,
        now: Time,
        addr: SocketAddr,
        id: PeerId,
        role: Role,
        initiator: bool,
        (token_out, token_in): (u64, u64),
        received: u64,
        first: Vec<Message>,
    ) -> usize {
        // The optimistic start: an initiator credits its receptor with d_l, a
        // receptor credits its initiator with only d_s. An auditing seed credits a
        // newcomer with what answering its audit gives (one LC a round): a newcomer
        // holds nothing yet, so it cannot answer, and at eps it would get almost
        // nothing from the seed, its only early supplier; one that never answers
        // decays to nothing within a rate window.
        let initial = self.initial_rate(initiator);
        let mut n = Neighbour::new(addr, id, role, initiator, now, initial);
        n.token_out = token_out;
        n.token_in = token_in;
        // An initiator has seen its own token echoed in the Accept.
        n.validated = initiator;
        n.unvalidated_in = received;
        n.last_in = received;
        self.admit(now, n, first)
    }

    /// The initial d(n,k) of a relationship (see `add_neighbour`).
    fn initial_rate(&self, initiator: bool) -> Kbps {
        if self.audits() {
            Kbps((data_cost(MAX_LC_PAYLOAD) as f64 * 8.0 / self.cfg.round.as_secs_f64() / 1000.0) as u32)
        } else if initiator {
            self.cfg.incentive.d_large
        } else {
            self.cfg.incentive.d_small
        }
    }

    /// Puts `n` in a slot and sends it `first`, with our token (and, once it is
    /// validated, our buffer map: an unvalidated address gets only the handshake).
    fn admit(&mut self, now: Time, n: Neighbour, mut first: Vec<Message>) -> usize {
        let (addr, initiator, validated) = (n.addr, n.initiator, n.validated);
        let weight = n.rate.bits_per_sec() + self.cfg.incentive.epsilon.bits_per_sec();
        let slot = self.neighbours.insert(n);
        self.supplier.set_weight(slot, weight);
        self.stats.neighbours_added += 1;
        self.event(Event::NeighbourUp { addr, initiator });
        first.extend(self.token_for(slot));
        if validated {
            first.push(self.buffer_map_for(now, slot));
        }
        self.send_to_neighbour(slot, first);
        slot
    }

    /// A datagram from a neighbour that fell silent and echoes the token it had from
    /// us: the same party, back after a stall. It is re-admitted, validated, with its
    /// old standing, if there is room.
    fn readmit(&mut self, now: Time, from: SocketAddr, token: Option<(u64, u64)>) {
        if self.neighbours.contains(&from) {
            return;
        }
        let Some(s) = self.silent.get(&from) else { return };
        if now >= s.until || token.is_none_or(|(_, echo)| echo != s.token_out) {
            return;
        }
        let Some(s) = self.silent.remove(&from) else { return };
        if self.neighbours.validated_len() >= self.cfg.n_max || self.is_shunned(now, &from) {
            return;
        }
        self.pending.remove(&from);
        let mut n = Neighbour::new(from, s.id, s.role, s.initiator, s.since, self.initial_rate(s.initiator));
        n.last_heard = now;
        n.token_out = s.token_out;
        n.token_in = token.map_or(s.token_in, |(nonce, _)| nonce);
        n.validated = true;
        self.admit(now, n, Vec::new());
    }

    /// Forgets neighbour `addr` after a silence, remembering it for `SILENT_KEPT_FOR`.
    fn fall_silent(&mut self, now: Time, addr: SocketAddr) {
        if let Some(slot) = self.neighbours.slot_of(&addr)
            && let Some(n) = self.neighbours.get(slot)
            && n.validated
        {
            self.silent.retain(|_, s| now < s.until);
            if self.silent.len() < MAX_SILENT {
                self.silent.insert(addr, Silent::of(n, now + SILENT_KEPT_FOR));
            }
        }
        self.remove_neighbour(&addr);
    }

    fn remove_neighbour(&mut self, addr: &SocketAddr) {
        if let Some((slot, _)) = self.neighbours.remove(addr) {
            self.supplier.clear(slot);
            if let Some((up, _)) = &mut self.uplink {
                up.forget(slot);
            }
            self.stats.neighbours_removed += 1;
            self.event(Event::NeighbourDown { addr: *addr });
        }
    }

    fn is_shunned(&self, now: Time, addr: &SocketAddr) -> bool {
        self.shunned.get(addr).is_some_and(|&until| now < until)
    }

    /// Declines `addr`'s Connects for `period` (bounded: past `MAX_SHUNNED` live
    /// entries, new ones are not recorded).
    fn shun(&mut self, now: Time, addr: SocketAddr, period: Duration) {
        self.shunned.retain(|_, until| now < *until);
        if self.shunned.len() < MAX_SHUNNED {
            self.shunned.insert(addr, now + period);
        }
    }

    /// Drops a neighbour caught forging and refuses it for `BAN_FOR`.
    fn ban(&mut self, now: Time, addr: SocketAddr) {
        self.disconnect(addr, Reason::Refused);
        self.remove_neighbour(&addr);
        self.pending.remove(&addr);
        self.stats.neighbours_banned += 1;
        self.shun(now, addr, BAN_FOR);
    }

    fn is_contactable(&self, now: Time, addr: &SocketAddr) -> bool {
        !self.is_shunned(now, addr)
            && !self.neighbours.contains(addr)
            && !self.pending.contains_key(addr)
            && self.refused.get(addr).is_none_or(|&until| now >= until)
    }

    /// Sends up to `count` establishment requests to candidates: the first
    /// `list_head_tries` after a new list in its order (a tracker leads its lists with
    /// the channel's longest-present peers, which a flood of fresh identities cannot
    /// displace), then random ones.
    fn connect_to_candidates(&mut self, now: Time, count: usize) {
        for _ in 0..count {
            let choices: Vec<SocketAddr> =
                self.candidates.iter().copied().filter(|a| self.is_contactable(now, a)).collect();
            let pick = match self.head_tries {
                0 => choices.choose(&mut self.rng),
                _ => {
                    self.head_tries -= 1;
                    choices.first()
                }
            };
            let Some(&addr) = pick else {
                self.ask_tracker(now);
                return;
            };
            let nonce = self.rng.random::<u64>() | 1;
            self.pending.insert(addr, (now, nonce));
            let packet = self.connect_packet(nonce);
            self.send(addr, packet);
        }
    }

    /// A Connect with the token `nonce`, padded so the Accept fits the 3x limit.
    fn connect_packet(&self, nonce: u64) -> Vec<Message> {
        let msg = Message::Connect { channel: self.cfg.channel, peer: self.id, role: self.cfg.role };
        Self::padded(vec![msg, Message::Token { nonce, echo: 0 }])
    }

    /// Below N_min: seek more neighbours. Between N_min and N_max: only accept.
    fn seek(&mut self, now: Time) {
        let have = self.neighbours.validated_len() + self.pending.len();
        if have < self.cfg.n_min {
            self.connect_to_candidates(now, self.cfg.n_min - have);
        }
    }

    fn ask_tracker(&mut self, now: Time) {
        let Some(tracker) = self.cfg.tracker else { return };
        if self.last_tracker_ask.is_some_and(|t| now.since(t) < TRACKER_ASK_INTERVAL) {
            return;
        }
        self.last_tracker_ask = Some(now);
        let msg = Message::Refresh { channel: self.cfg.channel, peer: self.id, want_peers: true };
        let messages = Self::padded(self.to_tracker(msg));
        self.send(tracker, messages);
    }

    /// Every adaptation period: drop the neighbour we receive least from (among those
    /// old enough to have been measured, when there are two or more) and look for a replacement, trying further
    /// candidates while they decline (`REPLACEMENT_TRIES`; a seed waits for newcomers
    /// instead). Without incentives (Single-Layer) the dropped neighbour is
    /// a random one instead, so the baseline keeps the same churn but rewards nobody.
    fn adapt(&mut self, now: Time) {
        // An auditing seed adapts too, but only when full: a slot is then worth more
        // to a newcomer than to a neighbour that gives nothing back.
        let have = self.neighbours.validated_len();
        let seed_adapts = self.audits() && have >= self.cfg.n_max;
        if (self.cfg.role == Role::Seed && !seed_adapts) || have < self.cfg.n_min.max(1) {
            return;
        }
        // Among equal contributors, one that never advertised any LC goes first: it
        // has nothing to give (a neighbour that only keeps its slot warm).
        let eligible: Vec<(SocketAddr, u64, bool)> = self
            .neighbours
            .iter()
            .filter(|(_, n)| n.validated && now.since(n.since) >= self.cfg.adaptation)
            .map(|(_, n)| (n.addr, n.rate.bits_per_sec(), n.head_offset.is_some()))
            .collect();
        // Least among the measured needs two of them: alone, the one old neighbour
        // (a relay's seed, before its viewers are measured) would go for being first.
        if eligible.len() < 2 {
            return;
        }
        let victim = match self.cfg.policy.supplier() {
            SupplierPolicy::TitForTat => eligible.iter().min_by_key(|(_, rate, holds)| (*rate, *holds)),
            SupplierPolicy::RoundRobin => eligible.choose(&mut self.rng),
        };
        // A seed only drops a neighbour that gave nothing back (below eps): any
        // contributor is worth its slot, and a contributor dropped would lose its best
        // supplier.
        let eps = self.cfg.incentive.epsilon.bits_per_sec();
        let victim = victim.filter(|&&(_, rate, _)| self.cfg.role != Role::Seed || rate < eps);
        if let Some(&(addr, ..)) = victim {
            self.disconnect(addr, Reason::Adaptation);
            self.remove_neighbour(&addr);
            self.refused.insert(addr, now + self.cfg.adaptation);
            self.shun(now, addr, self.cfg.adaptation);
            if self.cfg.role != Role::Seed {
                self.replace_tries = REPLACEMENT_TRIES;
                self.connect_to_candidates(now, 1);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_connect(
        &mut self,
        now: Time,
        from: SocketAddr,
        channel: crate::wire::ChannelId,
        id: PeerId,
        role: Role,
        token: Option<(u64, u64)>,
        received: u64,
    ) {
        if channel != self.cfg.channel || self.left || self.is_shunned(now, &from) {
            self.decline(from, Reason::Refused, token);
            return;
        }
        if let Some(slot) = self.neighbours.slot_of(&from) {
            let mut reply = self.accept(from);
            reply.extend(self.token_for(slot));
            self.send_to_neighbour(slot, reply);
            return;
        }
        if self.neighbours.validated_len() >= self.cfg.n_max {
            self.decline(from, Reason::Full, token);
            return;
        }
        // Handshakes have their own small table; the oldest gives way.
        if self.neighbours.unvalidated_len() >= MAX_HANDSHAKES
            && let Some(oldest) = self.neighbours.oldest_unvalidated()
        {
            self.remove_neighbour(&oldest);
        }
        // Both sides asked at once: our own Connect settles it from their side.
        self.pending.remove(&from);
        self.nat.attempt_done(&from);
        let token_in = token.map_or(0, |(nonce, _)| nonce);
        let accept = self.accept(from);
        let token_out = self.rng.random::<u64>() | 1;
        self.add_neighbour(now, from, id, role, false, (token_out, token_in), received, accept);
    }

    /// Declines a Connect, echoing its token so the initiator knows the Decline is
    /// ours (smaller than the Connect, so no amplification).
    fn decline(&mut self, to: SocketAddr, reason: Reason, token: Option<(u64, u64)>) {
        let mut messages = vec![Message::Decline { reason }];
        messages.extend(token.map(|(nonce, _)| Message::Token { nonce: 0, echo: nonce }));
        self.send(to, messages);
    }

    /// An Accept for `to`; a seed or relay (a public meeting point) also says where it
    /// sees `to`, the second opinion a peer's NAT type needs.
    fn accept(&self, to: SocketAddr) -> Vec<Message> {
        let mut reply = vec![Message::Accept { peer: self.id, role: self.cfg.role }];
        if self.cfg.role != Role::Peer {
            reply.push(Message::Observed { addr: to });
        }
        reply
    }

    fn on_accept(&mut self, now: Time, from: SocketAddr, id: PeerId, role: Role, token: Option<(u64, u64)>) {
        if self.neighbours.contains(&from) {
            return;
        }
        // Only an Accept that echoes the token we sent to `from` comes from `from`.
        let Some(&(_, nonce)) = self.pending.get(&from) else { return };
        let Some((their_token, _)) = token.filter(|&(_, echo)| echo == nonce) else {
            self.stats.rejected += 1;
            return;
        };
        self.pending.remove(&from);
        self.nat.attempt_done(&from);
        if self.neighbours.validated_len() >= self.cfg.n_max {
            self.send(
                from,
                vec![Message::Disconnect { reason: Reason::Full }, Message::Token { nonce, echo: their_token }],
            );
            return;
        }
        // Our token stays the one the Connect carried: the receptor echoes that one.
        self.add_neighbour(now, from, id, role, true, (nonce, their_token), 0, Vec::new());
    }

    // ---- exchange ----

    fn buffer_map_for(&self, now: Time, slot: usize) -> Message {
        let (echo, echo_delay) = match self.neighbours.get(slot).and_then(|n| n.echo) {
            Some((sent_at, at)) => (sent_at, now.since(at).as_micros().min(u32::MAX as u128) as u32),
            None => (0, 0),
        };
        Message::BufferMap(BufferMapMsg {
            head_time: self.store.newest(),
            sent_at: now.0,
            echo,
            echo_delay,
            map: self.store.map().clone(),
        })
    }

    fn on_buffer_map(&mut self, now: Time, from: SocketAddr, m: BufferMapMsg, token: Option<(u64, u64)>) {
        let Some((_, n)) = self.neighbours.by_addr_mut(&from) else {
            // They think we are neighbours; we are not (e.g. a lost Disconnect). The
            // echo of their token lets them believe us (smaller than the map).
            let mut messages = vec![Message::Disconnect { reason: Reason::Refused }];
            messages.extend(token.map(|(nonce, _)| Message::Token { nonce: 0, echo: nonce }));
            self.send(from, messages);
            return;
        };
        // Until it proves its address, nothing it says counts or keeps it alive.
        if !n.validated {
            return;
        }
        n.last_heard = now;
        n.echo = Some((m.sent_at, now));
        if m.echo != 0 {
            let rtt = now.0.saturating_sub(m.echo).saturating_sub(m.echo_delay as u64);
            if rtt < 10_000_000 {
                let sample = Duration::from_micros(rtt);
                n.rtt = Some(n.rtt.map_or(sample, |r| (r * 7 + sample) / 8));
                n.base_rtt = Some(n.base_rtt.map_or(sample, |b| b.min(sample)));
            }
        }
        if m.map.layers().len() != self.cfg.plan.layers() {
            n.map = None;
            return;
        }
        if m.map.layers().iter().any(|w| !w.is_empty()) {
            n.head_offset = Some(m.head_time.0 as i64 - now.0 as i64);
        }
        n.map = Some(m.map);
        // Where the source is: the median of what neighbours report, so one liar
        // cannot drag our playback point.
        let mut offsets: Vec<i64> = self.neighbours.iter().filter_map(|(_, n)| n.head_offset).collect();
        if let Some(median) = median(&mut offsets) {
            self.playback.observe_offset(median);
        }
    }

    /// Per layer, the median window start of neighbours that hold data: where
    /// playback stands in the swarm. A newcomer starts there; and everything below
    /// it has been played (and dropped) by most neighbours, so a missing LC there is
    /// given up.
    fn swarm_positions(&mut self) {
        if self.cfg.role == Role::Seed {
            return;
        }
        for li in 0..self.cfg.plan.layers() {
            let layer = layerp2p_codec::LayerId::from_index(li);
            let mut starts: Vec<i64> = self
                .neighbours
                .iter()
                .filter_map(|(_, n)| n.map.as_ref()?.layer(layer).filter(|w| !w.is_empty()).map(|w| w.start().0 as i64))
                .collect();
            let Some(start) = median(&mut starts).map(|s| layerp2p_codec::Seq(s as u32)) else { continue };
            if !self.store.is_placed(layer) {
                self.store.place(layer, start);
            }
            self.playback.raise_due(layer, start);
        }
    }

    fn on_request(&mut self, now: Time, from: SocketAddr, ttl_ms: u16, ids: Vec<LcId>) {
        let Some(slot) = self.neighbours.slot_of(&from) else { return };
        if !self.neighbours.get(slot).is_some_and(|n| n.validated) {
            // Could be spoofed: serving it would aim our upload at a victim.
            self.stats.unvalidated_requests += 1;
            return;
        }
        let ttl = Duration::from_millis(ttl_ms as u64).min(self.cfg.round);
        let expires = now + ttl;
        self.stats.requests_received += ids.len() as u64;
        let base_only = !self.serves_upper_layers(now, slot);
        let mut withheld = 0;
        let store = &self.store;
        let wanted = ids.into_iter().filter(|&id| {
            let upper = base_only && id.layer.index() > 0;
            withheld += u64::from(upper);
            !upper && store.holds(id)
        });
        self.supplier.enqueue_all(slot, wanted, now, expires);
        self.stats.requests_withheld += withheld;
    }

    /// Whether neighbour `slot` may have layers above the base from us: under
    /// LayerP2P, when we can tell, only if it sent us an LC lately
    /// (`Incentive::upper_layers_window`). An auditing seed can always tell: every
    /// contributor answers its audits. A peer judges only while its upload is spare:
    /// a contributor downstream of it may have had nothing to send it, and while
    /// uploaders keep our upload busy the swarm is short of what withholding would
    /// idle, so we serve everyone by d(n,k) + eps as DESIGN.md §5 says. A relay, or a
    /// seed that asks nothing back, cannot tell uploaders apart.
    fn serves_upper_layers(&self, now: Time, slot: usize) -> bool {
        let Some(window) = self.cfg.incentive.upper_layers_window else { return true };
        if self.cfg.policy != Policy::LayerP2P {
            return true;
        }
        let spare = self.upload_use < SPARE_UPLOAD_USE;
        let judges = self.audits() || (self.cfg.role == Role::Peer && spare);
        // A new neighbour has had no round yet to answer an audit or a request.
        let judged = |n: &Neighbour| now.since(n.since) >= self.cfg.round * 2;
        !judges || self.neighbours.get(slot).is_some_and(|n| !judged(n) || n.uploaded_within(now, window))
    }

    /// Folds the round's share of the allowed upload into `upload_use`.
    fn note_upload_use(&mut self) {
        let sent_bits = (std::mem::take(&mut self.bytes_up_to_uploaders) * 8) as f64;
        let allowed_bits = self.bucket.rate().bits_per_sec() as f64 * self.cfg.round.as_secs_f64();
        let used = if allowed_bits > 0.0 { (sent_bits / allowed_bits).min(1.0) } else { 1.0 };
        let w = (self.cfg.round.as_secs_f64() / self.cfg.rate_window.as_secs_f64()).min(1.0);
        self.upload_use += w * (used - self.upload_use);
    }

    fn on_data(&mut self, now: Time, from: SocketAddr, lc: Lc) {
        let cost = data_cost(lc.payload.len());
        let first_lc_credit = self.cfg.incentive.first_lc_credit;
        let Some((_, n)) = self.neighbours.by_addr_mut(&from).filter(|(_, n)| n.validated) else {
            self.stats.rejected += 1;
            return;
        };
        n.last_heard = now;
        n.rate.add_bytes(cost);
        n.answered = n.answered.saturating_add(1);
        // Their first LC earns the one-off credit (`Incentive::first_lc_credit`).
        if n.bytes_down == 0 {
            n.rate.credit(first_lc_credit);
        }
        n.bytes_down += cost as u64;
        n.last_lc = Some(now);
        self.stats.bytes_down += cost as u64;
        self.stats.lcs_down += 1;
        let layer = lc.header.id.layer;
        if let Some(sent) = self.requested.arrived(lc.header.id) {
            self.stats.latency.delivery.record(now.since(sent));
        }
        if layer.index() >= self.cfg.plan.layers() {
            self.stats.rejected += 1;
            return;
        }
        if self.content_key.is_some() {
            match self.manifests.verdict(&lc) {
                Verdict::Genuine => {}
                Verdict::Unknown => {
                    self.stats.unverified += 1;
                    return;
                }
                Verdict::Forged => {
                    self.stats.forged += 1;
                    self.ban(now, from);
                    return;
                }
            }
        }
        if !self.store.is_placed(layer) {
            // Place the window where the swarm plays (from the maps we have), not at
            // this LC, which may be a seed's newest push, a whole lag ahead.
            self.swarm_positions();
        }
        if self.playback.is_due(now, lc.header.time) {
            self.playback.record_late(now, layer);
            return;
        }
        let copy = self.cfg.emit_received.then(|| lc.clone());
        match self.store.insert(lc) {
            Ok(Insert::New) => {
                if let Some(lc) = copy {
                    self.event(Event::Received(lc));
                }
            }
            Ok(Insert::Duplicate) => self.stats.duplicates += 1,
            Ok(Insert::Stale) => self.playback.record_late(now, layer),
            Err(_) => self.stats.rejected += 1,
        }
    }

    /// A manifest from a neighbour: checked once (dedup by start), kept if the seed
    /// signed it; a false signature gets its sender banned.
    fn on_manifest(&mut self, now: Time, from: SocketAddr, m: ManifestMsg) {
        let Some(key) = self.content_key else { return };
        let layer = m.layer;
        if self.validated_slot(&from).is_none()
            || layer.index() >= self.cfg.plan.layers()
            || self.manifests.contains(&m)
        {
            return;
        }
        if self.store.is_placed(layer) {
            let start = u64::from(self.store.window(layer).start().0);
            let end = u64::from(m.start.0) + m.hashes.len() as u64;
            if end <= start || u64::from(m.start.0) > start + u64::from(MAX_WINDOW_LCS) {
                return;
            }
        }
        if !integrity::verify(&key, self.cfg.channel, &m) {
            self.stats.bad_manifests += 1;
            self.ban(now, from);
            return;
        }
        self.manifests.insert(m);
    }

    /// The manifest covering `id` if receiver `slot` may lack it: its buffer map holds
    /// no LC of the range (holding one proves it has the manifest), and we did not send
    /// it within the last two rounds (so a lost manifest is sent again). Marks it sent.
    fn manifest_for(&mut self, now: Time, slot: usize, id: LcId) -> Option<ManifestMsg> {
        self.content_key?;
        let m = self.manifests.covering(id)?;
        let n = self.neighbours.get_mut(slot)?;
        let key = (m.layer, m.start);
        let resend_after = self.cfg.round * 2;
        if let Some(i) = n.manifests_sent.iter().position(|(k, _)| *k == key) {
            if now.since(n.manifests_sent[i].1) < resend_after {
                return None;
            }
            n.manifests_sent.remove(i);
        }
        let holds_any = n.map.as_ref().and_then(|map| map.layer(m.layer)).is_some_and(|w| {
            (0..m.hashes.len() as u32).any(|i| w.contains(layerp2p_codec::Seq(m.start.0.wrapping_add(i))))
        });
        if holds_any {
            return None;
        }
        if n.manifests_sent.len() >= MANIFESTS_SENT_MEMORY {
            n.manifests_sent.pop_front();
        }
        n.manifests_sent.push_back((key, now));
        Some(m.clone())
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_message(
        &mut self,
        now: Time,
        from: SocketAddr,
        msg: Message,
        token: Option<(u64, u64)>,
        received: u64,
        trusted_observer: bool,
    ) {
        match msg {
            Message::PeerList { peers } => {
                if Some(from) == self.cfg.tracker {
                    self.candidates = peers;
                    self.candidates.truncate(self.cfg.max_candidates);
                    self.head_tries = self.cfg.list_head_tries;
                    self.seek(now);
                }
            }
            Message::Connect { channel, peer, role } => {
                self.on_connect(now, from, channel, peer, role, token, received)
            }
            Message::Accept { peer, role } => self.on_accept(now, from, peer, role, token),
            Message::Decline { .. } => {
                if self.pending.contains_key(&from) && self.authentic_teardown(from, token) {
                    self.pending.remove(&from);
                    self.nat.attempt_done(&from);
                    self.refused.insert(from, now + REFUSED_FOR);
                    // A replacement for an adaptation's drop: ask the next candidate
                    // (below N_min, `seek` asks instead).
                    let have = self.neighbours.validated_len() + self.pending.len();
                    if self.replace_tries > 0 && (self.cfg.n_min..self.cfg.n_max).contains(&have) {
                        self.replace_tries -= 1;
                        self.connect_to_candidates(now, 1);
                    }
                    self.seek(now);
                }
            }
            Message::Disconnect { .. } => {
                if self.authentic_teardown(from, token) {
                    self.pending.remove(&from);
                    self.remove_neighbour(&from);
                }
            }
            Message::BufferMap(m) => self.on_buffer_map(now, from, m, token),
            Message::Request { ttl_ms, ids } => self.on_request(now, from, ttl_ms, ids),
            Message::Data(lc) => self.on_data(now, from, lc),
            Message::Manifest(m) => self.on_manifest(now, from, m),
            // Tokens are read per packet in `handle_input`; tracker-bound messages and
            // padding are not for us.
            Message::Token { .. } | Message::Padding { .. } => {}
            Message::Ping { sent_at } => {
                if let Some(slot) = self.validated_slot(&from) {
                    self.send_to_neighbour(slot, vec![Message::Pong { one_way: now.0.wrapping_sub(sent_at) }]);
                }
            }
            Message::Pong { one_way } => self.on_pong(now, from, one_way),
            Message::Join { .. } | Message::Refresh { .. } | Message::Leave { .. } => {}
            Message::Observed { addr } => {
                if trusted_observer {
                    self.nat.observed(from, Some(from) == self.cfg.tracker, addr);
                    self.report_nat();
                }
            }
            Message::Introduce { channel, addr } => self.on_introduce(now, from, channel, addr, token),
            Message::Punch => self.on_punch(now, from),
            Message::NatReport { .. } => {}
        }
    }

    // ---- periodic work ----

    /// Consumes every due LC at the window start of each layer.
    fn play(&mut self, now: Time) {
        let counting = self.cfg.role != Role::Seed;
        for li in 0..self.store.layers() {
            let layer = layerp2p_codec::LayerId::from_index(li);
            if !self.store.is_placed(layer) {
                continue;
            }
            loop {
                if let Some(front) = self.store.front_time(layer) {
                    if !self.playback.is_due(now, front) {
                        break;
                    }
                    let Some(lc) = self.store.pop_front(layer) else { break };
                    let (seq, time) = (lc.header.id.seq, lc.header.time);
                    if counting {
                        self.playback.record_played_lc(now, layer, seq, time, lc.payload.len());
                        if self.cfg.emit_playback {
                            self.event(Event::Played(lc));
                        }
                    }
                    continue;
                }
                let seq = self.store.window(layer).start();
                let next_held = self.store.next_held_after_front(layer);
                if !self.playback.missing_is_due(now, layer, seq, next_held.map(|(_, t)| t)) {
                    break;
                }
                // Every missing LC up to the next held one (if that is due) or up to the
                // known-due point goes at once: however far a neighbour's window start
                // puts that point, this is one step, not one per sequence.
                let due_below = self.playback.due_below(now, layer);
                let to = match next_held {
                    Some((s, t)) if self.playback.is_due(now, t) => s,
                    Some((s, _)) => s.min(due_below),
                    None => due_below,
                };
                let to = to.max(seq.next());
                let gap = to.0.saturating_sub(seq.0);
                self.store.skip_to(layer, to);
                if counting {
                    self.playback.record_missed_n(now, layer, u64::from(gap));
                    if self.cfg.emit_playback {
                        // At most a window's worth of events: a larger gap is a jump of
                        // the swarm's position, not LCs this peer ever expected.
                        for s in seq.0..seq.0 + gap.min(MAX_WINDOW_LCS) {
                            self.event(Event::Missed(LcId { layer, seq: layerp2p_codec::Seq(s) }));
                        }
                    }
                }
            }
        }
    }

    fn round(&mut self, now: Time) {
        // A round that comes far too late means this node itself was stalled (paused,
        // swapped out): its neighbours' silence over that gap is its own, not theirs.
        let gap = now.since(self.last_round);
        self.last_round = now;
        if gap > self.cfg.round * 2 {
            let absent = gap - self.cfg.round;
            for (_, n) in self.neighbours.iter_mut() {
                n.last_heard = (n.last_heard + absent).min(now);
            }
            for (sent, _) in self.pending.values_mut() {
                *sent = (*sent + absent).min(now);
            }
        }
        // Liveness: forget unanswered requests, handshakes never completed and silent
        // neighbours (remembered a while, in case they come back).
        let timeout = self.cfg.connect_timeout;
        let expired: Vec<SocketAddr> =
            self.pending.iter().filter(|(_, (t, _))| now.since(*t) > timeout).map(|(a, _)| *a).collect();
        for addr in expired {
            self.pending.remove(&addr);
            let wait = self.nat.attempt_over(&addr, REFUSED_FOR);
            self.refused.insert(addr, now + wait);
        }
        self.introduce_unanswered(now);
        self.refused.retain(|_, until| now < *until);
        let unfinished: Vec<SocketAddr> = self
            .neighbours
            .iter()
            .filter(|(_, n)| !n.validated && now.since(n.since) > timeout)
            .map(|(_, n)| n.addr)
            .collect();
        for addr in unfinished {
            self.remove_neighbour(&addr);
        }
        let silent: Vec<SocketAddr> = self
            .neighbours
            .iter()
            .filter(|(_, n)| now.since(n.last_heard) > self.cfg.neighbour_timeout)
            .map(|(_, n)| n.addr)
            .collect();
        for addr in silent {
            self.fall_silent(now, addr);
        }
        self.silent.retain(|_, s| now < s.until);

        self.follow_uplink(now);
        self.note_upload_use();
        // d(n,k) for the round just ended drives the supplier's weights.
        let eps = self.cfg.incentive.epsilon.bits_per_sec();
        for (slot, n) in self.neighbours.iter_mut() {
            n.rate.end_round(self.cfg.round, self.cfg.rate_window);
            self.supplier.set_weight(slot, n.rate.bits_per_sec() + eps);
        }
        self.seek(now);
        self.swarm_positions();

        if self.audits() {
            self.credit_spread(now);
            self.audit();
        } else if self.cfg.role != Role::Seed {
            receiver::schedule(
                self.cfg.policy.receiver(),
                self.threshold,
                self.cfg.incentive.holder_choice,
                &self.store,
                &self.neighbours,
                &mut self.rng,
                &mut self.requests,
            );
        }
        self.sign_and_prune_manifests();
        // A request older than two rounds has been dropped by its supplier.
        self.requested.prune(now - self.cfg.round * 2);
        // Handshakes get nothing until validated (their first buffer map follows then).
        let slots: Vec<usize> = self.neighbours.iter().filter(|(_, n)| n.validated).map(|(s, _)| s).collect();
        if self.uplink.is_some() {
            // Pings go ahead of the round's burst of maps and requests: they measure
            // the queue the uplink kept, not the one this burst is about to make.
            for &slot in &slots {
                self.send_to_neighbour(slot, vec![Message::Ping { sent_at: now.0 }]);
            }
        }
        for slot in slots {
            let map = self.buffer_map_for(now, slot);
            let Some(n) = self.neighbours.get(slot) else { continue };
            let rtt = n.rtt.unwrap_or(self.cfg.default_rtt);
            // Serving deadline T - tau (DESIGN.md §5), but never below a quarter round.
            let ttl = self.cfg.round.saturating_sub(rtt).max(self.cfg.round / 4);
            let ttl_ms = ttl.as_millis().min(u16::MAX as u128) as u16;
            let ids = self.requests.get_mut(slot).map(std::mem::take).unwrap_or_default();
            if let Some(n) = self.neighbours.get_mut(slot) {
                n.end_request_round(ids.len() as u32);
            }
            if self.cfg.record_latency {
                for &id in &ids {
                    self.requested.requested(id, now);
                }
            }
            let mut messages = Vec::with_capacity(2 + ids.len().div_ceil(MAX_REQUEST_IDS));
            messages.push(map);
            messages.extend(self.token_for(slot));
            if ids.len() <= MAX_REQUEST_IDS {
                // The common case: the list (allocated at its exact size by the
                // scheduler) becomes the message, uncopied.
                if !ids.is_empty() {
                    messages.push(Message::Request { ttl_ms, ids });
                }
            } else {
                for chunk in ids.chunks(MAX_REQUEST_IDS) {
                    messages.push(Message::Request { ttl_ms, ids: chunk.to_vec() });
                }
            }
            self.send_to_neighbour(slot, messages);
        }
    }

    /// Whether this node is a seed that audits its neighbours (`Incentive::seed_audit`;
    /// only where there is tit-for-tat to feed).
    fn audits(&self) -> bool {
        self.cfg.role == Role::Seed
            && self.cfg.incentive.seed_audit
            && self.cfg.policy.supplier() == SupplierPolicy::TitForTat
    }

    /// A seed downloads nothing, so its d(n,k) would be eps for every neighbour and its
    /// upload would go to free-riders as much as to contributors. Each round it asks
    /// every neighbour for one LC that neighbour holds (the newest of a random layer):
    /// what comes back is d(seed,k), which its tit-for-tat weights and adaptation then
    /// use like any peer's. A contributor serves it promptly (the seed is its best
    /// supplier, so it weighs most); a free-rider never does.
    fn audit(&mut self) {
        self.requests.iter_mut().for_each(Vec::clear);
        self.requests.resize_with(self.neighbours.capacity(), Vec::new);
        let layers = self.cfg.plan.layers();
        for (slot, n) in self.neighbours.iter() {
            let Some(map) = &n.map else { continue };
            let layer = layerp2p_codec::LayerId::from_index(self.rng.random_range(0..layers));
            let Some(w) = map.layer(layer).filter(|w| !w.is_empty()) else { continue };
            let seq = layerp2p_codec::Seq(w.head().0 - 1);
            self.requests[slot].push(LcId { layer, seq });
        }
    }

    /// Credits each neighbour a pushed LC went to with the copies other neighbours
    /// got since, the seed's own sends aside, as if they had been sent to the seed
    /// (`spread`): d(seed,k) then follows what k forwards, not only the audit.
    fn credit_spread(&mut self, now: Time) {
        if !self.cfg.incentive.seed_spread_credit {
            return;
        }
        // Long enough for a pushed LC to spread, short of its being played.
        let delay = (self.cfg.round * 3).min(self.cfg.lag / 2);
        let mut due = std::mem::take(&mut self.spread_due);
        self.spread.take_due(now - delay, &mut due);
        for d in &due {
            let Some(lc) = self.store.get(d.id) else { continue };
            let cost = data_cost(lc.payload.len());
            let holds =
                |n: &Neighbour| n.validated && n.addr != d.to && n.map.as_ref().is_some_and(|m| m.contains(d.id));
            let copies = self.neighbours.iter().filter(|(_, n)| holds(n)).count().saturating_sub(d.served as usize);
            if copies > 0
                && let Some((_, n)) = self.neighbours.by_addr_mut(&d.to)
            {
                n.rate.add_bytes(copies * cost);
            }
        }
        self.spread_due = due;
    }

    /// Whether the first fresh LC can be pushed now. A signing seed waits until a
    /// manifest covers it: an LC sent ahead of its manifest is dropped unverified, and
    /// the upload is lost. Fresh LCs are in ingest order and every round signs all
    /// ingested so far, so the others wait with it.
    fn push_ready(&self) -> bool {
        self.fresh.front().is_some_and(|&id| self.builder.is_none() || self.manifests.covering(id).is_some())
    }

    /// A neighbour to push a fresh LC to: at random with weight d(seed,k) (what it
    /// returned to the audit), among those that do not hold it; `None` if nobody gave
    /// anything back. Pushing every LC once, before serving requests, puts each into
    /// the swarm at a contributor at once; otherwise the seed's output follows its
    /// receivers' queue heads, which under LayerP2P are mostly base-layer LCs (low
    /// contributors ask those first), and the upper layers start with fewer copies.
    fn push_target(&mut self, id: LcId) -> Option<usize> {
        let holds = |n: &Neighbour| n.map.as_ref().is_some_and(|m| m.contains(id));
        let total: u64 =
            self.neighbours.iter().filter(|(_, n)| n.validated && !holds(n)).map(|(_, n)| n.rate.bits_per_sec()).sum();
        if total == 0 {
            return None;
        }
        let mut at = self.rng.random_range(0..total);
        for (slot, n) in self.neighbours.iter().filter(|(_, n)| n.validated && !holds(n)) {
            let w = n.rate.bits_per_sec();
            if at < w {
                return Some(slot);
            }
            at -= w;
        }
        None
    }

    /// Sends LC `id` to neighbour `slot` within the upload budget (its manifest first
    /// when the receiver may lack it); `None` if either is gone.
    fn send_lc(&mut self, now: Time, slot: usize, id: LcId) -> Option<Transmit> {
        let lc = self.store.get(id)?;
        let manifest = self.manifest_for(now, slot, id);
        let n = self.neighbours.get_mut(slot)?;
        let cost = data_cost(lc.payload.len());
        self.bucket.take(cost);
        n.bytes_up += cost as u64;
        if self.cfg.incentive.upper_layers_window.is_some_and(|w| n.uploaded_within(now, w)) {
            self.bytes_up_to_uploaders += cost as u64;
        }
        self.stats.bytes_up += cost as u64;
        self.stats.lcs_up += 1;
        let data = Transmit { dst: n.addr, packet: Packet { messages: vec![Message::Data(lc)] } };
        if let Some(m) = manifest {
            // The manifest goes first, in its own datagram, so the LC is checkable
            // on arrival; data datagrams stay one LC each.
            let dst = data.dst;
            self.outbox.push_front(data);
            return Some(Transmit { dst, packet: Packet { messages: vec![Message::Manifest(m)] } });
        }
        Some(data)
    }

    /// The seed signs what it ingested before advertising it, so everything offered is
    /// covered; everyone forgets manifests of LCs already played.
    fn sign_and_prune_manifests(&mut self) {
        if let Some(builder) = &mut self.builder {
            for m in builder.flush() {
                self.manifests.insert(m);
            }
        }
        for li in 0..self.store.layers() {
            let layer = layerp2p_codec::LayerId::from_index(li);
            if self.store.is_placed(layer) {
                self.manifests.prune(layer, self.store.window(layer).start());
            }
        }
    }

    fn refresh(&mut self, now: Time) {
        if let Some(tracker) = self.cfg.tracker {
            // Every refresh brings a fresh list: the replacement an adaptation connects
            // to comes from it, and a list kept from the join holds only the peers that
            // came before us (and, hours later, mostly departed ones). With stale lists
            // the early joiners of a flash crowd replace neighbours only among
            // themselves, and a late joiner finds room only at peers nobody keeps. A
            // seed does not replace neighbours, so it asks only when short of them.
            let want_peers = self.cfg.role != Role::Seed || self.neighbours.validated_len() < self.cfg.n_min;
            if want_peers {
                self.last_tracker_ask = Some(now);
            }
            let msg = self.to_tracker(Message::Refresh { channel: self.cfg.channel, peer: self.id, want_peers });
            self.send(tracker, if want_peers { Self::padded(msg) } else { msg });
        }
    }
}

impl Peer {
    /// A neighbour answered the `Ping` sent at the start of the round: `one_way` (its
    /// clock offset included) less the least it gave is our uplink's queue then.
    fn on_pong(&mut self, now: Time, from: SocketAddr, one_way: u64) {
        let Some(slot) = self.validated_slot(&from) else { return };
        let Some((up, _)) = &mut self.uplink else { return };
        if up.on_one_way(now, one_way, slot) {
            let pacing = Kbps((up.pacing_bps() / 1000.0) as u32);
            self.pace(now, pacing);
        }
    }

    /// The slot of `addr` if it is a neighbour that proved its address.
    fn validated_slot(&self, addr: &SocketAddr) -> Option<usize> {
        self.neighbours.slot_of(addr).filter(|&s| self.neighbours.get(s).is_some_and(|n| n.validated))
    }

    /// With a measured upload: the round's rate goes to the token bucket, and l_n
    /// follows it (DESIGN.md §6 with U(n) measured).
    fn follow_uplink(&mut self, now: Time) {
        let Some((up, sent_before)) = &mut self.uplink else { return };
        let sent_bps = self.stats.bytes_up.saturating_sub(*sent_before) as f64 * 8.0 / self.cfg.round.as_secs_f64();
        *sent_before = self.stats.bytes_up;
        let rate = Kbps((up.update(now, sent_bps) / 1000.0) as u32);
        let pacing = Kbps((up.pacing_bps() / 1000.0) as u32);
        self.earn_layers(rate);
        // The bucket sends near what demand took, so a surge cannot flood the uplink.
        self.pace(now, pacing);
    }

    /// Uploads at `rate` from `now` on, and plays the layers it earns.
    fn apply_upload(&mut self, now: Time, rate: Kbps) {
        self.pace(now, rate);
        self.earn_layers(rate);
    }

    /// The token bucket sends at `rate` from `now` on.
    fn pace(&mut self, now: Time, rate: Kbps) {
        self.bucket.set_rate(now, rate, self.cfg.burst, 2 * max_data_cost() as u64);
    }

    /// The playback threshold l_n for an upload of `rate` (and our downlink).
    fn earn_layers(&mut self, rate: Kbps) {
        let expected = self.cfg.download.map_or(rate, |d| d.min(rate));
        self.threshold = self.cfg.plan.threshold_layer(expected);
    }
}

// ---- NAT traversal (docs/PROTOCOL.md, "NAT traversal") ----
impl Peer {
    /// Whether `Observed` in this packet may be believed: from our tracker, or in the
    /// Accept of a seed or relay that echoes the token of our Connect.
    fn trusted_observer(&self, from: SocketAddr, packet: &Packet, token: Option<(u64, u64)>) -> bool {
        if Some(from) == self.cfg.tracker {
            return true;
        }
        let public = packet.messages.iter().any(|m| matches!(m, Message::Accept { role, .. } if *role != Role::Peer));
        let ours = self.pending.get(&from).is_some_and(|&(_, nonce)| token.is_some_and(|(_, echo)| echo == nonce));
        public && ours
    }

    fn report_nat(&mut self) {
        if let (Some(tracker), Some(nat)) = (self.cfg.tracker, self.nat.report()) {
            let report = self.to_tracker(Message::NatReport { nat });
            self.send(tracker, report);
        }
    }

    /// Connects unanswered for `PUNCH_AFTER`: the other side may be behind a NAT
    /// that dropped them. Our Connect opened our own binding towards it; the tracker
    /// now asks it to punch one towards us, and its punch makes us send again.
    fn introduce_unanswered(&mut self, now: Time) {
        let Some(tracker) = self.cfg.tracker.filter(|_| self.cfg.nat_traversal) else { return };
        let mut waiting: Vec<SocketAddr> =
            self.pending.iter().filter(|(_, (at, _))| now.since(*at) >= nat::PUNCH_AFTER).map(|(a, _)| *a).collect();
        // `pending` iterates in a per-process random order; the introductions go out
        // in address order so a seeded run is the same run every time.
        waiting.sort_unstable();
        for addr in waiting {
            if self.nat.should_introduce(addr) {
                let introduce = self.to_tracker(Message::Introduce { channel: self.cfg.channel, addr });
                self.send(tracker, introduce);
            }
        }
    }

    /// The tracker says `asker` wants to reach us: a punch opens our NAT towards it.
    /// Small (smaller than the introduction), once per asker per period, and only with
    /// room for a neighbour. It must echo the token the tracker gave us: anyone can
    /// forge the tracker's address.
    fn on_introduce(
        &mut self,
        now: Time,
        from: SocketAddr,
        channel: crate::wire::ChannelId,
        asker: SocketAddr,
        token: Option<(u64, u64)>,
    ) {
        if Some(from) != self.cfg.tracker
            || self.tracker_token == 0
            || token.is_none_or(|(_, echo)| echo != self.tracker_token)
            || !self.cfg.nat_traversal
            || channel != self.cfg.channel
            || self.left
            || self.neighbours.validated_len() >= self.cfg.n_max
            || self.neighbours.contains(&asker)
            || self.is_shunned(now, &asker)
            || !self.nat.may_punch(now, asker)
        {
            return;
        }
        self.send(asker, vec![Message::Punch]);
    }

    /// A punch from a peer we asked to be introduced to: its NAT now lets our Connect
    /// through, so it goes again at once (same token).
    fn on_punch(&mut self, now: Time, from: SocketAddr) {
        let Some(&(_, nonce)) = self.pending.get(&from) else { return };
        if !self.nat.punched_by(from) {
            return;
        }
        self.pending.insert(from, (now, nonce));
        let packet = self.connect_packet(nonce);
        self.send(from, packet);
    }
}

/// The median of `v` (upper median for even lengths), reordering it.
fn median(v: &mut [i64]) -> Option<i64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    Some(*v.select_nth_unstable(mid).1)
}

/// Advances a periodic timer past `now`, skipping missed periods.
fn advance(timer: &mut Time, now: Time, period: Duration) {
    *timer = *timer + period;
    if *timer <= now {
        *timer = now + period;
    }
}

impl Node for Peer {
    fn handle_input(&mut self, now: Time, from: SocketAddr, packet: Packet) {
        if self.left {
            return;
        }
        let received = packet.wire_len() as u64;
        let token = packet.messages.iter().find_map(|m| match m {
            Message::Token { nonce, echo } => Some((*nonce, *echo)),
            _ => None,
        });
        if Some(from) == self.cfg.tracker {
            self.on_tracker_token(token);
        } else {
            self.readmit(now, from, token);
        }
        let mut newly_validated = false;
        if let Some((_, n)) = self.neighbours.by_addr_mut(&from) {
            if !n.validated && token.is_some_and(|(_, echo)| echo == n.token_out) {
                n.validated = true;
                n.last_heard = now;
                newly_validated = true;
            }
            if !n.validated {
                n.unvalidated_in += received;
                n.last_in = received;
            }
        }
        if newly_validated {
            if self.neighbours.validated_len() > self.cfg.n_max {
                // Validated while the others filled every slot.
                self.disconnect(from, Reason::Full);
                self.remove_neighbour(&from);
                return;
            }
            // Our buffer map at once, ahead of any LC: a newcomer places its window by
            // its neighbours' maps, not by the first (pushed, newest) LC it gets.
            if let Some(slot) = self.neighbours.slot_of(&from) {
                let mut messages: Vec<Message> = self.token_for(slot).into_iter().collect();
                messages.push(self.buffer_map_for(now, slot));
                self.send_to_neighbour(slot, messages);
            }
        }
        let trusted_observer = self.trusted_observer(from, &packet, token);
        for msg in packet.messages {
            self.handle_message(now, from, msg, token, received, trusted_observer);
        }
    }

    fn handle_timeout(&mut self, now: Time) {
        if self.left {
            return;
        }
        if now >= self.next_play {
            self.play(now);
            advance(&mut self.next_play, now, self.cfg.play_tick);
        }
        if now >= self.next_round {
            self.round(now);
            advance(&mut self.next_round, now, self.cfg.round);
        }
        if now >= self.next_adapt {
            self.adapt(now);
            advance(&mut self.next_adapt, now, self.cfg.adaptation);
        }
        if now >= self.next_refresh {
            self.refresh(now);
            // Behind a NAT the tracker's binding must not idle out: introductions
            // reach us over it.
            let period = match self.nat.behind_nat() {
                true => self.cfg.tracker_refresh.min(nat::KEEPALIVE),
                false => self.cfg.tracker_refresh,
            };
            advance(&mut self.next_refresh, now, period);
        }
    }

    fn poll_transmit(&mut self, now: Time) -> Option<Transmit> {
        if let Some(t) = self.outbox.pop_front() {
            return Some(t);
        }
        if self.left || !self.bucket.has(now, max_data_cost()) {
            return None;
        }
        while self.push_ready() {
            let Some(id) = self.fresh.pop_front() else { break };
            if let Some(slot) = self.push_target(id)
                && let Some(t) = self.send_lc(now, slot, id)
            {
                self.stats.lcs_pushed += 1;
                if self.cfg.incentive.seed_spread_credit
                    && let Some(n) = self.neighbours.get(slot)
                {
                    self.spread.pushed(id, n.addr, now);
                }
                return Some(t);
            }
        }
        if !self.supplier.has_work() {
            return None;
        }
        while let Some((slot, id, arrived)) = self.supplier.next(now, &mut self.rng) {
            self.stats.requests_expired = self.supplier.expired;
            self.stats.requests_overflowed = self.supplier.overflowed;
            if let Some(t) = self.send_lc(now, slot, id) {
                if self.cfg.record_latency {
                    self.stats.latency.request_to_send.record(now.since(arrived));
                }
                self.spread.served(id);
                return Some(t);
            }
        }
        self.stats.requests_expired = self.supplier.expired;
        None
    }

    fn close(&mut self, now: Time) {
        self.leave(now);
    }

    fn poll_timeout(&self) -> Option<Time> {
        if self.left {
            return None;
        }
        let mut t = self.next_play.min(self.next_round).min(self.next_adapt).min(self.next_refresh);
        if (self.supplier.has_work() || self.push_ready())
            && let Some(ready) = self.bucket.ready_at(max_data_cost())
        {
            t = t.min(ready);
        }
        Some(t)
    }
}
