"""The release manifest: file checksums, schema validation, canonical bytes.

The manifest holds no wall-clock time and no output path, and is serialised with sorted keys, so the
same store and configuration give a byte-identical ``manifest.json`` wherever the release is written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import jsonschema
from tqdm import tqdm

from portrait_builder.common import file_digest
from portrait_builder.resources import schemas_dir

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA_VERSION = 1
_CHUNK = 1 << 20


def release_files(root: Path) -> list[str]:
    """Every regular file under ``root`` but the manifest, as sorted POSIX paths relative to ``root``."""
    out = []
    base = os.fspath(root)
    for dirpath, _dirs, files in os.walk(base):
        # strings, not a Path per file: 2,500,000 Path objects and relative_to calls took over a minute
        rel_dir = os.path.relpath(dirpath, base).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else rel_dir + "/"
        out += [prefix + name for name in files if prefix or name != MANIFEST_NAME]
    return sorted(out)


def checksums(root: Path, files: Iterable[str], *, progress: bool = False, desc: str = "checksums") -> dict[str, str]:
    """sha256 of each file. Hard links to one inode are read once: the bytes are the same by definition."""
    files = list(files)
    base = os.fspath(root)
    by_inode: dict[tuple[int, int], str] = {}
    out: dict[str, str] = {}
    for rel in tqdm(files, desc=desc, unit="file", disable=not progress, mininterval=0.5):
        path = os.path.join(base, rel)
        st = os.stat(path)
        key = (st.st_dev, st.st_ino)
        digest = by_inode.get(key) if st.st_nlink > 1 else None
        if digest is None:
            digest = file_digest(path)
            if st.st_nlink > 1:
                by_inode[key] = digest
        out[rel] = digest
    return out


def validation_view(manifest: dict, schema: dict) -> dict:
    """The manifest as :func:`schema_problems` needs to see it, with ``files`` cut to one entry per
    distinct digest (plus the required ones) when that cannot change the verdict.

    jsonschema resolves the ``$ref`` of every entry of ``files`` (two minutes at 2,500,000 crops).
    While the schema of ``files`` only requires some names and gives every value one schema
    (``additionalProperties``), an entry's verdict depends on its value alone, and the crops of a
    release share few digests (hard links of one image, frames that repeat). A schema with any
    other rule on ``files`` gets every entry.
    """
    files = manifest.get("files")
    rules = schema.get("properties", {}).get("files", {})
    if not isinstance(files, dict) or set(rules) - {"description", "type", "required", "additionalProperties"}:
        return manifest
    required = set(rules.get("required", ()))
    kept: dict = {}
    seen: set = set()
    for name, digest in files.items():
        if name in required or not isinstance(digest, str) or digest not in seen:
            kept[name] = digest
            if isinstance(digest, str):
                seen.add(digest)
    return {**manifest, "files": kept}


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
