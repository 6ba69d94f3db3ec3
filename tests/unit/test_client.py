"""The client signs /models requests with botocore's SigV4 signer, and only those."""

import json
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import numpy
import pandas
import pytest
from botocore.credentials import Credentials

from registry.client.registry_client import (
    ApiError,
    EncodedRows,
    RegistryClient,
    _encoded_batches,
    _json_rows,
)

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


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:abc", "http://h/x y", "http://[::1", "ftp://x", "127.0.0.1:3000"]
)
def test_a_url_no_request_could_use_is_refused_saying_what_to_pass(url: str) -> None:
    with pytest.raises(ApiError) as refused:
        RegistryClient(url)

    assert refused.value.code == "bad_url"
    assert "RegistryClient('http://127.0.0.1:3000')" in refused.value.next_step()
    assert "--url (or MODEL_REGISTRY_URL)" in refused.value.next_step("cli")


@pytest.mark.parametrize("key", ["ключ", "k\nx"])
def test_an_api_key_a_header_cannot_carry_is_refused(key: str) -> None:
    with pytest.raises(ApiError) as refused:
        RegistryClient("http://127.0.0.1:3000", api_key=key)

    assert refused.value.code == "bad_api_key"
    assert key not in str(refused.value)


def test_a_profile_that_does_not_exist_is_an_error_saying_how_to_sign_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    client = RegistryClient(EXECUTE_API)

    with pytest.raises(ApiError) as refused:
        client._signed_headers("GET", f"{EXECUTE_API}/models", None)

    assert refused.value.code == "no_credentials"
    assert "no-such-profile" in refused.value.message
    assert "aws sso login" in refused.value.next_step("cli")


NEXT_STEP_CODES = [
    "alias_not_found",
    "model_not_found",
    "unreachable",
    "version_archived",
    "version_in_use",
    "version_needs_conversion",
    "version_not_found",
    "wrong_url",
]


@pytest.mark.parametrize("code", NEXT_STEP_CODES)
def test_every_next_step_words_itself_without_the_facts_a_caller_did_not_gather(code: str) -> None:
    error = ApiError(409, code, "x", {"base": "http://h", "segment": "models"})

    assert str(error).startswith(f"409 {code}: x")
    assert error.next_step("cli")


@pytest.fixture
def not_a_registry() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that answers any request with a line that is not HTTP."""

    class Garbage(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.rfile.readline()
            self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n")

    server = socketserver.TCPServer(("127.0.0.1", 0), Garbage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_server_that_does_not_speak_http_is_named_as_not_the_registry(
    not_a_registry: str,
) -> None:
    with pytest.raises(ApiError) as refused:
        RegistryClient(not_a_registry).list_models()

    assert refused.value.code == "not_a_registry"
    assert "base URL" in refused.value.next_step("cli")


def test_batches_count_bytes_not_characters() -> None:
    rows = EncodedRows(None, [json.dumps(["서울 강남구 " * 20], ensure_ascii=False)] * 40)

    bodies = list(_encoded_batches(rows, False, 2_000, 10_000))

    assert all(len(body) <= 2_000 for body in bodies)
    assert sum(len(json.loads(body)["instances"]) for body in bodies) == 40
