#!/bin/bash
# The deployment guide's command line, as a thin wrapper over the Invoke tasks. Options
# go before or after the command, as the guide writes them (`-v 2.0.0 deploy` and
# `deploy -v 2.0.0` are the same).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'USAGE'
Usage:
  scripts/deploy.sh [deploy] [-v VERSION | -t major|minor|patch] [-s STAGE] [--dry-run] [--skip-tests]
  scripts/deploy.sh backup [-s STAGE]
  scripts/deploy.sh rollback VERSION|previous [-s STAGE]
  scripts/deploy.sh -h
Options may come before or after the command.

  -v, --version VERSION   deploy this semantic version (1.4.0, or a git tag: v1.4.0)
  -t, --type TYPE         bump the last release: major, minor or patch
                          (neither: $VERSION from the environment if set, e.g. a CI
                          job's tag, else -t patch)
  -s, --stage STAGE       stage from invoke.yaml (default: production)
      --dry-run           print the plan, change nothing
      --skip-tests        do not run deploy.test_command
USAGE
}

INV=inv
[ -x .venv/bin/inv ] && INV=.venv/bin/inv

command=""
stage=production
version=""
bump=""
flags=()
target=""
need() {  # an option's value: present, not empty, and not another option
    if [ "$2" -lt 2 ] || [ -z "$3" ] || [ "${3:0:1}" = "-" ]; then
        echo "$1 needs a value" >&2; usage >&2; exit 2
    fi
}
while [ $# -gt 0 ]; do
    case "$1" in
        -v|--version) need "$1" $# "${2:-}"; version=$2; shift 2 ;;
        -t|--type) need "$1" $# "${2:-}"; bump=$2; shift 2 ;;
        -s|--stage) need "$1" $# "${2:-}"; stage=$2; shift 2 ;;
        --dry-run|--skip-tests) flags+=("$1"); shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
        deploy|backup|rollback)
            if [ -n "$command" ]; then echo "two commands: $command and $1" >&2; usage >&2; exit 2; fi
            command=$1; shift ;;
        *) if [ "$command" = rollback ] && [ -z "$target" ]; then target=$1; shift
           else echo "unexpected argument: $1" >&2; usage >&2; exit 2; fi ;;
    esac
done
command=${command:-deploy}

if [ "$command" != deploy ] && { [ -n "$version" ] || [ -n "$bump" ] || [ ${#flags[@]} -gt 0 ]; }; then
    echo "-v, -t, --dry-run and --skip-tests are options of deploy, not of $command" >&2; exit 2
fi
case "$command" in
    deploy)
        if [ -n "$version" ] && [ -n "$bump" ]; then echo "give -v or -t, not both" >&2; exit 2; fi
        if [ -z "$version" ] && [ -z "$bump" ]; then
            if [ -n "${VERSION:-}" ]; then version=$VERSION; else bump=patch; fi
        fi
        if [ -n "$version" ]; then choice=(--version "$version"); else choice=(--bump "$bump"); fi
        exec "$INV" deploy --stage "$stage" "${choice[@]}" ${flags[@]+"${flags[@]}"} ;;
    backup) exec "$INV" db.backup --stage "$stage" ;;
    rollback)
        [ -n "$target" ] || { echo "rollback needs a VERSION (or previous)" >&2; exit 2; }
        exec "$INV" rollback "$target" --stage "$stage" ;;
esac
