//! The cross-core bus: one inbox per core, woken through the core's driver.
//!
//! Posting pushes onto the target core's channel and wakes it only when it may be asleep
//! (a `notified` flag swapped per wake-up, not per message). A broadcast hands every core the
//! same refcounted [`Bytes`]: nothing is copied per receiver.
//!
//! The bus is for control and fan-out traffic, not for the per-message path of one connection,
//! which never leaves its core.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// A message between cores.
#[derive(Clone)]
pub struct BusMessage {
    /// The core that posted it (`usize::MAX` for the server handle).
    pub from: usize,
    /// A tag the plugin chooses (a topic, a kind).
    pub tag: u64,
    /// The payload, shared between receivers.
    pub data: Bytes,
    /// Optional structured payload, shared between receivers.
    pub extra: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for BusMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusMessage")
            .field("from", &self.from)
            .field("tag", &self.tag)
            .field("data_len", &self.data.len())
            .field("extra", &self.extra.is_some())
            .finish()
    }
}

/// What a core's inbox carries.
pub(crate) enum Envelope {
    /// A plugin message.
    User(BusMessage),
    /// Begin graceful shutdown.
    Stop,
}

/// How a core is woken: set by the driver when the core starts.
pub(crate) trait Wake: Send + Sync {
    fn wake(&self);
}

/// The sending half of one core's inbox.
pub(crate) struct Inbox {
    tx: Mutex<Option<Sender<Envelope>>>,
    notified: AtomicBool,
    waker: Mutex<Option<Arc<dyn Wake>>>,
}

impl Inbox {
    fn post(&self, env: Envelope) -> bool {
        // The mutex guards only the Sender clone handed out once per core (see `BusSender`);
        // posting from a cached sender takes no lock.
        let sent = match self.tx.lock() {
            Ok(g) => match g.as_ref() {
                Some(tx) => tx.send(env).is_ok(),
                None => false,
            },
            Err(_) => false,
        };
        if sent {
            self.wake();
        }
        sent
    }

    fn wake(&self) {
        if !self.notified.swap(true, Ordering::AcqRel)
            && let Ok(g) = self.waker.lock()
            && let Some(w) = g.as_ref()
        {
            w.wake();
        }
    }
}

/// All cores' inboxes; shared by the cores and the server handle.
pub(crate) struct Bus {
    inboxes: Vec<Inbox>,
}

impl Bus {
    /// A bus for `n` cores, with the receiving halves to hand to each core.
    pub(crate) fn new(n: usize) -> (Arc<Bus>, Vec<Receiver<Envelope>>) {
        let mut inboxes = Vec::with_capacity(n);
        let mut rxs = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = channel();
            inboxes.push(Inbox {
                tx: Mutex::new(Some(tx)),
                notified: AtomicBool::new(false),
                waker: Mutex::new(None),
            });
            rxs.push(rx);
        }
        (Arc::new(Bus { inboxes }), rxs)
    }

    pub(crate) fn cores(&self) -> usize {
        self.inboxes.len()
    }

    pub(crate) fn set_waker(&self, core: usize, w: Arc<dyn Wake>) {
        if let Some(ib) = self.inboxes.get(core)
            && let Ok(mut g) = ib.waker.lock()
        {
            *g = Some(w);
        }
        // A message posted before the waker existed must not be lost.
        if let Some(ib) = self.inboxes.get(core) {
            ib.notified.store(false, Ordering::Release);
            ib.wake();
        }
    }

    /// Called by a core before it drains its inbox, so a post racing with the drain wakes it again.
    pub(crate) fn clear_notified(&self, core: usize) {
        if let Some(ib) = self.inboxes.get(core) {
            ib.notified.store(false, Ordering::Release);
        }
    }

    pub(crate) fn post(&self, core: usize, env: Envelope) -> bool {
        self.inboxes.get(core).is_some_and(|ib| ib.post(env))
    }

    /// A per-core sending handle that posts without taking the inbox mutex.
    pub(crate) fn sender(self: &Arc<Self>) -> BusSender {
        let txs = self
            .inboxes
            .iter()
            .map(|ib| ib.tx.lock().ok().and_then(|g| g.clone()))
            .collect();
        BusSender {
            bus: self.clone(),
            txs,
        }
    }
}

/// A core's cached senders to every inbox.
pub(crate) struct BusSender {
    bus: Arc<Bus>,
    txs: Vec<Option<Sender<Envelope>>>,
}

impl BusSender {
    pub(crate) fn cores(&self) -> usize {
        self.txs.len()
    }

    pub(crate) fn post(&self, core: usize, env: Envelope) -> bool {
        let ok = matches!(self.txs.get(core), Some(Some(tx)) if tx.send(env).is_ok());
        if ok && let Some(ib) = self.bus.inboxes.get(core) {
            ib.wake();
        }
        ok
    }
}
