#!/usr/bin/env bash
# Installs what Hearth needs on Debian 12 and is missing: system packages, then node_modules.
# Idempotent and quiet when nothing is missing. Run by `npm start` and `npm test`.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# gcc + libc6-dev build the static exec bootstrap; acl lets the postgres user reach a data
# dir under a private home (e.g. /root); the rest are the local services and image tools.
PACKAGES=(
  redis-server postgresql runc docker-registry busybox-static attr acl cpio skopeo umoci
  gcc libc6-dev iproute2 ca-certificates qemu-system-x86 chromium
)

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "hearth: missing Debian packages: ${missing[*]}; run this as root or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "hearth: installing ${missing[*]}"
  # Hearth runs its own Redis, Postgres and registry with data under .hearth/. The Debian
  # packages would otherwise start system-wide daemons on the same ports, so keep the
  # packages from starting them (policy-rc.d) or creating the default cluster.
  policy_rc=/usr/sbin/policy-rc.d
  own_policy=""
  if [ ! -e "$policy_rc" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
    chmod 755 "$policy_rc"
    own_policy=1
    trap 'rm -f "$policy_rc"' EXIT
  fi
  if ! installed postgresql-common; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/hearth.conf
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$(mktemp)
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    echo "hearth: apt-get install ${missing[*]} failed" >&2
    exit 1
  fi
  rm -f "$apt_log"
  # The units would still start at the next boot; turn off only those installed just now.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    for pkg in "${missing[@]}"; do
      case "$pkg" in
        redis-server | postgresql | docker-registry) systemctl disable --now --quiet "$pkg" || true ;;
      esac
    done
  fi
  if [ -n "$own_policy" ]; then rm -f "$policy_rc"; trap - EXIT; fi
fi

# node_modules: a clean install on a fresh clone, an update when the lockfile moved on.
if [ ! -d node_modules ]; then
  if [ -f package-lock.json ]; then
    npm ci --no-audit --no-fund --loglevel=error
  else
    npm install --no-audit --no-fund --loglevel=error
  fi
elif [ package-lock.json -nt node_modules/.package-lock.json ] || [ package.json -nt node_modules/.package-lock.json ]; then
  # Not `npm ci`: it deletes node_modules first, which a running stack may be using.
  npm install --no-audit --no-fund --loglevel=error
fi
