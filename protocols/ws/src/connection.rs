//! The connection state machine: [`WebSocket`].

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha1::{Digest as _, Sha1};

use crate::deflate::{DeflateConfig, DeflateParams, DeflateState};
use crate::error::{CloseCode, WsError};
use crate::frame::{FrameHeader, FrameRules, HeaderBytes, MAX_CONTROL_PAYLOAD, OpCode, Role};
use crate::mask::{apply_mask, apply_mask_at};
use crate::utf8::Utf8Validator;

/// Default [`Config::max_frame_payload`]: 16 MiB (Autobahn 9.1.6 sends one 16 MiB frame).
pub const DEFAULT_MAX_FRAME_PAYLOAD: usize = 16 << 20;
/// Default [`Config::max_message_size`]: 16 MiB, on the wire and inflated.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 << 20;
/// Default [`Config::max_fragments`]: 131072 (Autobahn 9.3.1 sends 4 MiB in 64-byte
/// fragments, 65536 frames).
pub const DEFAULT_MAX_FRAGMENTS: u32 = 0x2_0000;
/// Default [`Config::close_timeout`]: how long to wait for the peer's Close after ours.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How fragmented messages are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FragmentMode {
    /// Reassemble into one [`WsEvent::Message`] (up to [`Config::max_message_size`]).
    #[default]
    Reassemble,
    /// Deliver each fragment as a [`WsEvent::Fragment`] with a running byte count, borrowed from
    /// the input when uncompressed. Unfragmented messages still arrive as
    /// [`WsEvent::Message`].
    Stream,
}

/// Text or binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Opcode 0x1: UTF-8 text.
    Text,
    /// Opcode 0x2: binary data.
    Binary,
}

impl MessageKind {
    /// The opcode of a message's first frame.
    pub const fn opcode(self) -> OpCode {
        match self {
            Self::Text => OpCode::Text,
            Self::Binary => OpCode::Binary,
        }
    }
}

/// Connection settings. Every DoS bound is a named field with a `DEFAULT_*` constant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Largest data-frame payload accepted; one more byte fails the connection with 1009.
    pub max_frame_payload: usize,
    /// Largest message accepted, counted on the wire and, for compressed messages, inflated
    /// (the bomb guard); one more byte fails the connection with 1009.
    pub max_message_size: usize,
    /// Most frames one message may span; one more fails the connection with 1009.
    pub max_fragments: u32,
    /// Reassemble fragmented messages or stream them.
    pub fragment_mode: FragmentMode,
    /// Validate UTF-8 in text messages (default true; RFC 6455 §8.1 requires it; switching it
    /// off is a compatibility escape hatch that Autobahn 6.x reports as failures).
    pub validate_utf8: bool,
    /// How long after sending Close to wait for the peer's Close ([`WebSocket::poll_timeout`]).
    pub close_timeout: Duration,
    /// permessage-deflate preferences: the handshake negotiates with them, and the connection
    /// uses `level` and `compress_threshold` when sending.
    pub deflate: DeflateConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_frame_payload: DEFAULT_MAX_FRAME_PAYLOAD,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            fragment_mode: FragmentMode::Reassemble,
            validate_utf8: true,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            deflate: DeflateConfig::default(),
        }
    }
}

/// The closing-handshake state (RFC 6455 §7).
///
/// ```text
///                  send Close                    receive Close
///        +------> CloseSent ----------------------------------+
///        |           | close_timeout                          v
///      Open          +--------------------------------------> Closed
///        |                                                    ^
///        +------> CloseReceived ------------------------------+
///                 receive Close      poll_transmit drained our reply
///
///      any protocol error: queue Close(code) if still Open, then Closed
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Data flows both ways.
    Open,
    /// We sent Close; waiting for the peer's (until the close timeout). Incoming data frames
    /// are still parsed and checked but not delivered.
    CloseSent,
    /// The peer sent Close; our reply is queued for [`WebSocket::poll_transmit`].
    CloseReceived,
    /// Done: once [`WebSocket::poll_transmit`] has nothing left, close the TCP connection
    /// (RFC 6455 §7.1.1: the server first).
    Closed,
}

/// Something the peer sent.
///
/// Payloads borrow the buffer given to [`WebSocket::handle_read`] when they can (unfragmented
/// uncompressed messages, fragments in [`FragmentMode::Stream`], control frames) and are
/// owned otherwise (reassembled or inflated messages; hand the `Vec` back with
/// [`WebSocket::recycle`] to reuse its allocation).
#[derive(Clone, PartialEq, Eq)]
pub enum WsEvent<'b> {
    /// A complete message. Text is valid UTF-8 (unless `validate_utf8` is off).
    Message {
        /// Text or binary.
        kind: MessageKind,
        /// The payload.
        data: Cow<'b, [u8]>,
    },
    /// One fragment of a fragmented message ([`FragmentMode::Stream`] only). A text fragment
    /// may end inside a code point; the message as a whole is validated.
    Fragment {
        /// The kind of the message (from its first frame).
        kind: MessageKind,
        /// This fragment's (inflated) payload.
        data: Cow<'b, [u8]>,
        /// This is the last fragment.
        fin: bool,
        /// Bytes of the message delivered so far, this fragment included.
        received: u64,
    },
    /// A Ping; the Pong is already queued for [`WebSocket::poll_transmit`].
    Ping(&'b [u8]),
    /// A Pong.
    Pong(&'b [u8]),
    /// The peer's Close. If we had not sent one, the reply (echoing the code, or 1000) is
    /// queued.
    Close {
        /// The status code, `None` if the frame had no payload (1005).
        code: Option<CloseCode>,
        /// The reason (valid UTF-8, at most 123 bytes).
        reason: &'b str,
    },
}

impl WsEvent<'_> {
    /// The text of a complete text message, or `None` for anything else.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Message {
                kind: MessageKind::Text,
                data,
            } => simdutf8::basic::from_utf8(data).ok(),
            _ => None,
        }
    }

    /// The payload of a message, fragment, ping or pong.
    pub fn payload(&self) -> &[u8] {
        match self {
            Self::Message { data, .. } | Self::Fragment { data, .. } => data,
            Self::Ping(p) | Self::Pong(p) => p,
            Self::Close { reason, .. } => reason.as_bytes(),
        }
    }
}

impl fmt::Debug for WsEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Message { kind, data } => f
                .debug_struct("Message")
                .field("kind", kind)
                .field("len", &data.len())
                .finish(),
            Self::Fragment {
                kind,
                data,
                fin,
                received,
            } => f
                .debug_struct("Fragment")
                .field("kind", kind)
                .field("len", &data.len())
                .field("fin", fin)
                .field("received", received)
                .finish(),
            Self::Ping(p) => f.debug_struct("Ping").field("len", &p.len()).finish(),
            Self::Pong(p) => f.debug_struct("Pong").field("len", &p.len()).finish(),
            Self::Close { code, reason } => f
                .debug_struct("Close")
                .field("code", code)
                .field("reason_len", &reason.len())
                .finish(),
        }
    }
}

/// What one [`WebSocket::handle_read`] call did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<'b> {
    /// Bytes taken from the front of the buffer. The caller drops them and keeps the rest.
    pub consumed: usize,
    /// The event the last consumed frame produced; `None` means the rest of the buffer is
    /// an incomplete frame (or empty): read more.
    pub event: Option<WsEvent<'b>>,
}

/// The incoming message in progress (after its first frame).
#[derive(Clone, Copy, Debug)]
struct RxMessage {
    kind: MessageKind,
    compressed: bool,
    /// Payload bytes on the wire so far.
    wire_len: u64,
    /// Bytes delivered or buffered so far (inflated for compressed messages).
    out_len: u64,
    fragments: u32,
}

/// A masked frame whose payload is longer than this is unmasked piece by piece as its bytes
/// arrive ([`WebSocket::handle_read`]), not all at once when it is complete: a piece just
/// read is still in cache, a megabyte payload at its end is not. Shorter frames are unmasked
/// whole (they fit in cache, and a piece-by-piece record would cost more than it saves).
const UNMASK_AS_IT_COMES: u64 = 64 * 1024;

/// A frame at the head of the input that was only partly there last time: its first `done`
/// payload bytes are already unmasked in place (and, for text, UTF-8 checked).
#[derive(Clone, Copy, Debug)]
struct Partial {
    header: FrameHeader,
    done: usize,
}

/// An outgoing fragmented message in progress.
#[derive(Clone, Copy, Debug)]
struct TxFragment {
    kind: MessageKind,
    compressed: bool,
}

/// Client masking keys: SHA-1 over (caller's entropy, counter), five keys per block. RFC 6455
/// §5.3 wants keys "derived from a strong source of entropy" that the server and
/// intermediaries cannot predict; the caller supplies 16 random bytes per connection.
struct MaskGen {
    seed: [u8; 16],
    counter: u64,
    block: [u8; 20],
    next: usize,
}

impl MaskGen {
    fn new(seed: [u8; 16]) -> Self {
        Self {
            seed,
            counter: 0,
            block: [0; 20],
            next: 20,
        }
    }

    fn next_key(&mut self) -> [u8; 4] {
        if self.next + 4 > self.block.len() {
            let mut h = Sha1::new();
            h.update(self.seed);
            h.update(self.counter.to_le_bytes());
            self.block = h.finalize().into();
            self.counter = self.counter.wrapping_add(1);
            self.next = 0;
        }
        let key = match self.block.get(self.next..self.next + 4) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => [0; 4],
        };
        self.next += 4;
        key
    }
}

/// One WebSocket connection after the handshake, either role. Sans-IO: bytes in, events and
/// bytes out, time passed in.
///
/// Inputs: [`handle_read`](Self::handle_read), [`handle_timeout`](Self::handle_timeout) and the
/// `send_*` / [`ping`](Self::ping) / [`close`](Self::close) calls. Outputs: the event returned
/// by `handle_read`, frames appended to the caller's `Vec<u8>`, and control frames the
/// connection queued itself (pongs, close replies) drained by
/// [`poll_transmit`](Self::poll_transmit). [`poll_timeout`](Self::poll_timeout) says when to
/// call back.
pub struct WebSocket {
    role: Role,
    state: State,
    utf8: Utf8Validator,
    /// Shared by every connection made from the same `Arc` (64 bytes each otherwise).
    config: Arc<Config>,
    rx_msg: Option<RxMessage>,
    /// What only some connections need, boxed so an idle server connection without
    /// permessage-deflate holds none of it: allocated when first needed and freed once it
    /// holds nothing again.
    cold: Option<Box<Cold>>,
}

/// The rarely needed part of a [`WebSocket`].
#[derive(Default)]
struct Cold {
    close_deadline: Option<Instant>,
    /// An incomplete text frame at the head of the input: how much of it is unmasked and
    /// UTF-8 checked already.
    partial: Option<Partial>,
    /// Reassembly / inflate buffer of the incoming message.
    message: Vec<u8>,
    deflate_params: Option<DeflateParams>,
    deflate: Option<DeflateState>,
    masks: Option<MaskGen>,
    /// Control frames queued by the connection (pongs, Close).
    tx: Vec<u8>,
    tx_fragment: Option<TxFragment>,
}

impl Cold {
    /// Holds nothing a fresh connection would not: it can be freed.
    fn is_empty(&self) -> bool {
        self.close_deadline.is_none()
            && self.partial.is_none()
            && self.message.capacity() == 0
            && self.deflate_params.is_none()
            && self.deflate.is_none()
            && self.masks.is_none()
            && self.tx.is_empty()
            && self.tx_fragment.is_none()
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("deflate", &self.deflate_params())
            .field("rx_msg", &self.rx_msg)
            .field(
                "buffered",
                &self.cold.as_ref().map_or(0, |c| c.message.len()),
            )
            .field("queued_tx", &self.cold.as_ref().map_or(0, |c| c.tx.len()))
            .finish_non_exhaustive()
    }
}

impl WebSocket {
    /// A server-side connection. `deflate` is what the handshake negotiated.
    /// `config` is a [`Config`] or, to share one among many connections, an `Arc<Config>`.
    pub fn server(config: impl Into<Arc<Config>>, deflate: Option<DeflateParams>) -> Self {
        Self::new(Role::Server, config.into(), deflate, None)
    }

    /// A client-side connection. `mask_entropy` must be 16 bytes from a CSPRNG: every frame
    /// the client sends is masked with a key derived from it.
    pub fn client(
        config: impl Into<Arc<Config>>,
        deflate: Option<DeflateParams>,
        mask_entropy: [u8; 16],
    ) -> Self {
        Self::new(
            Role::Client,
            config.into(),
            deflate,
            Some(MaskGen::new(mask_entropy)),
        )
    }

    fn new(
        role: Role,
        config: Arc<Config>,
        deflate_params: Option<DeflateParams>,
        masks: Option<MaskGen>,
    ) -> Self {
        let deflate = deflate_params
            .as_ref()
            .map(|p| DeflateState::new(role, p, &config.deflate));
        let cold = Cold {
            deflate_params,
            deflate,
            masks,
            ..Cold::default()
        };
        Self {
            role,
            state: State::Open,
            utf8: Utf8Validator::default(),
            config,
            rx_msg: None,
            cold: (!cold.is_empty()).then(|| Box::new(cold)),
        }
    }

    /// The cold part, allocated if it was not.
    fn cold_mut(&mut self) -> &mut Cold {
        self.cold.get_or_insert_with(Box::default)
    }

    /// Frees the cold part if it holds nothing.
    fn release_cold(&mut self) {
        if self.cold.as_ref().is_some_and(|c| c.is_empty()) {
            self.cold = None;
        }
    }

    /// The permessage-deflate state, if negotiated.
    fn deflate(&self) -> Option<&DeflateState> {
        self.cold.as_ref()?.deflate.as_ref()
    }
    fn deflate_mut(&mut self) -> Option<&mut DeflateState> {
        self.cold.as_deref_mut()?.deflate.as_mut()
    }

    fn tx_fragment(&self) -> Option<TxFragment> {
        self.cold.as_ref().and_then(|c| c.tx_fragment)
    }

    /// No outgoing fragmented message in progress and no close deadline any more.
    fn end_tx(&mut self) {
        if let Some(c) = self.cold.as_deref_mut() {
            c.tx_fragment = None;
            c.close_deadline = None;
        }
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The closing-handshake state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The negotiated permessage-deflate parameters, if any.
    pub fn deflate_params(&self) -> Option<&DeflateParams> {
        self.cold.as_ref().and_then(|c| c.deflate_params.as_ref())
    }

    /// `Closed` and nothing left to transmit: the engine may close the TCP connection.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.cold.as_ref().is_none_or(|c| c.tx.is_empty())
    }

    /// Hands back the buffer of an owned [`WsEvent`] payload so the next reassembled or
    /// inflated message reuses its allocation.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0 {
            return;
        }
        let c = self.cold_mut();
        if c.message.capacity() < buf.capacity() && c.message.is_empty() {
            buf.clear();
            c.message = buf;
        }
    }

    // ---- input ------------------------------------------------------------------------------

    /// Feeds received bytes: parses frames from the front of `buf`, unmasking and validating
    /// them in place, until one produces an event or only an incomplete frame is left.
    ///
    /// Call it in a loop, dropping `consumed` bytes each time, until `event` is `None`; then keep
    /// the unconsumed tail and call again when more bytes arrive. The tail must come back
    /// unchanged at the front of the next `buf`: the payload of a partial text frame may
    /// already be unmasked in place there (so invalid UTF-8 fails fast, Autobahn 6.4.3).
    ///
    /// On `Err` the connection has failed: a Close frame with [`WsError::close_code`] is queued
    /// (if one may still be sent), the state is [`State::Closed`]; flush
    /// [`poll_transmit`](Self::poll_transmit) and close the TCP connection. After a Close was
    /// received, further bytes are consumed and ignored.
    pub fn handle_read<'b>(
        &mut self,
        now: Instant,
        buf: &'b mut [u8],
    ) -> Result<Received<'b>, WsError> {
        self.handle_timeout(now);
        if matches!(self.state, State::CloseReceived | State::Closed) {
            // RFC 6455 §5.5.1: after its Close the peer "MUST NOT send any more data frames";
            // whatever follows is discarded.
            return Ok(Received {
                consumed: buf.len(),
                event: None,
            });
        }
        match self.read_frames(buf) {
            Ok(r) => Ok(r),
            Err(e) => {
                self.fail(e.close_code());
                Err(e)
            }
        }
    }

    fn read_frames<'b>(&mut self, buf: &'b mut [u8]) -> Result<Received<'b>, WsError> {
        let mut rest: &'b mut [u8] = buf;
        let mut consumed = 0usize;
        loop {
            let Some((header, header_len)) = FrameHeader::parse(rest)? else {
                return Ok(Received {
                    consumed,
                    event: None,
                });
            };
            self.check_header(&header)?;
            let payload_len =
                usize::try_from(header.payload_len).map_err(|_| WsError::FrameTooLarge)?;
            let total = header_len
                .checked_add(payload_len)
                .ok_or(WsError::FrameTooLarge)?;
            if rest.len() < total {
                self.prevalidate(&header, header_len, rest)?;
                return Ok(Received {
                    consumed,
                    event: None,
                });
            }
            let Some((frame, tail)) = std::mem::take(&mut rest).split_at_mut_checked(total) else {
                return Ok(Received {
                    consumed,
                    event: None,
                });
            };
            rest = tail;
            consumed += total;
            let payload = frame.get_mut(header_len..).unwrap_or_default();
            if let Some(event) = self.on_frame(&header, payload)? {
                return Ok(Received {
                    consumed,
                    event: Some(event),
                });
            }
        }
    }

    /// The frame checks that need the connection's state; pure, so a partial frame can be
    /// checked again on every read.
    fn check_header(&self, h: &FrameHeader) -> Result<(), WsError> {
        let rules = FrameRules {
            role: self.role,
            allow_rsv1: self.deflate().is_some(),
            max_payload: u64::try_from(self.config.max_frame_payload).unwrap_or(u64::MAX),
        };
        rules.check(h)?;
        let max_message = u64::try_from(self.config.max_message_size).unwrap_or(u64::MAX);
        match h.opcode {
            OpCode::Continuation => {
                // RFC 6455 §5.4: a continuation frame continues a fragmented message; with
                // none in progress the frame is a protocol error.
                let Some(m) = &self.rx_msg else {
                    return Err(WsError::UnexpectedContinuation);
                };
                if m.fragments >= self.config.max_fragments {
                    return Err(WsError::TooManyFragments);
                }
                if m.wire_len.saturating_add(h.payload_len) > max_message {
                    return Err(WsError::MessageTooLarge);
                }
            }
            OpCode::Text | OpCode::Binary => {
                // RFC 6455 §5.4: "the fragments of one message MUST NOT be interleaved between
                // the fragments of another message".
                if self.rx_msg.is_some() {
                    return Err(WsError::ExpectedContinuation);
                }
                if self.config.max_fragments == 0 && !h.fin {
                    return Err(WsError::TooManyFragments);
                }
                if h.payload_len > max_message {
                    return Err(WsError::MessageTooLarge);
                }
            }
            OpCode::Close | OpCode::Ping | OpCode::Pong => {}
        }
        Ok(())
    }

    /// Whether the payload of a data frame with this header is uncompressed UTF-8 text.
    fn is_plain_text(&self, h: &FrameHeader) -> bool {
        if !self.config.validate_utf8 {
            return false;
        }
        match h.opcode {
            OpCode::Text => !h.rsv1,
            OpCode::Continuation => self
                .rx_msg
                .is_some_and(|m| m.kind == MessageKind::Text && !m.compressed),
            _ => false,
        }
    }

    /// Unmasks (and UTF-8-checks) the bytes of an incomplete frame that arrived since the
    /// last call: every text frame, so invalid text fails before the frame is complete, and
    /// any masked frame of more than [`UNMASK_AS_IT_COMES`] bytes, so its bytes are unmasked
    /// while the read that brought them has them in cache rather than in one sweep over the
    /// whole payload at the end.
    fn prevalidate(
        &mut self,
        h: &FrameHeader,
        header_len: usize,
        rest: &mut [u8],
    ) -> Result<(), WsError> {
        let text = self.is_plain_text(h);
        if !text && (h.mask.is_none() || h.payload_len <= UNMASK_AS_IT_COMES) {
            return Ok(());
        }
        let done = match self.cold.as_ref().and_then(|c| c.partial) {
            Some(p) if p.header == *h => p.done,
            _ => 0,
        };
        let Some(new) = rest.get_mut(header_len.saturating_add(done)..) else {
            return Ok(());
        };
        if new.is_empty() {
            return Ok(());
        }
        if let Some(key) = h.mask {
            apply_mask_at(new, key, done);
        }
        if text {
            self.utf8.feed(new).map_err(|_| WsError::InvalidUtf8)?;
        }
        self.cold_mut().partial = Some(Partial {
            header: *h,
            done: done + new.len(),
        });
        Ok(())
    }

    fn on_frame<'b>(
        &mut self,
        h: &FrameHeader,
        payload: &'b mut [u8],
    ) -> Result<Option<WsEvent<'b>>, WsError> {
        let done = match self.cold.as_deref_mut().and_then(|c| c.partial.take()) {
            Some(p) => {
                self.release_cold();
                if p.header == *h { p.done } else { 0 }
            }
            None => 0,
        };
        if let (Some(key), Some(rest)) = (h.mask, payload.get_mut(done..)) {
            apply_mask_at(rest, key, done);
        }
        let payload: &'b [u8] = payload;
        match h.opcode {
            OpCode::Ping => {
                // RFC 6455 §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong
                // frame in response, unless it already received a Close frame." (After our
                // own Close only data frames are forbidden, so CloseSent still answers.)
                self.queue_control(OpCode::Pong, payload);
                Ok((self.state == State::Open).then_some(WsEvent::Ping(payload)))
            }
            OpCode::Pong => Ok((self.state == State::Open).then_some(WsEvent::Pong(payload))),
            OpCode::Close => self.on_close(payload),
            OpCode::Text | OpCode::Binary | OpCode::Continuation => self.on_data(h, payload, done),
        }
    }

    fn on_close<'b>(&mut self, payload: &'b [u8]) -> Result<Option<WsEvent<'b>>, WsError> {
        // RFC 6455 §5.5.1: "If there is a body, the first two bytes of the body MUST be a
        // 2-byte unsigned integer (in network byte order) representing a status code [...]
        // Following the 2-byte integer, the body MAY contain UTF-8-encoded data".
        let (code, reason) = match payload.split_first_chunk::<2>() {
            None if payload.is_empty() => (None, ""),
            None => return Err(WsError::CloseFrameTooShort),
            Some((code, reason)) => {
                let code = CloseCode(u16::from_be_bytes(*code));
                // §7.4: codes an endpoint must not send, reserved and unassigned ones.
                if !code.is_valid_on_wire() {
                    return Err(WsError::InvalidCloseCode(code.0));
                }
                let reason =
                    simdutf8::basic::from_utf8(reason).map_err(|_| WsError::InvalidCloseReason)?;
                (Some(code), reason)
            }
        };
        self.abort_rx();
        match self.state {
            State::Open => {
                // §5.5.1: "If an endpoint receives a Close frame and did not previously send a
                // Close frame, the endpoint MUST send a Close frame in response. (When sending
                // a Close frame in response, the endpoint typically echos the status code it
                // received.)" No code received: answer 1000.
                self.queue_close(code.unwrap_or(CloseCode::NORMAL), "");
                self.state = State::CloseReceived;
                self.end_tx();
            }
            State::CloseSent => {
                self.state = State::Closed;
                self.end_tx();
            }
            State::CloseReceived | State::Closed => {}
        }
        Ok(Some(WsEvent::Close { code, reason }))
    }

    fn on_data<'b>(
        &mut self,
        h: &FrameHeader,
        payload: &'b [u8],
        done: usize,
    ) -> Result<Option<WsEvent<'b>>, WsError> {
        let first = h.opcode != OpCode::Continuation;
        if first {
            let kind = if h.opcode == OpCode::Text {
                MessageKind::Text
            } else {
                MessageKind::Binary
            };
            self.rx_msg = Some(RxMessage {
                kind,
                compressed: h.rsv1,
                wire_len: 0,
                out_len: 0,
                fragments: 0,
            });
        }
        let Some(m) = self.rx_msg.as_mut() else {
            return Err(WsError::UnexpectedContinuation);
        };
        m.fragments = m.fragments.saturating_add(1);
        m.wire_len = m.wire_len.saturating_add(payload.len() as u64);
        let msg = *m;
        let kind = msg.kind;
        let validate = kind == MessageKind::Text && self.config.validate_utf8;
        // After our Close, data is checked but not delivered (RFC 6455 §7.1.2 ends the data
        // exchange; the peer may still have been sending).
        let deliver = self.state == State::Open;
        let fin = h.fin;

        if !msg.compressed {
            if first && fin {
                // The hot path: one frame, no copy, no allocation.
                self.rx_msg = None;
                if validate {
                    if done == 0 {
                        simdutf8::basic::from_utf8(payload).map_err(|_| WsError::InvalidUtf8)?;
                    } else {
                        self.feed_utf8(payload.get(done..).unwrap_or_default())?;
                        self.utf8.finish().map_err(|_| WsError::InvalidUtf8)?;
                    }
                }
                self.utf8.reset();
                return Ok(deliver.then_some(WsEvent::Message {
                    kind,
                    data: Cow::Borrowed(payload),
                }));
            }
            if validate {
                self.feed_utf8(payload.get(done..).unwrap_or_default())?;
                if fin {
                    self.utf8.finish().map_err(|_| WsError::InvalidUtf8)?;
                }
            }
            if let Some(m) = self.rx_msg.as_mut() {
                m.out_len = m.wire_len;
            }
            if fin {
                self.rx_msg = None;
            }
            return Ok(match self.config.fragment_mode {
                FragmentMode::Stream => deliver.then_some(WsEvent::Fragment {
                    kind,
                    data: Cow::Borrowed(payload),
                    fin,
                    received: msg.wire_len,
                }),
                FragmentMode::Reassemble => {
                    let c = self.cold_mut();
                    c.message.extend_from_slice(payload);
                    if fin {
                        let data = std::mem::take(&mut c.message);
                        self.release_cold();
                        deliver.then_some(WsEvent::Message {
                            kind,
                            data: Cow::Owned(data),
                        })
                    } else {
                        None
                    }
                }
            });
        }

        // permessage-deflate: inflate as fragments arrive, bounded by max_message_size.
        let Some(Cold {
            deflate: Some(deflate),
            message,
            ..
        }) = self.cold.as_deref_mut()
        else {
            return Err(WsError::ReservedBits);
        };
        let limit = self.config.max_message_size;
        let stream = self.config.fragment_mode == FragmentMode::Stream && !(first && fin);
        if stream {
            let left = usize::try_from(
                u64::try_from(limit)
                    .unwrap_or(u64::MAX)
                    .saturating_sub(msg.out_len),
            )
            .unwrap_or(usize::MAX);
            let mut chunk = std::mem::take(message);
            chunk.clear();
            deflate.decompress(payload, fin, &mut chunk, left)?;
            if validate {
                self.utf8.feed(&chunk).map_err(|_| WsError::InvalidUtf8)?;
                if fin {
                    self.utf8.finish().map_err(|_| WsError::InvalidUtf8)?;
                }
            }
            let received = msg.out_len.saturating_add(chunk.len() as u64);
            if let Some(m) = self.rx_msg.as_mut() {
                m.out_len = received;
            }
            if fin {
                self.rx_msg = None;
            }
            return Ok(deliver.then_some(WsEvent::Fragment {
                kind,
                data: Cow::Owned(chunk),
                fin,
                received,
            }));
        }
        let start = message.len();
        deflate.decompress(payload, fin, message, limit)?;
        if validate {
            let new = message.get(start..).unwrap_or_default();
            self.utf8.feed(new).map_err(|_| WsError::InvalidUtf8)?;
            if fin {
                self.utf8.finish().map_err(|_| WsError::InvalidUtf8)?;
            }
        }
        if let Some(m) = self.rx_msg.as_mut() {
            m.out_len = message.len() as u64;
        }
        if !fin {
            return Ok(None);
        }
        let data = std::mem::take(message);
        self.rx_msg = None;
        Ok(deliver.then_some(WsEvent::Message {
            kind,
            data: Cow::Owned(data),
        }))
    }

    fn feed_utf8(&mut self, bytes: &[u8]) -> Result<(), WsError> {
        self.utf8.feed(bytes).map_err(|_| WsError::InvalidUtf8)
    }

    /// Forgets the incoming message in progress.
    fn abort_rx(&mut self) {
        self.rx_msg = None;
        self.utf8.reset();
        if let Some(c) = self.cold.as_deref_mut() {
            c.partial = None;
            c.message.clear();
            if let Some(d) = &mut c.deflate {
                d.abort_rx();
            }
        }
    }

    /// _Fail the WebSocket Connection_ (RFC 6455 §7.1.7): send Close with `code` if we still
    /// may, then Closed.
    fn fail(&mut self, code: CloseCode) {
        if self.state == State::Open {
            self.queue_close(code, "");
        }
        self.state = State::Closed;
        self.end_tx();
        self.abort_rx();
    }

    // ---- time -------------------------------------------------------------------------------

    /// When to call [`handle_timeout`](Self::handle_timeout): the close deadline while in
    /// [`State::CloseSent`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::CloseSent => self.cold.as_ref().and_then(|c| c.close_deadline),
            _ => None,
        }
    }

    /// Advances time: past the close deadline the connection is [`State::Closed`] (the peer
    /// never answered our Close).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::CloseSent && self.poll_timeout().is_some_and(|d| now >= d) {
            self.state = State::Closed;
            self.end_tx();
            self.abort_rx();
        }
    }

    // ---- output -----------------------------------------------------------------------------

    /// Appends the control frames the connection queued itself (pongs, Close replies) to `out`.
    /// Returns whether it wrote anything.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(c) = self.cold.as_deref_mut().filter(|c| !c.tx.is_empty()) else {
            return false;
        };
        out.extend_from_slice(&c.tx);
        // Keep idle connections small: the queue's storage goes with the cold part.
        c.tx = Vec::new();
        if self.state == State::CloseReceived {
            self.state = State::Closed;
        }
        self.release_cold();
        true
    }

    fn next_mask(&mut self) -> Option<[u8; 4]> {
        self.cold
            .as_deref_mut()
            .and_then(|c| c.masks.as_mut())
            .map(|m| m.next_key())
    }

    fn queue_control(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.next_mask();
        write_frame(&mut self.cold_mut().tx, true, false, opcode, payload, mask);
    }

    fn queue_close(&mut self, code: CloseCode, reason: &str) {
        let mut body = [0u8; MAX_CONTROL_PAYLOAD];
        let len = close_body(&mut body, code, reason);
        let mask = self.next_mask();
        write_frame(
            &mut self.cold_mut().tx,
            true,
            false,
            OpCode::Close,
            body.get(..len).unwrap_or_default(),
            mask,
        );
    }

    fn check_can_send(&self) -> Result<(), WsError> {
        // RFC 6455 §5.5.1: "After sending a Close frame, the endpoint MUST NOT send any more
        // data frames."
        if self.state != State::Open {
            return Err(WsError::Closed);
        }
        Ok(())
    }

    /// Appends a whole text message to `out` (compressed if deflate was negotiated and it is at
    /// least `compress_threshold` bytes; masked for clients).
    pub fn send_text(&mut self, text: &str, out: &mut Vec<u8>) -> Result<(), WsError> {
        self.send_message(MessageKind::Text, text.as_bytes(), out)
    }

    /// Appends a whole binary message to `out`.
    pub fn send_binary(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), WsError> {
        self.send_message(MessageKind::Binary, data, out)
    }

    /// Appends a whole message to `out` as one frame. Text must be valid UTF-8 (not checked).
    pub fn send_message(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), WsError> {
        self.check_can_send()?;
        if self.tx_fragment().is_some() {
            return Err(WsError::MessageInProgress);
        }
        self.poll_transmit(out);
        let mask = self.next_mask();
        match self.deflate_mut() {
            Some(d) if d.should_compress(data.len()) => {
                if let Err(e) = d.compress(data, true) {
                    self.fail(e.close_code());
                    return Err(e);
                }
                write_frame(out, true, true, kind.opcode(), &d.scratch, mask);
            }
            _ => write_frame(out, true, false, kind.opcode(), data, mask),
        }
        Ok(())
    }

    /// Appends one fragment of a message to `out`. The first call starts a message of `kind`
    /// (compressed if deflate was negotiated and this first fragment reaches the threshold);
    /// later calls must pass the same `kind`; `fin` ends it. Control frames may be sent in
    /// between, other messages may not.
    pub fn send_fragment(
        &mut self,
        kind: MessageKind,
        data: &[u8],
        fin: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), WsError> {
        self.check_can_send()?;
        let (opcode, compressed, first) = match self.tx_fragment() {
            None => (
                kind.opcode(),
                self.deflate()
                    .is_some_and(|d| d.should_compress(data.len())),
                true,
            ),
            Some(f) if f.kind == kind => (OpCode::Continuation, f.compressed, false),
            Some(_) => return Err(WsError::MessageInProgress),
        };
        self.poll_transmit(out);
        let mask = self.next_mask();
        match self.deflate_mut() {
            Some(d) if compressed => {
                if let Err(e) = d.compress(data, fin) {
                    self.fail(e.close_code());
                    return Err(e);
                }
                // RFC 7692 §6: RSV1 on the first frame of a compressed message only.
                write_frame(out, fin, first, opcode, &d.scratch, mask);
            }
            _ => write_frame(out, fin, false, opcode, data, mask),
        }
        if fin {
            if let Some(c) = self.cold.as_deref_mut() {
                c.tx_fragment = None;
            }
            self.release_cold();
        } else {
            self.cold_mut().tx_fragment = Some(TxFragment { kind, compressed });
        }
        Ok(())
    }

    /// For vectored sends: returns the header of a single-frame, uncompressed message whose
    /// payload is `payload`, which a client's connection masks in place. Send the header then
    /// the payload. (Queued control frames from [`poll_transmit`](Self::poll_transmit) may go
    /// before or after, never between.)
    pub fn send_header(
        &mut self,
        kind: MessageKind,
        payload: &mut [u8],
    ) -> Result<HeaderBytes, WsError> {
        self.check_can_send()?;
        if self.tx_fragment().is_some() {
            return Err(WsError::MessageInProgress);
        }
        let mask = self.next_mask();
        if let Some(k) = mask {
            apply_mask(payload, k);
        }
        Ok(FrameHeader {
            fin: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode: kind.opcode(),
            mask,
            payload_len: payload.len() as u64,
        }
        .encode())
    }

    /// For vectored sends of a payload the caller cannot modify (shared, refcounted bytes):
    /// the header of a single-frame, uncompressed message of `len` bytes. Only unmasked frames
    /// can go out this way: on a client's connection it returns `Ok(None)`, and the caller
    /// uses [`send_header`](Self::send_header) or [`send_message`](Self::send_message)
    /// instead. Send the header then the payload. (Queued control frames from
    /// [`poll_transmit`](Self::poll_transmit) may go before or after, never between.)
    pub fn send_header_unmasked(
        &mut self,
        kind: MessageKind,
        len: usize,
    ) -> Result<Option<HeaderBytes>, WsError> {
        self.check_can_send()?;
        if self.tx_fragment().is_some() {
            return Err(WsError::MessageInProgress);
        }
        // RFC 6455 §5.3: "The masking key [...] MUST be present and set to 1 for all frames
        // sent from the client to the server."
        if self.cold.as_ref().is_some_and(|c| c.masks.is_some()) {
            return Ok(None);
        }
        Ok(Some(
            FrameHeader {
                fin: true,
                rsv1: false,
                rsv2: false,
                rsv3: false,
                opcode: kind.opcode(),
                mask: None,
                payload_len: len as u64,
            }
            .encode(),
        ))
    }

    /// Appends a Ping (payload at most 125 bytes) to `out`.
    pub fn ping(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), WsError> {
        self.send_control(OpCode::Ping, payload, out)
    }

    /// Appends an unsolicited Pong (a unidirectional heartbeat, RFC 6455 §5.5.3) to `out`.
    pub fn pong(&mut self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), WsError> {
        self.send_control(OpCode::Pong, payload, out)
    }

    fn send_control(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), WsError> {
        self.check_can_send()?;
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(WsError::ControlPayloadTooLong);
        }
        self.poll_transmit(out);
        let mask = self.next_mask();
        write_frame(out, true, false, opcode, payload, mask);
        Ok(())
    }

    /// Starts the closing handshake: appends Close(`code`, `reason`) to `out` and waits for
    /// the peer's Close until `now + close_timeout`. A no-op if a Close was already sent or
    /// received. `reason` is at most 123 bytes.
    pub fn close(
        &mut self,
        now: Instant,
        code: CloseCode,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), WsError> {
        if self.state != State::Open {
            return Ok(());
        }
        if !code.is_valid_on_wire() {
            return Err(WsError::CloseCodeNotSendable(code.0));
        }
        if reason.len() > MAX_CONTROL_PAYLOAD - 2 {
            return Err(WsError::ControlPayloadTooLong);
        }
        self.poll_transmit(out);
        let mut body = [0u8; MAX_CONTROL_PAYLOAD];
        let len = close_body(&mut body, code, reason);
        let mask = self.next_mask();
        write_frame(
            out,
            true,
            false,
            OpCode::Close,
            body.get(..len).unwrap_or_default(),
            mask,
        );
        self.state = State::CloseSent;
        let deadline = now.checked_add(self.config.close_timeout);
        let c = self.cold_mut();
        c.close_deadline = deadline;
        c.tx_fragment = None;
        Ok(())
    }
}

/// Writes code + reason (truncated to fit 125 bytes) into `body`; returns the length.
fn close_body(body: &mut [u8; MAX_CONTROL_PAYLOAD], code: CloseCode, reason: &str) -> usize {
    let code = code.0.to_be_bytes();
    let mut len = 0;
    for (d, s) in body.iter_mut().zip(code.iter().chain(reason.as_bytes())) {
        *d = *s;
        len += 1;
    }
    len
}

/// Appends one frame (header, payload, masked in place if `mask`).
fn write_frame(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    FrameHeader {
        fin,
        rsv1,
        rsv2: false,
        rsv3: false,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    }
    .write_to(out);
    let start = out.len();
    out.extend_from_slice(payload);
    if let (Some(k), Some(p)) = (mask, out.get_mut(start..)) {
        apply_mask(p, k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keys_vary() {
        let mut g = MaskGen::new([7; 16]);
        let keys: Vec<_> = (0..20).map(|_| g.next_key()).collect();
        let mut uniq = keys.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), keys.len());
    }

    /// A masked client frame.
    fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_frame(&mut v, fin, false, opcode, payload, Some([1, 2, 3, 4]));
        v
    }

    #[test]
    fn idle_server_connection_holds_no_cold_part() {
        // The hot part stays small; the cold part exists only while something needs it.
        assert!(std::mem::size_of::<WebSocket>() <= 48);
        let now = Instant::now();
        let mut ws = WebSocket::server(Config::default(), None);
        assert!(ws.cold.is_none());
        let mut buf = client_frame(true, OpCode::Text, b"hello");
        let r = ws.handle_read(now, &mut buf).unwrap();
        assert!(matches!(r.event, Some(WsEvent::Message { .. })));
        assert!(ws.cold.is_none(), "a whole message needs no cold part");
        // A ping queues a pong in the cold part; sending it frees the part again.
        let mut buf = client_frame(true, OpCode::Ping, b"p");
        ws.handle_read(now, &mut buf).unwrap();
        assert!(ws.cold.is_some());
        let mut out = Vec::new();
        assert!(ws.poll_transmit(&mut out));
        assert_eq!(out, [0x8A, 1, b'p']);
        assert!(ws.cold.is_none());
        // A fragmented message is reassembled in the cold part, which goes with the message.
        let mut buf = client_frame(false, OpCode::Binary, b"ab");
        let n = buf.len();
        let r = ws.handle_read(now, &mut buf).unwrap();
        assert_eq!((r.consumed, r.event), (n, None));
        assert!(ws.cold.is_some());
        let mut buf = client_frame(true, OpCode::Continuation, b"cd");
        let r = ws.handle_read(now, &mut buf).unwrap();
        match r.event {
            Some(WsEvent::Message { data, .. }) => assert_eq!(&*data, b"abcd"),
            e => panic!("{e:?}"),
        }
        assert!(ws.cold.is_none());
        // A text frame that arrives in pieces: what is unmasked and checked so far is kept
        // in the cold part until the frame is complete (the caller passes the same bytes
        // again, with more after them).
        let whole = client_frame(true, OpCode::Text, "héllo wörld".as_bytes());
        let mut buf = whole[..whole.len() - 4].to_vec();
        let r = ws.handle_read(now, &mut buf).unwrap();
        assert_eq!((r.consumed, r.event), (0, None));
        assert!(ws.cold.is_some());
        buf.extend_from_slice(&whole[whole.len() - 4..]);
        let r = ws.handle_read(now, &mut buf).unwrap();
        match r.event {
            Some(WsEvent::Message { data, .. }) => assert_eq!(&*data, "héllo wörld".as_bytes()),
            e => panic!("{e:?}"),
        }
        assert!(ws.cold.is_none());
        // An outgoing fragmented message keeps it until its last fragment.
        ws.send_fragment(MessageKind::Text, b"x", false, &mut out)
            .unwrap();
        assert!(ws.cold.is_some());
        ws.send_fragment(MessageKind::Text, b"y", true, &mut out)
            .unwrap();
        assert!(ws.cold.is_none());
        // Closing keeps the deadline there.
        ws.close(now, CloseCode::NORMAL, "", &mut out).unwrap();
        assert!(ws.poll_timeout().is_some());
        // Clients (masks) and deflate connections always have one.
        assert!(
            WebSocket::client(Config::default(), None, [0; 16])
                .cold
                .is_some()
        );
    }

    #[test]
    fn close_body_truncates() {
        let mut b = [0; MAX_CONTROL_PAYLOAD];
        assert_eq!(close_body(&mut b, CloseCode::NORMAL, "bye"), 5);
        assert_eq!(&b[..5], b"\x03\xe8bye");
        let long = "x".repeat(200);
        assert_eq!(close_body(&mut b, CloseCode::NORMAL, &long), 125);
    }
}
