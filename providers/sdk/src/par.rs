//! Splitting a long list of independent local work over a few threads (the
//! engine's per-instance steps and the host provider's probes).

/// `f` applied to `items` in chunks, on up to `threads` scoped threads with
/// at least `per_thread` items each (one call on this thread when that makes
/// one chunk); the results keep the items' order. A panic in a chunk is
/// raised again here.
pub fn in_chunks<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    per_thread: usize,
    f: impl Fn(&[T]) -> Vec<R> + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len().div_ceil(per_thread.max(1)));
    if threads <= 1 {
        return f(items);
    }
    let f = &f;
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|c| s.spawn(move || f(c)))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The cores of this machine (1 when unknown); `CLAW_CORES=N` says
/// otherwise (for measuring what the threads bring).
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::env::var("CLAW_CORES")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n: &usize| *n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    })
}
