//! # ringwire-runtime
//!
//! Ringwire's thread-per-core event engine. One worker thread per core, each with its own
//! driver (io_uring, or epoll through mio), listeners (one `SO_REUSEPORT` socket per binding per
//! core), connection slab, timer wheel, receive buffers and plugin instance. Nothing on the
//! per-message path is shared or locked.
//!
//! It knows no protocol: protocols arrive as [`Plugin`]s. TLS (rustls) is a layer it runs between
//! the socket and the plugin on listeners added with [`ServerBuilder::tcp_tls`] ([`tls`]). What it
//! does not do: protocol parsing, or anything async — callbacks run to completion on their core.
//!
//! ```no_run
//! use ringwire_runtime::{ConnCtx, Plugin, RuntimeConfig, ServerBuilder};
//!
//! struct Echo;
//! impl Plugin for Echo {
//!     type Conn = ();
//!     fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> { Some(()) }
//!     fn on_data(&mut self, _: &mut (), cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
//!         let _ = cx.send(data.to_vec());
//!         data.len()
//!     }
//! }
//!
//! let mut b = ServerBuilder::new(RuntimeConfig::default());
//! b.tcp("127.0.0.1:7000".parse().unwrap());
//! let server = b.start(|_core| Echo).expect("start");
//! println!("listening on {:?} (driver={})", server.local_addrs(), server.driver());
//! server.join();
//! ```
//!
//! The loop of one core, either driver:
//! 1. wait for completions (io_uring) or readiness (epoll), or the next timer;
//! 2. accept, read into a pooled buffer, call [`Plugin::on_data`] with borrowed bytes;
//! 3. fire due timers, drain the cross-core inbox;
//! 4. for every connection a callback touched: start sends (vectored), pause/resume reads,
//!    advance closes — then submit everything with one `io_uring_enter`.

pub mod alloc;
mod bus;
mod config;
mod core;
mod deadline;
mod driver;
mod plugin;
mod server;
pub mod slab;
pub mod timer;
pub mod tls;

pub use bus::BusMessage;
pub use bytes::Bytes;
pub use config::{
    ConfigError, DriverChoice, DriverKind, OverflowPolicy, Rate, RuntimeConfig, Throttle,
};
pub use core::{ConnCtx, CoreCtx, CoreStats, TimerId};
pub use driver::{Probe, probe_uring, resolve_driver};
pub use plugin::{
    CloseReason, ConnId, IntoChunk, ListenerId, Plugin, PluginFactory, SendError, UdpId,
};
pub use server::{Publisher, ServerBuilder, ServerHandle, StatsReader, Stopper};
