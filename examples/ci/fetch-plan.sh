#!/bin/sh
# After a merge: downloads the plan that the plan workflow saved for the
# pull request's last commit (HEAD_SHA), into the folder of $CLAW_PLAN.
#
# Needs: gh (GH_TOKEN with actions: read), HEAD_SHA; CLAW_PLAN_WORKFLOW (the
# plan workflow's file name, default claw-plan.yml) and CLAW_ARTIFACT (the
# artifact's name, default claw-plan).
set -eu
. "$(dirname "$0")/common.sh"
sha=${HEAD_SHA:?HEAD_SHA is not set}
workflow=${CLAW_PLAN_WORKFLOW:-claw-plan.yml}
artifact=${CLAW_ARTIFACT:-claw-plan}

run=$(gh run list --workflow "$workflow" --commit "$sha" --status success \
  --limit 1 --json databaseId --jq '.[0].databaseId')
if [ -z "$run" ] || [ "$run" = null ]; then
  echo "claw: no successful $workflow run for $sha; nothing to apply" >&2
  echo "claw: plan the merged commit again (re-run the plan workflow) and apply that" >&2
  exit 1
fi
dest=$(dirname "$CLAW_PLAN")
mkdir -p "$dest"
gh run download "$run" --name "$artifact" --dir "$dest"
if [ ! -f "$CLAW_PLAN" ]; then
  echo "claw: run $run has no $(basename "$CLAW_PLAN") in artifact $artifact" >&2
  exit 1
fi
echo "claw: fetched the plan of run $run ($sha)"
