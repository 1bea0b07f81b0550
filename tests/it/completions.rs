//! `claw completions SHELL`: scripts the shells accept, covering the commands.

use crate::common::{says, which, Ctx};
use std::process::Command;

#[test]
fn completion_scripts_for_bash_zsh_and_fish() {
    let t = Ctx::new();
    let bash = t.ok(&["completions", "bash"], 0).stdout;
    says(&bash, "_claw()");
    says(&bash, "complete -F _claw");
    for cmd in [
        "plan",
        "apply",
        "output",
        "check",
        "completions",
        "--replace",
    ] {
        says(&bash, cmd);
    }
    t.write("claw.bash", &bash);
    // bash is always there where the tests run; the script must parse.
    let o = Command::new("bash")
        .arg("-n")
        .arg(t.path("claw.bash"))
        .output()
        .expect("run bash");
    assert!(
        o.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let zsh = t.ok(&["completions", "zsh"], 0).stdout;
    says(&zsh, "#compdef claw");
    says(&zsh, "'output:");
    if which("zsh") {
        t.write("_claw", &zsh);
        let o = Command::new("zsh")
            .arg("-n")
            .arg(t.path("_claw"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "zsh -n: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let fish = t.ok(&["completions", "fish"], 0).stdout;
    says(&fish, "complete -c claw");
    says(&fish, "-a \"check\"");
    let o = t.claw(&["completions", "powershell"]);
    assert_ne!(o.code, 0);
    says(&o.stderr, "possible values: bash, zsh, fish");
}
