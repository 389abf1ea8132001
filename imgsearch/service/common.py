"""What the routes share: the library object as a dependency, the token check, error responses."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from imgsearch.library import Index
from imgsearch.service.schemas import Problem

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 404, 409, 413, 415, 422, 503)
}


def binary(media_type: str, description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a 200 whose body is a file of `media_type`."""
    content = {media_type: {"schema": {"type": "string", "format": "binary"}}}
    return {200: {"content": content, "description": description}}


JPEG = binary("image/jpeg", "A JPEG")


def busy(description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a 503 that asks to try again (Retry-After)."""
    retry = {"description": "seconds to wait", "schema": {"type": "integer"}}
    return {503: {"model": Problem, "description": description, "headers": {"Retry-After": retry}}}


WRITE_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": Problem}, 403: {"model": Problem}, **ERRORS}


def current_index(request: Request) -> Index:
    """The service's library object (create_app's `index`): a dependency of every route that
    uses it, so that a test can put another in its place (app.dependency_overrides)."""
    index: Index = request.app.state.index
    return index


IndexDep = Annotated[Index, Depends(current_index)]


BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="`Authorization: Bearer $IMGSEARCH_API_TOKEN`: writes (ingest, delete, decisions, clusters).",
)


def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)] = None
) -> None:
    """Writes need `Authorization: Bearer $IMGSEARCH_API_TOKEN` (compared in constant time)."""
    token = request.app.state.api_token
    if not token:
        raise HTTPException(403, "Writes are disabled: start the server with IMGSEARCH_API_TOKEN.")
    given = credentials.credentials if credentials is not None else ""
    if credentials is None or not secrets.compare_digest(given.encode(), token.encode()):
        raise HTTPException(
            401,
            "A valid `Authorization: Bearer <token>` header is needed.",
            headers={"WWW-Authenticate": "Bearer"},
        )
