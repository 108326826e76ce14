//! Token bucket over bytes: enforces an upload rate with a bounded burst.
//! Tokens are kept in byte-microseconds so refills never lose fractions.

use crate::time::Time;
use layerp2p_codec::Kbps;
use std::time::Duration;

const SCALE: u64 = 1_000_000;

/// Paces a node's LC uploads at U(n), with a burst of at most `PeerConfig::burst` worth of bytes.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    bytes_per_sec: u64,
    /// Capacity in byte-microseconds.
    cap: u64,
    tokens: u64,
    last: Time,
}

impl TokenBucket {
    /// A bucket for `rate`, holding up to `burst` worth of tokens but never less than
    /// `min_burst_bytes` (so one full packet always fits). Starts full.
    pub fn new(rate: Kbps, burst: Duration, min_burst_bytes: u64, now: Time) -> TokenBucket {
        let bytes_per_sec = rate.bytes_per_sec();
        let burst_bytes = (bytes_per_sec as f64 * burst.as_secs_f64()) as u64;
        let cap = burst_bytes.max(min_burst_bytes).saturating_mul(SCALE);
        TokenBucket { bytes_per_sec, cap, tokens: if bytes_per_sec == 0 { 0 } else { cap }, last: now }
    }

    /// The rate the bucket refills at, rounded down to whole kbps.
    pub fn rate(&self) -> Kbps {
        Kbps((self.bytes_per_sec * 8 / 1000) as u32)
    }

    fn refill(&mut self, now: Time) {
        let elapsed = now.0.saturating_sub(self.last.0);
        self.last = self.last.max(now);
        self.tokens = self.tokens.saturating_add(elapsed.saturating_mul(self.bytes_per_sec)).min(self.cap);
    }

    /// Changes the rate from `now` on (tokens earned so far are kept, within the
    /// depth the new rate allows).
    pub fn set_rate(&mut self, now: Time, rate: Kbps, burst: Duration, min_burst_bytes: u64) {
        self.refill(now);
        self.bytes_per_sec = rate.bytes_per_sec();
        let burst_bytes = (self.bytes_per_sec as f64 * burst.as_secs_f64()) as u64;
        self.cap = burst_bytes.max(min_burst_bytes).saturating_mul(SCALE);
        self.tokens = self.tokens.min(self.cap);
    }

    /// Are there tokens for `bytes` at `now`?
    pub fn has(&mut self, now: Time, bytes: usize) -> bool {
        self.refill(now);
        self.tokens >= bytes as u64 * SCALE
    }

    /// Spends tokens for `bytes` (call after `has` said yes).
    pub fn take(&mut self, bytes: usize) {
        self.tokens = self.tokens.saturating_sub(bytes as u64 * SCALE);
    }

    /// When `bytes` worth of tokens will be available; `None` at rate 0.
    pub fn ready_at(&self, bytes: usize) -> Option<Time> {
        if self.bytes_per_sec == 0 {
            return None;
        }
        let need = (bytes as u64 * SCALE).saturating_sub(self.tokens);
        Some(Time(self.last.0 + need.div_ceil(self.bytes_per_sec)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_run_rate_matches_configuration() {
        let mut b = TokenBucket::new(Kbps(300), Duration::from_millis(20), 1300, Time::ZERO);
        let mut sent = 0u64;
        let mut now = Time::ZERO;
        while now < Time::from_secs(100) {
            if b.has(now, 1250) {
                b.take(1250);
                sent += 1250;
            } else {
                now = b.ready_at(1250).expect("positive rate");
            }
        }
        let kbps = sent as f64 * 8.0 / 100.0 / 1000.0;
        assert!((kbps - 300.0).abs() < 1.0, "{kbps}");
    }

    #[test]
    fn zero_rate_never_sends() {
        let mut b = TokenBucket::new(Kbps(0), Duration::from_millis(20), 1300, Time::ZERO);
        assert!(!b.has(Time::from_secs(1000), 1));
        assert_eq!(b.ready_at(1), None);
    }

    #[test]
    fn burst_is_bounded() {
        let mut b = TokenBucket::new(Kbps(8000), Duration::from_millis(10), 100, Time::ZERO);
        // 8 Mbps * 10 ms = 10 000 bytes, however long the bucket sat idle.
        assert!(b.has(Time::from_secs(60), 10_000));
        assert!(!b.has(Time::from_secs(60), 10_001));
    }
}
