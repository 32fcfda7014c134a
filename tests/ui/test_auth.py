"""With a token set, the pages ask for it once per session (never from ``?token=``)."""

from __future__ import annotations

import pytest
from nicegui.testing import User

pytestmark = [pytest.mark.anyio, pytest.mark.nicegui_main_file("tests/ui/main_app.py")]

TOKEN = "ui-s3cret"


@pytest.fixture(autouse=True)
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOTUNER_UI_TEST_TOKEN", TOKEN)


@pytest.mark.parametrize("path", ["/", "/new", "/study/x-123456"])
async def test_pages_ask_for_the_token(user: User, path: str) -> None:
    await user.open(path)
    await user.should_see("This service needs the token it was started with (AUTOTUNER_TOKEN).")
    await user.should_not_see(marker="studies")


async def test_login_keeps_the_token_in_the_session(user: User) -> None:
    await user.open("/new")
    user.find(marker="token").type("wrong")
    user.find(marker="login").click()
    await user.should_see("wrong token")
    user.find(marker="token").clear().type(TOKEN)
    user.find(marker="login").click()
    await user.should_see("New study")
    await user.open("/")  # the session remembers it
    await user.should_see(marker="studies")


async def test_a_token_in_the_url_does_not_log_in(user: User) -> None:
    # URLs end up in history, proxies and access logs: the token goes through the login form
    await user.open(f"/?token={TOKEN}")
    await user.should_see("This service needs the token it was started with (AUTOTUNER_TOKEN).")
    await user.should_not_see(marker="studies")


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example", "/\\evil.example"])
async def test_login_goes_nowhere_else(user: User, target: str) -> None:
    await user.open(f"/login?next={target}")
    user.find(marker="token").type(TOKEN)
    user.find(marker="login").click()
    await user.should_see(marker="studies")  # the studies page, not the other site
