"""``qfarm login``: trust a controller and keep its URL and client token, so that every
later command reaches it over verified HTTPS without options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from qfarm import login as logins
from qfarm.cli.app import app
from qfarm.cli.common import fail_usage, out, print_json
from qfarm.cli.options import JsonOpt
from qfarm.domain.errors import InvalidRequest
from qfarm.security.pki import parse_login


@app.command(
    "login",
    epilog="**Examples**\n\n    qfarm login https://farm.example:8765 qfc1.Xb3...Q.qf_9s...\n\n"
    "    qfarm login https://farm.example:8765 qf_9s... --ca-file studio-ca.pem",
)
def login(
    url: Annotated[str, typer.Argument(metavar="URL", help="The controller's URL.")],
    connection: Annotated[
        str,
        typer.Argument(
            metavar="TOKEN",
            help="The connection string qfc1.<CA fingerprint>.<token> the controller printed, "
            "or a bare client token.",
        ),
    ],
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            metavar="FILE",
            help="Trust this CA (PEM) for the controller's certificate: one you gave it "
            "with --tls-cert.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Log in to a controller: check its certificate against the CA that the connection
    string names (fetched from the controller and compared with the fingerprint, so no CA
    is installed by hand), check the token, and keep the three for every later command
    (`qfarm batches` and the rest then need no --controller or --token)."""
    url = url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise fail_usage(f"{url!r} is not a controller URL: http(s)://HOST:PORT")
    try:
        given = parse_login(connection)
        if ca_file is not None:
            ca: str | None = ca_file.read_text()
        elif given.fingerprint and url.startswith("https://"):
            ca = logins.pinned_ca(url, given.fingerprint)
        else:
            ca = None
    except OSError as exc:
        raise fail_usage(f"cannot read --ca-file {ca_file}: {exc.strerror}") from None
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    from qfarm.client import Client

    client = Client(url, token=given.token, ca=ca)
    version = client.info()["version"]
    client.batches()  # a wrong or revoked token: 401, exit 1, nothing saved
    path = logins.save(logins.SavedLogin(url, given.token, ca))
    if as_json:
        print_json({"url": url, "version": version, "saved": str(path), "ca": ca is not None})
    else:
        trust = "its cluster CA" if ca else "this machine's trusted CAs"
        out.print(
            f"logged in to {url} (qfarm {version}, certificate checked against {trust}); "
            f"kept in {path}",
            highlight=False,
            soft_wrap=True,
        )
