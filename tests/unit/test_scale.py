import pytest
from invoke.exceptions import Exit

from deploy.stack.scale import parse_assignments, parse_count, plan


@pytest.mark.parametrize("raw,count", [("3", 3), (" 10 ", 10), (2, 2), ("0", 0)])
def test_parse_count_accepts_whole_numbers(raw, count):
    assert parse_count("backend", raw, yes=True) == count


@pytest.mark.parametrize(
    "raw,message",
    [("abc", "not a number"), ("1.5", "not a number"), ("", "not a number"), ("-1", "negative"),
     ("3;reboot", "not a number"), ("101", "more than 100")],
)
def test_parse_count_refuses(raw, message):
    with pytest.raises(Exit, match=message):
        parse_count("backend", raw, yes=True)


def test_zero_needs_yes():
    with pytest.raises(Exit, match="add --yes"):
        parse_count("web", "0", yes=False)


def test_plan(config):
    assert plan(config, {"backend": "5", "web": "2"}, yes=False) == {"backend": 5, "web": 2}


@pytest.mark.parametrize("service,message", [("postgres", "stateful"), ("redis", "stateful"), ("nginx", "proxy"), ("worker", "unknown service")])
def test_plan_refuses_what_is_not_a_stateless_service(config, service, message):
    with pytest.raises(Exit, match=message):
        plan(config, {service: "2"}, yes=False)


def test_plan_needs_something(config):
    with pytest.raises(Exit, match="nothing to scale"):
        plan(config, {}, yes=False)


def test_parse_assignments():
    assert parse_assignments(["worker=3", " jobs = 2"]) == {"worker": "3", "jobs": " 2"}
    with pytest.raises(Exit, match="SERVICE=COUNT"):
        parse_assignments(["worker"])
