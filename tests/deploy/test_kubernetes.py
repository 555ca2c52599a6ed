"""The Kubernetes manifests in deploy/kubernetes/, checked without a cluster: every document
is a well-formed object, services select the pods they front and name ports those pods
open, secrets are referenced by the names and keys the example defines, the KEDA scaler
targets the node Deployment and reads a metric the controller exports, and every qfarm
command line in a container is one the real CLI accepts (parsed by it, options and all)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
import pytest
import typer
import yaml

from qfarm.cli.app import app
from qfarm.cli.main import register_commands
from qfarm.controller.metrics import FarmMetrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def documents() -> list[dict[str, Any]]:
    found = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in documents() if d["kind"] == kind]


def pod_specs() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, its pod template) of every Deployment and StatefulSet."""
    return [
        (d, d["spec"]["template"])
        for d in documents()
        if d["kind"] in ("Deployment", "StatefulSet")
    ]


def test_every_document_is_a_named_object() -> None:
    docs = documents()
    assert {d["kind"] for d in docs} >= {"Service", "StatefulSet", "Deployment", "Secret"}
    for doc in docs:
        assert doc["apiVersion"] and doc["metadata"]["name"], doc


def test_workloads_select_their_own_pods() -> None:
    for workload, template in pod_specs():
        wanted = workload["spec"]["selector"]["matchLabels"]
        assert wanted.items() <= template["metadata"]["labels"].items(), workload["metadata"]


def test_services_front_pods_on_ports_they_open() -> None:
    for service in by_kind("Service"):
        selector = service["spec"]["selector"]
        fronted = [t for _, t in pod_specs() if selector.items() <= t["metadata"]["labels"].items()]
        assert fronted, f"service {service['metadata']['name']} selects no pods"
        named = {
            port["name"]
            for t in fronted
            for c in t["spec"]["containers"]
            for port in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in named, port


def test_secrets_are_referenced_as_the_example_defines_them() -> None:
    defined = {(s["metadata"]["name"], key) for s in by_kind("Secret") for key in s["stringData"]}
    used = {
        (env["valueFrom"]["secretKeyRef"]["name"], env["valueFrom"]["secretKeyRef"]["key"])
        for _, t in pod_specs()
        for c in t["spec"]["containers"]
        for env in c.get("env", [])
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert used and used <= defined


def _cli() -> Any:
    """qfarm's command line as click sees it (Typer builds on click)."""
    register_commands(["controller"])
    return typer.main.get_command(app)


@pytest.mark.parametrize("container", ["controller", "node"])
def test_container_commands_are_accepted_by_the_cli(container: str) -> None:
    [args] = [
        c["args"] for _, t in pod_specs() for c in t["spec"]["containers"] if c["name"] == container
    ]
    env_names = {
        e["name"] for _, t in pod_specs() for c in t["spec"]["containers"] for e in c.get("env", [])
    }
    for ref in re.findall(r"\$\((\w+)\)", " ".join(args)):
        assert ref in env_names, f"$({ref}) is not set in the pod's env"
    filled = [re.sub(r"\$\((\w+)\)", "10.0.0.7", a) for a in args]
    cli = _cli()
    sub = cli.get_command(click.Context(cli), filled[0])
    assert sub is not None, filled[0]
    ctx = sub.make_context(filled[0], filled[1:])  # raises UsageError for an unknown option
    assert ctx.params


def test_the_controller_service_is_what_nodes_are_pointed_at() -> None:
    [service] = [s for s in by_kind("Service") if s["metadata"]["name"] == "qfarm-controller"]
    port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "http")
    [node] = [c for _, t in pod_specs() for c in t["spec"]["containers"] if c["name"] == "node"]
    url = node["args"][node["args"].index("--controller") + 1]
    assert url == f"https://qfarm-controller:{port}"
    # ... and a name the controller's HTTPS certificate carries.
    [controller] = [
        c for _, t in pod_specs() for c in t["spec"]["containers"] if c["name"] == "controller"
    ]
    assert controller["args"][controller["args"].index("--tls-name") + 1] == "qfarm-controller"


def test_the_keda_scaler_targets_the_nodes_on_an_exported_metric() -> None:
    [scaled] = [d for d in documents() if d["kind"] == "ScaledObject"]
    names = {w["metadata"]["name"] for w, _ in pod_specs() if w["kind"] == "Deployment"}
    assert scaled["spec"]["scaleTargetRef"]["name"] in names
    # The counted metrics, and the gauges a scrape reads from the store and dispatcher.
    exported = {m.name for m in FarmMetrics().registry.collect()}
    exported |= {"qfarm_segments", "qfarm_segments_in_flight", "qfarm_nodes", "qfarm_instances"}
    for trigger in scaled["spec"]["triggers"]:
        metrics = set(re.findall(r"\b(qfarm_\w+)\{", trigger["metadata"]["query"]))
        assert metrics and metrics <= exported, metrics
