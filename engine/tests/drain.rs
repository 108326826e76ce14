//! A relay drains (the stop flag SIGTERM sets) in the middle of a run on loopback: it
//! tells its neighbours and the tracker it leaves and exits at once, and its viewers
//! keep playing the base layer from their other suppliers in every second.

mod common;

use common::roles::{free_port, run_for};
use layerp2p_codec::synthetic::{SyntheticConfig, SyntheticSource};
use layerp2p_codec::{Kbps, LcSource};
use layerp2p_engine::runtime::role::{NodeSpec, run_node_playing};
use layerp2p_engine::runtime::status::NodeSummary;
use layerp2p_engine::{PeerConfig, Policy};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const VIEWERS: u64 = 4;
const RUN_SECS: u64 = 26;
/// When relay A drains, seconds after the viewers start.
const DRAIN_AT_SECS: u64 = 13;

/// A viewer's cumulative (played, missed) base-layer LCs, one entry a second.
type BaseSeries = Arc<Mutex<Vec<(u64, u64)>>>;

fn relay(tracker: SocketAddr, rng_seed: u64) -> NodeSpec {
    let mut pc = PeerConfig::relay(Policy::LayerP2P, SyntheticConfig::prototype().plan, Kbps(3000));
    pc.tracker = Some(tracker);
    pc.lag = Duration::from_secs(6);
    pc.startup = Duration::from_secs(5);
    NodeSpec { peer: pc, listen: free_port(), shards: 1, embedded_tracker: None, first_core: 1, rng_seed }
}

#[test]
fn a_draining_relays_viewers_keep_the_base_layer_every_second() {
    let video = SyntheticConfig::prototype();
    let tracker = free_port();
    let mut seed = PeerConfig::seed(Policy::LayerP2P, video.plan.clone(), Kbps(2000));
    seed.tracker = Some(tracker);
    seed.lag = Duration::from_secs(6);
    let seed_spec = NodeSpec {
        peer: seed,
        listen: free_port(),
        shards: 1,
        embedded_tracker: Some(tracker),
        first_core: 0,
        rng_seed: 1,
    };
    let source: Box<dyn LcSource> = Box::new(SyntheticSource::new(video.clone()).expect("source"));
    let seed = run_for(seed_spec, Some(source), None, RUN_SECS + 3);
    std::thread::sleep(Duration::from_millis(300));
    let relay_b = run_for(relay(tracker, 3), None, None, RUN_SECS + 2);
    // Relay A runs until its stop flag is set, as SIGTERM sets it.
    let drain = Arc::new(AtomicBool::new(false));
    let flag = drain.clone();
    let spec_a = relay(tracker, 2);
    let relay_a = std::thread::spawn(move || {
        let summary = run_node_playing(spec_a, None, None, flag, &mut |_| {}).expect("relay A runs");
        (summary, Instant::now())
    });
    std::thread::sleep(Duration::from_secs(1));

    let series: Vec<BaseSeries> = (0..VIEWERS).map(|_| Arc::default()).collect();
    let viewers: Vec<std::thread::JoinHandle<NodeSummary>> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut pc = PeerConfig::peer(Policy::LayerP2P, video.plan.clone(), Kbps(300));
            pc.tracker = Some(tracker);
            pc.lag = Duration::from_secs(6);
            pc.startup = Duration::from_secs(5);
            let spec = NodeSpec {
                peer: pc,
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                shards: 1,
                embedded_tracker: None,
                first_core: 1,
                rng_seed: 10 + i as u64,
            };
            let s = s.clone();
            std::thread::spawn(move || {
                let stop = Arc::new(AtomicBool::new(false));
                let timer = stop.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_secs(RUN_SECS));
                    timer.store(true, Ordering::Relaxed);
                });
                run_node_playing(spec, None, None, stop, &mut |st| {
                    let base =
                        (st.played_lcs.first().copied().unwrap_or(0), st.missed_lcs.first().copied().unwrap_or(0));
                    s.lock().expect("series").push(base);
                })
                .expect("viewer runs")
            })
        })
        .collect();

    std::thread::sleep(Duration::from_secs(DRAIN_AT_SECS));
    let drained_at = Instant::now();
    drain.store(true, Ordering::Relaxed);
    let (relay_a, exited_at) = relay_a.join().expect("relay A thread");
    let viewers: Vec<NodeSummary> = viewers.into_iter().map(|h| h.join().expect("viewer thread")).collect();
    let (relay_b, _seed) = (relay_b.join().expect("relay B"), seed.join().expect("seed"));
    eprintln!("relay A:\n{}relay B:\n{}", relay_a.text(), relay_b.text());

    assert!(exited_at - drained_at < Duration::from_secs(5), "relay A took {:?} to drain", exited_at - drained_at);
    assert!(relay_a.stats.lcs_up > 0, "relay A served viewers before it drained:\n{}", relay_a.text());
    for (v, s) in viewers.iter().zip(&series) {
        let s = s.lock().expect("series");
        let mut counted = 0;
        let mut worst: f64 = 1.0;
        for (second, w) in s.windows(2).enumerate() {
            let (played, missed) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
            if played + missed == 0 {
                continue; // before counting starts
            }
            counted += 1;
            let ratio = played as f64 / (played + missed) as f64;
            worst = worst.min(ratio);
            assert!(
                ratio >= 0.95,
                "second {second}: base layer {ratio:.3} ({played} played, {missed} missed)\n{}",
                v.text()
            );
        }
        eprintln!("viewer: {counted} s of base layer counted, worst second {worst:.3}");
        assert!(counted >= 10, "only {counted} seconds of base-layer playback counted\n{}", v.text());
    }
}
