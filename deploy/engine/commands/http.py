"""HTTP probes run inside a container (the proxy's), over the stack's network."""
from __future__ import annotations

from collections.abc import Sequence

# Rounds of fetches, every URL at once, each tried once (busybox or GNU wget; GNU's would
# retry a timeout 20 times) with its body discarded: an error status, a refused
# connection or no answer within the timeout fails it. Ends after the first round in
# which any URL answered, printing those, one a line (one short write each: lines from
# parallel fetches never mix), or, printing nothing, once no new round may start within
# the time given. A round that fails at once (nothing listening yet) is followed by the
# next 0.1 s later: one command waits for a start with the latency of a fast poll.
PROBE_SCRIPT = ('t=$1; end=$(( $(date +%s) + $2 )); shift 2; while :; do '
                'ok=$(for u in "$@"; do (wget -q -t 1 -T "$t" -O /dev/null "$u" && echo "$u") & done; wait); '
                'if [ -n "$ok" ]; then echo "$ok"; exit 0; fi; '
                'if [ "$(date +%s)" -ge "$end" ]; then exit 0; fi; '
                'sleep 0.1; done')


def probe(urls: Sequence[str], timeout: int = 3, within: int = 0) -> list[str]:
    """GET every one of ``urls`` in parallel, again every 0.1 s until one answers or the
    clock reaches the whole second ``within`` seconds on (so for ``within`` - 1 to
    ``within`` seconds; 0: one round); prints those that answered 2xx/3xx within
    ``timeout`` seconds (whole seconds: busybox's wget takes no fractions), one a line.
    The command ends within ``within`` + ``timeout`` seconds."""
    return ["sh", "-c", PROBE_SCRIPT, "sh", str(max(1, int(timeout))), str(max(0, int(within))), *urls]


def answered(stdout: str) -> set[str]:
    """The URLs a ``probe`` printed."""
    return {line.strip() for line in stdout.splitlines() if line.strip()}
