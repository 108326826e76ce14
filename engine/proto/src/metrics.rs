//! Latency metrics: HDR histograms that the protocol core records into with the `now`
//! its driver gives it (so they are as deterministic as the core), and the bounded
//! table of outstanding requests the receiver-side delivery latency is measured from.
//! Owns no clock and no I/O; drivers only read and merge what is recorded here.

use crate::time::Time;
use hdrhistogram::Histogram;
use layerp2p_codec::LcId;
use serde::{Serialize, Serializer};
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// Largest latency a histogram resolves; longer samples are clamped to it (a request
/// is dropped by its supplier long before: ttl is a few rounds, lag 30 s).
const MAX_LATENCY_US: u64 = 60_000_000;
/// Smallest latency told apart from zero: 100 µs (samples below it share a bucket).
const MIN_LATENCY_US: u64 = 100;
/// Two significant digits: 1 % resolution. With the bounds above and `u32` counts a
/// histogram is ~7 KB (it was ~23 KB with 1 µs..300 s and `u64` counts, two per peer).
const SIGNIFICANT_DIGITS: u8 = 2;
/// Most outstanding requests whose send time a receiver remembers.
pub const MAX_TRACKED_REQUESTS: usize = 16_384;

/// A latency distribution in microseconds. Serialises as its [`LatencySummary`].
/// The histogram is allocated on the first sample, so a node that never records
/// (a supplier nobody asks) costs one pointer.
#[derive(Clone, Debug, Default)]
pub struct Latency {
    hist: Option<Box<Histogram<u32>>>,
}

fn new_histogram() -> Box<Histogram<u32>> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
    // sigfig <= 5), so construction cannot fail.
    Box::new(
        Histogram::new_with_bounds(MIN_LATENCY_US, MAX_LATENCY_US, SIGNIFICANT_DIGITS)
            .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid")),
    )
}

impl Latency {
    /// An empty distribution; allocates nothing until the first sample.
    pub fn new() -> Latency {
        Latency::default()
    }

    /// Records one sample; zero is recorded as 1 µs, beyond the bound as the bound.
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros().min(MAX_LATENCY_US as u128) as u64).max(1);
        self.hist.get_or_insert_with(new_histogram).saturating_record(us);
    }

    /// Adds every sample of `other` (both have the same bounds, so this cannot fail;
    /// a count beyond `u32::MAX` in one bucket saturates).
    pub fn merge(&mut self, other: &Latency) {
        if let Some(theirs) = &other.hist {
            let _ = self.hist.get_or_insert_with(new_histogram).add(theirs.as_ref());
        }
    }

    /// Heap bytes this distribution holds (0 until the first sample).
    pub fn heap_bytes(&self) -> usize {
        self.hist
            .as_ref()
            .map_or(0, |h| h.distinct_values() * std::mem::size_of::<u32>() + std::mem::size_of::<Histogram<u32>>())
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, |h| h.len())
    }

    /// The histogram, if it holds any sample.
    fn filled(&self) -> Option<&Histogram<u32>> {
        self.hist.as_deref().filter(|h| !h.is_empty())
    }

    /// Value at quantile `q` (0..=1), zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        self.filled().map_or(Duration::ZERO, |h| Duration::from_micros(h.value_at_quantile(q)))
    }

    /// For each bound (ascending), how many samples are at or below it: the cumulative
    /// buckets of a Prometheus histogram. One pass over the recorded buckets.
    pub fn cumulative_counts(&self, bounds: &[Duration]) -> Vec<u64> {
        let mut counts = vec![0u64; bounds.len()];
        let Some(h) = self.filled() else { return counts };
        for v in h.iter_recorded() {
            let at = Duration::from_micros(v.value_iterated_to());
            let first = bounds.partition_point(|b| *b < at);
            counts.iter_mut().skip(first).for_each(|c| *c += u64::from(v.count_at_value()));
        }
        counts
    }

    /// Sum of all samples, as the histogram resolves them (mean x count).
    pub fn sum(&self) -> Duration {
        self.filled().map_or(Duration::ZERO, |h| Duration::from_secs_f64(h.mean() * h.len() as f64 / 1e6))
    }

    /// Count, mean, percentiles and maximum, in milliseconds (all zero when empty).
    pub fn summary(&self) -> LatencySummary {
        let ms = |q: f64| self.quantile(q).as_secs_f64() * 1e3;
        LatencySummary {
            count: self.count(),
            mean_ms: self.filled().map_or(0.0, |h| h.mean() / 1e3),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.filled().map_or(0.0, |h| h.max() as f64 / 1e3),
        }
    }
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.summary().serialize(s)
    }
}

/// The percentiles printed in summaries and written to JSON, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Arithmetic mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest sample.
    pub max_ms: f64,
}

impl fmt::Display for LatencySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "n={} p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  p99.9 {:.1} ms  max {:.1} ms",
            self.count, self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }
}

/// The two latencies a node records.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latencies {
    /// Supplier side: a request's arrival to its LC being handed to the driver.
    pub request_to_send: Latency,
    /// Receiver side: a request being sent to the LC arriving (latest request wins
    /// when an LC was requested again).
    pub delivery: Latency,
}

impl Latencies {
    /// Adds every sample of `other`'s two distributions to this node's.
    pub fn merge(&mut self, other: &Latencies) {
        self.request_to_send.merge(&other.request_to_send);
        self.delivery.merge(&other.delivery);
    }
}

/// When each outstanding request left the receiver: per layer, a run of send times
/// indexed by sequence (requests are a window's missing LCs, so they are dense). A
/// hash map keyed by LC cost a hash insert per request id, re-asked every round (~6 %
/// of a simulation's instructions), and more memory than the run. A run spans at most
/// [`MAX_TRACKED_REQUESTS`] sequences per layer; requests beyond go untracked. Times
/// are 32-bit offsets from an epoch the prune moves up (a request lives a few rounds),
/// half the memory of absolute times.
#[derive(Debug, Default)]
pub struct RequestTimes {
    layers: Vec<SentRun>,
    /// Requests sent before this were dropped by their suppliers: not counted.
    horizon: Time,
    /// What the stored times count from (µs).
    epoch: u64,
}

/// Send times (µs after the epoch) of sequences `base..base + times.len()` of one
/// layer; `NOT_SENT` where there is none.
#[derive(Debug, Default)]
struct SentRun {
    base: u32,
    times: VecDeque<u32>,
}

const NOT_SENT: u32 = u32::MAX;
/// The epoch moves up once the horizon is this far past it (µs, ~36 min), leaving
/// as much room again before an offset would not fit.
const EPOCH_SPAN: u64 = 1 << 31;

impl SentRun {
    #[inline]
    fn index(&self, seq: u32) -> Option<usize> {
        let i = seq.checked_sub(self.base)? as usize;
        (i < self.times.len()).then_some(i)
    }
}

impl RequestTimes {
    /// Notes that `id` was requested at `now` (untracked if the layer's run would span
    /// more than [`MAX_TRACKED_REQUESTS`] sequences).
    #[inline]
    pub fn requested(&mut self, id: LcId, now: Time) {
        let at = self.offset(now);
        // Mostly an LC asked again, within the run: one store.
        if let Some(run) = self.layers.get_mut(id.layer.index())
            && let Some(i) = run.index(id.seq.0)
        {
            run.times[i] = at;
            return;
        }
        self.requested_outside(id, at);
    }

    /// `now` as an offset from the epoch, moving the epoch up if it is too far behind
    /// (a driver that did not prune for half an hour: older requests are forgotten).
    #[inline]
    fn offset(&mut self, now: Time) -> u32 {
        match now.0.checked_sub(self.epoch).map(u32::try_from) {
            Some(Ok(at)) if at != NOT_SENT => at,
            _ => {
                self.rebase(now.0.saturating_sub(EPOCH_SPAN).max(self.horizon.0).min(now.0));
                (now.0 - self.epoch) as u32
            }
        }
    }

    /// Moves the epoch to `epoch`, forgetting the requests sent before it.
    fn rebase(&mut self, epoch: u64) {
        let old = self.epoch;
        for t in self.layers.iter_mut().flat_map(|r| r.times.iter_mut()) {
            let at = old + u64::from(*t);
            *t = match at.checked_sub(epoch).map(u32::try_from) {
                Some(Ok(kept)) if *t != NOT_SENT && kept != NOT_SENT => kept,
                _ => NOT_SENT,
            };
        }
        self.epoch = epoch;
    }

    /// [`RequestTimes::requested`] for an LC outside its layer's run: grows the run.
    #[inline(never)]
    fn requested_outside(&mut self, id: LcId, at: u32) {
        let li = id.layer.index();
        if li >= self.layers.len() {
            self.layers.resize_with(li + 1, SentRun::default);
        }
        let run = &mut self.layers[li];
        let seq = id.seq.0;
        if run.times.is_empty() {
            run.base = seq;
        }
        let end = run.base as u64 + run.times.len() as u64;
        let span = end.max(seq as u64 + 1) - u64::from(run.base.min(seq));
        if span > MAX_TRACKED_REQUESTS as u64 {
            return;
        }
        while seq < run.base {
            run.times.push_front(NOT_SENT);
            run.base -= 1;
        }
        let i = (seq - run.base) as usize;
        if i >= run.times.len() {
            run.times.resize(i + 1, NOT_SENT);
        }
        run.times[i] = at;
    }

    /// Is a stored time a request sent at or after the horizon?
    fn live(&self, t: u32) -> bool {
        t != NOT_SENT && self.epoch + u64::from(t) >= self.horizon.0
    }

    /// The time `id` was requested, forgetting it; `None` if it was never tracked or
    /// was sent before the last prune's horizon.
    pub fn arrived(&mut self, id: LcId) -> Option<Time> {
        let run = self.layers.get_mut(id.layer.index())?;
        let i = run.index(id.seq.0)?;
        let t = std::mem::replace(&mut run.times[i], NOT_SENT);
        self.live(t).then_some(Time(self.epoch + u64::from(t)))
    }

    /// Forgets requests sent before `horizon` (their suppliers have dropped them), and
    /// gives back memory a burst (a start-up request of a whole window) left behind.
    pub fn prune(&mut self, horizon: Time) {
        self.horizon = horizon;
        if horizon.0.saturating_sub(self.epoch) > EPOCH_SPAN {
            self.rebase(horizon.0);
        }
        let (epoch, horizon) = (self.epoch, horizon.0);
        let dead = |t: &u32| *t == NOT_SENT || epoch + u64::from(*t) < horizon;
        for run in &mut self.layers {
            while run.times.front().is_some_and(dead) {
                run.times.pop_front();
                run.base = run.base.wrapping_add(1);
            }
            while run.times.back().is_some_and(dead) {
                run.times.pop_back();
            }
            let len = run.times.len();
            if run.times.capacity() > 2 * len.max(64) {
                run.times.shrink_to(len + len / 4);
            }
        }
    }

    /// Entries the table has room for without growing.
    pub fn capacity(&self) -> usize {
        self.layers.iter().map(|r| r.times.capacity()).sum()
    }

    /// Requests tracked (sent at or after the last prune's horizon, not yet arrived).
    pub fn len(&self) -> usize {
        self.layers.iter().map(|r| r.times.iter().filter(|t| self.live(**t)).count()).sum()
    }

    /// True if no request is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use layerp2p_codec::{LayerId, Seq};

    #[test]
    fn percentiles_follow_the_samples() {
        let mut l = Latency::new();
        for ms in 1..=1000u64 {
            l.record(Duration::from_millis(ms));
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 500.0).abs() < 10.0, "{s}");
        assert!((s.p99_ms - 990.0).abs() < 15.0, "{s}");
        assert!((s.max_ms - 1000.0).abs() < 15.0, "{s}");
        let mut other = Latency::new();
        other.record(Duration::from_secs(100));
        l.merge(&other);
        assert_eq!(l.count(), 1001);
        // Clamped to the bound.
        assert!(l.summary().max_ms > 59_000.0 && l.summary().max_ms < 61_000.0, "{}", l.summary());
        assert_eq!(Latency::new().summary(), LatencySummary::default());
    }

    #[test]
    fn cumulative_counts_are_prometheus_buckets() {
        let mut l = Latency::new();
        for ms in [1u64, 3, 3, 40, 900] {
            l.record(Duration::from_millis(ms));
        }
        let bounds = [2, 5, 50, 1000].map(Duration::from_millis);
        assert_eq!(l.cumulative_counts(&bounds), vec![1, 3, 4, 5]);
        let sum_ms = l.sum().as_secs_f64() * 1e3;
        assert!((sum_ms - 947.0).abs() < 947.0 * 0.02, "{sum_ms}");
        assert_eq!(Latency::new().cumulative_counts(&bounds), vec![0; 4]);
    }

    #[test]
    fn histogram_is_small_and_allocated_on_first_sample() {
        let mut l = Latency::new();
        assert_eq!(l.heap_bytes(), 0);
        l.merge(&Latency::new());
        assert_eq!(l.heap_bytes(), 0, "merging an empty distribution allocates nothing");
        l.record(Duration::from_millis(3));
        assert!(l.heap_bytes() > 0 && l.heap_bytes() < 8 * 1024, "{} bytes", l.heap_bytes());
    }

    #[test]
    fn request_table_is_bounded_and_pruned() {
        let id = |seq| LcId { layer: LayerId::BASE, seq: Seq(seq) };
        let mut t = RequestTimes::default();
        for seq in 0..(MAX_TRACKED_REQUESTS as u32 + 100) {
            t.requested(id(seq), Time::from_secs(seq as u64 % 2));
        }
        assert_eq!(t.len(), MAX_TRACKED_REQUESTS);
        assert_eq!(t.arrived(id(3)), Some(Time::from_secs(1)));
        assert_eq!(t.arrived(id(3)), None);
        t.prune(Time::from_secs(1));
        assert_eq!(t.len(), MAX_TRACKED_REQUESTS / 2 - 1);
        t.prune(Time::from_secs(2));
        assert!(t.is_empty());
        assert!(t.capacity() <= 2 * 64, "capacity {} kept after the burst", t.capacity());
    }

    #[test]
    fn request_times_follow_re_requests_layers_and_the_horizon() {
        let id = |layer, seq| LcId { layer: LayerId::from_index(layer), seq: Seq(seq) };
        let mut t = RequestTimes::default();
        t.requested(id(2, 500), Time(10));
        t.requested(id(0, 100), Time(10));
        // Below the run's first sequence, and asked again later: the latest time counts.
        t.requested(id(0, 90), Time(20));
        t.requested(id(0, 100), Time(30));
        assert_eq!(t.len(), 3);
        assert_eq!(t.arrived(id(0, 100)), Some(Time(30)));
        assert_eq!(t.arrived(id(0, 95)), None, "never requested");
        assert_eq!(t.arrived(id(1, 500)), None, "other layer");
        t.prune(Time(15));
        // Sent before the horizon: dropped by its supplier, not a delivery to time.
        assert_eq!(t.arrived(id(2, 500)), None);
        assert_eq!(t.arrived(id(0, 90)), Some(Time(20)));
        assert!(t.is_empty());
    }

    #[test]
    fn request_times_stay_exact_over_hours_of_rounds() {
        let id = |seq| LcId { layer: LayerId::BASE, seq: Seq(seq) };
        let mut t = RequestTimes::default();
        let second = 1_000_000;
        // A request a second, pruned to two seconds back, for three hours: the epoch
        // moves up several times and every time comes back to the microsecond.
        for s in 0..3 * 3600u64 {
            let now = Time(s * second + 7);
            t.prune(Time(now.0.saturating_sub(2 * second)));
            t.requested(id(s as u32), now);
            if s > 0 {
                assert_eq!(t.arrived(id(s as u32 - 1)), Some(Time(now.0 - second)));
            }
        }
        assert!(t.epoch > 0 && t.capacity() <= 64);
        // No prune for two hours: older requests are forgotten, the new one is exact.
        let late = Time(5 * 3600 * second + 3);
        t.requested(id(20_000), late);
        assert_eq!(t.arrived(id(3 * 3600 - 1)), None);
        assert_eq!(t.arrived(id(20_000)), Some(late));
        // A clock that goes back does not panic; the request is before the horizon.
        t.requested(id(20_001), Time(1));
        assert_eq!(t.arrived(id(20_001)), None);
    }
}
