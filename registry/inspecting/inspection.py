"""What the sandbox's child does with one artifact: load, describe, measure, and make the
copy predict will serve (registry/inspecting/sandbox.py runs it, in a child that can write nothing).

The serving copy is, in this order of preference:
- a tree ensemble's compiled form (registry/inspecting/tree_compiler.py), for an artifact of either
  format, kept only if it answers bit for bit as the model;
- for a joblib artifact, the loaded model saved with skops, kept only if it loads with
  scikit-learn's types alone and answers exactly as the model on the rows checked; under
  PickleArtifacts=allow-unsafe, a pickle where no skops copy could be made;
- none, for a skops artifact: predict loads the artifact itself, with the same types.
A joblib artifact that converts to neither is refused under the default policy.

The memory the model took is measured while it is loaded and predicts on those rows (the
peak of the child's resident memory above what it was before), recorded, and held to
max_loaded_bytes.
"""

import json
from pathlib import Path
from typing import Any

from registry.artifacts import (
    check_answers,
    check_one_prediction_per_row,
    describe_estimator,
    example_features,
    load_estimator,
    pickled_serving_copy,
    rows_to_check,
    skops_serving_copy,
    try_example,
    version_check,
)
from registry.compiled import CompiledFormError, load_compiled
from registry.config import PicklePolicy
from registry.inspecting.tree_compiler import exact_form
from registry.manifest import ArtifactFormat, ServingFormat
from registry.validation import (
    ArtifactRejected,
    ChildFindings,
    EstimatorDescription,
    Rejection,
    RejectionReason,
    reject,
)


def inspect_artifact(data: bytes, request: dict[str, Any]) -> tuple[ChildFindings, bytes]:
    """The findings, and the serving copy (b"" for none), for an artifact whose last
    rows_bytes are JSON of the registrant's input_example and an upgrade check's rows."""
    rows_bytes = int(request.get("rows_bytes", 0))
    rows = json.loads(data[len(data) - rows_bytes :]) if rows_bytes else {}
    example, check_rows = rows.get("example"), rows.get("check_rows")
    data = data[: len(data) - rows_bytes]
    format = ArtifactFormat(request["format"])
    policy = PicklePolicy(request["pickle_policy"])
    max_loaded_bytes = int(request["max_loaded_bytes"])
    upgrade = bool(request.get("other_version"))
    try:
        resident_before = _memory("VmRSS")
        estimator = load_estimator(data, format, policy, max_loaded_bytes, other_version=upgrade)
        description = describe_estimator(estimator)
        if example is not None:
            description = description.model_copy(
                update={"example": try_example(estimator, description, example)}
            )
        inputs = rows_to_check(description, example)
        check_one_prediction_per_row(estimator, inputs)
        loaded_bytes = max(0, _memory("VmHWM") - resident_before)
        if loaded_bytes > max_loaded_bytes:
            raise reject(RejectionReason.TOO_LARGE_LOADED, loaded_bytes=loaded_bytes)
        description = description.model_copy(update={"loaded_bytes": loaded_bytes})
        checks: dict[str, Any] = {}
        if check_rows is None:
            checks["check"] = version_check(estimator, description, example)
        else:
            checks["check_answers"] = check_answers(estimator, description, check_rows, example)
        if upgrade:
            # This line's own copy, which it will serve from if the answers agree.
            format = ArtifactFormat.JOBLIB
        serving, serving_format = _serving_copy(
            estimator, description, example, inputs, format, policy, request["max_serving_bytes"]
        )
    except ArtifactRejected as exc:
        return ChildFindings(rejection=exc.rejection), b""
    except MemoryError:
        return ChildFindings(rejection=Rejection(reason=RejectionReason.TOO_LARGE_LOADED)), b""
    except Exception:  # anything else the artifact's object raised while described
        return ChildFindings(rejection=Rejection(reason=RejectionReason.NOT_LOADABLE)), b""
    findings = ChildFindings(estimator=description, serving_format=serving_format, **checks)
    return findings, serving


def _serving_copy(
    estimator: Any,
    description: EstimatorDescription,
    example: list[Any] | None,
    inputs: list[Any],
    format: ArtifactFormat,
    policy: PicklePolicy,
    max_bytes: int,
) -> tuple[bytes, ServingFormat | None]:
    """The copy predict will load, and its kind; (b"", None) where it loads the artifact."""
    compiled = _compiled_form(estimator, description, example)
    if compiled and len(compiled) <= max_bytes:
        return compiled, ServingFormat.COMPILED
    if format is ArtifactFormat.SKOPS:
        return b"", None
    try:
        converted = skops_serving_copy(estimator, inputs)
    except ArtifactRejected:
        if policy is not PicklePolicy.ALLOW_UNSAFE:
            raise
    else:
        if len(converted) > max_bytes:
            raise reject(RejectionReason.TOO_LARGE)
        return converted, ServingFormat.SKOPS
    try:
        pickled = pickled_serving_copy(estimator)
    except Exception:  # an estimator plain pickle cannot hold: predict loads the artifact
        return b"", None
    return (pickled, ServingFormat.PICKLE) if len(pickled) <= max_bytes else (b"", None)


def _compiled_form(
    estimator: Any, description: EstimatorDescription, example: list[Any] | None
) -> bytes:
    """A tree ensemble's compiled form, if it answers exactly as the estimator; else b""."""
    features = example_features(description, example) if example is not None else None
    form = exact_form(estimator, features)
    if form is None:
        return b""
    compiled = form.to_bytes()
    try:
        load_compiled(compiled)  # what predict will check: a form it would refuse is not kept
    except CompiledFormError:
        return b""
    return compiled


def _memory(field: str) -> int:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return 0
