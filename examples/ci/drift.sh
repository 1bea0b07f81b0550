#!/bin/sh
# On a schedule: is the live fleet still what claw.toml says? Exit 0 when
# the plan is empty, 2 when it has changes (drift, or a merge not applied;
# the plan goes to the job summary and stdout), 1 when planning failed.
set -eu
. "$(dirname "$0")/common.sh"

md=$(mktemp)
trap 'rm -f "$md"' EXIT
set +e
"$CLAW" -C "$CLAW_DIR" plan --detailed-exitcode --format markdown >"$md"
rc=$?
set -e
case $rc in
  0) echo "claw: no drift" ;;
  2)
    cat "$md"
    summary <"$md"
    echo "claw: drift: the live fleet differs from the configuration" >&2
    ;;
  *) echo "claw: planning failed" >&2 ;;
esac
exit "$rc"
