"""The rules of what a job needs of a node: tags, counted resources and host constraints, and
the one-line reasons given when no node meets them."""

from __future__ import annotations

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.requirements import (
    CPU_ARCH,
    GPU_COUNT,
    MEMORY_MIB,
    NO_REQUIREMENTS,
    OS_FAMILY,
    VCPU,
    AmountRange,
    AttributeMatch,
    HostConstraints,
    NodeOffer,
    Requirements,
    job_requirements,
    parse_amounts,
    parse_tags,
    unmet,
    why_none,
)

GPU_NODE = NodeOffer(
    tags=frozenset({"gpu", "site=paris"}),
    resources={"gpu": 2, "license_nuke": 1},
    os_family="linux",
    cpu_arch="x86_64",
    cores=16,
    memory_mib=65536,
    gpu_memory_mib=24576,
)
PLAIN_NODE = NodeOffer(os_family="linux", cpu_arch="arm64", cores=4, memory_mib=8192)


def host(*amounts: AmountRange, attributes: tuple[AttributeMatch, ...] = ()) -> Requirements:
    return Requirements(host=HostConstraints(amounts=amounts, attributes=attributes))


def test_no_requirements_are_met_by_any_node() -> None:
    assert NO_REQUIREMENTS.empty
    assert unmet(PLAIN_NODE, NO_REQUIREMENTS) is None
    assert unmet(NodeOffer(), NO_REQUIREMENTS) is None


def test_a_required_tag_is_met_only_by_nodes_that_carry_it() -> None:
    req = Requirements(tags=frozenset({"gpu"}))
    assert unmet(GPU_NODE, req) is None
    assert unmet(PLAIN_NODE, req) == "needs tag gpu"
    assert why_none([PLAIN_NODE], req) == "needs tag gpu; no online node has it"


def test_an_amount_needs_that_many_on_one_node() -> None:
    req = Requirements(amounts={"gpu": 2})
    assert unmet(GPU_NODE, req) is None
    assert unmet(PLAIN_NODE, req) == "needs 2 gpu"
    three = Requirements(amounts={"gpu": 3})
    assert why_none([GPU_NODE, PLAIN_NODE], three) == (
        "needs 3 gpu; the most any online node has is 2"
    )


def test_host_amounts_select_by_facts() -> None:
    assert unmet(GPU_NODE, host(AmountRange(VCPU, min=8))) is None
    assert unmet(PLAIN_NODE, host(AmountRange(VCPU, min=8))) == (
        "needs amount.worker.vcpu of at least 8"
    )
    # A maximum selects too: a job for small machines.
    assert unmet(GPU_NODE, host(AmountRange(MEMORY_MIB, max=16384))) is not None
    assert unmet(PLAIN_NODE, host(AmountRange(MEMORY_MIB, max=16384))) is None
    # amount.worker.gpu reads the node's counted gpu resource.
    assert unmet(GPU_NODE, host(AmountRange(GPU_COUNT, min=1))) is None
    reason = why_none([PLAIN_NODE], host(AmountRange(GPU_COUNT, min=1, max=4)))
    assert reason == "needs amount.worker.gpu between 1 and 4; online nodes have 0"


def test_a_custom_amount_reads_the_counted_resource_of_that_name() -> None:
    req = host(AmountRange("amount.license_nuke", min=1))
    assert unmet(GPU_NODE, req) is None
    assert unmet(PLAIN_NODE, req) == "needs amount.license_nuke of at least 1"
    # Written with the custom. namespace, it names the same resource.
    assert unmet(GPU_NODE, host(AmountRange("amount.custom.license_nuke", min=1))) is None
    site = host(attributes=(AttributeMatch("attr.custom.site", any_of=("paris",)),))
    assert unmet(GPU_NODE, site) is None


def test_attributes_match_os_arch_and_tags_written_name_value() -> None:
    linux = host(attributes=(AttributeMatch(OS_FAMILY, any_of=("linux", "macos")),))
    assert unmet(PLAIN_NODE, linux) is None
    windows = host(attributes=(AttributeMatch(OS_FAMILY, any_of=("windows",)),))
    assert why_none([GPU_NODE, PLAIN_NODE], windows) == (
        "needs attr.worker.os.family windows; online nodes have linux"
    )
    arm = host(attributes=(AttributeMatch(CPU_ARCH, any_of=("arm64",)),))
    assert unmet(PLAIN_NODE, arm) is None and unmet(GPU_NODE, arm) is not None
    site = host(attributes=(AttributeMatch("attr.site", any_of=("paris", "lyon")),))
    assert unmet(GPU_NODE, site) is None
    # A plain tag of the value does not count: only NAME=VALUE says which attribute it is.
    assert unmet(NodeOffer(tags=frozenset({"paris"})), site) == "needs attr.site paris or lyon"
    both = host(attributes=(AttributeMatch("attr.site", all_of=("paris", "lyon")),))
    assert unmet(GPU_NODE, both) == "needs attr.site paris and lyon"


def test_requirements_met_apart_but_not_together_say_so() -> None:
    req = Requirements(tags=frozenset({"gpu"}), host=HostConstraints(
        attributes=(AttributeMatch(CPU_ARCH, any_of=("arm64",)),)
    ))  # fmt: skip
    assert why_none([GPU_NODE, PLAIN_NODE], req).startswith("no online node meets all of: ")


def test_requirements_round_trip_through_their_stored_form() -> None:
    req = Requirements(
        tags=frozenset({"gpu", "fast-disk"}),
        amounts={"gpu": 1, "license_nuke": 1},
        host=HostConstraints(
            amounts=(AmountRange(MEMORY_MIB, min=1024.0, max=None),),
            attributes=(AttributeMatch(OS_FAMILY, any_of=("linux",)),),
        ),
    )
    assert Requirements.from_dict(req.to_dict()) == req
    assert Requirements.from_dict(None) is NO_REQUIREMENTS
    assert NO_REQUIREMENTS.to_dict() == {}


def test_options_parse_into_requirements() -> None:
    assert parse_tags(["gpu,fast-disk", "site=paris"]) == {"gpu", "fast-disk", "site=paris"}
    assert parse_amounts(["license_nuke=2", "a=1,b=0"]) == {"license_nuke": 2, "a": 1, "b": 0}
    req = job_requirements(["gpu"], 1, {"license_nuke": 1})
    assert req.tags == {"gpu"} and req.amounts == {"gpu": 1, "license_nuke": 1}
    assert job_requirements([], 0, {}) is NO_REQUIREMENTS


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_tags(["gpu,bad tag"]), "--tags 'bad tag' is not a tag"),
        (lambda: parse_amounts(["license_nuke"]), "--resource 'license_nuke' is not NAME=N"),
        (lambda: parse_amounts(["nuke=-1"]), "--resource 'nuke=-1' is not NAME=N"),
        (lambda: parse_amounts(["9lives=1"]), "--resource name '9lives' must start"),
        (lambda: job_requirements([], -1), "--gpus -1 must be a whole number"),
        (lambda: job_requirements(["ok"], None, {"x y": 1}), "resource name 'x y'"),
    ],
)
def test_bad_values_are_refused_naming_them(call: object, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        call()  # type: ignore[operator]
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
