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
