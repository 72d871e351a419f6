"""The event loop setting (server/_event_loop.py): uvloop by default, asyncio's loop on request,
anything else refused; the product runs on the loop chosen."""

from __future__ import annotations

import argparse
import asyncio

import pytest
import uvloop

from server._event_loop import loop_factory, run_on, running_loop_name
from server.config import Settings, SettingsError, add_settings_arguments, load_settings


def settings_of(*flags: str) -> Settings:
    parser = argparse.ArgumentParser()
    add_settings_arguments(parser)
    return load_settings(parser.parse_args(list(flags)), environ={})


def test_uvloop_is_the_default_and_asyncio_is_chosen_by_name() -> None:
    assert Settings().event_loop == "uvloop"
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("asyncio") is None  # asyncio.Runner's own loop
    assert settings_of("--event-loop", "asyncio").event_loop == "asyncio"


def test_an_unknown_loop_is_refused() -> None:
    with pytest.raises(SettingsError, match="event_loop: expected uvloop or asyncio"):
        settings_of("--event-loop", "trio")


@pytest.mark.parametrize("name", ["uvloop", "asyncio"])
def test_run_on_runs_on_the_loop_chosen(name: str) -> None:
    async def which() -> tuple[str, bool]:
        return running_loop_name(), isinstance(asyncio.get_running_loop(), uvloop.Loop)

    assert run_on(name, which()) == (name, name == "uvloop")
