"""openssl command lines, run on this machine: a self-signed certificate, what a
certificate says, whether a key belongs to it."""
from __future__ import annotations


def self_signed(domain: str, days: int, key: str, cert: str) -> list[str]:
    """A new P-256 key and a self-signed certificate for ``domain`` (its name and its
    subjectAltName), valid ``days`` days, written to ``key`` and ``cert``."""
    return ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", str(int(days)), "-subj", f"/CN={domain}",
            "-addext", f"subjectAltName=DNS:{domain}", "-addext", "basicConstraints=critical,CA:FALSE"]


def describe(cert: str) -> list[str]:
    """The first certificate of ``cert`` (a chain): subject, issuer, end date, SHA-256
    fingerprint and subjectAltName, one a line."""
    return ["openssl", "x509", "-in", cert, "-noout", "-subject", "-issuer", "-enddate", "-fingerprint", "-sha256",
            "-ext", "subjectAltName", "-nameopt", "RFC2253"]


def cert_public_key(cert: str) -> list[str]:
    return ["openssl", "x509", "-in", cert, "-noout", "-pubkey"]


def key_public_key(key: str) -> list[str]:
    """The public half of a private key (fails for anything that is not one)."""
    return ["openssl", "pkey", "-in", key, "-pubout"]
