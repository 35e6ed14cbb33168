"""The framework-neutral core: client, events, delivery. Imports no web framework."""

from .client import Client, Posthog
from .options import ClientOptions, ConfigurationError
from .stats import ClientStats
from .transport import APIError

__all__ = ["APIError", "Client", "ClientOptions", "ClientStats", "ConfigurationError", "Posthog"]
