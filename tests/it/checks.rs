//! `[check.*]` end to end against a local HTTP server the test runs: apply
//! runs checks after their dependencies and gates what depends on them,
//! `claw check` reports each, `plan` never runs them.

use crate::common::{says, Ctx};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;

/// A tiny HTTP/1.1 server on 127.0.0.1 answering every request with
/// `status` (and counting requests) until stopped (examples.rs uses it too).
pub(crate) struct Server {
    pub(crate) port: u16,
    status: Arc<AtomicU16>,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, h, st) = (status.clone(), hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut c) = conn else { continue };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                if buf.is_empty() {
                    continue; // a tcp check's bare connection
                }
                h.fetch_add(1, Ordering::SeqCst);
                let code = s.load(Ordering::SeqCst);
                let (reason, body) = match code {
                    200 => ("OK", "ok"),
                    _ => ("Service Unavailable", "gateway warming up"),
                };
                let _ = write!(
                    c,
                    "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Server {
            port,
            status,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops listening: connections are refused from now on.
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stack(port: u16, after: &str) -> String {
    format!(
        r#"
[stack]
name = "checks"

[file.before]
path = "out/before.txt"
content = "first\n"

[check.web]
http = "http://127.0.0.1:{port}/health"
timeout = "3s"
depends_on = ["file.before"]

[check.port]
tcp = "127.0.0.1:{port}"
timeout = "1s"

[check.sh]
command = "test -f out/before.txt"
timeout = "1s"
depends_on = ["file.before"]

[file.after]
path = "out/after.txt"
content = "{after}\n"
depends_on = ["check.web"]
"#
    )
}

#[test]
fn a_check_gates_its_dependents_and_claw_check_reports_it() {
    let mut server = Server::start();
    let t = Ctx::new();
    t.write("claw.toml", &stack(server.port, "gated"));

    // plan lists the checks and never runs them.
    let o = t.ok(&["plan"], 0);
    says(
        &o.stdout,
        "Checks that apply will run: check.port, check.sh, check.web (plan does not run them).",
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 0, "plan ran no check");
    let o = t.ok(&["graph"], 0);
    says(&o.stdout, "\"file.after\" -> \"check.web\";");
    says(&o.stdout, "\"check.web\" -> \"file.before\";");

    // Healthy: the check runs after file.before (check.sh finds it), and
    // file.after, which depends on it, is applied.
    let o = t.ok(&["apply", "--auto-approve"], 0);
    says(&o.stderr, "check.web: healthy (HTTP 200 OK)");
    says(&o.stderr, "check.sh: healthy (exit 0)");
    says(
        &o.stdout,
        "Apply complete: 2 done, 0 failed, 0 skipped; checks: 3 healthy, 0 failed.",
    );
    assert_eq!(t.read("out/after.txt"), "gated\n");
    let hits = server.hits.load(Ordering::SeqCst);
    assert!(hits >= 1, "apply asked the server");

    // Nothing to change: apply still runs the checks.
    let o = t.ok(&["apply", "--auto-approve"], 0);
    says(&o.stdout, "No changes.");
    says(&o.stdout, "checks: 3 healthy, 0 failed");
    assert!(server.hits.load(Ordering::SeqCst) > hits, "checked again");

    let o = t.ok(&["check"], 0);
    says(
        &o.stdout,
        "check.web                   healthy    http http://127.0.0.1:",
    );
    says(&o.stdout, "3 of 3 healthy.");
    let o = t.ok(&["check", "--format", "json"], 0);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(j["healthy"], true);
    assert_eq!(j["checks"].as_array().unwrap().len(), 3);

    // Answering 503: unhealthy, with the answer.
    server.status.store(503, Ordering::SeqCst);
    let o = t.ok(&["check"], 1);
    says(
        &o.stdout,
        "check.web                   unhealthy  http http://127.0.0.1:",
    );
    says(
        &o.stdout,
        "HTTP 503 Service Unavailable: gateway warming up",
    );
    says(&o.stdout, "2 of 3 healthy; unhealthy: check.web.");

    // Stopped: claw check names both network checks; apply skips the
    // dependent and exits 1 with the last answer.
    server.stop();
    let o = t.ok(&["check"], 1);
    says(&o.stdout, "unhealthy: check.port, check.web.");
    t.write("claw.toml", &stack(server.port, "gated v2"));
    let started = std::time::Instant::now();
    let o = t.ok(&["apply", "--auto-approve"], 1);
    assert!(
        started.elapsed().as_secs_f64() >= 2.5,
        "it kept trying for its timeout"
    );
    says(&o.stderr, "check.web is unhealthy after 3s");
    says(
        &o.stdout,
        "skipped: file.after (depends on check.web, which failed)",
    );
    says(&o.stdout, "checks: 1 healthy, 2 failed");
    assert_eq!(
        t.read("out/after.txt"),
        "gated\n",
        "the dependent was skipped"
    );
}

#[test]
fn a_fresh_stack_behind_a_failing_check_creates_nothing_behind_it() {
    let mut server = Server::start();
    server.stop();
    let t = Ctx::new();
    t.write("claw.toml", &stack(server.port, "gated"));
    let o = t.ok(&["apply", "--auto-approve"], 1);
    says(&o.stderr, "check.web is unhealthy");
    assert!(
        t.exists("out/before.txt"),
        "what the check depends on is applied"
    );
    assert!(
        !t.exists("out/after.txt"),
        "what depends on the check is not"
    );
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(&o.stdout, "+ file.after");
}

#[test]
fn bad_check_references_are_located() {
    let t = Ctx::new();
    let bad = |body: &str, wants: &[&str]| {
        t.write(
            "claw.toml",
            &format!(
                "[stack]\nname = \"checks\"\n\n[file.a]\npath = \"a\"\ncontent = \"\"\n\n{body}"
            ),
        );
        let o = t.ok(&["validate"], 1);
        for w in wants {
            says(&o.stderr, w);
        }
    };
    bad(
        "[check.web]\nhttp = \"http://${file.a.nope}/\"\n",
        &["file.a has no attribute `nope`", "claw.toml:9:8"],
    );
    bad(
        "[check.web]\ntcp = \"h:1\"\n\n[file.b]\npath = \"b\"\ncontent = \"\"\ndepends_on = [\"check.wbe\"]\n",
        &["depends_on: unknown resource check.wbe", "claw.toml:14:15", "did you mean `check.web`?"],
    );
    bad(
        "[check.web]\ntcp = \"h:1\"\ndepends_on = [\"check.web\"]\n",
        &["check.web depends on itself", "claw.toml:10:15"],
    );
    bad(
        "[check.web]\ncommand = \"true\"\nhttp = \"http://x\"\n",
        &[
            "[check.web] has command and http; a check probes one thing",
            "claw.toml:10:1",
        ],
    );
}
