"""Reading a multipart/form-data body (a file upload), as the simulator's /v1/files needs."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidRequest


@dataclass(frozen=True)
class Part:
    data: bytes
    filename: str | None  # None: a plain form field


def parse_multipart(content_type: str, body: bytes) -> dict[str, Part]:
    """The parts of a multipart/form-data body, by field name. InvalidRequest when malformed."""
    kind, _, rest = content_type.partition(";")
    if kind.strip().lower() != "multipart/form-data":
        raise InvalidRequest("Uploads must be multipart/form-data (with 'purpose' and 'file' fields).", None, "invalid_content_type")
    boundary = None
    for param in rest.split(";"):
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            boundary = value.strip().strip('"')
    if not boundary:
        raise InvalidRequest("The multipart Content-Type has no boundary.", None, "invalid_content_type")
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise InvalidRequest("The multipart body is cut short (no closing boundary).", None, "invalid_multipart")
    parts: dict[str, Part] = {}
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise InvalidRequest("A multipart part is malformed (expected CRLF around each part).", None, "invalid_multipart")
        head, sep, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise InvalidRequest("A multipart part has no header/body separator.", None, "invalid_multipart")
        disposition = ""
        for header in head.decode("utf-8", "replace").split("\r\n"):
            hname, _, hvalue = header.partition(":")
            if hname.strip().lower() == "content-disposition":
                disposition = hvalue
        name, filename = _disposition_params(disposition)
        if name is None:
            raise InvalidRequest("A multipart part has no Content-Disposition name.", None, "invalid_multipart")
        parts[name] = Part(data, filename)
    return parts


def _disposition_params(value: str) -> tuple[str | None, str | None]:
    name = filename = None
    for param in value.split(";")[1:]:
        key, _, raw = param.strip().partition("=")
        text = raw.strip()
        if text.startswith('"') and text.endswith('"'):
            text = text[1:-1].replace('\\"', '"')
        if key.lower() == "name":
            name = text
        elif key.lower() == "filename":
            filename = text
    return name, filename
