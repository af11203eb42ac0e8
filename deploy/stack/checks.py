"""Preflight (``inv check``): each finding says what is wrong and how to fix it.

The rules are pure functions of facts; ``preflight`` gathers the facts.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from deploy.config import state_home
from deploy.config.masking import MIN_LENGTH
from deploy.config.settings import Settings, example_env
from deploy.engine.commands import compose, docker, git
from deploy.engine.facts import parse_engine_version, version_tuple
from deploy.engine.stack import last_lines
from deploy.engine.target import Target
from deploy.fleet import Fleet

MIN_ENGINE = (20, 10)
MIN_COMPOSE = (2, 17)  # `up --wait-timeout` (up, scale, deploy)
MIN_JWT_LENGTH = 64
WEAK_VALUES = frozenset(
    {"", "postgres", "password", "passw0rd", "changeme", "change-me", "secret", "admin", "root", "redis", "123456", "example", "test"}
)


@dataclass(frozen=True)
class Finding:
    ok: bool
    subject: str
    detail: str
    fix: str = ""


def check_engine(version: str, error: str = "") -> Finding:
    if not version:
        return Finding(False, "Docker engine", f"not reachable: {error or 'no answer'}", "start dockerd, or run bash scripts/testbed/setup.sh")
    if version_tuple(version) < MIN_ENGINE:
        return Finding(False, "Docker engine", f"version {version} is older than 20.10", "upgrade the Docker engine to 20.10 or newer")
    return Finding(True, "Docker engine", f"version {version}")


def check_compose(version: str) -> Finding:
    found = version_tuple(version)
    if found < (2,):
        return Finding(
            False,
            "Docker Compose",
            f"v2 not found (`docker compose version` said {version.strip() or 'nothing'})",
            "install the Compose v2 plugin, 2.17 or newer (bash scripts/testbed/setup.sh does it offline)",
        )
    if found < MIN_COMPOSE:
        return Finding(False, "Docker Compose", f"version {version.strip()} is older than 2.17, which `up --wait-timeout` needs",
                       "upgrade the Compose v2 plugin to 2.17 or newer (bash scripts/testbed/setup.sh does it offline)")
    return Finding(True, "Docker Compose", f"version {version.strip()}")


def check_required(env: Mapping[str, str], required: Sequence[str], env_file: str) -> Finding:
    missing = [name for name in required if not env.get(name)]
    if missing:
        return Finding(False, "required variables", f"missing or empty: {', '.join(missing)}", f"set them in {env_file} (see .env.example)")
    return Finding(True, "required variables", f"all {len(required)} set")


def check_defaults(env: Mapping[str, str], secret_names: Sequence[str], example: Mapping[str, str], production: bool) -> list[Finding]:
    """Secrets must not be left at a well-known default or at their .env.example value,
    nor be shorter than ``MIN_LENGTH`` (output masks so short a value only as a whole word)."""
    findings = []
    for name in secret_names:
        value = env.get(name, "")
        if value.lower() in WEAK_VALUES:
            findings.append(Finding(not production, name, "is empty or a well-known default", f"set a long random {name} (openssl rand -hex 32)"))
        elif name in example and value == example[name]:
            findings.append(Finding(not production, name, "is still the value from .env.example", f"replace {name} with a long random value"))
        elif len(value) < MIN_LENGTH:
            findings.append(Finding(not production, name, f"is {len(value)} characters: too short for a secret "
                                    "(output masks it only as a whole word)", f"set a long random {name} (openssl rand -hex 32)"))
    return findings


def check_jwt(env: Mapping[str, str], secret_names: Sequence[str], production: bool) -> Finding | None:
    """JWT_SECRET (when it is a secret of the stack and set) of at least ``MIN_JWT_LENGTH`` characters."""
    jwt = env.get("JWT_SECRET", "")
    if "JWT_SECRET" not in secret_names or not jwt:
        return None
    if len(jwt) < MIN_JWT_LENGTH:
        return Finding(not production, "JWT_SECRET", f"is {len(jwt)} characters; production needs at least {MIN_JWT_LENGTH}",
                       "generate one: openssl rand -hex 32")
    return Finding(True, "JWT_SECRET", f"{len(jwt)} characters")


def check_secrets(
    env: Mapping[str, str], secret_names: Sequence[str], example: Mapping[str, str], production: bool
) -> list[Finding]:
    """The problems of ``check_defaults`` and ``check_jwt``."""
    jwt = check_jwt(env, secret_names, production)
    return check_defaults(env, secret_names, example, production) + ([jwt] if jwt and jwt.fix else [])


def check_env_file_git(env_file: str, tracked: bool, ignored: bool | None) -> list[Finding]:
    """``ignored`` is None outside a git work tree."""
    findings = []
    if tracked:
        findings.append(Finding(False, env_file, "is tracked by git: its secrets are in the history",
                                f"git rm --cached {env_file}, add it to .gitignore, rotate the secrets"))
    if ignored is False:
        findings.append(Finding(False, env_file, "is not ignored by git", f"add {env_file} to .gitignore"))
    if not findings:
        detail = "ignored by git, not tracked" if ignored else "outside the repository's git work tree"
        findings.append(Finding(True, env_file, detail))
    return findings


def check_outside_checkout(what: str, path: Path, root: Path, in_work_tree: bool, setting: str) -> Finding:
    """A directory that must outlive the checkout (the release history and lock, the
    backups): a warning when it is inside a git work tree, which `git clean -ffdx` (every
    CI checkout) empties. ``setting``: the config key, for the fix."""
    if in_work_tree and path.is_relative_to(root):
        env = "INVOKE_" + setting.upper().replace(".", "_")
        return Finding(True, what, f"{path.relative_to(root)}/ is inside the checkout: `git clean -ffdx` (as CI checkouts do) deletes it",
                       f"set {setting} to a directory outside the checkout, e.g. /var/lib/deploy/ (in CI: the variable {env})")
    return Finding(True, what, str(path))


def _git_facts(local: Target, root: str, path: str, in_work_tree: bool) -> tuple[bool, bool | None]:
    if not in_work_tree:
        return False, None
    tracked = local.run(git.is_tracked(root, path), warn=True).ok
    ignored = local.run(git.is_ignored(root, path), warn=True).ok
    return tracked, ignored


def engine_findings(target: Target) -> list[Finding]:
    """The Docker engine and Compose versions of a target (this machine or a host)."""
    engine = target.run(docker.version_json(), warn=True)
    comp = target.run(docker.compose_version(), warn=True)
    return [check_engine(parse_engine_version(engine.stdout), last_lines(engine.stderr, 2)), check_compose(comp.stdout if comp.ok else "")]


def env_file_git(s: Settings, local: Target, in_work_tree: bool | None = None) -> list[Finding]:
    """Whether the stage's env file (its secrets) is kept out of git; ``in_work_tree``:
    whether the checkout is a git work tree, when the caller asked git already."""
    root = s.config.root.resolve()
    if s.env_file.is_relative_to(root):
        rel = str(s.env_file.relative_to(root))
        if in_work_tree is None:
            in_work_tree = local.run(git.is_work_tree(str(root)), warn=True).ok
        return check_env_file_git(rel, *_git_facts(local, str(root), rel, in_work_tree))
    return check_env_file_git(str(s.env_file), tracked=False, ignored=None)


def config_findings(s: Settings, local: Target, compose_files: bool = True, secrets: bool = True) -> list[Finding]:
    """The stage's variables, secrets, env file and (with ``compose_files``, which needs
    Compose here) compose files, as this machine's checkout has them (what a deploy uploads);
    ``local`` is this machine's target. ``secrets``: False leaves out the secrets' rules
    and git's (the production checklist has them as items of their own)."""
    findings = []
    findings.append(check_required(s.env, s.config.required_env, str(s.env_file)))
    if secrets:
        findings += check_secrets(s.env, s.config.secret_env, example_env(s.config), s.stage.production)
    if s.stage.production:
        root = s.config.root.resolve()
        in_work_tree = local.run(git.is_work_tree(str(root)), warn=True).ok
        if secrets:
            findings += env_file_git(s, local, in_work_tree)
        kept = [("backups", root / s.config.database.backups_dir, "deploy.database.backups_dir")]
        if not s.stage.hosts:  # on hosts, the history and the lock live on the hosts
            kept.insert(0, ("release history", state_home.state_root(root, s.config.state_dir), "deploy.state_dir"))
        findings += [check_outside_checkout(what, d.resolve(), root, in_work_tree, key) for what, d, key in kept]
    if compose_files:
        cfg = local.run(compose.config_check(s.compose), env=s.env, warn=True)
        findings.append(
            Finding(True, "compose files", "valid")
            if cfg.ok
            else Finding(False, "compose files", s.masked(last_lines(cfg.stderr, 4)), "fix the compose files or the variables they use")
        )
    return findings


def fleet_findings(fleet: Fleet, secrets: bool = True) -> list[tuple[str, Finding]]:
    """(where, finding) of ``inv check`` and the deploy's preflight: the engine and Compose
    of every chosen host (or the local engine), then the stage's files as this machine has
    them (the compose files only once the engine here answers); ``secrets`` as
    ``config_findings``."""
    engines = fleet.each(lambda m: engine_findings(m.stack.target), what="check", summary=False)
    rows = [(m.name, f) for m in fleet.members for f in engines[m.name]]
    here = fleet.here.target
    if not any(m.stack.target is here for m in fleet.members):  # hosts: this machine builds and checks the files
        rows += [("local", f) for f in engine_findings(here)]
    engine_here = all(f.ok for where, f in rows if where in ("local", *(m.name for m in fleet.members if m.stack.target is here)))
    return rows + [("local", f) for f in config_findings(fleet.settings, here, compose_files=engine_here, secrets=secrets)]
