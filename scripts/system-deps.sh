#!/usr/bin/env bash
# Debian packages the test suite needs, installed only when missing (CI machines start bare).
# Each entry: a command or file to look for, then the package that provides it.
set -euo pipefail
needed=(
  "redis-server:redis-server"
  "chromium:chromium"
  "/usr/lib/postgresql/15/bin/initdb:postgresql-15"
  "node:nodejs"  # the agent CLI tests install Claude Code and Codex with npm
  "npm:npm"
)
missing=()
for entry in "${needed[@]}"; do
  probe=${entry%%:*} package=${entry#*:}
  if [[ $probe == /* ]]; then [[ -x $probe ]] && continue; else command -v "$probe" >/dev/null && continue; fi
  missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing ${missing[*]}: install them with apt-get (needs root)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
