"""The tick's index of free slots (qfarm.controller.freeslots): the node it names is the one
placement's plain rule names (the least busy free node, ties by name; fresh nodes before
those that failed the job; counted resources), booking after booking, and it never names a
node that is not free this tick."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from qfarm.controller.freeslots import FreeSlots
from qfarm.controller.placement import Eligible, Farm, JobHistory, NodeView, choose
from qfarm.domain.requirements import Requirements
from qfarm.store import Candidate

SERVICES = ("render", "transcode")


def candidate(service: str, failed: tuple[str, ...] = (), gpus: int = 0) -> Candidate:
    requirements = Requirements(amounts={"gpu": gpus}) if gpus else Requirements()
    return Candidate(
        segment_id=1, job_id=1, batch_id=1, index=1, service=service, job_type="command",
        job_spec={}, segment_spec={}, timeout=None, attempts=0, failed_nodes=failed,
        requirements=requirements,
    )  # fmt: skip


def test_it_names_the_node_with_most_free_slots_and_the_greatest_name_on_a_tie() -> None:
    free = {"a": {"render": 2}, "b": {"render": 3}, "c": {"render": 3}}
    index = FreeSlots(free)
    pool = Eligible(["a", "b", "c"])
    names = []
    for _ in range(8):
        name = index.best(pool, (), lambda: pool.nodes, "render")
        if name is None:
            break
        names.append(name)
        free[name]["render"] -= 1  # the dispatcher's booking, which the index reads
    # Free (a, b, c): 233 c, 232 b, 222 c, 221 b, 211 a, 111 c, 110 b, 100 a.
    assert names == ["c", "b", "c", "b", "a", "c", "b", "a"]
    assert index.best(pool, (), lambda: pool.nodes, "render") is None


def test_a_node_not_free_this_tick_is_never_named_though_its_job_may_use_it() -> None:
    # "b" was disabled, or lost, between ticks: the dispatcher's free counts leave it out.
    free = {"a": {"render": 1}}
    index = FreeSlots(free)
    pool = Eligible(["a", "b"])
    assert index.best(pool, (), lambda: pool.nodes, "render") == "a"
    free["a"]["render"] = 0
    assert index.best(pool, (), lambda: pool.nodes, "render") is None


def test_a_node_set_aside_for_one_segment_is_offered_to_the_next() -> None:
    free = {"a": {"render": 1}, "b": {"render": 2}}
    gpus = {"a": 1, "b": 0}
    index = FreeSlots(free)
    pool = Eligible(["a", "b"])
    assert index.best(pool, (), lambda: pool.nodes, "render", lambda n: gpus[n] > 0) == "a"
    assert index.best(pool, (), lambda: pool.nodes, "render") == "b"


def test_each_pool_is_made_once_per_tick() -> None:
    free = {"a": {"render": 4}, "b": {"render": 4}}
    index = FreeSlots(free)
    pool = Eligible(["a", "b"])
    made = []

    def nodes() -> list[str]:
        made.append(1)
        return pool.nodes

    for _ in range(5):
        name = index.best(pool, (), nodes, "render")
        assert name is not None
        free[name]["render"] -= 1
    assert len(made) == 1


@st.composite
def farms(draw: st.DrawFn) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    names = draw(st.lists(st.sampled_from("abcdefghij"), min_size=1, max_size=10, unique=True))
    free = {name: {s: n for s in SERVICES if (n := draw(st.integers(0, 3))) > 0} for name in names}
    gpus = {name: {"gpu": draw(st.integers(0, 2))} for name in names}
    return free, gpus


# A job: the nodes it may use and those that failed it (both fixed for a tick, as the
# dispatcher has them per job and pin).
jobs = st.tuples(
    st.sets(st.sampled_from("abcdefghijk")), st.sets(st.sampled_from("abcdefghijk"), max_size=4)
)


@settings(max_examples=300, deadline=None)
@given(
    farm_and_gpus=farms(),
    job_list=st.lists(jobs, min_size=1, max_size=3),
    steps=st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(SERVICES), st.integers(0, 1)), max_size=40
    ),
)
def test_the_indexed_choice_is_the_plain_rule_booking_after_booking(
    farm_and_gpus: tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]],
    job_list: list[tuple[set[str], set[str]]],
    steps: list[tuple[int, str, int]],
) -> None:
    """Segments of random jobs (some holding a GPU) booked one after another on a random
    farm: the index names the node the plain rule names, every time."""
    free, spare = farm_and_gpus
    farm = Farm({name: NodeView(name, dict(services)) for name, services in free.items()})
    index = FreeSlots(free)
    found = [Eligible(sorted(nodes)) for nodes, _ in job_list]
    for which, service, gpus in steps:
        job = which % len(job_list)
        cand = candidate(service, tuple(sorted(job_list[job][1])), gpus)
        plain = choose(cand, (), farm, free, None, JobHistory(), spare, found[job])
        indexed = choose(cand, (), farm, free, None, JobHistory(), spare, found[job], index)
        assert indexed == plain
        if plain.node is not None:
            free[plain.node][service] -= 1
            spare[plain.node]["gpu"] -= gpus
