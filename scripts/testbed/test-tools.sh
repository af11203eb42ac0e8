#!/bin/bash
# The tools only the tests use (setup.sh installs what the deploy itself needs).
# Safe to run again. scripts/test.sh runs it; run it, as root, before running the
# integration tests by hand.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "run as root (it installs packages)"
# openssl: the tls tasks; curl, wget: tests; pebble, certbot, cron: the ACME and schedule
# tests; restic: offsite backups; rclone: an append-only offsite repository (rclone serve
# restic --append-only); nftables: the firewall (nft on the hosts); wrk: load during the
# zero-downtime tests; chromium: the example page run in a real browser.
need_packages wrk openssl curl wget pebble certbot cron nftables restic rclone chromium
