import pytest
from invoke.exceptions import Exit

from deploy.versions import Version, parse


@pytest.mark.parametrize("text,version", [
    ("1.0.0", Version(1, 0, 0)), ("0.10.3", Version(0, 10, 3)), ("2.0.0-rc.1", Version(2, 0, 0, "rc.1")),
    ("1.2.3-alpha-2.x", Version(1, 2, 3, "alpha-2.x")),
])
def test_valid(text, version):
    assert parse(text) == version
    assert str(parse(text)) == text


@pytest.mark.parametrize("text", [
    "1.0", "1", "v1.0.0", "01.0.0", "1.0.0;touch /tmp/x", "../x", "1.0.0 ", "", "1.0.0+build.5", "1.0.0-", "$(id)", "1.0.0\n",
])
def test_refused_with_the_rule(text):
    with pytest.raises(Exit, match="MAJOR.MINOR.PATCH"):
        parse(text)


def test_bump():
    v = Version(1, 4, 2, "rc.1")
    assert str(v.bump("major")) == "2.0.0"
    assert str(v.bump("minor")) == "1.5.0"
    assert str(v.bump("patch")) == "1.4.3"
    with pytest.raises(Exit, match="major, minor or patch"):
        v.bump("huge")
