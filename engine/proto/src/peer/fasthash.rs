//! A fast, unkeyed hasher (the multiply-rotate "Fx" hash of rustc) for the per-peer
//! tables on the per-LC path whose keys a remote party cannot choose freely: the
//! neighbour table (at most `n_max` addresses, each admitted by a handshake) and our
//! own outstanding requests. Tables keyed by arbitrary remote input keep std's keyed
//! SipHash. Owns no state beyond one word; deterministic across runs.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

/// Hashes word by word: `h = (h.rotl(5) ^ word) * SEED`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }

    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` hashed with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::hash::{BuildHasher, Hash};
    use std::net::SocketAddr;

    fn hash_of(x: impl Hash) -> u64 {
        BuildHasherDefault::<FastHasher>::default().hash_one(x)
    }

    #[test]
    fn neighbouring_addresses_and_ports_hash_apart() {
        let mut seen = HashSet::new();
        for ip in 0..64u32 {
            for port in [7000u16, 7001, 7002] {
                let addr = SocketAddr::from((std::net::Ipv4Addr::from(0x0A00_0000 + ip), port));
                assert!(seen.insert(hash_of(addr)), "collision at {addr}");
            }
        }
        assert_eq!(hash_of(7u64), hash_of(7u64));
        let mut m: FastMap<SocketAddr, usize> = FastMap::default();
        m.insert(SocketAddr::from(([10, 0, 0, 1], 7000)), 3);
        assert_eq!(m.get(&SocketAddr::from(([10, 0, 0, 1], 7000))), Some(&3));
        assert_eq!(m.get(&SocketAddr::from(([10, 0, 0, 1], 7001))), None);
    }
}
