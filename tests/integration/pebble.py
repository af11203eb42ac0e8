"""A real ACME server for the tests: Debian's pebble (Let's Encrypt's test CA) with its
mock DNS, pebble-challtestsrv, answering every name with 127.0.0.1 (TESTBED.md). Its
HTTP-01 validator connects to the port where the stack's nginx serves HTTP. Its habit of
refusing 5 % of nonces at random (to test clients' retries: certbot retries once, so two
in a row fail a run) is turned off: the tests are about our side."""
from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import free_port


@dataclass(frozen=True)
class Pebble:
    directory: str  # the ACME directory URL
    ca_bundle: Path  # what pebble's own HTTPS certificate chains to (certbot must trust it)
    management: int  # its management port

    def root(self, tmp: Path) -> Path:
        """The root that signs the certificates it issues (a new one at each start)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(f"https://127.0.0.1:{self.management}/roots/0", context=ctx, timeout=10) as answer:
            path = tmp / "pebble-root.pem"
            path.write_bytes(answer.read())
        return path


def _wait(url: str, ca_bundle: Path, proc: subprocess.Popen, log: Path) -> None:
    ctx = ssl.create_default_context(cafile=str(ca_bundle))
    for _ in range(100):
        if proc.poll() is not None:
            raise AssertionError(f"pebble exited {proc.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url, context=ctx, timeout=2).close()
            return
        time.sleep(0.1)
    raise AssertionError(f"pebble did not answer on {url}:\n{log.read_text()}")


@contextlib.contextmanager
def running(tmp: Path, http_port: int, validity_days: int) -> Iterator[Pebble]:
    """pebble validating HTTP-01 on 127.0.0.1:``http_port``, issuing certificates valid
    ``validity_days`` days; stopped when the block ends."""
    tmp.mkdir(parents=True, exist_ok=True)
    key, cert = tmp / "pebble-key.pem", tmp / "pebble-cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    acme, management, dns, dns_management = free_port(), free_port(), free_port(), free_port()
    (tmp / "pebble.json").write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{acme}", "managementListenAddress": f"127.0.0.1:{management}",
        "certificate": str(cert), "privateKey": str(key), "httpPort": http_port, "tlsPort": free_port(),
        "ocspResponderURL": "", "externalAccountBindingRequired": False, "certificateValidityPeriod": validity_days * 86400}}))
    logs = [tmp / "challtestsrv.log", tmp / "pebble.log"]
    argvs = [["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "", "-dns01", f"127.0.0.1:{dns}", "-http01", "",
              "-https01", "", "-tlsalpn01", "", "-management", f"127.0.0.1:{dns_management}"],
             ["pebble", "-config", str(tmp / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns}"]]
    procs = []
    try:
        for argv, log in zip(argvs, logs, strict=True):
            with log.open("wb") as out:
                procs.append(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                              env={**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}))
        _wait(f"https://127.0.0.1:{acme}/dir", cert, procs[-1], logs[-1])
        yield Pebble(f"https://127.0.0.1:{acme}/dir", cert, management)
    finally:
        for proc in procs:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
