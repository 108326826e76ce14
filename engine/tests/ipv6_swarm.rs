//! A swarm on IPv6 loopback: a seed whose embedded tracker listens dual-stack on
//! `[::]`, and viewers on `[::1]` that find it there, become neighbours and play.

mod common;

use layerp2p_codec::Kbps;
use layerp2p_codec::synthetic::{SyntheticConfig, SyntheticSource};
use layerp2p_engine::runtime::role::NodeSpec;
use layerp2p_engine::runtime::status::NodeSummary;
use layerp2p_engine::wire::NatType;
use layerp2p_engine::{PeerConfig, Policy};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

fn free_v6_port() -> Option<u16> {
    Some(UdpSocket::bind("[::1]:0").ok()?.local_addr().ok()?.port())
}

#[test]
fn viewers_on_ipv6_loopback_find_each_other_and_play() {
    let (Some(tracker_port), Some(seed_port)) = (free_v6_port(), free_v6_port()) else {
        eprintln!("skipped: this host has no IPv6 loopback");
        return;
    };
    let video = SyntheticConfig::prototype();
    let tracker: SocketAddr = format!("[::1]:{tracker_port}").parse().expect("addr");
    let mut seed = PeerConfig::seed(Policy::LayerP2P, video.plan.clone(), Kbps(2000));
    seed.tracker = Some(tracker);
    seed.lag = Duration::from_secs(6);
    let seed_spec = NodeSpec {
        peer: seed,
        listen: format!("[::1]:{seed_port}").parse().expect("addr"),
        shards: 1,
        // Dual-stack: IPv4 and IPv6 peers can both register.
        embedded_tracker: Some(format!("[::]:{tracker_port}").parse().expect("addr")),
        first_core: 0,
        rng_seed: 1,
    };
    let source = SyntheticSource::new(video.clone()).expect("source");
    let seed = common::roles::run_for(seed_spec, Some(Box::new(source)), None, 14);
    std::thread::sleep(Duration::from_millis(300));
    let viewers: Vec<_> = (0..3)
        .map(|i| {
            let mut pc = PeerConfig::peer(Policy::LayerP2P, video.plan.clone(), Kbps(700));
            pc.tracker = Some(tracker);
            pc.lag = Duration::from_secs(6);
            pc.startup = Duration::from_secs(5);
            let listen = "[::1]:0".parse().expect("addr");
            let spec =
                NodeSpec { peer: pc, listen, shards: 1, embedded_tracker: None, first_core: 1, rng_seed: 10 + i };
            common::roles::run_for(spec, None, None, 13)
        })
        .collect();
    let viewers: Vec<NodeSummary> = viewers.into_iter().map(|h| h.join().expect("viewer")).collect();
    let seed = seed.join().expect("seed");
    eprintln!("{}", seed.text());
    assert!(seed.tracker.as_ref().is_some_and(|t| t.joins >= 4), "seed and viewers joined");
    for v in &viewers {
        eprintln!("{}", v.text());
        assert!(v.playback_kbps > 290.0 && v.alpha[0].is_some_and(|a| a > 0.6), "{}", v.text());
        assert_eq!(v.io.malformed, 0);
        let addrs: Vec<SocketAddr> = v.neighbours.iter().map(|n| n.addr.parse().expect("addr")).collect();
        assert!(addrs.iter().all(SocketAddr::is_ipv6), "{addrs:?}");
        // The tracker sees the viewer at its own address: no NAT.
        let nat = v.nat.as_ref().expect("a viewer reports its NAT");
        assert_eq!(nat.nat, NatType::Open, "{nat:?}");
        assert!(nat.reflexive.is_some_and(|r| r.is_ipv6() && r.ip().is_loopback()), "{nat:?}");
    }
    // Viewers found each other through the tracker and traded: they uploaded far more
    // than the seed took back (its audit), so mostly to one another.
    let viewers_up: u64 = viewers.iter().map(|v| v.stats.bytes_up).sum();
    assert!(viewers_up > 3 * seed.stats.bytes_down, "viewers {viewers_up} B up, seed {} B down", seed.stats.bytes_down);
}
