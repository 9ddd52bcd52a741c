#!/usr/bin/env bash
# Builds tests/upgrade/r18-workspace.tar.zst: a workspace made and used by the release that landed at
# stop 18 (commit 9118616), so that the upgrade test runs the new release on real old data.
# Its records and settings hold absolute paths, so it is made (and unpacked by the test) at one path.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(git -C "$here" rev-parse --show-toplevel)"
old=$(mktemp -d)
git -C "$repo" worktree add -q "$old/src" 9118616
python3 -m venv --system-site-packages "$old/venv"
"$old/venv/bin/pip" install -q -e "$old/src" --no-deps
m="$old/venv/bin/mobius"
ws=/tmp/mobius-upgrade-r18
rm -rf "$ws"
"$m" init "$ws" --sample
cd "$ws"
"$m" backup create
"$m" golden approve sushi-go
printf 'name: old-plan\ntype: combined\nrisk: low\nsteps:\n  - backup: {}\n  - media.migrate: {to: media-v2}\nvalidate: [file_counts, checksums, db_check]\nprobes: []\n' > plan.yaml
"$m" migrate run plan.yaml --yes
mkdir -p environments
printf 'MOBIUS_DATABASE_URL=sqlite:///prod.db\nMOBIUS_LIBRARY_DIR=prodlib\nMOBIUS_BACKUP_DIR=prodbk\n' > environments/production.env
cp mobius.db prod.db
cp -a media-v2 prodlib
"$m" deploy --env production
rm -f logs/*
tar -C /tmp -cf - mobius-upgrade-r18 | zstd -19 -q -f -o "$here/r18-workspace.tar.zst"
git -C "$repo" worktree remove --force "$old/src"
rm -rf "$old" "$ws"
