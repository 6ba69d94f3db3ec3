"""The client side: the Python client (RegistryClient) and the `model-registry` command.

It needs the standard library only (numpy and pandas when the caller passes them, botocore to
sign requests to a deployed stack), and imports nothing else of the registry: `pip install
model-registry` installs it without the server's pinned scientific stack.
"""

from registry.client.registry_client import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_INLINE_LIMIT,
    DEFAULT_URL,
    ApiError,
    RegistryClient,
    installed_sklearn_version,
    terminal_progress,
)

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_INLINE_LIMIT",
    "DEFAULT_URL",
    "ApiError",
    "RegistryClient",
    "installed_sklearn_version",
    "terminal_progress",
]
