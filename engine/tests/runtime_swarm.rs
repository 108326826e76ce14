//! A real swarm over loopback UDP: tracker, seed and 20 viewers on glommio executors,
//! every packet encoded, sent (sendmmsg/GSO) and decoded, for 32 s of wall time.

use layerp2p_codec::Kbps;
use layerp2p_codec::synthetic::{SyntheticConfig, SyntheticSource};
use layerp2p_engine::runtime::local::{LocalSwarmConfig, run_local_swarm};
use layerp2p_engine::swarm::Mix;
use layerp2p_engine::{PeerConfig, Policy};
use std::time::Duration;

#[test]
fn loopback_swarm_plays_and_rewards_contributors() {
    // Table I, overloaded (resource index 0.82): 2 free-riders, 6 peers at 300 kbps,
    // 12 at 700 kbps.
    let mix = Mix::overloaded();
    let source = SyntheticConfig::prototype();
    let mut peer = PeerConfig::peer(Policy::LayerP2P, source.plan.clone(), Kbps(0));
    // Short enough to finish in half a minute, long enough for LCs to cross a few hops.
    peer.lag = Duration::from_secs(10);
    // Tit-for-tat tells peers apart once d(n,k) has been measured: a 4 s rate window
    // (instead of 10 s) and counting playback from 12 s after joining make that
    // happen within the run.
    peer.rate_window = Duration::from_secs(4);
    peer.startup = Duration::from_secs(12);
    let cfg = LocalSwarmConfig {
        peer,
        // The paper's 2 Mbps seed serves 100 peers; half of that for 20 keeps the
        // swarm overloaded rather than rescued by the seed.
        seed_upload: Kbps(1000),
        seed_n_max: 20,
        classes: mix.names(),
        peers: mix.flash_crowd(20, Duration::from_secs(2), 3),
        duration: Duration::from_secs(32),
        shards: 2,
        links: Default::default(),
        seed: 3,
    };
    let source = SyntheticSource::new(source).expect("valid source");
    let report = run_local_swarm(cfg, Box::new(source), &mut |_| {}).expect("swarm runs");
    eprintln!("{}\n{:?}", report.swarm.table(), report.io);
    let class = |name: &str| report.swarm.class(name).unwrap_or_else(|| panic!("class {name}"));
    let (free, res, inst) = (class("free-rider"), class("residential"), class("institutional"));
    assert!(inst.peers > 0 && res.peers > 0 && free.peers > 0, "every class counted");
    // Peers play the stream: contributors play about the base layer (290 kbps) or
    // more, and a 300 kbps peer (threshold layer 1) gets most of its base layer. The
    // bounds leave room for a busy CI machine delaying a real-time swarm.
    let contributors =
        (res.rate_mean * res.peers as f64 + inst.rate_mean * inst.peers as f64) / (res.peers + inst.peers) as f64;
    assert!(contributors > 250.0, "contributors play {contributors:.0} kbps");
    assert!(res.alpha[0] > 0.7, "residential base layer {:.2}", res.alpha[0]);
    // In the overloaded mix free-riders play less than contributors.
    assert!(free.rate_mean < contributors, "free-riders {:.0} vs contributors {contributors:.0} kbps", free.rate_mean);
    assert_eq!(report.io.malformed, 0);
    // Batching: fewer send syscalls than datagrams.
    assert!(report.io.send_syscalls < report.io.datagrams_out, "{:?}", report.io);
    // Latencies were recorded on both sides.
    let (sent, delivered): (u64, u64) = report
        .swarm
        .peers
        .iter()
        .map(|p| (p.stats.latency.request_to_send.count(), p.stats.latency.delivery.count()))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(sent > 0 && delivered > 0);
}
