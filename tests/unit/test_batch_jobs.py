"""Batch jobs on one machine and through the batch function's steps: every row scored exactly
as the model's own predict() scores it, bad rows set aside with their position and why."""

import json
from pathlib import Path
from typing import Any

import boto3
import numpy
import pandas
import pytest
import skops.io
from botocore.config import Config

from registry.batching.jobs import BatchFormat, JobStatus
from registry.batching.local_job import LocalJobRunner
from registry.batching.native_trees import NativelyWalkedTrees
from registry.batching.planning import plan_parts
from registry.batching.running import BatchJobs, scoring_model
from registry.config import PicklePolicy
from registry.errors import BatchInputError, BatchJobConflictError, BatchJobNotFoundError
from registry.manifest import ServingFormat
from registry.registering.registration import Registrar
from registry.registry import ModelRegistry
from registry.store import LocalStore, S3Store
from registry.store.base import ObjectStore
from tests.support.batch import moons_csv
from tests.support.families import family, records
from tests.support.models import joblib_of
from tests.support.registries import BUCKET


def registry_uri(store: ObjectStore) -> str:
    if isinstance(store, LocalStore):
        return str(store.root)
    assert isinstance(store, S3Store)
    return f"s3://{store.bucket}/{store.prefix}"


@pytest.fixture
def jobs(registry: ModelRegistry) -> BatchJobs:
    runner = LocalJobRunner(registry_uri(registry.store), workers=1)
    return BatchJobs(registry, runner, local=True)


def run(jobs: BatchJobs, name: str, **job: Any) -> Any:
    submitted = jobs.submit(name, **job)
    assert isinstance(jobs.runner, LocalJobRunner)
    jobs.runner.wait(submitted.job_id, timeout=120)
    return submitted, jobs.status(submitted.job_id)


def read_outputs(folder: Path, format: str = "csv") -> pandas.DataFrame:
    parts = sorted(folder.glob(f"part-*.{format}"))
    if format == "csv":
        return pandas.concat([pandas.read_csv(part) for part in parts], ignore_index=True)
    return pandas.concat([pandas.read_json(part, lines=True) for part in parts], ignore_index=True)


def read_errors(folder: Path) -> list[dict[str, Any]]:
    lines = []
    for part in sorted((folder / "errors").glob("part-*.jsonl")):
        lines += [json.loads(line) for line in part.read_text().splitlines()]
    return lines


def test_a_csv_is_scored_part_by_part_exactly_as_the_model_predicts(
    jobs: BatchJobs, registrar: Registrar, moons_model: Any, tmp_path: Path
) -> None:
    # Given the blog's model and 2,500 rows of its data, with an id column
    version = registrar.register("moons", joblib_of(moons_model)).info.manifest.version
    frame = moons_csv(tmp_path / "in.csv", 2500)
    # When a job scores them in parts of 1,000 rows, with probabilities
    job, summary = run(
        jobs,
        "moons",
        input=str(tmp_path / "in.csv"),
        output=str(tmp_path / "out"),
        format=BatchFormat.CSV,
        probabilities=True,
        id_column="id",
        rows_per_part=1000,
    )
    # Then every row is answered, in input order, as predict() answers the same file read by pandas
    assert job.version == version
    assert summary.status is JobStatus.SUCCEEDED, summary.reason
    assert (summary.parts, summary.rows_read, summary.rows_scored, summary.rows_failed) == (
        3,
        2500,
        2500,
        0,
    )
    assert [Path(uri).name for uri in summary.outputs] == [
        "part-000000.csv",
        "part-000001.csv",
        "part-000002.csv",
    ]
    output = read_outputs(tmp_path / "out")
    by_hand = pandas.read_csv(tmp_path / "in.csv")[["data1", "data2"]].to_numpy()
    assert output["id"].tolist() == frame["id"].tolist()
    assert numpy.array_equal(output["prediction"].to_numpy(), moons_model.predict(by_hand))
    expected = moons_model.predict_proba(by_hand)
    assert numpy.array_equal(output[["probability_0", "probability_1"]].to_numpy(), expected)
    assert read_errors(tmp_path / "out") == []


def test_bad_rows_go_to_the_errors_file_with_their_position_and_never_stop_the_job(
    jobs: BatchJobs, registrar: Registrar, tmp_path: Path
) -> None:
    # Given a DataFrame pipeline with categories, and JSON lines among which four are bad
    wine = family("column_transformer_on_strings")
    registrar.register("wine", joblib_of(wine.model))
    rows = records(wine.test_rows)
    lines = [json.dumps({"key": index, **row}) for index, row in enumerate(rows)]
    bad = {
        3: "{not json",
        7: json.dumps({"key": 7, **{k: v for k, v in rows[7].items() if k != "region"}}),
        11: json.dumps({"key": 11, **rows[11], "alcohol": "strong"}),
        20: json.dumps([1, 2, 3]),
    }
    for position, line in bad.items():
        lines[position] = line
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "rows.jsonl").write_text("\n".join(lines) + "\n")
    # When a job scores them, tolerating 10% of failures
    _, summary = run(
        jobs,
        "wine",
        input=str(tmp_path / "in"),
        output=str(tmp_path / "out"),
        format=BatchFormat.JSONL,
        id_column="key",
        tolerated_failure_percent=10,
        rows_per_part=16,
    )
    # Then the bad rows are in the errors file, each with its position and why
    assert summary.status is JobStatus.SUCCEEDED, summary.reason
    errors = read_errors(tmp_path / "out")
    assert [error["position"] for error in errors] == sorted(bad)
    reasons = {error["position"]: error["reason"] for error in errors}
    assert reasons[3] == "the line is not JSON"
    assert "region" in reasons[7]
    assert "expected a number" in reasons[11] and "'alcohol'" in reasons[11]
    assert "fitted without column names" not in reasons[20] and "id column" in reasons[20]
    assert summary.rows_failed == 4 and summary.rows_scored == len(rows) - 4
    assert [error.position for error in summary.first_errors] == sorted(bad)
    # And the others are answered exactly as the model answers the same rows
    output = read_outputs(tmp_path / "out", "jsonl")
    good = [index for index in range(len(rows)) if index not in bad]
    assert output["key"].tolist() == good
    expected = wine.model.predict(wine.test_rows.iloc[good])
    assert numpy.array_equal(output["prediction"].to_numpy(), expected)


def test_a_job_whose_failures_pass_the_tolerance_ends_failed_with_the_reason(
    jobs: BatchJobs, registrar: Registrar, moons_model: Any, tmp_path: Path
) -> None:
    registrar.register("moons", joblib_of(moons_model))
    (tmp_path / "in.csv").write_text("a,b\n0.1,0.2\nx,0.3\n0.5,0.6,0.7\n0.7,0.8\n")
    _, summary = run(
        jobs,
        "moons",
        input=str(tmp_path / "in.csv"),
        output=str(tmp_path / "out"),
        format=BatchFormat.CSV,
    )
    assert summary.status is JobStatus.FAILED
    assert summary.reason is not None and "50.00% of rows failed (2 of 4)" in summary.reason
    assert "tolerates 1%" in summary.reason
    reasons = [error.reason for error in summary.first_errors]
    assert reasons[0].startswith("column '0': expected a number, got the string \"x\"")
    assert reasons[1] == "the line has 3 values; the header names 2"
    # The rows that fit were still scored and written
    output = read_outputs(tmp_path / "out")
    assert output["position"].tolist() == [0, 3]
    assert numpy.array_equal(
        output["prediction"].to_numpy(), moons_model.predict([[0.1, 0.2], [0.7, 0.8]])
    )


def test_an_alias_moved_mid_job_does_not_change_the_version_that_scores(
    registry: ModelRegistry, registrar: Registrar, tmp_path: Path
) -> None:
    # Given two versions, and a job submitted to the alias pointing at the first
    from sklearn.base import clone

    first = family("imputing_pipeline").model
    rows = family("imputing_pipeline").test_rows
    second = clone(first).fit(rows, (first.predict(rows) + 1) % 3)  # other answers
    registrar.register("flowers", joblib_of(first))
    registrar.register("flowers", joblib_of(second))
    registry.set_alias("flowers", "production", 1)
    rows.to_csv(tmp_path / "in.csv", index=False)
    jobs = BatchJobs(registry, runner=None, local=True)
    held = _HeldRunner()
    jobs.runner = held
    job = jobs.submit(
        "flowers",
        input=str(tmp_path / "in.csv"),
        output=str(tmp_path / "out"),
        format=BatchFormat.CSV,
        alias="production",
    )
    # When the alias moves before the job runs
    registry.set_alias("flowers", "production", 2)
    LocalJobRunner(registry_uri(registry.store), workers=1).start(job, 1)
    _wait_for(jobs, job.job_id)
    # Then version 1 scored every row
    assert job.version == 1
    output = read_outputs(tmp_path / "out")
    assert numpy.array_equal(output["prediction"].to_numpy(), first.predict(rows))
    assert not numpy.array_equal(second.predict(rows), first.predict(rows))


class _HeldRunner:
    """A runner that starts nothing: the test starts the run itself, later."""

    def start(self, job: Any, run: int) -> None:
        pass

    def state(self, job: Any, run: int) -> None:
        return None


def _wait_for(jobs: BatchJobs, job_id: str) -> None:
    import time

    deadline = time.monotonic() + 120
    while jobs.status(job_id).status not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_running_a_job_again_with_its_id_writes_the_same_output_once(
    jobs: BatchJobs, registrar: Registrar, moons_model: Any, tmp_path: Path
) -> None:
    registrar.register("moons", joblib_of(moons_model))
    moons_csv(tmp_path / "in.csv", 300)
    request = dict(
        input=str(tmp_path / "in.csv"),
        output=str(tmp_path / "out"),
        format=BatchFormat.CSV,
        id_column="id",
        job_id="nightly-1",
        rows_per_part=100,
    )
    run(jobs, "moons", **request)
    first = {path.name: path.read_bytes() for path in (tmp_path / "out").rglob("*.*")}
    _, summary = run(jobs, "moons", **request)
    again = {path.name: path.read_bytes() for path in (tmp_path / "out").rglob("*.*")}
    assert summary.status is JobStatus.SUCCEEDED and summary.rows_read == 300
    assert again == first and len([n for n in first if n.endswith(".csv")]) == 3
    # Another job under the same id is refused, saying what to do
    with pytest.raises(BatchJobConflictError, match="choose another id"):
        jobs.submit("moons", **{**request, "probabilities": True})


def test_inputs_that_cannot_feed_the_model_are_refused_before_the_job_starts(
    jobs: BatchJobs, registrar: Registrar, tmp_path: Path
) -> None:
    wine = family("column_transformer_on_strings")
    registrar.register("wine", joblib_of(wine.model))
    wine.test_rows.drop(columns="region").to_csv(tmp_path / "in.csv", index=False)
    common = dict(format=BatchFormat.CSV)
    with pytest.raises(BatchInputError, match="lacks the model's columns region"):
        jobs.submit("wine", input=str(tmp_path / "in.csv"), output=str(tmp_path / "o"), **common)
    with pytest.raises(BatchInputError, match="inside the input"):
        jobs.submit("wine", input=str(tmp_path), output=str(tmp_path / "o"), **common)
    with pytest.raises(BatchInputError, match="nothing to read"):
        jobs.submit("wine", input=str(tmp_path / "none"), output=str(tmp_path / "o"), **common)
    with pytest.raises(BatchInputError, match="not an S3 location"):
        BatchJobs(jobs.registry, jobs.runner).submit(
            "wine", input="/data/in.csv", output="s3://b/o/", **common
        )
    unreachable = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        config=Config(connect_timeout=1, retries={"max_attempts": 1}),
    )
    nowhere = BatchJobs(jobs.registry, jobs.runner, s3_client=unreachable)
    with pytest.raises(BatchInputError, match=r"cannot read s3://data/in\.csv"):
        nowhere.submit("wine", input="s3://data/in.csv", output="s3://data/out/", **common)
    with pytest.raises(BatchJobNotFoundError, match="model-registry batch"):
        jobs.status("nothing-here")


def test_parts_follow_rows_across_objects_without_a_final_line_break_and_with_crlf(
    tmp_path: Path,
) -> None:
    store = LocalStore(tmp_path)
    store.put("in/a.csv", b"x,y\r\n1,2\r\n3,4\r\n5,6\r\n")
    store.put("in/b.csv", b"x,y\n7,8\n9,10")
    parts = plan_parts(store, ["in/a.csv", "in/b.csv"], BatchFormat.CSV, 2)
    described = [
        (p.key, p.first_row, p.rows, store.get_range(p.key, p.start, p.end)) for p in parts
    ]
    assert described == [
        ("in/a.csv", 0, 2, b"1,2\r\n3,4\r\n"),
        ("in/a.csv", 2, 1, b"5,6\r\n"),
        ("in/b.csv", 3, 2, b"7,8\n9,10"),
    ]


def test_the_batch_functions_steps_read_and_write_s3_and_match_the_local_job_byte_for_byte(
    s3_client: Any, tmp_path: Path, moons_model: Any
) -> None:
    # Given the registry and the input in S3 (moto), and the same input on disk
    registry = ModelRegistry(S3Store(BUCKET, "registry", s3_client=s3_client))
    from tests.support.registries import registrar_for

    registrar_for(registry).register("moons", joblib_of(moons_model))
    moons_csv(tmp_path / "in.csv", 1200)
    s3_client.put_object(Bucket=BUCKET, Key="data/in.csv", Body=(tmp_path / "in.csv").read_bytes())
    # When the batch function's steps run the job, as the state machine calls them
    held = _HeldRunner()
    deployed = BatchJobs(registry, held, load_model=None, s3_client=s3_client)
    from registry.batching.running import scoring_model
    from registry.config import PicklePolicy

    deployed.load_model = lambda n, v: scoring_model(registry, n, v, PicklePolicy.CONVERT)
    job = deployed.submit(
        "moons",
        input=f"s3://{BUCKET}/data/in.csv",
        output=f"s3://{BUCKET}/scores/",
        format=BatchFormat.CSV,
        id_column="id",
        rows_per_part=500,
        probabilities=True,
    )
    plan = deployed.plan(job.job_id)
    for part in deployed.parts(job.job_id):
        deployed.score(job.job_id, part)
    summary = deployed.summarize(job.job_id, plan["parts"])
    # And the same job runs on one machine
    local_registry = ModelRegistry(LocalStore(tmp_path / "registry"))
    registrar_for(local_registry).register("moons", joblib_of(moons_model))
    local = BatchJobs(local_registry, LocalJobRunner(str(tmp_path / "registry"), 2), local=True)
    local_job = local.submit(
        "moons",
        input=str(tmp_path / "in.csv"),
        output=str(tmp_path / "out"),
        format=BatchFormat.CSV,
        id_column="id",
        rows_per_part=500,
        probabilities=True,
    )
    assert isinstance(local.runner, LocalJobRunner)
    local.runner.wait(local_job.job_id, timeout=120)
    # Then both wrote the same files, byte for byte
    assert summary.status is JobStatus.SUCCEEDED and summary.parts == 3
    written = s3_client.list_objects_v2(Bucket=BUCKET, Prefix="scores/")["Contents"]
    deployed_files = {
        item["Key"].removeprefix("scores/"): s3_client.get_object(Bucket=BUCKET, Key=item["Key"])[
            "Body"
        ].read()
        for item in written
    }
    local_files = {
        path.relative_to(tmp_path / "out").as_posix(): path.read_bytes()
        for path in (tmp_path / "out").rglob("*")
        if path.is_file()
    }
    assert local.status(local_job.job_id).status is JobStatus.SUCCEEDED
    assert deployed_files == local_files
    assert len(deployed_files) == 6  # three parts, three errors files


def test_a_plain_csv_and_the_same_rows_read_row_by_row_give_the_same_bytes(
    jobs: BatchJobs, registrar: Registrar, tmp_path: Path
) -> None:
    # Given the DataFrame pipeline's rows as pandas writes them (read by pandas' C parser),
    # and the same rows with one id quoted (which sends the part to the row by row read)
    wine = family("column_transformer_on_strings")
    registrar.register("wine", joblib_of(wine.model))
    frame = wine.test_rows.copy()
    frame.insert(0, "key", [f"k{index}" for index in range(len(frame))])
    frame.to_csv(tmp_path / "plain.csv", index=False)
    text = (tmp_path / "plain.csv").read_text()
    (tmp_path / "quoted.csv").write_text(text.replace("\nk3,", '\n"k3",', 1))
    # When both are scored
    for name in ("plain", "quoted"):
        run(
            jobs, "wine", input=str(tmp_path / f"{name}.csv"), output=str(tmp_path / name),
            format=BatchFormat.CSV, id_column="key", probabilities=True,
        )  # fmt: skip
    # Then the two reads wrote the same bytes: the model's own answers
    plain = (tmp_path / "plain" / "part-000000.csv").read_bytes()
    assert plain == (tmp_path / "quoted" / "part-000000.csv").read_bytes()
    output = read_outputs(tmp_path / "plain")
    assert numpy.array_equal(output["prediction"].to_numpy(), wine.model.predict(wine.test_rows))


def test_a_forest_saved_with_skops_or_joblib_is_scored_by_its_compiled_form_walked_by_sklearn(
    jobs: BatchJobs, registrar: Registrar, moons_model: Any, tmp_path: Path
) -> None:
    # Given the blog's forest registered as a skops file and as a joblib file
    registrar.register("moons-skops", skops.io.dumps(moons_model))
    registrar.register("moons-joblib", joblib_of(moons_model))
    frame = moons_csv(tmp_path / "in.csv", 1500)
    expected = moons_model.predict(frame[["data1", "data2"]].to_numpy())
    for name in ("moons-skops", "moons-joblib"):
        # When each scores the same file
        _, summary = run(
            jobs, name, input=str(tmp_path / "in.csv"), output=str(tmp_path / name),
            format=BatchFormat.CSV, id_column="id", probabilities=True,
        )  # fmt: skip
        assert summary.status is JobStatus.SUCCEEDED
    # Then both are their compiled forms, walked by scikit-learn's trees
    for name in ("moons-skops", "moons-joblib"):
        loaded = scoring_model(jobs.registry, name, 1, PicklePolicy.CONVERT)
        assert loaded.manifest.serving_format is ServingFormat.COMPILED
        assert isinstance(loaded.predictors.predict.__self__, NativelyWalkedTrees)
    # And both answer bit for bit as the model does
    by_skops = (tmp_path / "moons-skops" / "part-000000.csv").read_bytes()
    assert by_skops == (tmp_path / "moons-joblib" / "part-000000.csv").read_bytes()
    assert numpy.array_equal(read_outputs(tmp_path / "moons-skops")["prediction"], expected)


def test_an_id_column_that_is_also_a_feature_is_written_as_the_input_wrote_it(
    jobs: BatchJobs, registrar: Registrar, tmp_path: Path
) -> None:
    from sklearn.linear_model import LogisticRegression

    # Given a model fitted on named columns, one of which the job also takes as its id
    train = pandas.DataFrame({"store": [1, 2, 3, 4, 5, 6], "sales": [0.5, 1.5, 0.2, 2.5, 0.1, 3.0]})
    model = LogisticRegression().fit(train, [0, 1, 0, 1, 0, 1])
    registrar.register("stores", joblib_of(model))
    (tmp_path / "plain.csv").write_text("store,sales\n7,0.4\n8,2.2\n")
    (tmp_path / "quoted.csv").write_text('store,sales\n7,0.4\n"8",2.2\n')
    for name in ("plain", "quoted"):
        run(
            jobs, "stores", input=str(tmp_path / f"{name}.csv"), output=str(tmp_path / name),
            format=BatchFormat.CSV, id_column="store",
        )  # fmt: skip
    # Then both reads write the ids as written, and the same answers as the model's
    plain = (tmp_path / "plain" / "part-000000.csv").read_text()
    assert plain == (tmp_path / "quoted" / "part-000000.csv").read_text()
    assert plain.splitlines()[1].startswith("7,")
    expected = model.predict(pandas.DataFrame({"store": [7, 8], "sales": [0.4, 2.2]}))
    assert numpy.array_equal(read_outputs(tmp_path / "plain")["prediction"], expected)


def test_a_job_whose_run_never_started_can_be_submitted_again_under_its_id(
    jobs: BatchJobs, registrar: Registrar, moons_model: Any, tmp_path: Path
) -> None:
    from registry.errors import BatchJobsUnavailableError

    class Refusing:
        def start(self, job: Any, run: int) -> None:
            raise BatchJobsUnavailableError("the engine did not start it: submit it again")

        def state(self, job: Any, run: int) -> None:
            return None

    registrar.register("moons", joblib_of(moons_model))
    moons_csv(tmp_path / "in.csv", 50)
    request = dict(
        input=str(tmp_path / "in.csv"),
        output=str(tmp_path / "out"),
        format=BatchFormat.CSV,
        job_id="retry-me",
        id_column="id",
    )
    working = jobs.runner
    jobs.runner = Refusing()
    with pytest.raises(BatchJobsUnavailableError):
        jobs.submit("moons", **request)
    jobs.runner = working
    _, summary = run(jobs, "moons", **request)
    assert summary.status is JobStatus.SUCCEEDED and summary.rows_scored == 50
