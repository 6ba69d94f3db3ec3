"""The version the registry resolves a request to, read from the model's current state."""

from registry.registry import ModelRegistry


def resolved(
    registry: ModelRegistry, name: str, version: int | None = None, alias: str | None = None
) -> int:
    return registry.resolve_version(name, registry.state(name), version, alias)
