//! `tailscale_acl` end to end through the CLI: the clawdbot-fleet example's
//! Tailscale part (the marked sections of `examples/clawdbot-fleet/claw.toml` and
//! `tailscale/policy.hujson`) against the Tailscale API double, started
//! in-process; `base_url` points at it through `CLAW_VAR_tailscale_api_url`.

use crate::common::Ctx;
use std::path::{Path, PathBuf};
use tailscale_api_double::{TailscaleDouble, TEST_API_KEY, TEST_OAUTH_ID, TEST_OAUTH_SECRET};

fn example(rel: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/clawdbot-fleet")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// The Tailscale part of `examples/clawdbot-fleet/claw.toml` (its marked
/// sections) as a stack of its own.
fn tailscale_part() -> String {
    let (vars, body) = crate::common::fleet_part("tailscale");
    format!("[vars]\n{vars}\n{body}")
}

/// A stack holding the example's Tailscale part, and a fresh tailnet.
fn setup() -> (Ctx, TailscaleDouble) {
    let double = TailscaleDouble::spawn();
    let ctx = Ctx::new()
        .env("TAILSCALE_API_KEY", TEST_API_KEY)
        .env("CLAW_VAR_tailscale_api_url", &double.base_url());
    ctx.write(
        "claw.toml",
        &format!("[stack]\nname = \"clawdbot\"\n\n{}", tailscale_part()),
    );
    ctx.write(
        "tailscale/policy.hujson",
        &example("tailscale/policy.hujson"),
    );
    (ctx, double)
}

#[test]
fn example_acl_applies_then_plans_clean() {
    let (ctx, double) = setup();
    let plan = ctx.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains("tailscale_acl.fleet"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("+") && plan.stdout.contains("tag:clawdbot:8080"),
        "the plan shows the policy as a diff: {}",
        plan.stdout
    );
    assert!(double.is_default(), "plan changes nothing");

    ctx.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(
        double.policy(),
        example("tailscale/policy.hujson"),
        "the file itself is posted, comments included"
    );
    let state = ctx.state().to_string();
    assert!(!state.contains(TEST_API_KEY), "no key in state");

    let again = ctx.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(!again.all().contains(TEST_API_KEY));

    // Comments and formatting alone are no change.
    let reformatted = example("tailscale/policy.hujson")
        .replace("// ", "// (reworded) ")
        .replace('\t', "    ");
    ctx.write("tailscale/policy.hujson", &reformatted);
    ctx.ok(&["plan", "--detailed-exitcode"], 0);

    // Destroy forgets (reset_on_destroy defaults to false): the tailnet keeps its policy.
    let etag = double.etag();
    ctx.ok(&["destroy", "--auto-approve"], 0);
    assert_eq!(double.etag(), etag);
    assert_eq!(double.policy(), example("tailscale/policy.hujson"));
    let left = ctx.state();
    assert!(
        left["resources"].as_object().is_none_or(|r| r.is_empty()),
        "{left}"
    );
}

#[test]
fn an_edit_behind_claws_back_between_plan_and_apply_is_refused() {
    let (ctx, double) = setup();
    ctx.ok(&["apply", "--auto-approve"], 0);
    let edited = example("tailscale/policy.hujson").replace("8080", "8443");
    ctx.write("tailscale/policy.hujson", &edited);
    let plan = ctx.ok(&["plan", "--out", "plan.json", "--detailed-exitcode"], 2);
    assert!(plan.stdout.contains("8443"), "{}", plan.stdout);
    let planned = std::fs::read_to_string(ctx.path("plan.json")).unwrap();
    assert!(!planned.contains(TEST_API_KEY), "no key in the plan file");
    assert!(
        planned.contains(&double.etag()),
        "the plan file keeps the ETag it was planned against"
    );

    // An admin edits the policy in the console.
    let console = example("tailscale/policy.hujson").replace(
        "\"group:dev\": [\"user@example.com\"]",
        "\"group:dev\": [\"user@example.com\", \"ops@example.com\"]",
    );
    double.console_edit(&console).expect("console edit");

    let out = ctx.ok(&["apply", "plan.json"], 1);
    let all = out.all();
    assert!(
        all.contains("tailscale_acl.fleet: the live object changed since the plan was made"),
        "{all}"
    );
    assert_eq!(double.policy(), console, "the console edit survives");

    // A new plan shows the console edit being replaced.
    let replan = ctx.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        replan.stdout.contains("ops@example.com"),
        "{}",
        replan.stdout
    );
}

#[test]
fn failing_policy_tests_fail_the_plan() {
    let (ctx, double) = setup();
    let broken = example("tailscale/policy.hujson").replace(
        "\"dst\": [\"tag:clawdbot:8080\"]",
        "\"dst\": [\"tag:clawdbot:*\"]",
    );
    ctx.write("tailscale/policy.hujson", &broken);
    let out = ctx.ok(&["plan"], 1);
    let all = out.all();
    assert!(all.contains("the policy's tests fail"), "{all}");
    assert!(
        all.contains(r#"address "tag:clawdbot:22": want: Drop, got: Accept"#),
        "{all}"
    );
    assert!(double.is_default());
}

#[test]
fn an_existing_policy_must_be_imported_before_claw_owns_it() {
    let (ctx, double) = setup();
    let console = example("tailscale/policy.hujson").replace("8080", "7000");
    double.console_edit(&console).unwrap();
    let out = ctx.ok(&["plan"], 1);
    assert!(
        out.all().contains("claw import tailscale_acl.fleet -"),
        "{}",
        out.all()
    );
    ctx.ok(&["import", "tailscale_acl.fleet", "-"], 0);
    let plan = ctx.ok(&["plan", "--detailed-exitcode"], 2);
    assert!(
        plan.stdout.contains("7000") && plan.stdout.contains("8080"),
        "{}",
        plan.stdout
    );
    ctx.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(double.policy(), example("tailscale/policy.hujson"));
}

#[test]
fn oauth_client_credentials_from_the_environment() {
    let double = TailscaleDouble::spawn();
    let ctx = Ctx::new()
        .env("TS_CLIENT_ID", TEST_OAUTH_ID)
        .env("TS_CLIENT_SECRET", TEST_OAUTH_SECRET);
    ctx.write(
        "claw.toml",
        &format!(
            r#"[stack]
name = "oauth"

[provider.tailnet]
type = "tailscale"
tailnet = "example.com"
oauth_client_id = {{ env = "TS_CLIENT_ID" }}
oauth_client_secret = {{ env = "TS_CLIENT_SECRET" }}
base_url = "{}"

[tailscale_acl.fleet]
policy_file = "policy.hujson"
"#,
            double.base_url()
        ),
    );
    ctx.write("policy.hujson", &example("tailscale/policy.hujson"));
    let out = ctx.ok(&["-v", "apply", "--auto-approve"], 0);
    assert!(!out.all().contains(TEST_OAUTH_SECRET), "{}", out.all());
    assert_eq!(double.policy(), example("tailscale/policy.hujson"));
    let tokens = double
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v2/oauth/token")
        .count();
    assert_eq!(tokens, 1, "one token for the whole run");
    ctx.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(!ctx.state().to_string().contains(TEST_OAUTH_SECRET));

    // A wrong secret is a clear error that does not show it.
    let ctx = ctx.env("TS_CLIENT_SECRET", "tskey-client-WRONG");
    let out = ctx.ok(&["plan"], 1);
    assert!(
        out.all()
            .contains("OAuth token endpoint refused the client credentials"),
        "{}",
        out.all()
    );
    assert!(!out.all().contains("tskey-client-WRONG"));
}

#[test]
fn hujson_errors_point_into_the_policy_file_and_claw_toml() {
    let (ctx, double) = setup();
    let bad = example("tailscale/policy.hujson").replace(
        "\"tag:dev\": [\"group:dev\"],",
        "\"tag:dev\": [\"group:dev\"], tag: 0x1F,",
    );
    ctx.write("tailscale/policy.hujson", &bad);
    let line = bad
        .lines()
        .position(|l| l.contains("0x1F"))
        .expect("the edited line")
        + 1;
    let checked = ctx.ok(&["validate"], 1);
    assert!(
        checked
            .all()
            .contains(&format!("tailscale/policy.hujson:{line}:")),
        "{}",
        checked.all()
    );
    let out = ctx.ok(&["plan"], 1);
    let all = out.all();
    assert!(
        all.contains(&format!("tailscale/policy.hujson:{line}:")),
        "{all}"
    );
    assert!(all.contains("claw.toml:"), "{all}");
    assert!(
        all.contains("HuJSON allows comments and trailing commas"),
        "{all}"
    );
    assert_eq!(double.request_count(), 0, "nothing was asked of the API");
}
