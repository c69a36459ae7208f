"""Port assignment for instances."""

from __future__ import annotations

import pytest

from agentvisor.config.model import AgentConfig, AutoscaleConfig
from agentvisor.errors import InsufficientResources
from agentvisor.supervise.ports import allocate_port, ephemeral_overlap, fixed_port, fixed_ports

RANGE = (8100, 8104)


def every_port_free(port: int) -> bool:
    return True


def test_allocates_the_first_port_of_the_range() -> None:
    assert allocate_port(RANGE, set(), every_port_free) == 8100


def test_skips_ports_already_taken() -> None:
    assert allocate_port(RANGE, {8100, 8101}, every_port_free) == 8102


def test_skips_ports_busy_on_the_host() -> None:
    assert allocate_port(RANGE, set(), lambda port: port != 8100) == 8101


def test_starts_the_search_at_start_at() -> None:
    assert allocate_port(RANGE, set(), every_port_free, start_at=8103) == 8103


def test_wraps_from_start_at_to_the_bottom_of_the_range() -> None:
    port = allocate_port(RANGE, {8103}, lambda port: port != 8104, start_at=8103)

    assert port == 8100


def test_start_at_outside_the_range_starts_at_the_bottom() -> None:
    assert allocate_port(RANGE, set(), every_port_free, start_at=9000) == 8100


def test_single_port_range() -> None:
    assert allocate_port((8100, 8100), set(), every_port_free) == 8100


def test_full_range_raises_insufficient_resources_naming_the_range() -> None:
    taken = {8100, 8101, 8102}

    with pytest.raises(InsufficientResources, match="8100-8104"):
        allocate_port(RANGE, taken, lambda port: port not in (8103, 8104))


def test_fixed_ports_cover_every_replica() -> None:
    agents = [AgentConfig(command="w", port=9000, replicas=3)]

    assert fixed_ports(agents) == {9000, 9001, 9002}


def test_fixed_ports_skip_agents_without_a_port() -> None:
    agents = [AgentConfig(command="w", port=9000), AgentConfig(command="w", replicas=4)]

    assert fixed_ports(agents) == {9000}


def test_fixed_ports_keep_replica_0_of_an_agent_scaled_to_zero() -> None:
    assert fixed_ports([AgentConfig(command="w", port=9000, replicas=0)]) == {9000}


def test_fixed_ports_of_an_autoscaled_agent_reserve_its_maximum() -> None:
    # A scale-up must find its port+i free: an allocated instance may not take it.
    agent = AgentConfig(command="w", port=9000, autoscale=AutoscaleConfig(min=2, max=4))

    assert fixed_ports([agent]) == {9000, 9001, 9002, 9003}


def test_fixed_port_of_replica_i_is_port_plus_i() -> None:
    assert fixed_port(AgentConfig(command="w", port=9000), 3) == 9003


def test_no_fixed_port_without_a_port() -> None:
    assert fixed_port(AgentConfig(command="w"), 0) is None


@pytest.mark.parametrize(
    ("port_range", "shared"),
    [((8100, 8999), None), ((32768, 32768), 1), ((30000, 39999), 7232), ((61000, 65535), None)],
)
def test_a_port_range_inside_the_ephemeral_ports_is_warned_about(
    port_range: tuple[int, int], shared: int | None
) -> None:
    warning = ephemeral_overlap(port_range, (32768, 60999))
    if shared is None:
        assert warning is None
    else:
        assert warning is not None
        assert f"shares {shared} ports with the kernel's ephemeral ports 32768-60999" in warning
