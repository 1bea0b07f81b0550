//! The only place that turns how a command ended into an exit code
//! (SPEC §2: 0, 1, 2, 130), and the only `process::exit` of claw.

use clap::Parser;
use claw::cli::Outcome;

/// mimalloc: a plan of 20,000 resources spent half its time in glibc's
/// malloc and free (docs/benchmarks.md, "Scale").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options (their numbers in v3's `mimalloc.h`), set before the
/// first allocation, which happens before `main` and reserves the arena:
/// - `arena_eager_commit` off: memory is committed as it is used, not an
///   arena slice at a time (on, the default on Linux, a 1,000-resource plan
///   peaked at 36 MB instead of 23 MB with glibc; off, 19 MB);
/// - `purge_delay` 250 ms instead of 1 s: freed pages go back to the
///   system while a long plan runs. 20,000 resources, same binary (medians
///   of 9 interleaved runs): 1 s peaked at 137–148 MB in 1.00 s; 250 ms at
///   125–132 MB in 1.01 s; 100 ms at 120 MB in 1.05 s; 0 at 113 MB in
///   1.04 s (a page freed early is faulted in again later, ~3.5 µs each on
///   this virtual machine). A short run never purges.
///
/// Eager commit (huge pages) would save most of the remaining faults but
/// peaks at 147–150 MB for 20,000 resources and at 32 MB for 1,000: memory
/// was chosen (docs/benchmarks.md, "Allocator").
///
/// `MIMALLOC_ARENA_EAGER_COMMIT` / `MIMALLOC_PURGE_DELAY`, when set, win.
/// Figures: docs/benchmarks.md, "Allocator".
#[cfg(feature = "mimalloc")]
const MIMALLOC_OPTIONS: [(libmimalloc_sys::mi_option_t, &str, std::ffi::c_long); 2] = [
    (4, "MIMALLOC_ARENA_EAGER_COMMIT", 0),
    (15, "MIMALLOC_PURGE_DELAY", 250),
];

#[cfg(feature = "mimalloc")]
#[ctor::ctor]
unsafe fn tune_allocator() {
    for (option, env, value) in MIMALLOC_OPTIONS {
        // mimalloc's own variable, when set, wins (for measuring).
        if std::env::var_os(env).is_none() {
            // SAFETY: stores a plain option value; no other thread exists yet.
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
}

fn main() {
    claw::util::timing::start();
    let cli = claw::cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let outcome = rt
        .block_on(claw::cli::run(cli))
        .unwrap_or_else(|e| Outcome::Failed(Some(e)));
    let (code, errors) = match outcome {
        Outcome::Ok => (0, None),
        Outcome::Changes => (2, None),
        Outcome::Failed(e) => (1, e),
        Outcome::Interrupted(e) => (130, e),
    };
    if let Some(e) = errors {
        eprintln!("{e}");
    }
    // Abandoned operations may still hold runtime threads: do not wait long.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    claw::util::timing::phase("exit");
    std::process::exit(code);
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    #[test]
    fn allocator_options_are_set_before_main() {
        for (option, env, value) in super::MIMALLOC_OPTIONS {
            if std::env::var_os(env).is_none() {
                // SAFETY: reads an option value.
                assert_eq!(unsafe { libmimalloc_sys::mi_option_get(option) }, value);
            }
        }
    }
}
