"""``docker swarm``, ``node``, ``stack``, ``service``, ``secret`` and ``config`` command
lines: a Docker Swarm stage (run on a manager, except ``join`` and ``leave``)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from deploy.engine.commands.docker import STACK_LABEL


def state() -> list[str]:
    """This engine's swarm membership: LocalNodeState, NodeID, ControlAvailable, ..."""
    return ["docker", "info", "--format", "{{json .Swarm}}"]


def init(advertise: str) -> list[str]:
    return ["docker", "swarm", "init", "--advertise-addr", advertise]


def join_token(role: str) -> list[str]:
    return ["docker", "swarm", "join-token", "--quiet", role]


def rotate_token(role: str) -> list[str]:
    """A new join token: the one a join used (on a command line) no longer admits anyone."""
    return ["docker", "swarm", "join-token", "--rotate", "--quiet", role]


def join(token: str, manager: str, advertise: str) -> list[str]:
    return ["docker", "swarm", "join", "--advertise-addr", advertise, "--token", token, f"{manager}:2377"]


def nodes() -> list[str]:
    """Every node's id (one a line)."""
    return ["docker", "node", "ls", "--quiet"]


def inspect_nodes(ids: Sequence[str]) -> list[str]:
    return ["docker", "node", "inspect", *ids]


def label_node(node: str, add: Mapping[str, str], remove: Sequence[str] = ()) -> list[str]:
    argv = ["docker", "node", "update"]
    for key, value in sorted(add.items()):
        argv += ["--label-add", f"{key}={value}"]
    for key in remove:
        argv += ["--label-rm", key]
    return [*argv, node]


def deploy(stack: str, stack_file: str) -> list[str]:
    """Create or update the stack's services from ``stack_file``, send the registry's
    credentials to the nodes and wait until every service converged (or Swarm rolled
    an update back), quietly (its progress bars need a terminal). Services the file does
    not name are left as they are. Images are resolved to digests only when their tag
    changed: a rebuilt upstream image under the same tag (nginx) restarts nothing."""
    return ["docker", "stack", "deploy", "--detach=false", "--quiet", "--with-registry-auth", "--resolve-image", "changed",
            "--compose-file", stack_file, stack]


def services(stack: str) -> list[str]:
    """The stack's service ids (one a line)."""
    return ["docker", "service", "ls", "--quiet", "--filter", f"label={STACK_LABEL}={stack}"]


def inspect_services(names: Sequence[str]) -> list[str]:
    return ["docker", "service", "inspect", *names]


def tasks(names: Sequence[str]) -> list[str]:
    """The tasks of services, one JSON object a line (old ones too: ``DesiredState``)."""
    return ["docker", "service", "ps", "--no-trunc", "--format", "{{json .}}", *names]


def scale(counts: Mapping[str, int]) -> list[str]:
    return ["docker", "service", "scale", "--detach=false", *(f"{name}={n}" for name, n in sorted(counts.items()))]


def rollback(name: str) -> list[str]:
    """The service back to its spec before the last update (Swarm's own rollback)."""
    return ["docker", "service", "rollback", "--detach=false", name]


def logs(name: str, tail: int, follow: bool = False, since: str | None = None) -> list[str]:
    """A service's lines from every task, each prefixed with its task and node."""
    return ["docker", "service", "logs", "--timestamps", "--tail", str(tail), *(["--follow"] if follow else []),
            *(["--since", since] if since else []), name]


def one_off(stack: str, name: str, image: str, command: Sequence[str], *, networks: Sequence[str], env: Mapping[str, str],
            secrets: Sequence[tuple[str, str]], constraints: Sequence[str] = ()) -> list[str]:
    """A service that runs ``command`` once (a task that is not restarted), detached:
    its task's end is read with ``tasks``. ``secrets``: (secret name, file name)."""
    argv = ["docker", "service", "create", "--detach", "--quiet", "--name", name, "--restart-condition", "none",
            "--with-registry-auth", "--label", f"{STACK_LABEL}={stack}"]
    for network in networks:
        argv += ["--network", network]
    for key, value in sorted(env.items()):
        argv += ["--env", f"{key}={value}"]
    for source, target in secrets:
        argv += ["--secret", f"source={source},target={target}"]
    for constraint in constraints:
        argv += ["--constraint", constraint]
    return [*argv, image, *command]


def remove_services(names: Sequence[str]) -> list[str]:
    return ["docker", "service", "rm", *names]


def create_object(kind: str, name: str, labels: Mapping[str, str]) -> list[str]:
    """A secret or config (``kind``) named ``name`` from stdin (never a command line)."""
    flags = [a for k, v in sorted(labels.items()) for a in ("--label", f"{k}={v}")]
    return ["docker", kind, "create", *flags, name, "-"]


def objects(kind: str, stack: str) -> list[str]:
    """Names of the stack's secrets or configs (one a line)."""
    return ["docker", kind, "ls", "--filter", f"label={STACK_LABEL}={stack}", "--format", "{{.Name}}"]


def remove_objects(kind: str, names: Sequence[str]) -> list[str]:
    return ["docker", kind, "rm", *names]
