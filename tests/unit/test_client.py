"""The client signs /models requests with botocore's SigV4 signer, and only those."""

from botocore.credentials import Credentials

from registry.client import RegistryClient

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
