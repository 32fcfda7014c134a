"""Reading a request's document (a study spec or a plan): JSON or YAML, size-bounded, parsed
off the event loop, every problem a 4xx naming the body."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from api._errors import BodyTooLargeError, UnsupportedMediaTypeError
from tuner.exceptions import SpecError

__all__ = ["MAX_BODY_BYTES", "document_body", "read_document"]

# A spec is a few KiB; 1 MiB leaves room for long descriptions and lists, and bounds what
# one request can make the service parse.
MAX_BODY_BYTES = 1 << 20

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def document_body(schema: str, what: str) -> dict[str, Any]:
    """The ``openapi_extra`` of a route whose body :func:`read_document` reads: the JSON
    Schema named ``schema`` (a component the app adds), as JSON or YAML."""
    content = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    return {"requestBody": {
        "required": True,
        "description": f"{what[0].upper()}{what[1:]}, as JSON (or YAML with a YAML content "
        "type).",
        "content": {"application/json": content, "application/yaml": content},
    }}


async def read_document(request: Request, what: str) -> Any:
    """The body as plain data, ``what`` (e.g. ``a study spec``) naming it in errors.

    Raises:
        UnsupportedMediaTypeError: neither JSON nor YAML.
        BodyTooLargeError: over :data:`MAX_BODY_BYTES`.
        SpecError: empty, unparsable, or nested too deeply.
    """
    kind = _body_kind(request.headers.get("content-type", ""), what)
    body = await _read_body(request, MAX_BODY_BYTES, what)
    return await run_in_threadpool(_parse, body, kind, what)


def _body_kind(content_type: str, what: str) -> str:
    """``json`` or ``yaml`` by the media type; anything else is refused, so that a form or a
    cross-site ``text/plain`` POST (which browsers send without asking) is never read."""
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and
                                       media.endswith("+json")):
        return "json"
    if media in _YAML_TYPES:
        return "yaml"
    raise UnsupportedMediaTypeError(
        f"the body's content type is {media or 'missing'}; send {what} as "
        "'Content-Type: application/json' (or YAML as 'application/yaml')")


async def _read_body(request: Request, limit: int, what: str) -> bytes:
    """The body, refused as soon as it is over ``limit`` bytes (without reading the rest)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError(_too_large(limit, what))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(_too_large(limit, what))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int, what: str) -> str:
    return (f"the body is over {limit // 1024} KiB; {what} is a few KiB: "
            "list fewer values, or use ranges")


def _parse(body: bytes, kind: str, what: str) -> Any:
    if not body.strip():
        raise SpecError(f"the request body is empty; send {what} as JSON",
                        [("body", f"{what} is required")])
    name = kind.upper()
    try:
        return yaml.safe_load(body) if kind == "yaml" else json.loads(body)
    except (ValueError, yaml.YAMLError) as e:
        raise SpecError(f"the request body is not valid {name}: {e}",
                        [("body", f"not valid {name}")]) from e
    except RecursionError as e:  # [[[[... nested deeper than the parser's stack
        raise SpecError(f"the request body nests too deeply to be {what} ({name})",
                        [("body", "nested too deeply")]) from e
