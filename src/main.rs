//! The only place that turns how a command ended into an exit code
//! (SPEC §2: 0, 1, 2, 130), and the only `process::exit` of claw.

use clap::Parser;
use claw::cli::Outcome;

/// mimalloc: a plan of 20,000 resources spent half its time in glibc's
/// malloc and free (docs/benchmarks.md, "Scale").
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `arena_eager_commit` (option 4) off, so that memory is
/// committed as it is used, not an arena slice at a time: with it on (the
/// default on Linux) a 1,000-resource plan peaked at 36 MB instead of 23 MB
/// with glibc; off, 21 MB (docs/benchmarks.md, "Allocator"). Set in a
/// constructor because the first allocation, which reserves the arena,
/// happens before `main`.
#[cfg(feature = "mimalloc")]
#[ctor::ctor]
unsafe fn tune_allocator() {
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    // SAFETY: stores a plain option value; no other thread exists yet.
    unsafe { libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0) };
}

fn main() {
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
    std::process::exit(code);
}
