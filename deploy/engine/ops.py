"""What a workflow asks of a target, as data (pyinfra's operations).

A workflow is a generator that *yields* ops and gets each op's result back
(``result = yield Run(...)``); reads that only decide what to do (which containers
run, what the history says) are facts, asked directly. An ``Executor`` drives the
generator: a real run applies each op, a dry run prints it instead. So ``--dry-run``
prints exactly the commands a real run executes, per host, secrets masked, and the
plan cannot drift from the action. When an op fails, its error is thrown into the
generator at the ``yield``, so the workflow can clean up (``try``/``except``) before
the error goes on.

Before a real run applies an op (a note excepted), the checks of ``checked_by`` run: the
deploy lock's, that it is still this process's. A check that fails is thrown into the
workflow like an op's error; what the workflow yields after that (its ``except`` block
undoing what it did) is applied without the checks, and the error goes on.
"""
from __future__ import annotations

import dataclasses
import shlex
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from invoke.runners import Result

from deploy.engine.stack import ENGINE_FIX, Stack
from deploy.output import say

T = TypeVar("T")


class Op(Protocol):
    """One thing a workflow asks for: applied by a real run, described by a dry run."""

    def apply(self, executor: Executor) -> Any: ...

    def dry(self, executor: Executor) -> Any: ...


# A workflow: yields ops, receives their results, returns its own result.
Ops = Generator[Op, Any, T]


_checks: list[Callable[[], None]] = []  # run before every op applied, in any thread (checked_by)
_checks_guard = threading.Lock()


@contextmanager
def checked_by(check: Callable[[], None]) -> Iterator[None]:
    """While the block runs, ``check`` runs before every op a real run applies, in every
    executor and thread of this process; it raises to stop the run."""
    with _checks_guard:
        _checks.append(check)
    try:
        yield
    finally:
        with _checks_guard:
            _checks.remove(check)


def _check() -> None:
    with _checks_guard:
        checks = list(_checks)
    for check in checks:
        check()


def planned_result(argv: Sequence[str]) -> Result:
    """What a dry run hands back for a command it only printed: success, no output."""
    return Result(stdout="", stderr="", command=shlex.join(argv), exited=0)


@dataclass(frozen=True)
class Run:
    """A command that changes something, on the stack's target, with its stage env.

    ``check``: a failure stops the workflow with ``what`` and ``fix``; without it the
    result goes back to the workflow, which decides. ``show``: stream its output.
    ``stdin``: bytes fed to it (a tar of the compose files). ``stage_env``: False for a
    command of this machine that must not see the stage's secrets (the tests).
    ``timeout``: how long it may take.
    """

    stack: Stack
    argv: tuple[str, ...]
    what: str
    fix: str = ENGINE_FIX
    check: bool = True
    show: bool = False
    stdin: bytes | None = None
    stage_env: bool = True
    timeout: float | None = None  # seconds it may take (None: the target's own limit)

    def describe(self) -> str:
        fed = f" < ({len(self.stdin):,} bytes)" if self.stdin is not None else ""
        return self.stack.settings.masked(shlex.join(self.argv)) + fed

    def apply(self, executor: Executor) -> Result:
        if self.stdin is not None:
            return self.stack.feed(self.argv, self.stdin, what=self.what, fix=self.fix)
        env = self.stack.command_env if self.stage_env else {}
        result = self.stack.target.run(self.argv, env=env, warn=True, hide=not self.show, timeout=self.timeout)
        if self.check and not result.ok:
            self.stack.failed(self.argv, result, self.what, self.fix)
        return result

    def dry(self, executor: Executor) -> Result:
        executor.show(self.stack, self.describe())
        return planned_result(self.argv)


def run(stack: Stack, argv: Sequence[str], what: str, **kwargs: Any) -> Run:
    """A ``Run`` op (argv as given by a builder of ``deploy.engine.commands``)."""
    return Run(stack, tuple(argv), what, **kwargs)


@dataclass(frozen=True)
class Put:
    """A file written on the target: created with ``mode`` before the first byte, then
    renamed into place (never half-written, never readable by others for a moment)."""

    stack: Stack
    path: str
    data: bytes = field(repr=False)
    mode: int = 0o600

    def describe(self) -> str:
        return f"write {self.path} ({len(self.data):,} bytes, mode {self.mode:04o})"

    def apply(self, executor: Executor) -> None:
        self.stack.target.write_bytes(self.path, self.data, self.mode)

    def dry(self, executor: Executor) -> None:
        executor.show(self.stack, self.describe())


@dataclass(frozen=True)
class Call:
    """A library step that is more than one command (stream a backup home, wait until
    containers are healthy, check HTTP through the proxy), described by ``label``."""

    stack: Stack
    label: str
    action: Callable[[], Any]

    def apply(self, executor: Executor) -> Any:
        return self.action()

    def dry(self, executor: Executor) -> None:
        executor.show(self.stack, self.label)


@dataclass(frozen=True)
class Note:
    """Progress for people: said by a real run, left out of a dry run's plan."""

    text: str

    def apply(self, executor: Executor) -> None:
        executor.say(self.text)

    def dry(self, executor: Executor) -> None:
        """A plan lists what would be done, not what a run reports."""


@dataclass
class Executor:
    """Drives workflows: ``dry_run`` prints each op (with its host on a stage with
    hosts) instead of applying it. ``applied`` keeps every op a real run applied, in
    order, and ``planned`` every op a dry run printed (what the tests compare)."""

    dry_run: bool = False
    say: Callable[[str], None] = say
    hosts: bool = False  # print the host before each planned op
    applied: list[Op] = field(default_factory=list)
    planned: list[Op] = field(default_factory=list)
    checked: bool = True  # run the checks of checked_by before each op (False: an undo after one failed)

    def unchecked(self) -> Executor:
        """This executor without the checks (the same output and records): for undoing
        what a run changed once a check stopped it."""
        return dataclasses.replace(self, checked=False)

    def show(self, stack: Stack, line: str) -> None:
        self.say(f"    {stack.target.name}: {line}" if self.hosts else f"    {line}")

    def __call__(self, ops: Ops[T]) -> T:
        """Run ``ops`` to its end and return its value."""
        executor = self
        try:
            op = next(ops)
            while True:
                if self.dry_run:
                    self.planned.append(op)
                    result = op.dry(self)
                else:
                    try:
                        if executor.checked and not isinstance(op, Note):
                            try:
                                _check()
                            except BaseException:
                                executor = self.unchecked()  # what the workflow yields now undoes what it did
                                raise
                        self.applied.append(op)
                        result = op.apply(executor)
                    except BaseException as err:  # noqa: BLE001 (the workflow decides; it re-raises)
                        op = ops.throw(err)
                        continue
                op = ops.send(result)
        except StopIteration as stop:
            return stop.value
