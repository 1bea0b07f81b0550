//! The summary after apply or destroy: counts, then one line per failed,
//! skipped, not started or abandoned operation.

use crate::engine::apply::Outcome;
use std::collections::BTreeSet;

/// Whether an operation's address is a check's (`check.NAME`; no resource
/// type is called `check`).
fn is_check(address: &str) -> bool {
    address.starts_with("check.")
}

pub fn apply(out: &Outcome, destroy: bool) -> String {
    // Counted per object: a replace is two operations (delete, create) but
    // one object done, as the plan's "1 to replace" said.
    let distinct = |v: &mut dyn Iterator<Item = &String>| v.collect::<BTreeSet<_>>().len();
    let ops =
        |v: &[(String, String)]| distinct(&mut v.iter().map(|(a, _)| a).filter(|a| !is_check(a)));
    let failed_ops = out.failed.iter().filter(|(a, _)| !is_check(a)).count();
    let mut counts = format!(
        "{} done, {} failed, {} skipped",
        ops(&out.done),
        failed_ops,
        distinct(&mut out.skipped.iter().map(|(a, _)| a))
    );
    let healthy = out.done.iter().filter(|(a, _)| is_check(a)).count();
    let unhealthy = out.failed.len() - failed_ops;
    if healthy + unhealthy > 0 {
        counts.push_str(&format!("; checks: {healthy} healthy, {unhealthy} failed"));
    }
    let mut s = if out.interrupted {
        let mut head = format!(
            "\nInterrupted: {counts}, {} not started",
            out.not_started.len()
        );
        if !out.abandoned.is_empty() {
            head.push_str(&format!(
                ", {} abandoned while running",
                out.abandoned.len()
            ));
        }
        head + ".\n"
    } else {
        let what = if destroy { "Destroy" } else { "Apply" };
        // "complete" only when nothing failed (Terraform prints no
        // "Apply complete!" after an error either).
        let ended = if out.failed.is_empty() {
            "complete"
        } else {
            "finished with errors"
        };
        format!("\n{what} {ended}: {counts}.\n")
    };
    for (a, p) in &out.failed {
        s.push_str(&format!("  failed:  {a}: {}\n", p.message));
    }
    let mut seen = BTreeSet::new();
    for (a, why) in out.skipped.iter().filter(|(a, _)| seen.insert(a)) {
        s.push_str(&format!("  skipped: {a} ({why})\n"));
    }
    for a in &out.not_started {
        s.push_str(&format!("  not started: {a}\n"));
    }
    for a in &out.abandoned {
        s.push_str(&format!(
            "  abandoned: {a} (was running; the next plan checks it again)\n"
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Problem;

    #[test]
    fn interrupted_summary_counts_every_kind_and_never_says_complete() {
        let out = Outcome {
            done: vec![("file.a".into(), "created".into())],
            failed: vec![("file.b".into(), Problem::new("boom"))],
            skipped: vec![("file.c".into(), "depends on file.b, which failed".into())],
            not_started: vec!["file.d".into(), "file.e".into()],
            abandoned: vec!["file.f".into()],
            interrupted: true,
        };
        let s = apply(&out, false);
        assert!(
            s.starts_with("\nInterrupted: 1 done, 1 failed, 1 skipped, 2 not started, 1 abandoned while running.\n"),
            "{s}"
        );
        assert!(!s.contains("complete"), "{s}");
        assert!(s.contains("  not started: file.e\n"), "{s}");
        assert!(s.contains("  abandoned: file.f"), "{s}");
        let done = Outcome {
            done: out.done.clone(),
            ..Outcome::default()
        };
        assert_eq!(
            apply(&done, true),
            "\nDestroy complete: 1 done, 0 failed, 0 skipped.\n"
        );
        // A failure is never called complete.
        let mut failed = Outcome {
            interrupted: false,
            ..out
        };
        // A replace is one object done.
        failed.done.push(("file.a".into(), "created".into()));
        let s = apply(&failed, false);
        assert!(
            s.starts_with("\nApply finished with errors: 1 done, 1 failed, 1 skipped.\n"),
            "{s}"
        );
    }
}
