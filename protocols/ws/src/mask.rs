//! Payload masking (RFC 6455 §5.3).
//!
//! "The masking does not affect the length of the payload data. To convert masked data into
//! unmasked data, or vice versa, the following algorithm is applied. [...] Octet i of the
//! transformed data is the XOR of octet i of the original data with octet at index i modulo 4
//! of the masking key."
//!
//! Three implementations, all safe to call: [`mask_scalar`] (the byte loop, the reference),
//! [`mask_words`] (portable 64-bit words, research/crates.md §7: ~90 % of AVX2) and the SSE2 /
//! AVX2 paths in the `simd` submodule, picked at run time by [`apply_mask`]. Every one is tested
//! against [`mask_scalar`] at lengths 0..=1100, every key phase and every start offset.

#[cfg(target_arch = "x86_64")]
mod simd;

/// Below this length the word loop beats setting up a vector path.
const SIMD_MIN_LEN: usize = 64;

/// XORs `buf` with `key`, `buf[0]` being payload byte 0. Applying it twice is the identity.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_at(buf, key, 0);
}

/// XORs `buf` with `key` where `buf[0]` is payload byte number `offset` (so the key phase is
/// `offset % 4`). Used to unmask a frame that arrives in pieces.
pub fn apply_mask_at(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    #[cfg(target_arch = "x86_64")]
    {
        if buf.len() >= SIMD_MIN_LEN && simd::mask_best(buf, key) {
            return;
        }
    }
    mask_words(buf, key);
}

/// The key as seen from payload byte `offset`: rotated left by `offset % 4`.
pub fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let k = u32::from_be_bytes(key);
    // `offset % 4` is at most 3, so the shift is at most 24.
    let r = ((offset % 4) as u32) * 8;
    k.rotate_left(r).to_be_bytes()
}

/// The reference implementation: one byte at a time.
pub fn mask_scalar(buf: &mut [u8], key: [u8; 4]) {
    for (b, k) in buf.iter_mut().zip(key.iter().cycle()) {
        *b ^= k;
    }
}

/// Portable 64-bit-word masking; the default where no vector path is chosen.
pub fn mask_words(buf: &mut [u8], key: [u8; 4]) {
    let [a, b, c, d] = key;
    let k = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        if let Ok(bytes) = <[u8; 8]>::try_from(&*chunk) {
            chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ k).to_ne_bytes());
        }
    }
    // 8 is a multiple of 4, so the key phase of the tail is unchanged.
    mask_scalar(chunks.into_remainder(), key);
}

/// The SSE2 path when the CPU has SSE2 (x86_64 only); falls back to [`mask_words`] otherwise.
/// Public for the differential tests and benchmarks; [`apply_mask`] picks the best path.
pub fn mask_sse2(buf: &mut [u8], key: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    {
        if simd::mask_sse2(buf, key) {
            return;
        }
    }
    mask_words(buf, key);
}

/// The AVX2 path when the CPU has AVX2 (x86_64 only); falls back to [`mask_words`] otherwise.
/// Public for the differential tests and benchmarks; [`apply_mask`] picks the best path.
pub fn mask_avx2(buf: &mut [u8], key: [u8; 4]) {
    #[cfg(target_arch = "x86_64")]
    {
        if simd::mask_avx2(buf, key) {
            return;
        }
    }
    mask_words(buf, key);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 3)) as u8)
            .collect()
    }

    type MaskFn = fn(&mut [u8], [u8; 4]);

    /// Every implementation against the scalar reference at lengths 0..=1100, every key phase
    /// (0..4) and every start offset inside an 8-byte-aligned buffer (0..8).
    #[test]
    fn differential_against_scalar() {
        let impls: [(&str, MaskFn); 4] = [
            ("words", mask_words),
            ("sse2", mask_sse2),
            ("avx2", mask_avx2),
            ("dispatch", apply_mask),
        ];
        let key = [0x37, 0xfa, 0x21, 0x3d];
        let base = pattern(1100 + 8);
        for len in 0..=1100 {
            for phase in 0..4 {
                let k = rotate_key(key, phase);
                for start in 0..8 {
                    let mut want = base.clone();
                    if let Some(s) = want.get_mut(start..start + len) {
                        mask_scalar(s, k);
                    }
                    for (name, f) in impls {
                        let mut got = base.clone();
                        f(&mut got[start..start + len], k);
                        assert_eq!(got, want, "{name} len={len} phase={phase} start={start}");
                    }
                }
            }
        }
    }

    #[test]
    fn apply_mask_at_matches_whole() {
        let key = [1, 2, 3, 4];
        let data = pattern(300);
        let mut whole = data.clone();
        apply_mask(&mut whole, key);
        for split in 0..300 {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(split);
            apply_mask_at(a, key, 0);
            apply_mask_at(b, key, split);
            assert_eq!(parts, whole, "split={split}");
        }
    }

    #[test]
    fn mask_twice_is_identity() {
        let data = pattern(1000);
        let mut buf = data.clone();
        apply_mask(&mut buf, [9, 8, 7, 6]);
        assert_ne!(buf, data);
        apply_mask(&mut buf, [9, 8, 7, 6]);
        assert_eq!(buf, data);
    }
}
