"""Object stores: S3 and a local directory, chosen by REGISTRY_URI."""

from typing import Any

from registry.store.base import ObjectStore
from registry.store.local import LocalStore
from registry.store.s3 import S3Store

__all__ = ["LocalStore", "ObjectStore", "S3Store", "open_store"]


def open_store(uri: str, s3_client: Any = None, upload_url: str | None = None) -> ObjectStore:
    """'s3://bucket[/prefix]' opens an S3Store; anything else is a local directory path.

    upload_url only concerns a directory store: where the local API takes uploads.
    """
    if uri.startswith("s3://"):
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        return S3Store(bucket, prefix, s3_client=s3_client)
    return LocalStore(uri.removeprefix("file://"), upload_url=upload_url)
