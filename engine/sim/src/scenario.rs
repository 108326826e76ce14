//! Scenarios from the paper: upload mixes (DESIGN.md §9 Table I), flash-crowd arrivals, and
//! the trace-driven simulation (sessions from a `Trace`, uploads from a `Mix`).

use super::SwarmConfig;
use super::trace::Trace;
use layerp2p_codec::Kbps;
use layerp2p_codec::synthetic::{PayloadKind, SyntheticConfig};
use layerp2p_proto::config::PeerConfig;
use layerp2p_proto::policy::Policy;
use layerp2p_proto::swarm::{Mix, PeerSpec};
use layerp2p_proto::time::Time;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// The prototype experiment (DESIGN.md §9) in simulation: one seed at 2 Mbps, the
/// prototype video (290/230/100 kbps VBR), a flash crowd of `n` peers.
pub fn prototype(
    policy: Policy,
    mix: &Mix,
    n: usize,
    join_over: Duration,
    duration: Duration,
    seed: u64,
) -> SwarmConfig {
    let source = SyntheticConfig { payload: PayloadKind::Phantom, seed, ..SyntheticConfig::prototype() };
    // The simulator's tracker lists plain random samples (`TrackerConfig::one_prefix`).
    let peer = PeerConfig { list_head_tries: 0, ..PeerConfig::peer(policy, source.plan.clone(), Kbps(0)) };
    SwarmConfig {
        peer,
        seed_upload: Kbps(2000),
        seed_n_max: 20,
        latency: Duration::from_millis(50),
        download: None,
        classes: mix.names(),
        peers: mix.flash_crowd(n, join_over, seed),
        duration,
        seed,
        source,
    }
}

/// How a trace's sessions get their classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClassDraw {
    /// Exact counts per class, shuffled over the sessions (each class its share of
    /// the sessions; its share of the viewing time is left to chance).
    #[default]
    Sessions,
    /// Each class its share of the viewing time (`Mix::assign_by_time`), so the
    /// window's supply over demand is the mix's resource index.
    ViewingTime,
}

/// The trace-driven simulation (DESIGN.md §9): the simulated video (3 x 200 kbps CBR in
/// 1250-byte LCs), one 2 Mbps seed, and one viewer per session of `trace` that
/// arrives before `duration`, with uploads from `mix` (classes drawn as `draw` says).
/// `latency` is the one-way delay of every message on top of an LC's transfer time;
/// zero is the paper's instantaneous signalling.
pub fn trace_driven(
    policy: Policy,
    mix: &Mix,
    trace: &Trace,
    draw: ClassDraw,
    duration: Duration,
    latency: Duration,
    seed: u64,
) -> SwarmConfig {
    let source = SyntheticConfig { payload: PayloadKind::Phantom, seed, ..SyntheticConfig::simulation() };
    // The simulator's tracker lists plain random samples (`TrackerConfig::one_prefix`);
    // its reports show no latencies, so its viewers record none (memory per viewer).
    let peer = PeerConfig {
        list_head_tries: 0,
        record_latency: false,
        ..PeerConfig::peer(policy, source.plan.clone(), Kbps(0))
    };
    let end = Time(duration.as_micros() as u64);
    let sessions: Vec<_> = trace.sessions.iter().filter(|s| s.arrival < end).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x006d_6978);
    let classes = match draw {
        ClassDraw::Sessions => mix.assign(sessions.len(), &mut rng),
        ClassDraw::ViewingTime => {
            let seconds: Vec<f64> =
                sessions.iter().map(|s| s.departure.min(end).since(s.arrival).as_secs_f64()).collect();
            mix.assign_by_time(&seconds, &mut rng)
        }
    };
    let peers = sessions
        .iter()
        .zip(classes)
        .map(|(s, class)| PeerSpec {
            class,
            upload: mix.classes[class].upload,
            join: s.arrival,
            leave: (s.departure < end).then_some(s.departure),
        })
        .collect();
    SwarmConfig {
        peer,
        seed_upload: Kbps(2000),
        seed_n_max: 20,
        latency,
        download: None,
        classes: mix.names(),
        peers,
        duration,
        seed,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_codec::LayerPlan;
    use rand::Rng;

    #[test]
    fn table_one_resource_indices() {
        let plan = LayerPlan::prototype();
        assert!((Mix::underloaded().resource_index(&plan) - 1.23).abs() < 0.01);
        assert!((Mix::overloaded().resource_index(&plan) - 0.82).abs() < 0.01);
    }

    #[test]
    fn assignment_by_time_gives_each_class_its_share_of_the_viewing_time() {
        // Heavy-tailed lengths: a few sessions of hours among many of minutes.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let seconds: Vec<f64> = (0..500).map(|_| 20.0 * (rng.random_range(0.0..9.0f64)).exp()).collect();
        let mix = Mix::table_two(layerp2p_proto::swarm::Load::Overloaded);
        let total: f64 = seconds.iter().sum();
        let share_of_time = |classes: &[usize], c: usize| {
            classes.iter().zip(&seconds).filter(|(k, _)| **k == c).map(|(_, s)| s).sum::<f64>() / total
        };
        let index = |classes: &[usize]| {
            (0..mix.classes.len()).map(|c| share_of_time(classes, c) * mix.classes[c].upload.0 as f64).sum::<f64>()
                / 600.0
        };
        let by_time = mix.assign_by_time(&seconds, &mut ChaCha8Rng::seed_from_u64(1));
        let nominal = mix.resource_index(&LayerPlan::simulation());
        assert!((index(&by_time) - nominal).abs() < 0.01, "by time {:.3} vs nominal {nominal:.3}", index(&by_time));
        // Session counts stay close to the shares too (the many short sessions are
        // spread in proportion).
        for (c, class) in mix.classes.iter().enumerate() {
            let count = by_time.iter().filter(|&&k| k == c).count() as f64 / 500.0;
            assert!(
                (count - class.share).abs() < 0.05,
                "{}: {count:.3} of the sessions, share {}",
                class.name,
                class.share
            );
        }
        // A plain shuffle of exact counts leaves the viewing time to chance: over a
        // few draws its index strays further from the nominal one.
        let worst = (0..8)
            .map(|k| (index(&mix.assign(500, &mut ChaCha8Rng::seed_from_u64(k))) - nominal).abs())
            .fold(0.0, f64::max);
        assert!(worst > 0.02, "shuffled draws all within {worst:.3} of nominal");
    }

    #[test]
    fn assignment_counts_are_exact() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let classes = Mix::overloaded().assign(50, &mut rng);
        let count = |c| classes.iter().filter(|&&x| x == c).count();
        assert_eq!((count(0), count(1), count(2)), (5, 15, 30));
    }

    #[test]
    fn flash_crowd_joins_within_window_sorted() {
        let peers = Mix::underloaded().flash_crowd(100, Duration::from_secs(120), 4);
        assert_eq!(peers.len(), 100);
        assert!(peers.windows(2).all(|w| w[0].join <= w[1].join));
        assert!(peers.iter().all(|p| p.join < Time::from_secs(120)));
    }
}
