//! YUV4MPEG2 (Y4M), the raw-video format `ffmpeg … -f yuv4mpegpipe` writes: a text
//! header line, then per frame a `FRAME` line and one I420 picture. Owns reading
//! (from a file or a pipe, with every field checked) and writing; only 8-bit 4:2:0
//! is accepted.

use super::picture::{FrameRate, Picture, Resolution};
use std::io::{BufRead, Read, Write};

/// Longest header or `FRAME` line accepted.
pub const MAX_LINE: usize = 4096;

const MAGIC: &str = "YUV4MPEG2";

#[derive(Debug, thiserror::Error)]
pub enum Y4mError {
    #[error("not a Y4M stream: it must start with \"YUV4MPEG2 \"")]
    NotY4m,
    #[error("Y4M header line is longer than {MAX_LINE} bytes or not text")]
    BadLine,
    #[error("Y4M header: missing or invalid {0}")]
    BadField(&'static str),
    #[error("Y4M colour space {0:?} is not supported: convert to 8-bit 4:2:0 (ffmpeg -pix_fmt yuv420p)")]
    Unsupported(String),
    #[error("frame {0}: expected a FRAME line")]
    BadFrameHeader(u64),
    #[error("frame {0} is truncated")]
    Truncated(u64),
    #[error(transparent)]
    Resolution(#[from] super::picture::ResolutionError),
    #[error(transparent)]
    FrameRate(#[from] super::picture::FrameRateError),
    #[error("Y4M I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one line (without the newline) of at most `MAX_LINE` bytes; `None` at a clean end.
fn read_line<R: BufRead>(input: &mut R) -> Result<Option<String>, Y4mError> {
    let mut line = Vec::new();
    input.take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line)?;
    if line.is_empty() {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return Err(Y4mError::BadLine);
    }
    String::from_utf8(line).map(Some).map_err(|_| Y4mError::BadLine)
}

/// Reads pictures from a Y4M stream.
#[derive(Debug)]
pub struct Y4mReader<R> {
    input: R,
    resolution: Resolution,
    rate: FrameRate,
    frames: u64,
}

impl<R: BufRead> Y4mReader<R> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Y4mReader<R>, Y4mError> {
        let line = read_line(&mut input)?.ok_or(Y4mError::NotY4m)?;
        let mut fields = line.split(' ');
        if fields.next() != Some(MAGIC) {
            return Err(Y4mError::NotY4m);
        }
        let (mut w, mut h, mut rate) = (None, None, None);
        for f in fields.filter(|f| !f.is_empty()) {
            // The tag is one character, which a hostile header may make multi-byte.
            let (tag, value) = f.split_at(f.chars().next().map_or(0, char::len_utf8));
            match tag {
                "W" => w = Some(value.parse::<u32>().map_err(|_| Y4mError::BadField("width (W)"))?),
                "H" => h = Some(value.parse::<u32>().map_err(|_| Y4mError::BadField("height (H)"))?),
                "F" => {
                    let (n, d) = value.split_once(':').ok_or(Y4mError::BadField("frame rate (F)"))?;
                    let n = n.parse().map_err(|_| Y4mError::BadField("frame rate (F)"))?;
                    let d = d.parse().map_err(|_| Y4mError::BadField("frame rate (F)"))?;
                    rate = Some(FrameRate::new(n, d)?);
                }
                "C" if !matches!(value, "420" | "420jpeg" | "420paldv" | "420mpeg2") => {
                    return Err(Y4mError::Unsupported(value.to_string()));
                }
                "I" if !matches!(value, "p" | "?") => {
                    return Err(Y4mError::Unsupported(format!("interlaced I{value}")));
                }
                _ => {}
            }
        }
        let resolution =
            Resolution::new(w.ok_or(Y4mError::BadField("width (W)"))?, h.ok_or(Y4mError::BadField("height (H)"))?)?;
        // Y4M's default frame rate is unspecified; 25 is what ffmpeg assumes.
        let rate = match rate {
            Some(r) => r,
            None => FrameRate::per_second(25)?,
        };
        Ok(Y4mReader { input, resolution, rate, frames: 0 })
    }

    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    pub fn frame_rate(&self) -> FrameRate {
        self.rate
    }

    /// The next picture, `None` at the end of the stream.
    pub fn next_picture(&mut self) -> Result<Option<Picture>, Y4mError> {
        let Some(line) = read_line(&mut self.input)? else { return Ok(None) };
        if line != "FRAME" && !line.starts_with("FRAME ") {
            return Err(Y4mError::BadFrameHeader(self.frames));
        }
        let mut data = vec![0u8; self.resolution.frame_len()];
        self.input.read_exact(&mut data).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Y4mError::Truncated(self.frames),
            _ => Y4mError::Io(e),
        })?;
        self.frames += 1;
        Ok(Picture::from_i420(self.resolution, data))
    }
}

/// Writes pictures as a Y4M stream.
#[derive(Debug)]
pub struct Y4mWriter<W> {
    output: W,
    resolution: Resolution,
}

impl<W: Write> Y4mWriter<W> {
    pub fn new(mut output: W, resolution: Resolution, rate: FrameRate) -> std::io::Result<Y4mWriter<W>> {
        writeln!(
            output,
            "{MAGIC} W{} H{} F{}:{} Ip A1:1 C420jpeg",
            resolution.width(),
            resolution.height(),
            rate.num(),
            rate.den()
        )?;
        Ok(Y4mWriter { output, resolution })
    }

    /// Writes one picture; it must have the stream's resolution.
    pub fn write(&mut self, picture: &Picture) -> std::io::Result<()> {
        if picture.resolution() != self.resolution {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("picture is {}, stream is {}", picture.resolution(), self.resolution),
            ));
        }
        self.output.write_all(b"FRAME\n")?;
        self.output.write_all(picture.as_bytes())
    }

    pub fn into_inner(self) -> W {
        self.output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(extra: &str) -> Vec<u8> {
        format!("YUV4MPEG2 W4 H2 F30000:1001{extra}\n").into_bytes()
    }

    #[test]
    fn a_multi_byte_field_tag_is_ignored_not_a_panic() {
        let h = header(" é1 Xé");
        let r = Y4mReader::new(&h[..]).expect("unknown tags are skipped");
        assert_eq!(r.resolution(), Resolution::new(4, 2).expect("valid"));
        assert!(Y4mReader::new(&b"YUV4MPEG2 W\xc3\xa9 H2\n"[..]).is_err());
    }

    #[test]
    fn round_trips_pictures() {
        let res = Resolution::new(4, 2).expect("valid");
        let rate = FrameRate::new(30000, 1001).expect("valid");
        let pics: Vec<Picture> =
            (0..3).map(|i| Picture::from_i420(res, (0..12).map(|b| b * 10 + i).collect()).expect("size")).collect();
        let mut w = Y4mWriter::new(Vec::new(), res, rate).expect("write");
        for p in &pics {
            w.write(p).expect("write");
        }
        let bytes = w.into_inner();
        let mut r = Y4mReader::new(&bytes[..]).expect("header");
        assert_eq!((r.resolution(), r.frame_rate()), (res, rate));
        let mut back = Vec::new();
        while let Some(p) = r.next_picture().expect("frame") {
            back.push(p);
        }
        assert_eq!(back, pics);
    }

    #[test]
    fn frame_parameters_are_accepted() {
        let mut data = header(" C420mpeg2 XYSCSS=420MPEG2");
        data.extend_from_slice(b"FRAME Ixyz\n");
        data.extend_from_slice(&[7; 12]);
        let mut r = Y4mReader::new(&data[..]).expect("header");
        assert_eq!(r.next_picture().expect("frame").map(|p| p.y()[0]), Some(7));
        assert!(r.next_picture().expect("end").is_none());
    }

    #[test]
    fn bad_input_gives_typed_errors() {
        let err = |data: &[u8]| Y4mReader::new(data).err();
        assert!(matches!(err(b"P6\n"), Some(Y4mError::NotY4m)));
        assert!(matches!(err(b""), Some(Y4mError::NotY4m)));
        assert!(matches!(err(b"YUV4MPEG2 W4 F30:1\n"), Some(Y4mError::BadField("height (H)"))));
        assert!(matches!(err(b"YUV4MPEG2 Wx H2\n"), Some(Y4mError::BadField("width (W)"))));
        assert!(matches!(err(b"YUV4MPEG2 W5 H2\n"), Some(Y4mError::Resolution(_))));
        assert!(matches!(err(b"YUV4MPEG2 W4 H2 F30:0\n"), Some(Y4mError::FrameRate(_))));
        assert!(matches!(err(&header(" C444")), Some(Y4mError::Unsupported(_))));
        assert!(matches!(err(&header(" C420p10")), Some(Y4mError::Unsupported(_))));
        assert!(matches!(err(&header(" It")), Some(Y4mError::Unsupported(_))));
        assert!(matches!(err(&[b'Y'; MAX_LINE + 10]), Some(Y4mError::BadLine)));
        let mut truncated = header("");
        truncated.extend_from_slice(b"FRAME\n\x01\x02");
        let mut r = Y4mReader::new(&truncated[..]).expect("header");
        assert!(matches!(r.next_picture(), Err(Y4mError::Truncated(0))));
        let mut wrong = header("");
        wrong.extend_from_slice(b"FRAMX\n");
        let mut r = Y4mReader::new(&wrong[..]).expect("header");
        assert!(matches!(r.next_picture(), Err(Y4mError::BadFrameHeader(0))));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(mut r) = Y4mReader::new(&data[..]) {
                while let Ok(Some(_)) = r.next_picture() {}
            }
        }

        #[test]
        fn random_headers_never_panic(tail in "[ -~]{0,80}") {
            let data = format!("YUV4MPEG2 {tail}\nFRAME\n");
            if let Ok(mut r) = Y4mReader::new(data.as_bytes()) {
                let _ = r.next_picture();
            }
        }
    }
}
