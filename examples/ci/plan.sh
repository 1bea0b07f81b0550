#!/bin/sh
# On a pull request: plan, save the plan to $CLAW_PLAN (the workflow keeps it
# as an artifact, for apply-after-merge) and post the markdown plan as one
# comment, updated in place on every push. Exit 0 when the plan was made
# (with or without changes), 1 when planning failed (the comment says why).
set -eu
. "$(dirname "$0")/common.sh"

md=$(mktemp)
err=$(mktemp)
trap 'rm -f "$md" "$err"' EXIT
set +e
"$CLAW" -C "$CLAW_DIR" plan --out "$CLAW_PLAN" --format markdown --detailed-exitcode >"$md" 2>"$err"
rc=$?
set -e
case $rc in
  0 | 2) ;;
  *)
    cat "$err" >&2
    fenced "claw plan failed (\`$CLAW_DIR\`)" "$err" >"$md"
    ;;
esac
summary <"$md"
if [ -n "${PR_NUMBER:-}" ]; then
  "$here/comment.sh" "claw-plan:$CLAW_DIR" "$md"
fi
case $rc in
  0) echo "claw: no changes" ;;
  2) echo "claw: the plan has changes; saved to $CLAW_PLAN" ;;
  *) exit 1 ;;
esac
