from datetime import datetime, timezone

from deploy.engine import images
from deploy.engine.images import ImageName, release_tags
from deploy.versions import Version

WHEN = datetime(2026, 11, 29, 23, 30, tzinfo=timezone.utc)


def test_names():
    n = ImageName("127.0.0.1:5000", "shop", "backend")
    assert n.ref("1.0.0") == "127.0.0.1:5000/shop/backend:1.0.0"
    assert n.pushable
    local = ImageName("", "shop", "web")
    assert local.ref("latest") == "local/shop/web:latest" and not local.pushable


def test_release_tags():
    assert release_tags(Version(1, 2, 3), WHEN, "0123456789abcdef0123") == ["1.2.3", "20261129", "0123456789ab", "latest"]
    assert release_tags(Version(1, 2, 3), WHEN, None) == ["1.2.3", "20261129", "latest"]
    assert release_tags(Version(1, 2, 3), WHEN, "not a sha; rm") == ["1.2.3", "20261129", "latest"]


def test_commands():
    assert images.tag("a:1", "a:latest") == ["docker", "tag", "a:1", "a:latest"]
    assert images.push("r/n/s:1") == ["docker", "push", "r/n/s:1"]
    assert images.exists("r/n/s:1") == ["docker", "image", "inspect", "--format", "{{.Id}}", "r/n/s:1"]


def test_identity_prefers_the_pushed_digest():
    line = '["127.0.0.1:5000/shop/backend@sha256:abc","other/x@sha256:def"] sha256:1234\n'
    assert images.parse_identity(line, "127.0.0.1:5000/shop/backend") == "127.0.0.1:5000/shop/backend@sha256:abc"
    assert images.parse_identity("[] sha256:1234", "local/shop/web") == "sha256:1234"
    assert images.identity("a:1") == ["docker", "image", "inspect", "--format", "{{json .RepoDigests}} {{.Id}}", "a:1"]
