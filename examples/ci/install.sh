#!/bin/sh
# Makes `claw` available: nothing to do when it is on PATH (a self-hosted
# runner, a cached binary); else builds it with cargo from $CLAW_GIT (a git
# URL of claw's repository, e.g. a repository variable) at $CLAW_REF.
set -eu
if command -v "${CLAW:-claw}" >/dev/null 2>&1; then
  echo "claw: using $(command -v "${CLAW:-claw}")"
  exit 0
fi
git_url=${CLAW_GIT:?claw is not on PATH and CLAW_GIT (where to build it from) is not set}
set -- cargo install --locked --git "$git_url"
if [ -n "${CLAW_REF:-}" ]; then
  set -- "$@" --rev "$CLAW_REF"
fi
"$@" claw
