#!/bin/bash
# The deployment guide's command line, as a thin wrapper over the Invoke tasks.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'USAGE'
Usage:
  scripts/deploy.sh [deploy] (-v VERSION | -t major|minor|patch) [-s STAGE] [--dry-run] [--skip-tests]
  scripts/deploy.sh backup [-s STAGE]
  scripts/deploy.sh rollback VERSION|previous [-s STAGE]
  scripts/deploy.sh -h

  -v, --version VERSION   deploy this semantic version (e.g. 1.4.0)
  -t, --type TYPE         bump the last release: major, minor or patch
  -s, --stage STAGE       stage from invoke.yaml (default: production)
      --dry-run           print the plan, change nothing
      --skip-tests        do not run deploy.test_command
USAGE
}

INV=inv
[ -x .venv/bin/inv ] && INV=.venv/bin/inv

command=deploy
case "${1:-}" in
    deploy|backup|rollback) command=$1; shift ;;
    -h|--help) usage; exit 0 ;;
esac

stage=production
args=()
target=""
while [ $# -gt 0 ]; do
    case "$1" in
        -v|--version) args+=(--version "${2:?-v needs a version}"); shift 2 ;;
        -t|--type) args+=(--bump "${2:?-t needs major, minor or patch}"); shift 2 ;;
        -s|--stage) stage=${2:?-s needs a stage}; shift 2 ;;
        --dry-run) args+=(--dry-run); shift ;;
        --skip-tests) args+=(--skip-tests); shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
        *) if [ "$command" = rollback ] && [ -z "$target" ]; then target=$1; shift
           else echo "unexpected argument: $1" >&2; usage >&2; exit 2; fi ;;
    esac
done

case "$command" in
    deploy) exec "$INV" deploy --stage "$stage" "${args[@]}" ;;
    backup) exec "$INV" db.backup --stage "$stage" ;;
    rollback)
        [ -n "$target" ] || { echo "rollback needs a VERSION (or previous)" >&2; exit 2; }
        exec "$INV" rollback "$target" --stage "$stage" ;;
esac
