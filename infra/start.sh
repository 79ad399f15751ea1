#!/usr/bin/env bash
# `npm start`: install what is missing, then run the whole local stack in the foreground.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash infra/install.sh
# node --import tsx rather than npx tsx: fewer processes in between to relay Ctrl-C.
exec node --import tsx infra/stack.ts
