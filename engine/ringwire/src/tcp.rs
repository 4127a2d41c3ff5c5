//! Plain TCP on the engine: an echo plugin (tests, benchmarks) and a framed plugin whose
//! end-of-message scanner delivers a message when configured delimiter bytes are seen.
//!
//! Framing modes (the suite's plain-TCP "end of message" options):
//! - [`Framing::Packet`]: every read is one message, as it arrived;
//! - [`Framing::DelimiterAtEnd`]: bytes accumulate until what has arrived ends with the
//!   delimiter; then all of it is one message (without the delimiter);
//! - [`Framing::DelimiterAnywhere`]: the stream is split at every occurrence of the delimiter.
//!
//! A message longer than [`TcpOptions::max_message`] (delimiter not found in time) is an error:
//! the handler's `on_error` runs and the connection is closed.

use std::net::SocketAddr;
use std::sync::Arc;

use ringwire_runtime::{Bytes, CloseReason, ConnCtx, ConnId, CoreCtx, Plugin, SendError};

/// The echo plugin: every byte received is sent back, in order. It honours backpressure:
/// when the out-queue is full it stops reading until the queue drains.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Plugin for Echo {
    type Conn = ();

    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        Some(())
    }

    fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        echo(cx, data)
    }

    fn on_drained(&mut self, _: &mut (), cx: &mut ConnCtx<'_>) {
        cx.resume_reading();
    }
}

/// Echo `data` back on `cx` as far as the out-queue limit allows; returns bytes consumed.
pub fn echo(cx: &mut ConnCtx<'_>, data: &[u8]) -> usize {
    match cx.send(Bytes::copy_from_slice(data)) {
        Ok(_) => data.len(),
        Err(SendError::Backpressure) => {
            // Take nothing; the rest stays buffered and comes back once the queue drains.
            cx.pause_reading();
            0
        }
        Err(_) => data.len(),
    }
}

/// How a byte stream is cut into messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Every read is a message.
    Packet,
    /// A message ends when the bytes received so far end with this delimiter.
    DelimiterAtEnd(Vec<u8>),
    /// A message ends at every occurrence of this delimiter.
    DelimiterAnywhere(Vec<u8>),
}

/// Options of the framed TCP plugin.
#[derive(Clone, Debug)]
pub struct TcpOptions {
    /// How messages are delimited.
    pub framing: Framing,
    /// Longest message (bytes, without the delimiter) before the connection is closed.
    pub max_message: usize,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            framing: Framing::Packet,
            max_message: 1024 * 1024,
        }
    }
}

/// Why a framed connection failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TcpError {
    /// No delimiter within [`TcpOptions::max_message`] bytes; the connection is closed.
    MessageTooLarge,
}

/// What a user of the framed TCP plugin implements (one instance per core).
pub trait TcpHandler: 'static {
    /// A client connected.
    fn on_connect(&mut self, _cx: &mut ConnCtx<'_>) {}
    /// A whole message arrived (delimiter removed).
    fn on_message(&mut self, cx: &mut ConnCtx<'_>, msg: &mut [u8]);
    /// A framing error; the connection is closed after this returns.
    fn on_error(&mut self, _cx: &mut ConnCtx<'_>, _err: TcpError) {}
    /// The connection is gone.
    fn on_disconnect(
        &mut self,
        _cx: &mut CoreCtx<'_>,
        _id: ConnId,
        _peer: SocketAddr,
        _reason: CloseReason,
    ) {
    }
}

/// Per-connection state of [`Framed`].
#[derive(Debug)]
pub struct FramedConn {
    id: ConnId,
    peer: SocketAddr,
    /// How far the buffered input was already searched for the delimiter.
    scanned: usize,
}

/// The framed TCP plugin: cuts the stream into messages and hands them to a [`TcpHandler`].
pub struct Framed<H> {
    handler: H,
    opts: Arc<TcpOptions>,
}

impl<H: TcpHandler> Framed<H> {
    /// A plugin for one core.
    pub fn new(handler: H, opts: Arc<TcpOptions>) -> Self {
        Framed { handler, opts }
    }
    /// The handler, e.g. to inspect it in tests.
    pub fn handler(&self) -> &H {
        &self.handler
    }
}

/// Find `needle` in `hay` (short delimiters: a first-byte scan, then compare).
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let pos = hay.get(i..)?.iter().position(|&b| b == first)?;
        let at = i + pos;
        if at + needle.len() > hay.len() {
            return None;
        }
        if hay.get(at + 1..at + needle.len()) == Some(rest) {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

impl<H: TcpHandler> Plugin for Framed<H> {
    type Conn = FramedConn;

    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<FramedConn> {
        self.handler.on_connect(cx);
        Some(FramedConn {
            id: cx.id(),
            peer: cx.peer_addr(),
            scanned: 0,
        })
    }

    fn on_data(&mut self, conn: &mut FramedConn, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let max = self.opts.max_message;
        match &self.opts.framing {
            Framing::Packet => {
                self.handler.on_message(cx, data);
                data.len()
            }
            Framing::DelimiterAtEnd(d) => {
                if !d.is_empty() && data.ends_with(d) {
                    let n = data.len();
                    if n - d.len() > max {
                        self.fail(cx);
                        return n;
                    }
                    self.handler.on_message(cx, &mut data[..n - d.len()]);
                    n
                } else if data.len() > max + d.len() {
                    self.fail(cx);
                    data.len()
                } else {
                    0
                }
            }
            Framing::DelimiterAnywhere(d) => {
                let mut start = 0;
                let dl = d.len().max(1);
                loop {
                    let from = start + conn.scanned.saturating_sub(start);
                    let Some(hay) = data.get(from..) else { break };
                    match find(hay, d) {
                        Some(p) => {
                            let end = from + p;
                            if end - start > max {
                                self.fail(cx);
                                return data.len();
                            }
                            self.handler.on_message(cx, &mut data[start..end]);
                            start = end + dl;
                            conn.scanned = start;
                            if cx.is_closing() {
                                return data.len();
                            }
                        }
                        None => break,
                    }
                }
                let pending = data.len() - start;
                if pending > max + dl {
                    self.fail(cx);
                    return data.len();
                }
                // Next time, resume the search where a delimiter could still start.
                conn.scanned = (data.len() - start).saturating_sub(dl - 1);
                start
            }
        }
    }

    fn on_close(&mut self, conn: FramedConn, cx: &mut CoreCtx<'_>, reason: CloseReason) {
        self.handler.on_disconnect(cx, conn.id, conn.peer, reason);
    }
}

impl<H: TcpHandler> Framed<H> {
    fn fail(&mut self, cx: &mut ConnCtx<'_>) {
        self.handler.on_error(cx, TcpError::MessageTooLarge);
        cx.close();
    }
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn find_delimiters() {
        assert_eq!(find(b"abc\r\ndef", b"\r\n"), Some(3));
        assert_eq!(find(b"abc\r", b"\r\n"), None);
        assert_eq!(find(b"\r\n", b"\r\n"), Some(0));
        assert_eq!(find(b"x", b""), None);
        assert_eq!(find(b"aaab", b"aab"), Some(1));
    }
}
