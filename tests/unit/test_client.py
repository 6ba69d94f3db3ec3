"""The client signs /models requests with botocore's SigV4 signer, and only those."""

import json
from typing import Any

import numpy
import pandas
import pytest
from botocore.credentials import Credentials

from registry.client.registry_client import RegistryClient, _json_rows

EXECUTE_API = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"


def test_signing_is_on_for_execute_api_urls_and_off_for_the_local_server() -> None:
    deployed = RegistryClient(EXECUTE_API)
    assert (deployed.sign, deployed.region) == (True, "eu-west-1")
    assert RegistryClient("http://127.0.0.1:3000").sign is False


def test_models_requests_carry_a_sigv4_signature_for_execute_api() -> None:
    client = RegistryClient(EXECUTE_API, credentials=Credentials("AKIDEXAMPLE", "secret"))

    headers = client._signed_headers("GET", f"{EXECUTE_API}/models", None)

    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in authorization
    assert "SignedHeaders=" in authorization and "Signature=" in authorization
    assert "X-Amz-Date" in headers


def test_a_dataframe_becomes_records_with_missing_values_as_null_and_every_bit_kept() -> None:
    frame = pandas.DataFrame(
        {
            "x": [0.1 + 0.2, numpy.nan],
            "n": pandas.array([2**53 + 1, None], dtype="Int64"),
            "city": pandas.Categorical(["Seoul", None]),
            "ok": [True, False],
        }
    )

    rows = _json_rows(frame)

    assert rows == [
        {"x": 0.1 + 0.2, "n": 2**53 + 1, "city": "Seoul", "ok": True},
        {"x": None, "n": None, "city": None, "ok": False},
    ]
    assert json.loads(json.dumps(rows))[0]["x"] == 0.30000000000000004


def test_unnamed_columns_a_series_and_arrays_become_the_rows_they_stand_for() -> None:
    assert _json_rows(pandas.DataFrame([[1.5, 2]])) == [[1.5, 2]]
    assert _json_rows(pandas.Series([1.5, 2.5], name="x")) == [{"x": 1.5}, {"x": 2.5}]
    assert _json_rows(numpy.array([[1.0, numpy.nan]])) == [[1.0, None]]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (numpy.array([1.0, 2.0]), "rows must be 2-D"),
        (pandas.DataFrame({"x": [numpy.inf]}), "column 'x' holds inf"),
        (pandas.DataFrame({"when": pandas.to_datetime(["2026-11-30"])}), "column 'when' holds a"),
    ],
)
def test_what_json_cannot_carry_is_refused_before_sending_naming_its_column(
    rows: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        _json_rows(rows)
