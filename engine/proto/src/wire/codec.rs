//! The byte format of a datagram (docs/PROTOCOL.md): encode and strict decode.
//!
//! Decoding never panics and never trusts a count before the bytes to back it are
//! present; every malformed input is a [`WireError`]. LC payloads are slices of the
//! received datagram (`Bytes::slice`), never copies. `encode` refuses anything `decode`
//! would refuse, and `wire_len` is the exact encoded size, so the simulator can charge
//! links without serialising.

use super::message::*;
use crate::integrity::{HASH_LEN, LcHash, MAX_MANIFEST_LCS, SIGNATURE_LEN};
use bytes::{BufMut, Bytes, BytesMut};
use layerp2p_codec::{
    BufferMap, LayerId, LayerWindow, Lc, LcHeader, LcId, MAX_LAYERS, MAX_LC_PAYLOAD, MAX_SEQ, MAX_WINDOW_LCS,
    MediaTime, Seq, WindowError,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// First two bytes of every datagram; anything else is refused before parsing.
pub const MAGIC: u16 = 0x4C50; // "LP"
/// Protocol version byte that follows the magic; decode accepts only this one.
pub const VERSION: u8 = 1;
/// magic (2) + version (1) + message count (1).
pub const PACKET_HEADER_LEN: usize = 4;
/// IPv4 (20) + UDP (8): what a datagram costs on a link beyond its packet.
pub const IPV4_UDP_HEADER_LEN: usize = 28;
/// type (1) + body length (2).
pub const MESSAGE_HEADER_LEN: usize = 3;
/// layer (1) + seq (4) + frame (4) + part (2) + parts (2) + media time (8).
pub const LC_HEADER_LEN: usize = 21;
/// head_time, sent_at, echo (8 each), echo_delay (4), layer count (1).
const BUFFER_MAP_FIXED: usize = 29;
/// Per layer: start (4) + bit count (2).
const LAYER_FIXED: usize = 6;
/// ttl_ms (2) + id count (2).
const REQUEST_FIXED: usize = 4;
/// One requested LC id: layer (1) + seq (4).
const ID_LEN: usize = 5;
/// Family (1) + address + port (2).
const V4_LEN: usize = 1 + 4 + 2;
const V6_LEN: usize = 1 + 16 + 2;
/// layer (1) + start (4) + hash count (1) + signature (64); then 16 bytes per hash.
const MANIFEST_FIXED: usize = 1 + 4 + 1 + SIGNATURE_LEN;

// The body length field is a u16: the largest body the limits allow must fit, so a
// message that passes the limits always encodes.
const MAX_BODIES: [usize; 5] = [
    MANIFEST_FIXED + MAX_MANIFEST_LCS * HASH_LEN,
    BUFFER_MAP_FIXED + MAX_LAYERS * (LAYER_FIXED + MAX_WINDOW_LCS as usize / 8),
    REQUEST_FIXED + MAX_REQUEST_IDS * ID_LEN,
    1 + MAX_PEER_LIST * V6_LEN,
    LC_HEADER_LEN + MAX_LC_PAYLOAD,
];
const _: () = {
    let mut i = 0;
    while i < MAX_BODIES.len() {
        assert!(MAX_BODIES[i] <= u16::MAX as usize);
        i += 1;
    }
};
// Counts travel in a u8 (messages, peers) or u16 (ids, bits).
const _: () = assert!(MAX_MESSAGES_PER_PACKET <= u8::MAX as usize && MAX_PEER_LIST <= u8::MAX as usize);
const _: () = assert!(MAX_REQUEST_IDS <= u16::MAX as usize && MAX_WINDOW_LCS <= u16::MAX as u32);
const _: () = assert!(MAX_MANIFEST_LCS <= u8::MAX as usize);

/// Message type codes.
pub mod code {
    /// Tracker registration: `Message::Join`.
    pub const JOIN: u8 = 1;
    /// Tracker reply: `Message::PeerList`.
    pub const PEER_LIST: u8 = 2;
    /// Keep-alive to the tracker: `Message::Refresh`.
    pub const REFRESH: u8 = 3;
    /// Leaving the channel: `Message::Leave`.
    pub const LEAVE: u8 = 4;
    /// Neighbour request: `Message::Connect`.
    pub const CONNECT: u8 = 5;
    /// Neighbour request accepted: `Message::Accept`.
    pub const ACCEPT: u8 = 6;
    /// Neighbour request declined: `Message::Decline`.
    pub const DECLINE: u8 = 7;
    /// Neighbour relationship ended: `Message::Disconnect`.
    pub const DISCONNECT: u8 = 8;
    /// Holdings of the exchange window: `Message::BufferMap`.
    pub const BUFFER_MAP: u8 = 9;
    /// LCs wanted this round: `Message::Request`.
    pub const REQUEST: u8 = 10;
    /// One LC: `Message::Data`.
    pub const DATA: u8 = 11;
    /// Address-validation token: `Message::Token`.
    pub const TOKEN: u8 = 12;
    /// Zero bytes padding a handshake: `Message::Padding`.
    pub const PADDING: u8 = 13;
    /// Signed LC hashes: `Message::Manifest`.
    pub const MANIFEST: u8 = 14;
    /// `Message::Ping`.
    pub const PING: u8 = 15;
    /// `Message::Pong`.
    pub const PONG: u8 = 16;
    // NAT traversal: codes from 20 on, so other new messages can take 15-19.
    /// `Message::Observed`.
    pub const OBSERVED: u8 = 20;
    /// `Message::Introduce`.
    pub const INTRODUCE: u8 = 21;
    /// `Message::Punch`.
    pub const PUNCH: u8 = 22;
    /// `Message::NatReport`.
    pub const NAT_REPORT: u8 = 23;
}

/// Why a datagram was refused (decode) or could not be produced (encode).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The datagram (decode) or encoded packet (encode) is longer than `MAX_DATAGRAM`; holds its length.
    #[error("datagram of {0} bytes exceeds {MAX_DATAGRAM}")]
    TooLarge(usize),
    /// The first two bytes are not `MAGIC`; holds what they were.
    #[error("bad magic {0:#06x}")]
    BadMagic(u16),
    /// The version byte is not `VERSION`; holds what it was.
    #[error("unsupported protocol version {0}")]
    Version(u8),
    /// The message count is 0 or above `MAX_MESSAGES_PER_PACKET`; holds the count.
    #[error("packet holds {0} messages; 1 to {MAX_MESSAGES_PER_PACKET} allowed")]
    MessageCount(usize),
    /// The input ended inside a field or message.
    #[error("truncated: needed {needed} more bytes in {what}")]
    Truncated {
        /// The field or message being read.
        what: &'static str,
        /// Bytes missing to complete it.
        needed: usize,
    },
    /// Bytes left after the last declared message; holds how many.
    #[error("{0} trailing bytes after the last message")]
    TrailingBytes(usize),
    /// A message body longer than its type reads; holds the type code and the unread byte count.
    #[error("message type {0} body has {1} unread bytes")]
    BodyTooLong(u8, usize),
    /// A message type code not in `code`; holds the code.
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A field holds a value the protocol does not define (an unknown layer, role, reason or address family...).
    #[error("invalid {what} value {value}")]
    BadValue {
        /// The field whose value is invalid.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// A list is longer (or, for manifests, shorter) than the protocol allows.
    #[error("{what} count {count} exceeds limit {limit}")]
    TooMany {
        /// What was counted (peers, ids, hashes, messages).
        what: &'static str,
        /// The count declared or given.
        count: usize,
        /// The most allowed.
        limit: usize,
    },
    /// A buffer map with 0 or more than `MAX_LAYERS` layers; holds the count.
    #[error("buffer map has {0} layers; 1 to {MAX_LAYERS} allowed")]
    LayerCount(usize),
    /// An LC payload that is empty or over `MAX_LC_PAYLOAD`; holds its length.
    #[error("LC payload of {0} bytes; 1 to {MAX_LC_PAYLOAD} allowed")]
    PayloadSize(usize),
    /// An LC header whose part index is not below its frame's part count.
    #[error("LC part {part} not below part count {parts}")]
    BadPart {
        /// The LC's part index within its frame.
        part: u16,
        /// The frame's part count.
        parts: u16,
    },
    /// A buffer-map layer window the codec refused (start or bit count out of range).
    #[error("buffer map: {0}")]
    Window(#[from] WindowError),
}

// ---------- sizes ----------

fn addr_len(a: &SocketAddr) -> usize {
    match a {
        SocketAddr::V4(_) => V4_LEN,
        SocketAddr::V6(_) => V6_LEN,
    }
}

/// Bits a window puts on the wire: up to its highest held LC (what `to_bits` writes).
fn window_bits(w: &LayerWindow) -> u32 {
    w.head().0.saturating_sub(w.start().0)
}

fn body_len(m: &Message) -> usize {
    match m {
        Message::Join { .. } | Message::Connect { .. } | Message::Refresh { .. } => 4 + 8 + 1,
        Message::PeerList { peers } => 1 + peers.iter().map(addr_len).sum::<usize>(),
        Message::Leave { .. } => 4 + 8,
        Message::Accept { .. } => 8 + 1,
        Message::Decline { .. } | Message::Disconnect { .. } => 1,
        Message::BufferMap(b) => {
            let layers = b.map.layers().iter().map(|w| LAYER_FIXED + window_bits(w).div_ceil(8) as usize);
            BUFFER_MAP_FIXED + layers.sum::<usize>()
        }
        Message::Request { ids, .. } => REQUEST_FIXED + ids.len() * ID_LEN,
        Message::Data(lc) => LC_HEADER_LEN + lc.payload.len(),
        Message::Token { .. } => 8 + 8,
        Message::Ping { .. } | Message::Pong { .. } => 8,
        Message::Padding { len } => usize::from(*len),
        Message::Manifest(m) => MANIFEST_FIXED + m.hashes.len() * HASH_LEN,
        Message::Observed { addr } => addr_len(addr),
        Message::Introduce { addr, .. } => 4 + addr_len(addr),
        Message::Punch => 0,
        Message::NatReport { .. } => 1,
    }
}

impl Message {
    /// Exact encoded size of this message, type and length prefix included.
    pub fn wire_len(&self) -> usize {
        MESSAGE_HEADER_LEN + body_len(self)
    }
}

impl Packet {
    /// Exact encoded size of the datagram.
    pub fn wire_len(&self) -> usize {
        PACKET_HEADER_LEN + self.messages.iter().map(Message::wire_len).sum::<usize>()
    }
}

/// Wire size of an LC data message with `payload` bytes (prefix included).
pub const fn data_wire_len(payload: usize) -> usize {
    MESSAGE_HEADER_LEN + LC_HEADER_LEN + payload
}

// ---------- encode ----------

/// One table per wire code: each (variant, byte) pair is written once and gives both
/// the encoder (`$encode`) and the decoder (`$decode`, `None` for an unknown byte).
macro_rules! code_table {
    ($ty:ident, $encode:ident, $decode:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        fn $encode(v: $ty) -> u8 {
            match v {
                $($ty::$variant => $code,)+
            }
        }

        fn $decode(c: u8) -> Option<$ty> {
            match c {
                $($code => Some($ty::$variant),)+
                _ => None,
            }
        }
    };
}

code_table!(Role, role_code, role_of { Peer = 0, Seed = 1, Relay = 2 });
code_table!(Reason, reason_code, reason_of { Full = 0, Adaptation = 1, Leaving = 2, Refused = 3 });

fn type_code(m: &Message) -> u8 {
    match m {
        Message::Join { .. } => code::JOIN,
        Message::PeerList { .. } => code::PEER_LIST,
        Message::Refresh { .. } => code::REFRESH,
        Message::Leave { .. } => code::LEAVE,
        Message::Connect { .. } => code::CONNECT,
        Message::Accept { .. } => code::ACCEPT,
        Message::Decline { .. } => code::DECLINE,
        Message::Disconnect { .. } => code::DISCONNECT,
        Message::BufferMap(_) => code::BUFFER_MAP,
        Message::Request { .. } => code::REQUEST,
        Message::Data(_) => code::DATA,
        Message::Token { .. } => code::TOKEN,
        Message::Ping { .. } => code::PING,
        Message::Pong { .. } => code::PONG,
        Message::Padding { .. } => code::PADDING,
        Message::Manifest(_) => code::MANIFEST,
        Message::Observed { .. } => code::OBSERVED,
        Message::Introduce { .. } => code::INTRODUCE,
        Message::Punch => code::PUNCH,
        Message::NatReport { .. } => code::NAT_REPORT,
    }
}

fn nat_code(n: NatType) -> u8 {
    match n {
        NatType::Unknown => 0,
        NatType::Open => 1,
        NatType::Cone => 2,
        NatType::Symmetric => 3,
    }
}

/// The limits `decode` enforces that a typed message can still break.
fn check(m: &Message) -> Result<(), WireError> {
    match m {
        Message::PeerList { peers } if peers.len() > MAX_PEER_LIST => {
            Err(WireError::TooMany { what: "peer list", count: peers.len(), limit: MAX_PEER_LIST })
        }
        Message::Request { ids, .. } if ids.len() > MAX_REQUEST_IDS => {
            Err(WireError::TooMany { what: "request ids", count: ids.len(), limit: MAX_REQUEST_IDS })
        }
        Message::BufferMap(b) => {
            let layers = b.map.layers();
            if layers.is_empty() || layers.len() > MAX_LAYERS {
                return Err(WireError::LayerCount(layers.len()));
            }
            for w in layers {
                // A window may be created past MAX_SEQ; the decoder would refuse it.
                if w.start().0 > MAX_SEQ {
                    return Err(WindowError::SeqLimit(w.start().0).into());
                }
                if window_bits(w) > MAX_WINDOW_LCS {
                    return Err(WindowError::TooLong(window_bits(w)).into());
                }
            }
            Ok(())
        }
        Message::Data(lc) if lc.payload.is_empty() || lc.payload.len() > MAX_LC_PAYLOAD => {
            Err(WireError::PayloadSize(lc.payload.len()))
        }
        Message::Manifest(m) if m.hashes.is_empty() || m.hashes.len() > MAX_MANIFEST_LCS => {
            Err(WireError::TooMany { what: "manifest hashes", count: m.hashes.len(), limit: MAX_MANIFEST_LCS })
        }
        Message::Data(lc) if lc.header.part >= lc.header.parts => {
            Err(WireError::BadPart { part: lc.header.part, parts: lc.header.parts })
        }
        _ => Ok(()),
    }
}

fn put_addr(out: &mut BytesMut, a: &SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => {
            out.put_u8(4);
            out.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.put_u8(6);
            out.put_slice(&ip.octets());
        }
    }
    out.put_u16(a.port());
}

/// Writes the body; `check` has passed, so every count fits its field.
fn put_body(out: &mut BytesMut, m: &Message) {
    match m {
        Message::Join { channel, peer, role } | Message::Connect { channel, peer, role } => {
            out.put_u32(channel.0);
            out.put_u64(peer.0);
            out.put_u8(role_code(*role));
        }
        Message::PeerList { peers } => {
            out.put_u8(peers.len() as u8);
            peers.iter().for_each(|a| put_addr(out, a));
        }
        Message::Refresh { channel, peer, want_peers } => {
            out.put_u32(channel.0);
            out.put_u64(peer.0);
            out.put_u8(u8::from(*want_peers));
        }
        Message::Leave { channel, peer } => {
            out.put_u32(channel.0);
            out.put_u64(peer.0);
        }
        Message::Accept { peer, role } => {
            out.put_u64(peer.0);
            out.put_u8(role_code(*role));
        }
        Message::Decline { reason } | Message::Disconnect { reason } => out.put_u8(reason_code(*reason)),
        Message::BufferMap(b) => {
            out.put_u64(b.head_time.0);
            out.put_u64(b.sent_at);
            out.put_u64(b.echo);
            out.put_u32(b.echo_delay);
            out.put_u8(b.map.layers().len() as u8);
            let mut bits = Vec::new();
            for w in b.map.layers() {
                bits.clear();
                let n = w.to_bits(&mut bits);
                out.put_u32(w.start().0);
                out.put_u16(n as u16);
                out.put_slice(&bits);
            }
        }
        Message::Request { ttl_ms, ids } => {
            // Flat (layer, seq) pairs: the order is the serving order and interleaves
            // layers (regular requests are shuffled across layers), so grouping per
            // layer would lose it.
            out.put_u16(*ttl_ms);
            out.put_u16(ids.len() as u16);
            for id in ids {
                out.put_u8(id.layer.get());
                out.put_u32(id.seq.0);
            }
        }
        Message::Data(lc) => {
            let h = &lc.header;
            out.put_u8(h.id.layer.get());
            out.put_u32(h.id.seq.0);
            out.put_u32(h.frame);
            out.put_u16(h.part);
            out.put_u16(h.parts);
            out.put_u64(h.time.0);
            out.put_slice(&lc.payload);
        }
        Message::Token { nonce, echo } => {
            out.put_u64(*nonce);
            out.put_u64(*echo);
        }
        Message::Ping { sent_at: at } | Message::Pong { one_way: at } => out.put_u64(*at),
        Message::Padding { len } => out.put_bytes(0, usize::from(*len)),
        Message::Manifest(m) => {
            out.put_u8(m.layer.get());
            out.put_u32(m.start.0);
            out.put_u8(m.hashes.len() as u8);
            m.hashes.iter().for_each(|h| out.put_slice(&h.0));
            out.put_slice(&m.signature);
        }
        Message::Observed { addr } => put_addr(out, addr),
        Message::Introduce { channel, addr } => {
            out.put_u32(channel.0);
            put_addr(out, addr);
        }
        Message::Punch => {}
        Message::NatReport { nat } => out.put_u8(nat_code(*nat)),
    }
}

/// Appends `packet` to `out`. Fails, writing nothing, if it breaks a limit our
/// own decoder enforces.
pub fn encode(packet: &Packet, out: &mut BytesMut) -> Result<(), WireError> {
    let n = packet.messages.len();
    if n == 0 || n > MAX_MESSAGES_PER_PACKET {
        return Err(WireError::MessageCount(n));
    }
    packet.messages.iter().try_for_each(check)?;
    let total = packet.wire_len();
    if total > MAX_DATAGRAM {
        return Err(WireError::TooLarge(total));
    }
    out.reserve(total);
    out.put_u16(MAGIC);
    out.put_u8(VERSION);
    out.put_u8(n as u8);
    for m in &packet.messages {
        out.put_u8(type_code(m));
        out.put_u16(body_len(m) as u16);
        put_body(out, m);
    }
    Ok(())
}

// ---------- decode ----------

/// A bounds-checked cursor over `buf[pos..end]`. Only `take` moves `pos`, and it never
/// passes `end <= buf.len()`, so no access can go out of bounds.
#[derive(Debug)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0, end: buf.len() }
    }

    fn remaining(&self) -> usize {
        self.end.saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let short = WireError::Truncated { what, needed: n.saturating_sub(self.remaining()) };
        let end = match self.pos.checked_add(n) {
            Some(end) if end <= self.end => end,
            _ => return Err(short),
        };
        let s = self.buf.get(self.pos..end).ok_or(short)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        self.take(N, what)?.try_into().map_err(|_| WireError::Truncated { what, needed: N })
    }

    /// The next `n` bytes as their own reader (a message body).
    fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, WireError> {
        let start = self.pos;
        self.take(n, what)?;
        Ok(Reader { buf: self.buf, pos: start, end: self.pos })
    }

    /// Everything left, as a zero-copy slice of `datagram` (the bytes `buf` borrows).
    fn rest(&mut self, datagram: &Bytes) -> Bytes {
        let s = datagram.slice(self.pos..self.end);
        self.pos = self.end;
        s
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        let [b] = self.array(what)?;
        Ok(b)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn layer(&mut self) -> Result<LayerId, WireError> {
        let v = self.u8("layer")?;
        LayerId::new(v).ok_or(WireError::BadValue { what: "layer", value: v.into() })
    }

    fn role(&mut self) -> Result<Role, WireError> {
        let v = self.u8("role")?;
        role_of(v).ok_or(WireError::BadValue { what: "role", value: v.into() })
    }

    fn reason(&mut self) -> Result<Reason, WireError> {
        let v = self.u8("reason")?;
        reason_of(v).ok_or(WireError::BadValue { what: "reason", value: v.into() })
    }

    fn addr(&mut self) -> Result<SocketAddr, WireError> {
        let ip = match self.u8("address family")? {
            4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>("IPv4 address")?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>("IPv6 address")?)),
            v => return Err(WireError::BadValue { what: "address family", value: v.into() }),
        };
        Ok(SocketAddr::new(ip, self.u16("port")?))
    }

    fn window(&mut self) -> Result<LayerWindow, WireError> {
        let start = Seq(self.u32("window start")?);
        let nbits = u32::from(self.u16("bit count")?);
        if nbits > MAX_WINDOW_LCS {
            return Err(WireError::TooMany {
                what: "window bits",
                count: nbits as usize,
                limit: MAX_WINDOW_LCS as usize,
            });
        }
        let bits = self.take(nbits.div_ceil(8) as usize, "bitmap")?;
        Ok(LayerWindow::from_bits(start, nbits, bits)?)
    }
}

fn decode_body(r: &mut Reader<'_>, ty: u8, datagram: &Bytes) -> Result<Message, WireError> {
    Ok(match ty {
        code::JOIN | code::CONNECT => {
            let channel = ChannelId(r.u32("channel")?);
            let peer = PeerId(r.u64("peer id")?);
            let role = r.role()?;
            if ty == code::JOIN {
                Message::Join { channel, peer, role }
            } else {
                Message::Connect { channel, peer, role }
            }
        }
        code::PEER_LIST => {
            let n = usize::from(r.u8("peer count")?);
            if n > MAX_PEER_LIST {
                return Err(WireError::TooMany { what: "peer list", count: n, limit: MAX_PEER_LIST });
            }
            // Grown as addresses parse: each one is backed by bytes already received.
            let mut peers = Vec::new();
            for _ in 0..n {
                peers.push(r.addr()?);
            }
            Message::PeerList { peers }
        }
        code::REFRESH => {
            let channel = ChannelId(r.u32("channel")?);
            let peer = PeerId(r.u64("peer id")?);
            let want_peers = match r.u8("want_peers")? {
                0 => false,
                1 => true,
                v => return Err(WireError::BadValue { what: "want_peers", value: v.into() }),
            };
            Message::Refresh { channel, peer, want_peers }
        }
        code::LEAVE => Message::Leave { channel: ChannelId(r.u32("channel")?), peer: PeerId(r.u64("peer id")?) },
        code::ACCEPT => Message::Accept { peer: PeerId(r.u64("peer id")?), role: r.role()? },
        code::DECLINE => Message::Decline { reason: r.reason()? },
        code::DISCONNECT => Message::Disconnect { reason: r.reason()? },
        code::BUFFER_MAP => {
            let head_time = MediaTime(r.u64("head time")?);
            let sent_at = r.u64("sent_at")?;
            let echo = r.u64("echo")?;
            let echo_delay = r.u32("echo delay")?;
            let n = usize::from(r.u8("layer count")?);
            if n == 0 || n > MAX_LAYERS {
                return Err(WireError::LayerCount(n));
            }
            let mut layers = Vec::new();
            for _ in 0..n {
                layers.push(r.window()?);
            }
            Message::BufferMap(BufferMapMsg {
                head_time,
                sent_at,
                echo,
                echo_delay,
                map: BufferMap::from_layers(layers),
            })
        }
        code::REQUEST => {
            let ttl_ms = r.u16("ttl")?;
            let n = usize::from(r.u16("id count")?);
            if n > MAX_REQUEST_IDS {
                return Err(WireError::TooMany { what: "request ids", count: n, limit: MAX_REQUEST_IDS });
            }
            // The ids must be present before we allocate for them.
            if r.remaining() < n * ID_LEN {
                return Err(WireError::Truncated { what: "request ids", needed: n * ID_LEN - r.remaining() });
            }
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                ids.push(LcId { layer: r.layer()?, seq: Seq(r.u32("seq")?) });
            }
            Message::Request { ttl_ms, ids }
        }
        code::DATA => {
            let header = lc_header(r)?;
            Message::Data(Lc { header, payload: r.rest(datagram) })
        }
        code::TOKEN => Message::Token { nonce: r.u64("token nonce")?, echo: r.u64("token echo")? },
        code::PING => Message::Ping { sent_at: r.u64("ping time")? },
        code::PONG => Message::Pong { one_way: r.u64("pong one-way delay")? },
        code::PADDING => {
            // Padding is zeros, so a packet re-encodes to the bytes it came from.
            let n = r.remaining();
            let bytes = r.take(n, "padding")?;
            if let Some(&b) = bytes.iter().find(|&&b| b != 0) {
                return Err(WireError::BadValue { what: "padding byte", value: b.into() });
            }
            Message::Padding { len: n as u16 }
        }
        code::MANIFEST => {
            let layer = r.layer()?;
            let start = Seq(r.u32("manifest start")?);
            let n = usize::from(r.u8("hash count")?);
            if n == 0 || n > MAX_MANIFEST_LCS {
                return Err(WireError::TooMany { what: "manifest hashes", count: n, limit: MAX_MANIFEST_LCS });
            }
            let mut hashes = Vec::new();
            for _ in 0..n {
                hashes.push(LcHash(r.array("manifest hash")?));
            }
            Message::Manifest(ManifestMsg { layer, start, hashes, signature: r.array("signature")? })
        }
        code::OBSERVED => Message::Observed { addr: r.addr()? },
        code::INTRODUCE => Message::Introduce { channel: ChannelId(r.u32("channel")?), addr: r.addr()? },
        code::PUNCH => Message::Punch,
        code::NAT_REPORT => Message::NatReport {
            nat: match r.u8("nat type")? {
                0 => NatType::Unknown,
                1 => NatType::Open,
                2 => NatType::Cone,
                3 => NatType::Symmetric,
                v => return Err(WireError::BadValue { what: "nat type", value: v.into() }),
            },
        },
        other => return Err(WireError::UnknownType(other)),
    })
}

/// An LC header and the payload after it (checked, not read).
fn lc_header(r: &mut Reader<'_>) -> Result<LcHeader, WireError> {
    let layer = r.layer()?;
    let seq = Seq(r.u32("seq")?);
    let frame = r.u32("frame")?;
    let part = r.u16("part")?;
    let parts = r.u16("parts")?;
    let time = MediaTime(r.u64("media time")?);
    if part >= parts {
        return Err(WireError::BadPart { part, parts });
    }
    let len = r.remaining();
    if len == 0 || len > MAX_LC_PAYLOAD {
        return Err(WireError::PayloadSize(len));
    }
    Ok(LcHeader { id: LcId { layer, seq }, frame, part, parts, time })
}

/// The packet header of `datagram`: a reader past it and the message count.
fn packet_header(datagram: &[u8]) -> Result<(Reader<'_>, usize), WireError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(WireError::TooLarge(datagram.len()));
    }
    let mut r = Reader::new(datagram);
    let magic = r.u16("packet header")?;
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let version = r.u8("packet header")?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let n = usize::from(r.u8("packet header")?);
    if n == 0 || n > MAX_MESSAGES_PER_PACKET {
        return Err(WireError::MessageCount(n));
    }
    Ok((r, n))
}

/// One message's type code and body bytes.
fn message_frame<'a>(r: &mut Reader<'a>) -> Result<(u8, Reader<'a>), WireError> {
    let ty = r.u8("message header")?;
    let len = usize::from(r.u16("message header")?);
    Ok((ty, r.sub(len, "message body")?))
}

/// Parses one datagram. Payloads of LC messages share `datagram`'s memory.
pub fn decode(datagram: Bytes) -> Result<Packet, WireError> {
    let (mut r, n) = packet_header(&datagram)?;
    let mut messages = Vec::new();
    for _ in 0..n {
        let (ty, mut body) = message_frame(&mut r)?;
        let m = decode_body(&mut body, ty, &datagram)?;
        if body.remaining() != 0 {
            return Err(WireError::BodyTooLong(ty, body.remaining()));
        }
        messages.push(m);
    }
    if r.remaining() != 0 {
        return Err(WireError::TrailingBytes(r.remaining()));
    }
    Ok(Packet { messages })
}

/// One message of a datagram, not decoded: its type code (`code`) and body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The message's type code.
    pub code: u8,
    /// Its body, borrowed from the datagram.
    pub body: &'a [u8],
}

/// The messages of a datagram, borrowed (`frames`).
#[derive(Debug)]
pub struct Frames<'a> {
    r: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            if self.r.remaining() != 0 {
                let trailing = self.r.remaining();
                self.r.pos = self.r.end;
                return Some(Err(WireError::TrailingBytes(trailing)));
            }
            return None;
        }
        self.left -= 1;
        let frame = message_frame(&mut self.r).map(|(code, body)| Frame { code, body: &body.buf[body.pos..body.end] });
        if frame.is_err() {
            self.left = 0;
            self.r.pos = self.r.end;
        }
        Some(frame)
    }
}

/// Splits a datagram into its messages without decoding or copying them: a receiver
/// that only counts LCs reads their headers with `data_header` and decodes the rare
/// other message with `decode`. Checks the packet header as `decode` does; each
/// message's length and trailing bytes are checked as the iterator reaches them.
pub fn frames(datagram: &[u8]) -> Result<Frames<'_>, WireError> {
    let (r, left) = packet_header(datagram)?;
    Ok(Frames { r, left })
}

/// The header and payload length of a `Data` message's body (a `Frame` of code
/// `code::DATA`), checked as `decode` checks it, without touching the payload.
pub fn data_header(body: &[u8]) -> Result<(LcHeader, usize), WireError> {
    let mut r = Reader::new(body);
    let header = lc_header(&mut r)?;
    Ok((header, r.remaining()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn l(n: u8) -> LayerId {
        LayerId::new(n).expect("valid layer")
    }

    fn id(layer: u8, seq: u32) -> LcId {
        LcId { layer: l(layer), seq: Seq(seq) }
    }

    fn lc(payload: usize) -> Lc {
        let header = LcHeader { id: id(2, 77), frame: 9, part: 1, parts: 3, time: MediaTime(123_456) };
        Lc { header, payload: Bytes::from(vec![0xAB; payload]) }
    }

    fn window(start: u32, seqs: impl IntoIterator<Item = u32>) -> LayerWindow {
        let mut w = LayerWindow::new(Seq(start));
        for s in seqs {
            w.insert(Seq(s)).expect("in window");
        }
        w
    }

    fn bm(map: BufferMap) -> Message {
        Message::BufferMap(BufferMapMsg { head_time: MediaTime(9), sent_at: 10, echo: 11, echo_delay: 12, map })
    }

    /// Three layers at different starts; layer 2 holds nothing.
    fn small_map() -> BufferMap {
        BufferMap::from_layers(vec![window(100, [100, 101, 170]), window(64, []), window(99, [250])])
    }

    /// The largest buffer map: every layer's window full.
    fn full_map() -> BufferMap {
        let layers = (0..MAX_LAYERS as u32).map(|i| window(i * 1000, i * 1000..i * 1000 + MAX_WINDOW_LCS));
        BufferMap::from_layers(layers.collect())
    }

    fn every_variant() -> Vec<Message> {
        let v4 = SocketAddr::from(([10, 1, 2, 3], 4000));
        let v6 = SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 443));
        let all_layers = (0..MAX_REQUEST_IDS as u32).map(|i| id((i % MAX_LAYERS as u32) as u8 + 1, i * 7));
        vec![
            Message::Join { channel: ChannelId(7), peer: PeerId(u64::MAX), role: Role::Seed },
            Message::PeerList { peers: vec![] },
            Message::PeerList { peers: vec![v4, v6] },
            Message::PeerList { peers: vec![v6; MAX_PEER_LIST] },
            Message::Refresh { channel: ChannelId(1), peer: PeerId(2), want_peers: true },
            Message::Refresh { channel: ChannelId(1), peer: PeerId(2), want_peers: false },
            Message::Leave { channel: ChannelId(1), peer: PeerId(3) },
            Message::Connect { channel: ChannelId(1), peer: PeerId(4), role: Role::Relay },
            Message::Accept { peer: PeerId(5), role: Role::Peer },
            Message::Token { nonce: 0x0123_4567_89AB_CDEF, echo: u64::MAX },
            Message::Ping { sent_at: 42 },
            Message::Pong { one_way: u64::MAX },
            Message::Padding { len: 0 },
            Message::Padding { len: 1150 },
            Message::Decline { reason: Reason::Full },
            Message::Decline { reason: Reason::Refused },
            Message::Disconnect { reason: Reason::Adaptation },
            Message::Disconnect { reason: Reason::Leaving },
            bm(BufferMap::new(1, Seq(0))),
            bm(small_map()),
            bm(full_map()),
            Message::Request { ttl_ms: 900, ids: vec![] },
            Message::Request { ttl_ms: 900, ids: vec![id(1, 5), id(3, u32::MAX), id(2, 0), id(1, 6)] },
            Message::Request { ttl_ms: u16::MAX, ids: all_layers.collect() },
            Message::Data(lc(1)),
            Message::Data(lc(MAX_LC_PAYLOAD)),
            manifest(2, 1),
            manifest(3, MAX_MANIFEST_LCS),
            Message::Observed { addr: v4 },
            Message::Observed { addr: v6 },
            Message::Introduce { channel: ChannelId(9), addr: v6 },
            Message::Punch,
            Message::NatReport { nat: NatType::Cone },
            Message::NatReport { nat: NatType::Symmetric },
        ]
    }

    fn manifest(layer: u8, n: usize) -> Message {
        let hashes = (0..n).map(|i| LcHash([i as u8; HASH_LEN])).collect();
        Message::Manifest(ManifestMsg { layer: l(layer), start: Seq(40), hashes, signature: [0x5A; SIGNATURE_LEN] })
    }

    fn bytes_of(p: &Packet) -> Bytes {
        let mut out = BytesMut::new();
        encode(p, &mut out).expect("encodable");
        out.freeze()
    }

    fn one(m: Message) -> Packet {
        Packet { messages: vec![m] }
    }

    #[test]
    fn every_variant_round_trips() {
        for m in every_variant() {
            let p = one(m);
            assert_eq!(decode(bytes_of(&p)), Ok(p));
        }
    }

    #[test]
    fn wire_len_is_exact_for_every_variant() {
        for m in every_variant() {
            let encoded = bytes_of(&one(m.clone())).len();
            assert_eq!(encoded, PACKET_HEADER_LEN + m.wire_len(), "{m:?}");
            assert_eq!(encoded, one(m).wire_len());
        }
        assert_eq!(Message::Data(lc(700)).wire_len(), data_wire_len(700));
    }

    #[test]
    fn data_buffer_map_and_request_piggyback_in_one_datagram() {
        let p = Packet {
            messages: vec![
                Message::Data(lc(1000)),
                bm(small_map()),
                Message::Request { ttl_ms: 800, ids: vec![id(1, 3), id(2, 4)] },
            ],
        };
        let b = bytes_of(&p);
        assert_eq!(b.len(), p.wire_len());
        assert_eq!(decode(b), Ok(p));
    }

    #[test]
    fn many_piggybacked_messages_round_trip() {
        let mut messages = every_variant();
        messages.retain(|m| m.wire_len() < 5000); // the full map and request are big
        let p = Packet { messages };
        assert_eq!(decode(bytes_of(&p)), Ok(p));
    }

    #[test]
    fn frames_borrow_what_decode_parses() {
        let p = Packet { messages: vec![Message::Data(lc(1000)), bm(small_map()), Message::Data(lc(5))] };
        let b = bytes_of(&p);
        let split: Vec<Frame<'_>> = frames(&b).expect("header").collect::<Result<_, _>>().expect("frames");
        assert_eq!(split.iter().map(|f| f.code).collect::<Vec<_>>(), vec![code::DATA, code::BUFFER_MAP, code::DATA]);
        for (f, m) in split.iter().zip(&p.messages) {
            if let Message::Data(lc) = m {
                assert_eq!(data_header(f.body), Ok((lc.header, lc.payload.len())));
            }
        }
        // What decode refuses, frames refuses too: header, body length, trailing bytes.
        assert_eq!(frames(&b[..3]).err(), decode(b.slice(..3)).err());
        let cut = b.slice(..b.len() - 1);
        assert!(frames(&cut).expect("header").any(|f| f.is_err()));
        let mut longer = b.to_vec();
        longer.push(0);
        assert_eq!(frames(&longer).expect("header").last(), Some(Err(WireError::TrailingBytes(1))));
        assert_eq!(decode(Bytes::from(longer)), Err(WireError::TrailingBytes(1)));
        // A Data body with a bad part or no payload is refused as decode refuses it.
        let mut body = bytes_of(&one(Message::Data(lc(10))))[PACKET_HEADER_LEN + MESSAGE_HEADER_LEN..].to_vec();
        assert_eq!(data_header(&body[..LC_HEADER_LEN]).err(), Some(WireError::PayloadSize(0)));
        body[9..11].copy_from_slice(&3u16.to_be_bytes()); // part (after layer, seq, frame)
        assert_eq!(data_header(&body), Err(WireError::BadPart { part: 3, parts: 3 }));
    }

    #[test]
    fn lc_payload_is_a_slice_of_the_datagram() {
        let b = bytes_of(&Packet { messages: vec![Message::Data(lc(1000)), Message::Data(lc(5))] });
        let range = b.as_ptr() as usize..b.as_ptr() as usize + b.len();
        let p = decode(b.clone()).expect("decodes");
        for m in &p.messages {
            let payload = m.payload().expect("data");
            assert!(range.contains(&(payload.as_ptr() as usize)));
            assert!(range.contains(&(payload.as_ptr() as usize + payload.len() - 1)));
        }
    }

    /// The worked examples in docs/PROTOCOL.md.
    #[test]
    fn protocol_md_examples_are_exact() {
        let decline = one(Message::Decline { reason: Reason::Full });
        assert_eq!(bytes_of(&decline), Bytes::from_static(&[0x4C, 0x50, 0x01, 0x01, 0x07, 0x00, 0x01, 0x00]));
        let p = Packet {
            messages: vec![
                Message::Request { ttl_ms: 900, ids: vec![id(1, 5), id(3, 6)] },
                bm(BufferMap::from_layers(vec![window(16, [16, 18, 25])])),
            ],
        };
        #[rustfmt::skip]
        let hex = Bytes::from_static(&[
            0x4C, 0x50, 0x01, 0x02,
            0x0A, 0x00, 0x0E,
            0x03, 0x84, 0x00, 0x02,
            0x01, 0x00, 0x00, 0x00, 0x05,
            0x03, 0x00, 0x00, 0x00, 0x06,
            0x09, 0x00, 0x25,
            0, 0, 0, 0, 0, 0, 0, 0x09,
            0, 0, 0, 0, 0, 0, 0, 0x0A,
            0, 0, 0, 0, 0, 0, 0, 0x0B,
            0, 0, 0, 0x0C,
            0x01,
            0x00, 0x00, 0x00, 0x10, 0x00, 0x0A, 0x05, 0x02,
        ]);
        assert_eq!(bytes_of(&p), hex);
        assert_eq!(decode(hex), Ok(p));
    }

    // ---------- errors ----------

    fn header(n: u8) -> Vec<u8> {
        vec![0x4C, 0x50, VERSION, n]
    }

    /// A one-message datagram with a raw body.
    fn with_body(ty: u8, body: &[u8]) -> Bytes {
        let mut v = header(1);
        v.push(ty);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        Bytes::from(v)
    }

    fn data_body(layer: u8, part: u16, parts: u16, payload: usize) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u8(layer);
        b.put_u32(1); // seq
        b.put_u32(2); // frame
        b.put_u16(part);
        b.put_u16(parts);
        b.put_u64(3); // time
        b.put_bytes(0xEE, payload);
        b.to_vec()
    }

    /// A buffer map body with `layers` declared and the given (start, nbits, bitmap) windows.
    fn map_body(layers: u8, windows: &[(u32, u16, &[u8])]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_bytes(0, BUFFER_MAP_FIXED - 1);
        b.put_u8(layers);
        for (start, nbits, bits) in windows {
            b.put_u32(*start);
            b.put_u16(*nbits);
            b.put_slice(bits);
        }
        b.to_vec()
    }

    fn request_body(count: u16, ids: &[(u8, u32)]) -> Vec<u8> {
        let mut b = BytesMut::new();
        b.put_u16(500);
        b.put_u16(count);
        for (layer, seq) in ids {
            b.put_u8(*layer);
            b.put_u32(*seq);
        }
        b.to_vec()
    }

    fn bad(what: &'static str, value: u64) -> WireError {
        WireError::BadValue { what, value }
    }

    fn truncated(what: &'static str, needed: usize) -> WireError {
        WireError::Truncated { what, needed }
    }

    #[test]
    fn each_malformation_is_a_typed_error() {
        let decline = bytes_of(&one(Message::Decline { reason: Reason::Full })).to_vec();
        let plus = |extra: &[u8]| [&decline[..], extra].concat();
        let mut two_declared = decline.clone();
        two_declared[3] = 2;
        let join = |role: u8| [&[0u8; 12][..], &[role]].concat();
        let cases: Vec<(&str, Bytes, WireError)> = vec![
            ("empty", Bytes::new(), truncated("packet header", 2)),
            ("too large", Bytes::from(vec![0; MAX_DATAGRAM + 1]), WireError::TooLarge(MAX_DATAGRAM + 1)),
            ("bad magic", Bytes::from_static(&[0x50, 0x4C, 1, 1]), WireError::BadMagic(0x504C)),
            ("version", Bytes::from_static(&[0x4C, 0x50, 2, 1]), WireError::Version(2)),
            ("no count", Bytes::from_static(&[0x4C, 0x50, 1]), truncated("packet header", 1)),
            ("zero messages", Bytes::from(header(0)), WireError::MessageCount(0)),
            ("65 messages", Bytes::from(header(65)), WireError::MessageCount(65)),
            ("no message", Bytes::from(header(1)), truncated("message header", 1)),
            ("half a message header", Bytes::from(plus(&[7, 0])), WireError::TrailingBytes(2)),
            ("second message missing", Bytes::from(two_declared.clone()), truncated("message header", 1)),
            ("second header cut", Bytes::from([&two_declared[..], &[7, 0]].concat()), truncated("message header", 1)),
            ("body cut", Bytes::from([&header(1)[..], &[7, 0, 5, 0]].concat()), truncated("message body", 4)),
            ("trailing after last", Bytes::from(plus(&[0])), WireError::TrailingBytes(1)),
            ("unknown type 0", with_body(0, &[]), WireError::UnknownType(0)),
            ("unknown type 17", with_body(17, &[1]), WireError::UnknownType(17)),
            ("ping cut", with_body(code::PING, &[0; 7]), truncated("ping time", 1)),
            ("nat type 4", with_body(code::NAT_REPORT, &[4]), bad("nat type", 4)),
            ("observed family 5", with_body(code::OBSERVED, &[5, 0, 0]), bad("address family", 5)),
            ("punch with a body", with_body(code::PUNCH, &[0]), WireError::BodyTooLong(code::PUNCH, 1)),
            (
                "manifest without hashes",
                with_body(code::MANIFEST, &[1, 0, 0, 0, 0, 0]),
                WireError::TooMany { what: "manifest hashes", count: 0, limit: MAX_MANIFEST_LCS },
            ),
            (
                "manifest of 65",
                with_body(code::MANIFEST, &[1, 0, 0, 0, 0, 65]),
                WireError::TooMany { what: "manifest hashes", count: 65, limit: MAX_MANIFEST_LCS },
            ),
            ("manifest bad layer", with_body(code::MANIFEST, &[0, 0, 0, 0, 0, 1]), bad("layer", 0)),
            (
                "manifest hash cut",
                with_body(code::MANIFEST, &[1, 0, 0, 0, 0, 2, 0, 0, 0]),
                truncated("manifest hash", 13),
            ),
            (
                "manifest signature cut",
                with_body(code::MANIFEST, &[[1, 0, 0, 0, 0, 1].as_slice(), &[0; HASH_LEN + 10]].concat()),
                truncated("signature", SIGNATURE_LEN - 10),
            ),
            (
                "manifest trailing byte",
                with_body(
                    code::MANIFEST,
                    &[[1, 0, 0, 0, 0, 1].as_slice(), &[0; HASH_LEN + SIGNATURE_LEN + 1]].concat(),
                ),
                WireError::BodyTooLong(code::MANIFEST, 1),
            ),
            ("token cut", with_body(code::TOKEN, &[0; 12]), truncated("token echo", 4)),
            ("padding not zero", with_body(code::PADDING, &[0, 0, 3]), bad("padding byte", 3)),
            ("unknown type 255", with_body(255, &[]), WireError::UnknownType(255)),
            ("body too long", with_body(code::DECLINE, &[0, 0]), WireError::BodyTooLong(code::DECLINE, 1)),
            ("empty decline", with_body(code::DECLINE, &[]), truncated("reason", 1)),
            ("bad reason", with_body(code::DISCONNECT, &[4]), bad("reason", 4)),
            ("bad role join", with_body(code::JOIN, &join(3)), bad("role", 3)),
            ("bad role connect", with_body(code::CONNECT, &join(255)), bad("role", 255)),
            ("join cut", with_body(code::JOIN, &[0; 12]), truncated("role", 1)),
            ("leave cut", with_body(code::LEAVE, &[0; 7]), truncated("peer id", 5)),
            ("bad role accept", with_body(code::ACCEPT, &[0, 0, 0, 0, 0, 0, 0, 0, 7]), bad("role", 7)),
            ("bad want_peers", with_body(code::REFRESH, &join(2)), bad("want_peers", 2)),
            (
                "65 peers",
                with_body(code::PEER_LIST, &[65]),
                WireError::TooMany { what: "peer list", count: 65, limit: 64 },
            ),
            ("peers missing", with_body(code::PEER_LIST, &[2, 4, 1, 2, 3, 4, 0, 80]), truncated("address family", 1)),
            ("bad family", with_body(code::PEER_LIST, &[1, 5, 0, 0]), bad("address family", 5)),
            ("v6 cut", with_body(code::PEER_LIST, &[1, 6, 0, 0]), truncated("IPv6 address", 14)),
            ("port cut", with_body(code::PEER_LIST, &[1, 4, 1, 2, 3, 4, 0]), truncated("port", 1)),
            ("no layers", with_body(code::BUFFER_MAP, &map_body(0, &[])), WireError::LayerCount(0)),
            ("9 layers", with_body(code::BUFFER_MAP, &map_body(9, &[])), WireError::LayerCount(9)),
            ("map fixed part cut", with_body(code::BUFFER_MAP, &[0; 20]), truncated("echo", 4)),
            ("layer missing", with_body(code::BUFFER_MAP, &map_body(2, &[(0, 0, &[])])), truncated("window start", 4)),
            ("bitmap short", with_body(code::BUFFER_MAP, &map_body(1, &[(0, 16, &[0xFF])])), truncated("bitmap", 1)),
            (
                "bitmap long",
                with_body(code::BUFFER_MAP, &map_body(1, &[(0, 8, &[0xFF, 0])])),
                WireError::BodyTooLong(code::BUFFER_MAP, 1),
            ),
            (
                "window too long",
                with_body(code::BUFFER_MAP, &map_body(1, &[(0, MAX_WINDOW_LCS as u16 + 1, &[])])),
                WireError::TooMany {
                    what: "window bits",
                    count: MAX_WINDOW_LCS as usize + 1,
                    limit: MAX_WINDOW_LCS as usize,
                },
            ),
            (
                "window past seq limit",
                with_body(code::BUFFER_MAP, &map_body(1, &[(u32::MAX, 8, &[1])])),
                WireError::Window(WindowError::SeqLimit(u32::MAX)),
            ),
            (
                "2049 ids",
                with_body(code::REQUEST, &request_body(MAX_REQUEST_IDS as u16 + 1, &[])),
                WireError::TooMany { what: "request ids", count: MAX_REQUEST_IDS + 1, limit: MAX_REQUEST_IDS },
            ),
            // Claims 2000 ids with none present: refused before allocating for them.
            ("ids absent", with_body(code::REQUEST, &request_body(2000, &[])), truncated("request ids", 10_000)),
            (
                "ids extra",
                with_body(code::REQUEST, &request_body(1, &[(1, 0), (1, 1)])),
                WireError::BodyTooLong(code::REQUEST, 5),
            ),
            ("request bad layer", with_body(code::REQUEST, &request_body(2, &[(1, 0), (9, 1)])), bad("layer", 9)),
            ("request cut", with_body(code::REQUEST, &[0, 1]), truncated("id count", 2)),
            ("data bad layer", with_body(code::DATA, &data_body(0, 0, 1, 10)), bad("layer", 0)),
            ("data header cut", with_body(code::DATA, &data_body(1, 0, 1, 0)[..20]), truncated("media time", 1)),
            ("empty payload", with_body(code::DATA, &data_body(1, 0, 1, 0)), WireError::PayloadSize(0)),
            (
                "big payload",
                with_body(code::DATA, &data_body(1, 0, 1, MAX_LC_PAYLOAD + 1)),
                WireError::PayloadSize(MAX_LC_PAYLOAD + 1),
            ),
            ("part == parts", with_body(code::DATA, &data_body(1, 2, 2, 10)), WireError::BadPart { part: 2, parts: 2 }),
            ("zero parts", with_body(code::DATA, &data_body(1, 0, 0, 10)), WireError::BadPart { part: 0, parts: 0 }),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(decode(bytes), Err(want), "{name}");
        }
    }

    #[test]
    fn encode_refuses_what_decode_would_refuse() {
        let data = |payload: usize, part: u16, parts: u16| {
            let mut lc = lc(payload);
            lc.header.part = part;
            lc.header.parts = parts;
            Message::Data(lc)
        };
        let cases: Vec<(&str, Vec<Message>, WireError)> = vec![
            ("no messages", vec![], WireError::MessageCount(0)),
            ("65 messages", vec![Message::Decline { reason: Reason::Full }; 65], WireError::MessageCount(65)),
            (
                "65 peers",
                vec![Message::PeerList { peers: vec![SocketAddr::from(([1, 2, 3, 4], 5)); 65] }],
                WireError::TooMany { what: "peer list", count: 65, limit: MAX_PEER_LIST },
            ),
            (
                "2049 ids",
                vec![Message::Request { ttl_ms: 1, ids: vec![id(1, 0); MAX_REQUEST_IDS + 1] }],
                WireError::TooMany { what: "request ids", count: MAX_REQUEST_IDS + 1, limit: MAX_REQUEST_IDS },
            ),
            ("no layers", vec![bm(BufferMap::from_layers(vec![]))], WireError::LayerCount(0)),
            ("9 layers", vec![bm(BufferMap::from_layers(vec![window(0, []); 9]))], WireError::LayerCount(9)),
            (
                "window past seq limit",
                vec![bm(BufferMap::from_layers(vec![LayerWindow::new(Seq(MAX_SEQ + 1))]))],
                WireError::Window(WindowError::SeqLimit(MAX_SEQ + 1)),
            ),
            ("empty payload", vec![data(0, 0, 1)], WireError::PayloadSize(0)),
            ("big payload", vec![data(MAX_LC_PAYLOAD + 1, 0, 1)], WireError::PayloadSize(MAX_LC_PAYLOAD + 1)),
            ("part == parts", vec![data(10, 3, 3)], WireError::BadPart { part: 3, parts: 3 }),
            (
                "empty manifest",
                vec![manifest(1, 0)],
                WireError::TooMany { what: "manifest hashes", count: 0, limit: MAX_MANIFEST_LCS },
            ),
            (
                "manifest of 65",
                vec![manifest(1, MAX_MANIFEST_LCS + 1)],
                WireError::TooMany { what: "manifest hashes", count: MAX_MANIFEST_LCS + 1, limit: MAX_MANIFEST_LCS },
            ),
            (
                "datagram too large",
                vec![Message::Data(lc(MAX_LC_PAYLOAD)); MAX_MESSAGES_PER_PACKET],
                WireError::TooLarge(PACKET_HEADER_LEN + MAX_MESSAGES_PER_PACKET * data_wire_len(MAX_LC_PAYLOAD)),
            ),
        ];
        for (name, messages, want) in cases {
            let mut out = BytesMut::new();
            assert_eq!(encode(&Packet { messages }, &mut out), Err(want), "{name}");
            assert!(out.is_empty(), "{name}: nothing written on error");
        }
    }

    // ---------- properties ----------

    fn arb_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
        ]
    }

    fn arb_role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::Peer), Just(Role::Seed), Just(Role::Relay)]
    }

    fn arb_reason() -> impl Strategy<Value = Reason> {
        prop_oneof![Just(Reason::Full), Just(Reason::Adaptation), Just(Reason::Leaving), Just(Reason::Refused)]
    }

    fn arb_id() -> impl Strategy<Value = LcId> {
        (1..=MAX_LAYERS as u8, any::<u32>()).prop_map(|(layer, seq)| id(layer, seq))
    }

    /// A window built the way peers build them: inserts, then a slide forward.
    fn arb_window() -> impl Strategy<Value = LayerWindow> {
        let start = prop_oneof![0..200u32, 0..=MAX_SEQ - MAX_WINDOW_LCS, Just(MAX_SEQ - MAX_WINDOW_LCS)];
        let offsets = prop::collection::vec(prop_oneof![0..200u32, 0..MAX_WINDOW_LCS], 0..60);
        (start, offsets, 0..300u32).prop_map(|(start, offsets, slide)| {
            let mut w = window(start, offsets.into_iter().map(|o| start + o));
            w.advance(Seq(start + slide));
            w
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        let ids = prop::collection::vec(arb_id(), 0..300);
        let map = prop::collection::vec(arb_window(), 1..=MAX_LAYERS).prop_map(BufferMap::from_layers);
        let payload = prop_oneof![
            prop::collection::vec(any::<u8>(), 1..=10),
            prop::collection::vec(any::<u8>(), 1..=MAX_LC_PAYLOAD)
        ];
        prop_oneof![
            (any::<u32>(), any::<u64>(), arb_role()).prop_map(|(c, p, role)| Message::Join {
                channel: ChannelId(c),
                peer: PeerId(p),
                role
            }),
            prop::collection::vec(arb_addr(), 0..=MAX_PEER_LIST).prop_map(|peers| Message::PeerList { peers }),
            (any::<u32>(), any::<u64>(), any::<bool>()).prop_map(|(c, p, want_peers)| Message::Refresh {
                channel: ChannelId(c),
                peer: PeerId(p),
                want_peers
            }),
            (any::<u32>(), any::<u64>()).prop_map(|(c, p)| Message::Leave { channel: ChannelId(c), peer: PeerId(p) }),
            (any::<u32>(), any::<u64>(), arb_role()).prop_map(|(c, p, role)| Message::Connect {
                channel: ChannelId(c),
                peer: PeerId(p),
                role
            }),
            (any::<u64>(), arb_role()).prop_map(|(p, role)| Message::Accept { peer: PeerId(p), role }),
            (any::<u64>(), any::<u64>()).prop_map(|(nonce, echo)| Message::Token { nonce, echo }),
            any::<u64>().prop_map(|sent_at| Message::Ping { sent_at }),
            any::<u64>().prop_map(|one_way| Message::Pong { one_way }),
            (0u16..2000).prop_map(|len| Message::Padding { len }),
            arb_addr().prop_map(|addr| Message::Observed { addr }),
            (any::<u32>(), arb_addr()).prop_map(|(c, addr)| Message::Introduce { channel: ChannelId(c), addr }),
            Just(Message::Punch),
            prop_oneof![Just(NatType::Unknown), Just(NatType::Open), Just(NatType::Cone), Just(NatType::Symmetric)]
                .prop_map(|nat| Message::NatReport { nat }),
            arb_reason().prop_map(|reason| Message::Decline { reason }),
            arb_reason().prop_map(|reason| Message::Disconnect { reason }),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>(), map).prop_map(
                |(h, sent_at, echo, echo_delay, map)| {
                    Message::BufferMap(BufferMapMsg { head_time: MediaTime(h), sent_at, echo, echo_delay, map })
                }
            ),
            (any::<u16>(), ids).prop_map(|(ttl_ms, ids)| Message::Request { ttl_ms, ids }),
            (arb_id(), any::<u32>(), 1..=u16::MAX, any::<prop::sample::Index>(), any::<u64>(), payload).prop_map(
                |(id, frame, parts, part, time, payload)| {
                    let part = part.index(parts.into()) as u16;
                    let header = LcHeader { id, frame, part, parts, time: MediaTime(time) };
                    Message::Data(Lc { header, payload: Bytes::from(payload) })
                }
            ),
            (
                1..=MAX_LAYERS as u8,
                any::<u32>(),
                prop::collection::vec(any::<[u8; HASH_LEN]>(), 1..=MAX_MANIFEST_LCS),
                any::<[u8; 32]>()
            )
                .prop_map(|(layer, start, hashes, half)| {
                    let signature = std::array::from_fn(|i| half[i % 32] ^ i as u8);
                    Message::Manifest(ManifestMsg {
                        layer: l(layer),
                        start: Seq(start),
                        hashes: hashes.into_iter().map(LcHash).collect(),
                        signature,
                    })
                }),
        ]
    }

    /// Up to `max - 1` arbitrary messages that together fit one datagram.
    fn arb_packet(max: usize) -> impl Strategy<Value = Packet> {
        prop::collection::vec(arb_message(), 1..max)
            .prop_map(|messages| Packet { messages })
            .prop_filter("fits a datagram", |p| p.wire_len() <= MAX_DATAGRAM)
    }

    /// Whatever decodes re-encodes, and decodes again to the same packet.
    fn check_accepted(bytes: Vec<u8>) -> Result<(), TestCaseError> {
        if let Ok(p) = decode(Bytes::from(bytes)) {
            let mut out = BytesMut::new();
            prop_assert_eq!(encode(&p, &mut out), Ok(()));
            prop_assert_eq!(out.len(), p.wire_len());
            prop_assert_eq!(decode(out.freeze()), Ok(p));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(p in arb_packet(8)) {
            let b = bytes_of(&p);
            prop_assert_eq!(b.len(), p.wire_len());
            prop_assert_eq!(decode(b), Ok(p));
        }

        #[test]
        fn wire_len_is_encoded_size(m in arb_message()) {
            prop_assert_eq!(bytes_of(&one(m.clone())).len(), PACKET_HEADER_LEN + m.wire_len());
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            check_accepted(bytes)?;
        }

        #[test]
        fn random_messages_after_a_valid_header_never_panic(
            n in 0u8..4,
            ty in 0u8..16,
            len in prop_oneof![0u16..64, any::<u16>()],
            body in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let mut v = header(n);
            v.push(ty);
            v.extend_from_slice(&len.to_be_bytes());
            v.extend_from_slice(&body);
            check_accepted(v)?;
            check_accepted(with_body(ty, &body).to_vec())?;
        }

        #[test]
        fn mutated_and_truncated_packets_never_panic(
            p in arb_packet(4),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let valid = bytes_of(&p).to_vec();
            let mut mutated = valid.clone();
            for (at, x) in flips {
                let i = at.index(mutated.len());
                mutated[i] ^= x;
            }
            check_accepted(mutated.clone())?;
            let mut truncated = valid;
            truncated.truncate(cut.index(truncated.len()));
            prop_assert!(decode(Bytes::from(truncated)).is_err(), "a strict prefix is never a whole packet");
            mutated.truncate(cut.index(mutated.len() + 1));
            check_accepted(mutated)?;
        }
    }
}
