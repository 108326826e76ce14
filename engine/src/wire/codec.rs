//! The byte format of a datagram (docs/PROTOCOL.md): encode and strict decode.
//!
//! Decoding never panics and never trusts a count before the bytes to back it are
//! present; every malformed input is a [`WireError`]. LC payloads are slices of the
//! received datagram (`Bytes::slice`), never copies.

use super::message::*;
use bytes::{BufMut, Bytes, BytesMut};
use layerp2p_codec::{
    BufferMap, LayerId, LayerWindow, Lc, LcHeader, LcId, MediaTime, Seq, MAX_LAYERS, MAX_LC_PAYLOAD, MAX_WINDOW_LCS,
};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const MAGIC: u16 = 0x4C50; // "LP"
pub const VERSION: u8 = 1;
/// magic (2) + version (1) + message count (1).
pub const PACKET_HEADER_LEN: usize = 4;
/// type (1) + body length (2).
pub const MESSAGE_HEADER_LEN: usize = 3;
/// layer (1) + seq (4) + frame (4) + part (2) + parts (2) + media time (8).
pub const LC_HEADER_LEN: usize = 21;
/// Fixed part of a buffer map: head_time, sent_at, echo (8 each), echo_delay (4), layer count (1).
const BUFFER_MAP_FIXED: usize = 29;
/// Per layer: start (4) + bit count (2).
const LAYER_FIXED: usize = 6;
/// Bytes per requested LC id: layer (1) + seq (4).
const ID_LEN: usize = 5;

mod code {
    pub const JOIN: u8 = 1;
    pub const PEER_LIST: u8 = 2;
    pub const REFRESH: u8 = 3;
    pub const LEAVE: u8 = 4;
    pub const CONNECT: u8 = 5;
    pub const ACCEPT: u8 = 6;
    pub const DECLINE: u8 = 7;
    pub const DISCONNECT: u8 = 8;
    pub const BUFFER_MAP: u8 = 9;
    pub const REQUEST: u8 = 10;
    pub const DATA: u8 = 11;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("datagram of {0} bytes exceeds {MAX_DATAGRAM}")]
    TooLarge(usize),
    #[error("bad magic {0:#06x}")]
    BadMagic(u16),
    #[error("unsupported protocol version {0}")]
    Version(u8),
    #[error("packet holds {0} messages; 1 to {MAX_MESSAGES_PER_PACKET} allowed")]
    MessageCount(usize),
    #[error("truncated: needed {needed} more bytes in {what}")]
    Truncated { what: &'static str, needed: usize },
    #[error("{0} trailing bytes after the last message")]
    TrailingBytes(usize),
    #[error("message type {0} body has {1} unread bytes")]
    BodyTooLong(u8, usize),
    #[error("unknown message type {0}")]
    UnknownType(u8),
    #[error("invalid {what} value {value}")]
    BadValue { what: &'static str, value: u64 },
    #[error("{what} count {count} exceeds limit {limit}")]
    TooMany { what: &'static str, count: usize, limit: usize },
    #[error("LC payload of {0} bytes; 1 to {MAX_LC_PAYLOAD} allowed")]
    PayloadSize(usize),
    #[error("LC part {part} not below part count {parts}")]
    BadPart { part: u16, parts: u16 },
    #[error("message body of {0} bytes exceeds 65535")]
    BodyTooLarge(usize),
    #[error("buffer map: {0}")]
    Window(#[from] layerp2p_codec::WindowError),
}

// ---------- sizes ----------

fn addr_len(a: &SocketAddr) -> usize {
    match a {
        SocketAddr::V4(_) => 1 + 4 + 2,
        SocketAddr::V6(_) => 1 + 16 + 2,
    }
}

fn body_len(m: &Message) -> usize {
    match m {
        Message::Join { .. } | Message::Connect { .. } => 4 + 8 + 1,
        Message::PeerList { peers } => 1 + peers.iter().map(addr_len).sum::<usize>(),
        Message::Refresh { .. } => 4 + 8 + 1,
        Message::Leave { .. } => 4 + 8,
        Message::Accept { .. } => 8 + 1,
        Message::Decline { .. } | Message::Disconnect { .. } => 1,
        Message::BufferMap(b) => {
            BUFFER_MAP_FIXED
                + b.map.layers().iter().map(|w| LAYER_FIXED + (w.head().0 - w.start().0).div_ceil(8) as usize).sum::<usize>()
        }
        Message::Request { ids, .. } => 2 + 2 + ids.len() * ID_LEN,
        Message::Data(lc) => LC_HEADER_LEN + lc.payload.len(),
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

fn role_code(r: Role) -> u8 {
    match r {
        Role::Peer => 0,
        Role::Seed => 1,
        Role::Relay => 2,
    }
}

fn reason_code(r: Reason) -> u8 {
    match r {
        Reason::Full => 0,
        Reason::Adaptation => 1,
        Reason::Leaving => 2,
        Reason::Refused => 3,
    }
}

fn check(m: &Message) -> Result<(), WireError> {
    match m {
        Message::PeerList { peers } if peers.len() > MAX_PEER_LIST => {
            Err(WireError::TooMany { what: "peer list", count: peers.len(), limit: MAX_PEER_LIST })
        }
        Message::Request { ids, .. } if ids.len() > MAX_REQUEST_IDS => {
            Err(WireError::TooMany { what: "request ids", count: ids.len(), limit: MAX_REQUEST_IDS })
        }
        Message::BufferMap(b) if b.map.layers().is_empty() || b.map.layers().len() > MAX_LAYERS => {
            Err(WireError::TooMany { what: "layers", count: b.map.layers().len(), limit: MAX_LAYERS })
        }
        Message::Data(lc) if lc.payload.is_empty() || lc.payload.len() > MAX_LC_PAYLOAD => {
            Err(WireError::PayloadSize(lc.payload.len()))
        }
        Message::Data(lc) if lc.header.part >= lc.header.parts => {
            Err(WireError::BadPart { part: lc.header.part, parts: lc.header.parts })
        }
        _ if body_len(m) > u16::MAX as usize => Err(WireError::BodyTooLarge(body_len(m))),
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
            out.put_u8(*want_peers as u8);
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
    }
}

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

/// A bounds-checked cursor over a received datagram.
struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Truncated { what, needed: n - self.remaining() });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }

    fn layer(&mut self) -> Result<LayerId, WireError> {
        let v = self.u8("layer")?;
        LayerId::new(v).ok_or(WireError::BadValue { what: "layer", value: v as u64 })
    }

    fn role(&mut self) -> Result<Role, WireError> {
        match self.u8("role")? {
            0 => Ok(Role::Peer),
            1 => Ok(Role::Seed),
            2 => Ok(Role::Relay),
            v => Err(WireError::BadValue { what: "role", value: v as u64 }),
        }
    }

    fn reason(&mut self) -> Result<Reason, WireError> {
        match self.u8("reason")? {
            0 => Ok(Reason::Full),
            1 => Ok(Reason::Adaptation),
            2 => Ok(Reason::Leaving),
            3 => Ok(Reason::Refused),
            v => Err(WireError::BadValue { what: "reason", value: v as u64 }),
        }
    }

    fn addr(&mut self) -> Result<SocketAddr, WireError> {
        let ip = match self.u8("address family")? {
            4 => {
                let b = self.take(4, "IPv4 address")?;
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16, "IPv6 address")?);
                IpAddr::V6(Ipv6Addr::from(a))
            }
            v => return Err(WireError::BadValue { what: "address family", value: v as u64 }),
        };
        Ok(SocketAddr::new(ip, self.u16("port")?))
    }
}

fn decode_body(r: &mut Reader<'_>, ty: u8) -> Result<Message, WireError> {
    Ok(match ty {
        code::JOIN | code::CONNECT => {
            let channel = ChannelId(r.u32("channel")?);
            let peer = PeerId(r.u64("peer id")?);
            let role = r.role()?;
            if ty == code::JOIN { Message::Join { channel, peer, role } } else { Message::Connect { channel, peer, role } }
        }
        code::PEER_LIST => {
            let n = r.u8("peer count")? as usize;
            if n > MAX_PEER_LIST {
                return Err(WireError::TooMany { what: "peer list", count: n, limit: MAX_PEER_LIST });
            }
            let mut peers = Vec::with_capacity(n);
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
                v => return Err(WireError::BadValue { what: "want_peers", value: v as u64 }),
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
            let n = r.u8("layer count")? as usize;
            if n == 0 || n > MAX_LAYERS {
                return Err(WireError::TooMany { what: "layers", count: n, limit: MAX_LAYERS });
            }
            let mut layers = Vec::with_capacity(n);
            for _ in 0..n {
                let start = Seq(r.u32("window start")?);
                let nbits = r.u16("bit count")? as u32;
                if nbits > MAX_WINDOW_LCS {
                    return Err(WireError::TooMany { what: "window bits", count: nbits as usize, limit: MAX_WINDOW_LCS as usize });
                }
                let bits = r.take(nbits.div_ceil(8) as usize, "bitmap")?;
                layers.push(LayerWindow::from_bits(start, nbits, bits)?);
            }
            Message::BufferMap(BufferMapMsg { head_time, sent_at, echo, echo_delay, map: BufferMap::from_layers(layers) })
        }
        code::REQUEST => {
            let ttl_ms = r.u16("ttl")?;
            let n = r.u16("id count")? as usize;
            if n > MAX_REQUEST_IDS {
                return Err(WireError::TooMany { what: "request ids", count: n, limit: MAX_REQUEST_IDS });
            }
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
            let payload = r.buf.slice(r.pos..r.end);
            r.pos = r.end;
            Message::Data(Lc { header: LcHeader { id: LcId { layer, seq }, frame, part, parts, time }, payload })
        }
        other => return Err(WireError::UnknownType(other)),
    })
}

/// Parses one datagram. Payloads of LC messages share `datagram`'s memory.
pub fn decode(datagram: Bytes) -> Result<Packet, WireError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(WireError::TooLarge(datagram.len()));
    }
    let mut r = Reader { buf: &datagram, pos: 0, end: datagram.len() };
    let magic = r.u16("packet header")?;
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let version = r.u8("packet header")?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let n = r.u8("packet header")? as usize;
    if n == 0 || n > MAX_MESSAGES_PER_PACKET {
        return Err(WireError::MessageCount(n));
    }
    let mut messages = Vec::with_capacity(n);
    for _ in 0..n {
        let ty = r.u8("message header")?;
        let len = r.u16("message header")? as usize;
        if r.remaining() < len {
            return Err(WireError::Truncated { what: "message body", needed: len - r.remaining() });
        }
        let mut body = Reader { buf: &datagram, pos: r.pos, end: r.pos + len };
        r.pos += len;
        let m = decode_body(&mut body, ty)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn l(n: u8) -> LayerId {
        LayerId::new(n).expect("valid layer")
    }

    fn lc(payload: usize) -> Lc {
        let id = LcId { layer: l(2), seq: Seq(77) };
        let header = LcHeader { id, frame: 9, part: 1, parts: 3, time: MediaTime(123_456) };
        Lc { header, payload: Bytes::from(vec![0xAB; payload]) }
    }

    fn map() -> BufferMap {
        let mut m = BufferMap::new(3, Seq(100));
        for (layer, seqs) in [(1u8, vec![100u32, 101, 170]), (3, vec![250])] {
            let w = m.layer_mut(l(layer)).expect("layer");
            for s in seqs {
                w.insert(Seq(s)).expect("in window");
            }
        }
        m
    }

    fn every_variant() -> Vec<Message> {
        let v4 = SocketAddr::from(([10, 1, 2, 3], 4000));
        let v6 = SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 443));
        vec![
            Message::Join { channel: ChannelId(7), peer: PeerId(u64::MAX), role: Role::Seed },
            Message::PeerList { peers: vec![] },
            Message::PeerList { peers: vec![v4, v6] },
            Message::PeerList { peers: vec![v4; MAX_PEER_LIST] },
            Message::Refresh { channel: ChannelId(1), peer: PeerId(2), want_peers: true },
            Message::Leave { channel: ChannelId(1), peer: PeerId(3) },
            Message::Connect { channel: ChannelId(1), peer: PeerId(4), role: Role::Relay },
            Message::Accept { peer: PeerId(5), role: Role::Peer },
            Message::Decline { reason: Reason::Full },
            Message::Disconnect { reason: Reason::Adaptation },
            Message::BufferMap(BufferMapMsg { head_time: MediaTime(9), sent_at: 10, echo: 11, echo_delay: 12, map: map() }),
            Message::Request { ttl_ms: 900, ids: vec![] },
            Message::Request {
                ttl_ms: 900,
                ids: vec![LcId { layer: l(1), seq: Seq(5) }, LcId { layer: l(3), seq: Seq(u32::MAX) }],
            },
            Message::Data(lc(1)),
            Message::Data(lc(MAX_LC_PAYLOAD)),
        ]
    }

    fn bytes_of(p: &Packet) -> Bytes {
        let mut out = BytesMut::new();
        encode(p, &mut out).expect("encodable");
        out.freeze()
    }

    #[test]
    fn every_variant_round_trips_with_exact_wire_len() {
        for m in every_variant() {
            let p = Packet { messages: vec![m.clone()] };
            let b = bytes_of(&p);
            assert_eq!(b.len(), p.wire_len(), "{m:?}");
            assert_eq!(b.len(), PACKET_HEADER_LEN + m.wire_len());
            assert_eq!(decode(b).expect("decodes"), p);
        }
        assert_eq!(Message::Data(lc(700)).wire_len(), data_wire_len(700));
    }

    #[test]
    fn piggybacked_messages_round_trip() {
        let p = Packet { messages: every_variant() };
        assert_eq!(decode(bytes_of(&p)).expect("decodes"), p);
    }

    #[test]
    fn lc_payload_is_not_copied() {
        let b = bytes_of(&Packet { messages: vec![Message::Data(lc(1000))] });
        let range = b.as_ptr() as usize..b.as_ptr() as usize + b.len();
        let p = decode(b.clone()).expect("decodes");
        let Message::Data(got) = &p.messages[0] else { panic!("not data") };
        assert!(range.contains(&(got.payload.as_ptr() as usize)));
    }

    fn header(n: u8) -> Vec<u8> {
        vec![0x4C, 0x50, VERSION, n]
    }

    fn with_body(ty: u8, body: &[u8]) -> Bytes {
        let mut v = header(1);
        v.push(ty);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(body);
        Bytes::from(v)
    }

    #[test]
    fn each_error_is_reported() {
        let ok = bytes_of(&Packet { messages: vec![Message::Decline { reason: Reason::Full }] });
        let err = |b: Vec<u8>| decode(Bytes::from(b)).expect_err("must fail");
        assert!(matches!(err(vec![]), WireError::Truncated { .. }));
        assert_eq!(err(vec![0, 0, 1, 1]), WireError::BadMagic(0));
        assert_eq!(err(vec![0x4C, 0x50, 9, 1]), WireError::Version(9));
        assert_eq!(err(header(0)), WireError::MessageCount(0));
        assert_eq!(err(header(65)), WireError::MessageCount(65));
        let mut trailing = ok.to_vec();
        trailing.push(0);
        assert_eq!(err(trailing), WireError::TrailingBytes(1));
        assert!(matches!(err(ok[..ok.len() - 1].to_vec()), WireError::Truncated { .. }));
        assert_eq!(decode(with_body(99, &[])), Err(WireError::UnknownType(99)));
        assert_eq!(decode(with_body(code::DECLINE, &[0, 0])), Err(WireError::BodyTooLong(code::DECLINE, 1)));
        assert!(matches!(decode(with_body(code::DECLINE, &[9])), Err(WireError::BadValue { what: "reason", .. })));
        assert!(matches!(decode(with_body(code::ACCEPT, &[0; 8].iter().copied().chain([7]).collect::<Vec<_>>())), Err(WireError::BadValue { what: "role", .. })));
        assert!(matches!(decode(with_body(code::PEER_LIST, &[65])), Err(WireError::TooMany { .. })));
        assert!(matches!(decode(with_body(code::PEER_LIST, &[1, 5, 0, 0])), Err(WireError::BadValue { what: "address family", .. })));
        // A request claiming 2000 ids with none present: refused before allocating.
        assert!(matches!(decode(with_body(code::REQUEST, &[0, 1, 0x07, 0xD0])), Err(WireError::Truncated { .. })));
        assert!(matches!(decode(with_body(code::REQUEST, &[0, 1, 0xFF, 0xFF])), Err(WireError::TooMany { .. })));
        let mut data = vec![0u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(decode(with_body(code::DATA, &data)), Err(WireError::BadValue { what: "layer", .. })));
        data[0] = 1;
        assert_eq!(decode(with_body(code::DATA, &data)), Err(WireError::PayloadSize(0)));
        data.extend(vec![0; MAX_LC_PAYLOAD + 1]);
        assert_eq!(decode(with_body(code::DATA, &data)), Err(WireError::PayloadSize(MAX_LC_PAYLOAD + 1)));
        data[10] = 5; // part = 5, parts = 1
        assert_eq!(decode(with_body(code::DATA, &data[..30])), Err(WireError::BadPart { part: 5, parts: 1 }));
        // Buffer map: 0 layers; bitmap shorter than its bit count.
        let mut bm = vec![0u8; BUFFER_MAP_FIXED];
        assert!(matches!(decode(with_body(code::BUFFER_MAP, &bm)), Err(WireError::TooMany { what: "layers", .. })));
        bm[BUFFER_MAP_FIXED - 1] = 1;
        bm.extend_from_slice(&[0, 0, 0, 0, 0, 16, 0xFF]);
        assert!(matches!(decode(with_body(code::BUFFER_MAP, &bm)), Err(WireError::Truncated { .. })));
        assert_eq!(decode(Bytes::from(vec![0u8; MAX_DATAGRAM + 1])), Err(WireError::TooLarge(MAX_DATAGRAM + 1)));
    }

    #[test]
    fn encode_refuses_what_decode_would_refuse() {
        let mut out = BytesMut::new();
        let big = Message::Request { ttl_ms: 1, ids: vec![LcId { layer: l(1), seq: Seq(0) }; MAX_REQUEST_IDS + 1] };
        assert!(matches!(encode(&Packet { messages: vec![big] }, &mut out), Err(WireError::TooMany { .. })));
        assert_eq!(encode(&Packet { messages: vec![] }, &mut out), Err(WireError::MessageCount(0)));
        let mut bad = lc(10);
        bad.header.part = 3;
        assert!(matches!(encode(&Packet { messages: vec![Message::Data(bad)] }, &mut out), Err(WireError::BadPart { .. })));
        assert!(matches!(encode(&Packet { messages: vec![Message::Data(lc(0))] }, &mut out), Err(WireError::PayloadSize(0))));
        let many = vec![Message::Data(lc(MAX_LC_PAYLOAD)); MAX_MESSAGES_PER_PACKET];
        assert!(matches!(encode(&Packet { messages: many }, &mut out), Err(WireError::TooLarge(_))));
        assert!(out.is_empty(), "nothing written on error");
    }

    fn arb_addr() -> impl Strategy<Value = SocketAddr> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)),
        ]
    }

    fn arb_role() -> impl Strategy<Value = Role> {
        prop_oneof![Just(Role::Peer), Just(Role::Seed), Just(Role::Relay)]
    }

    fn arb_reason() -> impl Strategy<Value = Reason> {
        prop_oneof![Just(Reason::Full), Just(Reason::Adaptation), Just(Reason::Leaving), Just(Reason::Refused)]
    }

    fn arb_id() -> impl Strategy<Value = LcId> {
        (1u8..=MAX_LAYERS as u8, any::<u32>()).prop_map(|(layer, seq)| LcId { layer: l(layer), seq: Seq(seq) })
    }

    fn arb_map() -> impl Strategy<Value = BufferMap> {
        prop::collection::vec((0u32..=layerp2p_codec::MAX_SEQ - 3000, prop::collection::vec(0u32..3000, 0..50)), 1..=MAX_LAYERS).prop_map(|layers| {
            BufferMap::from_layers(
                layers
                    .into_iter()
                    .map(|(start, offs)| {
                        let mut w = LayerWindow::new(Seq(start));
                        for o in offs {
                            w.insert(Seq(start + o)).expect("in window");
                        }
                        w
                    })
                    .collect(),
            )
        })
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (any::<u32>(), any::<u64>(), arb_role()).prop_map(|(c, p, role)| Message::Join { channel: ChannelId(c), peer: PeerId(p), role }),
            prop::collection::vec(arb_addr(), 0..=MAX_PEER_LIST).prop_map(|peers| Message::PeerList { peers }),
            (any::<u32>(), any::<u64>(), any::<bool>()).prop_map(|(c, p, w)| Message::Refresh { channel: ChannelId(c), peer: PeerId(p), want_peers: w }),
            (any::<u32>(), any::<u64>()).prop_map(|(c, p)| Message::Leave { channel: ChannelId(c), peer: PeerId(p) }),
            (any::<u32>(), any::<u64>(), arb_role()).prop_map(|(c, p, role)| Message::Connect { channel: ChannelId(c), peer: PeerId(p), role }),
            (any::<u64>(), arb_role()).prop_map(|(p, role)| Message::Accept { peer: PeerId(p), role }),
            arb_reason().prop_map(|reason| Message::Decline { reason }),
            arb_reason().prop_map(|reason| Message::Disconnect { reason }),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>(), arb_map()).prop_map(|(h, s, e, d, map)| {
                Message::BufferMap(BufferMapMsg { head_time: MediaTime(h), sent_at: s, echo: e, echo_delay: d, map })
            }),
            (any::<u16>(), prop::collection::vec(arb_id(), 0..300)).prop_map(|(ttl_ms, ids)| Message::Request { ttl_ms, ids }),
            (arb_id(), any::<u32>(), 1u16..100, any::<u64>(), prop::collection::vec(any::<u8>(), 1..=MAX_LC_PAYLOAD)).prop_map(
                |(id, frame, parts, time, payload)| {
                    let header = LcHeader { id, frame, part: parts - 1, parts, time: MediaTime(time) };
                    Message::Data(Lc { header, payload: Bytes::from(payload) })
                }
            ),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(messages in prop::collection::vec(arb_message(), 1..8)) {
            let p = Packet { messages };
            let b = bytes_of(&p);
            prop_assert_eq!(b.len(), p.wire_len());
            prop_assert_eq!(decode(b).expect("round trip"), p);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            let _ = decode(Bytes::from(bytes));
        }

        #[test]
        fn random_bytes_after_a_valid_header_never_panic(ty in 0u8..16, body in prop::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(with_body(ty, &body));
        }

        #[test]
        fn mutated_and_truncated_packets_never_panic(
            messages in prop::collection::vec(arb_message(), 1..4),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut v = bytes_of(&Packet { messages }).to_vec();
            for (at, x) in flips {
                let i = at.index(v.len());
                v[i] ^= x;
            }
            let _ = decode(Bytes::from(v.clone()));
            v.truncate(cut.index(v.len() + 1));
            let _ = decode(Bytes::from(v));
        }
    }
}
