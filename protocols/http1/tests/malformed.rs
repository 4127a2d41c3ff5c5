//! Hostile input never panics: every truncation of every vector stream and
//! thousands of bit-flipped variants give `Err` or events, and the events do
//! not depend on how the bytes were split (checked by `fuzz_check`).

mod common;

use common::{Split, drive, list, load};
use ringwire_http1::{Config, fuzz_check};

fn streams() -> Vec<(String, Config, Vec<u8>)> {
    let mut all = Vec::new();
    for dir in ["rfc9112", "rfc9110", "rfc6455", "rfc7540", "regress"] {
        for name in list(dir) {
            let v = load(&name);
            all.push((name, v.config, v.request));
        }
    }
    // One long pipelined stream mixing every body kind.
    let mut mixed = Vec::new();
    for (_, _, r) in &all {
        if !r.windows(5).any(|w| w == b"close") && !r.starts_with(b"CONNECT") {
            mixed.extend_from_slice(r);
        }
    }
    all.push(("mixed".to_owned(), Config::default(), mixed));
    all
}

#[test]
fn every_truncation_prefix_is_err_or_events_and_split_independent() {
    for (name, cfg, bytes) in streams() {
        if bytes.len() > 600 {
            continue; // the mixed stream is covered by the bit flips
        }
        for cut in 0..=bytes.len() {
            let prefix = &bytes[..cut];
            let (whole, _) = drive(cfg, prefix, Split::Whole);
            let (bytewise, _) = drive(cfg, prefix, Split::Bytewise);
            assert_eq!(whole, bytewise, "{name} cut at {cut}");
        }
    }
}

/// `default`, or `HTTP1_FUZZ_ITERS` for a longer local soak.
fn iters(default: usize) -> usize {
    std::env::var("HTTP1_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_bit_flips_never_panic_and_agree_across_splits() {
    let iters = iters(200);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (_, _, bytes) in streams() {
        if bytes.is_empty() {
            continue;
        }
        fuzz_check(&bytes);
        for _ in 0..iters {
            let mut m = bytes.clone();
            for _ in 0..=rng.below(3) {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            fuzz_check(&m);
        }
    }
}

#[test]
fn random_byte_edits_never_panic() {
    // Insertions and deletions shift framing in ways bit flips do not.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let specials = [b'\r', b'\n', b' ', b'\t', b':', b';', b'0', b'f', 0, 0xff];
    for (_, _, bytes) in streams() {
        for _ in 0..iters(50) {
            let mut m = bytes.clone();
            for _ in 0..=rng.below(4) {
                let i = rng.below(m.len() + 1);
                if rng.below(2) == 0 || m.is_empty() {
                    m.insert(i, specials[rng.below(specials.len())]);
                } else {
                    m.remove(i.min(m.len() - 1));
                }
            }
            fuzz_check(&m);
        }
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(7);
    for len in [0, 1, 2, 7, 64, 300, 2000] {
        for _ in 0..20 {
            let g: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            fuzz_check(&g);
        }
    }
}
