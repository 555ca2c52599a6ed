"""Notifications on the command line: the options of ``qfarm controller`` that say how it
sends them (an SMTP server, the webhook secret, the farm-wide defaults), ``qfarm notify``
(the defaults through the API), ``qfarm webhook-secret`` (what receivers check signatures
with), and the deliveries table of ``qfarm show``. A batch's own ``--notify`` is one of
the submit options (:class:`qfarm.cli.options.Schedule`)."""

from __future__ import annotations

import dataclasses
import datetime
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from qfarm import config
from qfarm.cli.app import app
from qfarm.cli.common import FLAG, fail_usage, out, print_json
from qfarm.cli.options import (
    Connection,
    DataDirOpt,
    JsonOpt,
    NotifyOnOpt,
    OptionSet,
    with_option_sets,
)
from qfarm.domain.errors import InvalidRequest

if TYPE_CHECKING:
    from qfarm.controller.notify import NotifyConfig

TargetsArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="TARGET...", help="mailto:ADDRESS or an http(s):// URL; none: no defaults."
    ),
]


@dataclasses.dataclass(frozen=True)
class ControllerNotify(OptionSet):
    """How ``qfarm controller`` sends notifications of batches' ends."""

    notify: Annotated[
        list[str] | None,
        typer.Option(
            "--notify",
            metavar="TARGET",
            help="Tell of every batch's end, besides whom the batch names itself: "
            "mailto:ADDRESS or an http(s):// URL. Repeatable; replaces the defaults kept "
            "from before (qfarm notify set changes them while it runs).",
        ),
    ] = None
    notify_on: NotifyOnOpt = "ended"
    smtp: Annotated[
        str | None,
        typer.Option(
            "--smtp",
            metavar="URL",
            help="The mail server for mailto: targets: smtp://[USER@]HOST[:PORT] (STARTTLS, "
            "port 587) or smtps://... (TLS, port 465); the password in $QFARM_SMTP_PASSWORD.",
        ),
    ] = None
    smtp_insecure: Annotated[
        bool,
        typer.Option(
            "--smtp-insecure",
            metavar=FLAG,
            help="Speak smtp:// in the clear, without STARTTLS (a relay on this machine).",
        ),
    ] = False
    smtp_from: Annotated[
        str | None,
        typer.Option(
            "--smtp-from",
            metavar="ADDRESS",
            help="The sender of its email [default: the SMTP user, or qfarm@HOST].",
        ),
    ] = None
    smtp_ca: Annotated[
        Path | None,
        typer.Option(
            "--smtp-ca", metavar="FILE", help="Trust the mail server's certificate from this CA."
        ),
    ] = None
    webhook_secret: Annotated[
        str | None,
        typer.Option(
            "--webhook-secret",
            envvar="QFARM_WEBHOOK_SECRET",
            metavar="SECRET",
            help="Sign webhooks with this [default: one made at the first start: qfarm "
            "webhook-secret prints it].",
        ),
    ] = None

    def config(self, data_dir: Path) -> NotifyConfig:
        """What the controller is given (InvalidRequest naming a bad option)."""
        from qfarm.controller.notify import NotifyConfig
        from qfarm.controller.notify_email import PASSWORD_ENV, parse_smtp
        from qfarm.controller.notify_webhook import webhook_secret
        from qfarm.domain.notify import TargetKind, notifications

        smtp = None
        if self.smtp:
            smtp = parse_smtp(
                self.smtp,
                insecure=self.smtp_insecure,
                sender=self.smtp_from,
                ca_file=self.smtp_ca,
                password=os.environ.get(PASSWORD_ENV),
            )
        defaults = notifications(self.notify, self.notify_on) if self.notify else None
        if smtp is None and any(n.kind is TargetKind.EMAIL for n in defaults or ()):
            raise InvalidRequest("--notify mailto:... needs a mail server: give --smtp URL")
        return NotifyConfig(
            webhook_secret=webhook_secret(data_dir, self.webhook_secret),
            smtp=smtp,
            defaults=defaults,
        )


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def deliveries_table(rows: list[dict[str, Any]]) -> Table:
    """A batch's deliveries as ``qfarm show`` prints them."""
    table = Table("notify", "event", "state", "attempts", "delivered", "next try", "last error")
    for row in rows:
        pending = row["state"] == "pending"
        table.add_row(
            row["target"],
            row["event"],
            row["state"],
            str(row["attempts"]),
            _when(row.get("delivered_at")),
            _when(row.get("next_at")) if pending else "-",
            row.get("last_error") or "",
        )
    return table


# ------------------------------------------------------------------- qfarm notify

notify_app = typer.Typer(
    help="The farm-wide notifications: told of every batch's end, besides whom each batch "
    "names with --notify.",
    epilog="**Examples**\n\n    qfarm notify show\n\n"
    "    qfarm notify set https://hooks.example/qfarm mailto:ops@example.com --on failed",
    no_args_is_help=True,
)
app.add_typer(notify_app, name="notify")


def _print_defaults(settings: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(settings)
        return
    table = Table("notify", "on")
    for row in settings["notify"]:
        table.add_row(row["target"], row["on"])
    out.print(table)
    if not settings["email"]:
        out.print("(no SMTP server: qfarm controller --smtp sends email)", highlight=False)


@notify_app.command("show", epilog="**Example**\n\n    qfarm notify show --json")
@with_option_sets
def notify_show(remote: Connection, as_json: JsonOpt = False) -> None:
    """The farm-wide notifications."""
    _print_defaults(remote.client().notify_defaults(), as_json)


@notify_app.command(
    "set",
    epilog="**Examples**\n\n    qfarm notify set https://hooks.example/qfarm --on failed\n\n"
    "    qfarm notify set      # none",
)
@with_option_sets
def notify_set(
    *,
    targets: TargetsArg = None,
    on: Annotated[
        str, typer.Option("--on", metavar="done|failed|ended", help="Which ends they tell of.")
    ] = "ended",
    remote: Connection,
    as_json: JsonOpt = False,
) -> None:
    """Replace the farm-wide notifications (none given: there are none)."""
    from qfarm.domain.notify import notifications

    try:
        given = notifications(targets or [], on)
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    settings = remote.client().set_notify_defaults([n.to_dict() for n in given])
    _print_defaults(settings, as_json)


@app.command(
    "webhook-secret",
    epilog="**Examples**\n\n    qfarm webhook-secret\n\n"
    "    qfarm webhook-secret --data-dir /srv/qfarm",
)
def webhook_secret_command(data_dir: DataDirOpt = None) -> None:
    """Print the secret the controller of this data dir signs webhooks with (made now if it
    has none yet), for receivers to check X-Qfarm-Signature: sha256=HMAC-SHA256(secret,
    body). A controller given --webhook-secret uses that one instead."""
    from qfarm.controller.notify_webhook import webhook_secret

    out.print(webhook_secret(config.data_dir(data_dir)), highlight=False, soft_wrap=True)
