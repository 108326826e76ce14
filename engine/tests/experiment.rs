//! A shortened prototype experiment (DESIGN.md §9), two ways.
//!
//! On real loopback UDP: 40 viewers of Table I's overloaded mix join over 10 s and
//! stay 45 s under LayerP2P, the seed streaming the built-in H.264 clip. Asserts that
//! contributors play more than free-riders, that residential peers protect their base
//! layer, that the watched viewers yield a time series and PSNR, and that the real
//! swarm gives what the chunk-level simulator gives for the very same setup (the
//! runtime is faithful to the core). About a minute of wall time.
//!
//! In the simulator (a few CPU seconds): 100 viewers with the paper's lag and rate
//! window, joining over 10 s and staying 120 s. Asserts the full published order,
//! institutional > residential > free-riders. The real 40-viewer, 55 s swarm cannot
//! assert institutional > residential: with a 10 s lag and so few rounds, the core
//! itself gives the two classes the same rate within ±10 kbps (checked in the
//! simulator over six seeds), so that order would be a coin flip.

use layerp2p_codec::Kbps;
use layerp2p_engine::lab::experiment::{Prototype, Stream, encode_clip, run_observed, simulate};
use layerp2p_engine::swarm::Mix;
use layerp2p_engine::{NeighbourOverrides, Policy};
use std::time::Duration;

#[test]
fn shortened_prototype_orders_classes_by_contribution() {
    let clip = encode_clip(layerp2p_codec::video::Resolution::QCIF, 16).expect("clip encodes");
    let setup = Prototype {
        mix: Mix::overloaded(),
        peers: 40,
        join_over: Duration::from_secs(10),
        stay: Duration::from_secs(45),
        lag: Duration::from_secs(10),
        startup: Duration::from_secs(12),
        // The paper's 2 Mbps seed serves 100 peers; the same share for 40 keeps the
        // swarm overloaded rather than rescued by the seed.
        seed_upload: Kbps(800),
        seed_n_max: 20,
        shards: 2,
        links: Default::default(),
        watch_per_class: 2,
        incentive: Default::default(),
        // Tit-for-tat tells peers apart once d(n,k) has been measured: a 4 s rate
        // window (instead of 10 s) makes that happen within a short run.
        neighbours: NeighbourOverrides { rate_window: Some(Duration::from_secs(4)), ..Default::default() },
        seed: 11,
    };
    let plan = Stream::Clip(&clip).source().expect("clip source").plan().clone();
    let cfg = setup.swarm(Policy::LayerP2P, 0, plan);
    assert_eq!(cfg.peer.rate_window, Duration::from_secs(4), "the prototype applies its neighbour overrides");
    let simulated =
        simulate(cfg.clone(), Stream::Clip(&clip).source().expect("clip source"), Duration::ZERO).expect("simulates");
    let observed = run_observed(cfg, Stream::Clip(&clip), setup.watch_per_class, &mut |_| {}).expect("swarm runs");
    let report = &observed.local.swarm;
    eprintln!(
        "real UDP:\n{}simulated:\n{}{:?}\nshard CPU s {:?}",
        report.table(),
        simulated.table(),
        observed.psnr,
        observed.local.shard_cpu_s
    );
    let class = |name: &str| report.class(name).unwrap_or_else(|| panic!("class {name}"));
    let (free, res, inst) = (class("free-rider"), class("residential"), class("institutional"));
    assert!(inst.peers > 0 && res.peers > 0 && free.peers > 0, "every class counted");
    // Contributors play more than free-riders. Margins leave room for a busy 2-core
    // machine delaying a real-time swarm (the simulator gives 60+ kbps).
    for c in [res, inst] {
        assert!(
            c.rate_mean > free.rate_mean + 30.0,
            "{} {:.0} vs free-riders {:.0} kbps",
            c.name,
            c.rate_mean,
            free.rate_mean
        );
    }
    // A residential peer's base layer is protected over its probing layers.
    assert!(res.alpha[0] > res.alpha[2] + 0.1, "residential alpha {:?}", res.alpha);
    // The runtime is faithful to the core: every class plays what the simulator
    // gives for the same peers, join times, seed and video, within 15 % of the full
    // rate (a CPU-starved executor that runs rounds late falls below this).
    let tolerance = 0.15 * f64::from(report.full_rate_kbps);
    for (real, sim) in report.classes.iter().zip(&simulated.classes) {
        assert!(
            (real.rate_mean - sim.rate_mean).abs() < tolerance,
            "{}: real swarm {:.0} kbps, simulator {:.0} kbps (tolerance {tolerance:.0})",
            real.name,
            real.rate_mean,
            sim.rate_mean
        );
    }
    // Every class has a typical peer with a per-second series that saw playback.
    for (c, t) in observed.typical.iter().enumerate() {
        let t = t.as_ref().unwrap_or_else(|| panic!("class {c} has a typical peer"));
        assert!(t.at_s.len() >= 30, "class {c}: {} samples", t.at_s.len());
        assert!(t.played_kbps().iter().any(|&k| k > 0.0), "class {c} played nothing");
    }
    // The watched viewers' playback was decoded and scored, every class.
    let psnr = observed.psnr.as_ref().expect("PSNR with the clip");
    for (c, q) in psnr.iter().enumerate() {
        assert_eq!(q.scored, 2, "class {c}");
        assert!(q.quality.overall().is_some_and(|db| db > 10.0), "class {c}: {:?}", q.quality.overall());
    }
}

#[test]
fn simulated_prototype_gives_the_published_order() {
    let setup = Prototype {
        mix: Mix::overloaded(),
        peers: 100,
        join_over: Duration::from_secs(10),
        stay: Duration::from_secs(120),
        lag: Duration::from_secs(30),
        startup: Duration::from_secs(15),
        seed_upload: Kbps(2000),
        seed_n_max: 20,
        shards: 1,
        links: Default::default(),
        watch_per_class: 1,
        incentive: Default::default(),
        neighbours: Default::default(),
        seed: 11,
    };
    let report = setup.simulate(Policy::LayerP2P, 0, None, Duration::ZERO).expect("simulates").report;
    eprintln!("{}", report.table());
    let class = |name: &str| report.class(name).unwrap_or_else(|| panic!("class {name}"));
    let (free, res, inst) = (class("free-rider"), class("residential"), class("institutional"));
    assert!(
        inst.rate_mean > res.rate_mean + 10.0,
        "institutional {:.0} vs residential {:.0} kbps",
        inst.rate_mean,
        res.rate_mean
    );
    assert!(
        res.rate_mean > free.rate_mean + 100.0,
        "residential {:.0} vs free-riders {:.0} kbps",
        res.rate_mean,
        free.rate_mean
    );
    // The base layer is protected: residential peers get nearly all of it.
    assert!(res.alpha[0] > 0.9, "residential alpha {:?}", res.alpha);
}
