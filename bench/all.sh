#!/usr/bin/env bash
# bench/all.sh: every whole-process benchmark in turn, each printing its table.
# Needs age, wrk, sqlite3, curl, python3 and GNU time; about 20 minutes on 2 cores.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
echo "## Streaming (REPEAT=8 bench/rss.sh 256 1024, then REPEAT=4 bench/rss.sh 4096)"
REPEAT=8 "$here/rss.sh" 256 1024
REPEAT=4 "$here/rss.sh" 4096
echo; echo "## Logged requests (bench/logged.sh 32 10)"; "$here/logged.sh" 32 10
echo; echo "## Verification (bench/verify.sh 1000000)"; "$here/verify.sh" 1000000
echo; echo "## Scale (bench/scale.sh 1000000)"; "$here/scale.sh" 1000000
echo; echo "## Backup and restore (bench/backup.sh 200 5)"; "$here/backup.sh" 200 5
echo; echo "## Ingest (bench/ingest.sh)"; "$here/ingest.sh"
