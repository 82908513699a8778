#!/usr/bin/env bash
# Runs the offline voice agent (installs what it needs on first run).
# Extra arguments go to va-launch, e.g. `scripts/demo.sh --quiet`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/bootstrap.sh"
cd "$root"
exec "$root/.venv/bin/va-launch" run launch/voice_agent.toml "$@"
