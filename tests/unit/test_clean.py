import pytest
from invoke.exceptions import Exit

from deploy.stack.clean import check_flags, deleted_images, reclaimed, stateful_volumes

PRUNE = """Deleted Images:
untagged: ns/web@sha256:abc
deleted: sha256:4319e2ec
deleted: sha256:9999aaaa

Total reclaimed space: 12.5MB
"""


def test_parse_prune_output():
    assert reclaimed(PRUNE) == "12.5MB"
    assert reclaimed("") == "0B"
    assert deleted_images(PRUNE) == ["ns/web@sha256:abc", "sha256:4319e2ec", "sha256:9999aaaa"]


def test_stateful_volumes_are_the_engine_names():
    config = {
        "services": {
            "postgres": {"volumes": [{"type": "volume", "source": "pg"}, {"type": "bind", "source": "/x"}]},
            "redis": {"volumes": [{"type": "volume", "source": "rd"}]},
            "backend": {"volumes": [{"type": "volume", "source": "uploads"}]},
        },
        "volumes": {"pg": {"name": "myapp_pg"}, "rd": {"name": "myapp_rd"}, "uploads": {"name": "myapp_uploads"}},
    }
    assert stateful_volumes(config, ("postgres", "redis")) == {"myapp_pg", "myapp_rd"}


def test_flags():
    check_flags(False, False, False)
    check_flags(True, False, True)
    check_flags(True, True, True)
    with pytest.raises(Exit, match="add --yes"):
        check_flags(True, False, False)
    with pytest.raises(Exit, match="only makes sense with --volumes"):
        check_flags(False, True, True)
