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

/// Give freed memory back to the system: whole free pages inside the heap (every arena) are
/// released with `madvise`, and the heap's top is trimmed. With [`keep_freed_memory`]'s
/// thresholds nothing else does it, so the old storage of a table that grew by reallocation
/// (a connection slab going from 8k to 16k slots frees a megabyte) would stay resident for the
/// life of the process. The runtime calls it when its per-core connection tables grew, which
/// happens a few times in a process's life (capacities double); plugins may call it for their
/// own tables. It walks malloc's free lists: do not call it per request. glibc only; a no-op
/// elsewhere.
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it takes malloc's locks
    // and is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
