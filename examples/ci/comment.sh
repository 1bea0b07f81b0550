#!/bin/sh
# Posts BODY_FILE as one pull-request comment, updated in place: the comment
# starts with the marker line `<!-- NAME -->`; an earlier comment with that
# marker is edited, else a new one is made.
#
#   comment.sh NAME BODY_FILE
#
# Needs: gh (authenticated by GH_TOKEN), GITHUB_REPOSITORY (owner/repo, set
# by GitHub Actions), PR_NUMBER.
set -eu
name=${1:?usage: comment.sh NAME BODY_FILE}
body=${2:?usage: comment.sh NAME BODY_FILE}
repo=${GITHUB_REPOSITORY:?GITHUB_REPOSITORY is not set}
pr=${PR_NUMBER:?PR_NUMBER is not set}
marker="<!-- $name -->"

file=$(mktemp)
trap 'rm -f "$file"' EXIT
{
  printf '%s\n' "$marker"
  cat "$body"
} >"$file"

id=$(gh api --paginate "repos/$repo/issues/$pr/comments" \
  --jq ".[] | select(.body | startswith(\"$marker\")) | .id" | head -n 1)
if [ -n "$id" ]; then
  gh api --method PATCH "repos/$repo/issues/comments/$id" -F "body=@$file" >/dev/null
  echo "claw: updated comment $id on #$pr"
else
  gh api --method POST "repos/$repo/issues/$pr/comments" -F "body=@$file" >/dev/null
  echo "claw: commented on #$pr"
fi
