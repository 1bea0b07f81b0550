//! Small helpers with no better home.

/// The current UTC time as RFC 3339 (seconds).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = z.div_euclid(146097);
    let doe = z.rem_euclid(146097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Whether a process with this pid runs on this machine.
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// sha256 hex of bytes.
pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20594), (2026, 5, 21));
        assert_eq!(super::civil_from_days(-1), (1969, 12, 31));
    }
}

/// Phase timings for benchmarks: with `CLAW_TIMINGS` set, each
/// [`phase`] call prints the milliseconds since the previous one (and since
/// the process started) and the memory in use to stderr, e.g.
/// `timing: refresh 212 ms (at 640 ms), rss 120 MB, peak 131 MB`.
pub mod timing {
    use std::sync::{Mutex, OnceLock};
    use std::time::Instant;

    fn clock() -> Option<&'static Mutex<(Instant, Instant)>> {
        static CLOCK: OnceLock<Option<Mutex<(Instant, Instant)>>> = OnceLock::new();
        CLOCK
            .get_or_init(|| {
                std::env::var_os("CLAW_TIMINGS").map(|_| {
                    let now = Instant::now();
                    Mutex::new((now, now))
                })
            })
            .as_ref()
    }

    /// `, rss N MB, peak N MB` from `/proc/self/status` (Linux), else nothing.
    fn memory() -> String {
        let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
            return String::new();
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        };
        match (field("VmRSS:"), field("VmHWM:")) {
            (Some(rss), Some(peak)) => format!(", rss {} MB, peak {} MB", rss / 1024, peak / 1024),
            _ => String::new(),
        }
    }

    /// Starts the clock (call first thing in `main`).
    pub fn start() {
        clock();
    }

    /// Ends the phase `name` (a no-op unless `CLAW_TIMINGS` is set).
    pub fn phase(name: &str) {
        if let Some(c) = clock() {
            let now = Instant::now();
            let mut g = c.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "timing: {name} {} ms (at {} ms){}",
                (now - g.1).as_millis(),
                (now - g.0).as_millis(),
                memory()
            );
            g.1 = now;
        }
    }
}
