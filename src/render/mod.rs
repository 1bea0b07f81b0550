//! The only place that knows output formats: human, markdown and json, all
//! reading the same [`Plan`] document.
//!
//! **Invariant:** output is a pure function of the plan (no time, no ids, no
//! map-order effects), and a change to one resource changes only its block:
//! columns are fixed, never computed from other resources.

pub mod checks;
pub mod graph;
pub mod outputs;
pub mod state;
pub mod summary;

use crate::plan::{Action, Change, Plan, Summary};
use claw_provider::{AttrChange, Value};

/// The column where the action word starts in the human format.
const ADDR_COL: usize = 54;
/// Markdown output stays under this size (a PR comment holds 65,536).
pub const MARKDOWN_LIMIT: usize = 65_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Markdown,
    Json,
}

pub fn render(plan: &Plan, format: Format, color: bool) -> String {
    match format {
        Format::Human => human(plan, color),
        Format::Markdown => markdown(plan),
        Format::Json => json(plan),
    }
}

pub fn json(plan: &Plan) -> String {
    let mut s = serde_json::to_string_pretty(plan).unwrap_or_default();
    s.push('\n');
    s
}

struct Paint(bool);
impl Paint {
    fn c(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    fn action(&self, a: Action, s: &str) -> String {
        let code = match a {
            Action::Create => "32",
            Action::Update => "33",
            Action::DeleteCreate | Action::CreateDelete => "35",
            Action::Delete => "31",
            Action::Forget | Action::Adopt | Action::StateOnly | Action::Move => "36",
            Action::NoOp => "0",
        };
        self.c(code, s)
    }
}

pub fn summary_line(s: &Summary) -> String {
    let mut line = format!(
        "Plan: {} to create, {} to update, {} to replace, {} to delete",
        s.create, s.update, s.replace, s.delete
    );
    if s.moved > 0 {
        line.push_str(&format!(", {} to move", s.moved));
    }
    if s.adopt > 0 {
        line.push_str(&format!(", {} to adopt", s.adopt));
    }
    if s.state_only > 0 {
        line.push_str(&format!(", {} state-only", s.state_only));
    }
    if s.forget > 0 {
        line.push_str(&format!(", {} to forget", s.forget));
    }
    line.push('.');
    line
}

pub fn human(plan: &Plan, color: bool) -> String {
    let p = Paint(color);
    let mut out = String::new();
    if !plan.has_changes() {
        out.push_str(&format!(
            "No changes. The live fleet matches the configuration (stack {}, {} unchanged).\n",
            plan.stack, plan.summary.unchanged
        ));
        out.push_str(&checks_line(plan));
        return out;
    }
    if plan.changes.is_empty() {
        out.push_str(&format!(
            "No changes to objects (stack {}, {} unchanged); only outputs change.\n",
            plan.stack, plan.summary.unchanged
        ));
    } else {
        let what = if plan.destroy {
            "destroy these objects"
        } else {
            "perform these actions"
        };
        out.push_str(&format!("claw will {what} (stack {}):\n\n", plan.stack));
        for c in &plan.changes {
            out.push_str(&change_block(c, &p));
            out.push('\n');
        }
        out.push_str(&summary_line(&plan.summary));
        out.push('\n');
    }
    if !plan.outputs.is_empty() {
        out.push_str("\nOutputs:\n");
        for l in outputs::plan_lines(&plan.outputs) {
            out.push_str("  ");
            out.push_str(&l);
            out.push('\n');
        }
    }
    out.push_str(&checks_line(plan));
    out
}

/// The checks apply will run (plan never runs them); empty without any.
fn checks_line(plan: &Plan) -> String {
    if plan.checks.is_empty() {
        return String::new();
    }
    format!(
        "\nChecks that apply will run: {} (plan does not run them).\n",
        plan.checks.join(", ")
    )
}

fn header(c: &Change) -> (String, String) {
    let sym = c.action.symbol();
    let lead = if sym.len() == 1 {
        format!("  {sym} ")
    } else {
        format!(" {sym} ")
    };
    let mut word = if c.reason.is_plain() {
        c.action.word().to_string()
    } else {
        format!("{} ({})", c.action.word(), c.reason)
    };
    if let (Some(from), false) = (&c.moved_from, c.action == Action::Move) {
        word.push_str(&format!(" (moved from {from})"));
    }
    (lead, word)
}

fn change_block(c: &Change, p: &Paint) -> String {
    let (lead, word) = header(c);
    let mut s = String::new();
    let addr = &c.address;
    // The action word starts at a fixed column whatever the symbol's width.
    let used = lead.chars().count() + addr.chars().count();
    let pad = if used + 3 <= ADDR_COL {
        ADDR_COL - used
    } else {
        3
    };
    s.push_str(&p.action(c.action, &lead));
    s.push_str(addr);
    s.push_str(&" ".repeat(pad));
    s.push_str(&word);
    s.push('\n');
    for line in attr_lines(c) {
        let painted = match line.trim_start().chars().next() {
            Some('+') => p.c("32", &line),
            Some('-') => p.c("31", &line),
            Some('~') => p.c("33", &line),
            _ => line.clone(),
        };
        s.push_str("      ");
        s.push_str(&painted);
        s.push('\n');
    }
    s
}

/// The attribute lines of one change, without indentation: `+ key = value`,
/// `~ key = old -> new`, `- key = old`, and diffs of multi-line values.
pub fn attr_lines(c: &Change) -> Vec<String> {
    if matches!(
        c.action,
        Action::Delete | Action::Forget | Action::Adopt | Action::StateOnly | Action::Move
    ) {
        return vec![];
    }
    let width = c
        .diff
        .iter()
        .filter(|d| !is_multiline(d))
        .map(|d| d.path.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = Vec::new();
    for d in &c.diff {
        let sensitive = c.sensitive_paths.iter().any(|p| {
            d.path == *p
                || d.path.starts_with(&format!("{p}."))
                || d.path.starts_with(&format!("{p}["))
        });
        let key = format!("{:<width$}", d.path);
        if is_multiline(d) && !sensitive {
            let before = d.before.as_ref().and_then(|v| v.as_str()).unwrap_or("");
            let after = d.after.as_ref().and_then(|v| v.as_str()).unwrap_or("");
            let sym = match (&d.before, &d.after) {
                (None, Some(_)) => "+",
                (Some(_), None) => "-",
                _ => "~",
            };
            let tag = if d.replace {
                "  # forces replacement"
            } else {
                ""
            };
            out.push(format!("{sym} {}:{tag}", d.path));
            // A whole new (or removed) text needs no hunk header.
            let whole = d.before.is_none() || d.after.is_none();
            for l in unified(before, after) {
                if whole && l.starts_with("@@") {
                    continue;
                }
                out.push(format!("    {l}"));
            }
            continue;
        }
        let tag = if d.replace {
            "  # forces replacement"
        } else {
            ""
        };
        let show = |v: &Value| {
            if sensitive {
                "(sensitive)".to_string()
            } else {
                v.render_inline()
            }
        };
        let line = match (&d.before, &d.after) {
            (None, Some(a)) => format!("+ {key} = {}", show(a)),
            (Some(b), None) => format!("- {key} = {}", show(b)),
            (Some(b), Some(a)) => {
                if sensitive || matches!(a, Value::Secret(_)) || matches!(b, Value::Secret(_)) {
                    format!("~ {key} = (sensitive value changed)")
                } else {
                    format!("~ {key} = {} -> {}", b.render_inline(), a.render_inline())
                }
            }
            (None, None) => continue,
        };
        out.push(format!("{line}{tag}"));
    }
    out
}

fn is_multiline(d: &AttrChange) -> bool {
    let ml = |v: &Option<Value>| {
        v.as_ref()
            .and_then(|v| v.as_str())
            .is_some_and(|s| s.contains('\n'))
    };
    ml(&d.before) || ml(&d.after)
}

/// A unified diff of two texts (hunks only, no file headers).
pub fn unified(before: &str, after: &str) -> Vec<String> {
    let diff = similar::TextDiff::from_lines(before, after);
    let mut out = Vec::new();
    for hunk in diff.unified_diff().context_radius(3).iter_hunks() {
        out.push(hunk.header().to_string());
        for ch in hunk.iter_changes() {
            let sign = match ch.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            let text = ch.value().trim_end_matches('\n');
            out.push(format!("{sign}{text}"));
        }
    }
    out
}

/// The share of [`MARKDOWN_LIMIT`] the summary table may take.
const MARKDOWN_TABLE_LIMIT: usize = 24_000;
/// Room kept for the truncation notes.
const MARKDOWN_NOTE_ROOM: usize = 400;

/// A pull-request comment: the `Plan:` line (always counting every change),
/// a summary table and one collapsible section per change, cut with a note
/// so that the whole stays under [`MARKDOWN_LIMIT`] characters.
pub fn markdown(plan: &Plan) -> String {
    let mut head = format!("### claw plan — stack `{}`\n\n", plan.stack);
    let mut tail = String::new();
    if !plan.outputs.is_empty() {
        tail.push_str("#### Outputs\n\n```diff\n");
        for l in outputs::plan_lines(&plan.outputs) {
            tail.push_str(&l.replace("```", "ˋˋˋ"));
            tail.push('\n');
        }
        tail.push_str("```\n\n");
    }
    if !plan.checks.is_empty() {
        let names: Vec<String> = plan.checks.iter().map(|c| format!("`{c}`")).collect();
        tail.push_str(&format!(
            "Checks that apply will run: {} (plan does not run them).\n",
            names.join(", ")
        ));
    }
    if !plan.has_changes() {
        head.push_str(&format!(
            "**No changes.** The live fleet matches the configuration ({} unchanged).\n",
            plan.summary.unchanged
        ));
        return head + &tail;
    }
    if plan.changes.is_empty() {
        head.push_str(&format!(
            "**No changes to objects** ({} unchanged); only outputs change.\n\n",
            plan.summary.unchanged
        ));
        return head + &tail;
    }
    head.push_str(&format!("**{}**\n\n", summary_line(&plan.summary)));
    head.push_str("| | address | action | reason |\n|---|---|---|---|\n");
    let table_start = head.len();
    for (n, c) in plan.changes.iter().enumerate() {
        let row = format!(
            "| `{}` | `{}` | {} | {} |\n",
            c.action.symbol(),
            c.address.replace('|', "\\|"),
            c.action.word(),
            md_escape(&c.reason.to_string())
        );
        if head.len() - table_start + row.len() > MARKDOWN_TABLE_LIMIT {
            head.push_str(&format!(
                "| | _… and {} more_ | | |\n",
                plan.changes.len() - n
            ));
            break;
        }
        head.push_str(&row);
    }
    head.push('\n');
    let mut body = String::new();
    for (shown, c) in plan.changes.iter().enumerate() {
        let sec = markdown_section(c);
        if head.len() + body.len() + sec.len() + tail.len() + MARKDOWN_NOTE_ROOM > MARKDOWN_LIMIT {
            let rest = plan.changes.len() - shown;
            body.push_str(&format!(
                "\n> **Truncated:** {rest} more change(s) not shown to stay under {MARKDOWN_LIMIT} characters. Run `claw plan` or `claw show PLANFILE` for the full plan.\n"
            ));
            break;
        }
        body.push_str(&sec);
    }
    head + &body + &tail
}

fn markdown_section(c: &Change) -> String {
    let (_, word) = header(c);
    let mut s = format!(
        "<details><summary><code>{} {}</code> {}</summary>\n\n",
        c.action.symbol(),
        html_escape(&c.address),
        html_escape(&word)
    );
    let lines = attr_lines(c);
    if lines.is_empty() {
        s.push_str(&format!("_{}_\n", md_escape(&word)));
    } else {
        s.push_str("```diff\n");
        for l in lines {
            // `diff` highlighting keys on the first column.
            let l = l.replace("```", "ˋˋˋ");
            s.push_str(&l);
            s.push('\n');
        }
        s.push_str("```\n");
    }
    s.push_str("\n</details>\n\n");
    s
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_of(n: usize) -> Plan {
        let changes: Vec<Change> = (0..n)
            .map(|i| Change {
                address: format!("file.agent[\"agent-{i:05}\"]"),
                rtype: "file".into(),
                provider: "host.local".into(),
                action: Action::Create,
                reason: crate::plan::Reason::NotFound,
                id: None,
                before: None,
                after: None,
                diff: vec![AttrChange::new(
                    "path",
                    None,
                    Some(Value::str(format!("/tmp/agents/{i}/config.json"))),
                )],
                sensitive_paths: vec![],
                fingerprint: String::new(),
                moved_from: None,
                inputs: vec![],
                after_addresses: vec![],
            })
            .collect();
        let summary = Plan::summarize(&changes, 0);
        Plan {
            format_version: crate::plan::FORMAT_VERSION,
            stack: "s".into(),
            config_hash: String::new(),
            state_lineage: String::new(),
            state_serial: 0,
            inputs: Default::default(),
            destroy: false,
            targets: vec![],
            replace: vec![],
            changes,
            outputs: vec![],
            checks: vec![],
            summary,
        }
    }

    #[test]
    fn markdown_stays_under_the_limit_and_counts_everything() {
        for n in [1, 300, 2_000, 20_000] {
            let md = markdown(&plan_of(n));
            assert!(md.chars().count() < MARKDOWN_LIMIT, "{n}: {}", md.len());
            assert!(
                md.contains(&format!("Plan: {n} to create, 0 to update")),
                "{n}"
            );
            if n >= 2_000 {
                assert!(md.contains("more_ |"), "table cut: {n}");
                assert!(md.contains("**Truncated:**"), "sections cut: {n}");
            } else {
                assert!(!md.contains("Truncated"), "{n}");
            }
        }
    }

    #[test]
    fn unified_diff_of_lines() {
        let d = unified("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(d, vec!["@@ -1,3 +1,3 @@", " a", "-b", "+B", " c"]);
    }
}
