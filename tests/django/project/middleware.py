"""An async-only neighbour, as some real stacks have (pitfall: forcing a sync hop)."""

from __future__ import annotations

from typing import Any, Callable

from asgiref.sync import markcoroutinefunction


class AsyncOnlyMiddleware:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response: Callable[..., Any]) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: Any) -> Any:
        response = await self.get_response(request)
        response["X-Async-Neighbour"] = "yes"
        return response


class FailingMiddleware:
    """Raises for one path, from inside the middleware chain (not from a view)."""

    def __init__(self, get_response: Callable[..., Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        if request.path == "/middleware-fails/":
            raise RuntimeError("middleware failed")
        return self.get_response(request)


class TokenAuthMiddleware:
    """Logs a request in by an ``X-Test-Token`` header (a username) when the session did not,
    as token authentication further in the chain does: after ``request.user`` was read."""

    def __init__(self, get_response: Callable[..., Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        token = request.META.get("HTTP_X_TEST_TOKEN")
        if token and not request.user.is_authenticated:
            from django.contrib.auth.models import User

            request.user = User.objects.get(username=token)
        return self.get_response(request)
