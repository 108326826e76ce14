//! The three systems compared in the paper (DESIGN.md §7). Same engine, same parameters;
//! only the supplier and receiver policies differ.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Which of the three systems a node runs (DESIGN.md §7); it fixes the supplier and receiver policies.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Tit-for-tat supplier, prioritized-random receiver, layered video.
    LayerP2P,
    /// Tit-for-tat supplier, plain-random receiver: layers not prioritized.
    SingleIncent,
    /// Round-robin supplier, plain-random receiver: no incentive, no layers.
    SingleLayer,
}

/// How a supplier picks the next receiver to serve.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum SupplierPolicy {
    /// Random receiver with probability proportional to `I * (d + eps)`.
    TitForTat,
    /// Next non-empty queue in turn.
    RoundRobin,
}

/// How a receiver orders its requests.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ReceiverPolicy {
    /// Regular requests (layers up to l_n) shuffled, then probing layers in order.
    Prioritized,
    /// Every missing LC shuffled together, layers ignored.
    PlainRandom,
}

impl Policy {
    /// The three systems, in the order reports list them.
    pub const ALL: [Policy; 3] = [Policy::LayerP2P, Policy::SingleIncent, Policy::SingleLayer];

    /// The supplier scheduling this system uses.
    pub fn supplier(self) -> SupplierPolicy {
        match self {
            Policy::LayerP2P | Policy::SingleIncent => SupplierPolicy::TitForTat,
            Policy::SingleLayer => SupplierPolicy::RoundRobin,
        }
    }

    /// The receiver request ordering this system uses.
    pub fn receiver(self) -> ReceiverPolicy {
        match self {
            Policy::LayerP2P => ReceiverPolicy::Prioritized,
            Policy::SingleIncent | Policy::SingleLayer => ReceiverPolicy::PlainRandom,
        }
    }

    /// The system's name in configs, command lines and reports (also its serde form).
    pub fn name(self) -> &'static str {
        match self {
            Policy::LayerP2P => "layerp2p",
            Policy::SingleIncent => "single-incent",
            Policy::SingleLayer => "single-layer",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A policy name that is none of the three systems.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown policy '{0}' (expected layerp2p, single-incent or single-layer)")]
pub struct UnknownPolicy(pub String);

impl FromStr for Policy {
    type Err = UnknownPolicy;
    fn from_str(s: &str) -> Result<Policy, UnknownPolicy> {
        Policy::ALL.into_iter().find(|p| p.name() == s).ok_or_else(|| UnknownPolicy(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Policy::ALL {
            assert_eq!(p.name().parse::<Policy>(), Ok(p));
        }
        assert_eq!("tft".parse::<Policy>(), Err(UnknownPolicy("tft".into())));
    }

    #[test]
    fn baselines_differ_only_where_spec_says() {
        assert_eq!(Policy::LayerP2P.supplier(), Policy::SingleIncent.supplier());
        assert_ne!(Policy::LayerP2P.receiver(), Policy::SingleIncent.receiver());
        assert_eq!(Policy::SingleIncent.receiver(), Policy::SingleLayer.receiver());
        assert_eq!(Policy::SingleLayer.supplier(), SupplierPolicy::RoundRobin);
    }
}
