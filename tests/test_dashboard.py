"""Dask's dashboard: off unless asked for, and then on a free port (issue 15, point 16)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import socket
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

from qfarm.controller import Controller
from qfarm.engine import Engine
from qfarm.errors import InvalidRequest
from qfarm.store import Store


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_controller_takes_no_dashboard_port_and_serves_nothing_over_plain_http(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        controller = await Controller.start(store, tmp_path)
        try:
            assert controller.engine.dashboard_url is None
            [scheduler] = controller.engine._owned
            server = scheduler.services["dashboard"]
            assert server.port != 8787
            # Nothing answers there: Dask's metrics and facts are not handed to anyone.
            for route in ("/health", "/info/main/workers.html", "/metrics", "/status"):
                url = f"http://127.0.0.1:{server.port}{route}"
                assert await asyncio.to_thread(status_of, url) == 404
        finally:
            await controller.close()
            store.close()

    with contextlib.ExitStack() as stack:
        with contextlib.suppress(OSError):  # held by something else already: as good
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 8787))
            sock.listen()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.run(main())
    assert not [w for w in caught if "8787" in str(w.message)]


@pytest.mark.skipif(importlib.util.find_spec("bokeh") is not None, reason="bokeh is installed")
def test_the_dashboard_asked_for_without_bokeh_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="needs bokeh: pip install"):
        asyncio.run(Engine.start_local([], local_directory=tmp_path, dashboard=True))


@pytest.mark.skipif(importlib.util.find_spec("bokeh") is None, reason="needs bokeh")
def test_the_dashboard_asked_for_is_served_on_a_free_port(tmp_path: Path) -> None:
    async def main() -> None:
        engine = await Engine.start_local([], local_directory=tmp_path, dashboard=True)
        try:
            assert engine.dashboard_url is not None
            assert ":8787/" not in engine.dashboard_url
            assert await asyncio.to_thread(status_of, engine.dashboard_url) == 200
        finally:
            await engine.close()

    asyncio.run(main())
