//! The summary after apply or destroy: counts, then one line per failed,
//! skipped, not started or abandoned operation.

use crate::engine::apply::Outcome;

pub fn apply(out: &Outcome, destroy: bool) -> String {
    let counts = format!(
        "{} done, {} failed, {} skipped",
        out.done.len(),
        out.failed.len(),
        out.skipped.len()
    );
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
        format!("\n{what} complete: {counts}.\n")
    };
    for (a, p) in &out.failed {
        s.push_str(&format!("  failed:  {a}: {}\n", p.message));
    }
    for (a, why) in &out.skipped {
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
    }
}
