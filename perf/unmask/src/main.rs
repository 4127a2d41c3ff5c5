//! Unmask throughput of `ringwire_ws::mask`, beside plain memcpy.
//!
//! For buffers of 1 KiB, 64 KiB and 1 MiB, times every masking path the crate
//! exposes: the byte loop (`mask_scalar`, the reference), portable 64-bit words
//! (`mask_words`), SSE2 (`mask_sse2`), AVX2 (`mask_avx2`), the run-time
//! dispatch the codec uses (`apply_mask`), and `copy_from_slice` (memcpy) of
//! the same number of bytes into a second buffer. Each run masks the same
//! buffer in place over and over for about `--ms` milliseconds (the repeat
//! count is calibrated once per cell); the figure is the best of `--runs`
//! runs, in GB/s (10^9 payload bytes per second). Masking is in place (read + write of the same bytes); memcpy reads
//! one buffer and writes another.
//!
//! ```text
//! cargo run --release -- [--runs 9] [--ms 20] [--offset 0]
//! ```
//!
//! Before timing, every path is checked against `mask_scalar`.

use std::hint::black_box;
use std::process::exit;
use std::time::{Duration, Instant};

use ringwire_ws::mask;

const USAGE: &str = "usage: ringwire-perf-unmask [--runs N] [--ms T] [--offset K]\n  \
N timed runs per cell (best kept), each about T milliseconds long, buffer start K bytes \
past a 64-byte boundary";

const SIZES: [(usize, &str); 3] = [(1 << 10, "1 KiB"), (64 << 10, "64 KiB"), (1 << 20, "1 MiB")];
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

struct Args {
    runs: usize,
    ms: usize,
    offset: usize,
}

fn die(msg: &str) -> ! {
    eprintln!("ringwire-perf-unmask: {msg}\n{USAGE}");
    exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        runs: 9,
        ms: 20,
        offset: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{USAGE}");
            exit(0);
        }
        let Some(val) = it.next() else {
            die(&format!("missing value for {flag}"));
        };
        let n: usize = val
            .parse()
            .unwrap_or_else(|_| die(&format!("bad value for {flag}")));
        match flag.as_str() {
            "--runs" => args.runs = n,
            "--ms" => args.ms = n,
            "--offset" => args.offset = n,
            _ => die(&format!("unknown flag {flag}")),
        }
    }
    if args.runs == 0 || args.ms == 0 || args.offset > 63 {
        die("--runs and --ms must be >= 1, --offset in 0..=63");
    }
    args
}

type MaskFn = fn(&mut [u8], [u8; 4]);

enum Kind {
    Mask(MaskFn),
    Memcpy,
}

struct Path {
    name: &'static str,
    kind: Kind,
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 3)) as u8)
        .collect()
}

/// Calls the path `reps` times on `buf` (`src` is memcpy's source); returns
/// the time taken.
fn run(path: &Path, buf: &mut [u8], src: &[u8], reps: usize) -> Duration {
    let t0 = Instant::now();
    match path.kind {
        Kind::Mask(f) => {
            for _ in 0..reps {
                f(black_box(&mut *buf), black_box(KEY));
            }
        }
        Kind::Memcpy => {
            for _ in 0..reps {
                black_box(&mut *buf).copy_from_slice(black_box(src));
            }
        }
    }
    black_box(&mut *buf);
    t0.elapsed()
}

/// Best (shortest) of `runs` runs of about `ms` milliseconds each; returns
/// GB/s.
fn measure(path: &Path, len: usize, offset: usize, ms: usize, runs: usize) -> f64 {
    // Over-allocate so the buffer can start `offset` bytes past a 64-byte
    // boundary whatever the allocator returned.
    let mut backing = vec![0u8; len + 128];
    let skew = (64 - (backing.as_ptr() as usize % 64)) % 64 + offset;
    let buf = &mut backing[skew..skew + len];
    buf.copy_from_slice(&pattern(len));
    let src = pattern(len);
    // Calibrate (and warm caches and the CPU): grow the repeat count until a
    // run takes at least a tenth of the target, then scale to the target.
    let target = Duration::from_millis(ms as u64);
    let mut reps = 1usize;
    let mut t = run(path, buf, &src, reps);
    while t < target / 10 {
        reps *= 4;
        t = run(path, buf, &src, reps);
    }
    let per_call = t.as_secs_f64() / reps as f64;
    let reps = ((target.as_secs_f64() / per_call) as usize).max(1);
    let mut best = Duration::MAX;
    for _ in 0..runs {
        best = best.min(run(path, buf, &src, reps));
    }
    (len * reps) as f64 / best.as_secs_f64() / 1e9
}

/// Every masking path must agree with the byte loop, at every size measured
/// and at the odd lengths around them.
fn check(paths: &[Path]) {
    for &(len, _) in &SIZES {
        for l in [len, len - 1, len + 3] {
            let mut want = pattern(l);
            mask::mask_scalar(&mut want, KEY);
            for p in paths {
                if let Kind::Mask(f) = p.kind {
                    let mut got = pattern(l);
                    f(&mut got, KEY);
                    if got != want {
                        eprintln!(
                            "ringwire-perf-unmask: FAIL: {} differs from mask_scalar at len {l}",
                            p.name
                        );
                        exit(1);
                    }
                }
            }
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

fn main() {
    let args = parse_args();
    #[cfg(target_arch = "x86_64")]
    let (sse2, avx2) = (
        std::is_x86_feature_detected!("sse2"),
        std::is_x86_feature_detected!("avx2"),
    );
    #[cfg(not(target_arch = "x86_64"))]
    let (sse2, avx2) = (false, false);

    let paths = [
        Path {
            name: "byte loop (mask_scalar)",
            kind: Kind::Mask(mask::mask_scalar),
        },
        Path {
            name: "u64 words (mask_words)",
            kind: Kind::Mask(mask::mask_words),
        },
        Path {
            name: if sse2 {
                "SSE2 (mask_sse2)"
            } else {
                "SSE2 (mask_sse2) = words, no SSE2"
            },
            kind: Kind::Mask(mask::mask_sse2),
        },
        Path {
            name: if avx2 {
                "AVX2 (mask_avx2)"
            } else {
                "AVX2 (mask_avx2) = words, no AVX2"
            },
            kind: Kind::Mask(mask::mask_avx2),
        },
        Path {
            name: "dispatch (apply_mask)",
            kind: Kind::Mask(mask::apply_mask),
        },
        Path {
            name: "memcpy (copy_from_slice)",
            kind: Kind::Memcpy,
        },
    ];
    check(&paths);

    println!(
        "unmask throughput, GB/s (10^9 B/s), best of {} runs of ~{} ms each; buffer start {} B past a 64-byte boundary",
        args.runs, args.ms, args.offset
    );
    println!(
        "cpu: {} (sse2={sse2}, avx2={avx2}); {}",
        cpu_model(),
        if cfg!(target_feature = "avx2") {
            "built with avx2 enabled"
        } else {
            "generic x86-64 build, SIMD chosen at run time"
        }
    );
    println!();
    let w = paths.iter().map(|p| p.name.len()).max().unwrap_or(10);
    print!("| {:w$} |", "path");
    for (_, label) in SIZES {
        print!(" {label:>8} |");
    }
    println!();
    print!("|{}|", "-".repeat(w + 2));
    for _ in SIZES {
        print!("{}:|", "-".repeat(9));
    }
    println!();
    for p in &paths {
        print!("| {:w$} |", p.name);
        for (len, _) in SIZES {
            let gbps = measure(p, len, args.offset, args.ms, args.runs);
            print!(" {gbps:>8.2} |");
        }
        println!();
    }
}
