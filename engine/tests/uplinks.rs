//! Measured uploads in the simulator (`Swarm::with_measured_uploads`): viewers are not
//! told their upload; each runs the delay-based controller (`--upload-kbps auto`)
//! behind an uplink of its scenario rate with a deep drop-tail buffer. Each finds its
//! uplink without filling the buffer, and the swarm still ranks viewers by upload.

use layerp2p_codec::Kbps;
use layerp2p_engine::sim::Swarm;
use layerp2p_engine::sim::scenario::prototype;
use layerp2p_engine::swarm::Mix;
use layerp2p_engine::swarm::report::SwarmReport;
use layerp2p_engine::{Policy, Time};
use std::time::Duration;

const PEERS: usize = 30;
const SECONDS: u64 = 150;
const JOIN_OVER: Duration = Duration::from_secs(10);

/// One estimate a second of each measured viewer: `(second, spec, uplink, estimate
/// kbps, queueing delay)`.
type Samples = Vec<(u64, usize, Kbps, Kbps, Option<Duration>)>;

/// The overloaded prototype swarm (free-riders, 300 and 700 kbps uplinks), told its
/// uploads or measuring them; the report, each measured viewer's estimate every
/// second, and the datagrams dropped at full uplinks.
fn run(measured: bool) -> (SwarmReport, Samples, u64) {
    let cfg = prototype(Policy::LayerP2P, &Mix::overloaded(), PEERS, JOIN_OVER, Duration::from_secs(SECONDS), 3);
    let mut swarm = Swarm::new(cfg).expect("valid scenario");
    if measured {
        swarm = swarm.with_measured_uploads();
    }
    let mut samples = Vec::new();
    for s in 1..=SECONDS {
        swarm.run_until(Time::from_secs(s));
        samples.extend(swarm.upload_estimates().into_iter().map(|(spec, up, est, d)| (s, spec, up, est, d)));
    }
    let drops = swarm.uplink_drops;
    let report = swarm.finish();
    eprintln!("measured {measured}: {drops} datagrams dropped at uplinks\n{}", report.table());
    (report, samples, drops)
}

/// The `q`-quantile of `v` (sorted in place).
fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q) as usize]
}

#[test]
fn measured_uploads_find_their_uplinks_and_keep_the_ranking() {
    let (told, _, _) = run(false);
    let (measured, samples, drops) = run(true);
    eprintln!("{drops} datagrams dropped at full uplinks; told\n{}\nmeasured\n{}", told.table(), measured.table());

    // Never above the uplink (beyond the controller's noise), and the queue short.
    for &(s, spec, up, est, _) in &samples {
        assert!(
            f64::from(est.0) <= 1.2 * f64::from(up.0),
            "viewer {spec} at {s} s: {} kbps on a {} kbps uplink",
            est.0,
            up.0
        );
    }
    let mut delays: Vec<f64> = samples.iter().filter_map(|s| s.4).map(|d| d.as_secs_f64() * 1e3).collect();
    let (p99, worst) = (quantile(&mut delays, 0.99), quantile(&mut delays, 1.0));
    eprintln!("queueing delay over {} viewer-seconds: p99 {p99:.0} ms, worst {worst:.0} ms", delays.len());
    assert!(p99 < 150.0, "p99 queueing delay {p99:.0} ms");

    // The 700 kbps viewers, whose neighbours ask them for more than that, find it:
    // their estimates over the last 30 s, median across them.
    let late = |spec: usize| {
        let mine: Vec<f64> =
            samples.iter().filter(|s| s.1 == spec && s.0 > SECONDS - 30).map(|s| f64::from(s.3.0)).collect();
        mine.iter().sum::<f64>() / mine.len().max(1) as f64
    };
    let mut specs: Vec<usize> = samples.iter().filter(|s| s.2 == Kbps(700)).map(|s| s.1).collect();
    specs.sort_unstable();
    specs.dedup();
    let mut estimates: Vec<f64> = specs.iter().map(|&s| late(s)).collect();
    let median = quantile(&mut estimates, 0.5);
    eprintln!("700 kbps uplinks, last 30 s: median estimate {median:.0} kbps (each: {estimates:.0?})");
    assert!(median >= 0.8 * 700.0, "median estimate {median:.0} kbps of 700");

    // Uploads measured, not told: the more a viewer uploads, the more it still plays.
    let rate = |r: &SwarmReport, name: &str| r.class(name).expect("class").rate_mean;
    let (high, low, free) =
        (rate(&measured, "institutional"), rate(&measured, "residential"), rate(&measured, "free-rider"));
    assert!(high > low + 50.0 && low > free + 50.0, "measured: {high:.0} / {low:.0} / {free:.0} kbps");
}
