#!/usr/bin/env bash
# send-test-webhook.sh signs fixtures/test-webhook.json (an accepted call
# permission request) with fresh timestamps and posts it the way Meta does:
# what `go run ./examples/server -send-test-webhook` does, with curl.
#
#   CALLREADY_APP_SECRET=… examples/server/send-test-webhook.sh [http://127.0.0.1:8080/webhook]
set -euo pipefail
: "${CALLREADY_APP_SECRET:?set CALLREADY_APP_SECRET to the secret the server uses}"
url=${1:-http://127.0.0.1:8080/webhook}
now=$(date +%s)
body=$(sed -e "s/{{now}}/$now/" -e "s/{{expires}}/$((now + 7 * 24 * 3600))/" -e "s/{{id}}/wamid.test.$now.$RANDOM/" \
  "$(dirname "$0")/fixtures/test-webhook.json")
sig=$(printf %s "$body" | openssl dgst -sha256 -hmac "$CALLREADY_APP_SECRET" | sed 's/^.* //')
curl -sS --fail-with-body -H "Content-Type: application/json" -H "X-Hub-Signature-256: sha256=$sig" \
  --data-binary "$body" "$url"
echo
