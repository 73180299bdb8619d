#!/usr/bin/env bash
# Run one stage of 'make test', print how long it took, and record it in .build/stage-times.tsv.
# Usage: scripts/stage.sh NAME COMMAND [ARGS...]
set -uo pipefail
name=$1; shift
mkdir -p .build
printf '\n==> %s\n' "$name"
start=$(date +%s)
"$@"
rc=$?
secs=$(( $(date +%s) - start ))
printf '%s\t%s\t%s\n' "$name" "$secs" "$([ $rc -eq 0 ] && echo ok || echo FAILED)" >>.build/stage-times.tsv
if [ $rc -eq 0 ]; then
  printf '<== %s ok (%ss)\n' "$name" "$secs"
else
  printf '<== %s FAILED with exit code %s (%ss)\n' "$name" "$rc" "$secs" >&2
fi
exit $rc
