//! Process-wide allocator settings for servers that move large buffers.
//!
//! A large WebSocket message or HTTP body gets one buffer of its size (see
//! [`crate::ConnCtx::reserve_input`]), freed when the plugin drops the message. glibc's malloc
//! serves such sizes with mmap(2) and gives them back with munmap(2) until its adaptive
//! threshold has risen, and trims the top of the heap as soon as 128 KiB (or twice the
//! threshold) are free there: each large message then costs page faults and zeroing of fresh
//! pages. On a 10 x 1 MiB WebSocket echo that was about a quarter of the server's CPU time.

/// Keep freed memory for reuse: large allocations come from the heap (up to 32 MiB each; larger
/// ones are still mapped), and the heap is trimmed only once 128 MiB at its top are free. The
/// price is memory held after a burst of large messages, up to what the burst used. glibc only;
/// a no-op elsewhere, and when `GLIBC_TUNABLES` is set (the operator's settings win). Call it
/// once, at the start of `main`, before threads start.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("GLIBC_TUNABLES").is_some() {
            return;
        }
        // SAFETY: mallopt only changes malloc's parameters; it is called before any other
        // thread exists (the caller's contract), with valid parameter numbers and values.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
        }
    }
}
