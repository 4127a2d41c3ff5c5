//! Driver selection, the io_uring probe, and what both drivers share (listener sockets).

pub(crate) mod epoll;
pub(crate) mod uring;

use crate::config::{DriverChoice, DriverKind};

pub(crate) use uring::SendOp;

/// What the start-up io_uring probe found.
#[derive(Clone, Debug)]
pub struct Probe {
    /// True when every opcode and feature the io_uring driver uses is there.
    pub usable: bool,
    /// Why not, when not usable (for the log line).
    pub reason: String,
}

/// Probe io_uring: ring setup, the opcodes the driver uses, and provided-buffer rings.
pub fn probe_uring() -> Probe {
    uring::probe()
}

/// Resolve a driver choice (after the `RINGWIRE_DRIVER` override) into the driver to run, with
/// the reason, logged by the caller. `Uring` when io_uring is unusable is an error.
pub fn resolve_driver(choice: DriverChoice) -> Result<(DriverKind, String), String> {
    let choice = choice.with_env_override();
    match choice {
        DriverChoice::Epoll => Ok((DriverKind::Epoll, "epoll requested".into())),
        DriverChoice::Uring => {
            let p = probe_uring();
            if p.usable {
                Ok((
                    DriverKind::Uring,
                    "io_uring requested and the probe passed".into(),
                ))
            } else {
                Err(format!("io_uring requested but unusable: {}", p.reason))
            }
        }
        DriverChoice::Auto => {
            let p = probe_uring();
            if p.usable {
                Ok((DriverKind::Uring, "auto: io_uring probe passed".into()))
            } else {
                Ok((
                    DriverKind::Epoll,
                    format!(
                        "auto: io_uring unusable ({}), falling back to epoll",
                        p.reason
                    ),
                ))
            }
        }
    }
}
