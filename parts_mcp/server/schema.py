"""Input schemas as lean as they can be while saying the same: tokens are paid on every turn."""

from __future__ import annotations

from typing import Any

_DROP = {"title", "$defs"}


def lean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with `$ref`s inlined, titles and null defaults dropped, optional-null unions collapsed,
    and every object closed (`additionalProperties: false`: unknown arguments are refused anyway)."""
    defs: dict[str, Any] = schema.get("$defs", {})
    return _lean(schema, defs)


def _lean(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_lean(item, defs) for item in node]  # type: ignore[misc]
    if not isinstance(node, dict):
        return node
    node = dict(node)  # type: ignore[arg-type]
    variants = node.get("anyOf")
    if isinstance(variants, list):
        kept = [v for v in variants if v != {"type": "null"}]  # type: ignore[misc]
        if len(kept) == 1 and node.get("default", ...) is None:
            # Optional with a null default: leaving it out says the same thing.
            node.pop("anyOf")
            node = {**kept[0], **node}  # type: ignore[misc]
    if node.get("default", ...) is None:
        node.pop("default")
    ref = node.pop("$ref", None)
    if isinstance(ref, str):
        node = {**defs[ref.rsplit("/", 1)[-1]], **node}
    lean: dict[str, Any] = {}
    for key, value in node.items():  # type: ignore[misc]
        if key == "properties":  # names, not keywords: a property may be called "title"
            lean[key] = {name: _lean(prop, defs) for name, prop in value.items()}  # type: ignore[misc]
            lean.setdefault("additionalProperties", False)
        elif key not in _DROP:
            lean[key] = _lean(value, defs)
    return lean
