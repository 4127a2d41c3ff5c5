//! `ServerHandle::publisher`: posting to the cores from other threads, on both drivers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ringwire_runtime::{
    BusMessage, ConnCtx, CoreCtx, DriverChoice, Plugin, RuntimeConfig, ServerBuilder,
};

macro_rules! both_drivers {
    ($($name:ident),* $(,)?) => {
        mod uring { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Uring) } )* }
        mod epoll { $( #[test] fn $name() { super::$name(ringwire_runtime::DriverChoice::Epoll) } )* }
    };
}

both_drivers!(publisher_reaches_every_core_from_many_threads);

struct Count {
    core: usize,
    /// Sum of (core + 1) * payload value, per message seen.
    sum: Arc<AtomicU64>,
    n: Arc<AtomicU64>,
}

impl Plugin for Count {
    type Conn = ();
    fn on_open(&mut self, _cx: &mut ConnCtx<'_>) -> Option<()> {
        Some(())
    }
    fn on_data(&mut self, _: &mut (), _cx: &mut ConnCtx<'_>, data: &mut [u8]) -> usize {
        data.len()
    }
    fn on_message(&mut self, _cx: &mut CoreCtx<'_>, msg: &BusMessage) {
        assert_eq!(msg.from, usize::MAX);
        let v = u64::from_le_bytes(msg.data[..8].try_into().unwrap());
        self.sum
            .fetch_add((self.core as u64 + 1) * v * msg.tag, Ordering::Relaxed);
        self.n.fetch_add(1, Ordering::Relaxed);
    }
}

fn publisher_reaches_every_core_from_many_threads(d: DriverChoice) {
    let (sum, n) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut b = ServerBuilder::new(RuntimeConfig {
        driver: d,
        threads: 2,
        ..RuntimeConfig::default()
    });
    b.tcp("127.0.0.1:0".parse().unwrap());
    let (s2, n2) = (sum.clone(), n.clone());
    let srv = b
        .start(move |core| Count {
            core,
            sum: s2.clone(),
            n: n2.clone(),
        })
        .unwrap();
    let p = srv.publisher();
    assert_eq!(p.cores(), 2);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let p = p.clone();
            std::thread::spawn(move || {
                for i in 0..250u64 {
                    let v = (t * 1000 + i).to_le_bytes().to_vec();
                    if i % 2 == 0 {
                        assert_eq!(p.broadcast(1, v.into()), 2);
                    } else {
                        assert!(p.post((i % 4 / 2) as usize, 1, v.into()));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(!p.post(7, 1, vec![0; 8].into()), "no such core");
    // Expected: broadcasts count on both cores (weights 1 + 2), posts on core 0 (i%4==1) or 1.
    let mut want = 0u64;
    let mut msgs = 0u64;
    for t in 0..4u64 {
        for i in 0..250u64 {
            let v = t * 1000 + i;
            if i % 2 == 0 {
                want += 3 * v;
                msgs += 2;
            } else {
                want += ((i % 4 / 2) + 1) * v;
                msgs += 1;
            }
        }
    }
    let t0 = Instant::now();
    while n.load(Ordering::Relaxed) < msgs && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(n.load(Ordering::Relaxed), msgs);
    assert_eq!(sum.load(Ordering::Relaxed), want);
    srv.stop();
    srv.join();
    assert_eq!(
        p.broadcast(1, vec![0; 8].into()),
        0,
        "stopped cores take nothing"
    );
}
