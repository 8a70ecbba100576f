#!/usr/bin/env bash
# Runs the whole test suite: go vet, go test -race on every package, against
# a throwaway PostgreSQL this script starts (and stops) when the server
# binaries are installed, plus short fuzzing and benchmark smoke runs.
#
#   ./scripts/test.sh            # everything
#   FUZZTIME=60s ./scripts/test.sh   # fuzz longer
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${FUZZTIME:-20s}
pgdir=""
cleanup() {
  if [ -n "$pgdir" ]; then
    ./scripts/pg.sh stop "$pgdir" >/dev/null 2>&1 || true
    rm -rf "$pgdir"
  fi
}
trap cleanup EXIT

if [ -z "${CALLREADY_TEST_POSTGRES:-}" ]; then
  if ./scripts/pg.sh available >/dev/null 2>&1; then
    pgdir=$(mktemp -d /tmp/callready-pg.XXXXXX)
    eval "$(./scripts/pg.sh start "$pgdir")"
    echo "test.sh: PostgreSQL started for the tests at ${CALLREADY_TEST_POSTGRES%%\?*}"
  else
    echo "test.sh: no PostgreSQL server binaries found: PostgreSQL tests will be skipped (they fail under CI=true)"
  fi
fi
export CALLREADY_TEST_POSTGRES="${CALLREADY_TEST_POSTGRES:-}"

echo "== gofmt and go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
go vet ./...

echo "== go test -race ./..."
go test -race -count=1 -timeout 20m ./...

echo "== fuzzing, $FUZZTIME per target"
for target in $(go test -list '^Fuzz' ./webhook/ 2>/dev/null | grep '^Fuzz' || true); do
  go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" ./webhook/
done

if [ -d bench ]; then
  echo "== benchmark harness smoke run (no speed assertions)"
  (cd bench && go vet ./... && go test -count=1 -short -bench . -benchtime 1x ./...)
fi
