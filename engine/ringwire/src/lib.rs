//! # ringwire
//!
//! Protocols on the Ringwire engine ([`ringwire_runtime`]) and the `ringwire` server binary.
//! This crate joins the sans-IO protocol crates to the runtime as plugins.
//!
//! Today: plain TCP ([`tcp::Echo`], [`tcp::Framed`] with end-of-message scanning), the
//! `ringwire serve` router and configuration, STUN/TURN ([`stun`]: the server plugin and
//! the blocking clients), WebSocket ([`ws`]) and HTTP/1.1 with static files and Server-Sent
//! Events ([`http`]) on one port, and TLS for all of them ([`tls`]: `ringwire serve`'s
//! certificates, the development certificate, reload).

pub mod config;
pub mod http;
pub mod serve;
pub mod stun;
pub mod tcp;
pub mod tls;
pub mod ws;

pub use ringwire_runtime as runtime;

/// Output up to this size is copied out of a plugin's per-core output buffer, which is then
/// kept for the next answer.
const COPY_OUT_MAX: usize = 4096;

/// The bytes a plugin wrote into its per-core output buffer, ready to send. Small output is
/// copied into an exact allocation and the buffer kept (one malloc per send, where taking the
/// buffer would regrow an empty one every time); large output changes hands without a copy.
pub(crate) fn take_output(out: &mut Vec<u8>) -> runtime::Bytes {
    if out.len() <= COPY_OUT_MAX {
        let b = runtime::Bytes::copy_from_slice(out);
        out.clear();
        b
    } else {
        runtime::Bytes::from(std::mem::take(out))
    }
}
