"""The label taxonomy: which attributes exist, their values and hotkeys, and how a value is stored.

A taxonomy is a YAML file validated against ``schemas/taxonomy.schema.json`` plus the rules JSON Schema
cannot say (unique names and hotkeys, exactly one "unsure" value per attribute). Values are stored as
text: a single-label value is its name, a multi-label value is its names joined by ``|`` in taxonomy
order, and an identity value is the identity's id or one of the attribute's named values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import jsonschema
import yaml

from portrait_builder.errors import UserError
from portrait_builder.resources import schemas_dir

MULTI_SEPARATOR = "|"


@dataclass(frozen=True)
class Value:
    name: str
    label: str
    hotkey: str
    unsure: bool = False


@dataclass(frozen=True)
class Attribute:
    name: str
    aspect: str
    kind: str  # "identity" | "single" | "multi"
    values: tuple[Value, ...]
    description: str = ""

    @property
    def multilabel(self) -> bool:
        return self.kind == "multi"

    @property
    def value_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.values)

    @property
    def unsure_value(self) -> str:
        return next(v.name for v in self.values if v.unsure)

    @property
    def classes(self) -> tuple[str, ...]:
        """The values a model predicts: every value but "unsure"."""
        return tuple(v.name for v in self.values if not v.unsure)


@dataclass(frozen=True)
class Taxonomy:
    name: str
    attributes: tuple[Attribute, ...]
    source: str = ""

    @cached_property
    def by_name(self) -> dict[str, Attribute]:
        return {a.name: a for a in self.attributes}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    def attribute(self, name: str) -> Attribute:
        try:
            return self.by_name[name]
        except KeyError:
            raise UserError(
                f"unknown attribute {name!r}; valid attributes: {', '.join(self.names)}"
            ) from None

    def encode(self, attribute: str, value: str | int | Iterable[str]) -> str:
        """Validate ``value`` for ``attribute`` and return its stored text form.

        Identity values are validated here only for form (a positive id or a named value);
        whether the identity exists is the store's check.
        """
        attr = self.attribute(attribute)
        if attr.kind == "identity":
            text = str(value)
            if text in attr.value_names or (text.isdigit() and int(text) > 0):
                return text
            raise UserError(
                f"invalid value {text!r} for {attribute}: expected an identity id or one of "
                f"{', '.join(attr.value_names)}"
            )
        if attr.kind == "multi":
            if isinstance(value, str):
                names = [p for p in value.split(MULTI_SEPARATOR) if p]
            else:
                names = list(value)
            if not names:
                raise UserError(f"empty value for multi-label attribute {attribute}")
            bad = [n for n in names if n not in attr.value_names]
            if bad:
                raise UserError(
                    f"invalid value {bad[0]!r} for {attribute}; valid values: {', '.join(attr.value_names)}"
                )
            chosen = set(names)
            if attr.unsure_value in chosen and len(chosen) > 1:
                raise UserError(f"{attribute}: {attr.unsure_value!r} cannot be combined with other values")
            return MULTI_SEPARATOR.join(n for n in attr.value_names if n in chosen)
        if not isinstance(value, str) or value not in attr.value_names:
            raise UserError(
                f"invalid value {value!r} for {attribute}; valid values: {', '.join(attr.value_names)}"
            )
        return value

    def decode(self, attribute: str, text: str | None) -> str | list[str] | None:
        """Inverse of :meth:`encode`: a list for multi-label attributes, else the text."""
        if text is None:
            return None
        if self.attribute(attribute).multilabel:
            return text.split(MULTI_SEPARATOR)
        return text


def _semantic_errors(data: dict) -> list[str]:
    errors = []
    seen = set()
    identity_kinds = 0
    for attr in data["attributes"]:
        name = attr["name"]
        if name in seen:
            errors.append(f"attribute {name!r} is defined twice")
        seen.add(name)
        identity_kinds += attr["kind"] == "identity"
        values = [v["name"] for v in attr["values"]]
        hotkeys = [v["hotkey"] for v in attr["values"]]
        if len(set(values)) != len(values):
            errors.append(f"attribute {name!r} repeats a value name")
        if len(set(hotkeys)) != len(hotkeys):
            errors.append(f"attribute {name!r} gives two values the same hotkey")
        if sum(bool(v.get("unsure")) for v in attr["values"]) != 1:
            errors.append(f"attribute {name!r} needs exactly one value marked unsure: true")
    if identity_kinds > 1:
        errors.append("at most one attribute may have kind: identity")
    return errors


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Load and validate a taxonomy file (default: the shipped ``schemas/taxonomy.yaml``)."""
    path = Path(path) if path is not None else schemas_dir() / "taxonomy.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"taxonomy file not found: {path}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"taxonomy file {path} is not valid YAML: {first}") from None
    schema = json.loads((schemas_dir() / "taxonomy.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    problems = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if problems:
        err = problems[0]
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        raise UserError(f"taxonomy file {path} is invalid at {where}: {err.message}")
    semantic = _semantic_errors(data)
    if semantic:
        raise UserError(f"taxonomy file {path} is invalid: {semantic[0]}")
    attributes = tuple(
        Attribute(
            name=a["name"],
            aspect=a["aspect"],
            kind=a["kind"],
            description=a.get("description", ""),
            values=tuple(
                Value(v["name"], v.get("label", v["name"]), v["hotkey"], bool(v.get("unsure", False)))
                for v in a["values"]
            ),
        )
        for a in data["attributes"]
    )
    return Taxonomy(name=data["name"], attributes=attributes, source=str(path))
