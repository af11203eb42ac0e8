from datetime import datetime, timezone
from typing import Any

from deploy.engine.images import ImageName, app_images, release_tags
from deploy.engine.stack import Stack
from deploy.versions import Version
from tests.unit.fake_engine import FakeEngine

WHEN = datetime(2026, 11, 29, 23, 30, tzinfo=timezone.utc)


def test_names_come_from_the_compose_image_value():
    n = ImageName.parse("backend", "127.0.0.1:5000/shop/backend:1.0.0")
    assert n == ImageName("backend", "127.0.0.1:5000/shop/backend")
    assert n.ref("1.0.1") == "127.0.0.1:5000/shop/backend:1.0.1" and n.pushable
    local = ImageName.parse("web", "local/shop/web:latest")
    assert local.ref("2.0.0") == "local/shop/web:2.0.0" and not local.pushable
    assert ImageName.parse("web", "registry.example.test/shop/web:1.0.0").pushable
    assert ImageName.parse("web", "localhost/shop/web:1.0.0").pushable
    # a registry port is not a tag
    assert ImageName.parse("web", "127.0.0.1:5000/shop/web").repository == "127.0.0.1:5000/shop/web"


def test_release_tags():
    assert release_tags(Version(1, 2, 3), WHEN, "0123456789abcdef0123") == ["1.2.3", "20261129", "0123456789ab", "latest"]
    assert release_tags(Version(1, 2, 3), WHEN, None) == ["1.2.3", "20261129", "latest"]
    assert release_tags(Version(1, 2, 3), WHEN, "not a sha; rm") == ["1.2.3", "20261129", "latest"]


def test_app_images_are_the_stateless_services_as_compose_names_them(fake_settings):
    compose = {"services": {"backend": {"image": "r:5000/shop/backend:1.2.3"}, "web": {"image": "r:5000/shop/web:1.2.3"},
                            "nginx": {"image": "nginx:1.27-alpine"}}}

    class Composed(Stack):  # the stage's stateless services are backend and web (invoke.yaml)
        def config(self) -> dict[str, Any]:
            return compose

    stack = Composed(fake_settings, FakeEngine())
    assert app_images(stack) == [ImageName("backend", "r:5000/shop/backend"), ImageName("web", "r:5000/shop/web")]
