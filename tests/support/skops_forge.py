"""skops files written by hand: the schema nodes a crafted file can hold, where skops.io.dump
would never write them (a name that is a function, not a class; a member read many times)."""

import io
import json
import zipfile
from typing import Any

import skops.io


def json_node(value: Any) -> dict[str, Any]:
    return {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
    }


def sequence_node(kind: str, items: list[Any]) -> dict[str, Any]:
    loader = {"list": "ListNode", "tuple": "TupleNode"}[kind]
    return {"__class__": kind, "__module__": "builtins", "__loader__": loader, "content": items}


def empty_dict_node() -> dict[str, Any]:
    return {
        "__class__": "dict",
        "__module__": "builtins",
        "__loader__": "DictNode",
        "content": {},
        "key_types": sequence_node("list", []),
    }


def reduce_node(loader: str, dotted: str, args: list[Any]) -> dict[str, Any]:
    """A node that calls module.name(*args) while loading (TreeNode, LossNode)."""
    reduce = {"args": sequence_node("tuple", args)}
    return named_node(loader, dotted, __reduce__=reduce, content=empty_dict_node())


def named_node(loader: str, dotted: str, **fields: Any) -> dict[str, Any]:
    """A node of this kind naming module.name (what skops resolves when it loads it)."""
    module, _, name = dotted.rpartition(".")
    return {"__class__": name, "__module__": module, "__loader__": loader, **fields}


def array_node(member: str) -> dict[str, Any]:
    """A numpy array read from this member of the archive."""
    return named_node("NdArrayNode", "numpy.ndarray", type="numpy", file=member)


def with_attribute(model: Any, name: str, node: dict[str, Any]) -> bytes:
    """The model saved with skops, with one more attribute whose node is `node`."""
    archive = zipfile.ZipFile(io.BytesIO(skops.io.dumps(model)))
    schema = json.loads(archive.read("schema.json"))
    schema["content"]["content"][name] = node
    schema["content"]["key_types"]["content"].append(named_node("TypeNode", "builtins.str"))
    return _rewritten(archive, schema)


def members_of(data: bytes) -> dict[str, int]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {member.filename: member.file_size for member in archive.infolist()}


def _rewritten(archive: zipfile.ZipFile, schema: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as written:
        for member in archive.infolist():
            if member.filename == "schema.json":
                written.writestr("schema.json", json.dumps(schema))
            else:
                written.writestr(member.filename, archive.read(member))
    return out.getvalue()
