"""Amazon S3 (or any S3-compatible endpoint) as the object store.

The default client is botocore's (what boto3.client makes, without importing boto3 and
s3transfer: about 70 ms of every cold start, for transfer helpers no store call uses), so
the standard AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL variables point it at another endpoint
such as moto's server.
"""

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from registry.errors import ObjectNotFoundError, ObjectTooLargeError, StoreUnavailableError
from registry.store.base import Versioned

# Bounded so a request fails well inside API Gateway's 29-second limit.
DEFAULT_CLIENT_CONFIG = Config(
    signature_version="s3v4",  # presigned upload URLs are SigV4, as every region accepts
    connect_timeout=2,
    read_timeout=5,
    retries={"max_attempts": 3, "mode": "standard"},
)
NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}
# 409: another conditional write to the same key is in flight; ask again.
CONDITIONAL_CONFLICT_RETRIES = 5
# S3 DeleteObjects takes at most 1,000 keys a call.
DELETE_BATCH = 1000


def default_s3_client() -> Any:
    from botocore.session import get_session

    return get_session().create_client("s3", config=DEFAULT_CLIENT_CONFIG)


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", s3_client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._owns_client = s3_client is None
        self.s3 = s3_client if s3_client is not None else default_s3_client()

    def renew(self) -> None:
        """Open new connections (after a SnapStart restore); an injected client is kept."""
        if self._owns_client:
            self.s3 = default_s3_client()

    def _unavailable(self, action: str, key: str, exc: Exception) -> StoreUnavailableError:
        return StoreUnavailableError(f"S3 {action} of {key!r} failed: {exc}")

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:
            return self.get_versioned(key).data
        with self._translated_errors("get", key):
            try:
                response = self.s3.get_object(
                    Bucket=self.bucket, Key=self.prefix + key, Range=f"bytes=0-{max_bytes}"
                )
            except ClientError as exc:
                if _error_code(exc) == "InvalidRange":  # an empty object has no byte 0
                    return b""
                raise
            data = bytes(response["Body"].read(max_bytes + 1))
        if len(data) > max_bytes:
            raise ObjectTooLargeError(f"the object at {key!r} is over {max_bytes} bytes")
        return data

    @contextmanager
    def _translated_errors(self, action: str, key: str) -> Iterator[None]:
        """botocore's errors as the store's: a missing key, or S3 being unavailable."""
        try:
            yield
        except ClientError as exc:
            if _error_code(exc) in NOT_FOUND_CODES:
                raise ObjectNotFoundError(f"no object at {key!r}") from exc
            raise self._unavailable(action, key, exc) from exc
        except BotoCoreError as exc:
            raise self._unavailable(action, key, exc) from exc

    def get_versioned(self, key: str) -> Versioned:
        with self._translated_errors("get", key):
            response = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return Versioned(bytes(response["Body"].read()), str(response["ETag"]))

    def size(self, key: str) -> int:
        with self._translated_errors("head", key):
            head = self.s3.head_object(Bucket=self.bucket, Key=self.prefix + key)
            return int(head["ContentLength"])

    def get_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        with self._translated_errors("get", key):
            try:
                response = self.s3.get_object(
                    Bucket=self.bucket, Key=self.prefix + key, Range=f"bytes={start}-{end - 1}"
                )
            except ClientError as exc:
                if _error_code(exc) == "InvalidRange":  # start is past the object's end
                    return b""
                raise
            return bytes(response["Body"].read())

    def put(self, key: str, data: bytes) -> None:
        with self._translated_errors("put", key):
            self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def create(self, key: str, data: bytes) -> bool:
        if self._conditional_put(key, data, IfNoneMatch="*"):
            return True
        return self._holds(key, data)

    def replace(self, key: str, data: bytes, etag: str) -> bool:
        return self._conditional_put(key, data, IfMatch=etag)

    def _conditional_put(self, key: str, data: bytes, **condition: str) -> bool:
        """True if S3 stored the bytes; False if the condition failed (412, or 404 for If-Match)."""
        for attempt in range(CONDITIONAL_CONFLICT_RETRIES):
            try:
                self.s3.put_object(
                    Bucket=self.bucket, Key=self.prefix + key, Body=data, **condition
                )
                return True
            except ClientError as exc:
                code = _error_code(exc)
                if code == "PreconditionFailed" or code in NOT_FOUND_CODES:
                    return False
                if code != "ConditionalRequestConflict":
                    raise self._unavailable("conditional put", key, exc) from exc
                time.sleep(0.05 * 2**attempt)
            except BotoCoreError as exc:
                raise self._unavailable("conditional put", key, exc) from exc
        raise StoreUnavailableError(f"S3 kept reporting conflicting writes to {key!r}")

    def _holds(self, key: str, data: bytes) -> bool:
        try:
            return self.get(key) == data
        except ObjectNotFoundError:
            return False

    def delete(self, keys: Sequence[str]) -> None:
        """In a versioned bucket, delete markers; the lifecycle rule expires the old bytes."""
        for start in range(0, len(keys), DELETE_BATCH):
            batch = keys[start : start + DELETE_BATCH]
            with self._translated_errors("delete", batch[0]):
                objects = [{"Key": self.prefix + key} for key in batch]
                answer = self.s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
                )
            if failed := answer.get("Errors"):
                raise StoreUnavailableError(
                    f"S3 did not delete {len(failed)} objects, first {failed[0].get('Key')!r} "
                    f"({failed[0].get('Code')}); retry"
                )

    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.s3.get_paginator("list_objects_v2")
        with self._translated_errors("list", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]

    def presign_put(self, key: str, expires_in: int) -> str:
        return self._presign("put_object", key, expires_in)

    def presign_get(self, key: str, expires_in: int) -> str:
        return self._presign("get_object", key, expires_in)

    def _presign(self, operation: str, key: str, expires_in: int) -> str:
        params = {"Bucket": self.bucket, "Key": self.prefix + key}
        return str(self.s3.generate_presigned_url(operation, Params=params, ExpiresIn=expires_in))
