#!/bin/sh
# The CI pipeline of examples/ci/github-actions.yml as a plain POSIX shell script, so that it runs the same way in any
# CI system (and in ftkit's own test suite). Steps: pull the shared registry, validate the recipe, check its data,
# train, gate the new run against the tagged baseline with `ftkit diff --fail-on`, tag it on success, push the registry.
#
# Environment (only RECIPE is required):
#   RECIPE        recipe YAML to train
#   DATA          data files to check, space-separated (default: the recipe's data.train and data.eval)
#   REGISTRY      run registry folder (default .ftkit/registry)
#   REMOTE        git remote (URL or path) holding the shared registry; empty: no pull, no push
#   BASELINE_TAG  tag of the run to beat; moved to the new run when it passes the gate (default baseline)
#   GATE          comma-separated `ftkit diff --fail-on` bounds (default 'eval.loss>+0.05')
#   FTKIT         the ftkit command (default ftkit)
#
# Exit status: 0 passed (or first run, which becomes the baseline), 1 the gate failed (the run is still recorded and
# pushed, but not tagged), 2 bad input (recipe, data, remote), anything else a failed step.
set -eu

: "${RECIPE:?set RECIPE to the recipe YAML to train}"
REGISTRY=${REGISTRY:-.ftkit/registry}
REMOTE=${REMOTE:-}
BASELINE_TAG=${BASELINE_TAG:-baseline}
GATE=${GATE:-eval.loss>+0.05}
FTKIT=${FTKIT:-ftkit}
export FTKIT_REGISTRY="$REGISTRY"

step() { printf '\n== %s\n' "$*" >&2; }

if [ -n "$REMOTE" ]; then
    step "pull the shared registry from $REMOTE"
    $FTKIT registry pull "$REMOTE"
fi

step "validate $RECIPE"
$FTKIT validate "$RECIPE"

step "check the data"
if [ -z "${DATA:-}" ]; then
    # The recipe's own data files, read from the resolved recipe that `validate --json` prints.
    DATA=$($FTKIT validate "$RECIPE" --json | python3 -c '
import json, sys
data = json.load(sys.stdin)["resolved"]["data"]
print(" ".join(str(data[key]) for key in ("train", "eval") if data.get(key)))')
fi
for file in $DATA; do
    $FTKIT data check "$file"
done

step "train"
$FTKIT run "$RECIPE"

status=0
if $FTKIT runs --tag "$BASELINE_TAG" --json | grep -q '"id"'; then
    step "gate: $BASELINE_TAG -> @latest must not break $GATE"
    set --
    old_ifs=$IFS
    IFS=,
    for bound in $GATE; do
        set -- "$@" --fail-on "$bound"
    done
    IFS=$old_ifs
    $FTKIT diff "$BASELINE_TAG" @latest "$@" || status=$?
else
    step "no run is tagged $BASELINE_TAG yet: this run becomes the baseline"
fi

if [ "$status" -eq 0 ]; then
    step "tag the new run $BASELINE_TAG"
    $FTKIT tag @latest "$BASELINE_TAG"
fi

if [ -n "$REMOTE" ]; then
    step "push the registry to $REMOTE"
    $FTKIT registry push "$REMOTE"
fi

exit "$status"
