"""The cluster itself: what the controller is, where nodes join, what it can transcode to."""

from __future__ import annotations

from fastapi import APIRouter, Request

from qfarm import __version__
from qfarm.api.common import API, errors
from qfarm.controller.service import Controller
from qfarm.domain.errors import NotFound
from qfarm.security.pki import ClusterAuthority, fingerprint
from qfarm.wire.schemas import CaOut, InfoOut, JoinIn, JoinOut, PresetOut

# Where nodes join: outside the client-token gate, since a join carries its own proof (see
# qfarm.security.pki); a node needs only the join token.
JOIN_PATH = f"{API}/join"
# The cluster CA's certificate: public, so outside the token gate, for a client or node
# that checks it against the fingerprint it was given before it trusts this controller.
CA_PATH = f"{API}/ca"


def router(controller: Controller) -> APIRouter:
    api = APIRouter(tags=["cluster"])

    @api.get(f"{API}/info", responses=errors())
    async def info() -> InfoOut:
        """The controller's version, the address its nodes join, whether they need its
        join token to (``join``), and where Dask's dashboard is (null unless it was asked
        for with ``qfarm controller --dashboard``)."""
        return InfoOut(
            version=__version__,
            scheduler=controller.engine.scheduler_address,
            join=controller.authority is not None,
            dashboard=controller.engine.dashboard_url,
        )

    @api.get(CA_PATH, responses=errors(404))
    async def ca() -> CaOut:
        """The cluster CA's certificate, which signs the API's HTTPS certificate and the
        nodes': check its fingerprint against the one in your join token or connection
        string before trusting it (``qfarm login`` and ``qfarm node`` do). 404 for a
        controller without one."""
        if not ClusterAuthority.exists(controller.data_dir):
            raise NotFound("this controller has no cluster CA")
        pem = ClusterAuthority.existing(controller.data_dir).ca_cert
        return CaOut(ca=pem, fingerprint=fingerprint(pem))

    @api.post(JOIN_PATH, responses=errors(403))
    async def join(body: JoinIn, http: Request) -> JoinOut:
        """A node joins: for a request signed with the join secret, the node's certificate
        and the cluster CA (403 if the proof is wrong). A controller on an external
        scheduler issues none: that scheduler's deployment decides who joins it."""
        # The audit log's actor: the node, whose proof (checked below) is its credential.
        http.state.actor = http.state.audit_target = f"node {body.name}"
        answer = JoinOut(
            version=__version__,
            scheduler=controller.engine.scheduler_address,
            ca=None,
            certificate=None,
        )
        if controller.authority is not None:
            answer.certificate = controller.authority.admit(body.csr, body.proof)
            answer.ca = controller.authority.ca_cert
        return answer

    @api.get(f"{API}/presets", responses=errors())
    async def presets() -> list[PresetOut]:
        """The built-in transcode presets, and whether the controller's ffmpeg has them."""
        from qfarm.media.presets import BUILTIN
        from qfarm.media.tool import has_encoder

        return [
            PresetOut(
                name=p.name,
                kind=p.kind,
                description=p.description,
                extension=p.extension,
                available=all(has_encoder(e) for e in p.encoders()),
            )
            for p in BUILTIN.values()
        ]

    return api
