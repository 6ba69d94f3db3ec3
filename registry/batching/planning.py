"""Where a job's rows are, and how they split into parts.

A row is one line, as SageMaker Batch Transform's SplitType=Line has it: a CSV's fields
may be quoted, but a quoted field may not hold a line break. Splitting by lines lets a
part be a byte range that any worker reads on its own, and a row's position be counted
once, here, for the whole input.

plan_parts reads each input object once, in READ_BYTES ranges, and notes where every
rows_per_part-th row starts (numpy finds the line breaks of a range at memory speed): the
deployed job does it in the state machine's first step, the local job before its pool.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy

from registry.batching.jobs import BatchFormat, InputPart
from registry.errors import BatchInputError, ObjectNotFoundError
from registry.store import LocalStore, S3Store
from registry.store.base import ObjectStore

READ_BYTES = 8 * 1024 * 1024
# A CSV header longer than this is refused: it would be read by every part.
MAX_HEADER_BYTES = 1024 * 1024
NEWLINE = 10


@dataclass(frozen=True)
class Location:
    """An input or output place: a store, and a key (an object) or a prefix in it."""

    store: ObjectStore
    key: str
    uri: str


def open_location(uri: str, s3_client: Any = None, local: bool = False) -> Location:
    """s3://bucket/key; with local (the local server), an absolute path too."""
    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise BatchInputError(f"{uri!r} names no bucket: give s3://bucket/key")
        return Location(S3Store(bucket, "", s3_client=s3_client), key, uri)
    if not local:
        raise BatchInputError(
            f"{uri[:200]!r} is not an S3 location: give s3://bucket/key (a deployed registry "
            "reads and writes S3 only)"
        )
    path = PurePosixPath(uri.removeprefix("file://"))
    if not path.is_absolute():
        raise BatchInputError(f"{uri[:200]!r} is a relative path: give an absolute one")
    key = str(path.relative_to("/")) + ("/" if uri.endswith("/") else "")
    return Location(LocalStore("/"), key, uri)


def input_keys(location: Location) -> list[str]:
    """The objects a job reads: the one the location names, else every non-empty object
    under it as a prefix, in key order (which is the input's order)."""
    key = location.key
    if key and not key.endswith("/"):
        try:
            if location.store.size(key) > 0:
                return [key]
        except ObjectNotFoundError:
            pass
        key += "/"
    keys = [
        found
        for found in location.store.list_keys(key)
        if not found.endswith("/") and location.store.size(found) > 0
    ]
    if not keys:
        raise BatchInputError(
            f"nothing to read at {location.uri}: give an object with rows, or a prefix "
            "holding such objects"
        )
    return keys


def read_header(store: ObjectStore, key: str) -> tuple[str, int]:
    """A CSV object's first line (without its line break), and where its rows start."""
    head = store.get_range(key, 0, MAX_HEADER_BYTES + 1)
    end = head.find(b"\n")
    if end < 0:
        if len(head) > MAX_HEADER_BYTES:
            raise BatchInputError(f"{key}: the header is over {MAX_HEADER_BYTES} bytes")
        end = len(head)
    try:
        text = head[:end].decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as exc:
        raise BatchInputError(f"{key}: the header is not UTF-8 text") from exc
    return text, min(end + 1, len(head))


def plan_parts(
    store: ObjectStore, keys: list[str], format: BatchFormat, rows_per_part: int
) -> list[InputPart]:
    """The input's parts, in input order: each holds rows_per_part rows of one object (its
    last, fewer)."""
    parts: list[InputPart] = []
    first_row = 0
    for key in keys:
        header_end = read_header(store, key)[1] if format is BatchFormat.CSV else 0
        starts, rows, size = _row_starts(store, key, header_end, rows_per_part)
        for index, start in enumerate(starts):
            end = starts[index + 1] if index + 1 < len(starts) else size
            count = min(rows_per_part, rows - index * rows_per_part)
            parts.append(
                InputPart(
                    part=len(parts),
                    key=key,
                    start=start,
                    end=end,
                    header_end=header_end,
                    first_row=first_row,
                    rows=count,
                )
            )
            first_row += count
    return parts


def _row_starts(
    store: ObjectStore, key: str, header_end: int, rows_per_part: int
) -> tuple[list[int], int, int]:
    """Where rows 0, rows_per_part, 2 * rows_per_part, ... start; how many rows; the size."""
    starts: list[int] = []
    rows = 0  # rows ended by a line break so far
    last_byte = NEWLINE
    offset = header_end
    for chunk in _ranges(store, key, header_end):
        if not starts:
            starts.append(header_end)
        breaks = numpy.flatnonzero(numpy.frombuffer(chunk, dtype=numpy.uint8) == NEWLINE)
        # Row r + 1 starts after the break that ends row r: keep those that begin a part.
        ended = rows + numpy.arange(1, len(breaks) + 1)
        beginning = breaks[(ended % rows_per_part) == 0] + 1 + offset
        starts.extend(int(start) for start in beginning)
        rows += len(breaks)
        offset += len(chunk)
        last_byte = chunk[-1]
    size = offset
    if last_byte != NEWLINE:
        rows += 1  # the last row has no line break
    # A part would start at the very end only after a final line break: no rows there.
    while starts and starts[-1] >= size:
        starts.pop()
    return starts, rows, size


def _ranges(store: ObjectStore, key: str, start: int) -> Iterator[bytes]:
    while True:
        chunk = store.get_range(key, start, start + READ_BYTES)
        if not chunk:
            return
        yield chunk
        start += len(chunk)
