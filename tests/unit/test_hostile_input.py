"""Hostile text at every validator and at every builder of a file that a shell, cron,
nginx, redis or PostgreSQL reads: each value is either refused with an error that says
why and what to do (``Exit``, code 1), or written so that its reader gets back exactly
that value and nothing else (no second line, word, directive or statement).

The readers are real where this machine has them (``/bin/sh`` runs the cron line and the
scripts, the proxy's and redis's own shell code runs as it is), modelled where it does
not: cron's ``%`` rule (vixie cron's do_command.c), redis.conf's line and quote rules
(sdssplitargs), SQL's quoting.
"""
from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from invoke import Config
from invoke.exceptions import Exit
from invoke.util import yaml

from deploy import validators
from deploy.config import masking
from deploy.config.schema import parse_config, plain
from deploy.config.settings import check_config_values
from deploy.engine.commands import backup_job, certbot, cron, restic
from deploy.engine.commands import postgres as pg
from deploy.retention import Policy
from deploy.stack import routing

ROOT = Path(__file__).resolve().parents[2]
CONTROLS = [chr(c) for c in (*range(0x20), 0x7F)]
SPECIAL = [*CONTROLS, "'", '"', "$", "`", "%", "\\", ";", "{", "}", "#", " ", "\u2028", "\u2029", "\u0085", "\u00a0"]
SAFE = list("abcXYZ019_.-/r")
hostile = st.text(st.sampled_from(SPECIAL + SAFE), min_size=1, max_size=24).filter(lambda s: any(ch in SPECIAL for ch in s))
anything = st.text(st.sampled_from(SPECIAL + SAFE), max_size=24)
# Each special character in a value that is otherwise fine: every one gets tried.
ONE_EACH = [f"ab{ch}cd" for ch in SPECIAL] + [f"x{ch}" for ch in SPECIAL]
LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused(call: Callable[[], Any]) -> bool:
    """True when ``call`` failed the way the library fails (reason and fix, exit 1)."""
    try:
        call()
    except Exit as e:
        assert e.code == 1 and "error: " in str(e.message) and "\n  fix: " in str(e.message)
        return True
    return False


# --- every validator -----------------------------------------------------------------

PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-/]*")  # the only characters a name or a number may keep
VALIDATORS: dict[str, tuple[Callable[[str], str], re.Pattern[str]]] = {
    "project": (validators.project, PLAIN_NAME),
    "service": (validators.service, PLAIN_NAME),
    "stage": (validators.stage, PLAIN_NAME),
    "host": (validators.host, PLAIN_NAME),
    "env_name": (validators.env_name, PLAIN_NAME),
    "label": (validators.label, PLAIN_NAME),
    "deploy_dir": (validators.deploy_dir, PLAIN_NAME),
    "nginx_rate": (lambda v: validators.nginx_rate(v, "NGINX_API_RATE"), PLAIN_NAME),
    "nginx_burst": (lambda v: validators.nginx_burst(v, "NGINX_API_BURST"), PLAIN_NAME),
    "ip_address": (lambda v: validators.ip_address(v, "an address"), re.compile(r"[0-9a-fA-F.:]*")),
    "cron_when": (validators.cron_when, re.compile(r"[A-Za-z0-9*/, -]*")),
    "email": (validators.email, re.compile(r"[^\s\"'`$\\\x00-\x1f\x7f-\x9f\u2028\u2029]*")),
    "redis_secret": (lambda v: validators.redis_secret(v, "REDIS_PASSWORD"), re.compile(r"[^\"\\\x00-\x1f\x7f-\x9f\u2028\u2029]*")),
    "absolute_path": (lambda v: validators.absolute_path(v, "--ca-bundle"), re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*")),
    "one_line": (lambda v: validators.one_line(v, "a field"), re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*")),
    "secret_line": (lambda v: validators.secret_line(v, "AWS_SECRET_ACCESS_KEY"), re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*")),
    "domain": (validators.domain, re.compile(r"[A-Za-z0-9.-]*")),
}


@pytest.mark.parametrize("kind", VALIDATORS)
@FAST
@given(value=hostile)
def test_every_validator_refuses_what_its_readers_cannot_carry(kind: str, value: str) -> None:
    check, allowed = VALIDATORS[kind]
    try:
        kept = check(value)
    except Exit as e:
        assert e.code == 1 and "\n  fix: " in str(e.message)
        assert "\n" not in str(e.message).split("\n  fix: ")[0].replace("error: ", "", 1)  # the value shows escaped (repr)
        return
    assert kept == value and allowed.fullmatch(value) and not LINE_BREAKS.search(value)


@pytest.mark.parametrize("kind", VALIDATORS)
@pytest.mark.parametrize("value", [f"{good}\n" for good in ("app", "/srv/app", "50r/s", "100", "ops@example.com", "10.0.0.1")])
def test_a_trailing_newline_is_refused_by_every_validator(kind: str, value: str) -> None:
    """``re.match`` with a pattern ending in ``$`` accepts ``"app\\n"``; fullmatch does not."""
    assert refused(lambda: VALIDATORS[kind][0](value))


# --- invoke.yaml: every name it gives, through the parser --------------------------


def repository_config() -> dict[str, Any]:
    """The repository's own deploy: section, as ``inv`` loads it (conftest's raw_config)."""
    cfg = Config(project_location=ROOT)
    cfg.load_project()
    return dict(plain(cfg.deploy))


def with_value(raw: dict[str, Any], where: str, value: str) -> dict[str, Any]:
    """``raw`` (the repository's deploy: section) with ``value`` at ``where``."""
    raw = copy.deepcopy(raw)
    stages, services = raw["stages"], raw["services"]
    if where == "project":
        raw["project"] = value
    elif where == "stage":
        stages[value] = stages.pop("production")
    elif where == "host":
        stages["production"]["hosts"] = {value: {"address": "10.0.0.1", "roles": ["app", "db"]}}
    elif where in ("address", "user", "key", "deploy_dir"):
        stages["production"]["hosts"] = {"h1": {"address": "10.0.0.1", "roles": ["app", "db"], where: value}}
    elif where == "stateful":
        services["stateful"] = [*services["stateful"], value]
    elif where == "stateless":
        services["stateless"][value] = {"port": 3000}
    elif where in ("secret_env", "required_env"):
        raw[where] = [*raw[where], value]
    elif where == "env_defaults":
        raw["env_defaults"] = {**raw["env_defaults"], value: "x"}
    elif where in ("user_env", "name_env"):
        raw["database"] = {**raw["database"], where: value}
    elif where in ("repository", "sftp_command", "password_env"):
        stages["production"]["offsite"] = {"repository": "/srv/offsite", where: value}
    return raw


REPOSITORY_CONFIG = repository_config()
CONFIG_FIELDS = ["project", "stage", "host", "address", "user", "key", "deploy_dir", "stateful", "stateless", "secret_env",
                 "required_env", "env_defaults", "user_env", "name_env", "repository", "sftp_command", "password_env"]


@SLOW
@given(where=st.sampled_from(CONFIG_FIELDS), value=hostile)
@example(where="project", value="myapp\n")
@example(where="stage", value="production\ntouch /tmp/pwned")
@example(where="deploy_dir", value="/srv/app\n")
def test_invoke_yaml_refuses_a_name_with_a_line_break_or_a_quote(where: str, value: str) -> None:
    raw = with_value(REPOSITORY_CONFIG, where, value)
    must_refuse = LINE_BREAKS.search(value) or (where not in ("address", "user", "key", "repository", "sftp_command")
                                                and not PLAIN_NAME.fullmatch(value))
    if must_refuse:
        assert refused(lambda: parse_config(raw, ROOT)), (where, value)


# --- cron: the file of /etc/cron.d --------------------------------------------------


def cron_runs(text: str) -> tuple[list[str], str]:
    """What cron makes of a file of /etc/cron.d: its job lines (after the environment
    and comment lines) and the first one's command as /bin/sh gets it (vixie cron: ``\\%``
    is ``%``, a ``%`` not escaped ends the command; a backslash before anything else stays)."""
    jobs = [line for line in text.split("\n") if line.strip() and not line.lstrip().startswith("#")
            and not re.fullmatch(r"[A-Za-z_]+=.*", line)]
    if not jobs:
        return [], ""
    command = jobs[0].split(" ", 6)[6]
    out, escaped = "", False
    for ch in command:
        if escaped:
            out = out[:-1] + ch if ch == "%" else out + ch
            escaped = False
        elif ch == "%":
            break
        else:
            out += ch
            escaped = ch == "\\"
    return jobs, out


@SLOW
@given(words=st.lists(anything, min_size=1, max_size=3), comment=anything, log_name=anything)
@example(words=["50%", "a\\%b", "%", "100%%", "\\", "'"], comment="renews 50%", log_name="log %")
@example(words=["x\ny * * * * root touch /tmp/pwned"], comment="c", log_name="l")
@example(words=["ok"], comment="c\n* * * * * root touch /tmp/pwned", log_name="l")
def test_a_cron_line_runs_exactly_its_words_or_is_refused(tmp_path_factory: pytest.TempPathFactory, words: list[str], comment: str,
                                                          log_name: str) -> None:
    out = tmp_path_factory.mktemp("cron")
    log = str(out / ("log-" + log_name.replace("/", "_")))
    argv = ["printf", "%s\\0", *words]
    try:
        text = cron.crontab("7 3 * * *", argv, log, comment)
    except Exit as e:
        assert e.code == 1 and any(LINE_BREAKS.search(v) for v in (*words, comment, log_name))
        return
    jobs, command = cron_runs(text)
    assert len(jobs) == 1 and text.count("\n") == 4 and text.startswith(f"# {comment}\n")
    assert cron.command_of(text) == command
    subprocess.run(["/bin/sh", "-c", command], check=True, timeout=10, cwd=out, env={"PATH": "/usr/bin:/bin"})
    assert Path(log).read_bytes().decode().split("\0")[:-1] == words
    assert sorted(p.name for p in out.iterdir()) == [Path(log).name]  # nothing else ran


@FAST
@given(when=hostile)
def test_a_cron_schedule_is_five_plain_fields(when: str) -> None:
    assert refused(lambda: cron.crontab(when, ["true"], "/l", "c"))


# --- the scheduled backup's scripts (sh) ------------------------------------------


def job(**fields: str) -> backup_job.Job:
    base = {"project": "myapp", "stage": "production", "service": "postgres", "app_service": "backend", "user": "app",
            "database": "app", "directory": "/srv/myapp/backups"}
    assert set(fields) <= set(base), fields  # only the string settings
    s = {**base, **fields}
    return backup_job.Job(project=s["project"], stage=s["stage"], service=s["service"], app_service=s["app_service"],
                          user=s["user"], database=s["database"], directory=s["directory"],
                          retention=Policy(last=7, daily=7, weekly=4, monthly=6, min_age=86400))


HEADER_VARIABLES = {"directory": "DIR", "project": "PROJECT", "stage": "STAGE", "service": "SERVICE", "app_service": "APP_SERVICE",
                    "database": "DB"}


@SLOW
@given(field=st.sampled_from([*HEADER_VARIABLES, "user"]), value=hostile)
@example(field="stage", value="prod\ntouch /tmp/pwned")
@example(field="directory", value="/srv/x'$(touch pwned)`touch pwned`\"%")
def test_the_backup_scripts_carry_each_setting_as_one_word_or_refuse_it(tmp_path_factory: pytest.TempPathFactory, field: str,
                                                                        value: str) -> None:
    the_job = job(**{field: value})
    for build in (backup_job.script, backup_job.drill_script):
        try:
            text = build(the_job)
        except Exit as e:
            assert e.code == 1
            continue
        lines = text.split("\n")
        assert lines[0] == "#!/bin/sh" and lines[1].startswith("# Written by") and lines[2].startswith("# (deploy/engine")
        header = text[:text.index("\nset -eu\n")] + "\n" + "\n".join(
            line for line in text.split("\n") if re.match(r"(DIR|PROJECT|STAGE|SERVICE|APP_SERVICE|DB)=", line))
        out = tmp_path_factory.mktemp("script")
        shown = subprocess.run(["/bin/sh", "-c", header + "\nprintf '%s\\0' \"$DIR\" \"$PROJECT\" \"$STAGE\" \"$SERVICE\" \"$APP_SERVICE\" \"$DB\""],
                               capture_output=True, check=True, timeout=10, cwd=out).stdout.decode().split("\0")[:-1]
        assert shown == [getattr(the_job, f) for f in HEADER_VARIABLES] and not list(out.iterdir())
        if field == "user":  # psql's and pg_dump's -U, the drill's owner: each one quoted word
            assert f"-U {shlex.quote(value)} " in text
            assert build is backup_job.script or f"-v owner={shlex.quote(value)} " in text


@FAST
@given(field=st.sampled_from(["env_file", "sftp_command", "tag"]), value=hostile)
def test_the_offsite_settings_of_the_backup_script_have_no_line_break(field: str, value: str) -> None:
    copy = {"env_file": "/srv/x/offsite.env", "sftp_command": "", "tag": "myapp-production", "retention": Policy(last=30, daily=7)}
    def script(**changed: Any) -> str:
        return backup_job.script(backup_job.Job("myapp", "production", "postgres", "backend", "app", "app", "/b", Policy(last=7),
                                                backup_job.OffsiteCopy(**{**copy, **changed})))

    if not refused(partial(script, **{field: value})):
        assert not LINE_BREAKS.search(value)
        assert script(**{field: value}).count("\n") == script().count("\n")  # the value added no line


OFFSITE_COPY = {"env_file": "/srv/x/offsite.env", "sftp_command": "ssh -p 2222 backup@vault -s sftp", "tag": "myapp-production"}


@SLOW
@given(field=st.sampled_from(sorted(OFFSITE_COPY)), value=hostile, append_only=st.booleans())
@example(field="tag", value="t --keep-last 0", append_only=False)
@example(field="sftp_command", value="ssh x' \"$(touch pwned)\" '", append_only=True)
@example(field="env_file", value="/e; touch pwned", append_only=False)
def test_the_offsite_settings_reach_restic_as_one_word_each(tmp_path_factory: pytest.TempPathFactory, field: str, value: str,
                                                           append_only: bool) -> None:
    """The script's offsite line run by /bin/sh (``sh`` there a function that prints the
    words it gets): each setting is one word, exactly itself, and nothing else runs."""
    settings_ = {**OFFSITE_COPY, field: value}
    copy = backup_job.OffsiteCopy(**settings_, retention=None if append_only else Policy(last=30, daily=7))
    try:
        text = backup_job.script(backup_job.Job("myapp", "production", "postgres", "backend", "app", "app", "/b", Policy(last=7), copy))
    except Exit as e:
        assert e.code == 1 and LINE_BREAKS.search(value)
        return
    line = next(x for x in text.split("\n") if x.startswith("if copied=$("))
    command = line[len("if copied=$("):line.rindex("); then")]
    out = tmp_path_factory.mktemp("offsite")
    said = subprocess.run(["/bin/sh", "-c", f"sh() {{ printf '%s\\0' \"$@\"; printf '\\1'; }}\nDIR=/b\nname=n.dump\n{command}"],
                          capture_output=True, check=True, timeout=10, cwd=out, env={"PATH": "/usr/bin:/bin"}).stdout.decode()
    calls = [c.split("\0")[:-1] for c in said.split("\1")[:-1]]
    sftp = ["-o", f"sftp.command={settings_['sftp_command']}"]
    save = ["-c", restic.SOURCE, "sh", settings_["env_file"], "restic", *sftp, "backup", "--quiet", "--tag", settings_["tag"],
            "/b/n.dump", "/b/n.dump.sha256", "/b/n.dump.json"]
    assert calls[0] == save and not list(out.iterdir())
    if append_only:
        assert len(calls) == 1
    else:  # the same words, then restic's retention of that tag alone
        assert calls[1][:8] == ["-c", restic.SOURCE, "sh", settings_["env_file"], "restic", *sftp, "forget"] and len(calls) == 2
        assert calls[1][calls[1].index("--tag") + 1] == settings_["tag"] and calls[1].count("--tag") == 1


@FAST
@given(name=st.one_of(st.sampled_from(["RESTIC_REPOSITORY", "AWS_SECRET_ACCESS_KEY"]), hostile), value=anything)
@example(name="AWS_SECRET_ACCESS_KEY", value="k'\ntouch pwned\n'")
@example(name="X=1 touch pwned; Y", value="v")
@example(name="RESTIC_REPOSITORY", value="sftp:u@h:/r'$(touch pwned)`touch pwned`\"")
def test_restics_env_file_gives_each_value_to_restic_as_it_is_or_refuses_it(tmp_path_factory: pytest.TempPathFactory, name: str,
                                                                            value: str) -> None:
    """The offsite env file sourced the way restic's commands source it (``restic.with_env``), by /bin/sh."""
    values = {"RESTIC_PASSWORD_FILE": "/srv/x/offsite/password", name: "k3y!" + value}  # k3y!: what is never shown
    try:
        text = restic.env_file(values)
    except Exit as e:
        assert e.code == 1 and "\n  fix: " in str(e.message) and "k3y!" not in str(e.message)
        assert LINE_BREAKS.search(value) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
        return
    out = tmp_path_factory.mktemp("envfile")
    (out / "offsite.env").write_text(text)
    shown = subprocess.run(restic.with_env(str(out / "offsite.env"), [sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"]),
                           capture_output=True, check=True, timeout=10, cwd=out, env={"PATH": "/usr/bin:/bin"}).stdout
    env = json.loads(shown)
    assert {k: env[k] for k in values} == values and sorted(p.name for p in out.iterdir()) == ["offsite.env"]


@FAST
@given(value=st.one_of(hostile, st.text(max_size=40)))
@example(value="\u212a.example.test")  # the Kelvin sign: [a-z] with re.IGNORECASE matches it
@example(value="\u017fhop.example.test")  # the long s: the same, and it stays itself when lowercased
@example(value="app.example.test\n")
@example(value="a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 62)  # 254 characters
def test_a_tls_domain_is_ascii_labels_or_refused_by_both_tls_tasks(value: str) -> None:
    """``inv tls.selfsigned``'s and ``inv tls.issue``'s domain (openssl's subject, certbot's -d): one validator."""
    from deploy.stack import acme

    issued: list[tuple[str, ...]] = []
    if not refused(lambda: issued.append(acme.request(value, "ops@example.test", acme.LETS_ENCRYPT, "").domains)):  # names, comma-separated
        assert all(re.fullmatch(r"[a-z0-9.-]{1,253}", d) for d in issued[0])
    if refused(lambda: validators.domain(value)):
        return
    kept = validators.domain(value)
    assert kept == value.lower() and re.fullmatch(r"[a-z0-9.-]{1,253}", kept) and not kept.startswith(("-", "."))
    assert acme.request(f"{value},www.{value}", "ops@example.test", acme.LETS_ENCRYPT, "").domains == (kept, f"www.{kept}")


# --- certbot's hook (sh) ----------------------------------------------------------


@FAST
@given(staged=anything, current=anything, owner=anything)
@example(staged="/x/new\nrm -rf /", current="/x/cur", owner="101:101")
def test_certbots_hook_quotes_each_path_or_refuses_it(staged: str, current: str, owner: str) -> None:
    try:
        text = certbot.install_hook(staged, current, owner)
    except Exit:
        assert any(LINE_BREAKS.search(v) for v in (staged, current, owner))
        return
    lines = text.split("\n")
    assert len(lines) == 8
    assert shlex.split(lines[5]) == ["chown", owner, staged]
    assert shlex.split(lines[6]) == ["mv", "-f", "-T", staged, current]


# --- the ACME request and the saved --ca-bundle -------------------------------------


@FAST
@given(value=hostile)
@example(value="/ca.pem\n* * * * * root touch /tmp/pwned")
def test_a_ca_bundle_or_an_email_with_a_line_break_is_refused(value: str) -> None:
    from deploy.stack import acme

    if LINE_BREAKS.search(value):
        assert refused(lambda: acme.request("a.example.test", "ops@example.test", acme.LETS_ENCRYPT, "/" + value))
        assert refused(lambda: acme.request("a.example.test", f"ops{value}@example.test", acme.LETS_ENCRYPT, ""))
    assert refused(lambda: acme.request("a.example.test", "ops@example.test", f"{acme.LETS_ENCRYPT}{value}\n", ""))


# --- nginx: the routing file and the rate limits -----------------------------------


@FAST
@given(service=anything, address=anything)
@example(service="backend;}\nupstream evil {", address="10.0.0.1")
@example(service="backend", address="10.0.0.1:1;\n    server 6.6.6.6")
def test_the_routing_file_has_one_upstream_per_service_or_refuses_its_name(service: str, address: str) -> None:
    pools = [routing.Pool(service, 3000, (address,))]
    try:
        text = routing.render(pools)
    except Exit:
        return
    assert routing.parse(text) == {service: [f"{address}:3000"]}
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", service) and text.count("\n") == 7


def start_sh_refuses(env: dict[str, str]) -> bool:
    """Whether the proxy's start script (as it runs in the container) refuses the rate limits in ``env``."""
    result = subprocess.run(["/bin/sh", str(ROOT / "compose/nginx/start.sh")], capture_output=True, text=True, timeout=10,
                            env={"PATH": "/usr/bin:/bin", **env})
    refusal = "must be rates (50r/s, 600r/m)" in result.stderr
    assert result.returncode != 0  # with a good value it goes on, and fails at the templates this machine lacks
    return refusal


LIMITS = {"NGINX_API_RATE": "50r/s", "NGINX_WEB_RATE": "100r/s", "NGINX_API_BURST": "100", "NGINX_WEB_BURST": "200"}


@SLOW
@given(name=st.sampled_from(list(LIMITS)), value=st.one_of(hostile, st.sampled_from(["7r/m", "0", "0r/s", "010", "1234567890", "50r/s "])))
@example(name="NGINX_API_RATE", value="50r/s;\n    include /etc/passwd")
@example(name="NGINX_API_BURST", value="100 nodelay; return 200")
def test_a_rate_limit_is_one_nginx_word_for_the_tasks_and_the_proxy_alike(name: str, value: str) -> None:
    env = {**LIMITS, name: value}
    tasks_refuse = refused(lambda: check_config_values(env))
    if not tasks_refuse:
        assert re.fullmatch(r"[0-9]+(r/[sm])?", value)
    if "\0" not in value:
        assert start_sh_refuses(env) == tasks_refuse
    assert not start_sh_refuses(LIMITS)


# --- redis: requirepass in the config redis reads on stdin ----------------------------


def redis_lines(config: str) -> list[list[str]]:
    """redis.conf as redis reads it: one directive a line (split at "\\n"), each line's
    words split by sdssplitargs (double quotes with \\xHH, \\n, \\\\, \\" escapes; single
    quotes with \\'); an unbalanced quote is an error (ValueError)."""
    escapes = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}
    directives = []
    for line in config.split("\n"):
        line, words, i = line.strip(), [], 0
        if not line or line.startswith("#"):
            continue
        while i < len(line):
            while i < len(line) and line[i] in " \n\r\t\0":
                i += 1
            if i == len(line):
                break
            word, quote = "", None
            if line[i] in "\"'":
                quote, i = line[i], i + 1
            while True:
                if i == len(line):
                    if quote:
                        raise ValueError("unbalanced quotes")
                    break
                ch = line[i]
                if quote == '"' and ch == "\\" and i + 1 < len(line):
                    nxt = line[i + 1]
                    if nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", line[i + 2:i + 4]):
                        word, i = word + chr(int(line[i + 2:i + 4], 16)), i + 4
                        continue
                    word, i = word + escapes.get(nxt, nxt), i + 2
                    continue
                if quote == "'" and ch == "\\" and line[i + 1:i + 2] == "'":
                    word, i = word + "'", i + 2
                    continue
                if quote and ch == quote:
                    if i + 1 < len(line) and line[i + 1] not in " \n\r\t\0":
                        raise ValueError("closing quote must be followed by a space")
                    i += 1
                    break
                if not quote and ch in " \n\r\t\0":
                    break
                word, i = word + ch, i + 1
            words.append(word)
        directives.append(words)
    return directives


REDIS_COMMAND = yaml.safe_load((ROOT / "compose/docker-compose.yml").read_text())["services"]["redis"]["command"]


@SLOW
@given(password=st.one_of(hostile, anything))
@example(password='x"\nrename-command CONFIG ""')
@example(password="x\nslaveof 6.6.6.6 6379")
@example(password="it's $HOME `id` 100%")
def test_requirepass_is_the_password_and_nothing_else_or_redis_refuses_to_start(tmp_path_factory: pytest.TempPathFactory,
                                                                                password: str) -> None:
    assert REDIS_COMMAND[:2] == ["/bin/sh", "-c"]
    code = REDIS_COMMAND[2].replace("$$", "$")  # as Compose gives it to the container
    bin_dir = tmp_path_factory.mktemp("bin")
    (bin_dir / "redis-server").write_text('#!/bin/sh\ncat >"$CONFIG_OUT"\n')
    (bin_dir / "redis-server").chmod(0o755)
    config = bin_dir / "config"
    tasks_refuse = refused(lambda: check_config_values({"REDIS_PASSWORD": password}))
    if "\0" in password:  # no environment holds one
        assert tasks_refuse
        return
    result = subprocess.run(["/bin/sh", "-c", code], capture_output=True, text=True, timeout=10,
                            env={"PATH": f"{bin_dir}:/usr/bin:/bin", "REDIS_PASSWORD": password, "CONFIG_OUT": str(config)})
    if result.returncode != 0:
        assert "REDIS_PASSWORD holds" in result.stderr and not config.exists() and tasks_refuse
        return
    assert redis_lines(config.read_text()) == [["requirepass", password]]
    if not tasks_refuse:
        assert not LINE_BREAKS.search(password) and '"' not in password and "\\" not in password


# --- PostgreSQL: identifiers and literals -------------------------------------------


@FAST
@given(value=st.one_of(hostile, anything))
@example(value="x\"; DROP DATABASE app; --")
@example(value="x'; DROP DATABASE app; --")
@example(value="x\\'; DROP DATABASE app; --")
def test_a_sql_name_or_text_is_one_token_or_refused(value: str) -> None:
    if "\0" in value:
        assert refused(lambda: pg.ident(value)) and refused(lambda: pg.literal(value))
        return
    ident, literal = pg.ident(value), pg.literal(value)
    assert re.fullmatch(r'"(?:[^"]|"")*"', ident, re.DOTALL) and ident[1:-1].replace('""', '"') == value
    assert re.fullmatch(r"'(?:[^']|'')*'", literal, re.DOTALL) and literal[1:-1].replace("''", "'") == value


@pytest.mark.parametrize("value", ONE_EACH)
def test_each_special_character_alone(value: str) -> None:
    """Every special character on its own, in a value otherwise fine, at the names that
    reach a file: refused, or (in quoted forms) carried as it is."""
    for kind in ("project", "service", "stage", "host", "env_name", "label", "nginx_rate", "nginx_burst"):
        assert refused(partial(VALIDATORS[kind][0], value)), (kind, value)
    if LINE_BREAKS.search(value):
        for check in (partial(cron.crontab, "* * * * *", ["x", value], "/l", "c"), partial(backup_job.script, job(directory=value)),
                      partial(certbot.install_hook, value, "/c", "1:1"), partial(validators.absolute_path, "/" + value, "--ca-bundle")):
            assert refused(check), value


# --- masking: what is printed and recorded ------------------------------------------


@FAST
@given(secret=st.text(st.sampled_from(SPECIAL + SAFE), min_size=masking.MIN_LENGTH, max_size=24))
def test_no_form_of_a_secret_survives_masking(secret: str) -> None:
    values = masking.secret_values({"X_PASSWORD": secret}, ())
    for shown in (json.dumps({"error": secret}), json.dumps([secret], ensure_ascii=False), f"redis://:{quote(secret, safe='')}@r/0",
                  f"q={quote_plus(secret)}", shlex.join(["env", f"PGPASSWORD={secret}"]), f"a{secret}b"):
        masked = masking.mask(shown, values)
        assert not any(form in masked for form in masking.forms(secret)), (shown, masked)
