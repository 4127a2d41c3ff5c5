//! # ringwire
//!
//! Protocols on the Ringwire engine ([`ringwire_runtime`]) and the `ringwire` server binary.
//! This crate joins the sans-IO protocol crates to the runtime as plugins.
//!
//! Today: plain TCP ([`tcp::Echo`], [`tcp::Framed`] with end-of-message scanning), the
//! `ringwire serve` router and configuration, STUN/TURN ([`stun`]: the server plugin and
//! the blocking clients). The HTTP/WebSocket listener answers 503 until
//! the WebSocket and HTTP plugins land.

pub mod config;
pub mod serve;
pub mod stun;
pub mod tcp;
pub mod unavailable;
pub mod ws;

pub use ringwire_runtime as runtime;
