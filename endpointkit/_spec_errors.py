"""Spec errors a person can act on: the field path, the YAML line, the bad value, the fix, the nearest key."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from endpointkit.errors import SpecError

__all__ = ["line_index", "spec_error", "suggest"]

AllowedKeys = Callable[[tuple[str | int, ...], Mapping[str, Any]], list[str]]


def suggest(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the nearest of ``choices``, or an empty string."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def spec_error(
    exc: ValidationError,
    data: Mapping[str, Any],
    source: str,
    lines: Mapping[tuple[str | int, ...], int],
    allowed_keys: AllowedKeys,
) -> SpecError:
    """One SpecError listing every problem pydantic found, each with its path, line and fix."""
    messages: list[str] = []
    first_field: str | None = None
    first_line: int | None = None
    for error in _chosen_branches(exc.errors()):
        location = _clean_location(error["loc"])
        field = _format_location(location)
        line = _nearest_line(location, lines)
        where = f"{source}:{line}: " if line else f"{source}: "
        messages.append(where + _describe(error, location, field, data, allowed_keys))
        if first_field is None:
            first_field, first_line = field, line
    return SpecError("\n".join(messages), field=first_field, line=first_line)


# Error types that only say "the value is not of this union member's kind": a string given where a mapping
# member was tried, or a mapping where a literal was.
_NOT_A_MAPPING = frozenset({"model_type", "model_attributes_type", "dict_type"})


def _union_member(part: int | str) -> bool:
    # pydantic names the member it tried in the location: "literal['auto','off']", "AksTls",
    # "function-after[_one(), RolloutStrategy]"; spec keys are lower-case words.
    return isinstance(part, str) and ("[" in part or part[:1].isupper())


def _chosen_branches(errors: list[Any]) -> list[Any]:
    """Only the errors of union members of the value's own kind: a mapping given for ``rollout`` is not
    reported as "not one of 'all_at_once'", nor a misspelt string as "not a mapping"."""
    kept = []
    for error in errors:
        in_union = any(_union_member(part) for part in error["loc"])
        if in_union and isinstance(error.get("input"), str) and error["type"] in _NOT_A_MAPPING:
            continue
        if in_union and isinstance(error.get("input"), Mapping) and error["type"] == "literal_error":
            continue
        kept.append(error)
    return kept or errors


def _clean_location(location: tuple[int | str, ...]) -> tuple[str | int, ...]:
    # Discriminated unions insert the tag ("sagemaker") into the location, other unions the member they tried;
    # drop both so paths match the file.
    cleaned: list[str | int] = []
    for index, part in enumerate(location):
        if index >= 2 and location[0] == "targets" and index == 2 and part in ("local", "sagemaker", "aks"):
            continue
        if _union_member(part):
            continue
        cleaned.append(part)
    return tuple(cleaned)


def _format_location(location: tuple[str | int, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(
    error: Any,
    location: tuple[str | int, ...],
    field: str,
    data: Mapping[str, Any],
    allowed_keys: AllowedKeys,
) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        key = str(location[-1])
        allowed = allowed_keys(location[:-1], data)
        hint = suggest(key, allowed)
        listing = f"; allowed keys: {', '.join(sorted(allowed))}" if allowed else ""
        return f"{field}: unknown key {key!r}{hint}{listing}"
    if kind == "missing":
        return f"{field}: required and missing"
    if kind in ("literal_error", "enum"):
        expected = error.get("ctx", {}).get("expected", "")
        return f"{field}: {error['input']!r} is not one of the valid choices: {expected}"
    if kind == "union_tag_invalid":
        return (
            f"{field}: kind {error['input'].get('kind') if isinstance(error['input'], dict) else error['input']!r} "
            "is not a target kind; valid kinds: local, sagemaker, aks"
        )
    if kind == "union_tag_not_found":
        return f"{field}: every target needs a kind: local, sagemaker or aks"
    if kind == "string_pattern_mismatch":
        return f"{field}: {error['input']!r} {_PATTERN_HELP.get(str(location[-1]), 'has the wrong form')}"
    message = str(error["msg"]).removeprefix("Value error, ")
    shown = error.get("input")
    if isinstance(shown, (dict, list)) or kind.startswith("value_error"):
        return f"{field}: {message}"
    return f"{field}: {shown!r}: {message}"


_PATTERN_HELP = {
    "name": "is not a valid name: use lowercase letters, digits and hyphens, starting and ending with a letter or digit",
    "role_arn": "is not an IAM role ARN: arn:aws:iam::123456789012:role/NAME",
    "region": "is not an AWS region such as us-east-1",
    "bucket": "is not an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens",
    "memory": "is not a memory quantity: write e.g. 512Mi or 4Gi",
    "cluster": "is not an AKS cluster name: letters, digits, hyphens and underscores, at most 63",
    "namespace": "is not a Kubernetes namespace: lowercase letters, digits and hyphens",
    "storage_account": "is not a storage account name: 3-24 lowercase letters and digits",
    "output_path": "is not an S3 URI: s3://bucket/prefix",
    "failure_path": "is not an S3 URI: s3://bucket/prefix",
}


def line_index(node: yaml.Node | None) -> dict[tuple[str | int, ...], int]:
    """Map every path in the YAML document to its 1-based line."""
    index: dict[tuple[str | int, ...], int] = {}

    def walk(current: yaml.Node, path: tuple[str | int, ...]) -> None:
        index[path] = current.start_mark.line + 1
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = (*path, str(key_node.value))
                index[key] = key_node.start_mark.line + 1
                walk(value_node, key)
                index[key] = key_node.start_mark.line + 1
        elif isinstance(current, yaml.SequenceNode):
            for position, item in enumerate(current.value):
                walk(item, (*path, position))

    if node is not None:
        walk(node, ())
    return index


def _nearest_line(location: tuple[str | int, ...], lines: Mapping[tuple[str | int, ...], int]) -> int | None:
    for end in range(len(location), -1, -1):
        line = lines.get(location[:end])
        if line is not None:
            return line
    return None
