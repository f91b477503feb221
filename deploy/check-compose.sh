#!/usr/bin/env bash
# Validates docker-compose.yml without a container engine: `docker compose config -q` when the
# compose plugin is installed, else the standalone `docker-compose config -q`. Variables come
# from deploy/compose.env.example, as a user's .env would give them. Exits non-zero when the
# file is invalid or when neither tool is installed. Run by CI and test/deploy-files.test.ts.
#
#   deploy/check-compose.sh [compose-file]     (default: docker-compose.yml of the repository)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
compose_file="$(realpath "${1:-$root/docker-compose.yml}")"
env_file="$root/deploy/compose.env.example"
files=(--project-directory "$root" --file "$compose_file" --env-file "$env_file")

if docker compose version >/dev/null 2>&1; then
  exec docker compose "${files[@]}" config -q
elif command -v docker-compose >/dev/null 2>&1; then
  exec docker-compose "${files[@]}" config -q
fi
echo "check-compose: neither the docker compose plugin nor docker-compose is installed" >&2
exit 127
