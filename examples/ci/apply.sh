#!/bin/sh
# After a merge: applies exactly the saved plan $CLAW_PLAN. claw refuses,
# changing nothing, a plan that no longer holds (the configuration, an
# input, the state or a live object changed since it was made). The result
# goes to the job summary and, with PR_NUMBER, to one comment on the pull
# request. Exits with claw's code.
set -eu
. "$(dirname "$0")/common.sh"

if [ ! -f "$CLAW_PLAN" ]; then
  echo "claw: no plan file $CLAW_PLAN" >&2
  exit 1
fi
out=$(mktemp)
md=$(mktemp)
trap 'rm -f "$out" "$md"' EXIT
set +e
"$CLAW" -C "$CLAW_DIR" apply "$CLAW_PLAN" >"$out" 2>&1
rc=$?
set -e
cat "$out"
if [ "$rc" -eq 0 ]; then
  fenced "claw apply: applied (\`$CLAW_DIR\`)" "$out" >"$md"
else
  fenced "claw apply failed (\`$CLAW_DIR\`, exit $rc)" "$out" >"$md"
fi
summary <"$md"
if [ -n "${PR_NUMBER:-}" ]; then
  "$here/comment.sh" "claw-apply:$CLAW_DIR" "$md"
fi
exit "$rc"
