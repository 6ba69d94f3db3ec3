"""Pydantic models of what the registry stores, and the naming rules for its keys.

Layout under the store (keys are relative to REGISTRY_URI):
    models/<name>/versions/<0000000001>.json   one immutable manifest per version
    models/<name>/artifacts/<sha256>.<format>  the bytes, content-addressed (.joblib or .skops)
    models/<name>/serving/<sha256>.npz         a tree ensemble compiled by the validator, or
    models/<name>/serving/<sha256>.skops       a joblib artifact's model saved by it with skops,
    models/<name>/serving/<sha256>.pickle      or (PickleArtifacts=allow-unsafe) re-pickled
    models/<name>/state.json                   aliases and archived versions (compare-and-swap)
    models/<name>/references/<0000000001>.json a version's reference rows, for the monitor
    models/<name>/sha256/<sha256>.json         which version holds these bytes (retry safety)
    uploads/<name>/<32 hex>.joblib             large artifacts PUT through a presigned URL
    uploads/<name>/<32 hex>.staged|.serving    what register hands the validator, and its answer

Manifests, artifacts and serving copies are written once (If-None-Match: *), and the
bucket policy refuses any other write to them; state.json changes only by If-Match.
"""

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from registry.errors import InvalidNameError
from registry.lines import minor_of

MODEL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
# Version numbers are zero-padded in keys so that listing order is numeric order.
VERSION_DIGITS = 10
MAX_VERSION = 10**VERSION_DIGITS - 1
UPLOADS_PREFIX = "uploads/"
UPLOAD_KEY_PATTERN = rf"^uploads/{MODEL_NAME_PATTERN[1:-1]}/[0-9a-f]{{32}}\.joblib$"
# The prefixes (under models/<name>/) whose objects are never overwritten.
WRITE_ONCE_FOLDERS = ("versions", "artifacts", "serving")

Label = bool | int | float | str
# A class label as stored: finite, and bounded (what the validator answers is not trusted).
StoredLabel = (
    bool
    | int
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, Field(max_length=1000)]
)
VersionText = Annotated[str, Field(pattern=r"^[0-9A-Za-z.+-]{1,40}$")]
# The largest manifest registration writes (100,000 feature names fit; a flood does not).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MetricValue = Annotated[float, Field(allow_inf_nan=False)]


class ArtifactFormat(StrEnum):
    """joblib (a pickle: loading it runs code) or skops (loaded with trusted types only)."""

    JOBLIB = "joblib"
    SKOPS = "skops"


class ServingFormat(StrEnum):
    """What a version's serving copy holds: a tree ensemble compiled to numpy arrays
    (registry/compiled.py), a joblib artifact's model saved with skops (loaded with
    scikit-learn's types only), or (PickleArtifacts=allow-unsafe) re-pickled."""

    PICKLE = "pickle"
    COMPILED = "compiled"
    SKOPS = "skops"


SERVING_SUFFIXES = {
    ServingFormat.PICKLE: "pickle",
    ServingFormat.COMPILED: "npz",
    ServingFormat.SKOPS: "skops",
}
# Serving copies predict loads without unpickling anything.
PICKLE_FREE_SERVING = frozenset({ServingFormat.COMPILED, ServingFormat.SKOPS})


def artifact_format_of(data: bytes) -> ArtifactFormat:
    """skops files are zip archives; anything else is taken for a joblib file (read, not loaded)."""
    return ArtifactFormat.SKOPS if data[:4] == b"PK\x03\x04" else ArtifactFormat.JOBLIB


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate_name(name: str, kind: str = "model") -> str:
    """Lowercase letters, digits, '-' and '_', starting with a letter or digit, 64 at most."""
    if not _MODEL_NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid {kind} name {name[:80]!r}: use 1 to 64 lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit"
        )
    return name


def validate_model_name(name: str) -> str:
    return validate_name(name, "model")


def model_prefix(name: str) -> str:
    return f"models/{validate_model_name(name)}/"


def versions_prefix(name: str) -> str:
    return f"{model_prefix(name)}versions/"


def manifest_key(name: str, version: int) -> str:
    return f"{versions_prefix(name)}{version:0{VERSION_DIGITS}d}.json"


def parse_version_key(key: str) -> tuple[str, int] | None:
    """('moons', 3) for 'models/moons/versions/0000000003.json'; None for any other key."""
    parts = key.split("/")
    if len(parts) != 4 or parts[0] != "models" or parts[2] != "versions":
        return None
    stem = parts[3].removesuffix(".json")
    if not parts[3].endswith(".json") or not stem.isdigit():
        return None
    return parts[1], int(stem)


def artifact_key(name: str, sha256: str, format: ArtifactFormat = ArtifactFormat.JOBLIB) -> str:
    """Artifacts are content-addressed: identical bytes share one object."""
    return f"{model_prefix(name)}artifacts/{sha256}.{format.value}"


def serving_key(name: str, sha256: str, format: ServingFormat = ServingFormat.PICKLE) -> str:
    """The validator's quick-loading copy of an artifact, content-addressed."""
    return f"{model_prefix(name)}serving/{sha256}.{SERVING_SUFFIXES[format]}"


def reference_key(name: str, version: int) -> str:
    """A version's reference rows (what the monitor compares captured inputs with)."""
    return f"{model_prefix(name)}references/{version:0{VERSION_DIGITS}d}.json"


def state_key(name: str) -> str:
    return f"{model_prefix(name)}state.json"


def claim_key(name: str, sha256: str) -> str:
    return f"{model_prefix(name)}sha256/{sha256}.json"


def upload_key(name: str, token: str, suffix: str = "joblib") -> str:
    """Client uploads end in .joblib; what register stages for the validator in .staged/.serving."""
    return f"{UPLOADS_PREFIX}{validate_model_name(name)}/{token}.{suffix}"


class VersionStatus(StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class RuntimeVersions(BaseModel):
    """The versions an artifact was validated with at registration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    python: VersionText
    scikit_learn: VersionText
    joblib: VersionText
    numpy: VersionText
    skops: VersionText | None = None


class MissingValue(StrEnum):
    """How a model saw a missing value in a column."""

    NAN = "nan"  # NaN: pandas' missing value, in numbers and pandas' strings
    NONE = "none"  # None, in an object column (encoders and imputers tell it from NaN)


class ColumnKind(StrEnum):
    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"


# A category as the model knows it: what a request may send for that column.
Category = (
    bool
    | int
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[str, Field(max_length=256)]
)
MAX_CATEGORIES_KEPT = 1000
# The most rows an input_example may hold (it is kept in the manifest).
MAX_EXAMPLE_ROWS = 100
# The most rows, and values, a version's check rows hold (kept in its manifest too).
MAX_CHECK_ROWS = MAX_EXAMPLE_ROWS + 32
MAX_CHECK_VALUES = 20_000


class InputColumn(BaseModel):
    """One input column of a model: its name, what kind of value it takes, whether null is fine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(max_length=256)]
    kind: ColumnKind = ColumnKind.NUMBER
    nullable: bool = False
    # The categories an encoder learned, when it learned at most MAX_CATEGORIES_KEPT.
    categories: Annotated[list[Category], Field(max_length=MAX_CATEGORIES_KEPT)] | None = None
    # How the model saw a missing value: NaN (pandas' way), or None (an object column of
    # None, which encoders and imputers tell apart from NaN). A null is sent to it so.
    missing: MissingValue = MissingValue.NAN


class InputSignature(BaseModel):
    """What a version takes as input, derived from the fitted model at registration.

    named: the model was fitted with column names (a DataFrame), so rows may be sent named.
    dataframe: it selects columns by name or encodes strings, so it needs a DataFrame.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    columns: Annotated[list[InputColumn], Field(max_length=100_000)]
    named: bool = False
    dataframe: bool = False

    @cached_property
    def numbers_only(self) -> bool:
        """Every column takes numbers and the model takes an array: predict's fast path."""
        return not self.dataframe and all(
            column.kind is ColumnKind.NUMBER for column in self.columns
        )


class VersionCheck(BaseModel):
    """Rows the validator checked a version on at registration (its input_example, then rows
    made from its signature), and the model's answers on them, as JSON values. An upgrade
    check asks a newer runtime line for the same answers, bit for bit
    (registry/registering/upgrade.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: Annotated[list[Any], Field(max_length=MAX_CHECK_ROWS)]
    predictions: Annotated[list[Any], Field(max_length=MAX_CHECK_ROWS)]
    probabilities: Annotated[list[Any], Field(max_length=MAX_CHECK_ROWS)] | None = None


class CheckAnswers(BaseModel):
    """A line's answers on a version's check rows (the rows are the version's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    predictions: Annotated[list[Any], Field(max_length=MAX_CHECK_ROWS)]
    probabilities: Annotated[list[Any], Field(max_length=MAX_CHECK_ROWS)] | None = None


class ModelManifest(BaseModel):
    """One immutable model version; writing it is the commit point of a registration."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int = Field(ge=1)
    artifact_key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    # Versions registered before skops was accepted are joblib files.
    format: ArtifactFormat = ArtifactFormat.JOBLIB
    created_at: datetime
    estimator_class: str
    n_features_in: int | None = None
    feature_names: list[str] | None = None
    classes: list[StoredLabel] | None = None
    # A multi-output classifier's classes, one list per output (classes is then None).
    output_classes: list[list[StoredLabel]] | None = None
    has_predict_proba: bool = False
    # None for versions registered before signatures were derived.
    signature: InputSignature | None = None
    # Rows the registrant sent; the model predicted on them at registration.
    input_example: Annotated[list[Any], Field(max_length=MAX_EXAMPLE_ROWS)] | None = None
    runtime: RuntimeVersions
    # The memory the model took in the validator while it was loaded and predicted on rows
    # (None for versions registered before it was measured).
    loaded_bytes: int | None = Field(default=None, ge=0)
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, MetricValue] = Field(default_factory=dict)
    registered_by: str | None = None
    # What predict loads instead of the artifact: a tree ensemble's compiled form (any
    # artifact), or a joblib artifact's model as the validator saved it with skops (or,
    # under PickleArtifacts=allow-unsafe, re-pickled).
    serving_key: str | None = None
    serving_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    serving_format: ServingFormat = ServingFormat.PICKLE
    # The rows it was checked on and its answers (None for versions registered before).
    check: VersionCheck | None = None

    @property
    def validated_line(self) -> str | None:
        """The runtime line (scikit-learn minor) that validated it: "1.8"."""
        return minor_of(self.runtime.scikit_learn)

    @property
    def serving_copy(self) -> "ServingCopy | None":
        if self.serving_key is None or self.serving_sha256 is None:
            return None
        return ServingCopy(
            key=self.serving_key, sha256=self.serving_sha256, format=self.serving_format
        )


class ServingCopy(BaseModel):
    """What predict loads for a version instead of its artifact: where, its sha256, its kind."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    format: ServingFormat
    loaded_bytes: int | None = Field(default=None, ge=0)
    converted_at: datetime | None = None
    # The runtime line that made this copy, when an upgrade check moved the version there:
    # that line serves it from this copy alone.
    line: str | None = None


Description = Annotated[str, Field(max_length=1000)]
MetadataKey = Annotated[str, Field(max_length=128)]
TagValue = Annotated[str, Field(max_length=256)]
Tags = Annotated[dict[MetadataKey, TagValue], Field(max_length=50)]
Metrics = Annotated[dict[MetadataKey, MetricValue], Field(max_length=100)]


class VersionMetadata(BaseModel):
    """A version's description, tags and metrics as edited after registration.

    The manifest keeps what was registered; this, in the model's state, replaces it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: Description = ""
    tags: Tags = Field(default_factory=dict)
    metrics: Metrics = Field(default_factory=dict)
    edited_at: datetime
    edited_by: str | None = None


class AliasSplit(BaseModel):
    """An alias whose traffic is split between versions by weight (registry/traffic.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[int, int]  # version: its weight (a positive whole number)
    salt: str  # hashed with each routing key: a new salt reshuffles which key goes where

    @property
    def heaviest(self) -> int:
        """The version with the most weight (the lowest of equals): the one the alias names
        where one version is meant (listings, a batch job)."""
        return min(self.weights, key=lambda version: (-self.weights[version], version))


class ModelState(BaseModel):
    """The mutable part of a model, replaced only by compare-and-swap on its etag."""

    # Each alias's version; for a weighted alias, its heaviest version (splits has them all).
    aliases: dict[str, int] = Field(default_factory=dict)
    splits: dict[str, AliasSplit] = Field(default_factory=dict)
    # An alias's shadow version: it never answers; `model-registry shadow report` replays
    # the alias's captured rows through it.
    shadows: dict[str, int] = Field(default_factory=dict)
    # The share of this model's predict requests captured (registry/capture.py); None: the
    # deployment's CAPTURE_SAMPLE_PERCENT.
    capture_percent: float | None = Field(default=None, ge=0, le=100)
    archived: list[int] = Field(default_factory=list)
    # Metadata edited after registration, by version.
    metadata: dict[int, VersionMetadata] = Field(default_factory=dict)
    # Serving copies made after registration (`model-registry convert`) for versions whose
    # manifest, written once, names none predict may load without unpickling.
    serving: dict[int, ServingCopy] = Field(default_factory=dict)
    # Versions an upgrade check moved to a newer runtime line (`model-registry runtime check`):
    # the copy that line made of the model, which it serves from.
    upgraded: dict[int, ServingCopy] = Field(default_factory=dict)
    # A deleted model: every version up to this one is gone, and its numbers are not reused.
    deleted_through: int = 0
    # The token of the delete under way, from its tombstone until its sweep ends: while set,
    # registrations are refused. Only that delete clears it (another may have taken over).
    deleting: str | None = None

    def status(self, version: int) -> VersionStatus:
        return VersionStatus.ARCHIVED if version in self.archived else VersionStatus.ACTIVE

    def exists(self, version: int) -> bool:
        """False for the versions of a deleted model (their objects may still be going)."""
        return version > self.deleted_through

    def aliases_of(self, version: int) -> list[str]:
        """The aliases that send traffic to this version (alone, or with a weight), or name
        it their shadow."""
        return sorted(
            alias
            for alias, target in self.aliases.items()
            if target == version
            or (alias in self.splits and version in self.splits[alias].weights)
            or self.shadows.get(alias) == version
        )

    def serving_line(self, manifest: ModelManifest) -> str | None:
        """The runtime line that serves a version: the one an upgrade check moved it to, else
        the one that validated it. None for a compiled form: every line serves it, without
        scikit-learn."""
        if manifest.serving_key is not None and manifest.serving_format is ServingFormat.COMPILED:
            return None
        moved = self.upgraded.get(manifest.version)
        return moved.line if moved is not None else manifest.validated_line


class ShaClaim(BaseModel):
    """Who registers these bytes: a pending token, then the version that holds them."""

    token: str
    claimed_at: datetime
    version: int | None = None
