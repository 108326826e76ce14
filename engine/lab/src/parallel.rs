//! Independent runs on a pool of threads: each run owns its swarm, so running several
//! at once changes wall time only, never a result.

use crate::LabError;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads to use when the user did not say: one per core.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f(i, &items[i])` for every item on up to `jobs` threads; results in item order.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(usize, &T) -> Result<R, LabError> + Sync,
) -> Result<Vec<R>, LabError> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R, LabError>>>> = Mutex::new(items.iter().map(|_| None).collect());
    let worker = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(item) = items.get(i) else { break };
            let outcome = f(i, item);
            results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
        }
    };
    std::thread::scope(|scope| -> Result<(), LabError> {
        for k in 0..jobs.clamp(1, items.len().max(1)) {
            // The main thread's stack size: a swarm's work is the same on any thread.
            std::thread::Builder::new()
                .name(format!("run-{k}"))
                .stack_size(8 << 20)
                .spawn_scoped(scope, worker)
                .map_err(LabError::Thread)?;
        }
        Ok(())
    })?;
    results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or(Err(LabError::Config("a worker thread stopped before its run".into()))))
        .collect()
}
