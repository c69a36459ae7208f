"""Route conditions: every field and op, case handling, missing and repeated values."""

from __future__ import annotations

import re
from typing import Any

import pytest

from agentvisor.config.model import Condition, ConditionOp
from agentvisor.router.rules import ClientInfo, compile_condition, condition_matches

CLIENT = ClientInfo(
    ip="10.1.2.3",
    path="/ws/Chat",
    headers={
        "User-Agent": "Mozilla/5.0 (X11) Firefox/128",
        "Origin": "https://App.example.com",
        "X-Team": "Blue",
        "X-Empty": "",
    },
    query={"lang": ("en", "FR"), "blank": ("",)},
    subprotocols=("chat.v2", "chat.v1"),
)


def matches(
    field: str,
    op: str,
    value: Any = None,
    *,
    case_sensitive: bool = False,
    client: ClientInfo = CLIENT,
) -> bool:
    condition = Condition(field, ConditionOp(op), value, case_sensitive)
    return condition_matches(condition, client)


def client_from(ip: str) -> ClientInfo:
    return ClientInfo(ip=ip)


# --- fields --------------------------------------------------------------------------


def test_client_ip_is_the_peer_address() -> None:
    assert matches("client_ip", "equals", "10.1.2.3")


def test_path_is_the_request_path() -> None:
    assert matches("path", "equals", "/ws/chat")


def test_user_agent_is_the_user_agent_header() -> None:
    assert matches("user_agent", "contains", "firefox")


def test_origin_is_the_origin_header() -> None:
    assert matches("origin", "equals", "https://app.example.com")


def test_header_names_are_case_insensitive() -> None:
    assert matches("header.x-TEAM", "equals", "blue")


def test_query_names_are_exact() -> None:
    assert not matches("query.LANG", "exists")


def test_subprotocol_matches_any_offered_one() -> None:
    assert matches("subprotocol", "equals", "chat.v1")


def test_unknown_field_is_refused_at_compile_time() -> None:
    with pytest.raises(ValueError, match="unknown condition field"):
        compile_condition(Condition("cookie", ConditionOp.EQUALS, "x"))


# --- string ops ----------------------------------------------------------------------


def test_equals_matches_the_same_value() -> None:
    assert matches("header.x-team", "equals", "Blue")


def test_equals_rejects_another_value() -> None:
    assert not matches("header.x-team", "equals", "red")


def test_equals_ignores_case_by_default() -> None:
    assert matches("header.x-team", "equals", "BLUE")


def test_equals_case_sensitive_rejects_another_case() -> None:
    assert not matches("header.x-team", "equals", "blue", case_sensitive=True)


def test_equals_case_sensitive_matches_the_exact_case() -> None:
    assert matches("header.x-team", "equals", "Blue", case_sensitive=True)


def test_not_equals_matches_another_value() -> None:
    assert matches("header.x-team", "not_equals", "red")


def test_not_equals_rejects_the_same_value_in_another_case() -> None:
    assert not matches("header.x-team", "not_equals", "BLUE")


def test_not_equals_case_sensitive_matches_another_case() -> None:
    assert matches("header.x-team", "not_equals", "BLUE", case_sensitive=True)


def test_contains_matches_a_substring() -> None:
    assert matches("user_agent", "contains", "X11")


def test_contains_rejects_an_absent_substring() -> None:
    assert not matches("user_agent", "contains", "chrome")


def test_contains_case_sensitive_rejects_another_case() -> None:
    assert not matches("user_agent", "contains", "firefox", case_sensitive=True)


def test_starts_with_matches_a_prefix() -> None:
    assert matches("path", "starts_with", "/WS/")


def test_starts_with_rejects_a_non_prefix() -> None:
    assert not matches("path", "starts_with", "/chat")


def test_starts_with_case_sensitive_rejects_another_case() -> None:
    assert not matches("path", "starts_with", "/WS", case_sensitive=True)


def test_ends_with_matches_a_suffix() -> None:
    assert matches("origin", "ends_with", ".EXAMPLE.com")


def test_ends_with_rejects_a_non_suffix() -> None:
    assert not matches("origin", "ends_with", ".example.org")


def test_ends_with_case_sensitive_rejects_another_case() -> None:
    assert not matches("origin", "ends_with", ".COM", case_sensitive=True)


# --- regex ---------------------------------------------------------------------------


def test_regex_searches_anywhere_in_the_value() -> None:
    assert matches("user_agent", "regex", r"Firefox/\d+")


def test_regex_rejects_a_value_without_a_match() -> None:
    assert not matches("user_agent", "regex", r"bot|crawler")


def test_regex_ignores_case_by_default() -> None:
    assert matches("user_agent", "regex", r"firefox/\d+")


def test_regex_case_sensitive_rejects_another_case() -> None:
    assert not matches("user_agent", "regex", r"firefox", case_sensitive=True)


def test_regex_keeps_escapes_when_ignoring_case() -> None:
    # casefolding the pattern would turn \D (non-digit) into \d (digit)
    assert matches("header.x-team", "regex", r"^\D+$")


def test_an_invalid_regex_is_refused_at_compile_time() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        compile_condition(Condition("path", ConditionOp.REGEX, "("))


def test_regex_is_compiled_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled = compile_condition(Condition("path", ConditionOp.REGEX, "^/ws"))

    def no_compiling(*args: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(re, "compile", no_compiling)
    assert compiled.matches(CLIENT)


# --- in / not_in ---------------------------------------------------------------------


def test_in_matches_a_listed_value() -> None:
    assert matches("header.x-team", "in", ("red", "blue"))


def test_in_rejects_an_unlisted_value() -> None:
    assert not matches("header.x-team", "in", ("red", "green"))


def test_in_case_sensitive_rejects_another_case() -> None:
    assert not matches("header.x-team", "in", ("blue",), case_sensitive=True)


def test_in_with_an_empty_list_never_matches() -> None:
    assert not matches("header.x-team", "in", ())


def test_not_in_matches_an_unlisted_value() -> None:
    assert matches("header.x-team", "not_in", ("red", "green"))


def test_not_in_rejects_a_listed_value() -> None:
    assert not matches("header.x-team", "not_in", ("red", "BLUE"))


def test_in_needs_a_list() -> None:
    with pytest.raises(ValueError, match="list of strings"):
        compile_condition(Condition("path", ConditionOp.IN, "/ws"))


# --- exists --------------------------------------------------------------------------


def test_exists_matches_a_present_header() -> None:
    assert matches("header.x-team", "exists")


def test_exists_matches_a_present_but_empty_header() -> None:
    assert matches("header.x-empty", "exists")


def test_exists_matches_a_present_but_empty_query_parameter() -> None:
    assert matches("query.blank", "exists")


def test_exists_rejects_a_missing_header() -> None:
    assert not matches("header.authorization", "exists")


def test_exists_rejects_no_subprotocol() -> None:
    assert not matches("subprotocol", "exists", client=client_from("10.0.0.1"))


# --- missing and repeated values -----------------------------------------------------

MISSING = [
    ("equals", "x", False),
    ("not_equals", "x", True),
    ("contains", "", False),
    ("starts_with", "", False),
    ("ends_with", "", False),
    ("regex", "", False),
    ("in", ("x",), False),
    ("not_in", ("x",), True),
    ("exists", None, False),
    ("cidr", "0.0.0.0/0", False),
]


@pytest.mark.parametrize(("op", "value", "expected"), MISSING, ids=[m[0] for m in MISSING])
def test_a_missing_header_matches_only_negative_ops(op: str, value: Any, expected: bool) -> None:
    assert matches("header.x-missing", op, value) is expected


@pytest.mark.parametrize(("op", "value", "expected"), MISSING, ids=[m[0] for m in MISSING])
def test_a_missing_query_parameter_matches_only_negative_ops(
    op: str, value: Any, expected: bool
) -> None:
    assert matches("query.missing", op, value) is expected


def test_a_repeated_query_parameter_matches_when_any_value_does() -> None:
    assert matches("query.lang", "equals", "fr")


def test_not_equals_on_a_repeated_parameter_fails_when_any_value_equals() -> None:
    assert not matches("query.lang", "not_equals", "en")


def test_not_in_on_offered_subprotocols_fails_when_any_is_listed() -> None:
    assert not matches("subprotocol", "not_in", ("chat.v1", "other"))


# --- cidr ----------------------------------------------------------------------------


def test_cidr_matches_an_ipv4_client_inside_the_network() -> None:
    assert matches("client_ip", "cidr", "10.0.0.0/8")


def test_cidr_rejects_an_ipv4_client_outside_the_network() -> None:
    assert not matches("client_ip", "cidr", "192.168.0.0/16")


def test_cidr_matches_an_ipv6_client_inside_the_network() -> None:
    assert matches("client_ip", "cidr", "2001:db8::/32", client=client_from("2001:db8::7"))


def test_cidr_rejects_an_ipv6_client_outside_the_network() -> None:
    assert not matches("client_ip", "cidr", "2001:db8::/32", client=client_from("2001:db9::7"))


def test_cidr_matches_any_network_of_a_list() -> None:
    networks = ("192.168.0.0/16", "fd00::/8", "10.1.0.0/16")

    assert matches("client_ip", "cidr", networks)


def test_cidr_rejects_a_client_in_no_network_of_a_list() -> None:
    assert not matches("client_ip", "cidr", ("192.168.0.0/16", "fd00::/8"))


def test_cidr_accepts_a_bare_address_as_a_network() -> None:
    assert matches("client_ip", "cidr", "10.1.2.3")


def test_cidr_network_with_host_bits_is_accepted() -> None:
    assert matches("client_ip", "cidr", "10.1.2.200/24")


def test_cidr_never_matches_an_ipv4_client_against_an_ipv6_network() -> None:
    assert not matches("client_ip", "cidr", "::/0")


def test_cidr_matches_an_ipv4_mapped_ipv6_client_against_ipv4_networks() -> None:
    assert matches("client_ip", "cidr", "10.0.0.0/8", client=client_from("::ffff:10.9.8.7"))


@pytest.mark.parametrize("ip", ["", "unix", "localhost", "10.0.0.300", "::g"])
def test_cidr_never_matches_a_client_that_is_not_an_ip(ip: str) -> None:
    assert not matches("client_ip", "cidr", ("0.0.0.0/0", "::/0"), client=client_from(ip))


def test_cidr_reads_other_fields_as_addresses() -> None:
    client = ClientInfo("127.0.0.1", headers={"X-Real-Ip": "172.16.5.4"})

    assert matches("header.x-real-ip", "cidr", "172.16.0.0/12", client=client)


def test_cidr_refuses_a_non_string_network() -> None:
    with pytest.raises(ValueError, match="network"):
        compile_condition(Condition("client_ip", ConditionOp.CIDR, 10))
