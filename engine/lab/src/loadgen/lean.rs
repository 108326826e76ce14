//! The lean synthetic viewer (`Viewer::Lean`, decision 0020): a star viewer that
//! speaks the real protocol to the target — Join at the tracker with its token echoed,
//! Connect with a token the target's Accept must echo, the target's token echoed in
//! every packet after, a buffer map and a request each round — and accounts its
//! playback, at a fraction of a full `Peer`'s cost per LC.
//!
//! What it keeps per viewer: its socket, its tokens, one `LayerWindow` bitmap per layer
//! (what it holds from its playback point on), a request cursor per layer and its
//! counters. What it leaves out: neighbours other than the target, serving requests
//! (it uploads nothing: it measures the target, not the swarm), content checks, the
//! receiver scheduler's holder choice (the target is the only holder).
//!
//! Per LC it reads the 21-byte header in place (`wire::frames` + `wire::data_header`),
//! sets one bit, notes its size and bumps counters: no allocation, no copy. Datagrams arrive by
//! `recvmmsg`, a target's GSO burst as one buffer (UDP_GRO). Timers are per shard: one
//! FIFO of viewers, each visited once a round at its own phase: its buffer map and
//! request, handshake retries, tracker refresh.
//!
//! Playback: the target's buffer map starts at its playback point (the built-in seed
//! plays with the run's lag), so every sequence below that start is past its deadline.
//! When the start moves, each sequence passed is played if held and missed if not; an
//! LC arriving below the start is late. Each held LC's payload size waits with it
//! (two bytes) until its deadline, when it counts as played.

use super::live::Live;
use super::swarm::{ShardPlan, epoll_add, epoll_create, pin_to_core};
use bytes::{Bytes, BytesMut};
use layerp2p_codec::{BufferMap, Insert, LayerId, LayerWindow, LcHeader, LcId, MediaTime, Seq};
use layerp2p_proto::PeerStats;
use layerp2p_proto::metrics::Latency;
use layerp2p_proto::peer::HANDSHAKE_SIZE;
use layerp2p_proto::peer::playback::LayerStats;
use layerp2p_proto::swarm::PeerSpec;
use layerp2p_proto::swarm::report::PeerOutcome;
use layerp2p_proto::wire::codec::{LC_HEADER_LEN, MESSAGE_HEADER_LEN, code};
use layerp2p_proto::wire::{self, BufferMapMsg, MAX_REQUEST_IDS, Message, Packet, PeerId, Role};
use layerp2p_proto::{PeerConfig, Time};
use layerp2p_runtime::driver::{Clock, IoStats};
use layerp2p_udp as udp;
use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Longest the loop sleeps in `epoll_wait` when no viewer's visit is due sooner.
const TICK_MS: i32 = 5;
/// Shortest loop cycle: the loop sleeps out the rest, so each `epoll_wait` finds many
/// sockets ready and each `recvmmsg` many datagrams (a target answers a request with
/// a burst) instead of spinning on one datagram at a time. Adds up to this much to
/// the measured request->LC latency.
const CYCLE: Duration = Duration::from_millis(2);
/// Readiness events taken per `epoll_wait`.
const MAX_EVENTS: usize = 1024;
/// `recvmmsg` slots; each takes a datagram or a GRO burst of up to 64.
const RECV_SLOTS: usize = 32;
/// A slot takes the largest UDP payload, so a GRO burst is never cut.
const RECV_SLOT_LEN: usize = 65_535;
/// Receive calls per ready socket per wakeup, so one busy viewer cannot starve the rest.
const RECVS_PER_WAKE: usize = 4;
/// How often the shard publishes its gauges.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Join sent; waiting for the tracker's answer.
    Joining,
    /// Connect sent to the target; waiting for its Accept.
    Connecting,
    /// The target's neighbour: maps and requests flow.
    Joined,
}

struct Viewer {
    socket: UdpSocket,
    spec: PeerSpec,
    id: PeerId,
    stage: Stage,
    /// Our token for the target (in the Connect) and the target's token for us.
    nonce: u64,
    their: u64,
    tracker_token: u64,
    /// When the last Join or Connect went out.
    sent_at: Time,
    last_refresh: Time,
    /// When the target's last buffer map arrived, and its `sent_at` (echoed).
    last_map: Time,
    map_sent_at: u64,
    /// What this viewer holds from its playback point on: one window per layer,
    /// placed at the target's first map.
    held: Option<BufferMap>,
    /// Per layer, the payload bytes of each held LC from the window start on (0: not
    /// held), counted when its deadline passes.
    sizes: Vec<VecDeque<u16>>,
    /// The target's latest map: what the next request asks of it.
    target_map: Option<BufferMap>,
    newest: MediaTime,
    /// Request cursor: per layer, one past the highest sequence the last request asked.
    requested_to: Vec<Seq>,
    requested_at: Time,
    count_from: Time,
    /// When playback was last accounted (the target's last map): counted seconds end here.
    accounted_to: Time,
    stats: PeerStats,
}

impl Viewer {
    fn counting(&self, now: Time) -> bool {
        now >= self.count_from
    }
}

/// A 64-bit mix (splitmix64): identities and tokens from the run's seed.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Shard {
    plan: ShardPlan,
    tracker: SocketAddr,
    clock: Clock,
    live: Arc<Live>,
    viewers: Vec<Viewer>,
    /// Per-shard timer: every viewer once, in the order of its next visit.
    visits: VecDeque<(Time, usize)>,
    io: IoStats,
    /// Request->LC latency of every viewer of the shard (one histogram, not one each).
    latency: Latency,
    epoll: OwnedFd,
    out: BytesMut,
    packet: Packet,
    ids: Vec<LcId>,
    rng: u64,
    /// LCs and bytes since the last publish (one atomic add per wakeup, not per LC).
    lcs: u64,
    bytes: u64,
}

impl Shard {
    fn layers(&self) -> usize {
        self.plan.peer.plan.layers()
    }

    fn cfg(&self) -> &PeerConfig {
        &self.plan.peer
    }

    fn token(&mut self) -> u64 {
        self.rng = mix(self.rng);
        self.rng | 1
    }

    /// Encodes `self.packet` and sends it from viewer `i` to `to`.
    fn send(&mut self, i: usize, to: SocketAddr) {
        self.out.clear();
        if wire::encode(&self.packet, &mut self.out).is_err() {
            return;
        }
        self.io.send_syscalls += 1;
        match self.viewers[i].socket.send_to(&self.out, to) {
            Ok(n) => {
                self.io.datagrams_out += 1;
                self.io.bytes_out += n as u64;
            }
            Err(_) => self.io.send_dropped += 1,
        }
    }

    /// `messages`, padded to a handshake's size (the reply may then be 3x larger).
    fn send_padded(&mut self, i: usize, to: SocketAddr, messages: &[Message]) {
        self.packet.messages.clear();
        self.packet.messages.extend_from_slice(messages);
        let len = self.packet.wire_len();
        if len + MESSAGE_HEADER_LEN < HANDSHAKE_SIZE {
            let pad = HANDSHAKE_SIZE - len - MESSAGE_HEADER_LEN;
            self.packet.messages.push(Message::Padding { len: pad as u16 });
        }
        self.send(i, to);
    }

    fn send_join(&mut self, i: usize, now: Time) {
        let v = &mut self.viewers[i];
        v.sent_at = now;
        let join = Message::Join { channel: self.plan.peer.channel, peer: v.id, role: Role::Peer };
        let tracker = self.tracker;
        self.send_padded(i, tracker, &[join]);
    }

    fn send_refresh(&mut self, i: usize, now: Time) {
        let v = &mut self.viewers[i];
        v.last_refresh = now;
        let refresh = Message::Refresh { channel: self.plan.peer.channel, peer: v.id, want_peers: false };
        let token = Message::Token { nonce: 0, echo: v.tracker_token };
        self.packet.messages.clear();
        self.packet.messages.extend([refresh, token]);
        let tracker = self.tracker;
        self.send(i, tracker);
    }

    fn send_connect(&mut self, i: usize, now: Time) {
        let nonce = self.token();
        let v = &mut self.viewers[i];
        v.stage = Stage::Connecting;
        v.nonce = nonce;
        v.sent_at = now;
        let connect = Message::Connect { channel: self.plan.peer.channel, peer: v.id, role: Role::Peer };
        let target = self.plan.target;
        self.send_padded(i, target, &[connect, Message::Token { nonce, echo: 0 }]);
    }

    /// Our token echo and buffer map to the target, and with `request` this round's
    /// request: every LC the target's latest map holds that we lack, base layer
    /// first, most urgent first within a layer.
    fn send_map(&mut self, i: usize, now: Time, request: bool) {
        let layers = self.layers();
        let round = self.cfg().round;
        let ttl = round.saturating_sub(self.cfg().default_rtt).max(round / 4);
        let mut ids = std::mem::take(&mut self.ids);
        ids.clear();
        let v = &mut self.viewers[i];
        if let (true, Some(theirs), Some(ours)) = (request, &v.target_map, &v.held) {
            for (li, (own, target)) in ours.layers().iter().zip(theirs.layers()).enumerate() {
                let room = MAX_REQUEST_IDS - ids.len();
                let before = ids.len();
                let layer = LayerId::from_index(li);
                ids.extend(own.wanted_from(target).take(room).map(|seq| LcId { layer, seq }));
                if let Some(last) = ids[before..].last() {
                    v.requested_to[li] = Seq(last.seq.0.saturating_add(1));
                }
            }
            v.requested_at = now;
        }
        let echo_delay = now.since(v.last_map).as_micros().min(u32::MAX as u128) as u32;
        // Our windows go into the message and come back after encoding (not cloned).
        let placed = v.held.is_some();
        let map = v.held.take().unwrap_or_else(|| BufferMap::new(layers, Seq(0)));
        let bm = BufferMapMsg { head_time: v.newest, sent_at: now.0, echo: v.map_sent_at, echo_delay, map };
        let token = Message::Token { nonce: v.nonce, echo: v.their };
        self.packet.messages.clear();
        self.packet.messages.extend([token, Message::BufferMap(bm)]);
        let asked = !ids.is_empty();
        if asked {
            let ttl_ms = ttl.as_millis().min(u16::MAX as u128) as u16;
            self.packet.messages.push(Message::Request { ttl_ms, ids });
        } else {
            self.ids = ids;
        }
        let target = self.plan.target;
        self.send(i, target);
        // Take the id list back for the next request, and the windows back home.
        if asked && let Some(Message::Request { ids, .. }) = self.packet.messages.pop() {
            self.ids = ids;
        }
        if placed && let Some(Message::BufferMap(bm)) = self.packet.messages.pop() {
            self.viewers[i].held = Some(bm.map);
        }
    }

    /// One LC for viewer `i`: a bit in its window and its counters.
    fn on_lc(&mut self, i: usize, now: Time, header: LcHeader, payload: usize) {
        let layers = self.layers();
        let v = &mut self.viewers[i];
        v.stats.lcs_down += 1;
        v.stats.bytes_down += (wire::PACKET_HEADER_LEN + LC_HEADER_LEN + payload) as u64;
        let li = header.id.layer.index();
        let Some(held) = v.held.as_mut().filter(|_| li < layers) else {
            v.stats.rejected += 1;
            return;
        };
        let Some(window) = held.layer_mut(header.id.layer) else { return };
        match window.insert(header.id.seq) {
            Ok(Insert::New) => {
                v.newest = v.newest.max(header.time);
                if header.id.seq < v.requested_to[li] {
                    self.latency.record(now.since(v.requested_at));
                }
                // In the window (insert checked): its size waits for its deadline.
                let at = (header.id.seq.0 - window.start().0) as usize;
                let sizes = &mut v.sizes[li];
                if at >= sizes.len() {
                    sizes.resize(at + 1, 0);
                }
                sizes[at] = payload.min(u16::MAX as usize) as u16;
            }
            Ok(Insert::Duplicate) => v.stats.duplicates += 1,
            Ok(Insert::Stale) => {
                if now >= v.count_from {
                    v.stats.layers[li].late += 1;
                }
            }
            Err(_) => v.stats.rejected += 1,
        }
    }

    /// The target's buffer map: its window starts are the playback deadlines (every
    /// sequence below is due), and what it holds is what we ask for.
    fn on_target_map(&mut self, i: usize, now: Time, m: BufferMapMsg) {
        let layers = self.layers();
        if m.map.layers().len() != layers {
            return;
        }
        let v = &mut self.viewers[i];
        v.last_map = now;
        v.map_sent_at = m.sent_at;
        v.accounted_to = now;
        let counting = v.counting(now);
        let first = v.held.is_none();
        match &mut v.held {
            None => {
                v.held =
                    Some(BufferMap::from_layers(m.map.layers().iter().map(|w| LayerWindow::new(w.start())).collect()));
            }
            Some(held) => {
                for (li, target) in m.map.layers().iter().enumerate() {
                    let Some(own) = held.layer_mut(LayerId::from_index(li)) else { continue };
                    let (from, to) = (own.start().0, target.start().0);
                    if to <= from {
                        continue;
                    }
                    own.advance(target.start());
                    let sizes = &mut v.sizes[li];
                    let due = sizes.len().min((to - from) as usize);
                    let (mut played, mut bytes) = (0u64, 0u64);
                    for size in sizes.drain(..due) {
                        played += u64::from(size > 0);
                        bytes += u64::from(size);
                    }
                    if counting {
                        let s: &mut LayerStats = &mut v.stats.layers[li];
                        s.played += played;
                        s.played_bytes += bytes;
                        s.missed += u64::from(to - from) - played;
                    }
                }
            }
        }
        v.target_map = Some(m.map);
        // The first request (the whole window) goes at once; later ones at the visits.
        if first {
            self.send_map(i, now, true);
        }
    }

    /// A datagram other than pure LC data: decoded whole (rare: handshakes and one
    /// buffer map per round).
    fn on_control(&mut self, i: usize, now: Time, from: SocketAddr, data: &[u8]) {
        let Ok(packet) = wire::decode(Bytes::copy_from_slice(data)) else {
            self.io.malformed += 1;
            return;
        };
        let token = packet.messages.iter().find_map(|m| match m {
            Message::Token { nonce, echo } => Some((*nonce, *echo)),
            _ => None,
        });
        if from == self.tracker {
            let v = &mut self.viewers[i];
            if let Some((nonce, _)) = token.filter(|&(n, _)| n != 0 && n != v.tracker_token) {
                v.tracker_token = nonce;
                self.send_refresh(i, now);
            }
            let listed = packet.messages.iter().any(|m| matches!(m, Message::PeerList { .. }));
            if listed && self.viewers[i].stage == Stage::Joining {
                // A star: whatever the list holds, the target is the one to ask.
                self.send_connect(i, now);
            }
            return;
        }
        if from != self.plan.target {
            self.viewers[i].stats.rejected += 1;
            return;
        }
        let ours = token.is_some_and(|(_, echo)| echo == self.viewers[i].nonce);
        for m in packet.messages {
            match m {
                Message::Accept { .. } if ours && self.viewers[i].stage == Stage::Connecting => {
                    let v = &mut self.viewers[i];
                    v.their = token.map_or(0, |(nonce, _)| nonce);
                    v.stage = Stage::Joined;
                    v.last_map = now;
                    v.stats.neighbours_added += 1;
                    // The echo of its token proves our address; our map goes with it.
                    self.send_map(i, now, false);
                }
                Message::Decline { .. } | Message::Disconnect { .. } if ours => {
                    let v = &mut self.viewers[i];
                    if v.stage == Stage::Joined {
                        v.stats.neighbours_removed += 1;
                    }
                    // Asked again at the next visit after the connect timeout.
                    v.stage = Stage::Connecting;
                    v.sent_at = now;
                }
                Message::Decline { .. } | Message::Disconnect { .. } => {
                    self.viewers[i].stats.unauthenticated_control += 1;
                }
                Message::BufferMap(map) if self.viewers[i].stage == Stage::Joined => self.on_target_map(i, now, map),
                Message::Data(lc) => self.on_lc(i, now, lc.header, lc.payload.len()),
                _ => {}
            }
        }
    }

    /// One datagram for viewer `i`: LC-only datagrams from the target take the
    /// borrowed path; anything else is decoded.
    fn on_datagram(&mut self, i: usize, now: Time, from: SocketAddr, data: &[u8]) {
        self.io.datagrams_in += 1;
        self.io.bytes_in += data.len() as u64;
        if from != self.plan.target {
            self.on_control(i, now, from, data);
            return;
        }
        let Ok(frames) = wire::frames(data) else {
            self.io.malformed += 1;
            return;
        };
        // Every frame a Data message? (Checked first: a packet is handled whole.)
        let (mut lcs, mut control) = (0, false);
        for f in frames {
            match f {
                Ok(f) if f.code == code::DATA => lcs += 1,
                Ok(_) => control = true,
                Err(_) => {
                    self.io.malformed += 1;
                    return;
                }
            }
        }
        if control {
            self.on_control(i, now, from, data);
        } else {
            for f in wire::frames(data).into_iter().flatten().flatten() {
                match wire::data_header(f.body) {
                    Ok((header, payload)) => self.on_lc(i, now, header, payload),
                    Err(_) => self.io.malformed += 1,
                }
            }
        }
        self.count(lcs, data.len());
    }

    fn count(&mut self, lcs: u64, bytes: usize) {
        if lcs > 0 {
            self.lcs += lcs;
            self.bytes += bytes as u64;
        }
    }

    /// Publishes what the viewers received since the last call (all from the target).
    fn publish(&mut self) {
        if self.lcs == 0 {
            return;
        }
        for (c, n) in [
            (&self.live.lcs_in, self.lcs),
            (&self.live.bytes_in, self.bytes),
            (&self.live.target_lcs, self.lcs),
            (&self.live.target_bytes, self.bytes),
        ] {
            Live::add(c, n);
        }
        self.lcs = 0;
        self.bytes = 0;
    }

    /// Reads what viewer `i`'s socket holds (`now`: the cycle's time).
    fn drain(&mut self, i: usize, now: Time, rb: &mut udp::RecvBatch) {
        let fd = self.viewers[i].socket.as_raw_fd();
        for _ in 0..RECVS_PER_WAKE {
            let n = match rb.recv(fd) {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                return;
            }
            for d in rb.datagrams() {
                match d {
                    Some((from, data)) => self.on_datagram(i, now, udp::canonical(from), data),
                    None => self.io.malformed += 1,
                }
            }
            if n < RECV_SLOTS {
                return;
            }
        }
    }

    /// Starts the next viewer: binds its socket, registers it with epoll, sends its Join.
    fn join(&mut self, global: usize, spec: PeerSpec) -> io::Result<()> {
        let socket = udp::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        udp::enable_gro(socket.as_raw_fd());
        let i = self.viewers.len();
        epoll_add(&self.epoll, &socket, i)?;
        let now = self.clock.now();
        let layers = self.layers();
        self.viewers.push(Viewer {
            socket,
            spec,
            id: PeerId(mix(self.plan.seed ^ mix(global as u64))),
            stage: Stage::Joining,
            nonce: 0,
            their: 0,
            tracker_token: 0,
            sent_at: now,
            last_refresh: now,
            last_map: now,
            map_sent_at: 0,
            held: None,
            target_map: None,
            sizes: vec![VecDeque::new(); layers],
            newest: MediaTime(0),
            requested_to: vec![Seq(0); layers],
            requested_at: now,
            count_from: now + self.cfg().startup,
            accounted_to: now,
            stats: PeerStats { layers: vec![LayerStats::default(); layers], ..PeerStats::default() },
        });
        self.send_join(i, now);
        // Joins come in time order and every visit is a round apart: the FIFO stays sorted.
        let round = self.cfg().round;
        self.visits.push_back((now + round, i));
        Live::add(&self.live.peers_up, 1);
        Ok(())
    }

    /// Viewer `i`'s visit, once a round: handshake retries, keep-alive, tracker refresh.
    fn visit(&mut self, i: usize, now: Time) {
        let (timeout, silence, refresh) =
            (self.cfg().connect_timeout, self.cfg().neighbour_timeout, self.cfg().tracker_refresh);
        let v = &mut self.viewers[i];
        match v.stage {
            Stage::Joining if now.since(v.sent_at) >= timeout => self.send_join(i, now),
            Stage::Connecting if now.since(v.sent_at) >= timeout => self.send_connect(i, now),
            Stage::Joined if now.since(v.last_map) > silence => {
                // The target went quiet: it has dropped us by now. Ask again.
                v.stats.neighbours_removed += 1;
                self.send_connect(i, now);
            }
            // The round's map and request, at this viewer's own phase of the round (as a
            // full peer's round timer): answering each map of the target at once would
            // bunch every viewer's request into the instant after the target's round.
            Stage::Joined => self.send_map(i, now, true),
            _ => {}
        }
        let v = &self.viewers[i];
        if v.tracker_token != 0 && now.since(v.last_refresh) >= refresh {
            self.send_refresh(i, now);
        }
    }

    fn run_visits(&mut self, now: Time) -> Duration {
        let round = self.cfg().round;
        let mut worst = Duration::ZERO;
        while let Some(&(due, i)) = self.visits.front() {
            if due > now {
                break;
            }
            self.visits.pop_front();
            worst = worst.max(now.since(due));
            self.io.timers_run += 1;
            self.visit(i, now);
            // Every entry was pushed at or before `now`: the FIFO stays sorted.
            self.visits.push_back((now + round, i));
        }
        worst
    }

    fn publish_gauges(&self) {
        let joined = self.viewers.iter().filter(|v| v.stage == Stage::Joined).count() as u64;
        self.live.neighbours[self.plan.index].store(joined, Ordering::Relaxed);
        self.live.on_target[self.plan.index].store(joined, Ordering::Relaxed);
    }
}

/// Runs one shard of lean viewers on the calling thread until `stop`; returns every
/// viewer's outcome and the socket counters.
pub fn run_shard(
    plan: ShardPlan,
    clock: Clock,
    live: Arc<Live>,
    stop: Arc<AtomicBool>,
) -> io::Result<(Vec<PeerOutcome>, IoStats)> {
    if let Some(core) = plan.core {
        pin_to_core(core)?;
    }
    let tracker = plan.peer.tracker.ok_or_else(|| io::Error::other("lean viewers need the target's tracker"))?;
    let epoll = epoll_create()?;
    let mut pending = plan.peers.clone().into_iter().peekable();
    let mut shard = Shard {
        tracker,
        clock,
        live,
        viewers: Vec::with_capacity(plan.peers.len()),
        visits: VecDeque::with_capacity(plan.peers.len()),
        io: IoStats::default(),
        latency: Latency::new(),
        epoll,
        out: BytesMut::with_capacity(wire::MAX_DATAGRAM),
        packet: Packet { messages: Vec::with_capacity(4) },
        ids: Vec::with_capacity(MAX_REQUEST_IDS),
        rng: mix(plan.seed ^ 0x1ea9),
        lcs: 0,
        bytes: 0,
        plan,
    };
    let mut rb = udp::RecvBatch::new(RECV_SLOTS, RECV_SLOT_LEN);
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; MAX_EVENTS];
    let mut last_gauge = clock.now();
    let mut worst = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        let cycle = std::time::Instant::now();
        let now = clock.now();
        while pending.peek().is_some_and(|(_, spec)| spec.join <= now) {
            if let Some((global, spec)) = pending.next() {
                shard.join(global, spec)?;
            }
        }
        worst = worst.max(shard.run_visits(now));
        if now.since(last_gauge) >= GAUGE_EVERY {
            shard.publish_gauges();
            shard.live.timer_lag_us.fetch_max(worst.as_micros() as u64, Ordering::Relaxed);
            worst = Duration::ZERO;
            last_gauge = now;
        }
        // Visits are due about every millisecond in a large shard; they may run a
        // cycle late rather than wake the loop each time.
        let next = shard.visits.front().map(|&(t, _)| t).into_iter().chain(pending.peek().map(|(_, s)| s.join));
        let wait_ms = next.map(|t| t.since(now).as_millis() as i32 + 1).min().unwrap_or(TICK_MS).clamp(1, TICK_MS);
        // SAFETY: `events` has room for MAX_EVENTS entries.
        let n = unsafe { libc::epoll_wait(shard.epoll.as_raw_fd(), events.as_mut_ptr(), MAX_EVENTS as i32, wait_ms) };
        let now = clock.now();
        for ev in events.iter().take(n.max(0) as usize) {
            let i = ev.u64 as usize;
            if i < shard.viewers.len() {
                shard.drain(i, now, &mut rb);
            }
        }
        shard.publish();
        if let Some(rest) = CYCLE.checked_sub(cycle.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    // No last gauge: the target leaving at the stop would show as viewers dropped.
    let mut latency = Some(std::mem::take(&mut shard.latency));
    let outcomes = shard
        .viewers
        .into_iter()
        .map(|mut v| {
            // The shard's one latency histogram rides on its first viewer's counters:
            // the report only ever sums them over all viewers.
            if let Some(l) = latency.take() {
                v.stats.latency.delivery = l;
            }
            // Playback moves once a round (with the target's map): the counted time
            // ends where it last moved, not at the stop.
            let seconds = v.accounted_to.since(v.count_from).as_secs_f64();
            PeerOutcome { class: v.spec.class, upload: v.spec.upload, seconds, stats: v.stats }
        })
        .collect();
    Ok((outcomes, shard.io))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_identities_are_spread_and_never_zero() {
        let a: Vec<u64> = (0..1000u64).map(|i| mix(7 ^ mix(i))).collect();
        let mut b = a.clone();
        b.sort_unstable();
        b.dedup();
        assert_eq!(b.len(), a.len(), "identities collide");
        let mut x = 1u64;
        for _ in 0..1000 {
            x = mix(x);
            assert_ne!(x | 1, 0);
        }
    }
}
