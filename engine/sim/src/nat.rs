//! NATs as a property of the simulated network: which datagrams a viewer's home
//! router lets through, and the address its packets leave with. The peers run the
//! same protocol core as anywhere else; only delivery changes (RFC 4787 terms):
//!
//! - `Open`: no NAT; the viewer's address is public.
//! - `Cone`: endpoint-independent mapping and filtering: one public port for every
//!   destination, and once it exists anyone may send to it.
//! - `PortRestricted`: endpoint-independent mapping, address-and-port-dependent
//!   filtering: only hosts the viewer sent to may answer (a port-preserving Linux
//!   masquerade with stateful filtering).
//! - `Symmetric`: a new public port per destination, and only that destination may
//!   send to it (`masquerade fully-random`).
//!
//! A mapping idle for longer than `NatConfig::mapping_timeout` is gone: the next
//! packet out makes a new one (a symmetric NAT gives it a new port).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use layerp2p_proto::swarm::mix::{HIGH_CONTRIBUTORS, LOW_CONTRIBUTORS};
use layerp2p_proto::swarm::{ClassReport, MIN_COUNTED_SECONDS, PeerOutcome, SwarmReport};
use layerp2p_proto::time::Time;

/// The NAT in front of one viewer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// No NAT.
    Open,
    /// Endpoint-independent mapping and filtering.
    Cone,
    /// Endpoint-independent mapping, address-and-port-dependent filtering.
    PortRestricted,
    /// Address-and-port-dependent mapping and filtering.
    Symmetric,
}

impl NatKind {
    /// Short name for tables and class labels.
    pub fn name(self) -> &'static str {
        match self {
            NatKind::Open => "open",
            NatKind::Cone => "cone",
            NatKind::PortRestricted => "port-restricted",
            NatKind::Symmetric => "symmetric",
        }
    }
}

/// Shares of the viewers behind each kind of NAT; the rest are open.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NatShares {
    /// Behind endpoint-independent mapping and filtering.
    pub cone: f64,
    /// Behind endpoint-independent mapping with address-and-port-dependent filtering.
    pub port_restricted: f64,
    /// Behind address-and-port-dependent mapping.
    pub symmetric: f64,
}

impl Default for NatShares {
    /// Measurement studies of P2P streaming: about 64 % of peers behind NATs that
    /// allow hole punching, most punches between them succeed; the rest public or
    /// behind symmetric NATs.
    fn default() -> NatShares {
        NatShares { cone: 0.32, port_restricted: 0.32, symmetric: 0.08 }
    }
}

/// Why a NAT share list cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NatSharesError {
    #[error("`{0}`: expected KIND=SHARE with KIND cone, port or symmetric")]
    Item(String),
    #[error("`{0}`: a share is a number from 0 to 1")]
    Share(String),
    #[error("the NAT shares add up to {0}, more than 1")]
    Sum(f64),
}

impl std::str::FromStr for NatShares {
    type Err = NatSharesError;

    /// `cone=0.25,port=0.25,symmetric=0.1`; kinds not named get 0; `default` gives
    /// the measured defaults.
    fn from_str(s: &str) -> Result<NatShares, NatSharesError> {
        if s.trim() == "default" {
            return Ok(NatShares::default());
        }
        let mut shares = NatShares { cone: 0.0, port_restricted: 0.0, symmetric: 0.0 };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (kind, share) = item.split_once('=').ok_or_else(|| NatSharesError::Item(item.to_string()))?;
            let share: f64 = share
                .trim()
                .parse()
                .ok()
                .filter(|v: &f64| (0.0..=1.0).contains(v))
                .ok_or_else(|| NatSharesError::Share(item.to_string()))?;
            match kind.trim() {
                "cone" => shares.cone = share,
                "port" | "port-restricted" => shares.port_restricted = share,
                "symmetric" => shares.symmetric = share,
                _ => return Err(NatSharesError::Item(item.to_string())),
            }
        }
        let sum = shares.natted();
        if sum > 1.0 + 1e-9 {
            return Err(NatSharesError::Sum(sum));
        }
        Ok(shares)
    }
}

impl NatShares {
    /// The share of viewers behind any NAT.
    pub fn natted(&self) -> f64 {
        self.cone + self.port_restricted + self.symmetric
    }

    /// The kind for a viewer whose uniform draw in [0, 1) is `u`.
    pub fn kind(&self, u: f64) -> NatKind {
        if u < self.cone {
            NatKind::Cone
        } else if u < self.cone + self.port_restricted {
            NatKind::PortRestricted
        } else if u < self.natted() {
            NatKind::Symmetric
        } else {
            NatKind::Open
        }
    }
}

/// The NATs of a simulated run.
#[derive(Clone, Debug, PartialEq)]
pub struct NatConfig {
    /// Who is behind what.
    pub shares: NatShares,
    /// A mapping unused for this long is dropped (many home routers: 30 s for UDP).
    pub mapping_timeout: Duration,
    /// Report NAT'd viewers as classes of their own ("high/NAT" beside "high").
    pub split_classes: bool,
}

impl Default for NatConfig {
    fn default() -> NatConfig {
        NatConfig { shares: NatShares::default(), mapping_timeout: Duration::from_secs(30), split_classes: true }
    }
}

/// First public port a symmetric NAT hands out.
const FIRST_PORT: u16 = 20_000;

#[derive(Debug)]
struct Mapping {
    port: u16,
    last_used: Time,
    /// Who may send in, by when they were last sent to (filtering NATs only).
    allowed: HashMap<SocketAddr, Time>,
}

/// One viewer's home router.
#[derive(Debug)]
pub struct NatBox {
    kind: NatKind,
    public_ip: Ipv4Addr,
    /// By destination for a symmetric NAT; one entry (key `None`) otherwise.
    mappings: HashMap<Option<SocketAddr>, Mapping>,
    next_port: u16,
    /// When idle mappings were last swept (at most once a second: a mapping is also
    /// checked for age when used).
    swept: Time,
}

impl NatBox {
    /// A router of `kind` whose WAN address is `public_ip`.
    pub fn new(kind: NatKind, public_ip: Ipv4Addr) -> NatBox {
        NatBox { kind, public_ip, mappings: HashMap::new(), next_port: FIRST_PORT, swept: Time::ZERO }
    }

    /// The kind of NAT.
    pub fn kind(&self) -> NatKind {
        self.kind
    }

    fn expire(&mut self, now: Time, timeout: Duration) {
        if now.since(self.swept) < Duration::from_secs(1) {
            return;
        }
        self.swept = now;
        self.mappings.retain(|_, m| now.since(m.last_used) < timeout);
        for m in self.mappings.values_mut() {
            m.allowed.retain(|_, t| now.since(*t) < timeout);
        }
    }

    /// A packet leaves the home for `dst` at `now`: the address it leaves with.
    pub fn outbound(&mut self, now: Time, dst: SocketAddr, timeout: Duration, home_port: u16) -> SocketAddr {
        self.expire(now, timeout);
        let key = (self.kind == NatKind::Symmetric).then_some(dst);
        if self.mappings.get(&key).is_some_and(|m| now.since(m.last_used) >= timeout) {
            self.mappings.remove(&key);
        }
        let port = match self.mappings.get(&key) {
            Some(m) => m.port,
            None if self.kind == NatKind::Symmetric => {
                let p = self.next_port;
                self.next_port = self.next_port.checked_add(1).unwrap_or(FIRST_PORT);
                p
            }
            // Port-preserving.
            None => home_port,
        };
        let m = self.mappings.entry(key).or_insert_with(|| Mapping { port, last_used: now, allowed: HashMap::new() });
        m.last_used = now;
        m.allowed.insert(dst, now);
        SocketAddr::V4(SocketAddrV4::new(self.public_ip, port))
    }

    /// A packet from `from` reaches our public `port` at `now`: whether it gets in.
    pub fn inbound(&mut self, now: Time, from: SocketAddr, port: u16, timeout: Duration) -> bool {
        self.expire(now, timeout);
        let kind = self.kind;
        let Some(m) = self.mappings.values_mut().find(|m| m.port == port && now.since(m.last_used) < timeout) else {
            return false;
        };
        let admitted = kind == NatKind::Cone || m.allowed.get(&from).is_some_and(|t| now.since(*t) < timeout);
        if admitted {
            m.last_used = now;
        }
        admitted
    }
}

/// Table II's groups (free-riders, low and high contributors) split into open and
/// NAT'd viewers, for a run whose `classes` mix classes were split by
/// `NatConfig::split_classes`; peers that played less than `min_seconds` left out.
pub fn nat_groups(report: &SwarmReport, classes: usize, min_seconds: f64) -> Vec<ClassReport> {
    let min = min_seconds.max(MIN_COUNTED_SECONDS);
    let mut groups = Vec::new();
    for (name, range) in [("free-riders", 0..=0), ("low 1-400", LOW_CONTRIBUTORS), ("high >=720", HIGH_CONTRIBUTORS)] {
        for natted in [false, true] {
            let members: Vec<&PeerOutcome> = report
                .peers
                .iter()
                .filter(|p| p.seconds >= min && range.contains(&p.upload.0) && (p.class >= classes) == natted)
                .collect();
            let label = format!("{name} {}", if natted { "NAT" } else { "open" });
            groups.push(ClassReport::of(&label, &members, report.layers, &report.lcs_per_s));
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("addr")
    }

    const T: Duration = Duration::from_secs(30);

    #[test]
    fn each_kind_filters_and_maps_as_rfc_4787_says() {
        let (x, y) = (a("10.0.0.1:7000"), a("10.0.0.2:7000"));
        let ip = Ipv4Addr::new(11, 0, 0, 1);
        let mut cone = NatBox::new(NatKind::Cone, ip);
        let out = cone.outbound(Time::ZERO, x, T, 7000);
        assert_eq!(out, cone.outbound(Time::ZERO, y, T, 7000), "one mapping for every destination");
        let mut other = NatBox::new(NatKind::Cone, ip);
        assert!(!other.inbound(Time::ZERO, y, 7000, T), "nothing gets in before the first packet out");
        other.outbound(Time::ZERO, x, T, 7000);
        assert!(other.inbound(Time::ZERO, y, 7000, T), "a cone NAT lets anyone in once mapped");

        let mut port = NatBox::new(NatKind::PortRestricted, ip);
        port.outbound(Time::ZERO, x, T, 7000);
        assert!(port.inbound(Time::ZERO, x, 7000, T));
        assert!(!port.inbound(Time::ZERO, y, 7000, T), "only hosts it sent to");
        assert!(!port.inbound(Time::from_secs(31), x, 7000, T), "the mapping idled out");

        let mut sym = NatBox::new(NatKind::Symmetric, ip);
        let (px, py) = (sym.outbound(Time::ZERO, x, T, 7000), sym.outbound(Time::ZERO, y, T, 7000));
        assert_ne!(px, py, "a port per destination");
        assert!(sym.inbound(Time::ZERO, y, py.port(), T));
        assert!(!sym.inbound(Time::ZERO, y, px.port(), T), "x's mapping is not y's");
    }

    #[test]
    fn shares_parse_and_are_checked() {
        let s: NatShares = "cone=0.25,port=0.25,symmetric=0.1".parse().expect("parses");
        assert!((s.natted() - 0.6).abs() < 1e-9);
        assert_eq!(s.kind(0.3), NatKind::PortRestricted);
        assert_eq!(s.kind(0.7), NatKind::Open);
        assert!("cone=0.7,port=0.5".parse::<NatShares>().is_err());
        assert!("full=0.1".parse::<NatShares>().is_err());
        assert_eq!("default".parse::<NatShares>(), Ok(NatShares::default()));
    }
}
