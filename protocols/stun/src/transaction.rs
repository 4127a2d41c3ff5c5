//! A sans-IO client transaction: (re)transmission schedule and response matching
//! (RFC 8489 §6.2). Time comes in through `now` arguments; nothing reads a clock.

use std::time::{Duration, Instant};

use crate::error::StunError;
use crate::message::StunMessage;
use crate::types::{Class, Method, TransactionId};

/// The transport a transaction runs over.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transport {
    /// UDP (or DTLS): retransmit on the RTO schedule (RFC 8489 §6.2.1).
    Udp,
    /// TCP or TLS: send once, wait up to Ti (RFC 8489 §6.2.2).
    Reliable,
}

/// Retransmission parameters (RFC 8489 §6.2.1, §6.2.2).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RetransmitConfig {
    /// Initial retransmission timeout; "RTO [...] SHOULD be greater than 500 ms" — 500 ms.
    pub rto: Duration,
    /// Rc, the total number of transmissions over UDP: "Rc SHOULD be configurable and
    /// SHOULD have a default of 7".
    pub max_transmissions: u32,
    /// Rm: "If, after the last request, a duration equal to Rm times the RTO has passed
    /// without a response [...] the client SHOULD consider the transaction to have failed.
    /// Rm SHOULD be configurable and SHOULD have a default of 16."
    pub final_wait_multiplier: u32,
    /// Ti over TCP/TLS: "the client SHOULD consider the transaction a failure if it has not
    /// received a response by Ti seconds after [...] Ti SHOULD be configurable and SHOULD have
    /// a default of 39.5s."
    pub reliable_timeout: Duration,
}

impl RetransmitConfig {
    /// RTO 500 ms, Rc 7, Rm 16, Ti 39.5 s: sends at 0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s and
    /// failure at 39.5 s over UDP.
    pub const DEFAULT: Self = Self {
        rto: Duration::from_millis(500),
        max_transmissions: 7,
        final_wait_multiplier: 16,
        reliable_timeout: Duration::from_millis(39_500),
    };
}

impl Default for RetransmitConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where a transaction stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TransactionState {
    /// Waiting for a response.
    Pending,
    /// A success or error response with the transaction id arrived (the caller has it).
    Completed(Class),
    /// No response in time.
    TimedOut,
}

/// One client request in flight.
///
/// ```text
///   new(now) ──► Pending ──handle_response(matching)──► Completed
///                  │  ▲
///   handle_timeout │  │ retransmit (UDP: after RTO, 2·RTO, 4·RTO ... up to Rc sends)
///                  ▼  │
///                Pending ──handle_timeout(last send + Rm·RTO, or Ti over TCP)──► TimedOut
/// ```
///
/// Run loop: drain [`ClientTransaction::poll_transmit`], arm a timer for
/// [`ClientTransaction::poll_timeout`], call [`ClientTransaction::handle_timeout`] when it
/// fires and [`ClientTransaction::handle_response`] for each STUN message received.
#[derive(Debug)]
pub struct ClientTransaction {
    tid: TransactionId,
    method: Method,
    request: Vec<u8>,
    transport: Transport,
    config: RetransmitConfig,
    state: TransactionState,
    transmissions: u32,
    transmit_pending: bool,
    /// The current retransmission interval (doubles after each retransmission).
    interval: Duration,
    /// When the next retransmission is due; `None` after the last one.
    next_send: Option<Instant>,
    /// When the transaction fails if still pending.
    deadline: Instant,
}

impl ClientTransaction {
    /// Starts a transaction for an encoded request; its first transmission is due at once.
    /// Errors: the parse error if `request` is not a valid STUN message,
    /// [`StunError::NotRequest`] if it is not of class request.
    pub fn new(
        now: Instant,
        request: Vec<u8>,
        transport: Transport,
        config: RetransmitConfig,
    ) -> Result<Self, StunError> {
        let msg = StunMessage::parse_with(
            &request,
            &crate::Limits {
                max_message_size: usize::MAX,
                max_attributes: usize::MAX,
            },
        )?;
        if msg.class() != Class::Request {
            return Err(StunError::NotRequest);
        }
        let (tid, method) = (msg.transaction_id(), msg.method());
        let (next_send, deadline) = match transport {
            Transport::Udp if config.max_transmissions > 1 => {
                (Some(now + config.rto), now + config.rto)
            }
            Transport::Udp => (None, now + config.rto * config.final_wait_multiplier),
            Transport::Reliable => (None, now + config.reliable_timeout),
        };
        Ok(Self {
            tid,
            method,
            request,
            transport,
            config,
            state: TransactionState::Pending,
            transmissions: 1,
            transmit_pending: true,
            interval: config.rto,
            next_send,
            deadline,
        })
    }

    /// The request's transaction id.
    pub fn transaction_id(&self) -> TransactionId {
        self.tid
    }

    /// The state.
    pub fn state(&self) -> TransactionState {
        self.state
    }

    /// How many transmissions have been due so far (1 at creation).
    pub fn transmissions(&self) -> u32 {
        self.transmissions
    }

    /// The request bytes.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// Appends the request to `out` if a (re)transmission is due; `true` if it did.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if !self.transmit_pending || self.state != TransactionState::Pending {
            return false;
        }
        self.transmit_pending = false;
        out.extend_from_slice(&self.request);
        true
    }

    /// When to call [`ClientTransaction::handle_timeout`] next; `None` once finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            TransactionState::Pending => Some(self.next_send.unwrap_or(self.deadline)),
            _ => None,
        }
    }

    /// Advances time: queues a retransmission that is due, or fails the transaction.
    /// Retransmission times follow the schedule from the first send, so a late call does not
    /// shift later ones; one call queues at most one retransmission.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state != TransactionState::Pending {
            return;
        }
        match self.next_send {
            Some(due) if now >= due => {
                // RFC 8489 §6.2.1: "the client SHOULD retransmit [...] after RTO ms, then
                // after 2*RTO [...] Retransmissions continue until a response is received, or
                // until a total of Rc requests have been sent."
                self.transmissions += 1;
                self.transmit_pending = true;
                self.interval = self.interval.saturating_mul(2);
                if self.transmissions < self.config.max_transmissions {
                    self.next_send = Some(due + self.interval);
                } else {
                    self.next_send = None;
                    self.deadline = due
                        + self
                            .config
                            .rto
                            .saturating_mul(self.config.final_wait_multiplier);
                }
            }
            Some(_) => {}
            None if now >= self.deadline => {
                self.state = TransactionState::TimedOut;
                self.transmit_pending = false;
            }
            None => {}
        }
    }

    /// Offers a received message: `true` if it is the response (success or error, same method
    /// and transaction id) that completes this transaction. RFC 8489 §6.3.3/§6.3.4: the
    /// client matches responses to requests by transaction id.
    pub fn handle_response(&mut self, msg: &StunMessage<'_>) -> bool {
        if self.state != TransactionState::Pending
            || !msg.class().is_response()
            || msg.transaction_id() != self.tid
            || msg.method() != self.method
        {
            return false;
        }
        self.state = TransactionState::Completed(msg.class());
        self.transmit_pending = false;
        true
    }

    /// The transport this transaction runs over.
    pub fn transport(&self) -> Transport {
        self.transport
    }
}
