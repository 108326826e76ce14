//! A channel's out-of-band identity: what every node of a swarm must agree on before
//! it joins — the layer plan and the content key — and the `ChannelId` derived from
//! them. Owns the text forms operators pass around (`--plan 290,230,100`, a key as 64
//! hex digits, a 32-byte secret key file) and their parsing into typed errors. It never
//! sends anything and never decides trust: `integrity` checks content with the key.
//!
//! Why derive the id: a node whose plan or key differs from the seed's registers in a
//! different channel at the tracker and is refused by every honest node (`Connect`
//! carries the channel), so a mismatch means "no peers", never undecodable garbage or
//! honest neighbours banned for LCs the node cannot check.

use crate::wire::ChannelId;
use ed25519_dalek::{SigningKey, VerifyingKey};
use layerp2p_codec::{Kbps, LayerPlan};
use std::path::Path;

/// The channel's public key, as the node roles take it.
pub use ed25519_dalek::VerifyingKey as PublicKey;

/// Bytes of a channel secret (an ed25519 seed) and of a public key.
pub const KEY_LEN: usize = 32;

const CHANNEL_DOMAIN: &[u8] = b"LayerP2P channel v1";

/// A channel key (hex public key or secret key file) that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The hex text is not 64 characters long; holds its length.
    #[error("a channel key is 64 hex digits, got {0}")]
    Length(usize),
    /// A character that is not a hex digit; holds its position.
    #[error("not a hex digit at position {0}")]
    Digit(usize),
    /// 64 hex digits that decode to no ed25519 public key.
    #[error("not a valid ed25519 public key")]
    NotOnCurve,
    /// A secret key file not exactly `KEY_LEN` bytes long; holds the path and its length.
    #[error("a secret key file holds exactly {KEY_LEN} bytes, {0} holds {1}")]
    FileLength(String, usize),
    /// The key file could not be read or written; holds the path and the OS error.
    #[error("cannot read or write key file {0}: {1}")]
    Io(String, String),
}

/// A `--plan` text that does not describe a layer plan.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanTextError {
    /// A field between commas that is not a whole number of kbps; holds the field.
    #[error(
        "a layer plan is comma-separated kbps per layer, base layer first (e.g. 290,230,100); {0:?} is not a number"
    )]
    Number(String),
    /// Numbers that `LayerPlan::new` refuses; holds its reason.
    #[error("invalid layer plan: {0}")]
    Plan(String),
}

/// The id every node of the channel described by `plan` and `key` uses.
pub fn channel_id(plan: &LayerPlan, key: Option<&VerifyingKey>) -> ChannelId {
    let mut h = blake3::Hasher::new();
    h.update(CHANNEL_DOMAIN);
    h.update(&(plan.layers() as u32).to_be_bytes());
    for r in plan.rates() {
        h.update(&r.0.to_be_bytes());
    }
    match key {
        Some(k) => h.update(&[1]).update(k.as_bytes()),
        None => h.update(&[0]),
    };
    let b = h.finalize();
    ChannelId(u32::from_be_bytes([b.as_bytes()[0], b.as_bytes()[1], b.as_bytes()[2], b.as_bytes()[3]]))
}

/// `290,230,100`: the plan's rates in kbps, base layer first.
pub fn plan_text(plan: &LayerPlan) -> String {
    plan.rates().iter().map(|r| r.0.to_string()).collect::<Vec<_>>().join(",")
}

/// Parses what `plan_text` prints.
pub fn parse_plan(text: &str) -> Result<LayerPlan, PlanTextError> {
    let rates = text
        .split(',')
        .map(|s| s.trim().parse::<u32>().map(Kbps).map_err(|_| PlanTextError::Number(s.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    LayerPlan::new(rates).map_err(|e| PlanTextError::Plan(e.to_string()))
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A public key from its 64 hex digits (either case; surrounding spaces ignored).
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let text = text.trim();
    if text.len() != KEY_LEN * 2 {
        return Err(KeyError::Length(text.chars().count()));
    }
    let mut bytes = [0u8; KEY_LEN];
    let digit = |at: usize| (text.as_bytes()[at] as char).to_digit(16).ok_or(KeyError::Digit(at));
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (digit(2 * i)? * 16 + digit(2 * i + 1)?) as u8;
    }
    VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::NotOnCurve)
}

/// Reads a seed's secret key file (exactly `KEY_LEN` raw bytes).
pub fn read_secret_key(path: &Path) -> Result<SigningKey, KeyError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| KeyError::Io(name.clone(), e.to_string()))?;
    let secret: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| KeyError::FileLength(name, bytes.len()))?;
    Ok(crate::integrity::ContentAuth::signing_key(secret))
}

/// A fresh channel secret drawn from `rng`, which must be a CSPRNG seeded by the OS
/// (`layerp2p keygen` passes `rand::rng()`); the core itself never reaches for entropy.
pub fn new_secret(rng: &mut impl rand::CryptoRng) -> [u8; KEY_LEN] {
    let mut secret = [0u8; KEY_LEN];
    rng.fill_bytes(&mut secret);
    secret
}

/// Writes `secret` as a new key file readable by its owner only; refuses to overwrite.
pub fn write_secret_key(path: &Path, secret: &[u8; KEY_LEN]) -> Result<(), KeyError> {
    use std::io::Write;
    let name = path.display().to_string();
    let io = |e: std::io::Error| KeyError::Io(name.clone(), e.to_string());
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(secret).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> VerifyingKey {
        crate::integrity::ContentAuth::signing_key([b; KEY_LEN]).verifying_key()
    }

    #[test]
    fn public_key_round_trips_through_hex_in_either_case() {
        let k = key(7);
        let hex = to_hex(k.as_bytes());
        assert_eq!(parse_public_key(&hex), Ok(k));
        assert_eq!(parse_public_key(&format!(" {} \n", hex.to_uppercase())), Ok(k));
    }

    #[test]
    fn bad_hex_keys_are_typed_errors() {
        let hex = to_hex(key(7).as_bytes());
        assert_eq!(parse_public_key(&hex[..62]), Err(KeyError::Length(62)));
        assert_eq!(parse_public_key(&format!("{hex}00")), Err(KeyError::Length(66)));
        assert_eq!(parse_public_key(""), Err(KeyError::Length(0)));
        let mut bad = hex.clone();
        bad.replace_range(5..6, "g");
        assert_eq!(parse_public_key(&bad), Err(KeyError::Digit(5)));
        // 64 chars but multi-byte: a length error, not a slicing panic.
        let wide = "é".repeat(32);
        assert!(parse_public_key(&wide).is_err());
    }

    #[test]
    fn plan_text_round_trips_and_rejects_garbage() {
        let plan = LayerPlan::prototype();
        assert_eq!(parse_plan(&plan_text(&plan)), Ok(plan));
        assert!(matches!(parse_plan("290,,100"), Err(PlanTextError::Number(_))));
        assert!(matches!(parse_plan("290;100"), Err(PlanTextError::Number(_))));
        assert!(matches!(parse_plan("0,0"), Err(PlanTextError::Plan(_))));
    }

    #[test]
    fn channel_id_changes_with_plan_and_key() {
        let plan = LayerPlan::prototype();
        let other = parse_plan("290,230,101").expect("plan");
        let base = channel_id(&plan, Some(&key(1)));
        assert_eq!(base, channel_id(&plan, Some(&key(1))));
        assert_ne!(base, channel_id(&plan, Some(&key(2))));
        assert_ne!(base, channel_id(&plan, None));
        assert_ne!(base, channel_id(&other, Some(&key(1))));
    }

    #[test]
    fn secret_key_file_is_exactly_32_bytes_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("layerp2p-key-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("channel.key");
        let _ = std::fs::remove_file(&path);
        write_secret_key(&path, &[9; KEY_LEN]).expect("writes");
        assert_eq!(read_secret_key(&path).expect("reads").verifying_key(), key(9));
        assert!(matches!(write_secret_key(&path, &[1; KEY_LEN]), Err(KeyError::Io(..))));
        std::fs::write(&path, [1u8; 31]).expect("write");
        assert!(matches!(read_secret_key(&path), Err(KeyError::FileLength(_, 31))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
