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
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if rel != MANIFEST_NAME:
                out.append(rel)
    return sorted(out)


def checksums(root: Path, files: Iterable[str], *, progress: bool = False, desc: str = "checksums") -> dict[str, str]:
    """sha256 of each file. Hard links to one inode are read once: the bytes are the same by definition."""
    files = list(files)
    by_inode: dict[tuple[int, int], str] = {}
    out: dict[str, str] = {}
    for rel in tqdm(files, desc=desc, unit="file", disable=not progress, mininterval=0.5):
        path = root / rel
        st = path.stat()
        key = (st.st_dev, st.st_ino)
        digest = by_inode.get(key) if st.st_nlink > 1 else None
        if digest is None:
            digest = file_digest(path)
            if st.st_nlink > 1:
                by_inode[key] = digest
        out[rel] = digest
    return out


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
