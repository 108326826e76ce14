//! The upload a peer can actually sustain, measured rather than declared
//! (`--upload-kbps auto`): a delay-based controller in the spirit of LEDBAT
//! (RFC 6817). It owns the sending rate and the delay history; it never reads a clock
//! or touches a socket — `Peer` feeds it one-way delay samples and updates it once a
//! round.
//!
//! At the start of each round the peer sends every neighbour a `Ping`, alone and
//! ahead of the round's maps and requests, through its uplink's queue; the neighbour
//! answers at once with its clock at arrival minus our clock at sending. That less
//! the least such value from the same neighbour (the clocks' offset cancels) is the
//! queue at the round's start; one way, so the neighbour's own uplink queue, which
//! the answer crosses, does not count. The median across neighbours of each one's
//! least sample is the part they share: our uplink's (not the least across them: a
//! neighbour met while the queue was already long takes that queue for its base and
//! would hide it). A queue that grew since the last round means we send faster than
//! the uplink drains, and by how much: at rate r with the delay growing s seconds per
//! second, the uplink carries r / (1 + s). As soon as most neighbours have answered,
//! such growth cuts the rate to a little below that, so the queue drains back to the
//! target; that is a round trip into the round, not at its end. With the queue short
//! and steady the rate grows (more the further below the target the delay is), every
//! other round, because the round after a raise measured the queue before the raise
//! could show in it. So it settles where the uplink just starts to queue, and other
//! traffic that fills the queue makes it yield.
//!
//! The estimate (which sets l_n) and the pacing rate (which the token bucket gets)
//! differ when the peer sends less than it could: pacing stays within one growth
//! step of what was sent, so a sudden rise in demand cannot put more than a step's
//! worth of excess into the uplink's queue before the next update sees it.

use crate::time::Time;
use std::time::Duration;

/// Queueing delay the controller aims at (RFC 6817 allows at most 100 ms); low, as
/// the controller sees an overload only a round after it starts. A slow uplink aims
/// at `TARGET_PACKETS` largest datagrams' time instead, if longer: a ping that
/// follows one LC already waits that LC's time there.
pub const TARGET_DELAY: Duration = Duration::from_millis(25);
const TARGET_PACKETS: f64 = 2.0;
/// Bits of the largest datagram (an LC of 1250 bytes with its headers).
const LARGEST_DATAGRAM_BITS: f64 = 1300.0 * 8.0;
/// Growth per interval with an empty queue: this share of the rate, at least
/// `MIN_GROWTH_BPS`.
const GROWTH: f64 = 0.1;
const MIN_GROWTH_BPS: f64 = 40_000.0;
/// Near the rate of the last overload the rate grows only by this share per interval:
/// a deep uplink buffer fills within one interval once the rate is past the cap.
const PROBE_GROWTH: f64 = 0.02;
/// Where that slow probing starts, as a share of the last overload's rate.
const PROBE_FROM: f64 = 0.9;
/// Where it ends: past this share of the last overload's rate without a queue, the
/// uplink (or the traffic sharing it) has changed, and the rate grows fast again.
const PROBE_UNTIL: f64 = 1.1;
/// After an overload the rate is cut at most to this share of what was sent.
const LEAST_CUT: f64 = 0.7;
/// Pacing may exceed what was sent by at least this share of the estimate (more
/// while the estimate grows fast), so demand that varies a little is not choked.
const LEAST_HEADROOM: f64 = 0.03;
/// A queue above the target is drained within this share of an update interval.
const DRAIN_WITHIN: f64 = 0.5;
/// A delay growing slower than this (seconds per second) is noise, not an overload.
const GROWING: f64 = 0.01;
/// The rate never falls below this (control traffic and the first LCs must flow).
pub const MIN_RATE_BPS: f64 = 64_000.0;
/// Rate to start from: about the base layer of the prototype stream.
pub const START_RATE_BPS: f64 = 300_000.0;
/// The rate grows only while at least this share of it was used: an uplink used
/// below the rate says nothing about where it queues.
const USED_TO_GROW: f64 = 0.8;
/// Most delay samples kept per interval (a round brings one per neighbour).
const MAX_SAMPLES: usize = 1024;
/// A neighbour's least one-way delay is the least of the current and the previous
/// window this long, so it follows two clocks that drift apart.
const BASE_WINDOW: Duration = Duration::from_secs(60);
/// Most neighbours whose least one-way delay is kept.
const MAX_BASES: usize = 512;

/// The delay-based upload estimate.
#[derive(Clone, Debug)]
pub struct Uplink {
    rate_bps: f64,
    /// What the token bucket gets: at most the estimate, and near what was sent.
    pacing_bps: f64,
    max_bps: f64,
    /// Queueing-delay samples since the last update: when, microseconds, and from
    /// which neighbour.
    samples: Vec<(Time, u64, usize)>,
    last_update: Option<Time>,
    /// What the uplink carried when the queue last grew past the target (not what
    /// was sent: that was already above the cap, and probing would start past it).
    overload_bps: Option<f64>,
    /// Whether the last interval's queue was above the target (then what is sent
    /// while it drains says nothing about where the uplink starts to queue).
    draining: bool,
    /// The last interval: its length, what was sent in it, its queueing delay and how
    /// many neighbours reported it — what this interval's first samples are held to.
    last_interval: Option<Interval>,
    /// What the uplink carries, as this interval's samples measured it when they cut
    /// the rate before the interval ended.
    cut_early_at_bps: Option<f64>,
    /// Whether the last update raised the rate: its samples were taken before the
    /// raise could show in the queue, so the next update holds the rate.
    raised: bool,
    /// Each neighbour's least one-way delay (clock offset included).
    bases: Vec<Base>,
}

/// The least one-way delay to one neighbour, over two windows of `BASE_WINDOW`.
#[derive(Clone, Copy, Debug)]
struct Base {
    neighbour: usize,
    window_start: Time,
    current: i64,
    previous: i64,
}

impl Base {
    /// Takes in `one_way` at `now` and returns the least.
    fn least(&mut self, now: Time, one_way: i64) -> i64 {
        if now.since(self.window_start) >= BASE_WINDOW {
            (self.previous, self.current, self.window_start) = (self.current, one_way, now);
        }
        self.current = self.current.min(one_way);
        self.current.min(self.previous)
    }
}

/// One update interval as the next one sees it.
#[derive(Clone, Copy, Debug)]
struct Interval {
    secs: f64,
    sent_bps: f64,
    delay_us: u64,
    neighbours: usize,
}

impl Interval {
    /// How fast the queue grew (seconds per second) from this interval's delay to
    /// the next one's, `delay_us`.
    fn slope(&self, delay_us: u64) -> f64 {
        (delay_us as f64 - self.delay_us as f64) / 1e6 / self.secs.max(1e-3)
    }
}

impl Uplink {
    /// A controller that will never estimate above `max_bps`.
    pub fn new(max_bps: f64) -> Uplink {
        Uplink {
            rate_bps: START_RATE_BPS.min(max_bps),
            pacing_bps: START_RATE_BPS.min(max_bps),
            max_bps,
            samples: Vec::new(),
            last_update: None,
            overload_bps: None,
            draining: false,
            last_interval: None,
            cut_early_at_bps: None,
            raised: false,
            bases: Vec::new(),
        }
    }

    /// The estimated upload in bits per second.
    pub fn rate_bps(&self) -> f64 {
        self.rate_bps
    }

    /// The rate to pace uploads at: the estimate, or less while demand is below it.
    pub fn pacing_bps(&self) -> f64 {
        self.pacing_bps
    }

    /// Queueing delay measured over the last update interval.
    pub fn queueing_delay(&self) -> Option<Duration> {
        self.last_interval.map(|i| Duration::from_micros(i.delay_us))
    }

    /// A one-way delay measured at `now` by `neighbour` (any stable key): its clock
    /// when our Ping arrived minus ours when we sent it, in microseconds (wrapping;
    /// the clocks' offset cancels against its least). Returns true when it changed
    /// the pacing rate: once most neighbours have reported a queue that grew since the
    /// last interval, the rate is cut at once rather than when the interval ends,
    /// since each interval the queue keeps growing adds to it what the sender sends
    /// above the uplink's rate.
    pub fn on_one_way(&mut self, now: Time, one_way: u64, neighbour: usize) -> bool {
        let one_way = one_way as i64;
        let base = match self.bases.iter_mut().find(|b| b.neighbour == neighbour) {
            Some(b) => b.least(now, one_way),
            None => {
                if self.bases.len() >= MAX_BASES {
                    self.bases.remove(0);
                }
                self.bases.push(Base { neighbour, window_start: now, current: one_way, previous: one_way });
                one_way
            }
        };
        let queue_us = one_way.wrapping_sub(base).max(0) as u64;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push((now, queue_us, neighbour));
        }
        let Some(last) = self.last_interval.filter(|_| self.cut_early_at_bps.is_none()) else { return false };
        let (delay_us, heard) = shared_delay(self.samples.iter());
        let Some(delay_us) = delay_us.filter(|_| 2 * heard > last.neighbours) else { return false };
        let slope = last.slope(delay_us);
        if slope <= GROWING {
            return false;
        }
        self.cut_early_at_bps = Some(self.react(delay_us, slope, last.sent_bps));
        true
    }

    /// `neighbour` is gone: the key may come back for another, with another clock.
    pub fn forget(&mut self, neighbour: usize) {
        self.bases.retain(|b| b.neighbour != neighbour);
    }

    /// Once per interval, at `now`: `sent_bps` is what was actually uploaded in it.
    /// Returns the new estimate (`pacing_bps` has the rate to send at).
    pub fn update(&mut self, now: Time, sent_bps: f64) -> f64 {
        let since = self.last_update.replace(now);
        let samples = std::mem::take(&mut self.samples);
        let cut_early_at = self.cut_early_at_bps.take();
        let Some(since) = since.filter(|_| !samples.is_empty()) else {
            self.pacing_bps = self.pacing_bps.min(self.rate_bps);
            return self.rate_bps;
        };
        // Every sample of an interval measured the queue at its start, when the pings
        // left: the queue grew by the difference since the last interval's.
        let (delay_us, neighbours) = shared_delay(samples.iter());
        let delay_us = delay_us.unwrap_or(0);
        let slope = self.last_interval.map_or(0.0, |last| last.slope(delay_us));
        self.last_interval = Some(Interval { secs: now.since(since).as_secs_f64(), sent_bps, delay_us, neighbours });
        let target = self.target_us();
        let excess_s = (delay_us as f64 - target).max(0.0) / 1e6;
        if self.overload_bps.is_some_and(|o| self.rate_bps > PROBE_UNTIL * o) {
            self.overload_bps = None;
        }
        let near_overload = self.overload_bps.is_some_and(|o| self.rate_bps >= PROBE_FROM * o);
        let step =
            if near_overload { PROBE_GROWTH * self.rate_bps } else { (GROWTH * self.rate_bps).max(MIN_GROWTH_BPS) };
        if let Some(carried) = cut_early_at {
            // This interval's samples already cut the rate to what the uplink carries;
            // only the queue they did not see yet remains to drain.
            let cut = (carried * (1.0 - excess_s / DRAIN_WITHIN)).max(LEAST_CUT * carried);
            self.rate_bps = self.rate_bps.min(cut);
            self.pacing_bps = self.pacing_bps.min(cut);
        } else if slope > GROWING || excess_s > 0.0 {
            self.react(delay_us, slope, sent_bps);
        } else {
            // Only an uplink used near the estimate says where it queues, and only
            // samples taken after the last raise say what it did.
            let raise = !self.raised && sent_bps >= USED_TO_GROW * self.rate_bps;
            if raise {
                let room = (target - delay_us as f64) / target;
                self.rate_bps += step * room;
            }
            self.raised = raise;
            let headroom = step.max(LEAST_HEADROOM * self.rate_bps);
            self.pacing_bps = self.rate_bps.min(sent_bps + headroom);
        }
        self.draining = excess_s > 0.0;
        self.clamp();
        self.rate_bps
    }

    /// The queue grows (`slope`, seconds per second) or stands above the target
    /// (`delay_us`) while `sent_bps` is sent: cuts the rate to what the uplink
    /// carried, less enough to drain the excess soon. Returns what it carried.
    fn react(&mut self, delay_us: u64, slope: f64, sent_bps: f64) -> f64 {
        let excess_s = (delay_us as f64 - self.target_us()).max(0.0) / 1e6;
        let sent = sent_bps.min(self.pacing_bps);
        let carried = if slope > GROWING { sent / (1.0 + slope) } else { sent.max(self.pacing_bps * 0.9) };
        let cut = (carried * (1.0 - excess_s / DRAIN_WITHIN)).max(LEAST_CUT * sent);
        self.rate_bps = self.rate_bps.min(cut);
        self.pacing_bps = cut;
        if !self.draining {
            self.overload_bps = Some(carried);
        }
        self.clamp();
        carried
    }

    /// The queueing delay aimed at, in microseconds, at the current rate.
    fn target_us(&self) -> f64 {
        let packets_us = TARGET_PACKETS * LARGEST_DATAGRAM_BITS / self.rate_bps * 1e6;
        (TARGET_DELAY.as_micros() as f64).max(packets_us)
    }

    fn clamp(&mut self) {
        self.rate_bps = self.rate_bps.clamp(MIN_RATE_BPS, self.max_bps);
        self.pacing_bps = self.pacing_bps.clamp(MIN_RATE_BPS.min(self.rate_bps), self.rate_bps);
    }
}

/// The median over neighbours of each one's least delay sample, and how many
/// neighbours there were.
fn shared_delay<'a>(samples: impl Iterator<Item = &'a (Time, u64, usize)>) -> (Option<u64>, usize) {
    let mut least: Vec<(usize, u64)> = Vec::new();
    for &(_, d, n) in samples {
        match least.iter_mut().find(|(k, _)| *k == n) {
            Some((_, l)) => *l = (*l).min(d),
            None => least.push((n, d)),
        }
    }
    let mut delays: Vec<u64> = least.into_iter().map(|(_, d)| d).collect();
    delays.sort_unstable();
    (delays.get(delays.len().saturating_sub(1) / 2).copied(), delays.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A capped uplink as a fluid queue: the sender offers `rate` for `dt`, the link
    /// drains `cap`; a packet's added delay is the backlog over the cap.
    struct Bottleneck {
        cap_bps: f64,
        backlog_bits: f64,
        /// Other traffic sharing the uplink.
        cross_bps: f64,
    }

    impl Bottleneck {
        fn step(&mut self, offered_bps: f64, dt: f64) -> (f64, Duration) {
            let arriving = (offered_bps + self.cross_bps) * dt;
            let drained = (self.backlog_bits + arriving).min(self.cap_bps * dt);
            self.backlog_bits = (self.backlog_bits + arriving - drained).max(0.0);
            let ours = drained * offered_bps / (offered_bps + self.cross_bps).max(1.0);
            (ours / dt, Duration::from_secs_f64(self.backlog_bits / self.cap_bps))
        }
    }

    /// Runs the controller for `secs` against `link` with ten neighbours answering its
    /// pings each round (base 40 ms); returns the rate after each second and the worst
    /// delay from second 5 on (printed second by second for a failing run).
    fn run(link: &mut Bottleneck, secs: usize) -> (Vec<f64>, Duration) {
        run_with_demand(link, secs, &|_| f64::INFINITY)
    }

    /// `run`, with the peer having only `demand(second)` to send.
    fn run_with_demand(link: &mut Bottleneck, secs: usize, demand: &dyn Fn(usize) -> f64) -> (Vec<f64>, Duration) {
        run_seen_by(link, secs, demand, false)
    }

    /// `run_with_demand`; with `hidden_queue`, one neighbour is new each round, so it
    /// takes the current queue for its base (it sees no delay at all).
    fn run_seen_by(
        link: &mut Bottleneck,
        secs: usize,
        demand: &dyn Fn(usize) -> f64,
        hidden_queue: bool,
    ) -> (Vec<f64>, Duration) {
        let mut up = Uplink::new(100e6);
        let base = Duration::from_millis(40);
        let mut rates = Vec::new();
        let mut worst = Duration::ZERO;
        up.update(Time::ZERO, 0.0);
        // Pings leave at the start of each round, through the queue; each
        // neighbour's pong comes back a round trip later.
        let mut queue_at_start = Duration::ZERO;
        let mut trace = Vec::new();
        for s in 0..secs {
            let mut sent = 0.0;
            let mut second_worst = Duration::ZERO;
            let arrives = base + queue_at_start;
            for k in 0..10 {
                let offered = up.pacing_bps().min(demand(s));
                let (_, delay) = link.step(offered, 0.1);
                // What the peer counts: what it handed to the socket.
                sent += offered * 0.1;
                second_worst = second_worst.max(delay);
                if s >= 5 {
                    worst = worst.max(delay);
                }
                let step_end = Duration::from_millis((k + 1) * 100);
                if arrives < step_end && arrives + Duration::from_millis(100) >= step_end {
                    // Ten neighbours; the last was met late, with the queue in its base.
                    for n in 0..10 {
                        let now = Time::from_millis(s as u64 * 1000) + arrives + Duration::from_millis(n);
                        // Each neighbour's clock is off ours by its own amount, some behind.
                        let offset = (n as i64 - 5) * 3_600_000_000;
                        let one_way = (base + queue_at_start).as_micros() as i64 + offset;
                        if hidden_queue && n == 9 {
                            // Met anew each round: it takes the current queue for its base.
                            up.forget(9);
                        }
                        up.on_one_way(now, one_way as u64, n as usize);
                    }
                }
            }
            queue_at_start = Duration::from_secs_f64(link.backlog_bits / link.cap_bps);
            trace.push(format!("{:.0}/{}", up.rate_bps() / 1e3, second_worst.as_millis()));
            up.update(Time::from_secs(s as u64 + 1), sent);
            rates.push(up.rate_bps());
        }
        eprintln!("cap {:.0} kbps, kbps/ms each second: {}", link.cap_bps / 1e3, trace.join(" "));
        (rates, worst)
    }

    #[test]
    fn finds_a_capped_uplink_within_a_minute_and_keeps_its_queue_short() {
        for cap in [500_000.0, 1_500_000.0, 5_000_000.0] {
            let mut link = Bottleneck { cap_bps: cap, backlog_bits: 0.0, cross_bps: 0.0 };
            let (rates, worst) = run(&mut link, 90);
            for &r in &rates[60..] {
                assert!((r / cap - 1.0).abs() <= 0.2, "cap {cap}: estimate {r:.0} after 60 s");
            }
            assert!(worst < Duration::from_millis(150), "cap {cap}: added delay up to {worst:?}");
        }
    }

    #[test]
    fn a_sudden_rise_in_demand_does_not_flood_the_queue() {
        // Asked for a little less than the cap for a minute, the estimate may drift
        // above it; then demand jumps: pacing kept near what was sent stops a flood.
        let cap = 500_000.0;
        let mut link = Bottleneck { cap_bps: cap, backlog_bits: 0.0, cross_bps: 0.0 };
        let demand = |s: usize| if s < 60 || (70..80).contains(&s) { 0.9 * cap } else { 2.0 * cap };
        let (rates, worst) = run_with_demand(&mut link, 120, &demand);
        assert!(worst < Duration::from_millis(150), "added delay up to {worst:?} when demand rose");
        let last = rates[rates.len() - 1];
        assert!((last / cap - 1.0).abs() <= 0.2, "estimate {last:.0} at the end");
    }

    #[test]
    fn a_neighbour_that_took_the_queue_for_its_base_does_not_hide_it() {
        let cap = 500_000.0;
        let mut link = Bottleneck { cap_bps: cap, backlog_bits: 0.0, cross_bps: 0.0 };
        let (rates, worst) = run_seen_by(&mut link, 90, &|_| f64::INFINITY, true);
        assert!(worst < Duration::from_millis(150), "added delay up to {worst:?}");
        let last = rates[rates.len() - 1];
        assert!((last / cap - 1.0).abs() <= 0.2, "estimate {last:.0} at the end");
    }

    #[test]
    fn yields_to_other_traffic_on_the_uplink() {
        let cap = 1_500_000.0;
        let mut link = Bottleneck { cap_bps: cap, backlog_bits: 0.0, cross_bps: 1_000_000.0 };
        let (rates, _) = run(&mut link, 90);
        let last = rates[rates.len() - 1];
        assert!(last < 0.7 * cap, "with 1 Mbit/s of other traffic the estimate is {last:.0}");
    }

    #[test]
    fn an_idle_uplink_does_not_grow_the_estimate() {
        let mut up = Uplink::new(10e6);
        for s in 0..30 {
            up.on_one_way(Time::from_secs(s), 40_000, 0);
            up.update(Time::from_secs(s + 1), 0.0);
        }
        assert_eq!(up.rate_bps(), START_RATE_BPS);
    }
}
