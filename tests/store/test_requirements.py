"""Jobs' requirements and nodes' tags and counted resources, as the store keeps them: written,
read back into the records, handed to the dispatcher with each candidate, and added to an
older store by its migration."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from qfarm.controller.planning import plan_batch
from qfarm.domain.model import BatchRequest, JobRequest, Node, NodeState
from qfarm.domain.requirements import (
    NO_REQUIREMENTS,
    OS_FAMILY,
    AttributeMatch,
    HostConstraints,
    Requirements,
)
from qfarm.store import SCHEMA_VERSION, Store

REQ = Requirements(
    tags=frozenset({"gpu"}),
    amounts={"gpu": 1, "license_nuke": 1},
    host=HostConstraints(attributes=(AttributeMatch(OS_FAMILY, any_of=("linux",)),)),
)


def batch(cwd: Path, req: Requirements = REQ) -> BatchRequest:
    job = JobRequest("command", {"command": ["true"], "frames": "1-2", "cwd": str(cwd)},
                     requirements=req)  # fmt: skip
    return BatchRequest(jobs=(job,))


def test_a_jobs_requirements_and_a_nodes_tags_round_trip(store: Store, tmp_path: Path) -> None:
    request = batch(tmp_path)
    batch_id = store.add_batch(request, plan_batch(request))
    plain = batch(tmp_path, NO_REQUIREMENTS)
    plain_id = store.add_batch(plain, plan_batch(plain))
    assert store.jobs(batch_id)[0].requirements == REQ
    assert store.jobs(plain_id)[0].requirements is NO_REQUIREMENTS
    # The dispatcher's candidates carry them.
    picked, _ = store.dispatch({"command": 4}, 2e9, None, lambda cand: "n1")
    by_batch = {cand.batch_id: cand.requirements for cand, _ in picked}
    assert by_batch == {batch_id: REQ, plain_id: NO_REQUIREMENTS}

    store.upsert_node(
        Node("n1", "tcp://x", NodeState.ONLINE, {"command": 1}, tags=("fast-disk", "gpu"),
             resources={"gpu": 2})
    )  # fmt: skip
    store.upsert_node(Node("n2", "tcp://y", NodeState.ONLINE, {"command": 1}))
    nodes = {n.name: n for n in store.nodes()}
    assert nodes["n1"].tags == ("fast-disk", "gpu") and nodes["n1"].resources == {"gpu": 2}
    assert nodes["n2"].tags == () and nodes["n2"].resources == {}


def test_a_store_of_schema_3_gains_requirements_tags_and_resources(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store(url)
    old = batch(tmp_path, NO_REQUIREMENTS)
    old_id = store.add_batch(old, plan_batch(old))
    store.upsert_node(Node("n1", "tcp://x", NodeState.ONLINE, {"command": 1}))
    store.close()
    engine = create_engine(url)
    with engine.begin() as conn:  # a store of schema 3: none of the three columns
        conn.execute(text("ALTER TABLE jobs DROP COLUMN requirements"))
        conn.execute(text("ALTER TABLE nodes DROP COLUMN tags"))
        conn.execute(text("ALTER TABLE nodes DROP COLUMN resources"))
        conn.execute(text("UPDATE qfarm_schema SET version = 3"))
    engine.dispose()
    store = Store(url)
    try:
        assert store.jobs(old_id)[0].requirements is NO_REQUIREMENTS
        assert store.nodes()[0].tags == ()
        request = batch(tmp_path)
        batch_id = store.add_batch(request, plan_batch(request))
        assert store.jobs(batch_id)[0].requirements == REQ
    finally:
        store.close()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM qfarm_schema")).scalar() == SCHEMA_VERSION
    engine.dispose()
