//! The pull-request workflow of `examples/ci/` (docs/ci.md), run locally:
//! its scripts against the quickstart example in a temp folder, with a fake
//! `gh` on PATH that records its arguments (GitHub is not reachable here).

use crate::common::{require, says, which, Ctx};
use crate::host::TmuxGuard;
use std::path::{Path, PathBuf};
use std::process::Command;

const FAKE_GH: &str = r#"#!/bin/sh
# A stand-in for gh: records each call (and any body file) in $GH_LOG and
# answers what the scripts read.
printf 'gh %s\n' "$*" >>"$GH_LOG"
for a in "$@"; do
  case $a in
    body=@*) { echo '--- body'; cat "${a#body=@}"; echo '--- end'; } >>"$GH_LOG" ;;
  esac
done
case "$1 $2" in
  "api --paginate") cat "$GH_FAKE_COMMENT_IDS" 2>/dev/null; exit 0 ;;
  "api --method") echo '{}'; exit 0 ;;
  "run list") cat "$GH_FAKE_RUN" 2>/dev/null; exit 0 ;;
  "run download")
    while [ $# -gt 0 ]; do
      [ "$1" = --dir ] && dir=$2
      shift
    done
    cp "$GH_FAKE_ARTIFACT" "$dir/"
    exit 0 ;;
esac
echo "fake gh: unexpected call: $*" >&2
exit 1
"#;

fn examples_ci() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci")
}

struct Ci {
    t: Ctx,
    path: String,
}

impl Ci {
    fn new() -> Ci {
        let t = Ctx::new();
        let bin = t.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        t.write("bin/gh", FAKE_GH);
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_claw"), bin.join("claw")).unwrap();
        let sh = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        sh(&bin.join("gh"));
        let quickstart =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/claw.toml");
        t.write(
            "repo/claw.toml",
            &std::fs::read_to_string(quickstart).unwrap(),
        );
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Ci { t, path }
    }

    /// Runs `examples/ci/SCRIPT` in the temp folder as a GitHub job would.
    fn run(&self, script: &str, env: &[(&str, &str)]) -> (i32, String) {
        let mut c = Command::new(examples_ci().join(script));
        c.current_dir(self.t.dir.path())
            .env("PATH", &self.path)
            .env("HOME", self.t.dir.path())
            .env_remove("NO_COLOR")
            .env("CLAW_DIR", self.t.path("repo"))
            .env("CLAW_VAR_root", self.t.path("root"))
            .env("GITHUB_REPOSITORY", "fleet/infra")
            .env("GITHUB_STEP_SUMMARY", self.t.path("summary.md"))
            .env("GH_LOG", self.t.path("gh.log"))
            .env("GH_FAKE_COMMENT_IDS", self.t.path("comment-ids"))
            .env("GH_FAKE_RUN", self.t.path("run-id"))
            .env("GH_FAKE_ARTIFACT", self.t.path("artifact/claw-plan.json"));
        for (k, v) in env {
            c.env(k, v);
        }
        let o = c.output().expect("run the script");
        let all = format!(
            "{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code().unwrap_or(-1), all)
    }

    fn gh_log(&self) -> String {
        let log = self.t.path("gh.log");
        let s = std::fs::read_to_string(&log).unwrap_or_default();
        let _ = std::fs::remove_file(log);
        s
    }

    fn claw(&self, args: &[&str]) -> crate::common::Out {
        let t = &self.t;
        let mut a = vec!["-C", "repo"];
        a.extend_from_slice(args);
        let o = t
            .command(&a)
            .env("CLAW_VAR_root", t.path("root"))
            .output()
            .unwrap();
        crate::common::Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

#[test]
fn plan_comment_artifact_apply_after_merge_and_drift() {
    if !require(
        "tmux",
        which("tmux"),
        "tmux is not installed (the quickstart runs sessions)",
    ) {
        return;
    }
    let ci = Ci::new();
    let t = &ci.t;
    let _guard = TmuxGuard(t.path("root/tmux.sock"));
    let pr = [("PR_NUMBER", "7")];

    // A pull request: the plan is saved and posted as a new comment.
    let (code, out) = ci.run("install.sh", &[]);
    assert_eq!(code, 0, "{out}");
    says(&out, "claw: using");
    let (code, out) = ci.run("plan.sh", &pr);
    assert_eq!(code, 0, "{out}");
    says(&out, "the plan has changes; saved to");
    assert!(t.exists("claw-plan.json"), "the plan artifact");
    let log = ci.gh_log();
    says(
        &log,
        "gh api --paginate repos/fleet/infra/issues/7/comments --jq",
    );
    says(
        &log,
        "gh api --method POST repos/fleet/infra/issues/7/comments -F body=@",
    );
    says(
        &log,
        &format!(
            "--- body\n<!-- claw-plan:{} -->\n### claw plan — stack `quickstart`",
            t.path("repo").display()
        ),
    );
    says(
        &log,
        "**Plan: 5 to create, 0 to update, 0 to replace, 0 to delete.**",
    );
    says(&t.read("summary.md"), "### claw plan — stack `quickstart`");

    // Another push: the same comment is edited in place, no new one.
    t.write("comment-ids", "4242\n");
    let (code, out) = ci.run("plan.sh", &pr);
    assert_eq!(code, 0, "{out}");
    let log = ci.gh_log();
    says(
        &log,
        "gh api --method PATCH repos/fleet/infra/issues/comments/4242 -F body=@",
    );
    assert!(!log.contains("--method POST"), "{log}");

    // After the merge: fetch the reviewed plan of the head commit, apply it.
    std::fs::create_dir_all(t.path("artifact")).unwrap();
    std::fs::copy(t.path("claw-plan.json"), t.path("artifact/claw-plan.json")).unwrap();
    t.write("run-id", "99\n");
    let merged = [
        ("PR_NUMBER", "7"),
        ("HEAD_SHA", "abc123"),
        ("CLAW_PLAN", "claw-plan/claw-plan.json"),
    ];
    let (code, out) = ci.run("fetch-plan.sh", &merged);
    assert_eq!(code, 0, "{out}");
    let log = ci.gh_log();
    says(&log, "gh run list --workflow claw-plan.yml --commit abc123 --status success --limit 1 --json databaseId --jq .[0].databaseId");
    says(
        &log,
        &format!(
            "gh run download 99 --name claw-plan --dir {}",
            t.path("claw-plan").display()
        ),
    );
    let (code, out) = ci.run("apply.sh", &merged);
    assert_eq!(code, 0, "{out}");
    says(&out, "Apply complete: 5 done, 0 failed, 0 skipped.");
    says(&ci.gh_log(), "### claw apply: applied");
    assert!(t.exists("root/agents/dev/config.json"));
    assert_eq!(
        ci.claw(&["plan", "--detailed-exitcode"]).code,
        0,
        "converged"
    );

    // The same plan again is stale (the state moved on): refused, nothing changes.
    let (code, out) = ci.run("apply.sh", &merged);
    assert_eq!(code, 1, "{out}");
    says(&out, "the plan is stale");
    says(&ci.gh_log(), "### claw apply failed");
    // No successful plan run for a commit: nothing to apply.
    t.write("run-id", "");
    let (code, out) = ci.run("fetch-plan.sh", &[("HEAD_SHA", "def456")]);
    assert_eq!(code, 1, "{out}");
    says(&out, "no successful claw-plan.yml run for def456");

    // The scheduled drift check: clean, then drift made by hand.
    let (code, out) = ci.run("drift.sh", &[]);
    assert_eq!(code, 0, "{out}");
    says(&out, "claw: no drift");
    t.write("root/agents/dev/config.json", "edited by hand\n");
    let (code, out) = ci.run("drift.sh", &[]);
    assert_eq!(code, 2, "{out}");
    says(&out, "claw: drift");
    says(
        &t.read("summary.md"),
        "| `~` | `file.agent_config[\"dev\"]` | update in place |",
    );

    // A broken configuration: the comment says why, the job fails.
    let good = t.read("repo/claw.toml");
    t.write("repo/claw.toml", &good.replace("[stack]", "[stak]"));
    let (code, out) = ci.run("plan.sh", &pr);
    assert_eq!(code, 1, "{out}");
    let log = ci.gh_log();
    says(&log, "### claw plan failed");
    says(&log, "unknown section `stak`");
    t.write("repo/claw.toml", &good);
    assert_eq!(ci.claw(&["destroy", "--auto-approve"]).code, 0);
}

#[test]
fn the_workflows_call_scripts_that_exist() {
    let dir = examples_ci();
    let mut calls = 0;
    for wf in ["claw-plan.yml", "claw-apply.yml", "claw-drift.yml"] {
        let text = std::fs::read_to_string(dir.join(wf)).unwrap_or_else(|e| panic!("{wf}: {e}"));
        for line in text.lines() {
            let Some(run) = line.trim().strip_prefix("run: ") else {
                continue;
            };
            let script = run
                .strip_prefix(".github/claw/")
                .unwrap_or_else(|| panic!("{wf}: `{run}` is not one of the scripts"));
            assert!(
                dir.join(script).is_file(),
                "{wf} calls {script}, which examples/ci lacks"
            );
            calls += 1;
        }
    }
    assert!(calls >= 7, "every step is a script: {calls}");
}
