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
