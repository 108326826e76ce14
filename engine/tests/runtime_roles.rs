//! The deployable roles as an operator runs them, in one process for the test: a
//! seed with two shards sharing one port (SO_REUSEPORT) and an embedded tracker, and
//! viewer peers that find it through the tracker, all over loopback UDP for ~15 s.

mod common;

use common::roles::free_port;
use layerp2p_codec::Kbps;
use layerp2p_codec::synthetic::{SyntheticConfig, SyntheticSource};
use layerp2p_engine::runtime::role::NodeSpec;
use layerp2p_engine::runtime::status::NodeSummary;
use layerp2p_engine::{PeerConfig, Policy};
use std::net::SocketAddr;
use std::time::Duration;

const SEED_UPLOAD: u32 = 2000;
const SEED_SHARDS: usize = 2;

fn run_for(spec: NodeSpec, source: Option<SyntheticSource>, secs: u64) -> std::thread::JoinHandle<NodeSummary> {
    common::roles::run_for(spec, source.map(|s| Box::new(s) as Box<dyn layerp2p_codec::LcSource>), None, secs)
}

/// Starts four viewers uploading `upload` that join through `tracker` and run for
/// `secs`; the handles give their summaries.
fn viewers(tracker: SocketAddr, upload: u32, secs: u64, rng_base: u64) -> Vec<std::thread::JoinHandle<NodeSummary>> {
    (0..4)
        .map(|i| {
            let mut pc = PeerConfig::peer(Policy::LayerP2P, SyntheticConfig::prototype().plan, Kbps(upload));
            pc.tracker = Some(tracker);
            pc.lag = Duration::from_secs(6);
            pc.startup = Duration::from_secs(5);
            let listen = SocketAddr::from(([127, 0, 0, 1], 0));
            run_for(
                NodeSpec { peer: pc, listen, shards: 1, embedded_tracker: None, first_core: 1, rng_seed: rng_base + i },
                None,
                secs,
            )
        })
        .collect()
}

#[test]
fn sharded_seed_serves_peers_found_through_its_tracker_within_its_cap() {
    let video = SyntheticConfig::prototype();
    let tracker = free_port();
    let mut seed = PeerConfig::seed(Policy::LayerP2P, video.plan.clone(), Kbps(SEED_UPLOAD));
    seed.tracker = Some(tracker);
    seed.lag = Duration::from_secs(6);
    let seed_spec = NodeSpec {
        peer: seed,
        listen: free_port(),
        shards: SEED_SHARDS,
        embedded_tracker: Some(tracker),
        first_core: 0,
        rng_seed: 1,
    };
    let seed = run_for(seed_spec, Some(SyntheticSource::new(video.clone()).expect("source")), 15);
    std::thread::sleep(Duration::from_millis(300));
    let peers = viewers(tracker, 700, 14, 10);
    let peers: Vec<NodeSummary> = peers.into_iter().map(|h| h.join().expect("peer thread")).collect();
    let seed = seed.join().expect("seed thread");
    eprintln!("{}", seed.text());
    for p in &peers {
        eprintln!("{}", p.text());
        // Every peer found the swarm through the tracker and played the stream.
        assert!(p.counted_seconds > 5.0, "{}", p.text());
        // (Loose bounds: both tests of this file share the machine with each other.)
        assert!(p.playback_kbps > 290.0 && p.alpha[0].is_some_and(|a| a > 0.6), "{}", p.text());
        assert_eq!(p.io.malformed, 0);
    }
    let tracker = seed.tracker.as_ref().expect("embedded tracker");
    assert!(tracker.joins >= 5, "seed + 4 peers joined: {}", tracker.joins);
    // The seed's two shards served, and together stayed within the node's cap (its
    // token buckets allow a 20 ms burst each).
    assert!(seed.stats.lcs_up > 0);
    assert!(seed.upload_kbps <= SEED_UPLOAD as f64 * 1.05, "seed uploaded {:.0} kbps", seed.upload_kbps);
    // Latency histograms were filled on both sides: the seed's for every LC it sent on
    // request (the rest it pushed: each shard pushes every LC it ingests once, to a
    // viewer that answered its audit).
    assert_eq!(seed.stats.latency.request_to_send.count(), seed.stats.lcs_up - seed.stats.lcs_pushed);
    assert!(seed.stats.lcs_pushed > 0, "{}", seed.text());
    // A receiver's delivery histogram counts the requested LCs that arrived. A shard with a single
    // neighbour pushes that viewer every LC, so it may request nothing: at most one
    // viewer per shard.
    let fed_by_push = peers.iter().filter(|p| p.stats.latency.delivery.count() == 0).count();
    assert!(fed_by_push <= SEED_SHARDS, "{fed_by_push} of {} viewers requested nothing that arrived", peers.len());
}

#[test]
fn sharded_relay_fetches_upstream_and_serves_from_its_shared_port() {
    let video = SyntheticConfig::prototype();
    let tracker = free_port();
    let mut seed = PeerConfig::seed(Policy::LayerP2P, video.plan.clone(), Kbps(2000));
    seed.tracker = Some(tracker);
    seed.lag = Duration::from_secs(6);
    // Room for one neighbour: the relay's upstream peer, which starts first. Every
    // viewer must then be served through the relay's shared port.
    seed.n_max = 1;
    let seed_spec = NodeSpec {
        peer: seed,
        listen: free_port(),
        shards: 1,
        embedded_tracker: Some(tracker),
        first_core: 0,
        rng_seed: 2,
    };
    let seed = run_for(seed_spec, Some(SyntheticSource::new(video.clone()).expect("source")), 16);
    std::thread::sleep(Duration::from_millis(300));
    let mut relay = PeerConfig::relay(Policy::LayerP2P, video.plan.clone(), Kbps(4000));
    relay.tracker = Some(tracker);
    relay.lag = Duration::from_secs(6);
    relay.startup = Duration::from_secs(5);
    let relay_spec =
        NodeSpec { peer: relay, listen: free_port(), shards: 2, embedded_tracker: None, first_core: 1, rng_seed: 3 };
    let relay = run_for(relay_spec, None, 15);
    std::thread::sleep(Duration::from_secs(1));
    // Free-riders: everything they play comes from the relay's serving shards.
    let peers = viewers(tracker, 0, 13, 20);
    let peers: Vec<NodeSummary> = peers.into_iter().map(|h| h.join().expect("peer thread")).collect();
    let relay = relay.join().expect("relay thread");
    let seed = seed.join().expect("seed thread");
    eprintln!("{}\n{}", seed.text(), relay.text());
    for p in &peers {
        eprintln!("{}", p.text());
        assert!(p.playback_kbps > 290.0, "{}", p.text());
    }
    // The relay received the stream once (through its upstream peer) and passed it on
    // to every viewer: it uploaded more LC data than it downloaded.
    assert!(relay.stats.lcs_down > 0, "{}", relay.text());
    assert!(relay.stats.bytes_up > relay.stats.bytes_down, "{}", relay.text());
    assert!(relay.upload_kbps <= 4000.0 * 1.05);
}
