"""Every check of a name or value that reaches a file another program reads (a shell
script, a cron file, nginx's or redis's config, SQL, an env file): one function per kind,
each returning the value it accepts and refusing anything else with ``fail``.

The rules, for all of them:

- a pattern matches the *whole* value (``re.fullmatch``: a ``$`` at a pattern's end would
  also accept a trailing newline);
- ``one_line`` is part of every rule: no ASCII control character (CR, LF, tab, NUL, ...,
  DEL), no C1 control (U+0080-U+009F, U+0085 among them) and no Unicode line or paragraph
  separator (U+2028, U+2029). A line break in a value would let its reader (cron, sh,
  nginx, redis, our own ``splitlines``) see a second line that nobody wrote;
- an error names the field and shows the value with ``repr`` (its control characters
  escaped), except for secrets, whose values are never shown.
"""
from __future__ import annotations

import ipaddress
import re

from deploy.errors import fail

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
PROJECT = re.compile(r"[a-z0-9][a-z0-9_-]*")
SERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
STAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEPLOY_DIR = re.compile(r"/[A-Za-z0-9_./-]+")
LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
EMAIL = re.compile(r"[^@\s\"'`$\\]+@[^@\s\"'`$\\]+\.[^@\s\"'`$\\]+")
CRON_WHEN = re.compile(r"[0-9A-Za-z*/,-]+(?: [0-9A-Za-z*/,-]+){4}")  # cron's five time fields
NGINX_RATE = re.compile(r"[1-9][0-9]{0,8}r/[sm]")  # limit_req_zone's rate=
NGINX_BURST = re.compile(r"[0-9]{1,9}")  # limit_req's burst=
REDIS_UNQUOTABLE = re.compile(r'["\\]')  # what ends or escapes redis.conf's "..." (beside CONTROL)
# DNS labels of ASCII letters, digits and inner hyphens (no re.IGNORECASE: with it [a-z] also
# matches the Kelvin sign and the long s, which case-fold to k and s)
DOMAIN = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
DOMAIN_LIMIT = 253


def one_line(value: str, what: str) -> str:
    """``value`` when it holds no control character and no line break of any kind."""
    if CONTROL.search(value):
        fail(f"{what} {value!r} holds a line break or another control character",
             f"give {what} on one line, without control characters")
    return value


def _name(pattern: re.Pattern[str], value: str, where: str, kind: str, rule: str) -> str:
    if not pattern.fullmatch(value):
        fail(f"{where + ': ' if where else ''}{value!r} is not a valid {kind}", f"use {rule}")
    return value


def project(name: str, where: str = "") -> str:
    """A Compose project name (containers, networks, volumes, file names on hosts)."""
    return _name(PROJECT, name, where, "Compose project name", "lowercase letters, digits, '-' and '_', starting with a letter or digit")


def service(name: str, where: str = "") -> str:
    """A Compose service name (also an nginx upstream's name)."""
    return _name(SERVICE, name, where, "service name", "letters, digits, '-', '_', '.', starting with a letter or digit")


def stage(name: str, where: str = "") -> str:
    """A stage name (folders on hosts, cron file names, the scripts' comments)."""
    return _name(STAGE, name, where, "stage name", "1-64 letters, digits, '-', '_', '.', starting with a letter or digit")


def host(name: str, where: str = "") -> str:
    """A host's name in the inventory (an SSH alias, the prefix of its output lines)."""
    return _name(HOST, name, where, "host name", "letters, digits, '.', '-', '_', starting with a letter or digit")


def env_name(name: str, where: str = "") -> str:
    """The name of an environment variable."""
    return _name(ENV_NAME, name, where, "variable name", "letters, digits and _ (not first a digit)")


def label(name: str, where: str = "") -> str:
    """A backup's label (part of its file name)."""
    return _name(LABEL, name, where, "label", "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")


def domain(name: str) -> str:
    """A domain name (a certificate's, the ACME request's; openssl's subject, certbot's -d),
    lowercased: at most 253 characters, dot-separated labels of ASCII letters, digits and
    hyphens (none first or last in a label)."""
    if len(name) > DOMAIN_LIMIT or not DOMAIN.fullmatch(name):
        fail(f"{name!r} is not a domain name", "give a name like app.example.com (letters, digits, hyphens and dots)")
    return name.lower()


def deploy_dir(path: str, what: str = "deploy_dir") -> str:
    """A deploy directory on a host: absolute, plain characters, no ``..``."""
    if not DEPLOY_DIR.fullmatch(path) or ".." in path.split("/"):
        fail(f"{what} {path!r} is not an absolute plain path", "use e.g. /srv/myapp (letters, digits, '_', '.', '-', '/')")
    return path


def absolute_path(path: str, what: str) -> str:
    """An absolute path of a file on a host (any characters but control characters)."""
    one_line(path, what)
    if not path.startswith("/"):
        fail(f"{what} {path!r} is not an absolute path", f"give {what} as the file's absolute path on the host")
    return path


def email(address: str, what: str = "--email") -> str:
    """An e-mail address: one ``@``, a dot after it, no space, quote, ``$``, backtick or backslash."""
    one_line(address, what)
    if not EMAIL.fullmatch(address):
        fail(f"{what} {address!r} is not an e-mail address", "give an address like ops@example.com")
    return address


def ip_address(value: str, what: str) -> str:
    """An IPv4 or IPv6 address, as Docker reports a container's."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        fail(f"{what} {value!r} is not an IP address", "report it: Docker gave an address this tool cannot read")
    return value


def cron_when(when: str) -> str:
    """cron's five time fields (``*/15 * * * *``, ``7 3,15 * * sun``)."""
    if not CRON_WHEN.fullmatch(when):
        fail(f"the cron schedule {when!r} is not five time fields", "give minute, hour, day, month and weekday, e.g. 30 3 * * *")
    return when


def nginx_rate(value: str, name: str) -> str:
    """A rate of nginx's ``limit_req_zone`` (``50r/s``, ``600r/m``)."""
    if not NGINX_RATE.fullmatch(value):
        fail(f"{name} {value!r} is not an nginx rate", f"set {name} to requests per second or minute, e.g. 50r/s or 600r/m")
    return value


def nginx_burst(value: str, name: str) -> str:
    """A burst of nginx's ``limit_req`` (a whole number)."""
    if not NGINX_BURST.fullmatch(value):
        fail(f"{name} {value!r} is not an nginx burst", f"set {name} to a whole number of requests, e.g. 100")
    return value


def secret_line(value: str, name: str) -> str:
    """A secret (or a value beside secrets) that a file carries on one line: no control
    character, no line break. Its value is never shown."""
    if CONTROL.search(value):
        fail(f"{name} holds a line break or another control character, which its file cannot carry on one line",
             f"set {name} to a value on one line, without control characters")
    return value


def redis_secret(value: str, name: str) -> str:
    """A secret redis.conf carries in double quotes (``requirepass "..."``): no quote,
    no backslash, no control character. Its value is never shown."""
    if CONTROL.search(value) or REDIS_UNQUOTABLE.search(value):
        fail(f"{name} holds a double quote, a backslash, a line break or another control character, "
             "which redis.conf cannot carry in its quotes",
             f"set {name} to another value (inv init makes one: 64 hex digits)")
    return value
