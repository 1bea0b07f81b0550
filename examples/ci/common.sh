# Shared settings of the claw CI scripts (sourced, not run).
#
#   CLAW       the claw binary (default: claw on PATH)
#   CLAW_DIR   the folder holding claw.toml (default: .)
#   CLAW_PLAN  the saved plan file (default: claw-plan.json, relative to
#              the folder the script runs in, not to CLAW_DIR)
CLAW=${CLAW:-claw}
CLAW_DIR=${CLAW_DIR:-.}
CLAW_PLAN=${CLAW_PLAN:-claw-plan.json}
case $CLAW_PLAN in
  /*) ;;
  *) CLAW_PLAN=$PWD/$CLAW_PLAN ;;
esac
here=$(cd "$(dirname "$0")" && pwd)

# Appends stdin to the job's summary page, when there is one.
summary() {
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
    cat >>"$GITHUB_STEP_SUMMARY"
  else
    cat >/dev/null
  fi
}

# Prints a markdown section `### TITLE` with FILE as a code block (its last
# 60,000 bytes, so that it fits a comment).
fenced() {
  printf '### %s\n\n```\n' "$1"
  tail -c 60000 "$2"
  printf '\n```\n'
}
