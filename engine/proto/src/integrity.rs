//! Content integrity against pollution: the seed signs manifests of LC hashes, and a
//! node accepts an LC only if its hash matches a verified manifest.
//!
//! Owns: the hash of an LC, the bytes a manifest signature covers, the seed's
//! manifest builder and a node's bounded table of verified manifests. It never sends,
//! stores LCs or decides whom to punish: `peer` does that with the verdicts given here.
//!
//! Trust: every node of a channel knows the seed's ed25519 public key out of band (the
//! channel's configuration, like a channel id). A manifest covers up to
//! [`MAX_MANIFEST_LCS`] consecutive LCs of one layer; the seed signs one per layer per
//! round, before it advertises those LCs, so everything it offers is covered.

use crate::wire::{ChannelId, ManifestMsg};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use layerp2p_codec::{LayerId, Lc, LcId, Seq};
use std::collections::BTreeMap;

/// Bytes of an LC hash on the wire: BLAKE3 truncated to 128 bits (collision-resistant
/// enough for a stream that lives hours; a second preimage costs 2^128).
pub const HASH_LEN: usize = 16;
/// Bytes of an ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Most LCs one manifest covers (keeps a manifest under 1,200 bytes).
pub const MAX_MANIFEST_LCS: usize = 64;
/// Most verified manifests a node keeps per layer; the seed signs about one per layer
/// per round, so this spans far more than any playback lag.
pub const MAX_MANIFESTS_PER_LAYER: usize = 1024;

const LC_DOMAIN: &[u8] = b"LayerP2P LC v1";
const MANIFEST_DOMAIN: &[u8] = b"LayerP2P manifest v1";

/// The truncated BLAKE3 hash of an LC (header and payload).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct LcHash(pub [u8; HASH_LEN]);

/// Hash of everything a receiver uses from an LC: its identity, frame fields, media
/// time (so a forger cannot move a genuine payload in time) and payload.
pub fn lc_hash(lc: &Lc) -> LcHash {
    let h = &lc.header;
    let mut hasher = blake3::Hasher::new();
    hasher.update(LC_DOMAIN);
    hasher.update(&[h.id.layer.get()]);
    hasher.update(&h.id.seq.0.to_be_bytes());
    hasher.update(&h.frame.to_be_bytes());
    hasher.update(&h.part.to_be_bytes());
    hasher.update(&h.parts.to_be_bytes());
    hasher.update(&h.time.0.to_be_bytes());
    hasher.update(&lc.payload);
    let mut out = [0u8; HASH_LEN];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..HASH_LEN]);
    LcHash(out)
}

/// How a node treats content authenticity. The key is the channel's: peers hold its
/// public half, the seed its secret half.
#[derive(Clone, Debug, Default)]
pub enum ContentAuth {
    /// Accept any LC from a neighbour. For the simulator at scale, whose payloads are
    /// phantoms; never for a deployed swarm.
    #[default]
    Off,
    /// Accept only LCs whose hash is in a manifest signed by this key.
    Verify(VerifyingKey),
    /// The seed: sign manifests of ingested LCs with this key (and verify as above).
    Sign(SigningKey),
}

impl ContentAuth {
    /// The key manifests are checked against, if content is checked at all.
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        match self {
            ContentAuth::Off => None,
            ContentAuth::Verify(k) => Some(*k),
            ContentAuth::Sign(k) => Some(k.verifying_key()),
        }
    }

    /// What a viewer of a channel configured with `self` holds: the public half only.
    pub fn for_viewer(&self) -> ContentAuth {
        self.verifying_key().map_or(ContentAuth::Off, ContentAuth::Verify)
    }

    /// A deterministic channel key from a 32-byte secret (tests, local swarms).
    pub fn signing_key(secret: [u8; 32]) -> SigningKey {
        SigningKey::from_bytes(&secret)
    }
}

/// The bytes a manifest's signature covers: a domain tag, the channel (so a manifest
/// cannot be replayed into another channel), layer, start and every hash.
fn signed_bytes(channel: ChannelId, layer: LayerId, start: Seq, hashes: &[LcHash]) -> Vec<u8> {
    let mut b = Vec::with_capacity(MANIFEST_DOMAIN.len() + 10 + hashes.len() * HASH_LEN);
    b.extend_from_slice(MANIFEST_DOMAIN);
    b.extend_from_slice(&channel.0.to_be_bytes());
    b.push(layer.get());
    b.extend_from_slice(&start.0.to_be_bytes());
    b.push(hashes.len() as u8);
    hashes.iter().for_each(|h| b.extend_from_slice(&h.0));
    b
}

/// Signs the hashes of LCs `start..start + hashes.len()` of `layer`.
pub fn sign(key: &SigningKey, channel: ChannelId, layer: LayerId, start: Seq, hashes: Vec<LcHash>) -> ManifestMsg {
    let signature = key.sign(&signed_bytes(channel, layer, start, &hashes)).to_bytes();
    ManifestMsg { layer, start, hashes, signature }
}

/// Whether `m` carries a valid signature by `key` for `channel`.
pub fn verify(key: &VerifyingKey, channel: ChannelId, m: &ManifestMsg) -> bool {
    if m.hashes.is_empty() || m.hashes.len() > MAX_MANIFEST_LCS {
        return false;
    }
    let sig = Signature::from_bytes(&m.signature);
    key.verify_strict(&signed_bytes(channel, m.layer, m.start, &m.hashes), &sig).is_ok()
}

/// One past the last sequence `m` covers.
fn end_of(m: &ManifestMsg) -> u64 {
    u64::from(m.start.0) + m.hashes.len() as u64
}

/// The seed's side: collects the hashes of ingested LCs per layer until they are
/// signed (when a manifest is full, a sequence gap appears, or the seed flushes before
/// advertising its buffer map).
#[derive(Debug)]
pub struct ManifestBuilder {
    key: SigningKey,
    channel: ChannelId,
    pending: Vec<Option<(Seq, Vec<LcHash>)>>,
}

impl ManifestBuilder {
    /// A builder that signs with the channel's secret `key` for `channel`, over `layers` layers.
    pub fn new(key: SigningKey, channel: ChannelId, layers: usize) -> ManifestBuilder {
        ManifestBuilder { key, channel, pending: vec![None; layers] }
    }

    /// Adds an ingested LC; returns the manifests this completes.
    pub fn add(&mut self, lc: &Lc) -> Vec<ManifestMsg> {
        let layer = lc.header.id.layer;
        let seq = lc.header.id.seq;
        let mut done = Vec::new();
        let Some(slot) = self.pending.get_mut(layer.index()) else { return done };
        let contiguous =
            slot.as_ref().is_some_and(|(start, h)| u64::from(start.0) + h.len() as u64 == u64::from(seq.0));
        if !contiguous && let Some((start, hashes)) = slot.take() {
            done.push(sign(&self.key, self.channel, layer, start, hashes));
        }
        let (start, hashes) = slot.get_or_insert_with(|| (seq, Vec::with_capacity(MAX_MANIFEST_LCS)));
        hashes.push(lc_hash(lc));
        if hashes.len() == MAX_MANIFEST_LCS {
            let (start, hashes) = (*start, std::mem::take(hashes));
            *slot = None;
            done.push(sign(&self.key, self.channel, layer, start, hashes));
        }
        done
    }

    /// Signs everything pending.
    pub fn flush(&mut self) -> Vec<ManifestMsg> {
        let mut done = Vec::new();
        for (i, slot) in self.pending.iter_mut().enumerate() {
            if let Some((start, hashes)) = slot.take() {
                done.push(sign(&self.key, self.channel, LayerId::from_index(i), start, hashes));
            }
        }
        done
    }
}

/// What a verified manifest says about an LC.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Its hash matches a verified manifest.
    Genuine,
    /// No verified manifest covers it yet.
    Unknown,
    /// A verified manifest covers it and the hash differs: a forgery.
    Forged,
}

/// A node's verified manifests, per layer, keyed by start. Bounded: at most
/// [`MAX_MANIFESTS_PER_LAYER`] per layer, and manifests wholly behind playback are pruned.
#[derive(Debug)]
pub struct Manifests {
    layers: Vec<BTreeMap<u32, ManifestMsg>>,
}

impl Manifests {
    /// No manifests yet, for `layers` layers.
    pub fn new(layers: usize) -> Manifests {
        Manifests { layers: vec![BTreeMap::new(); layers] }
    }

    /// The verified manifest covering `id`, if any.
    pub fn covering(&self, id: LcId) -> Option<&ManifestMsg> {
        let (_, m) = self.layers.get(id.layer.index())?.range(..=id.seq.0).next_back()?;
        (u64::from(id.seq.0) < end_of(m)).then_some(m)
    }

    /// Checks `lc` against the verified manifests.
    pub fn verdict(&self, lc: &Lc) -> Verdict {
        let id = lc.id();
        match self.covering(id) {
            None => Verdict::Unknown,
            Some(m) if m.hashes[(id.seq.0 - m.start.0) as usize] == lc_hash(lc) => Verdict::Genuine,
            Some(_) => Verdict::Forged,
        }
    }

    /// Already holds a manifest starting where `m` starts (so `m` needs no checking).
    pub fn contains(&self, m: &ManifestMsg) -> bool {
        self.layers.get(m.layer.index()).is_some_and(|l| l.contains_key(&m.start.0))
    }

    /// Stores a manifest the caller verified. False if the layer is unknown or full.
    pub fn insert(&mut self, m: ManifestMsg) -> bool {
        match self.layers.get_mut(m.layer.index()) {
            Some(l) if l.len() < MAX_MANIFESTS_PER_LAYER => {
                l.insert(m.start.0, m);
                true
            }
            _ => false,
        }
    }

    /// Drops the manifests of `layer` that end at or before `start` (all played).
    pub fn prune(&mut self, layer: LayerId, start: Seq) {
        if let Some(l) = self.layers.get_mut(layer.index()) {
            l.retain(|_, m| end_of(m) > u64::from(start.0));
        }
    }

    /// Manifests held, all layers.
    pub fn len(&self) -> usize {
        self.layers.iter().map(BTreeMap::len).sum()
    }

    /// True if no manifest is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use layerp2p_codec::{LcHeader, MediaTime};

    fn lc(layer: u8, seq: u32, fill: u8) -> Lc {
        let id = LcId { layer: LayerId::new(layer).expect("layer"), seq: Seq(seq) };
        let header = LcHeader { id, frame: seq, part: 0, parts: 1, time: MediaTime(u64::from(seq) * 1000) };
        Lc { header, payload: Bytes::from(vec![fill; 100]) }
    }

    fn key() -> SigningKey {
        ContentAuth::signing_key([7; 32])
    }

    #[test]
    fn builder_signs_full_and_gapped_runs_and_flushes_the_rest() {
        let mut b = ManifestBuilder::new(key(), ChannelId(1), 2);
        let mut out = Vec::new();
        for s in 0..70 {
            out.extend(b.add(&lc(1, s, 0)));
        }
        assert_eq!(out.len(), 1, "64 LCs fill one manifest");
        assert_eq!((out[0].start, out[0].hashes.len()), (Seq(0), MAX_MANIFEST_LCS));
        let gapped = b.add(&lc(1, 80, 0));
        assert_eq!(gapped.len(), 1, "a gap closes the pending run");
        assert_eq!((gapped[0].start, gapped[0].hashes.len()), (Seq(64), 6));
        b.add(&lc(2, 5, 0));
        let rest = b.flush();
        assert_eq!(
            rest.iter().map(|m| (m.layer.get(), m.start, m.hashes.len())).collect::<Vec<_>>(),
            vec![(1, Seq(80), 1), (2, Seq(5), 1)]
        );
        assert!(b.flush().is_empty());
        let vk = key().verifying_key();
        assert!(out.iter().chain(&gapped).chain(&rest).all(|m| verify(&vk, ChannelId(1), m)));
    }

    #[test]
    fn verification_refuses_tampering_other_keys_and_other_channels() {
        let hashes = (0..4).map(|s| lc_hash(&lc(1, s, 0))).collect();
        let m = sign(&key(), ChannelId(1), LayerId::BASE, Seq(0), hashes);
        let vk = key().verifying_key();
        assert!(verify(&vk, ChannelId(1), &m));
        assert!(!verify(&vk, ChannelId(2), &m), "replayed into another channel");
        assert!(!verify(&ContentAuth::signing_key([8; 32]).verifying_key(), ChannelId(1), &m), "another key");
        let mut moved = m.clone();
        moved.start = Seq(1);
        assert!(!verify(&vk, ChannelId(1), &moved), "shifted range");
        let mut swapped = m.clone();
        swapped.hashes[2] = lc_hash(&lc(1, 2, 9));
        assert!(!verify(&vk, ChannelId(1), &swapped), "hash replaced");
        let mut sig = m.clone();
        sig.signature[0] ^= 1;
        assert!(!verify(&vk, ChannelId(1), &sig), "signature bit flipped");
    }

    #[test]
    fn verdicts_and_bounds() {
        let mut t = Manifests::new(3);
        let hashes = (10..20).map(|s| lc_hash(&lc(1, s, 0))).collect();
        let m = sign(&key(), ChannelId(1), LayerId::BASE, Seq(10), hashes);
        assert!(!t.contains(&m));
        assert!(t.insert(m.clone()));
        assert!(t.contains(&m));
        assert_eq!(t.verdict(&lc(1, 15, 0)), Verdict::Genuine);
        assert_eq!(t.verdict(&lc(1, 15, 1)), Verdict::Forged, "other payload");
        let mut moved = lc(1, 15, 0);
        moved.header.time = MediaTime(1);
        assert_eq!(t.verdict(&moved), Verdict::Forged, "genuine payload, other media time");
        assert_eq!(t.verdict(&lc(1, 20, 0)), Verdict::Unknown, "past the end");
        assert_eq!(t.verdict(&lc(1, 9, 0)), Verdict::Unknown, "before the start");
        assert_eq!(t.verdict(&lc(2, 15, 0)), Verdict::Unknown, "other layer");
        t.prune(LayerId::BASE, Seq(19));
        assert_eq!(t.len(), 1, "LC 19 still to play");
        t.prune(LayerId::BASE, Seq(20));
        assert!(t.is_empty());
        for s in 0..MAX_MANIFESTS_PER_LAYER as u32 + 5 {
            t.insert(ManifestMsg { start: Seq(s), ..m.clone() });
        }
        assert_eq!(t.len(), MAX_MANIFESTS_PER_LAYER);
    }
}
