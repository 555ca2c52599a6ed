"""Dask's dashboard: off unless asked for, and then on a free port (issue 15, point 16)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

from qfarm.controller.service import Controller
from qfarm.domain.errors import InvalidRequest
from qfarm.engine.dask import DaskEngine
from qfarm.store import Store

pytestmark = pytest.mark.integration


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


def test_the_dashboard_asked_for_without_bokeh_is_refused_with_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "bokeh", None)  # as if not installed: find_spec is None
    with pytest.raises(InvalidRequest, match="needs bokeh: pip install"):
        asyncio.run(DaskEngine.start_local([], local_directory=tmp_path, dashboard=True))


@pytest.mark.skipif(importlib.util.find_spec("bokeh") is None, reason="needs bokeh")
def test_the_dashboard_asked_for_is_served_on_a_free_port(tmp_path: Path) -> None:
    async def main() -> None:
        engine = await DaskEngine.start_local([], local_directory=tmp_path, dashboard=True)
        try:
            assert engine.dashboard_url is not None
            assert ":8787/" not in engine.dashboard_url
            assert await asyncio.to_thread(status_of, engine.dashboard_url) == 200
        finally:
            await engine.close()

    asyncio.run(main())


# `python -m qfarm` as on a machine without bokeh, whether or not this one has it.
WITHOUT_BOKEH = "import sys; sys.modules['bokeh'] = None; from qfarm.cli.main import main; main()"


def controller_cli(tmp_path: Path, *options: str, bokeh: bool = True) -> subprocess.Popen[str]:
    python = [sys.executable, "-m", "qfarm"] if bokeh else [sys.executable, "-c", WITHOUT_BOKEH]
    return subprocess.Popen(
        [*python, "controller", "--port", "0", "--no-advertise",
         "--data-dir", str(tmp_path / "controller"), *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip


def test_qfarm_controller_dashboard_without_bokeh_is_a_usage_error_before_anything_starts(
    tmp_path: Path,
) -> None:
    proc = controller_cli(tmp_path, "--dashboard", "--require-token", bokeh=False)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    [line] = stderr.strip().splitlines()
    assert line == (
        "qfarm: error: the Dask dashboard needs bokeh: pip install 'bokeh>=3.1' "
        "(or leave out --dashboard)"
    )
    assert stdout == ""
    # Refused before the store was opened: no first client token was made and lost unseen.
    assert not (tmp_path / "controller" / "qfarm.db").exists()


def test_qfarm_controller_dashboard_on_an_external_scheduler_is_a_usage_error(
    tmp_path: Path,
) -> None:
    proc = controller_cli(tmp_path, "--dashboard", "--scheduler", "tcp://127.0.0.1:1")
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 2, stderr
    assert "--scheduler serves its own" in stderr


@pytest.mark.skipif(importlib.util.find_spec("bokeh") is None, reason="needs bokeh")
def test_qfarm_controller_dashboard_prints_its_url_and_serves_it(tmp_path: Path) -> None:
    proc = controller_cli(tmp_path, "--dashboard")
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("qfarm controller at "), first
        url = first.split()[3]
        lines = [proc.stdout.readline() for _ in range(2)]
        [shown] = [ln.split()[-1] for ln in lines if ln.startswith("Dask dashboard at ")]
        assert ":8787/" not in shown
        assert status_of(shown) == 200
        with urllib.request.urlopen(f"{url}/api/v1/info", timeout=10) as answer:
            assert json.load(answer)["dashboard"] == shown
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
