#!/bin/sh
# Stand-in for the Claude Code agent: says who it is, records the start in
# the history volume, then waits for work.
echo "clawker agent ${CLAWKER_AGENT:-?} of project ${CLAWKER_PROJECT:-?} (${CLAWKER_MODE:-?}) ready"
echo "$(date) start" >> /commandhistory/.history
touch /tmp/clawker-ready       # the container's healthcheck
exec sleep 2147483647
