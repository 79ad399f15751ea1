#!/usr/bin/env bash
# `npm test [-- files or folders]`: install what is missing, then run the test suite
# against the local services (started here when they are not running already).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash infra/install.sh
exec node --import tsx infra/run-tests.ts "$@"
