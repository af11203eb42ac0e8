"""`inv loadtest`: k6 against the stage's public URL, its thresholds beside what was measured."""
from pathlib import Path

from invoke import Context

from tasks._input import whole_number
from tasks._open import ROOT, open_settings
from tasks._where import Where, on_stage


@on_stage(name="loadtest", help={
    "script": "the k6 script (default: the guide's scripts/load-test.js); it reads the URL from BASE_URL",
    "duration": "a constant load for this long (30s, 2m) instead of the script's stages",
    "vus": "virtual users of that constant load (default 1; needs --duration)",
    "url": "the URL to load instead of the stage's (its HTTP port here; on hosts, NEXT_PUBLIC_APP_URL)",
})
def loadtest_(c: Context, script: str | None = None, duration: str | None = None, vus: str | None = None, url: str | None = None,
              *, where: Where) -> None:
    """Run k6 against the stage's public URL; print its thresholds beside what was measured; exit 1 when one fails.

    The URL: on the local engine, the proxy's published HTTP port on 127.0.0.1; on
    hosts, the stage's NEXT_PUBLIC_APP_URL, loaded from this machine (--url for another).
    The load is the script's stages, or --duration and --vus. nginx limits requests per
    client (NGINX_API_RATE, NGINX_WEB_RATE): a load from one machine may get HTTP 429.
    """
    from deploy import loadtest
    from deploy.engine.local import LocalTarget
    from deploy.engine.stack import Stack
    from deploy.errors import fail
    from deploy.output import mark, say, table

    load = loadtest.constant_load(duration, None if vus is None else whole_number("--vus", vus, minimum=1))
    settings = open_settings(c, where)
    if url is None:
        name = settings.stage.name
        url = loadtest.remote_url(settings) if settings.stage.hosts else loadtest.local_url(Stack(settings, LocalTarget(c)).proxy_port(), name)
    url = url.rstrip("/")
    loadtest.check_reachable(url, loadtest.fetch_root(url))
    say(f"k6 against {url}")
    code, found = loadtest.run(Path(script) if script else ROOT / "scripts/load-test.js", url, load)
    if found is None:
        fail(f"k6 exited {code} before its end-of-test summary", "see k6's output above (a script error names its line)")
    table(f"thresholds ({settings.stage.name}, {url})", ["metric", "threshold", "measured", "result"],
          ((t.metric, t.expression, t.shown, mark(t.ok)) for t in found))
    crossed = [f"{t.metric} {t.expression} ({t.shown})" for t in found if not t.ok]
    if crossed or code == loadtest.THRESHOLDS_CROSSED:
        fail(f"threshold(s) failed: {', '.join(crossed)}",
             "find the slow part (inv stats, inv logs SERVICE) and scale it (inv scale); HTTP 429s are nginx's per-client rate limit")
    if code != 0:
        fail(f"k6 exited {code}", "see k6's output above")
    if not found:
        say("the script sets no thresholds (options.thresholds): nothing to pass or fail")
