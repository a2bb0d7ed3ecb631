"""Render envoy/openapi.json, the OpenAPI 3.1 document of the REST gateway, from the contracts.

Envoy transcodes the `google.api.http` routes of TradingEngineService from the descriptor set
`buf build` writes; this builds the same descriptors with their comments (the gateway's set
leaves them out) and describes each route as Envoy serves it (decision 26):

- JSON as Envoy's transcoder prints and parses it: lowerCamelCase names, enums as their value
  names, 64-bit integers as decimal strings, Timestamp as RFC 3339, Duration as `"1.5s"`,
  FieldMask as comma-separated lowerCamelCase paths, a server stream as one JSON array.
- Bounds from `(tradeflow.common.v1.limits)` as `maxLength` / `maxItems`.
- Presence: a field without it has a `default` (absent and zero are the same thing); a field
  with it (`optional`, a oneof member, a message) has none, and an `optional` scalar says that
  absent differs from zero.
- Errors as the JSON `google.rpc.Status` (decision 4); bearer tokens on every route but the
  public ones the engine's authentication names.

`make generate` writes the file, `make check-contracts` fails when it is stale, and the gateway
serves it at GET /api/v1/openapi.json.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from tradeflow.common.v1 import limits_pb2
from trading_engine.api.auth import PUBLIC_METHODS
from trading_engine.gateway.envoy import OPENAPI_DOCUMENT, OPENAPI_ROUTE

ROOT = Path(__file__).resolve().parents[1]
SERVICE: Final = "tradeflow.trading.v1.TradingEngineService"
_TAG: Final = SERVICE.rsplit(".", 1)[1]

Schema = dict[str, Any]
_Field = descriptor_pb2.FieldDescriptorProto

# Paths into a FileDescriptorProto (descriptor.proto's field numbers), for its comments.
_MESSAGES, _ENUMS, _SERVICES = 4, 5, 6
_NESTED_FIELDS, _NESTED_MESSAGES, _NESTED_ENUMS = 2, 3, 4
_ENUM_VALUES, _METHODS = 2, 2

_INT64 = (_Field.TYPE_INT64, _Field.TYPE_SINT64, _Field.TYPE_SFIXED64)
_UINT64 = (_Field.TYPE_UINT64, _Field.TYPE_FIXED64)
_INT32 = (_Field.TYPE_INT32, _Field.TYPE_SINT32, _Field.TYPE_SFIXED32)
_UINT32 = (_Field.TYPE_UINT32, _Field.TYPE_FIXED32)
_DURATION_PATTERN = r"^-?[0-9]+(\.[0-9]{1,9})?s$"

# Scalar types in the proto3 JSON mapping: 64-bit integers are decimal strings.
_SCALARS: Final[dict[int, Schema]] = {
    **{kind: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"} for kind in _INT64},
    **{kind: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"} for kind in _UINT64},
    **{kind: {"type": "integer", "format": "int32"} for kind in _INT32},
    **{kind: {"type": "integer", "minimum": 0, "maximum": 2**32 - 1} for kind in _UINT32},
    _Field.TYPE_DOUBLE: {"type": "number", "format": "double"},
    _Field.TYPE_FLOAT: {"type": "number", "format": "float"},
    _Field.TYPE_BOOL: {"type": "boolean"},
    _Field.TYPE_STRING: {"type": "string"},
    _Field.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}

# google.protobuf types with a JSON form of their own (the proto3 JSON mapping).
_WELL_KNOWN: Final[dict[str, Schema]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {
        "type": "string",
        "pattern": _DURATION_PATTERN,
        "description": 'A duration in seconds with an "s" suffix, for example "300s" or "1.5s".',
    },
    "google.protobuf.FieldMask": {
        "type": "string",
        "description": "Field paths separated by commas, each in lowerCamelCase, for example "
        '"minConfidenceThreshold,features.patternTradingEnabled".',
    },
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string", "description": "The message's type URL."}},
        "required": ["@type"],
        "additionalProperties": True,
        "description": "A message of the type `@type` names, its fields beside `@type`.",
    },
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.DoubleValue": {"type": ["number", "null"], "format": "double"},
    "google.protobuf.FloatValue": {"type": ["number", "null"], "format": "float"},
    "google.protobuf.Int64Value": {"type": ["string", "null"], "format": "int64"},
    "google.protobuf.UInt64Value": {"type": ["string", "null"], "format": "uint64"},
    "google.protobuf.Int32Value": {"type": ["integer", "null"], "format": "int32"},
    "google.protobuf.UInt32Value": {"type": ["integer", "null"], "minimum": 0},
    "google.protobuf.BoolValue": {"type": ["boolean", "null"]},
    "google.protobuf.StringValue": {"type": ["string", "null"]},
    "google.protobuf.BytesValue": {"type": ["string", "null"], "contentEncoding": "base64"},
}

_INTRODUCTION = """\
The REST face of the trading engine: Envoy's gRPC-JSON transcoder in front of the gRPC \
service, generated from the contracts in `proto/` by `tools/openapi_document.py`.

- **JSON mapping** (proto3 JSON): field names in lowerCamelCase (the proto names are \
accepted too, in bodies and query strings); enums as their value names (their numbers are \
accepted too); 64-bit integers as decimal strings; timestamps as RFC 3339 strings; \
durations as seconds with an `s` \
suffix (`"1.5s"`); field masks as comma-separated lowerCamelCase paths.
- **Presence**: a field documented with a `default` has no presence: leaving it out is the \
same as sending its default, and responses always include it. A field without a `default` \
(an `optional` field, a member of a oneof, a message) has presence: leaving it out is not the \
same as sending zero, and responses leave it out when it is not set.
- **Bounds** (`maxLength`, in Unicode code points, and `maxItems`) are enforced by the engine: \
a request beyond one is a 400 naming the field.
- **Server streams** answer one JSON array holding every message of the stream.
- **Errors**, from the engine or the gateway, are a JSON `google.rpc.Status`: `code` is the \
gRPC status code, `details` carry `google.rpc.ErrorInfo` (a stable `reason`) and, for bad \
input, `google.rpc.BadRequest` field violations.
- **Authentication**: a bearer JWT on every route except those marked otherwise.
"""

_ERROR_EXAMPLE: Final = {
    "code": 3,
    "message": "the trading state cannot be set: reason required",
    "details": [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "INVALID_ARGUMENT",
            "domain": "trading-engine.tradeflow",
            "metadata": {},
        },
        {
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [
                {"field": "reason", "description": "required: say why", "reason": ""}
            ],
        },
    ],
}


@dataclasses.dataclass(frozen=True, slots=True)
class _Message:
    proto: descriptor_pb2.DescriptorProto
    comment: str
    field_comments: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class _Enum:
    proto: descriptor_pb2.EnumDescriptorProto
    comment: str
    value_comments: dict[str, str]


@dataclasses.dataclass(frozen=True, slots=True)
class _Method:
    proto: descriptor_pb2.MethodDescriptorProto
    comment: str


class _Contracts:
    """The messages, enums and service methods of a descriptor set, with their comments."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        self.messages: dict[str, _Message] = {}
        self.enums: dict[str, _Enum] = {}
        self.methods: list[_Method] = []
        self.service_comment = ""
        for file in files.file:
            comments = {
                tuple(location.path): _comment_text(location.leading_comments)
                for location in file.source_code_info.location
            }
            for index, message in enumerate(file.message_type):
                self._add_message(message, file.package, (_MESSAGES, index), comments)
            for index, enum in enumerate(file.enum_type):
                self._add_enum(enum, file.package, (_ENUMS, index), comments)
            for index, service in enumerate(file.service):
                if f"{file.package}.{service.name}" == SERVICE:
                    self.service_comment = comments.get((_SERVICES, index), "")
                    self.methods = [
                        _Method(method, comments.get((_SERVICES, index, _METHODS, number), ""))
                        for number, method in enumerate(service.method)
                    ]
        if not self.methods:
            raise ValueError(f"the descriptor set has no service {SERVICE}")

    def _add_message(
        self,
        message: descriptor_pb2.DescriptorProto,
        scope: str,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        name = f"{scope}.{message.name}"
        self.messages[name] = _Message(
            message,
            comments.get(path, ""),
            {
                field.name: comments.get((*path, _NESTED_FIELDS, index), "")
                for index, field in enumerate(message.field)
            },
        )
        for index, nested in enumerate(message.nested_type):
            self._add_message(nested, name, (*path, _NESTED_MESSAGES, index), comments)
        for index, enum in enumerate(message.enum_type):
            self._add_enum(enum, name, (*path, _NESTED_ENUMS, index), comments)

    def _add_enum(
        self,
        enum: descriptor_pb2.EnumDescriptorProto,
        scope: str,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        self.enums[f"{scope}.{enum.name}"] = _Enum(
            enum,
            comments.get(path, ""),
            {
                value.name: comments.get((*path, _ENUM_VALUES, index), "")
                for index, value in enumerate(enum.value)
            },
        )


def _comment_text(comment: str) -> str:
    """A proto comment as Markdown: its lines joined, blank lines kept as paragraph breaks."""
    paragraphs = [
        " ".join(line.strip() for line in block.splitlines())
        for block in comment.strip().split("\n\n")
    ]
    return "\n\n".join(paragraph for paragraph in paragraphs if paragraph)


def _full_name(type_name: str) -> str:
    """`.tradeflow.trading.v1.TradingSignal` → `tradeflow.trading.v1.TradingSignal`."""
    return type_name.removeprefix(".")


class _Builder:
    """Builds the document, adding a component schema for each message and enum it reaches."""

    def __init__(self, contracts: _Contracts) -> None:
        self.contracts = contracts
        self.schemas: dict[str, Schema] = {}

    def document(self) -> Schema:
        paths: dict[str, Schema] = {}
        for method in self.contracts.methods:
            rule = _http_rule(method.proto)
            if rule is None:
                continue
            verb = rule.WhichOneof("pattern")
            if verb not in ("get", "post", "put", "patch", "delete"):
                raise ValueError(f"{method.proto.name}: unsupported HTTP binding {verb!r}")
            template: str = getattr(rule, verb)
            paths.setdefault(template, {})[verb] = self._operation(method, template, rule)
        paths[OPENAPI_ROUTE] = {"get": _document_operation()}
        error = {
            "description": "An error from the engine or the gateway, as a google.rpc.Status; the "
            "HTTP status follows the gRPC code (400 INVALID_ARGUMENT and FAILED_PRECONDITION, "
            "401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 409 ALREADY_EXISTS and "
            "ABORTED, 413 a body over 4 MiB, 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE).",
            "content": {
                "application/json": {
                    "schema": self._message_ref("google.rpc.Status"),
                    "example": _ERROR_EXAMPLE,
                }
            },
        }
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "Trading engine REST API",
                "version": SERVICE.rsplit(".", 2)[1],
                "description": f"{self.contracts.service_comment}\n\n{_INTRODUCTION}",
            },
            "tags": [{"name": _TAG, "description": self.contracts.service_comment}],
            "security": [{"bearer": []}],
            "paths": paths,
            "components": {
                "schemas": dict(sorted(self.schemas.items())),
                "responses": {"Error": error},
                "securitySchemes": {
                    "bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "bearerFormat": "JWT",
                        "description": "A token the engine issued or accepts (decision 9); "
                        "`trading-engine token` mints development tokens.",
                    }
                },
            },
        }

    def _operation(self, method: _Method, template: str, rule: http_pb2.HttpRule) -> Schema:
        proto = method.proto
        if rule.additional_bindings or rule.response_body or rule.body not in ("", "*"):
            raise ValueError(f'{proto.name}: only `body: "*"` or no body is supported')
        if proto.client_streaming:
            raise ValueError(f"{proto.name}: a client stream has no REST route")
        request = self.contracts.messages[_full_name(proto.input_type)]
        path_fields = _path_fields(template)
        for name in path_fields:
            if name not in {field.name for field in request.proto.field}:
                raise ValueError(f"{proto.name}: {{{name}}} is not a field of the request")
        parameters = [self._path_parameter(request, name) for name in path_fields]
        operation: Schema = {
            "operationId": proto.name,
            "summary": proto.name,
            "description": method.comment,
            "tags": [_TAG],
        }
        if rule.body == "*":
            if path_fields:
                raise ValueError(f'{proto.name}: path fields with `body: "*"` are not supported')
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": self._message_ref(_full_name(proto.input_type))}
                },
            }
        else:
            parameters += [
                {
                    "name": name,
                    "in": "query",
                    "description": schema.pop("description", ""),
                    "schema": schema,
                }
                for name, schema in self._query_parameters(request, "", path_fields, set())
            ]
        if parameters:
            operation["parameters"] = parameters
        answer = self._message_ref(_full_name(proto.output_type))
        operation["responses"] = {
            "200": {
                "description": (
                    "Every message of the server stream, in order, as one JSON array."
                    if proto.server_streaming
                    else "The response message."
                ),
                "content": {
                    "application/json": {
                        "schema": {"type": "array", "items": answer}
                        if proto.server_streaming
                        else answer
                    }
                },
            },
            "default": {"$ref": "#/components/responses/Error"},
        }
        if f"/{SERVICE}/{proto.name}" in PUBLIC_METHODS:
            operation["security"] = []
        return operation

    def _path_parameter(self, request: _Message, name: str) -> Schema:
        field = next(field for field in request.proto.field if field.name == name)
        schema = self._field_schema(field, request.field_comments[name])
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": schema.pop("description", ""),
            "schema": schema,
        }

    def _query_parameters(
        self, message: _Message, prefix: str, bound: Sequence[str], seen: set[str]
    ) -> Iterator[tuple[str, Schema]]:
        """(name, schema) of each query parameter: every field not bound by the path, a
        message field's own fields as `field.subfield`, as the transcoder reads them."""
        for field in message.proto.field:
            name = f"{prefix}{field.json_name}"
            if f"{prefix}{field.name}" in bound:
                continue
            inner = _full_name(field.type_name)
            nested = self.contracts.messages.get(inner)
            if field.type == _Field.TYPE_MESSAGE and inner not in _WELL_KNOWN and nested:
                if field.label == _Field.LABEL_REPEATED or inner in seen:
                    # Neither lists of messages nor maps can be written in a query string.
                    continue
                yield from self._query_parameters(nested, f"{name}.", (), {*seen, inner})
            else:
                yield name, self._field_schema(field, message.field_comments[field.name])

    def _message_ref(self, name: str) -> Schema:
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name not in self.schemas:
            # Placed before its fields are read, so a recursive message ends the recursion.
            self.schemas[name] = {}
            self.schemas[name] = self._message_schema(self.contracts.messages[name])
        return {"$ref": f"#/components/schemas/{name}"}

    def _enum_ref(self, name: str) -> Schema:
        if name not in self.schemas:
            enum = self.contracts.enums[name]
            values = "\n".join(
                f"- `{value.name}`: {enum.value_comments[value.name]}" for value in enum.proto.value
            )
            self.schemas[name] = {
                "type": "string",
                "enum": [value.name for value in enum.proto.value],
                "description": f"{enum.comment}\n\n{values}",
            }
        return {"$ref": f"#/components/schemas/{name}"}

    def _message_schema(self, message: _Message) -> Schema:
        proto = message.proto
        oneofs = {
            index: [field.json_name for field in proto.field if _in_real_oneof(field, index)]
            for index in range(len(proto.oneof_decl))
        }
        properties: Schema = {}
        for field in proto.field:
            schema = self._field_schema(field, message.field_comments[field.name])
            if field.HasField("oneof_index") and not field.proto3_optional:
                members = ", ".join(f"`{name}`" for name in oneofs[field.oneof_index])
                oneof = proto.oneof_decl[field.oneof_index].name
                schema["description"] = " ".join(
                    part
                    for part in (
                        schema.get("description"),
                        f"One of {members} (oneof `{oneof}`): set at most one.",
                    )
                    if part
                )
            properties[field.json_name] = schema
        # The gateway refuses a body naming any other field (decision 24); it takes either
        # spelling of a field's name, as the transcoder does.
        names = sorted({name for field in proto.field for name in (field.json_name, field.name)})
        schema = {"type": "object", "properties": properties, "propertyNames": {"enum": names}}
        if message.comment:
            schema["description"] = message.comment
        return schema

    def _field_schema(self, field: _Field, comment: str) -> Schema:
        """A field's schema as it appears in a message, a query string or a path."""
        limits = field.options.Extensions[limits_pb2.limits]
        entry = self._map_entry(field)
        if entry is not None:
            key, value = entry.field
            schema: Schema = {
                "type": "object",
                "additionalProperties": self._value_schema(value),
                "default": {},
            }
            if key.type != _Field.TYPE_STRING:
                schema["propertyNames"] = self._value_schema(key)
        elif field.label == _Field.LABEL_REPEATED:
            items = self._value_schema(field)
            if limits.max_chars and field.type == _Field.TYPE_STRING:
                items["maxLength"] = limits.max_chars
            schema = {"type": "array", "items": items, "default": []}
            if limits.max_items:
                schema["maxItems"] = limits.max_items
        else:
            schema = self._value_schema(field)
            if limits.max_chars and field.type == _Field.TYPE_STRING:
                schema["maxLength"] = limits.max_chars
            if field.type != _Field.TYPE_MESSAGE and not field.HasField("oneof_index"):
                schema["default"] = _zero(field, self.contracts)
        # A well-known type's own description (a Duration's form, say) follows the field's.
        text = " ".join(
            part
            for part in (comment, _presence_note(field, self.contracts), schema.get("description"))
            if part
        )
        if text:
            schema["description"] = text
        return schema

    def _value_schema(self, field: _Field) -> Schema:
        """The schema of one value of the field (an element, for a repeated field)."""
        kind = field.type
        if kind == _Field.TYPE_MESSAGE:
            return self._message_ref(_full_name(field.type_name))
        if kind == _Field.TYPE_ENUM:
            return self._enum_ref(_full_name(field.type_name))
        scalar = _SCALARS.get(kind)
        if scalar is None:
            raise ValueError(f"{field.name}: unsupported field type {kind}")
        return dict(scalar)

    def _map_entry(self, field: _Field) -> descriptor_pb2.DescriptorProto | None:
        if field.label != _Field.LABEL_REPEATED or field.type != _Field.TYPE_MESSAGE:
            return None
        message = self.contracts.messages.get(_full_name(field.type_name))
        if message is None or not message.proto.options.map_entry:
            return None
        return message.proto


def _in_real_oneof(field: _Field, index: int) -> bool:
    return (
        field.HasField("oneof_index") and field.oneof_index == index and not field.proto3_optional
    )


def _presence_note(field: _Field, contracts: _Contracts) -> str:
    """For an `optional` scalar: absent and zero are different requests."""
    if not field.proto3_optional or field.type == _Field.TYPE_MESSAGE:
        return ""
    zero = json.dumps(_zero(field, contracts))
    return (
        f"Optional, with presence: leaving it out means not set, which is not the same as "
        f"sending {zero}; responses leave it out when it is not set."
    )


def _zero(field: _Field, contracts: _Contracts) -> object:
    """The JSON form of a scalar field's zero value: what leaving it out means."""
    kind = field.type
    if kind == _Field.TYPE_ENUM:
        return contracts.enums[_full_name(field.type_name)].proto.value[0].name
    if kind in _INT64 or kind in _UINT64:
        return "0"
    if kind in (*_INT32, *_UINT32):
        return 0
    if kind in (_Field.TYPE_DOUBLE, _Field.TYPE_FLOAT):
        return 0.0
    if kind == _Field.TYPE_BOOL:
        return False
    return ""


def _path_fields(template: str) -> list[str]:
    """The request fields a path template binds, `{signal_id}` → signal_id."""
    names = []
    for part in template.split("{")[1:]:
        name = part.split("}", 1)[0]
        if "=" in name or "." in name:
            raise ValueError(f"{template}: only plain `{{field}}` path variables are supported")
        names.append(name)
    return names


def _http_rule(method: descriptor_pb2.MethodDescriptorProto) -> http_pb2.HttpRule | None:
    options = method.options
    if not options.HasExtension(annotations_pb2.http):  # type: ignore[arg-type]  # stubs lack extension typing
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]  # type: ignore[index]  # same
    return rule


def _document_operation() -> Schema:
    return {
        "operationId": "GetOpenApiDocument",
        "summary": "GetOpenApiDocument",
        "description": "This document, served by the gateway itself; needs no token.",
        "security": [],
        "responses": {
            "200": {
                "description": "The OpenAPI document.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    }


def descriptor_set(root: Path) -> descriptor_pb2.FileDescriptorSet:
    """The contracts under `root` as `buf build` compiles them, comments included."""
    with tempfile.TemporaryDirectory() as scratch:
        image = Path(scratch) / "image.binpb"
        subprocess.run(
            ["buf", "build", "-o", str(image)], cwd=root, check=True, capture_output=True
        )
        return descriptor_pb2.FileDescriptorSet.FromString(image.read_bytes())


def build(files: descriptor_pb2.FileDescriptorSet) -> Schema:
    """The OpenAPI document of the service's REST routes."""
    return _Builder(_Contracts(files)).document()


def render(files: descriptor_pb2.FileDescriptorSet) -> str:
    """The document as the committed file holds it."""
    return json.dumps(build(files), indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    target = ROOT / "envoy" / OPENAPI_DOCUMENT
    target.write_text(render(descriptor_set(ROOT)))
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
