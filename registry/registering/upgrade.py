"""Upgrades that strand nothing: move versions of older runtime lines to a newer one.

An upgrade check re-validates a version on the target line, in that line's validator (the
same sandbox as a registration), and has it answer on the rows the version was checked on at
registration (its manifest's check). The version moves only when every prediction and
probability is the same, bit for bit, as what its own line answered then, and when the
target line made a serving copy of its own (skops, saved by that scikit-learn). Manifests are
write-once, so the move is recorded in the model's state, by compare-and-swap: predict serves
the version on the target line, from that copy, within ALIAS_TTL_SECONDS.

A compiled form is served by every line without scikit-learn; it never needs to move. Nothing
here loads a model: the validators do.
"""

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from registry.errors import IntegrityError, RegistryError, RuntimeUnsupportedError
from registry.lines import Lines, minor_key
from registry.manifest import (
    PICKLE_FREE_SERVING,
    CheckAnswers,
    ModelManifest,
    ServingCopy,
    VersionCheck,
    VersionStatus,
    serving_key,
    sha256_hex,
)
from registry.registering.validator import Validator
from registry.registry import ModelRegistry


@dataclass(frozen=True)
class LineCheck:
    """What an upgrade check found for one version."""

    name: str
    version: int
    line: str | None  # the line serving it before the check (None: compiled, every line)
    target: str
    moved: bool
    reason: str


@dataclass(frozen=True)
class LineUse:
    """A runtime line, and the active versions it serves (none: it may be removed)."""

    line: str
    served: bool  # this registry runs it
    versions: list[tuple[str, int]]


class LineUpgrader:
    """Checks versions against a newer runtime line and moves those that answer the same."""

    def __init__(
        self,
        registry: ModelRegistry,
        validators: Mapping[str, Validator],
        lines: Lines,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """validators: every served line's, by its minor ("1.9": the newest's own)."""
        self.registry = registry
        self.validators = dict(validators)
        self.lines = lines
        self.clock = clock

    def check_version(self, name: str, version: int, target: str) -> LineCheck:
        """Re-validate the version on the target line; move it there if its answers agree."""
        validator = self.validators.get(target)
        if validator is None:
            raise RuntimeUnsupportedError(
                f"this registry does not serve a scikit-learn {target} line; it serves "
                f"{self.lines.listed()}: check against one of them"
            )
        info = self.registry.get_version(name, version)
        manifest = info.manifest
        state = self.registry.state(name)
        line = state.serving_line(manifest)

        def found(moved: bool, reason: str) -> LineCheck:
            return LineCheck(name, version, line, target, moved, reason)

        if info.status is VersionStatus.ARCHIVED:
            return found(False, "archived: restore it to check it")
        if line is None:
            return found(False, "a compiled form: every line serves it, without scikit-learn")
        if line == target:
            return found(False, f"already served by the {target} line")
        if minor_key(line) > minor_key(target):
            return found(False, f"served by the newer {line} line")
        if manifest.check is None:
            return found(False, "registered without check rows: register it again to move it")
        try:
            validated = validator.validate(
                name,
                self.registry.read_artifact(manifest),
                manifest.format,
                manifest.input_example,
                check_rows=manifest.check.rows,
            )
        except RegistryError as refused:
            # What the refusal was, without the advice on what to register instead.
            return found(False, f"the {target} line refused it: {refused.message.split(': ')[0]}")
        differs = _first_difference(manifest.check, validated.check_answers)
        if differs is not None:
            return found(False, f"{differs} on the {target} line than on the {line} line")
        made, made_format = validated.serving_copy, validated.serving_format
        if made is None or made_format not in PICKLE_FREE_SERVING:
            return found(False, f"the {target} line made no copy it can serve without unpickling")
        self._move(manifest, target, made, made_format, validated.estimator.loaded_bytes)
        rows = len(manifest.check.rows)
        return found(True, f"the same answers on all {rows} check rows, bit for bit")

    def _move(
        self,
        manifest: ModelManifest,
        target: str,
        made: bytes,
        made_format: Any,
        loaded_bytes: int | None,
    ) -> None:
        digest = sha256_hex(made)
        copy = ServingCopy(
            key=serving_key(manifest.name, digest, made_format),
            sha256=digest,
            format=made_format,
            loaded_bytes=loaded_bytes,
            converted_at=self.clock(),
            line=target,
        )
        if not self.registry.store.create(copy.key, made):  # content-addressed: created once
            raise IntegrityError(f"{copy.key!r} holds other bytes than its sha256 says")
        version = manifest.version
        self.registry.update_state(
            manifest.name,
            lambda state: state.model_copy(update={"upgraded": {**state.upgraded, version: copy}}),
        )

    def lines_in_use(self) -> list[LineUse]:
        """Every served line, and every line an active version still needs, with those
        versions (compiled forms need none): remove a line only when it serves none."""
        needed: dict[str, list[tuple[str, int]]] = {line: [] for line in self.lines.served}
        for model in self.registry.list_models():
            state = self.registry.state(model.name)
            for version in self.registry.list_versions(model.name, state):
                if state.status(version) is not VersionStatus.ACTIVE:
                    continue
                line = state.serving_line(self.registry.get_manifest(model.name, version))
                if line is not None:
                    needed.setdefault(line, []).append((model.name, version))
        ordered = sorted(needed, key=minor_key, reverse=True)
        return [LineUse(line, line in self.lines.served, needed[line]) for line in ordered]


def _first_difference(check: VersionCheck, answers: CheckAnswers | None) -> str | None:
    """How the target line's answers differ from the version's own (None: not at all)."""
    if answers is None:
        return "it refused its check rows"
    for field in ("predictions", "probabilities"):
        expected, got = getattr(check, field), getattr(answers, field)
        if (expected is None) != (got is None):
            return f"{field} came back {'without' if got is None else 'with'} values"
        if expected is None:
            continue
        if len(expected) != len(got):
            return f"{len(got)} {field} for {len(expected)} check rows"
        for row, (wanted, answered) in enumerate(zip(expected, got, strict=True)):
            if not same_bits(wanted, answered):
                return f"other {field} on check row {row + 1} of {len(expected)}"
    return None


def same_bits(expected: Any, got: Any) -> bool:
    """JSON values equal to the last bit: floats by their bits (-0.0 is not 0.0), labels and
    integers by type and value, lists element by element."""
    if isinstance(expected, list) and isinstance(got, list):
        return len(expected) == len(got) and all(map(same_bits, expected, got))
    if type(expected) is not type(got):
        return False
    if isinstance(expected, float):
        return struct.pack("<d", expected) == struct.pack("<d", got)
    return bool(expected == got)
