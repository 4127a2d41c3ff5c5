//! SSE2 and AVX2 masking, chosen at run time. The only module of the crate with `unsafe`.
//!
//! Each path XORs whole 16- or 32-byte chunks with a splatted key and hands the tail to the
//! portable word loop; the chunk length is a multiple of 4, so the tail keeps the key phase.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m128i, __m256i, _mm_loadu_si128, _mm_set1_epi32, _mm_storeu_si128, _mm_xor_si128,
    _mm256_loadu_si256, _mm256_set1_epi32, _mm256_storeu_si256, _mm256_xor_si256,
};

/// Masks with the best path this CPU has. Returns false if it has neither SSE2 nor AVX2.
pub(super) fn mask_best(buf: &mut [u8], key: [u8; 4]) -> bool {
    mask_avx2(buf, key) || mask_sse2(buf, key)
}

/// Masks `buf` with AVX2 if the CPU has it; returns false (buffer untouched) if not.
pub(super) fn mask_avx2(buf: &mut [u8], key: [u8; 4]) -> bool {
    if !std::is_x86_feature_detected!("avx2") {
        return false;
    }
    // SAFETY: `mask_avx2_impl` needs AVX2, and the CPU reported AVX2 just above.
    unsafe { mask_avx2_impl(buf, key) };
    true
}

/// Masks `buf` with SSE2 if the CPU has it; returns false (buffer untouched) if not.
pub(super) fn mask_sse2(buf: &mut [u8], key: [u8; 4]) -> bool {
    if !std::is_x86_feature_detected!("sse2") {
        return false;
    }
    // SAFETY: `mask_sse2_impl` needs SSE2, and the CPU reported SSE2 just above.
    unsafe { mask_sse2_impl(buf, key) };
    true
}

#[target_feature(enable = "avx2")]
fn mask_avx2_impl(buf: &mut [u8], key: [u8; 4]) {
    let k = _mm256_set1_epi32(i32::from_ne_bytes(key));
    let mut chunks = buf.chunks_exact_mut(32);
    for chunk in &mut chunks {
        let p = chunk.as_mut_ptr().cast::<__m256i>();
        // SAFETY: `chunk` is exactly 32 bytes of a live `&mut [u8]`, so `p` is valid for an
        // unaligned 32-byte read and write (loadu/storeu need no alignment), and nothing else
        // aliases it while the exclusive borrow lasts.
        let v = unsafe { _mm256_loadu_si256(p) };
        let x = _mm256_xor_si256(v, k);
        // SAFETY: as above: `p` points at 32 writable bytes owned by `chunk`.
        unsafe { _mm256_storeu_si256(p, x) };
    }
    super::mask_words(chunks.into_remainder(), key);
}

#[target_feature(enable = "sse2")]
fn mask_sse2_impl(buf: &mut [u8], key: [u8; 4]) {
    let k = _mm_set1_epi32(i32::from_ne_bytes(key));
    let mut chunks = buf.chunks_exact_mut(16);
    for chunk in &mut chunks {
        let p = chunk.as_mut_ptr().cast::<__m128i>();
        // SAFETY: `chunk` is exactly 16 bytes of a live `&mut [u8]`, so `p` is valid for an
        // unaligned 16-byte read and write (loadu/storeu need no alignment), and nothing else
        // aliases it while the exclusive borrow lasts.
        let v = unsafe { _mm_loadu_si128(p) };
        let x = _mm_xor_si128(v, k);
        // SAFETY: as above: `p` points at 16 writable bytes owned by `chunk`.
        unsafe { _mm_storeu_si128(p, x) };
    }
    super::mask_words(chunks.into_remainder(), key);
}
