"""Printing: untrusted text (health output, compose errors, queries) is printed exactly as
it is, never parsed as rich markup; only Styled text (styled, mark) is styled."""
import io

import pytest
from rich.console import Console

from deploy import output
from deploy.output import Styled, mark, say, set_host, styled, table

HOSTILE = "GET /health: [/health] [bold]not bold[/bold] [red]x [link=http://evil]y[/link] :smile: C:\\path\\ \\[z]"


@pytest.fixture
def terminal(monkeypatch):
    """What a colour terminal would get."""
    out = io.StringIO()
    monkeypatch.setattr(output, "_console", lambda: Console(file=out, force_terminal=True, color_system="standard", width=300))
    return out


def test_a_table_cell_and_a_title_print_untrusted_text_literally(capsys):
    table(f"health {HOSTILE}", ["what", "detail"], [("backend", HOSTILE), (Styled("[b]"), 3)])
    out = capsys.readouterr().out
    assert out.count(HOSTILE) == 2 and "[b]" in out


def test_say_prints_untrusted_text_literally_also_with_a_host_prefix(capsys):
    say(f"health check failed: {HOSTILE}")
    set_host("h1")
    try:
        say(f"{HOSTILE}\nsecond line [/]")
    finally:
        set_host(None)
    assert capsys.readouterr().out.splitlines() == [f"health check failed: {HOSTILE}", f"[h1] {HOSTILE}", "[h1] second line [/]"]


def test_styled_text_keeps_its_styles_and_its_untrusted_parts_literal(terminal):
    message = styled("deployed [1.0]", "green") + " to [/h1]: " + mark(False)
    assert message == "deployed [1.0] to [/h1]: FAIL" and isinstance(message, Styled)
    say(message)
    table("t", ["c"], [(mark(True),), ("[red]plain[/red]",)])
    out = terminal.getvalue()
    assert "\x1b[32mdeployed [1.0]\x1b[0m to [/h1]: \x1b[31mFAIL\x1b[0m" in out
    assert "\x1b[32mok\x1b[0m" in out and "[red]plain[/red]" in out


def test_styles_survive_concatenation_from_either_side():
    left = "at " + styled("h1", "bold")
    assert left == "at h1" and left.spans == ((3, 5, "bold"),)
    both = styled("a", "red") + styled("b", "blue")
    assert both.spans == ((0, 1, "red"), (1, 2, "blue"))
    assert type(f"{both}") is str  # an f-string drops the styles: printed plain, never as markup
