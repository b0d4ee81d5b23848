"""CloudWatch's Smithy RPC-v2 CBOR protocol in front of moto, which speaks only its JSON and query forms.

The AWS SDK for Go v2 (and so the Terraform provider) calls CloudWatch as
`POST /service/GraniteServiceVersion20100801/operation/PutMetricAlarm` with a CBOR body; moto 5.2.5
has no route for it and answers 404, so no alarm or dashboard could be applied. boto3 picks JSON for
the same service, which moto serves. This WSGI layer translates one into the other, driven by
botocore's model of each operation: the CBOR request becomes the JSON request the same operation
takes (same member names, timestamps as epoch seconds), and moto's JSON answer (or error) is
re-encoded as CBOR for the operation's output shape. Nothing else passes through it.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import cache
from typing import Any

from botocore.model import OperationModel, ServiceModel, ShapeResolver, StructureShape
from botocore.parsers import JSONParser, RpcV2CBORParser
from botocore.serialize import RpcV2CBORSerializer

_PATH = re.compile(r"^/service/(?P<target>[A-Za-z0-9_]+)/operation/(?P<op>[A-Za-z0-9_]+)$")
# The services whose Go SDK client speaks CBOR and that the stack uses, by their JSON target prefix.
SERVICES = {"GraniteServiceVersion20100801": "cloudwatch"}
_ERROR_MODEL: Any = {"type": "structure", "members": {"__type": {"shape": "S"}, "message": {"shape": "S"}}}
_STRING: Any = {"S": {"type": "string"}}
_ERROR_SHAPE = StructureShape("Error", _ERROR_MODEL, ShapeResolver(_STRING))

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@cache
def _service(name: str) -> ServiceModel:
    import botocore.session

    return botocore.session.get_session().get_service_model(name)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def encode(value: dict[str, Any], shape: StructureShape | None) -> bytes:
    """A response body: the operation's output as CBOR, or an empty map for an output-less operation."""
    if shape is None or not value:
        return b"\xa0"
    out = bytearray()
    serializer: Any = RpcV2CBORSerializer()
    serializer._serialize_data_item(out, value, shape)  # botocore's own encoder, shape-driven
    return bytes(out)


def decode(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    parser = RpcV2CBORParser()
    value = parser.parse_data_item(parser.get_peekable_stream_from_bytes(body))
    if not isinstance(value, dict):
        raise ValueError("an RPC-v2 CBOR request body must be a map")
    return value


class CborBridge:
    """WSGI middleware: CBOR operations in, moto's JSON protocol behind, CBOR answers out."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        match = _PATH.match(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") != "POST" or not match or match["target"] not in SERVICES:
            return self.app(environ, start_response)
        operation = _service(SERVICES[match["target"]]).operation_model(match["op"])
        length = int(environ.get("CONTENT_LENGTH") or 0)
        request = json.dumps(decode(environ["wsgi.input"].read(length)), default=_json_default).encode()
        inner = dict(environ)
        inner.pop("HTTP_SMITHY_PROTOCOL", None)
        inner.update(
            {
                "PATH_INFO": "/",
                "CONTENT_TYPE": "application/x-amz-json-1.0",
                "CONTENT_LENGTH": str(len(request)),
                "HTTP_X_AMZ_TARGET": f"{match['target']}.{match['op']}",
                "wsgi.input": io.BytesIO(request),
            }
        )
        status, headers, body = self._call(inner)
        code = int(status.split()[0])
        body = self._translate(operation, code, headers, body)
        keep = [(k, v) for k, v in headers if k.lower() in ("x-amzn-requestid", "x-amz-request-id", "date")]
        start_response(
            status,
            [
                *keep,
                ("Content-Type", "application/cbor"),
                ("smithy-protocol", "rpc-v2-cbor"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    def _call(self, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.app(environ, start)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return captured["status"], captured["headers"], body

    @staticmethod
    def _translate(operation: OperationModel, code: int, headers: list[tuple[str, str]], body: bytes) -> bytes:
        if code < 300:
            if operation.output_shape is None:
                return encode({}, None)
            parsed = JSONParser().parse(
                {"body": body, "headers": dict(headers), "status_code": code}, operation.output_shape
            )
            parsed.pop("ResponseMetadata", None)
            return encode(parsed, operation.output_shape)
        try:
            error = json.loads(body or b"{}")
            kind, message = str(error.get("__type", code)), str(error.get("message", error.get("Message", "")))
        except ValueError:  # an XML error body
            text = body.decode(errors="replace")
            found = re.search(r"<Code>(.*?)</Code>", text), re.search(r"<Message>(.*?)</Message>", text)
            kind = found[0][1] if found[0] else str(code)
            message = found[1][1] if found[1] else text[:500]
        return encode({"__type": kind, "message": message}, _ERROR_SHAPE)
