//! The chunked transfer coding decoder (RFC 9112 §7.1), a byte-level
//! automaton that consumes every byte it is given, so splits cannot change
//! its verdict.
//!
//! ```text
//! chunked-body   = *chunk last-chunk trailer-section CRLF
//! chunk          = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//! chunk-size     = 1*HEXDIG
//! last-chunk     = 1*("0") [ chunk-ext ] CRLF
//! chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//!
//!   Size --hex--> Size --CR--> SizeLf --LF--> Data(n) --n bytes--> DataCr --CR--> DataLf --LF--> Size
//!     |  --SP/HT--> SizeWs --";"--> Ext --CR--> SizeLf
//!     `--";"--> Ext                        SizeLf --LF, size 0--> Trailers (handed back to the caller)
//! ```
//!
//! Line ends inside the framing must be CRLF: a bare LF here is refused
//! whatever [`Config::bare_lf`](crate::Config::bare_lf) says, since chunk
//! framing is where lenient parsers disagree and smuggling starts.

use crate::HttpError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading hex digits; `digits` so far.
    Size { digits: u32 },
    /// Whitespace after the size: only `;` may follow (BWS before chunk-ext).
    SizeWs,
    /// Inside chunk extensions, ignored up to CR.
    Ext,
    /// Saw the CR ending the size line.
    SizeLf,
    /// Inside chunk data.
    Data { remaining: u64 },
    /// After chunk data, expecting CR.
    DataCr,
    /// After chunk data and CR, expecting LF.
    DataLf,
    /// The last chunk was read; the trailer section follows.
    Trailers,
}

/// Decoder state for one chunked body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkDecoder {
    state: State,
    /// The size being read.
    size: u64,
    /// Bytes of the current size line so far, CRLF excluded.
    line_len: usize,
    /// Decoded bytes so far, for the body limit.
    total: u64,
}

/// What one call produced besides the consumed count.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// Framing bytes only (or nothing).
    Nothing,
    /// A piece of chunk data.
    Data(&'a [u8]),
    /// The last chunk's line ended; the trailer section starts here.
    LastChunk,
}

impl ChunkDecoder {
    pub(crate) const fn new() -> Self {
        Self {
            state: State::Size { digits: 0 },
            size: 0,
            line_len: 0,
            total: 0,
        }
    }

    /// Consumes framing bytes until it has data to hand out, the last chunk
    /// ends, or `buf` runs out. Consumes at least one byte of a non-empty `buf`.
    pub(crate) fn decode<'a>(
        &mut self,
        buf: &'a [u8],
        max_line: usize,
        max_body: u64,
    ) -> Result<(usize, Decoded<'a>), HttpError> {
        let mut i = 0;
        while let Some(&b) = buf.get(i) {
            i += 1;
            match self.state {
                State::Size { digits } => {
                    self.count_line_byte(b, max_line)?;
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            // RFC 9112 §7.1: "Recipients MUST anticipate potentially
                            // large hexadecimal numerals and prevent parsing errors
                            // due to integer conversion overflows or precision loss."
                            let d = u64::from(hex_value(b));
                            self.size = self
                                .size
                                .checked_mul(0x10)
                                .and_then(|s| s.checked_add(d))
                                .ok_or(HttpError::InvalidChunkSize)?;
                            self.state = State::Size { digits: digits + 1 };
                        }
                        // chunk-size = 1*HEXDIG: no sign, no "0x", no leading space.
                        _ if digits == 0 => return Err(HttpError::InvalidChunkSize),
                        b';' => self.state = State::Ext,
                        b' ' | b'\t' => self.state = State::SizeWs,
                        b'\r' => self.state = State::SizeLf,
                        b'\n' => return Err(HttpError::BareLf),
                        _ => return Err(HttpError::InvalidChunkSize),
                    }
                }
                State::SizeWs => {
                    self.count_line_byte(b, max_line)?;
                    match b {
                        b' ' | b'\t' => {}
                        b';' => self.state = State::Ext,
                        _ => return Err(HttpError::InvalidChunkSize),
                    }
                }
                State::Ext => {
                    self.count_line_byte(b, max_line)?;
                    match b {
                        b'\r' => self.state = State::SizeLf,
                        b'\n' => return Err(HttpError::BareLf),
                        // Extensions are ignored, but only as visible text.
                        b'\t' | 0x20..=0x7e | 0x80..=0xff => {}
                        _ => return Err(HttpError::InvalidChunkSize),
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(HttpError::InvalidChunkSize);
                    }
                    self.line_len = 0;
                    if self.size == 0 {
                        self.state = State::Trailers;
                        return Ok((i, Decoded::LastChunk));
                    }
                    self.total = self
                        .total
                        .checked_add(self.size)
                        .filter(|t| *t <= max_body)
                        .ok_or(HttpError::BodyTooLarge)?;
                    self.state = State::Data {
                        remaining: self.size,
                    };
                    self.size = 0;
                }
                State::Data { remaining } => {
                    let start = i - 1;
                    let avail = buf.len() - start;
                    let n = usize::try_from(remaining).map_or(avail, |r| r.min(avail));
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
                    };
                    let data = buf.get(start..start + n).unwrap_or_default();
                    return Ok((start + n, Decoded::Data(data)));
                }
                State::DataCr => match b {
                    b'\r' => self.state = State::DataLf,
                    b'\n' => return Err(HttpError::BareLf),
                    _ => return Err(HttpError::InvalidChunkData),
                },
                State::DataLf => {
                    if b != b'\n' {
                        return Err(HttpError::InvalidChunkData);
                    }
                    self.state = State::Size { digits: 0 };
                }
                State::Trailers => {
                    // The caller takes over at LastChunk; never reached.
                    return Ok((i - 1, Decoded::LastChunk));
                }
            }
        }
        Ok((i, Decoded::Nothing))
    }

    fn count_line_byte(&mut self, b: u8, max_line: usize) -> Result<(), HttpError> {
        if b != b'\r' {
            self.line_len += 1;
            if self.line_len > max_line {
                return Err(HttpError::ChunkLineTooLong);
            }
        }
        Ok(())
    }
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes everything, returning the data and whether the last chunk was seen.
    fn run(buf: &[u8]) -> Result<(Vec<u8>, bool), HttpError> {
        run_with(buf, 32)
    }

    fn run_with(mut buf: &[u8], max_line: usize) -> Result<(Vec<u8>, bool), HttpError> {
        let mut d = ChunkDecoder::new();
        let mut out = Vec::new();
        while !buf.is_empty() {
            let (n, got) = d.decode(buf, max_line, 1 << 20)?;
            buf = &buf[n..];
            match got {
                Decoded::Data(x) => out.extend_from_slice(x),
                Decoded::LastChunk => return Ok((out, true)),
                Decoded::Nothing => {}
            }
        }
        Ok((out, false))
    }

    #[test]
    fn rfc9112_7_1_decodes_chunks_and_ignores_extensions() {
        let (data, last) =
            run(b"4\r\nWiki\r\n5;a=b\r\npedia\r\nE \t; x\r\n in\r\n\r\nchunks.\r\n0\r\n").unwrap();
        assert!(last);
        assert_eq!(data, b"Wikipedia in\r\n\r\nchunks.");
    }

    #[test]
    fn rfc9112_7_1_refuses_bad_sizes() {
        for bad in [
            &b"+5\r\n"[..],
            b"-5\r\n",
            b"0x5\r\n",
            b" 5\r\n",
            b"5 \r\n",
            b";\r\n",
            b"\r\n",
        ] {
            assert_eq!(run(bad), Err(HttpError::InvalidChunkSize), "{bad:?}");
        }
        assert_eq!(
            run(b"10000000000000000\r\n"),
            Err(HttpError::InvalidChunkSize)
        );
        assert_eq!(run(b"ffffffffffffffff\r\n"), Err(HttpError::BodyTooLarge));
        assert_eq!(run(b"5\n"), Err(HttpError::BareLf));
        assert_eq!(run(b"1\r\nab\r\n"), Err(HttpError::InvalidChunkData));
        assert_eq!(run(b"1\r\na\n"), Err(HttpError::BareLf));
        assert_eq!(run(b"1;\x00\r\n"), Err(HttpError::InvalidChunkSize));
    }

    #[test]
    fn chunk_line_limit_exceeded_by_one() {
        assert!(run_with(b"1;aaaaaaaaaaaaaa\r\nx\r\n", 16).is_ok());
        assert_eq!(
            run_with(b"1;aaaaaaaaaaaaaaa\r\nx\r\n", 16),
            Err(HttpError::ChunkLineTooLong)
        );
    }
}
