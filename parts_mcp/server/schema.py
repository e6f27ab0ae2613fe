"""Input schemas as lean as they can be while saying the same: tokens are paid on every turn."""

from __future__ import annotations

from typing import Any

_DROP = {"title", "$defs"}


def lean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with `$ref`s inlined, titles and null defaults dropped, "X or null" unions written as one
    node typed `[X, "null"]`, and every object closed (`additionalProperties: false`: unknown
    arguments are refused anyway)."""
    defs: dict[str, Any] = schema.get("$defs", {})
    return _lean(schema, defs)


def _lean(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_lean(item, defs) for item in node]  # type: ignore[misc]
    if not isinstance(node, dict):
        return node
    node = dict(node)  # type: ignore[arg-type]
    nullable = False
    variants = node.get("anyOf")
    if isinstance(variants, list):
        kept = [v for v in variants if v != {"type": "null"}]  # type: ignore[misc]
        if len(kept) == 1 and node.get("default", ...) is None:
            # "X or null" as one typed node: strict converters make every property required, so null must stay
            # a value the caller may send for "not given".
            node.pop("anyOf")
            node = {**kept[0], **node}  # type: ignore[misc]
            nullable = True
    if node.get("default", ...) is None:
        node.pop("default")
    ref = node.pop("$ref", None)
    if isinstance(ref, str):
        node = {**defs[ref.rsplit("/", 1)[-1]], **node}
    if nullable:
        _allow_null(node)
    lean: dict[str, Any] = {}
    for key, value in node.items():  # type: ignore[misc]
        if key == "properties":  # names, not keywords: a property may be called "title"
            lean[key] = {name: _lean(prop, defs) for name, prop in value.items()}  # type: ignore[misc]
            lean.setdefault("additionalProperties", False)
        elif key not in _DROP:
            lean[key] = _lean(value, defs)
    return lean


def _allow_null(node: dict[str, Any]) -> None:
    kind = node.get("type")
    if isinstance(kind, str):
        node["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        node["type"] = [*kind, "null"]  # type: ignore[misc]
    if isinstance(node.get("enum"), list) and None not in node["enum"]:
        node["enum"] = [*node["enum"], None]
