"""The gateway's check of REST request bodies against their messages' fields (decision 24).

Envoy's gRPC-JSON transcoder drops JSON fields its message does not have, so
a misspelt field became a default value. `envoy/rest_fields.lua` refuses such
a body before the transcoder sees it; this module renders the tables it
checks against (which routes take a body, and each message's field names)
from the same descriptor set the transcoder reads, so the two cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Final

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool

from trading_engine.api.status import ERROR_DOMAIN

LUA_SCRIPT = "rest_fields.lua"

# Well-known types whose JSON form is not an object of their fields: a string, a
# number, or any JSON at all (Struct, Value, ListValue; Any names its own type).
_OPAQUE: Final = frozenset(
    {
        "google.protobuf.Any",
        "google.protobuf.BoolValue",
        "google.protobuf.BytesValue",
        "google.protobuf.DoubleValue",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.FloatValue",
        "google.protobuf.Int32Value",
        "google.protobuf.Int64Value",
        "google.protobuf.ListValue",
        "google.protobuf.StringValue",
        "google.protobuf.Struct",
        "google.protobuf.Timestamp",
        "google.protobuf.UInt32Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Value",
    }
)

# A kind, as the Lua script reads it: False (no fields to check), a message name, or a
# map whose values are of a kind.
Kind = bool | str | dict[str, "Kind"]


def render(descriptor_set: bytes, script: str) -> str:
    """The Lua filter for every REST route of `descriptor_set`: `script` after its tables."""
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set)
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    routes: list[tuple[str, str, str]] = []
    messages: dict[str, dict[str, Kind]] = {}
    for method, rule in _http_rules(files):
        verb = rule.WhichOneof("pattern")
        if verb is None or verb == "custom" or not rule.body:
            continue
        if rule.body != "*":
            # AIP-127, as tests/contract checks: a body is the whole request.
            raise ValueError(f'{method}: the body check reads body "*" only, not {rule.body!r}')
        request = pool.FindMethodByName(method).input_type
        routes.append((verb.upper(), _path_pattern(getattr(rule, verb)), request.full_name))
        _collect(request, messages)
    tables = (
        f"ERROR_DOMAIN = {_lua(ERROR_DOMAIN)}\n"
        f"ROUTES = {_lua([list(route) for route in routes])}\n"
        f"MESSAGES = {_lua(messages)}\n"
    )
    return f"-- Rendered by trading_engine/gateway/rest_fields.py.\n{tables}\n{script}"


def _http_rules(
    files: descriptor_pb2.FileDescriptorSet,
) -> Iterator[tuple[str, http_pb2.HttpRule]]:
    """(method full name, rule) of every binding, additional ones included.

    Every service's: a route of a service the transcoder does not serve is
    refused by it anyway (`reject_unknown_method`), checked body or not.
    """
    for file in files.file:
        for service in file.service:
            full_name = f"{file.package}.{service.name}" if file.package else service.name
            for method in service.method:
                if not method.options.HasExtension(annotations_pb2.http):  # type: ignore[arg-type]  # stubs lack extension typing
                    continue
                rule: http_pb2.HttpRule = method.options.Extensions[annotations_pb2.http]  # type: ignore[index]  # same
                for binding in (rule, *rule.additional_bindings):
                    yield f"{full_name}.{method.name}", binding


def _path_pattern(template: str) -> str:
    """An anchored Lua pattern of a path template: `{var}` is one segment, `{var=...}` more."""
    parts = re.split(r"(\{[^}]*\})", template)
    return "^" + "".join(_part_pattern(part) for part in parts) + "$"


def _part_pattern(part: str) -> str:
    if part.startswith("{"):
        return ".+" if "=" in part else "[^/]+"
    # Lua escapes a character with % (":" and "-" among those that need it).
    return re.sub(r"([^\w/])", r"%\1", part)


def _collect(message: descriptor.Descriptor, messages: dict[str, dict[str, Kind]]) -> None:
    """Add `message` and every message reachable from its fields to `messages`."""
    if message.full_name in messages:
        return
    fields: dict[str, Kind] = {}
    messages[message.full_name] = fields
    for field in message.fields:
        kind = _kind(field, messages)
        # The transcoder accepts a field by its JSON name and by its proto name.
        fields[field.json_name] = fields[field.name] = kind


def _kind(field: descriptor.FieldDescriptor, messages: dict[str, dict[str, Kind]]) -> Kind:
    value_type = field.message_type
    if value_type is None or value_type.full_name in _OPAQUE:
        return False
    if value_type.GetOptions().map_entry:
        return {"map": _kind(value_type.fields_by_name["value"], messages)}
    _collect(value_type, messages)
    return value_type.full_name


def _lua(value: object) -> str:
    """`value` (str, bool, list, dict) as a Lua constructor."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if not re.fullmatch(r"[ -~]*", value):
            raise ValueError(f"{value!r}: only printable ASCII is rendered")
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "{" + ", ".join(_lua(item) for item in value) + "}"
    if isinstance(value, Mapping):
        entries = ", ".join(f"[{_lua(key)}] = {_lua(item)}" for key, item in value.items())
        return "{" + entries + "}"
    raise TypeError(f"no Lua form for {value!r}")
