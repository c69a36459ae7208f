"""Answers are declared once: every component of /openapi.json that describes an answer is
derived from its model, lists exactly the model's fields, and a dumped model is its JSON."""

from __future__ import annotations

import typing
from typing import Any

import attrs

from agentvisor.admin.openapi import build_document
from agentvisor.api.answers import MODELS, Replicas, answer_schemas, dump
from agentvisor.api.schema import nested_models
from agentvisor.api.services import Page, ServiceList


def _reachable() -> dict[str, type]:
    found: dict[str, type] = {}
    pending = list(MODELS)
    while pending:
        cls = pending.pop()
        if cls.__name__ in found:
            continue
        found[cls.__name__] = cls
        hints = typing.get_type_hints(cls)
        for field in attrs.fields(cls):
            pending.extend(nested_models(hints[field.name]))
    return found


def test_every_answer_component_is_its_models_schema() -> None:
    components = build_document("0", auth=True)["components"]["schemas"]
    derived = answer_schemas()
    models = _reachable()
    assert sorted(derived) == sorted(models)
    for name, cls in models.items():
        names = [field.name for field in attrs.fields(cls)]
        assert components[name] == derived[name]
        assert list(derived[name]["properties"]) == names
        assert derived[name]["required"] == names, "answers always carry every field"


def test_a_nested_model_is_a_reference_to_its_component() -> None:
    schema = answer_schemas()["ScaleResult"]
    assert schema["properties"]["replicas"] == {"$ref": "#/components/schemas/Replicas"}
    assert schema["properties"]["service"] == {"$ref": "#/components/schemas/ServiceDetail"}


def test_answer_numbers_carry_no_request_bounds() -> None:
    def numbers(schema: Any) -> list[dict[str, Any]]:
        if isinstance(schema, dict):
            found = [schema] if schema.get("type") in ("integer", "number") else []
            return found + [n for value in schema.values() for n in numbers(value)]
        if isinstance(schema, list):
            return [n for value in schema for n in numbers(value)]
        return []

    for number in numbers(answer_schemas()):
        assert "maximum" not in number, number
        assert "minimum" not in number, number


def test_dump_is_the_json_of_the_model() -> None:
    page = ServiceList(services=[], total=0, page=Page(limit=50, offset=0, has_next=False))
    assert dump(page) == {
        "services": [],
        "total": 0,
        "page": {"limit": 50, "offset": 0, "has_next": False},
    }
    assert dump(Replicas(1, 2)) == {"previous": 1, "desired": 2}
