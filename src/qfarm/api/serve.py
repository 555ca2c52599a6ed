"""``qfarm controller`` served: the store, scheduler, dispatcher and HTTP API in one event loop.

It lives with the API because it composes the controller (below) with the app (here);
the controller package itself knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import uvicorn

from qfarm.api.app import create_app
from qfarm.controller.notify import Notifier, NotifyConfig
from qfarm.controller.notify_webhook import webhook_secret
from qfarm.controller.service import Controller
from qfarm.domain.errors import QfarmError
from qfarm.engine.base import NODE_TIMEOUT_SECONDS
from qfarm.security.pki import ClusterAuthority, TlsFiles
from qfarm.store import Store

# How long a stopping controller lets API requests in flight finish.
GRACEFUL_STOP_SECONDS = 3


@dataclass(frozen=True)
class ControllerAddresses:
    """Where a started controller is reached: what ``qfarm controller`` prints."""

    url: str  # its HTTP API, for clients and nodes
    scheduler: str  # its Dask scheduler, which nodes join
    dashboard: str | None  # Dask's dashboard, when it was asked for


def dispatcher_task(controller: Controller) -> asyncio.Task[None]:
    """The task running the controller's dispatcher loop, which the API outlives only to
    stop."""
    task = controller.dispatcher_task
    if task is None:
        raise QfarmError("the controller's dispatcher is not running")
    return task


def served_names(host: str) -> list[str]:
    """What clients may call a controller listening on ``host``, for its certificate: the
    address itself (every address of the machine for 0.0.0.0), loopback, and the host's
    names."""
    if host in ("0.0.0.0", "::", ""):
        addresses = [
            a.address
            for found in psutil.net_if_addrs().values()
            for a in found
            if a.family in (socket.AF_INET, socket.AF_INET6) and "%" not in a.address
        ]
    else:
        addresses = [host]
    return [*addresses, "127.0.0.1", "localhost", socket.gethostname(), socket.getfqdn()]


async def serve_controller(
    store: Store,
    data_dir: Path,
    *,
    host: str,
    port: int,
    scheduler: str | None = None,
    scheduler_port: int = 0,
    advertise: bool = True,
    token: str | None = None,
    dashboard: bool = False,
    fair_share: bool = False,
    node_timeout: float = NODE_TIMEOUT_SECONDS,
    notify: NotifyConfig | None = None,
    beside: Sequence[Callable[[Controller], Coroutine[Any, Any, None]]] = (),
    https: bool = False,
    tls: TlsFiles | None = None,
    tls_names: Sequence[str] = (),
    on_ready: Callable[[ControllerAddresses], None] = lambda addresses: None,
) -> None:
    """Run a controller until SIGINT or SIGTERM. ``on_ready`` is called once the API
    answers, with the addresses clients and nodes use. With ``advertise``, it is announced
    by mDNS on the interfaces it listens on. ``dashboard``: its scheduler serves Dask's
    dashboard on a free port (it needs bokeh: InvalidRequest without). ``fair_share``: owners
    of batches of equal priority share the farm's instances (controller.fairshare).
    ``node_timeout``: seconds without a heartbeat after which a node's work goes elsewhere.
    ``beside``: what runs beside the controller in its loop once the API answers (the
    watch folders of --watch), each given the controller, and canceled when it stops.
    ``https``: serve the API over HTTPS, with ``tls`` (the user's certificate and key) or
    else a certificate of the cluster CA for the names and addresses of ``host`` and
    ``tls_names``.
    """
    advertiser: Any = None
    companions: list[asyncio.Task[None]] = []
    controller = await Controller.start(
        store, data_dir, host=host, scheduler=scheduler, scheduler_port=scheduler_port,
        dashboard=dashboard, fair_share=fair_share, node_timeout=node_timeout,
    )  # fmt: skip
    try:
        # Notifications (domain.notify): webhooks always; email with an SMTP server in notify.
        controller.notifier = Notifier(
            store, controller, notify or NotifyConfig(webhook_secret=webhook_secret(data_dir))
        )
        if https and tls is None:
            names = [*served_names(host), *tls_names]
            tls = ClusterAuthority.open(data_dir).api_files(names)
        config = uvicorn.Config(
            create_app(controller, token),
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=tls.cert if https and tls else None,
            ssl_keyfile=tls.key if https and tls else None,
            # At a stop, a client's idle keep-alive connection over TLS is closed with a
            # close_notify that the client, not reading, never answers; asyncio then waits
            # its SSL shutdown timeout (30 s) before the connection counts as closed, and a
            # SIGTERM'd controller hung that long (or was killed). Requests in flight get
            # this long to finish; then the stop goes on.
            timeout_graceful_shutdown=GRACEFUL_STOP_SECONDS,
        )
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                serving.result()  # the port was taken, say: raise what uvicorn raised
                raise QfarmError(f"the API could not start on {host}:{port}")
            await asyncio.sleep(0.02)
        bound = server.servers[0].sockets[0].getsockname()[1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        url = f"{'https' if https else 'http'}://{shown}:{bound}"
        if advertise:
            from qfarm.discovery import Advertiser

            # Zeroconf's sync API blocks on its own loop: keep it off ours.
            advertiser = await asyncio.to_thread(Advertiser, url, host, bound)
        await controller.notifier.start(url)  # messages link to the monitor at url
        on_ready(
            ControllerAddresses(
                url, controller.engine.scheduler_address, controller.engine.dashboard_url
            )
        )
        companions = [asyncio.create_task(run(controller)) for run in beside]
        dispatching = dispatcher_task(controller)
        await asyncio.wait({serving, dispatching}, return_when=asyncio.FIRST_COMPLETED)
        if dispatching.done() and not serving.done():
            server.should_exit = True
            await serving
            error = dispatching.exception()
            raise QfarmError(f"the dispatcher stopped: {error!r}; the controller exits")
    finally:
        for companion in companions:
            companion.cancel()
        await asyncio.gather(*companions, return_exceptions=True)
        if advertiser is not None:
            await asyncio.to_thread(advertiser.close)
        await controller.close()
