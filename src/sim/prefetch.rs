//! Asking the memory system for bytes before they are read: at ten
//! thousand peers the state an event reads first is cold, and the reads
//! of one event wait for each other; fetched while the event before is
//! handled, they overlap with it (see `Net::prefetch_next`).

/// Hints that the bytes of `v` (its first `len`) will be read soon.
pub(super) fn prefetch<T: ?Sized>(v: &T, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = (v as *const T).cast::<i8>();
        for off in (0..len).step_by(64) {
            // SAFETY: a prefetch never faults, whatever the address; this
            // one stays within `v`.
            unsafe { _mm_prefetch(p.wrapping_add(off), _MM_HINT_T0) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (v, len);
}
