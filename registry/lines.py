"""Runtime lines: which scikit-learn an artifact needs, read without loading it.

A line is one scikit-learn minor (1.9, 1.8, 1.7) with the numpy, scipy and pandas it supports
on Python 3.12 (layer/lines/<minor>/requirements.txt). The newest line is this runtime's own;
older ones are served by a validator of their own (RUNTIME_LINES). Registration validates an
artifact on the line it needs, so a team registers what its notebooks pin.

Nothing here imports scikit-learn: the register function reads lines, it never loads models.
"""

import importlib.metadata
import io
import re
import zipfile
from dataclasses import dataclass

# A joblib (pickle) file names the scikit-learn that pickled each estimator right after this
# key (compressed files do not show it). A skops file's schema holds the same attribute.
_PICKLED_VERSION = re.compile(rb"_sklearn_version\x94?\x8c([\x01-\x28])")
# skops keeps a string as its JSON text: "content": "\"1.8.0\""
_SKOPS_VERSION = re.compile(
    rb'"_sklearn_version"\s*:\s*\{[^{}]*?"content"\s*:\s*"(?:\\")?([0-9A-Za-z.+-]{1,40})'
)
_VERSION = re.compile(r"[0-9A-Za-z.+-]{1,40}")
# The most of a skops file's schema register reads to find its version (the validator reads
# the whole file, within its limits).
MAX_SCHEMA_BYTES = 16 * 1024 * 1024
_MINOR = re.compile(r"^(\d+)\.(\d+)(?:[.+-]|$)")


def minor_of(version: str | None) -> str | None:
    """'1.8' of '1.8.0', '1.8', '1.8.1+local'; None for anything else."""
    found = _MINOR.match(version or "")
    return f"{int(found[1])}.{int(found[2])}" if found else None


def runtime_minor() -> str:
    """This runtime's own line, from its installed metadata (scikit-learn is not imported)."""
    minor = minor_of(importlib.metadata.version("scikit-learn"))
    assert minor is not None
    return minor


def pickled_sklearn_version(artifact: bytes) -> str | None:
    """The scikit-learn version a joblib file was pickled with, read without loading it."""
    found = _PICKLED_VERSION.search(artifact)
    if found is None:
        return None
    text = artifact[found.end() : found.end() + found[1][0]]
    version = text.decode("ascii", errors="replace")
    return version if _VERSION.fullmatch(version) else None


def skops_sklearn_version(artifact: bytes) -> str | None:
    """The scikit-learn version a skops file's estimators were saved from, read from its
    schema (bounded: nothing is parsed as JSON, so no depth or size reaches a parser)."""
    try:
        with zipfile.ZipFile(io.BytesIO(artifact)) as archive, archive.open("schema.json") as file:
            # What the header declares is not trusted: at most this much is ever unpacked.
            schema = file.read(MAX_SCHEMA_BYTES + 1)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, EOFError):
        return None
    if len(schema) > MAX_SCHEMA_BYTES:
        return None
    found = _SKOPS_VERSION.search(schema)
    if found is None:
        return None
    version = found[1].decode("ascii", errors="replace")
    return version if _VERSION.fullmatch(version) else None


def artifact_sklearn_version(artifact: bytes, skops: bool, declared: str | None) -> str | None:
    """The scikit-learn the artifact needs: what the file itself records (a pickle names its
    own; a skops schema keeps each estimator's), else what the registrant declares (the
    client sends the scikit-learn installed where it runs, which may not be the file's)."""
    recorded = skops_sklearn_version(artifact) if skops else pickled_sklearn_version(artifact)
    return recorded or declared


@dataclass(frozen=True)
class Lines:
    """The lines a registry serves: its own (the newest) and older ones."""

    newest: str
    older: tuple[str, ...] = ()

    @property
    def served(self) -> list[str]:
        return sorted({self.newest, *self.older}, key=minor_key, reverse=True)

    def line_for(self, sklearn_version: str | None) -> str | None:
        """The line serving that scikit-learn (this runtime's when unknown); None: no line."""
        if sklearn_version is None:
            return self.newest
        minor = minor_of(sklearn_version)
        return minor if minor in self.served else None

    def listed(self) -> str:
        """'1.9, 1.8 and 1.7'."""
        served = self.served
        return served[0] if len(served) == 1 else f"{', '.join(served[:-1])} and {served[-1]}"


def minor_key(minor: str) -> tuple[int, ...]:
    """(1, 10) of "1.10": lines in the order scikit-learn released them."""
    return tuple(int(part) for part in minor.split("."))
