"""ClientInfo: what the rules and strategies read of a handshake."""

from __future__ import annotations

from agentvisor.router.rules import ClientInfo


def test_header_names_are_lower_cased() -> None:
    client = ClientInfo("10.0.0.1", headers={"User-Agent": "curl/8"})

    assert client.headers == {"user-agent": "curl/8"}


def test_a_single_query_value_becomes_a_tuple() -> None:
    client = ClientInfo("10.0.0.1", query={"service": "weather"})

    assert client.query == {"service": ("weather",)}


def test_user_agent_and_origin_come_from_their_headers() -> None:
    client = ClientInfo("10.0.0.1", headers={"User-Agent": "bot", "Origin": "https://a.example"})

    assert (client.user_agent, client.origin) == ("bot", "https://a.example")


def test_user_agent_is_none_without_the_header() -> None:
    assert ClientInfo("10.0.0.1").user_agent is None


def test_from_request_splits_path_and_query() -> None:
    client = ClientInfo.from_request("10.0.0.1", "/ws?service=weather&tag=a&tag=b&empty=", [])

    assert client.path == "/ws"
    assert client.query == {"service": ("weather",), "tag": ("a", "b"), "empty": ("",)}


def test_from_request_joins_repeated_headers() -> None:
    client = ClientInfo.from_request("10.0.0.1", "/", [("X-A", "1"), ("x-a", "2")])

    assert client.headers["x-a"] == "1, 2"


def test_from_request_reads_offered_subprotocols() -> None:
    headers = [("Sec-WebSocket-Protocol", "chat.v2, chat.v1"), ("Sec-WebSocket-Protocol", "x")]

    client = ClientInfo.from_request("10.0.0.1", "/ws", headers)

    assert client.subprotocols == ("chat.v2", "chat.v1", "x")


def test_from_request_with_an_empty_target_has_path_slash() -> None:
    assert ClientInfo.from_request("10.0.0.1", "", []).path == "/"


def test_service_comes_from_the_query() -> None:
    assert ClientInfo("10.0.0.1", query={"service": "weather"}).service == "weather"


def test_service_comes_from_the_header_without_a_query_parameter() -> None:
    client = ClientInfo("10.0.0.1", headers={"X-Agentvisor-Service": "weather"})

    assert client.service == "weather"


def test_query_service_wins_over_the_header() -> None:
    client = ClientInfo(
        "10.0.0.1", headers={"X-Agentvisor-Service": "chat"}, query={"service": "weather"}
    )

    assert client.service == "weather"


def test_an_empty_service_counts_as_absent() -> None:
    client = ClientInfo("10.0.0.1", headers={"X-Agentvisor-Service": " "}, query={"service": ""})

    assert client.service is None


def test_tags_repeat_in_the_query_without_duplicates() -> None:
    client = ClientInfo("10.0.0.1", query={"tag": ("fast", "eu", "fast")})

    assert client.tags == ("fast", "eu")


def test_tags_are_comma_separated_in_the_header() -> None:
    client = ClientInfo("10.0.0.1", headers={"X-Agentvisor-Tag": "fast, eu,,"})

    assert client.tags == ("fast", "eu")


def test_no_tags_without_query_or_header() -> None:
    assert ClientInfo("10.0.0.1").tags == ()


def test_session_id_header_is_x_agentvisor_session_id() -> None:
    client = ClientInfo("10.0.0.1", headers={"X-Agentvisor-Session-Id": "s-1"})

    assert client.session_id == "s-1"


def test_routing_hint_header_is_x_agentvisor_routing_hint() -> None:
    client = ClientInfo("10.0.0.1", headers={"X-Agentvisor-Routing-Hint": "random"})

    assert client.routing_hint == "random"


def test_routing_hint_comes_from_the_query() -> None:
    assert ClientInfo("::1", query={"routing_hint": "ip_hash"}).routing_hint == "ip_hash"
