//! Allocator tuning for the tensor workload.
//!
//! Every op allocates a fresh output buffer of megabytes. glibc serves such sizes with `mmap`
//! and returns them on free, so each op pays page faults and kernel zeroing anew; keeping them
//! in the heap lets the next op reuse the pages (measured: about 5% of a MiniLM forward pass).

/// Call once at program start.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator thresholds; called before any threads start.
    unsafe {
        // glibc refuses a threshold above 32 MiB (HEAP_MAX_SIZE / 2) and then keeps the
        // default 128 KiB, while setting the trim threshold switches off its dynamic raise:
        // every large buffer would be mapped afresh.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}
