"""Weighted aliases: which of an alias's versions answers a request.

An alias may split its traffic between up to four versions, by weight (`production 7=90 8=10`).
Each request's routing key (the caller's x-routing-key, so one entity stays on one version,
else the request id) is hashed with the model's name and the alias's salt to a point in
[0, total weight); the versions, in increasing order, take consecutive stretches of that
range as wide as their weights. The same key, name and salt always land on the same version,
and keys hash uniformly, so the split follows the weights; a new salt reshuffles the keys.
Changing a weight moves only the keys at the border of the stretches that moved.
"""

import hashlib
import secrets

from registry.manifest import AliasSplit

MAX_SPLIT_VERSIONS = 4
SALT_BYTES = 8


def new_salt() -> str:
    return secrets.token_hex(SALT_BYTES)


def version_for(split: AliasSplit, name: str, routing_key: str) -> int:
    """The version of the split that answers this key."""
    digest = hashlib.sha256(f"{split.salt}\0{name}\0{routing_key}".encode()).digest()
    total = sum(split.weights.values())
    point = int.from_bytes(digest[:8], "big") * total >> 64  # uniform in [0, total)
    for version in sorted(split.weights):
        point -= split.weights[version]
        if point < 0:
            return version
    raise AssertionError("the weights sum to more than the point")  # pragma: no cover
