//! `claw check`: one line per check (human) or one JSON document.

use crate::engine::checks::Report;

/// The column where the status word starts.
const STATUS_COL: usize = 28;

/// `check.web   healthy    http http://…/health: HTTP 200 OK`, then a count.
pub fn human(reports: &[Report]) -> String {
    let mut s = String::new();
    for r in reports {
        let pad = STATUS_COL.saturating_sub(r.address.chars().count()).max(2);
        let status = if r.healthy { "healthy" } else { "unhealthy" };
        let target = if r.target.is_empty() {
            String::new()
        } else {
            format!(" {}", r.target)
        };
        s.push_str(&format!(
            "{}{}{status:<11}{}{target}: {}\n",
            r.address,
            " ".repeat(pad),
            r.probe,
            r.answer
        ));
    }
    let bad: Vec<&str> = reports
        .iter()
        .filter(|r| !r.healthy)
        .map(|r| r.address.as_str())
        .collect();
    s.push_str(&match (reports.len(), bad.len()) {
        (0, _) => "No checks: declare [check.NAME] tables in claw.toml.\n".to_string(),
        (n, 0) => format!("\n{n} of {n} healthy.\n"),
        (n, b) => format!(
            "\n{} of {n} healthy; unhealthy: {}.\n",
            n - b,
            bad.join(", ")
        ),
    });
    s
}

/// `{"healthy": bool, "checks": [{address, probe, target, healthy, answer}]}`.
pub fn json(reports: &[Report]) -> String {
    let checks: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            serde_json::json!({
                "address": r.address,
                "probe": r.probe,
                "target": r.target,
                "healthy": r.healthy,
                "answer": r.answer,
            })
        })
        .collect();
    let doc = serde_json::json!({
        "healthy": reports.iter().all(|r| r.healthy),
        "checks": checks,
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(address: &str, healthy: bool, answer: &str) -> Report {
        Report {
            address: address.into(),
            probe: "http",
            target: "http://127.0.0.1:1/h".into(),
            healthy,
            answer: answer.into(),
            tries: 1,
        }
    }

    #[test]
    fn one_line_per_check_in_fixed_columns() {
        let s = human(&[
            report("check.a", true, "HTTP 200 OK"),
            report("check.gateway", false, "HTTP 503 Service Unavailable"),
        ]);
        assert_eq!(
            s,
            "check.a                     healthy    http http://127.0.0.1:1/h: HTTP 200 OK\n\
             check.gateway               unhealthy  http http://127.0.0.1:1/h: HTTP 503 Service Unavailable\n\
             \n1 of 2 healthy; unhealthy: check.gateway.\n"
        );
        let j: serde_json::Value =
            serde_json::from_str(&json(&[report("check.a", true, "ok")])).unwrap();
        assert_eq!(j["healthy"], true);
        assert_eq!(j["checks"][0]["address"], "check.a");
    }
}
