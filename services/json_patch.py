"""A JSON patch (RFC 6902) applied on the client, for the diff a server's dry run cannot give
(a revert's preview shows what the recorded inverse will make of the live object)."""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]


def patched(live: Obj, ops: list[Obj]) -> Obj | None:
    """`live` with a JSON patch applied, for the diff a dry run cannot give; None when an op
    does not apply (the server's dry run then says why)."""
    doc = copy.deepcopy(live)
    try:
        for op in ops:
            tokens = [
                t.replace("~1", "/").replace("~0", "~") for t in str(op["path"]).split("/")[1:]
            ]
            parent: Any = doc
            for token in tokens[:-1]:
                parent = parent[int(token)] if isinstance(parent, list) else parent[token]
            last = tokens[-1]
            if isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if op["op"] == "remove":
                    del parent[index]
                elif op["op"] == "add":
                    parent.insert(index, copy.deepcopy(op["value"]))
                else:
                    parent[index] = copy.deepcopy(op["value"])
            elif op["op"] == "remove":
                del parent[last]
            elif op["op"] in ("add", "replace"):
                parent[last] = copy.deepcopy(op["value"])
    except (KeyError, IndexError, ValueError, TypeError):
        return None
    return doc
