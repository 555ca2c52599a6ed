"""Finding controllers on the local network with mDNS / DNS-SD (python-zeroconf), as Qmaster
clients found clusters by Bonjour.

A controller advertises ``_qfarm._tcp.local.`` only on the interfaces it listens on, so a
controller bound to 127.0.0.1 is visible on this machine alone and nothing goes out on the
network. Clients and nodes browse when they are given no controller address;
``$QFARM_DISCOVERY_INTERFACES`` (comma-separated addresses) limits where they look, which is
how the tests keep discovery on loopback.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

from qfarm import __version__
from qfarm.domain.errors import InvalidRequest

SERVICE_TYPE = "_qfarm._tcp.local."
INTERFACES_ENV = "QFARM_DISCOVERY_INTERFACES"


@dataclass(frozen=True)
class Found:
    """A controller seen on the network."""

    name: str
    url: str
    version: str
    host: str


def _interfaces(host: str | None = None) -> Any:
    chosen = os.environ.get(INTERFACES_ENV)
    if chosen:
        return [part.strip() for part in chosen.split(",") if part.strip()]
    if host and host not in ("0.0.0.0", "", "::"):
        return [host]
    from zeroconf import InterfaceChoice

    return InterfaceChoice.All


class Advertiser:
    """Announces one controller until closed."""

    def __init__(self, url: str, host: str, port: int, name: str | None = None) -> None:
        self.zeroconf = Zeroconf(interfaces=_interfaces(host), ip_version=IPVersion.V4Only)
        label = name or f"qfarm on {socket.gethostname()} port {port}"
        address = host if host not in ("0.0.0.0", "") else _own_address()
        self.info = ServiceInfo(
            SERVICE_TYPE,
            f"{label}.{SERVICE_TYPE}",
            addresses=[socket.inet_aton(address)],
            port=port,
            properties={"version": __version__, "url": url},
            server=f"{socket.gethostname()}.local.",
        )
        self.zeroconf.register_service(self.info, allow_name_change=True)

    def close(self) -> None:
        try:
            self.zeroconf.unregister_service(self.info)
        finally:
            self.zeroconf.close()


def _own_address() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


class _Collector(ServiceListener):
    def __init__(self) -> None:
        self.names: set[str] = set()
        self.changed = threading.Event()

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.add(name)
        self.changed.set()

    def update_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.add(name)

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.names.discard(name)


def browse(timeout: float = 1.5) -> list[Found]:
    """The controllers that answer within ``timeout`` seconds."""
    zeroconf = Zeroconf(interfaces=_interfaces(), ip_version=IPVersion.V4Only)
    try:
        collector = _Collector()
        browser = ServiceBrowser(zeroconf, SERVICE_TYPE, collector)
        time.sleep(timeout)  # mDNS has no end of answers: listen for a set time
        browser.cancel()
        found: list[Found] = []
        for name in sorted(collector.names):
            # Usually in the cache already; a busy controller may take a while to answer.
            info = zeroconf.get_service_info(SERVICE_TYPE, name, timeout=3000)
            if info is None:
                continue
            props = {
                k.decode(): (v or b"").decode()
                for k, v in info.properties.items()
                if isinstance(k, bytes)
            }
            addresses = info.parsed_addresses()
            host = addresses[0] if addresses else ""
            url = props.get("url") or f"http://{host}:{info.port}"
            found.append(
                Found(
                    name=name.removesuffix("." + SERVICE_TYPE),
                    url=url,
                    version=props.get("version", "?"),
                    host=host,
                )
            )
        return found
    finally:
        zeroconf.close()


def find_controller(timeout: float = 1.5) -> str:
    """The URL of the one controller on the network; a clear error for none or several.
    A listen that hears nobody is tried once more, twice as long: on a busy machine (or a
    busy controller) the first answer can come after the first listen has ended."""
    found = browse(timeout) or browse(2 * timeout)
    if not found:
        raise InvalidRequest(
            "no controller given and none found on the network: use --controller URL or set "
            "QFARM_CONTROLLER"
        )
    if len(found) > 1:
        listed = ", ".join(f"{f.name} ({f.url})" for f in found)
        raise InvalidRequest(f"several controllers found, name one with --controller: {listed}")
    return found[0].url
