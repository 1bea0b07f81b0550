//! `[output.*]` end to end: listed in the plan when they change, printed and
//! recorded by apply, read back by `claw output` (sensitive ones recomputed
//! from the configuration, never stored in clear), and bad ones refused with
//! their location.

use crate::common::{says, Ctx};

const TOKEN: &str = "tok-4f1c9e2a77";

const STACK: &str = r#"
[stack]
name = "outs"

[vars]
who = "team"

[file.a]
path = "out/a.txt"
content = "hello ${vars.who}\n"

[output.path]
value = "${file.a.path}"
description = "where the file is"

[output.greeting]
value = "hi ${vars.who}, see ${file.a.path}"

[output.token]
value = { env = "CLAW_T_OUT_TOKEN" }
sensitive = true
"#;

#[test]
fn outputs_are_planned_recorded_and_read_back() {
    let t = Ctx::new().env("CLAW_T_OUT_TOKEN", TOKEN);
    t.write("claw.toml", STACK);
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(&o.stdout, "\nOutputs:\n");
    says(&o.stdout, "  + path = \"out/a.txt\"\n");
    says(&o.stdout, "  + greeting = \"hi team, see out/a.txt\"\n");
    says(&o.stdout, "  + token = (sensitive)\n");
    let o = t.ok(&["plan", "--format", "json"], 0);
    let plan: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    let names: Vec<&str> = plan["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["greeting", "path", "token"]);
    assert!(plan["outputs"][2]["after"]["$sensitive"].is_string());
    let o = t.ok(&["plan", "--format", "markdown"], 0);
    says(&o.stdout, "#### Outputs");
    says(&o.stdout, "+ path = \"out/a.txt\"");

    let o = t.ok(&["apply", "--auto-approve"], 0);
    says(
        &o.stdout,
        "\nOutputs:\n\ngreeting = \"hi team, see out/a.txt\"\npath = \"out/a.txt\"\ntoken = (sensitive)\n",
    );
    let state = t.read(".claw/state.json");
    assert!(!state.contains(TOKEN), "no clear text in the state");
    let st = t.state();
    assert_eq!(st["outputs"]["path"]["value"], "out/a.txt");
    assert_eq!(st["outputs"]["token"]["sensitive"], true);
    assert!(st["outputs"]["token"]["value"]["$sensitive"].is_string());
    let o = t.ok(&["plan", "--detailed-exitcode"], 0);
    assert!(o.stdout.starts_with("No changes."), "{}", o.stdout);

    // Read back: a list, bare values (a sensitive one too), one JSON object.
    let o = t.ok(&["output"], 0);
    assert_eq!(
        o.stdout,
        "greeting = \"hi team, see out/a.txt\"\npath = \"out/a.txt\"\ntoken = (sensitive)\n"
    );
    assert_eq!(t.ok(&["output", "path"], 0).stdout, "out/a.txt\n");
    assert_eq!(t.ok(&["output", "token"], 0).stdout, format!("{TOKEN}\n"));
    let o = t.ok(&["output", "--json"], 0);
    let j: serde_json::Value = serde_json::from_str(&o.stdout).expect("one JSON object");
    assert_eq!(
        j,
        serde_json::json!({
            "greeting": {"sensitive": false, "type": "string", "value": "hi team, see out/a.txt"},
            "path": {"sensitive": false, "type": "string", "value": "out/a.txt"},
            "token": {"sensitive": true, "type": "string", "value": TOKEN},
        })
    );
    assert_eq!(
        t.ok(&["output", "path", "--json"], 0).stdout,
        "\"out/a.txt\"\n"
    );
    let o = t.ok(&["output", "pth"], 1);
    says(&o.stderr, "no output pth");
    says(&o.stderr, "did you mean `path`?");

    // A new secret value: only the output changes; `claw output` shows only
    // what was applied.
    let t = t.env("CLAW_T_OUT_TOKEN", "tok-rotated-0b9d");
    let o = t.ok(&["plan", "--detailed-exitcode"], 2);
    says(&o.stdout, "only outputs change");
    says(&o.stdout, "  ~ token = (sensitive value changed)\n");
    let o = t.ok(&["output", "token"], 1);
    says(
        &o.stderr,
        "evaluates to another value than the last apply recorded",
    );
    assert!(!o.all().contains("tok-rotated"), "{}", o.all());
    t.ok(&["apply", "--auto-approve"], 0);
    assert_eq!(t.ok(&["output", "token"], 0).stdout, "tok-rotated-0b9d\n");

    // A removed output is deleted from the record; destroy forgets them all.
    t.write(
        "claw.toml",
        &STACK.replace(
            "[output.greeting]\nvalue = \"hi ${vars.who}, see ${file.a.path}\"\n",
            "",
        ),
    );
    let o = t.ok(&["plan"], 0);
    says(&o.stdout, "  - greeting = \"hi team, see out/a.txt\"\n");
    t.ok(&["apply", "--auto-approve"], 0);
    assert!(t.state()["outputs"].get("greeting").is_none());
    let o = t.ok(&["destroy", "--auto-approve"], 0);
    says(
        &o.stdout,
        "Outputs:\n  - path = \"out/a.txt\"\n  - token = (sensitive)\n",
    );
    assert!(
        !o.stdout.contains("Outputs:\n\n"),
        "none left to print: {}",
        o.stdout
    );
    let o = t.ok(&["output"], 0);
    assert_eq!(o.stdout, "");
    says(&o.stderr, "No outputs recorded");
}

#[test]
fn bad_outputs_are_located_with_a_hint() {
    let t = Ctx::new();
    let bad = |body: &str, wants: &[&str]| {
        t.write(
            "claw.toml",
            &format!("[stack]\nname = \"outs\"\n\n[file.a]\npath = \"out/a.txt\"\ncontent = \"\"\n\n{body}"),
        );
        let o = t.ok(&["validate"], 1);
        for w in wants {
            says(&o.stderr, w);
        }
    };
    bad(
        "[output.x]\nvalue = \"${file.a.paht}\"\n",
        &[
            "`${file.a.paht}`: file.a has no attribute `paht`",
            "claw.toml:9:9",
            "did you mean `path`?",
        ],
    );
    bad(
        "[output.x]\nvalue = \"${file.b.path}\"\n",
        &[
            "unknown resource file.b",
            "claw.toml:9:9",
            "did you mean `file.a`?",
        ],
    );
    bad(
        "[output.x]\nvalue = { env = \"HOME\" }\n",
        &[
            "output.x: its value is sensitive",
            "claw.toml:9:9",
            "add `sensitive = true`",
        ],
    );
    bad(
        "[output.x]\nvalue = \"v\"\ndescripton = \"d\"\n",
        &[
            "unknown key `descripton` in [output.x]",
            "claw.toml:10:1",
            "did you mean `description`?",
        ],
    );
}
