"""The release manifest: file checksums, schema validation, canonical bytes.

The manifest holds no wall-clock time and no output path, and is serialised with sorted keys, so the
same store and configuration give a byte-identical ``manifest.json`` wherever the release is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path

import jsonschema
import numpy as np
from tqdm import tqdm

from portrait_builder.common import file_digest
from portrait_builder.resources import schemas_dir

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
_CHUNK = 1 << 20


# Names of one folder gathered this many at a time into a numpy bytes array before they are joined.
_NAME_BATCH = 65_536
# Inodes whose digest is remembered while checksumming (hard links of one file are read once).
INODE_CACHE = 65_536


def _sorted_names(folder: str) -> np.ndarray:
    """The entries of ``folder`` as UTF-8 bytes, sub-folders with a trailing "/", in the order their
    paths sort (a folder's "/" sorts as its paths do, e.g. "stats.json" < "stats/x").

    A numpy bytes array holds about 30 bytes a name where a Python string per name held about 90: the
    train folder of a 2,500,000-crop release has 1,500,000 names. Symbolic links to folders are left
    out, as os.walk neither lists nor enters them."""
    parts, batch = [], []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                if entry.is_symlink():
                    continue
                name = entry.name + "/"
            else:
                name = entry.name
            batch.append(name.encode("utf-8", "surrogateescape"))
            if len(batch) >= _NAME_BATCH:
                parts.append(np.array(batch, dtype=np.bytes_))
                batch = []
    parts.append(np.array(batch, dtype=np.bytes_))
    names = np.concatenate(parts)
    names.sort()  # bytewise: UTF-8 keeps code-point order, so this is Python's str order
    return names


def iter_release_files(root: Path) -> Iterator[str]:
    """Every regular file under ``root`` but the manifest, as POSIX paths relative to ``root``, in sorted
    order; one folder's names are held at a time."""
    base = os.fspath(root)

    def walk(rel: str) -> Iterator[str]:
        for raw in _sorted_names(os.path.join(base, rel) if rel else base):
            name = raw.decode("utf-8", "surrogateescape")
            if name.endswith("/"):
                yield from walk(rel + name)
            elif rel or name != MANIFEST_NAME:
                yield rel + name

    return walk("")


def count_release_files(root: Path) -> int:
    """How many files :func:`iter_release_files` yields (for a progress bar), without sorting names."""
    def count(folder: str) -> int:
        n = 0
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    n += 0 if entry.is_symlink() else count(entry.path)
                elif folder != base or entry.name != MANIFEST_NAME:
                    n += 1
        return n

    base = os.fspath(root)
    return count(base)


def release_files(root: Path) -> list[str]:
    """Every regular file under ``root`` but the manifest, as sorted POSIX paths relative to ``root``."""
    return list(iter_release_files(root))


def iter_checksums(root: Path, files: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(path, sha256) of each file of ``files``, in their order. Hard links to one inode are read once
    (the bytes are the same by definition) while the inode is among the last INODE_CACHE remembered:
    a bound, because every crop of a release made beside an earlier one has several links."""
    base = os.fspath(root)
    by_inode: OrderedDict[tuple[int, int], str] = OrderedDict()
    for rel in files:
        path = os.path.join(base, rel)
        st = os.stat(path)
        key = (st.st_dev, st.st_ino)
        digest = by_inode.get(key) if st.st_nlink > 1 else None
        if digest is None:
            digest = file_digest(path)
            if st.st_nlink > 1:
                by_inode[key] = digest
                if len(by_inode) > INODE_CACHE:
                    by_inode.popitem(last=False)
        yield rel, digest


def checksums(root: Path, files: Iterable[str], *, progress: bool = False, desc: str = "checksums") -> dict[str, str]:
    """sha256 of each file, as a dict (see :func:`iter_checksums`)."""
    files = list(files)
    return dict(tqdm(iter_checksums(root, files), total=len(files), desc=desc, unit="file",
                     disable=not progress, mininterval=0.5))


class _FilesView:
    """The entries of ``files`` that :func:`schema_problems` must see, gathered while they stream by.

    While the schema gives every entry of ``files`` the one rule ``{"$ref": "#/$defs/sha256"}`` (a
    pattern) besides its required names, an entry's verdict depends on its digest matching that
    pattern alone: the view keeps the required names, the first entry and every entry whose digest
    does not match (checked with the compiled pattern, microseconds an entry where jsonschema took
    two minutes at 2,500,000 files). Under any other schema of ``files`` it keeps every entry."""

    def __init__(self, schema: dict):
        rules = schema.get("properties", {}).get("files", {})
        ref = rules.get("additionalProperties", {})
        digest_rule = schema.get("$defs", {}).get("sha256", {})
        simple = (not set(rules) - {"description", "type", "required", "additionalProperties"}
                  and ref == {"$ref": "#/$defs/sha256"} and not set(digest_rule) - {"type", "pattern"})
        self.pattern = re.compile(digest_rule.get("pattern", "")) if simple else None
        self.required = set(rules.get("required", ()))
        self.files: dict[str, str] = {}

    def add(self, name: str, digest: str) -> None:
        if (self.pattern is None or not self.files or name in self.required
                or not isinstance(digest, str) or not self.pattern.search(digest)):
            self.files[name] = digest


def write_manifest(path: Path, body: dict, files: Iterable[tuple[str, str]], schema: dict) -> tuple[str, list[str]]:
    """Write ``dumps({**body, "files": dict(files)})`` to ``path`` without holding the files' dict or
    text (``files`` in sorted path order, as the sorted keys put them; see :func:`iter_checksums`).
    Returns the sha256 of the bytes written and the schema problems of the manifest (at most 5)."""
    marker = "\x00files\x00"  # a control character: escaped by JSON, it cannot occur elsewhere in the text
    head, tail = dumps({**body, "files": marker}).decode("utf-8").split(json.dumps(marker))
    view = _FilesView(schema)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        def emit(text: str) -> None:
            data = text.encode("utf-8")
            digest.update(data)
            out.write(data)

        emit(head)
        opened = False
        for name, sha in files:
            # json.dumps(indent=1) of a dict two levels down: "{", items after ",\n  ", "\n }"
            emit(("," if opened else "{") + "\n  " + json.dumps(name, ensure_ascii=False) + ": " + json.dumps(sha))
            opened = True
            view.add(name, sha)
        emit("\n }" if opened else "{}")
        emit(tail)
    return digest.hexdigest(), schema_problems({**body, "files": view.files}, schema, MANIFEST_NAME)


def validation_view(manifest: dict, schema: dict) -> dict:
    """The manifest as :func:`schema_problems` needs to see it: ``files`` cut to the entries that can
    change the verdict (see :class:`_FilesView`, which the writer fills while it streams the files)."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        return manifest
    view = _FilesView(schema)
    for name, digest in files.items():
        view.add(name, digest)
    return {**manifest, "files": view.files}


def dumps(manifest: dict) -> bytes:
    """Canonical manifest bytes: sorted keys, fixed indentation, trailing newline."""
    return (json.dumps(manifest, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def _schema(name: str) -> dict:
    return json.loads((schemas_dir() / name).read_text(encoding="utf-8"))


def manifest_schema() -> dict:
    return _schema("release_manifest.schema.json")


def annotations_schema() -> dict:
    return _schema("annotations.schema.json")


def schema_problems(instance, schema: dict, where: str, limit: int = 5) -> list[str]:
    """At most ``limit`` one-line JSON Schema violations of ``instance``."""
    validator = jsonschema.Draft202012Validator(schema)
    out = []
    for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        path = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"{where}: {path}: {err.message}")
        if len(out) >= limit:
            break
    return out
