"""Python 3.10 (Ubuntu 22.04) is supported; no 3.10 interpreter runs these tests, so what
3.10 does differently is emulated here (ruff and mypy check the rest for 3.10)."""
import re
from datetime import datetime, timezone

import pytest

from deploy.engine import facts


class Py310Datetime(datetime):
    """datetime.fromisoformat as Python 3.10 has it: only what isoformat() writes (a
    fraction of exactly 3 or 6 digits, no 'Z')."""

    @classmethod
    def fromisoformat(cls, value):
        if not re.fullmatch(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d{3}|\.\d{6})?)?([+-]\d\d:\d\d)?", value):
            raise ValueError(f"Invalid isoformat string: {value!r}")
        return super().fromisoformat(value)


@pytest.mark.parametrize("fraction", ["", ".1", ".12", ".123", ".1234", ".123456", ".123456789"])
def test_docker_timestamps_parse_as_python_3_10_reads_them(monkeypatch, fraction):
    monkeypatch.setattr(facts, "datetime", Py310Datetime)
    micro = int((fraction[1:7] or "0").ljust(6, "0"))
    assert facts.parse_time(f"2026-01-02T03:04:05{fraction}Z") == datetime(2026, 1, 2, 3, 4, 5, micro, tzinfo=timezone.utc)
