//! The io_uring probe and the thread that calls it. In a binary of its own: the probe runs once
//! per process, and this test must be the one that runs it. The probe is io_uring's only; with
//! `RINGWIRE_DRIVER=epoll` it runs all the same (the variable picks drivers, not probes).

use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Every server start that may pick io_uring probes it first, on the caller's thread. The
/// kernel ties a ring to the task that set it up, and tearing the probe's ring down queues work
/// on that task with TWA_SIGNAL: a blocking call with a timeout that the caller was in at that
/// moment failed with EINTR (every time, in a read right after the probe). The probe now runs
/// on a thread of its own.
#[test]
fn probe_leaves_the_callers_blocking_calls_alone() {
    let (mut a, _b) = UnixStream::pair().unwrap();
    a.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let p = ringwire_runtime::probe_uring();
    let started = Instant::now();
    let err = a.read(&mut [0u8; 1]).unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "read after the probe (usable: {}, {}): {err:?}",
        p.usable,
        p.reason
    );
    assert!(started.elapsed() >= Duration::from_millis(90));
    // Asked again, the probe answers the same (once per process).
    let q = ringwire_runtime::probe_uring();
    assert_eq!((q.usable, q.reason), (p.usable, p.reason));
}
