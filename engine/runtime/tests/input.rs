//! The input hints of a plugin: [`ConnCtx::reserve_input`] (room for a record announced by its
//! header, made once) and [`ConnCtx::take_input`] (the record handed over as owned bytes,
//! without a copy when it sits in the connection's own buffer), and the input limit they leave
//! in force. On both drivers.
//!
//! A counting allocator records the largest single allocation of the process, so that a test
//! can check that a hint allocated nothing, and counts each thread's allocations past a
//! threshold the thread sets, so that the plugin (on the server's thread) sees how often a
//! large input buffer was allocated or grown for a record.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringwire_runtime::{
    Bytes, CloseReason, ConnCtx, CoreCtx, DriverChoice, Plugin, RuntimeConfig, ServerBuilder,
    ServerHandle,
};

/// The largest allocation (or reallocation) made so far, in bytes.
static PEAK: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Allocations and reallocations of at least this many bytes are counted, per thread.
    static LARGE: Cell<usize> = const { Cell::new(usize::MAX) };
    static LARGE_ALLOCS: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    PEAK.fetch_max(size, Ordering::Relaxed);
    if LARGE.try_with(Cell::get).is_ok_and(|large| size >= large) {
        let _ = LARGE_ALLOCS.try_with(|n| n.set(n.get() + 1));
    }
}

/// Count this thread's allocations of at least `size` bytes from now on; returns the count so
/// far.
fn count_large(size: usize) -> usize {
    LARGE.with(|l| l.set(size));
    large_allocs()
}

/// Allocations this thread made past its threshold so far.
fn large_allocs() -> usize {
    LARGE_ALLOCS.with(Cell::get)
}

struct Counting;

// SAFETY: every call is passed on unchanged to the system allocator; only sizes are recorded.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is, from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` came from the system allocator with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(
    taken_records_echo_byte_exact,
    reserve_makes_room_once,
    header_alone_reserves_little,
    reserve_past_the_limit_is_ignored,
    pause_and_close_mid_record,
    back_to_back_large_records_are_read_direct,
);

const MIB: usize = 1 << 20;

/// What the plugin saw, for the tests to check.
#[derive(Default)]
struct Seen {
    /// Per record that arrived over several reads: the allocations of at least a quarter of
    /// its size the server's thread made from its first read to its last.
    allocs: Vec<usize>,
    /// Per `on_data` call that left a record incomplete: the bytes it was given, and the
    /// allocations counted as in `allocs` since the record's first part arrived.
    progress: Vec<(usize, usize)>,
    closed: Vec<CloseReason>,
}

type Shared = Arc<Mutex<Seen>>;

/// Length-prefixed records (a 4-byte big-endian length, then that many bytes): it asks for room
/// for a whole record once the length is there, takes each complete record and echoes it
/// (prefix included) as the same bytes.
struct Records(Shared, Pauses);

/// Whether the plugin pauses reading in the middle of large records (and resumes 5 ms later):
/// the buffered part of the record is offered again on resume, and reading goes on into the
/// room reserved for the rest.
#[derive(Clone, Copy, PartialEq)]
enum Pauses {
    No,
    MidRecord,
}

/// Per connection: the record being gathered (its length), and the thread's count of large
/// allocations when its first part arrived (see [`Seen::allocs`]).
#[derive(Default)]
struct Gathering {
    need: usize,
    allocs_before: Option<usize>,
    /// With [`Pauses::MidRecord`]: the input length at which reading pauses next.
    pause_at: usize,
}

impl Plugin for Records {
    type Conn = Gathering;

    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<Gathering> {
        Some(Gathering::default())
    }

    fn on_data(&mut self, g: &mut Gathering, cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        let Some(len) = data.first_chunk::<4>() else {
            return 0;
        };
        let need = 4 + u32::from_be_bytes(*len) as usize;
        if data.len() >= need {
            cx.take_input(need);
            if let Some(before) = g.allocs_before.filter(|_| g.need == need) {
                let n = large_allocs() - before;
                self.0.lock().unwrap().allocs.push(n);
            }
            *g = Gathering::default();
            return 0;
        }
        if g.need != need {
            *g = Gathering {
                need,
                allocs_before: Some(count_large(need / 4)),
                pause_at: MIB / 4,
            };
        }
        let allocs = large_allocs() - g.allocs_before.unwrap_or(0);
        self.0.lock().unwrap().progress.push((data.len(), allocs));
        cx.reserve_input(need);
        if self.1 == Pauses::MidRecord && need > MIB / 2 && data.len() >= g.pause_at {
            g.pause_at = data.len() + 300_000;
            cx.pause_reading();
            cx.set_timer(Duration::from_millis(5), 1);
        }
        0
    }

    fn on_timer(&mut self, _g: &mut Gathering, cx: &mut ConnCtx<'_>, _token: u64) {
        cx.resume_reading();
    }

    fn on_owned_data(&mut self, _g: &mut Gathering, cx: &mut ConnCtx<'_>, data: Bytes) {
        let _ = cx.send(data);
    }

    fn on_close(&mut self, _g: Gathering, _cx: &mut CoreCtx<'_>, reason: CloseReason) {
        self.0.lock().unwrap().closed.push(reason);
    }
}

fn start(d: DriverChoice, max_in: usize) -> (ServerHandle, SocketAddr, Shared) {
    start_with(d, max_in, Pauses::No)
}

fn start_with(d: DriverChoice, max_in: usize, p: Pauses) -> (ServerHandle, SocketAddr, Shared) {
    let seen: Shared = Arc::default();
    let s = seen.clone();
    let cfg = RuntimeConfig {
        driver: d,
        threads: 1,
        max_in_buffer: max_in,
        shutdown_timeout: Duration::from_secs(5),
        ..RuntimeConfig::default()
    };
    let mut b = ServerBuilder::new(cfg);
    b.tcp("127.0.0.1:0".parse().unwrap());
    let server = b
        .start(move |_| Records(s.clone(), p))
        .expect("server starts");
    let addr = server.local_addrs()[0];
    (server, addr, seen)
}

fn connect(a: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(a).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn record(len: usize, seed: u8) -> Vec<u8> {
    let mut v = (len as u32).to_be_bytes().to_vec();
    v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    v
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Records of every size, written back to back in small and large writes (so records share
/// reads, and a taken record has the next one's start behind it), come back byte for byte.
fn taken_records_echo_byte_exact(d: DriverChoice) {
    let (_server, addr, _seen) = start(d, 16 * MIB);
    let mut s = connect(addr);
    let sizes = [
        0,
        1,
        100,
        20_000,
        MIB,
        70_000,
        MIB,
        MIB,
        3,
        4 * MIB,
        65_536,
        17,
    ];
    let data: Vec<u8> = sizes
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| record(n, i as u8))
        .collect();
    let mut w = s.try_clone().unwrap();
    let out = data.clone();
    let writer = std::thread::spawn(move || {
        // Uneven writes: some end inside a length prefix, some inside a record.
        for chunk in out.chunks(300_007) {
            w.write_all(chunk).unwrap();
        }
    });
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).expect("echo arrives");
    writer.join().unwrap();
    assert!(got == data, "echo differs");
}

/// A large record announced by its length is gathered in one buffer, allocated once (when a
/// sixteenth of it is there), not grown read by read to its size.
fn reserve_makes_room_once(d: DriverChoice) {
    let (_server, addr, seen) = start(d, 16 * MIB);
    let mut s = connect(addr);
    for (i, n) in [MIB, 4 * MIB, 2 * MIB + 5].into_iter().enumerate() {
        let data = record(n, i as u8);
        let mut w = s.try_clone().unwrap();
        let out = data.clone();
        let writer = std::thread::spawn(move || {
            for chunk in out.chunks(16 * 1024) {
                w.write_all(chunk).unwrap();
            }
        });
        let mut got = vec![0u8; data.len()];
        s.read_exact(&mut got).expect("echo arrives");
        writer.join().unwrap();
        assert!(got == data, "echo of {n} bytes differs");
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.allocs, [1, 1, 1], "large allocations per record");
}

/// A length announced but not yet backed by a sixteenth of its bytes reserves nothing large;
/// once they are there, the room is made.
fn header_alone_reserves_little(d: DriverChoice) {
    let (_server, addr, seen) = start(d, 16 * MIB);
    let mut s = connect(addr);
    let claim = 12 * MIB;
    let mut head = (claim as u32).to_be_bytes().to_vec();
    head.extend(std::iter::repeat_n(7u8, 100));
    s.write_all(&head).unwrap();
    wait_for("the header", || !seen.lock().unwrap().progress.is_empty());
    let ahead = claim / 16;
    s.write_all(&vec![7u8; ahead]).unwrap();
    let total = head.len() + ahead;
    wait_for("a sixteenth", || {
        seen.lock().unwrap().progress.last().unwrap().0 == total
    });
    // One more byte: the call it brings sees what the runtime did after the last one.
    s.write_all(&[7]).unwrap();
    wait_for("one more", || {
        seen.lock().unwrap().progress.last().unwrap().0 == total + 1
    });
    let seen = seen.lock().unwrap();
    // Each entry shows the allocations made after the calls before it.
    for w in seen.progress.windows(2) {
        let ((before, _), (_, allocs)) = (w[0], w[1]);
        if before < ahead {
            assert_eq!(allocs, 0, "room made with {before} of {claim} bytes there");
        }
    }
    assert_eq!(seen.progress.last().unwrap().1, 1, "room made once");
}

/// A length past `max_in_buffer` reserves nothing; the connection is aborted once the input
/// really passes the limit.
fn reserve_past_the_limit_is_ignored(d: DriverChoice) {
    let (_server, addr, seen) = start(d, MIB);
    let mut s = connect(addr);
    let claim = 256 * MIB;
    let mut head = (claim as u32).to_be_bytes().to_vec();
    head.extend(std::iter::repeat_n(7u8, 200_000));
    s.write_all(&head).unwrap();
    // Give the server time to act on the hint, then check it allocated nothing of the sort.
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut b = [0u8; 1];
    assert!(
        s.read(&mut b).is_err(),
        "nothing comes back, the connection stays"
    );
    assert!(
        PEAK.load(Ordering::Relaxed) < claim,
        "{} bytes allocated for a record past the limit",
        PEAK.load(Ordering::Relaxed)
    );
    assert!(seen.lock().unwrap().closed.is_empty());
    // One byte past the limit: aborted.
    let _ = s.write_all(&vec![7u8; MIB + 1 - head.len()]);
    wait_for("abort", || !seen.lock().unwrap().closed.is_empty());
    assert_eq!(seen.lock().unwrap().closed[0], CloseReason::InputOverflow);
}

/// Reading paused and resumed in the middle of large records: records still echo byte for
/// byte; connections that close or reset in the middle of a large record are cleaned up and
/// the server goes on.
fn pause_and_close_mid_record(d: DriverChoice) {
    let (server, addr, seen) = start_with(d, 16 * MIB, Pauses::MidRecord);
    let mut s = connect(addr);
    for (i, n) in [2 * MIB, 70_000, 4 * MIB + 3].into_iter().enumerate() {
        let data = record(n, i as u8);
        let mut w = s.try_clone().unwrap();
        let out = data.clone();
        let writer = std::thread::spawn(move || {
            for chunk in out.chunks(100_003) {
                w.write_all(chunk).unwrap();
            }
        });
        let mut got = vec![0u8; data.len()];
        s.read_exact(&mut got).expect("echo arrives");
        writer.join().unwrap();
        assert!(got == data, "echo of {n} bytes differs");
    }
    // Half of a large record, then a close (FIN) or a reset (linger 0), on fresh connections.
    for reset in [false, true] {
        let c = connect(addr);
        let data = record(4 * MIB, 9);
        (&c).write_all(&data[..2 * MIB]).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        if reset {
            socket2::SockRef::from(&c)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        }
        drop(c);
    }
    wait_for("both closed", || seen.lock().unwrap().closed.len() >= 2);
    // Still serving.
    let data = record(MIB, 3);
    s.write_all(&data).unwrap();
    let mut got = vec![0u8; data.len()];
    s.read_exact(&mut got).expect("echo arrives");
    assert!(got == data);
    // Both drivers read most of the large records' bytes straight into their reserved room
    // (io_uring swaps its multishot receive into provided buffers for one into the room).
    wait_for("stats", || {
        server
            .stats()
            .iter()
            .map(|c| c.direct_bytes_in)
            .sum::<u64>()
            > (4 * MIB) as u64
    });
    drop(s);
    drop(server);
}

/// Large records sent back to back, each written at once (so most of it is in the socket
/// before the server sees its header), as an echo benchmark sends them: all but a small part
/// of each is read straight into its room, not copied out of the driver's receive buffers.
/// (io_uring: a connection that reads large records starts each with a one-shot receive
/// instead of the multishot one, which copies up to 32 provided buffers per wake-up.) Small
/// records after them still echo.
fn back_to_back_large_records_are_read_direct(d: DriverChoice) {
    let (server, addr, _seen) = start(d, 16 * MIB);
    let mut s = connect(addr);
    let rounds = 12;
    for i in 0..rounds {
        let data = record(MIB, i as u8);
        s.write_all(&data).unwrap();
        let mut got = vec![0u8; data.len()];
        s.read_exact(&mut got).expect("echo arrives");
        assert!(got == data, "echo {i} differs");
    }
    for i in 0..50u8 {
        let data = record(100, i);
        s.write_all(&data).unwrap();
        let mut got = vec![0u8; data.len()];
        s.read_exact(&mut got).expect("small echo arrives");
        assert!(got == data, "small echo {i} differs");
    }
    let (mut total, mut direct) = (0, 0);
    wait_for("stats", || {
        let st = server.stats();
        total = st.iter().map(|c| c.bytes_in).sum::<u64>();
        direct = st.iter().map(|c| c.direct_bytes_in).sum::<u64>();
        total >= (rounds * MIB) as u64
    });
    // The first record may come in through the receive buffers entirely; of the others, each
    // may copy its first sixteenth (input is not reserved far ahead of what arrived) and the
    // buffer that carried its header: 83-94% measured on both drivers; 44% on io_uring while
    // every record started on the multishot receive.
    assert!(
        direct * 10 >= total * 7,
        "{direct} of {total} bytes read directly"
    );
    drop(s);
    drop(server);
}
