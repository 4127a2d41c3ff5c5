//! The engine-level plugin API: what a protocol implements to run on every core.
//!
//! A [`PluginFactory`] makes one [`Plugin`] per core. The plugin gets that core's connections
//! and datagrams, and reacts to open, data, drained, timer, bus message and close. It writes
//! through a [`ConnCtx`] / [`CoreCtx`], which own the connection's out-queue, the core's timer
//! wheel and the bus. Callbacks never block and never run concurrently on one core.
//!
//! Per-connection state is the plugin's associated type [`Plugin::Conn`], created by
//! [`Plugin::on_open`] and stored by the runtime beside the connection, so no map lookup
//! happens per message.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::bus::BusMessage;
use crate::core::{CoreCtx, Shared};

pub use crate::core::ConnCtx;

/// A connection's stable, unique id: the core in the top 8 bits, its slot key below.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub(crate) u64);

impl ConnId {
    /// The core that owns the connection.
    pub fn core(self) -> usize {
        (self.0 >> 56) as usize
    }
    /// The raw value (unique among live connections of one server, stable for a connection's life).
    pub fn as_u64(self) -> u64 {
        self.0
    }
    /// Rebuild an id from [`ConnId::as_u64`].
    pub fn from_u64(v: u64) -> Self {
        ConnId(v)
    }
    /// The connection's slot on its core: a small number, dense over the core's open
    /// connections and reused after a close, to index a plugin's own per-core tables (a bitmap
    /// of 1 bit a connection instead of a set of ids). While the connection is open,
    /// [`crate::CoreCtx::conn_at`] maps the slot back to this id.
    pub fn slot(self) -> u32 {
        self.0 as u32
    }
}

impl std::fmt::Debug for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ConnId({}:{:x})", self.core(), self.0 & ((1 << 56) - 1))
    }
}

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:x}", self.core(), self.0 & ((1 << 56) - 1))
    }
}

/// Which binding a connection or datagram arrived on: the index of the binding in the order
/// they were added to the [`crate::ServerBuilder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(pub usize);

/// A UDP socket of this core (one per UDP binding per core).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpId(pub usize);

/// Why a connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The plugin closed it gracefully; the queue was flushed and both FINs exchanged.
    Local,
    /// The peer closed its side and the runtime finished the close.
    Peer,
    /// The plugin aborted it (or a send past the limit did, under [`crate::OverflowPolicy::Close`]).
    Aborted,
    /// A socket error (reset, broken pipe...).
    Error(std::io::ErrorKind),
    /// The peer did not close within the linger time after our FIN.
    LingerTimeout,
    /// Unconsumed input passed [`crate::RuntimeConfig::max_in_buffer`].
    InputOverflow,
    /// The server stopped and the shutdown deadline passed.
    Shutdown,
    /// The plugin refused the connection in `on_open` (or, on TLS, the core was at its cap
    /// of handshakes in progress).
    Refused,
    /// TLS: a failed handshake, a bad record, or the handshake deadline.
    Tls,
}

/// Why a send was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The out-queue would pass its limit; nothing was queued (policy `Refuse`).
    Backpressure,
    /// The connection is closing or gone (or was just aborted by policy `Close`).
    Closed,
    /// The connection lives on another core; use [`CoreCtx::post`] to reach it.
    OtherCore,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SendError::Backpressure => "send refused: out-queue limit reached",
            SendError::Closed => "connection closed",
            SendError::OtherCore => "connection belongs to another core",
        })
    }
}

impl std::error::Error for SendError {}

/// A protocol running on one core.
///
/// All methods but [`Plugin::on_data`] have defaults, so a plugin implements what it needs.
pub trait Plugin: 'static {
    /// Per-connection state, created in [`Plugin::on_open`].
    type Conn;

    /// The core started; runs before its listeners accept.
    fn on_start(&mut self, _cx: &mut CoreCtx<'_>) {}

    /// A connection was accepted. Return `None` to refuse it (it is closed at once).
    fn on_open(&mut self, cx: &mut ConnCtx<'_>) -> Option<Self::Conn>;

    /// Bytes arrived. `data` is every byte not yet consumed (the rest of an earlier call first);
    /// return how many were consumed. The rest stays buffered and comes back, with what arrives
    /// next, in the next call. `data` may be modified in place (unmasking, decryption).
    fn on_data(&mut self, conn: &mut Self::Conn, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize;

    /// The bytes this connection's `on_data` took with [`ConnCtx::take_input`], handed over as
    /// soon as that call returned: as it left them (unmasked in place, say), already counted as
    /// consumed. The default drops them; a plugin that takes input implements this, and one
    /// that wraps other plugins forwards it.
    fn on_owned_data(&mut self, _conn: &mut Self::Conn, _cx: &mut ConnCtx<'_>, _data: Bytes) {}

    /// The peer shut down its sending side (FIN). The default closes gracefully once what is
    /// queued has been sent.
    fn on_read_closed(&mut self, _conn: &mut Self::Conn, cx: &mut ConnCtx<'_>) {
        cx.close();
    }

    /// The connection's out-queue became empty.
    fn on_drained(&mut self, _conn: &mut Self::Conn, _cx: &mut ConnCtx<'_>) {}

    /// A connection timer set with [`ConnCtx::set_timer`] fired.
    fn on_timer(&mut self, _conn: &mut Self::Conn, _cx: &mut ConnCtx<'_>, _token: u64) {}

    /// The connection's deadline ([`ConnCtx::set_deadline`]) passed; it is disarmed now.
    fn on_deadline(&mut self, _conn: &mut Self::Conn, _cx: &mut ConnCtx<'_>) {}

    /// The connection is gone; its state is handed back for the last time.
    fn on_close(&mut self, _conn: Self::Conn, _cx: &mut CoreCtx<'_>, _reason: CloseReason) {}

    /// An outgoing connection ([`CoreCtx::connect`]) failed: refused, unreachable, timed out,
    /// or (TLS) its handshake failed. `on_open` was not called for it and `on_close` will not be.
    fn on_connect_error(&mut self, _cx: &mut CoreCtx<'_>, _id: ConnId, _err: std::io::Error) {}

    /// A core timer set with [`CoreCtx::set_core_timer`] fired.
    fn on_core_timer(&mut self, _cx: &mut CoreCtx<'_>, _token: u64) {}

    /// A bus message posted to this core (or broadcast to all) arrived.
    fn on_message(&mut self, _cx: &mut CoreCtx<'_>, _msg: &BusMessage) {}

    /// A UDP datagram arrived on one of this core's UDP sockets.
    fn on_datagram(
        &mut self,
        _cx: &mut CoreCtx<'_>,
        _sock: UdpId,
        _from: SocketAddr,
        _data: &mut [u8],
    ) {
    }

    /// The server is stopping: listeners are closed. The plugin should finish its work and close
    /// its connections (the runtime closes the rest gracefully, then aborts them at the deadline).
    fn on_stop(&mut self, _cx: &mut CoreCtx<'_>) {}
}

/// Makes one plugin per core. Any `Fn(usize) -> P + Send + Sync` is a factory.
pub trait PluginFactory: Send + Sync + 'static {
    /// The plugin type.
    type Plugin: Plugin;
    /// Make the plugin for core `core` (called on that core's thread).
    fn create(&self, core: usize) -> Self::Plugin;
}

impl<F, P> PluginFactory for F
where
    F: Fn(usize) -> P + Send + Sync + 'static,
    P: Plugin,
{
    type Plugin = P;
    fn create(&self, core: usize) -> P {
        self(core)
    }
}

/// Helper so `&mut Shared` stays private to the crate while contexts are public.
pub(crate) fn core_ctx(sh: &mut Shared) -> CoreCtx<'_> {
    CoreCtx { sh }
}

/// Bytes a plugin can send: anything that converts to refcounted [`Bytes`] without copying
/// (a `Vec<u8>`, a `Box<[u8]>`, a `&'static [u8]`, or a clone of shared `Bytes`).
pub trait IntoChunk {
    /// Convert.
    fn into_chunk(self) -> Bytes;
}

impl<T: Into<Bytes>> IntoChunk for T {
    fn into_chunk(self) -> Bytes {
        self.into()
    }
}
