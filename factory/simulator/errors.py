"""OpenAI-shaped error responses: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from .httpserver import Response, json_response


class InvalidRequest(Exception):
    """A request the API would refuse with 400 (or `status`); the message says what to fix."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status


def error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return json_response(status, body, headers)


def invalid_request_response(exc: InvalidRequest, headers: list[tuple[str, str]] | None = None) -> Response:
    return error_response(exc.status, exc.message, "invalid_request_error", exc.param, exc.code, headers)
