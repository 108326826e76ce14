//! Synthetic peers on one glommio executor (a shard): many real `Peer` state
//! machines, each on its own UDP socket, driven by one timer loop per shard.
//!
//! The runtime's `driver::drive` gives every node its own timer task that wakes at
//! least every 2 ms; at thousands of nodes per core those wakeups alone would eat the
//! core. Here one loop per shard keeps a heap of the peers' deadlines and wakes once
//! per `TICK` for all of them; each peer's socket has one receive task. This module
//! never decides anything a peer decides: it only delivers, times and counts.

use super::live::Live;
use bytes::{Bytes, BytesMut};
use glommio::net::UdpSocket;
use layerp2p_engine::node::Node;
use layerp2p_engine::peer::Peer;
use layerp2p_engine::runtime::driver::{Clock, IoStats};
use layerp2p_engine::runtime::udp;
use layerp2p_engine::sim::report::PeerOutcome;
use layerp2p_engine::sim::PeerSpec;
use layerp2p_engine::wire::{self, Message, Packet};
use layerp2p_engine::{PeerConfig, Time};
use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Period of the shard's timer loop: the resolution of every peer's timers.
const TICK: Duration = Duration::from_millis(1);
/// Receive buffer per peer. Peers' datagrams are far smaller (an LC is <= 1,300
/// bytes, a round's request to one supplier a few KB); a larger one is counted as
/// malformed. 64 KB per peer would cost 320 MB at 5,000 peers.
const RECV_BUF: usize = 16 * 1024;
/// How often the shard publishes its neighbour count.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

/// What one shard needs to know.
#[derive(Clone, Debug)]
pub struct ShardPlan {
    pub index: usize,
    /// Template of every peer; `upload` is set per peer.
    pub peer: PeerConfig,
    /// (global index, spec) of this shard's peers, by join time.
    pub peers: Vec<(usize, PeerSpec)>,
    /// The node under test: put first among every peer's candidates.
    pub target: SocketAddr,
    pub seed: u64,
}

struct Synth {
    peer: RefCell<Peer>,
    fd: RawFd,
    gso: Cell<bool>,
    /// The deadline this peer has in the heap, if any.
    wake: Cell<Option<Time>>,
    spec: PeerSpec,
}

struct Shard {
    plan: ShardPlan,
    clock: Clock,
    live: Arc<Live>,
    synths: RefCell<Vec<Rc<Synth>>>,
    heap: RefCell<BinaryHeap<Reverse<(Time, usize)>>>,
    io: RefCell<IoStats>,
    batch: RefCell<Vec<(SocketAddr, Vec<u8>)>>,
}

impl Shard {
    /// Sends everything `s` has queued, in one batch.
    fn flush(&self, s: &Synth, now: Time) {
        let mut batch = self.batch.borrow_mut();
        batch.clear();
        {
            let mut peer = s.peer.borrow_mut();
            while let Some(t) = peer.poll_transmit(now) {
                let mut buf = BytesMut::with_capacity(t.packet.wire_len());
                // The core never builds a packet its own decoder refuses; if it did,
                // dropping it is the safe choice.
                if wire::encode(&t.packet, &mut buf).is_ok() {
                    batch.push((t.dst, Vec::from(buf)));
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        let mut gso = s.gso.get();
        let sent = udp::send_batch(s.fd, &batch, &mut gso);
        s.gso.set(gso);
        let mut io = self.io.borrow_mut();
        io.datagrams_out += sent.datagrams as u64;
        io.bytes_out += batch.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        io.send_syscalls += sent.syscalls as u64;
        io.send_dropped += sent.dropped as u64;
        Live::add(&self.live.datagrams_out, sent.datagrams as u64);
        Live::add(&self.live.send_dropped, sent.dropped as u64);
    }

    /// Puts `s`'s next deadline in the heap if it is earlier than the one there.
    fn schedule(&self, s: &Synth, index: usize) {
        let Some(t) = s.peer.borrow().poll_timeout() else { return };
        if s.wake.get().is_none_or(|w| t < w) {
            s.wake.set(Some(t));
            self.heap.borrow_mut().push(Reverse((t, index)));
        }
    }

    /// Handles one received datagram for peer `index`.
    fn deliver(&self, index: usize, s: &Synth, from: SocketAddr, data: &[u8]) {
        let now = self.clock.now();
        {
            let mut io = self.io.borrow_mut();
            io.datagrams_in += 1;
            io.bytes_in += data.len() as u64;
        }
        Live::add(&self.live.datagrams_in, 1);
        let packet = match wire::decode(Bytes::copy_from_slice(data)) {
            Ok(p) => p,
            Err(_) => {
                self.io.borrow_mut().malformed += 1;
                Live::add(&self.live.malformed, 1);
                return;
            }
        };
        self.count_data(from, &packet, data.len() as u64);
        {
            let mut peer = s.peer.borrow_mut();
            if let Some(first) = self.target_first(&peer, from, &packet) {
                peer.handle_input(now, from, first);
            }
            peer.handle_input(now, from, packet);
        }
        self.flush(s, now);
        self.schedule(s, index);
    }

    fn count_data(&self, from: SocketAddr, packet: &Packet, bytes: u64) {
        let lcs = packet.messages.iter().filter(|m| matches!(m, Message::Data(_))).count() as u64;
        if lcs == 0 {
            return;
        }
        Live::add(&self.live.lcs_in, lcs);
        Live::add(&self.live.bytes_in, bytes);
        if from == self.plan.target {
            Live::add(&self.live.target_lcs, lcs);
            Live::add(&self.live.target_bytes, bytes);
        }
    }

    /// A peer list from the tracker may not name the target (the tracker hands out a
    /// random subset). Before it, the peer gets a list of the target alone, so it
    /// connects to the target first and then fills up from the real list.
    fn target_first(&self, peer: &Peer, from: SocketAddr, packet: &Packet) -> Option<Packet> {
        let target = self.plan.target;
        let is_list = packet.messages.iter().any(|m| matches!(m, Message::PeerList { .. }));
        if !is_list || peer.config().tracker != Some(from) || peer.neighbour_addrs().any(|a| a == target) {
            return None;
        }
        Some(Packet { messages: vec![Message::PeerList { peers: vec![target] }] })
    }

    fn publish_neighbours(&self) {
        let total: usize = self.synths.borrow().iter().map(|s| s.peer.borrow().neighbour_count()).sum();
        self.live.neighbours[self.plan.index].store(total as u64, Ordering::Relaxed);
    }
}

/// Runs one shard until `stop`; returns every peer's outcome and the socket counters.
pub async fn run_shard(plan: ShardPlan, clock: Clock, live: Arc<Live>, stop: Arc<AtomicBool>) -> io::Result<(Vec<PeerOutcome>, IoStats)> {
    let specs = plan.peers.clone();
    let shard = Rc::new(Shard {
        plan,
        clock,
        live,
        synths: RefCell::new(Vec::with_capacity(specs.len())),
        heap: RefCell::new(BinaryHeap::with_capacity(specs.len() * 2)),
        io: RefCell::new(IoStats::default()),
        batch: RefCell::new(Vec::new()),
    });
    let joiner = glommio::spawn_local(join_peers(shard.clone(), specs, stop.clone()));
    let mut last_gauge = clock.now();
    while !stop.load(Ordering::Relaxed) {
        let now = clock.now();
        let mut worst = Duration::ZERO;
        loop {
            let due = match shard.heap.borrow().peek() {
                Some(Reverse((t, i))) if *t <= now => (*t, *i),
                _ => break,
            };
            shard.heap.borrow_mut().pop();
            let s = shard.synths.borrow()[due.1].clone();
            if s.wake.get() != Some(due.0) {
                continue; // superseded by an earlier deadline
            }
            s.wake.set(None);
            worst = worst.max(now.since(due.0));
            s.peer.borrow_mut().handle_timeout(now);
            shard.flush(&s, now);
            shard.schedule(&s, due.1);
        }
        shard.live.timer_lag_us.fetch_max(worst.as_micros() as u64, Ordering::Relaxed);
        if now.since(last_gauge) >= GAUGE_EVERY {
            shard.publish_neighbours();
            last_gauge = now;
        }
        glommio::timer::sleep(TICK).await;
    }
    // Cancels the receive tasks still waiting.
    let receivers = joiner.await?;
    drop(receivers);
    let now = clock.now();
    let outcomes = shard
        .synths
        .borrow()
        .iter()
        .map(|s| {
            let p = s.peer.borrow();
            let seconds = now.since(p.counted_since()).as_secs_f64();
            PeerOutcome { class: s.spec.class, upload: s.spec.upload, seconds, stats: p.stats() }
        })
        .collect();
    let io = *shard.io.borrow();
    Ok((outcomes, io))
}

/// Starts each peer at its join time; returns the receive tasks.
async fn join_peers(shard: Rc<Shard>, specs: Vec<(usize, PeerSpec)>, stop: Arc<AtomicBool>) -> io::Result<Vec<glommio::Task<()>>> {
    let mut receivers = Vec::with_capacity(specs.len());
    for (global, spec) in specs {
        let wait = Duration::from_micros(spec.join.0.saturating_sub(shard.clock.now().0));
        // Sleep in short steps so a stop is noticed.
        let until = shard.clock.now() + wait;
        while shard.clock.now() < until && !stop.load(Ordering::Relaxed) {
            glommio::timer::sleep(Duration::from_micros(until.0.saturating_sub(shard.clock.now().0)).min(Duration::from_millis(100))).await;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let std_socket = udp::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let fd = std_socket.as_raw_fd();
        // SAFETY: the fd comes from a live std socket whose ownership moves here.
        let socket = unsafe { UdpSocket::from_raw_fd(std_socket.into_raw_fd()) };
        let mut cfg = shard.plan.peer.clone();
        cfg.upload = spec.upload;
        let rng_seed = shard.plan.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ global as u64;
        let peer = Peer::new(cfg, rng_seed, shard.clock.now()).map_err(|e| io::Error::other(e.to_string()))?;
        let synth = Rc::new(Synth { peer: RefCell::new(peer), fd, gso: Cell::new(true), wake: Cell::new(None), spec });
        let index = {
            let mut v = shard.synths.borrow_mut();
            v.push(synth.clone());
            v.len() - 1
        };
        // The Join to the tracker is already queued.
        shard.flush(&synth, shard.clock.now());
        shard.schedule(&synth, index);
        Live::add(&shard.live.peers_up, 1);
        receivers.push(glommio::spawn_local(receive(shard.clone(), index, synth, socket)));
    }
    Ok(receivers)
}

async fn receive(shard: Rc<Shard>, index: usize, synth: Rc<Synth>, socket: UdpSocket) {
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            glommio::timer::sleep(Duration::from_millis(1)).await;
            continue;
        };
        if n >= buf.len() {
            shard.io.borrow_mut().malformed += 1;
            Live::add(&shard.live.malformed, 1);
            continue;
        }
        shard.deliver(index, &synth, from, &buf[..n]);
    }
}
