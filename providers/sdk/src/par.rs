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

/// The cores of this machine (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
