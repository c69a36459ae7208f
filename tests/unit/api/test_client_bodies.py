"""The Python client checks a body with the server's own declaration before sending it.

A ``MockTransport`` stands in for the server (a fake, not a mock of ours):
an invalid body never reaches it, and the error is the one the server would
have answered, naming the same field.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from agentvisor.client import AgentvisorClient, ApiError


def client_and_requests() -> tuple[AgentvisorClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"success": True, "data": {}})

    client = AgentvisorClient("http://agentvisor.test", transport=httpx.MockTransport(server))
    return client, sent


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.scale("a", 5000), "Field 'replicas' must be an integer from 0 to 1000"),
        (lambda c: c.register("a", command="x", port=0), "Field 'port' must be an integer"),
        (lambda c: c.register("Bad Name", command="x"), "Field 'name' must be the service"),
        (lambda c: c.register("a", command="x", replica=2), "(did you mean 'replicas'?)"),
        (lambda c: c.update_config("a", {"health": {"timeout": -1}}), "'health.timeout'"),
        (lambda c: c.create_rule({"priority": 1}), "Field 'name' is required"),
        (lambda c: c.update_rule("r", {"enabled": "yes"}), "Field 'enabled' must be true"),
        (lambda c: c.disconnect("c1", reason="x" * 200), "at most 120 characters"),
        (lambda c: c.route_test(ip="nowhere"), "Field 'ip' must be an IPv4 address or"),
    ],
)
def test_a_body_the_server_would_refuse_is_refused_before_it_is_sent(
    call: Any, message: str
) -> None:
    client, sent = client_and_requests()
    with client, pytest.raises(ApiError) as error:
        call(client)
    assert (error.value.code, error.value.status) == ("INVALID_REQUEST", 400)
    assert message in error.value.message
    assert sent == []


def test_a_valid_body_is_sent_as_given() -> None:
    client, sent = client_and_requests()
    with client:
        client.register("a", command="x", config={"max_sessions": 5}, port=None)
        client.scale("a", 2)
        client.route_test(ip="::1", query={"a": ["1", "2"]})
    bodies = [httpx.Response(200, content=request.content).json() for request in sent]
    assert bodies == [
        {"name": "a", "command": "x", "config": {"max_sessions": 5}},
        {"replicas": 2},
        {"ip": "::1", "path": "/", "headers": {}, "query": {"a": ["1", "2"]}},
    ]
