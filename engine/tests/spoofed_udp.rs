//! Attacks with forged source addresses over real UDP (docs/SECURITY.md): a raw
//! socket (IP_HDRINCL) writes IPv4/UDP headers itself, so datagrams to a seed with
//! its embedded tracker, run in this process on 127.0.0.1, claim to come from any
//! 127.x.y.z. Needs root (CI runs as root); otherwise the test says so and returns.
//!
//! One run, bounded in count and time: viewers join a seed while, for
//! `ATTACK_SECS`, the attacker forges (1) Joins in a victim's name at the tracker
//! (reflection) and (2) Connects and empty buffer maps from 40 squatter addresses
//! at the seed (slot squatting). Sockets bound at the victim's and squatters'
//! addresses count every byte that comes back.

mod common;

use bytes::BytesMut;
use common::roles::{free_port, run_for_observed};
use layerp2p_codec::synthetic::{SyntheticConfig, SyntheticSource};
use layerp2p_codec::{BufferMap, Kbps, LayerWindow, LcSource, MediaTime, Seq};
use layerp2p_engine::runtime::role::NodeSpec;
use layerp2p_engine::runtime::status::NodeSummary;
use layerp2p_engine::wire::{BufferMapMsg, ChannelId, Message, Packet, PeerId, Role, encode};
use layerp2p_engine::{PeerConfig, Policy};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SQUATTERS: u8 = 40;
const VIEWERS: u64 = 3;
/// Viewers run this long; the attack covers their start-up and the first part.
const VIEWER_SECS: u64 = 26;
const ATTACK_SECS: u64 = 14;

/// A raw IPv4 socket that writes its own headers (IPPROTO_RAW implies IP_HDRINCL).
struct RawSocket(libc::c_int);

impl RawSocket {
    fn open() -> Option<RawSocket> {
        // SAFETY: plain socket(2); the descriptor is owned by the returned value.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
        (fd >= 0).then_some(RawSocket(fd))
    }

    /// Sends `payload` as a UDP datagram from `src` to `dst`; returns the UDP
    /// payload bytes sent (what the victim's name was used for).
    fn send(&self, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> u64 {
        let total = 20 + 8 + payload.len();
        let mut buf = vec![0u8; total];
        buf[0] = 0x45;
        buf[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        buf[8] = 64;
        buf[9] = libc::IPPROTO_UDP as u8;
        buf[12..16].copy_from_slice(&src.ip().octets());
        buf[16..20].copy_from_slice(&dst.ip().octets());
        let sum = checksum(&buf[..20]);
        buf[10..12].copy_from_slice(&sum.to_be_bytes());
        buf[20..22].copy_from_slice(&src.port().to_be_bytes());
        buf[22..24].copy_from_slice(&dst.port().to_be_bytes());
        buf[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        // UDP checksum 0: none (allowed over IPv4).
        buf[28..].copy_from_slice(payload);
        let to = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(dst.ip().octets()) },
            sin_zero: [0; 8],
        };
        // SAFETY: `buf` and `to` outlive the call; the lengths are theirs.
        let sent = unsafe {
            libc::sendto(
                self.0,
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(sent, total as isize, "raw send: {}", std::io::Error::last_os_error());
        payload.len() as u64
    }
}

impl Drop for RawSocket {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// The IPv4 header checksum.
fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn bytes_of(messages: Vec<Message>) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(&Packet { messages }, &mut out).expect("encodes");
    out.to_vec()
}

fn v4(addr: SocketAddr) -> SocketAddrV4 {
    match addr {
        SocketAddr::V4(a) => a,
        SocketAddr::V6(_) => panic!("IPv4 only"),
    }
}

/// Binds a socket at `addr` that counts the bytes it receives until `stop`.
fn counting_socket(addr: SocketAddrV4, stop: Arc<AtomicBool>) -> (Arc<AtomicU64>, JoinHandle<()>) {
    let socket = UdpSocket::bind(addr).expect("bind a 127/8 address");
    socket.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok(n) = socket.recv(&mut buf) {
                counted.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    });
    (count, handle)
}

/// (time, base LCs played, base LCs missed) at every status line of a node.
type Trace = Arc<Mutex<Vec<(Instant, u64, u64)>>>;

fn run_node(spec: NodeSpec, source: Option<Box<dyn LcSource>>, secs: u64, trace: Trace) -> JoinHandle<NodeSummary> {
    run_for_observed(spec, source, None, secs, move |s| {
        let played = s.played_lcs.first().copied().unwrap_or(0);
        let missed = s.missed_lcs.first().copied().unwrap_or(0);
        trace.lock().expect("trace").push((Instant::now(), played, missed));
    })
}

/// Base-layer ratio over the status lines of `trace` between `from` and `to`.
fn base_between(trace: &Trace, from: Instant, to: Instant) -> Option<f64> {
    let t = trace.lock().expect("trace");
    let first = t.iter().rev().find(|e| e.0 <= from)?;
    let last = t.iter().rev().find(|e| e.0 <= to)?;
    let played = last.1.checked_sub(first.1)?;
    let missed = last.2.checked_sub(first.2)?;
    (played + missed > 0).then(|| played as f64 / (played + missed) as f64)
}

#[test]
fn forged_udp_sources_neither_reflect_nor_squat() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("\n*** spoofed_udp: SKIPPED, not root: raw sockets need root (CI runs as root) ***\n");
        return;
    }
    let Some(raw) = RawSocket::open() else {
        eprintln!("\n*** spoofed_udp: SKIPPED, no raw socket: {} ***\n", std::io::Error::last_os_error());
        return;
    };
    let video = SyntheticConfig::prototype();
    let tracker = free_port();
    let seed_listen = free_port();
    let mut seed = PeerConfig::seed(Policy::LayerP2P, video.plan.clone(), Kbps(2000));
    seed.tracker = Some(tracker);
    seed.lag = Duration::from_secs(6);
    let seed_spec = NodeSpec {
        peer: seed,
        listen: seed_listen,
        shards: 1,
        embedded_tracker: Some(tracker),
        first_core: 0,
        rng_seed: 1,
    };
    let source: Box<dyn LcSource> = Box::new(SyntheticSource::new(video.clone()).expect("source"));
    let seed = run_node(seed_spec, Some(source), VIEWER_SECS + 2, Trace::default());
    std::thread::sleep(Duration::from_millis(300));

    let stop = Arc::new(AtomicBool::new(false));
    let victim = SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 66), free_port().port());
    let (victim_bytes, victim_thread) = counting_socket(victim, stop.clone());
    let squatters: Vec<SocketAddrV4> =
        (0..SQUATTERS).map(|k| SocketAddrV4::new(Ipv4Addr::new(127, 0, 1, 10 + k), 9000)).collect();
    let squatter_counts: Vec<(Arc<AtomicU64>, JoinHandle<()>)> =
        squatters.iter().map(|&s| counting_socket(s, stop.clone())).collect();

    let start = Instant::now();
    let traces: Vec<Trace> = (0..VIEWERS).map(|_| Trace::default()).collect();
    let viewers: Vec<JoinHandle<NodeSummary>> = traces
        .iter()
        .enumerate()
        .map(|(i, trace)| {
            let mut pc = PeerConfig::peer(Policy::LayerP2P, video.plan.clone(), Kbps(700));
            pc.tracker = Some(tracker);
            pc.lag = Duration::from_secs(6);
            pc.startup = Duration::from_secs(5);
            let listen = SocketAddr::from(([127, 0, 0, 1], 0));
            let spec = NodeSpec {
                peer: pc,
                listen,
                shards: 1,
                embedded_tracker: None,
                first_core: 1,
                rng_seed: 10 + i as u64,
            };
            run_node(spec, None, VIEWER_SECS, trace.clone())
        })
        .collect();

    // The attack, bounded: 5 rounds a second for ATTACK_SECS.
    let join = bytes_of(vec![Message::Join { channel: ChannelId(1), peer: PeerId(0xBAD), role: Role::Peer }]);
    let map = BufferMap::from_layers(vec![LayerWindow::new(Seq(0)); video.plan.layers()]);
    let map = bytes_of(vec![
        Message::BufferMap(BufferMapMsg { head_time: MediaTime(0), sent_at: 1, echo: 0, echo_delay: 0, map }),
        Message::Token { nonce: 5, echo: 3 },
    ]);
    let (mut to_victim_name, mut squatter_sent) = (0u64, vec![0u64; squatters.len()]);
    let mut round = 0u64;
    while start.elapsed() < Duration::from_secs(ATTACK_SECS) {
        to_victim_name += raw.send(victim, v4(tracker), &join);
        for (k, &s) in squatters.iter().enumerate() {
            if round.is_multiple_of(10) {
                let connect = bytes_of(vec![
                    Message::Connect { channel: ChannelId(1), peer: PeerId(k as u64), role: Role::Peer },
                    Message::Token { nonce: 5, echo: 0 },
                ]);
                squatter_sent[k] += raw.send(s, v4(seed_listen), &connect);
            }
            if round.is_multiple_of(5) {
                squatter_sent[k] += raw.send(s, v4(seed_listen), &map);
            }
        }
        round += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let attack_over = Instant::now();

    let summaries: Vec<NodeSummary> = viewers.into_iter().map(|h| h.join().expect("viewer")).collect();
    let end = Instant::now();
    let seed = seed.join().expect("seed");
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    victim_thread.join().expect("victim socket");
    let reflected = victim_bytes.load(Ordering::Relaxed);
    eprintln!("reflection: {reflected} bytes reached the victim for {to_victim_name} sent in its name");
    assert!(reflected <= 3 * to_victim_name, "{reflected} bytes at the victim for {to_victim_name}");
    let tracker_stats = seed.tracker.as_ref().expect("embedded tracker");
    assert!(tracker_stats.unvalidated > 0, "the forged Joins reached the tracker");
    let mut squatters_back = 0;
    for ((count, thread), (s, sent)) in squatter_counts.into_iter().zip(squatters.iter().zip(&squatter_sent)) {
        thread.join().expect("squatter socket");
        let back = count.load(Ordering::Relaxed);
        squatters_back += back;
        assert!(back <= 3 * sent, "{back} bytes to squatter {s} for {sent}");
    }
    let squatters_sent: u64 = squatter_sent.iter().sum();
    eprintln!("squatting: {squatters_back} bytes reached {SQUATTERS} forged sources for {squatters_sent} sent");
    eprintln!("{}", seed.text());
    for (i, (summary, trace)) in summaries.iter().zip(&traces).enumerate() {
        // Playback is counted from start-up (5 s) on; the first status line after it.
        let counted = start + Duration::from_secs(7);
        let during = base_between(trace, counted, attack_over);
        let after = base_between(trace, attack_over, end);
        eprintln!("viewer {i}: base during {during:?}, after {after:?}\n{}", summary.text());
        assert!(during.is_some_and(|r| r >= 0.95), "viewer {i}: base layer during the attack {during:?}");
        assert!(after.is_some_and(|r| r >= 0.95), "viewer {i}: base layer after the attack {after:?}");
    }
}
