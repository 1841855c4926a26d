"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A Plausible stand-in on 127.0.0.1 (tests/receiver.py) that knows the site example.com."""
    with Receiver(domains={"example.com"}) as rx:
        yield rx


@pytest.fixture(autouse=True)
def private_state_home(tmp_path_factory, monkeypatch) -> None:
    """Runs without --state keep their checkpoint under $XDG_STATE_HOME: point it at a temp
    dir so tests never read or leave state in the user's own ~/.local/state."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))


@pytest.fixture(autouse=True, scope="session")
def private_cache_home(tmp_path_factory) -> Iterator[None]:
    """The user-agent pattern index (importer/uaprefilter.py) is kept under $XDG_CACHE_HOME:
    made once per test session in a temp dir, never in the user's own ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
        yield
