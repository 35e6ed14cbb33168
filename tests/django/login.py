"""Logging a test client in from async code, on every Django the package supports."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient


async def alogin(client: AsyncClient, user: User) -> None:
    """``await client.aforce_login(user)``, which Django 4.2 lacks (it came in 5.0): the
    session is written in a worker thread, as Django refuses database work on the event loop."""
    await sync_to_async(client.force_login)(user)
