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

/// A set of strings kept as a sorted vector, in `BTreeSet`'s order: one
/// allocation of its length, where a `BTreeSet` allocates a leaf of eleven
/// slots (about 280 bytes) even for one element. For the small sets every
/// graph node holds (its dependencies).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortedSet(Vec<String>);

impl SortedSet {
    pub fn new() -> SortedSet {
        SortedSet(Vec::new())
    }

    /// Adds `s`; false when it was there.
    pub fn insert(&mut self, s: String) -> bool {
        match self.0.binary_search(&s) {
            Ok(_) => false,
            Err(i) => {
                self.0.insert(i, s);
                true
            }
        }
    }

    pub fn contains(&self, s: &str) -> bool {
        self.0.binary_search_by(|x| x.as_str().cmp(s)).is_ok()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Extend<String> for SortedSet {
    fn extend<I: IntoIterator<Item = String>>(&mut self, iter: I) {
        self.0.extend(iter);
        self.0.sort_unstable();
        self.0.dedup();
    }
}

impl FromIterator<String> for SortedSet {
    fn from_iter<I: IntoIterator<Item = String>>(iter: I) -> SortedSet {
        let mut s = SortedSet::new();
        s.extend(iter);
        s.0.shrink_to_fit();
        s
    }
}

impl<'a> IntoIterator for &'a SortedSet {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod sorted_set_tests {
    use super::SortedSet;
    use std::collections::BTreeSet;

    #[test]
    fn orders_and_dedups_like_a_btreeset() {
        let words = ["b", "a", "c", "a", "b", "z", "m"];
        let mut s = SortedSet::new();
        let mut b = BTreeSet::new();
        for w in words {
            assert_eq!(s.insert(w.to_string()), b.insert(w.to_string()));
        }
        assert!(s.iter().eq(b.iter()));
        s.extend(["q".to_string(), "a".to_string()]);
        b.extend(["q".to_string(), "a".to_string()]);
        assert!(s.iter().eq(b.iter()));
        assert_eq!(s.len(), b.len());
        assert!(s.contains("q") && !s.contains("x"));
        let c: SortedSet = words.iter().map(|w| w.to_string()).collect();
        assert!(c
            .iter()
            .eq(words.iter().copied().collect::<BTreeSet<_>>().iter()));
    }
}
