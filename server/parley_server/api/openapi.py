"""Make the generated OpenAPI document say what the server really answers.

Litestar documents only the success status and its own ``ValidationException`` body. Every
Parley error is ``ErrorBody{code, message}`` (api/errors.py) with 400/401/403/404/409/410/413/
429/5xx. After the routes are known, ``describe_api`` rewrites the cached document:

* every operation lists the error statuses it can answer, each with the ``ErrorBody`` schema
  (``code`` is the closed enum of ``ErrorCode``); 429 also names its ``Retry-After`` header;
* routes that need a session declare the ``bearer`` security scheme;
* request body objects whose struct forbids unknown fields say ``additionalProperties: false``.

Field constraints themselves (lengths, patterns, ranges) come from the ``msgspec.Meta`` of
the protocol types, so the server's validation and the document cannot drift apart. A test
runs schemathesis against the real server over this document (tests/api/).
"""

from __future__ import annotations

import importlib
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.routes import HTTPRoute
from litestar.types import Message, Scope

from parley.protocol.errors import ErrorCode

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "enum": sorted(c.value for c in ErrorCode)},
        "message": {"type": "string", "maxLength": 200},
    },
    "additionalProperties": False,
    "description": "Every error: a stable code (docs/protocol.md, 'Error codes') and a text.",
}

_STATUS_TEXT = {
    "400": "invalid input (`invalid`, `weak_password`, `bad_signature`, ...)",
    "401": "no valid session (`unauthorized`, `device_revoked`, `bad_credentials`)",
    "403": "not allowed (`forbidden`, `not_member`, account disabled)",
    "404": "no such route or resource (`not_found`)",
    "405": "method not allowed (`invalid`)",
    "409": "conflicts with the stored state (`conflict`, `username_taken`, `link_used`, ...)",
    "410": "expired (`link_expired`)",
    "413": "too large (`too_large`)",
    "429": "throttled (`rate_limited`); retry after `Retry-After` seconds",
    "500": "server fault (`internal`)",
    "503": "a backend is unavailable (`unavailable`)",
}

COMMON = ("400", "429", "500", "503")
"""Any route: malformed input, throttling, server faults."""

PUBLIC_OPERATIONS = {
    ("post", "/api/v1/accounts"),
    ("post", "/api/v1/sessions"),
    ("post", "/api/v1/provisioning"),
    ("get", "/api/v1/provisioning/{prov_id}"),
    ("post", "/api/v1/provisioning/session"),
    ("get", "/api/v1/blobs/{key}"),  # presigned: the signature in the query authorizes
    ("put", "/api/v1/blobs/{key}"),
}
"""Operations without a Bearer session (everything else under /api needs one)."""

PARAMETER_SCHEMAS: dict[tuple[str, str, str], dict[str, Any]] = {
    ("get", "/api/v1/keys/backup/records", "conversation_id"): {
        "type": "array",
        "minItems": 1,  # more than 100 ids: 413 too_large (a documented size refusal)
        "items": {
            "type": "string",
            "minLength": 22,
            "maxLength": 22,
            "pattern": "^[A-Za-z0-9_-]{21}[AQgw]$",
        },
    },
}
"""Parameter constraints Litestar's generator drops (items of a typed list)."""

_STRUCT_MODULES = (
    "parley.protocol.http",
    "parley.protocol.keys",
    "parley.protocol.provisioning",
    "parley_server.api.accounts",
    "parley_server.api.keys",
    "parley_server.api.provisioning",
    "parley_server.api.turn",
    "parley_server.api.blobs",
)


def _structs() -> dict[str, type[msgspec.Struct]]:
    found: dict[str, type[msgspec.Struct]] = {}
    for name in _STRUCT_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, msgspec.Struct):
                found.setdefault(value.__name__, value)
    return found


def _error_response(status: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _STATUS_TEXT.get(status, "error"),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    if status == "429":
        response["headers"] = {
            "Retry-After": {
                "description": "seconds to wait",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        }
    return response


def finish_schema(doc: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a generated document in place (also returned)."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorBody"] = ERROR_SCHEMA
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "the token of POST /api/v1/sessions",
    }
    structs = _structs()
    for name, schema in schemas.items():
        struct = structs.get(name)
        config = getattr(struct, "__struct_config__", None)
        if config is not None and config.forbid_unknown_fields and schema.get("type") == "object":
            schema["additionalProperties"] = False
    for path, item in doc.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses: dict[str, Any] = operation["responses"]
            public = (method, path) in PUBLIC_OPERATIONS or not path.startswith("/api/")
            # 401 also on public routes: bad credentials, an unknown link token.
            statuses = set(COMMON) | {"401", "403", "404", "409", "410", "413"}
            if not public:
                operation["security"] = [{"bearer": []}]
            for param in operation.get("parameters", []):
                extra = PARAMETER_SCHEMAS.get((method, path, param.get("name")))
                if extra is not None:
                    param["schema"] = extra
            for status in sorted(statuses):
                responses[status] = _error_response(status)
            for status in list(responses):  # Litestar's own error bodies never leave
                if status[0] in "45" and status not in statuses:
                    responses[status] = _error_response(status)
    return doc


def describe_api(app: Litestar) -> None:
    """``on_startup`` hook: finish the cached document once every route is registered."""
    plugin = app.plugins.get(OpenAPIPlugin)
    finish_schema(plugin.provide_openapi_schema())


_methods_by_path: dict[str, str] = {}


async def complete_allow_header(message: Message, scope: Scope) -> None:
    """``before_send`` hook: an OPTIONS answer lists every method of its path. Litestar's
    automatic OPTIONS handler lists only the methods of one of the routes that share a path
    (e.g. ``GET`` and ``PUT /api/v1/provisioning/{prov_id}`` live in two route objects)."""
    if message["type"] != "http.response.start" or scope.get("method") != "OPTIONS":
        return
    template = scope.get("path_template")
    if not template:
        return
    if not _methods_by_path:
        merged: dict[str, set[str]] = {}
        for route in scope["app"].routes:
            if isinstance(route, HTTPRoute):
                for key in (route.path, route.path_format):
                    merged.setdefault(key, set()).update(route.methods)
        _methods_by_path.update({p: ", ".join(sorted(m)) for p, m in merged.items()})
    allow = _methods_by_path.get(template)
    if allow is None:
        return
    headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
    headers.append((b"allow", allow.encode()))
    message["headers"] = headers
