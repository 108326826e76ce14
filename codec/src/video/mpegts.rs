//! MPEG-TS (ISO/IEC 13818-1) for one H.264 stream: what a viewer hands a player over
//! HTTP. One program, one video PID; each access unit becomes one PES packet with its
//! PTS (= DTS: frames come in decode order, as `OutputUnit`s) and a PCR in its first
//! TS packet. PAT and PMT go before every IDR, so a player can join at any IDR.
//! Pure: access units in, 188-byte packets appended to a buffer.

use super::reassemble::OutputUnit;

/// Size of a TS packet.
pub const TS_PACKET: usize = 188;
/// PID of the program map table.
pub const PMT_PID: u16 = 0x1000;
/// PID of the H.264 elementary stream (also the PCR PID).
pub const VIDEO_PID: u16 = 0x0100;
/// Stream type of H.264 in a PMT.
const STREAM_TYPE_H264: u8 = 0x1B;
/// PES stream id of the first video stream.
const VIDEO_STREAM_ID: u8 = 0xE0;
/// Program number of the one program.
const PROGRAM: u16 = 1;
/// PTS runs this far ahead of the PCR, in 90 kHz ticks (a player's decode buffer).
pub const PTS_LEAD_90K: u64 = 90 * 400;
/// PTS, DTS and PCR base are 33-bit counters.
const WRAP_33: u64 = 1 << 33;

/// Muxes access units into a transport stream, keeping the continuity counters.
#[derive(Debug, Default)]
pub struct TsMuxer {
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
}

/// 90 kHz ticks of a media time in microseconds, wrapped to 33 bits.
pub fn ticks_90k(time_us: u64) -> u64 {
    ((u128::from(time_us) * 9 / 100) % u128::from(WRAP_33)) as u64
}

impl TsMuxer {
    pub fn new() -> TsMuxer {
        TsMuxer::default()
    }

    /// Appends the packets of `unit` to `out`: PAT and PMT first if it is an IDR, then
    /// its PES packet, PTS = media time + `PTS_LEAD_90K`, PCR = media time.
    pub fn unit(&mut self, unit: &OutputUnit, out: &mut Vec<u8>) {
        let pcr = ticks_90k(unit.time.0);
        if unit.idr {
            self.tables(out);
        }
        self.pes(&unit.data, (pcr + PTS_LEAD_90K) % WRAP_33, pcr, unit.idr, out);
    }

    /// PAT and PMT, one packet each.
    pub fn tables(&mut self, out: &mut Vec<u8>) {
        let mut pat = vec![0x00, 0xB0, 0, 0x00, 0x01, 0xC1, 0x00, 0x00];
        pat.extend_from_slice(&PROGRAM.to_be_bytes());
        pat.extend_from_slice(&(0xE000 | PMT_PID).to_be_bytes());
        section(&mut pat);
        psi_packet(0, &pat, next(&mut self.cc_pat), out);

        let mut pmt = vec![0x02, 0xB0, 0];
        pmt.extend_from_slice(&PROGRAM.to_be_bytes());
        pmt.extend_from_slice(&[0xC1, 0x00, 0x00]);
        pmt.extend_from_slice(&(0xE000 | VIDEO_PID).to_be_bytes());
        pmt.extend_from_slice(&[0xF0, 0x00, STREAM_TYPE_H264]);
        pmt.extend_from_slice(&(0xE000 | VIDEO_PID).to_be_bytes());
        pmt.extend_from_slice(&[0xF0, 0x00]);
        section(&mut pmt);
        psi_packet(PMT_PID, &pmt, next(&mut self.cc_pmt), out);
    }

    fn pes(&mut self, es: &[u8], pts: u64, pcr: u64, random_access: bool, out: &mut Vec<u8>) {
        let mut pes = Vec::with_capacity(es.len() + 14);
        pes.extend_from_slice(&[0, 0, 1, VIDEO_STREAM_ID]);
        // 0 = unbounded, allowed for video when the payload does not fit 16 bits.
        let len = u16::try_from(es.len() + 8).unwrap_or(0);
        pes.extend_from_slice(&len.to_be_bytes());
        // Marker bits, data aligned; PTS only; 5 header bytes.
        pes.extend_from_slice(&[0x84, 0x80, 5]);
        pes.extend_from_slice(&timestamp(0b0010, pts));
        pes.extend_from_slice(es);

        let mut rest = &pes[..];
        let mut first = true;
        while !rest.is_empty() {
            let mut adaptation = Vec::new();
            if first {
                adaptation.push(0x10 | if random_access { 0x40 } else { 0 });
                adaptation.extend_from_slice(&pcr_bytes(pcr));
            }
            // Header 4 bytes; an adaptation field takes its length byte too.
            let room = |af: &Vec<u8>| TS_PACKET - 4 - if first || !af.is_empty() { 1 + af.len() } else { 0 };
            let take = rest.len().min(room(&adaptation));
            let short = room(&adaptation) - take;
            let has_field = first || short > 0;
            if has_field {
                // Stuffing fills the last packet; the flags byte comes first if missing.
                let mut stuffing = if first { short } else { short - 1 };
                if !first && stuffing > 0 {
                    adaptation.push(0x00);
                    stuffing -= 1;
                }
                adaptation.extend(std::iter::repeat_n(0xFF, stuffing));
            }
            let start = out.len();
            out.push(0x47);
            let pid = if first { 0x4000 | VIDEO_PID } else { VIDEO_PID };
            out.extend_from_slice(&pid.to_be_bytes());
            let control = if has_field { 0x30 } else { 0x10 };
            out.push(control | next(&mut self.cc_video));
            if has_field {
                out.push(adaptation.len() as u8);
                out.extend_from_slice(&adaptation);
            }
            out.extend_from_slice(&rest[..take]);
            debug_assert_eq!(out.len() - start, TS_PACKET);
            rest = &rest[take..];
            first = false;
        }
    }
}

/// The counter's value, then counts it up (4 bits).
fn next(cc: &mut u8) -> u8 {
    let now = *cc;
    *cc = (now + 1) & 0x0F;
    now
}

/// Fills in the section length of a PSI section that starts with table id and the
/// two length bytes, and appends its CRC.
fn section(s: &mut Vec<u8>) {
    let len = (s.len() - 3 + 4) as u16;
    s[1] = 0xB0 | (len >> 8) as u8;
    s[2] = len as u8;
    let crc = crc32_mpeg2(s);
    s.extend_from_slice(&crc.to_be_bytes());
}

fn psi_packet(pid: u16, section: &[u8], cc: u8, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(0x47);
    out.extend_from_slice(&(0x4000 | pid).to_be_bytes());
    out.push(0x10 | cc);
    out.push(0); // pointer field: the section starts right here
    out.extend_from_slice(section);
    out.resize(start + TS_PACKET, 0xFF);
}

/// A PTS or DTS field: 4-bit prefix, 33 bits with marker bits.
fn timestamp(prefix: u8, t: u64) -> [u8; 5] {
    [
        (prefix << 4) | (((t >> 30) & 0x07) as u8) << 1 | 1,
        (t >> 22) as u8,
        ((((t >> 15) & 0x7F) as u8) << 1) | 1,
        (t >> 7) as u8,
        (((t & 0x7F) as u8) << 1) | 1,
    ]
}

/// A PCR: 33-bit base at 90 kHz, 6 reserved bits, 9-bit extension (0).
fn pcr_bytes(base: u64) -> [u8; 6] {
    [(base >> 25) as u8, (base >> 17) as u8, (base >> 9) as u8, (base >> 1) as u8, ((base & 1) as u8) << 7 | 0x7E, 0]
}

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, not reflected, no final xor) of PSI sections.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 { (crc << 1) ^ 0x04C1_1DB7 } else { crc << 1 };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MediaTime;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// What a demuxer reads back: PES payloads with their PTS, and the PCRs.
    #[derive(Debug, Default)]
    struct Demuxed {
        pes: Vec<(u64, Vec<u8>)>,
        pcrs: Vec<u64>,
        pat: usize,
        pmt: usize,
        random_access: usize,
    }

    fn demux(ts: &[u8]) -> Demuxed {
        assert_eq!(ts.len() % TS_PACKET, 0, "whole packets");
        let mut d = Demuxed::default();
        let mut cc: HashMap<u16, u8> = HashMap::new();
        let mut current: Option<Vec<u8>> = None;
        let finish = |pes: Vec<u8>, d: &mut Demuxed| {
            assert_eq!(&pes[..4], &[0, 0, 1, VIDEO_STREAM_ID]);
            let len = u16::from_be_bytes([pes[4], pes[5]]) as usize;
            assert!(len == 0 || len == pes.len() - 6, "PES length {len} for {} bytes", pes.len() - 6);
            assert_eq!(pes[7] & 0xC0, 0x80, "PTS only");
            let p = &pes[9..14];
            let pts = (u64::from(p[0] >> 1) & 7) << 30
                | u64::from(p[1]) << 22
                | u64::from(p[2] >> 1) << 15
                | u64::from(p[3]) << 7
                | u64::from(p[4] >> 1);
            d.pes.push((pts, pes[9 + pes[8] as usize..].to_vec()));
        };
        for p in ts.chunks(TS_PACKET) {
            assert_eq!(p[0], 0x47, "sync byte");
            let pusi = p[1] & 0x40 != 0;
            let pid = u16::from_be_bytes([p[1] & 0x1F, p[2]]);
            let control = p[3] >> 4;
            let counter = p[3] & 0x0F;
            if let Some(prev) = cc.insert(pid, counter) {
                assert_eq!(counter, (prev + 1) & 0x0F, "continuity on PID {pid}");
            }
            let mut at = 4;
            if control & 0x2 != 0 {
                let len = p[4] as usize;
                if len > 0 {
                    let flags = p[5];
                    d.random_access += usize::from(flags & 0x40 != 0);
                    if flags & 0x10 != 0 {
                        let b = &p[6..12];
                        d.pcrs.push(
                            u64::from(b[0]) << 25
                                | u64::from(b[1]) << 17
                                | u64::from(b[2]) << 9
                                | u64::from(b[3]) << 1
                                | u64::from(b[4] >> 7),
                        );
                    }
                    assert!(p[6 + if flags & 0x10 != 0 { 6 } else { 0 }..5 + len].iter().all(|&b| b == 0xFF));
                }
                at = 5 + len;
            }
            assert!(control & 0x1 != 0 && at < TS_PACKET, "every packet carries payload");
            let payload = &p[at..];
            match pid {
                0 | PMT_PID => {
                    assert!(pusi);
                    let s = &payload[1..];
                    let len = (usize::from(s[1] & 0x0F) << 8) | usize::from(s[2]);
                    assert_eq!(crc32_mpeg2(&s[..3 + len]), 0, "section CRC");
                    if pid == 0 {
                        assert_eq!(s[0], 0x00);
                        assert_eq!(u16::from_be_bytes([s[10] & 0x1F, s[11]]), PMT_PID);
                        d.pat += 1;
                    } else {
                        assert_eq!(s[0], 0x02);
                        assert_eq!(s[12], STREAM_TYPE_H264);
                        assert_eq!(u16::from_be_bytes([s[13] & 0x1F, s[14]]), VIDEO_PID);
                        d.pmt += 1;
                    }
                }
                VIDEO_PID => {
                    if pusi {
                        if let Some(pes) = current.take() {
                            finish(pes, &mut d);
                        }
                        current = Some(Vec::new());
                    }
                    current.as_mut().expect("PES starts with PUSI").extend_from_slice(payload);
                }
                other => panic!("unexpected PID {other}"),
            }
        }
        if let Some(pes) = current.take() {
            finish(pes, &mut d);
        }
        d
    }

    fn unit(number: u32, time_us: u64, idr: bool, len: usize) -> OutputUnit {
        let data = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(number as u8)).collect();
        OutputUnit { number, time: MediaTime(time_us), idr, data }
    }

    #[test]
    fn crc_matches_the_mpeg2_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn units_come_back_whole_with_their_times() {
        let units = [unit(0, 1_000_000, true, 5000), unit(1, 1_033_333, false, 183), unit(2, 1_066_666, false, 1)];
        let mut mux = TsMuxer::new();
        let mut ts = Vec::new();
        for u in &units {
            mux.unit(u, &mut ts);
        }
        let d = demux(&ts);
        assert_eq!((d.pat, d.pmt, d.random_access), (1, 1, 1));
        assert_eq!(d.pes.len(), 3);
        for (u, (pts, data)) in units.iter().zip(&d.pes) {
            assert_eq!(data, &u.data);
            assert_eq!(*pts, ticks_90k(u.time.0) + PTS_LEAD_90K);
        }
        assert_eq!(d.pcrs, units.iter().map(|u| ticks_90k(u.time.0)).collect::<Vec<_>>());
    }

    #[test]
    fn timestamps_wrap_at_33_bits() {
        let late = WRAP_33 * 100 / 9 + 11; // just past one wrap, in microseconds
        assert!(ticks_90k(late) < 10);
        let mut ts = Vec::new();
        TsMuxer::new().unit(&unit(0, late, true, 10), &mut ts);
        assert_eq!(demux(&ts).pes[0].0, ticks_90k(late) + PTS_LEAD_90K);
    }

    proptest! {
        #[test]
        fn any_sizes_demux_to_the_same_units(sizes in proptest::collection::vec(1usize..70_000, 1..12)) {
            let mut mux = TsMuxer::new();
            let mut ts = Vec::new();
            let units: Vec<_> =
                sizes.iter().enumerate().map(|(i, &n)| unit(i as u32, i as u64 * 40_000, i % 5 == 0, n)).collect();
            for u in &units {
                mux.unit(u, &mut ts);
            }
            let d = demux(&ts);
            prop_assert_eq!(d.pes.len(), units.len());
            for (u, (_, data)) in units.iter().zip(&d.pes) {
                prop_assert_eq!(data, &u.data);
            }
        }
    }
}
