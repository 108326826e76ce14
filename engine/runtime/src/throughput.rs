//! The seed throughput benchmark: how many LCs a seed with S shards schedules and
//! sends per second on loopback when every receiver always wants more, measured
//! against a raw GSO blast of 1250-byte datagrams in the same run (the ceiling this
//! machine's kernel gives one sending core). Used by `layerp2p bench-node`; it is a
//! CLI experiment, not a test.
//!
//! Load comes from `GreedyReceiver`s: minimal clients that do the neighbour handshake
//! with the seed, then every `REQUEST_PERIOD` request every LC the seed's buffer map
//! shows, so the seed's request queues never run dry. They count what arrives and
//! never serve anything.

use super::driver::Clock;
use super::role::{NodeSpec, run_node};
use layerp2p_codec::{BufferMap, Kbps, LayerId, LayerWindow, LcId, LcSource, MediaTime, Seq};
use layerp2p_proto::config::PeerConfig;
use layerp2p_proto::node::{Node, Transmit};
use layerp2p_proto::time::Time;
use layerp2p_proto::wire::{BufferMapMsg, ChannelId, MAX_REQUEST_IDS, Message, Packet, PeerId, Role};
use layerp2p_udp as udp;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a greedy receiver re-requests everything.
const REQUEST_PERIOD: Duration = Duration::from_millis(50);
/// How often an unanswered handshake is repeated.
const CONNECT_PERIOD: Duration = Duration::from_secs(1);
/// LCs asked for per period: enough to keep the seed's queue for us non-empty even
/// when this receiver is late (32 receivers ask for ~650k LC/s), in a ~5 KB packet.
const IDS_PER_PERIOD: usize = 1024;
/// The seed's per-receiver queue bound in this benchmark (its default is 4,096).
const SEED_QUEUE: usize = 16_384;
/// Datagram size of the raw blast (an LC datagram's size class).
pub const BLAST_DATAGRAM: usize = 1250;

/// A client that keeps a seed saturated (see the module docs).
#[derive(Debug)]
pub struct GreedyReceiver {
    seed: SocketAddr,
    id: PeerId,
    layers: usize,
    nonce: u64,
    their_token: Option<u64>,
    map: Option<BufferMap>,
    outbox: VecDeque<Transmit>,
    /// Where the next period's requests start among the LCs the seed holds.
    cursor: usize,
    next_request: Time,
    next_connect: Time,
    pub lcs: u64,
    /// LC bytes on the wire (as the seed counts them).
    pub bytes: u64,
}

impl GreedyReceiver {
    pub fn new(seed: SocketAddr, layers: usize, index: u64) -> GreedyReceiver {
        GreedyReceiver {
            seed,
            id: PeerId(0xB0_0000 + index),
            layers,
            nonce: 0x5EED_0000 + index * 2 + 1,
            their_token: None,
            map: None,
            outbox: VecDeque::new(),
            cursor: 0,
            next_request: Time::ZERO,
            next_connect: Time::ZERO,
            lcs: 0,
            bytes: 0,
        }
    }

    fn connect(&mut self) {
        let connect = Message::Connect { channel: ChannelId(1), peer: self.id, role: Role::Peer };
        let mut messages = vec![connect, Message::Token { nonce: self.nonce, echo: 0 }];
        // Padded like a real peer's handshake, so the seed's 3x anti-amplification
        // budget lets it answer.
        let len = Packet { messages: messages.clone() }.wire_len();
        let pad =
            layerp2p_proto::peer::HANDSHAKE_SIZE.saturating_sub(len + layerp2p_proto::wire::codec::MESSAGE_HEADER_LEN);
        messages.push(Message::Padding { len: pad as u16 });
        self.outbox.push_back(Transmit { dst: self.seed, packet: Packet { messages } });
    }

    /// The next `IDS_PER_PERIOD` LCs the seed holds, round robin, as one request
    /// packet (with a token and an empty map, which keep the seed treating us as a
    /// live, validated neighbour).
    /// Before the seed's first map, the packet still goes out without requests: its
    /// token echo is what validates us, and a seed sends no map before that.
    fn request_all(&mut self, now: Time) {
        let Some(echo) = self.their_token else { return };
        let mut ids = Vec::new();
        for (li, theirs) in self.map.iter().flat_map(|m| m.layers()).enumerate() {
            let layer = LayerId::from_index(li);
            let none = LayerWindow::new(theirs.start());
            ids.extend(none.wanted_from(theirs).map(|seq| LcId { layer, seq }));
        }
        let empty = BufferMapMsg {
            head_time: MediaTime(0),
            sent_at: now.0,
            echo: 0,
            echo_delay: 0,
            map: BufferMap::new(self.layers, Seq(0)),
        };
        let head = vec![Message::Token { nonce: self.nonce, echo }, Message::BufferMap(empty)];
        let mut messages = head;
        if !ids.is_empty() {
            let start = self.cursor % ids.len();
            let take: Vec<LcId> = ids.iter().cycle().skip(start).take(IDS_PER_PERIOD.min(ids.len())).copied().collect();
            self.cursor = start + take.len();
            messages.extend(take.chunks(MAX_REQUEST_IDS).map(|c| Message::Request { ttl_ms: 900, ids: c.to_vec() }));
        }
        self.outbox.push_back(Transmit { dst: self.seed, packet: Packet { messages } });
    }
}

impl Node for GreedyReceiver {
    fn handle_input(&mut self, now: Time, from: SocketAddr, packet: Packet) {
        if from != self.seed {
            return;
        }
        // A busy receiver's timer may run late: requests also go out from here.
        if now >= self.next_request {
            self.request_all(now);
            self.next_request = now + REQUEST_PERIOD;
        }
        for m in packet.messages {
            match m {
                Message::Token { nonce, echo } if echo == self.nonce => self.their_token = Some(nonce),
                Message::BufferMap(b) => self.map = Some(b.map),
                Message::Data(lc) => {
                    self.lcs += 1;
                    self.bytes += layerp2p_proto::peer::data_cost(lc.payload.len()) as u64;
                }
                Message::Disconnect { .. } => self.their_token = None,
                _ => {}
            }
        }
    }

    fn handle_timeout(&mut self, now: Time) {
        if self.their_token.is_none() && now >= self.next_connect {
            self.connect();
            self.next_connect = now + CONNECT_PERIOD;
        }
        if now >= self.next_request {
            self.request_all(now);
            self.next_request = now + REQUEST_PERIOD;
        }
    }

    fn poll_transmit(&mut self, _now: Time) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    fn poll_timeout(&self) -> Option<Time> {
        if self.their_token.is_none() {
            Some(self.next_request.min(self.next_connect))
        } else {
            Some(self.next_request)
        }
    }
}

/// The greedy receivers' loop, on one plain thread (the same kind of thread the raw
/// blast's drain runs on): reads every socket without blocking, counts LC datagrams
/// without decoding them, feeds everything else to its receiver, and sends what the
/// receivers queue. Returns the LCs and LC bytes received after `warmup`.
fn drain_receivers(
    sockets: Vec<std::net::UdpSocket>,
    mut nodes: Vec<GreedyReceiver>,
    warmup: Duration,
    stop: &AtomicBool,
) -> (u64, u64) {
    let start = Instant::now();
    let clock = Clock::starting_at(start);
    let mut buf = vec![0u8; layerp2p_proto::wire::MAX_DATAGRAM + 1];
    let mut base: Option<(u64, u64)> = None;
    let mut gso = false;
    let count = |nodes: &[GreedyReceiver]| nodes.iter().fold((0u64, 0u64), |(l, b), n| (l + n.lcs, b + n.bytes));
    while !stop.load(Ordering::Relaxed) {
        let now = clock.now();
        let mut idle = true;
        for (socket, node) in sockets.iter().zip(nodes.iter_mut()) {
            // A bounded number of reads per socket per pass keeps the others served.
            for _ in 0..64 {
                let Ok((n, from)) = socket.recv_from(&mut buf) else { break };
                idle = false;
                let d = &buf[..n];
                // One message of type Data: count it, skip the decode.
                if n > 5 && d[3] == 1 && d[4] == layerp2p_proto::wire::codec::code::DATA {
                    node.lcs += 1;
                    node.bytes += n as u64;
                } else if let Ok(p) = layerp2p_proto::wire::decode(bytes::Bytes::copy_from_slice(d)) {
                    node.handle_input(now, from, p);
                }
            }
            if node.poll_timeout().is_some_and(|t| t <= now) {
                node.handle_timeout(now);
            }
            let mut out = Vec::new();
            while let Some(t) = node.poll_transmit(now) {
                let mut b = bytes::BytesMut::new();
                if layerp2p_proto::wire::encode(&t.packet, &mut b).is_ok() {
                    out.push((t.dst, b.freeze()));
                }
            }
            if !out.is_empty() {
                udp::send_batch(socket.as_raw_fd(), &out, &mut gso);
            }
        }
        if base.is_none() && start.elapsed() >= warmup {
            base = Some(count(&nodes));
        }
        if idle {
            std::thread::yield_now();
        }
    }
    let (l0, b0) = base.unwrap_or_default();
    let (l1, b1) = count(&nodes);
    (l1 - l0, b1 - b0)
}

/// One measured rate.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Rate {
    pub datagrams_per_sec: f64,
    pub gbit_per_sec: f64,
}

impl Rate {
    fn of(datagrams: u64, bytes: u64, secs: f64) -> Rate {
        Rate { datagrams_per_sec: datagrams as f64 / secs, gbit_per_sec: bytes as f64 * 8.0 / secs / 1e9 }
    }
}

/// The raw ceiling: one thread sends 1250-byte datagrams with GSO + sendmmsg as fast
/// as it can for `secs` to a socket a second thread drains. Returns (sent, received).
pub fn raw_blast(secs: Duration) -> io::Result<(Rate, Rate)> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let rx = udp::bind(loopback)?;
    let tx = udp::bind(loopback)?;
    let to = rx.local_addr()?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let drain = {
        let (stop, received) = (stop.clone(), received.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                match rx.recv_from(&mut buf) {
                    Ok(_) => {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::yield_now(),
                }
            }
        })
    };
    // 256 datagrams per call: four 64-segment GSO sends in one sendmmsg. The sender
    // is pinned to core 0 like a seed's shard 0, so both compete alike for it.
    let batch: Vec<(SocketAddr, Vec<u8>)> = (0..256).map(|i| (to, vec![i as u8; BLAST_DATAGRAM])).collect();
    let sender = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(0))
        .name("layerp2p-blast")
        .spawn(move || async move {
            let mut gso = true;
            let mut sent = 0u64;
            let start = Instant::now();
            while start.elapsed() < secs {
                sent += udp::send_batch(tx.as_raw_fd(), &batch, &mut gso).datagrams as u64;
            }
            (sent, start.elapsed().as_secs_f64())
        })
        .map_err(|e| io::Error::other(format!("cannot start executor: {e}")))?;
    let (sent, elapsed) = sender.join().map_err(|e| io::Error::other(format!("executor failed: {e}")))?;
    let got = received.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    let n = BLAST_DATAGRAM as u64;
    Ok((Rate::of(sent, sent * n, elapsed), Rate::of(got, got * n, elapsed)))
}

/// Result of one seed run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SeedRun {
    pub shards: usize,
    pub receivers: usize,
    /// LCs the seed scheduled and sent after warm-up.
    pub sent: Rate,
    /// LCs the greedy receivers got.
    pub received: Rate,
    pub send_syscalls_per_datagram: f64,
    pub request_to_send_p99_ms: f64,
}

/// The benchmark seed: no upload cap that matters, a slot for every receiver, and
/// every layer for whoever asks. The greedy receivers upload nothing, so the
/// reciprocity gate (`Incentive::upper_layers_window`) would serve them the base
/// layer alone and the run would measure the incentive, not the send path.
fn bench_seed_config(plan: layerp2p_codec::LayerPlan, receivers: usize, shards: usize) -> PeerConfig {
    let mut peer = PeerConfig::seed(layerp2p_proto::Policy::LayerP2P, plan, Kbps(100_000_000));
    peer.n_max = receivers + shards;
    peer.max_queue = SEED_QUEUE;
    peer.lag = Duration::from_secs(10);
    peer.incentive.upper_layers_window = None;
    peer
}

/// Runs a seed with `shards` shards and no upload cap that matters, loaded by
/// `receivers` greedy receivers on one plain thread, for `warmup + secs`; measures
/// the last `secs`.
pub fn seed_throughput(
    shards: usize,
    receivers: usize,
    source: Box<dyn LcSource>,
    warmup: Duration,
    secs: Duration,
) -> io::Result<SeedRun> {
    let plan = source.plan().clone();
    let layers = plan.layers();
    let peer = bench_seed_config(plan, receivers, shards);
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    // Bind first so the receivers know the port: reserve one, release it, and let the
    // seed's shards rebind it with SO_REUSEPORT.
    let port = udp::bind(listen)?.local_addr()?.port();
    let seed_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let spec = NodeSpec { peer, listen: seed_addr, shards, embedded_tracker: None, first_core: 0, rng_seed: 7 };
    let stop = Arc::new(AtomicBool::new(false));
    let total = warmup + secs;
    let start = Instant::now();
    let sockets =
        (0..receivers).map(|_| udp::bind(SocketAddr::from(([127, 0, 0, 1], 0)))).collect::<io::Result<Vec<_>>>()?;
    let nodes: Vec<GreedyReceiver> = (0..receivers).map(|i| GreedyReceiver::new(seed_addr, layers, i as u64)).collect();
    let load = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("layerp2p-greedy".into())
            .spawn(move || drain_receivers(sockets, nodes, warmup, &stop))?
    };
    // (elapsed, LCs, bytes) at the end of warm-up and at the last status.
    let mut at_warm: Option<(f64, u64, u64)> = None;
    let mut last = (0.0, 0, 0);
    let summary = run_node(spec, Some(source), stop.clone(), &mut |s| {
        last = (s.elapsed_s, s.lcs_up, s.bytes_up);
        if at_warm.is_none() && start.elapsed() >= warmup {
            at_warm = Some(last);
        }
        if start.elapsed() >= total {
            stop.store(true, Ordering::Relaxed);
        }
    })?;
    let (got, got_bytes) = load.join().map_err(|_| io::Error::other("the receiver thread panicked"))?;
    let (t0, n0, b0) = at_warm.unwrap_or((0.0, 0, 0));
    let (t1, n1, b1) = last;
    let measured = (t1 - t0).max(1e-3);
    Ok(SeedRun {
        shards,
        receivers,
        sent: Rate::of(n1.saturating_sub(n0), b1.saturating_sub(b0), measured),
        received: Rate::of(got, got_bytes, secs.as_secs_f64()),
        send_syscalls_per_datagram: summary.io.send_syscalls as f64 / summary.io.datagrams_out.max(1) as f64,
        request_to_send_p99_ms: summary.stats.latency.request_to_send.summary().p99_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_seed_serves_every_layer_to_receivers_that_upload_nothing() {
        let plan = layerp2p_codec::LayerPlan::new(vec![Kbps(4000); 3]).expect("valid plan");
        let cfg = bench_seed_config(plan, 32, 1);
        assert_eq!(cfg.incentive.upper_layers_window, None, "the gate would keep layers 2-3 from them");
        assert_eq!(cfg.n_max, 33);
    }

    #[test]
    fn a_greedy_receiver_echoes_the_token_before_any_map() {
        let seed = SocketAddr::from(([127, 0, 0, 1], 9));
        let mut r = GreedyReceiver::new(seed, 3, 0);
        r.handle_timeout(Time::ZERO);
        while r.poll_transmit(Time::ZERO).is_some() {}
        // The Accept carries the seed's token; its map comes only once we echo it.
        let accept =
            vec![Message::Accept { peer: PeerId(1), role: Role::Seed }, Message::Token { nonce: 77, echo: r.nonce }];
        let now = Time::ZERO + REQUEST_PERIOD;
        r.handle_input(now, seed, Packet { messages: accept });
        let now = now + REQUEST_PERIOD;
        r.handle_timeout(now);
        let sent: Vec<Transmit> = std::iter::from_fn(|| r.poll_transmit(now)).collect();
        assert!(
            sent.iter().flat_map(|t| &t.packet.messages).any(|m| matches!(m, Message::Token { echo: 77, .. })),
            "no token echo went to the seed: {sent:?}"
        );
    }
}
