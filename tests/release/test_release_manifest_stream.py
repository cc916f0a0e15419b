"""The manifest written as a stream: the same bytes as ``json.dumps`` of the whole dict (the reference),
files listed in the order ``sorted`` gives, checksums against hashlib, the schema verdict kept."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from portrait_builder.release import manifest as mf


def _tree(root):
    """Names whose order needs care: "stats.json" sorts before the folder "stats/", spaces, non-ASCII,
    a nested manifest.json (listed) beside the root one (not listed), empty folders."""
    files = {
        "manifest.json": b"{}", "stats.json": b"1", "stats/a.csv": b"2", "stats/z/deep.txt": b"3",
        "a b.txt": b"4", "\u00e9t\u00e9.md": b"5", "sub/manifest.json": b"6", "bounding_box_train/-1_c1s1_000001_01.jpg": b"7",
        "bounding_box_train/0001_c1s1_000001_01.jpg": b"8", "bounding_box_train/0001_c1s1_000001_02.jpg": b"8",
        "Zeta.txt": b"9", "stats0": b"10",
    }  # fmt: skip
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (root / "empty").mkdir()
    return files


def _walk_sorted(root):
    out = []
    for dirpath, _dirs, names in os.walk(root):
        rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
        out += [("" if rel == "." else rel + "/") + n for n in names]
    return sorted(p for p in out if p != "manifest.json")


def test_files_come_in_sorted_path_order(tmp_path, monkeypatch):
    files = _tree(tmp_path)
    monkeypatch.setattr(mf, "_NAME_BATCH", 2)  # names joined from several batches
    got = list(mf.iter_release_files(tmp_path))
    assert got == _walk_sorted(tmp_path) == sorted(set(files) - {"manifest.json"})
    assert got.index("stats.json") < got.index("stats/a.csv") < got.index("stats0")
    assert mf.count_release_files(tmp_path) == len(got) and mf.release_files(tmp_path) == got


def test_checksums_against_hashlib_with_links_past_the_cache(tmp_path, monkeypatch):
    files = _tree(tmp_path)
    for k in range(3):  # hard links of one file, more than the cache remembers
        os.link(tmp_path / "a b.txt", tmp_path / f"link{k}.txt")
    monkeypatch.setattr(mf, "INODE_CACHE", 1)
    got = dict(mf.iter_checksums(tmp_path, mf.iter_release_files(tmp_path)))
    expect = {rel: hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest() for rel in _walk_sorted(tmp_path)}
    assert got == expect and got["link2.txt"] == hashlib.sha256(files["a b.txt"]).hexdigest()


@pytest.mark.parametrize("n_files", [0, 1, 5])
def test_streamed_manifest_is_the_bytes_of_dumps(tmp_path, n_files):
    body = {"version": "1.0.0", "zeta": [1, {"b": None, "a": "\u00e9"}], "counts": {"crops": 3}, "alpha": "x"}
    files = {f"f\u00fcr/{i:03d} \"q\".jpg": hashlib.sha256(bytes([i])).hexdigest() for i in range(n_files)}
    path = tmp_path / "manifest.json"
    sha, problems = mf.write_manifest(path, body, sorted(files.items()), {"type": "object"})
    reference = mf.dumps({**body, "files": files})
    assert path.read_bytes() == reference and sha == hashlib.sha256(reference).hexdigest() and problems == []
    assert json.loads(reference)["files"] == files


def test_streamed_manifest_keeps_the_schema_verdict(built, project, tmp_path):
    """A real release's manifest passes; a bad digest among many good ones and a missing required name
    are reported as the whole manifest reports them; a schema with other rules on files sees every entry."""
    from portrait_builder.release import ReleaseConfig, write_release

    out = write_release(project, "1.0.0", tmp_path / "rel", ReleaseConfig(progress=False))
    manifest = json.loads((out / mf.MANIFEST_NAME).read_bytes())
    body = {k: v for k, v in manifest.items() if k != "files"}
    schema = mf.manifest_schema()
    sha, problems = mf.write_manifest(tmp_path / "same.json", body, sorted(manifest["files"].items()), schema)
    assert problems == [] and (tmp_path / "same.json").read_bytes() == (out / mf.MANIFEST_NAME).read_bytes()
    required = schema["properties"]["files"]["required"]
    files = {f"bounding_box_train/{i:04d}.jpg": hashlib.sha256(bytes([i % 256])).hexdigest() for i in range(600)}
    files.update({name: "b" * 64 for name in required[1:]})
    files["bounding_box_train/0300.jpg"] = "not a digest"
    _, problems = mf.write_manifest(tmp_path / "bad.json", body, sorted(files.items()), schema)
    assert problems == mf.schema_problems({**body, "files": files}, schema, mf.MANIFEST_NAME)
    assert any("not a digest" in p for p in problems) and any(required[0] in p for p in problems)
    strict = {**schema, "properties": {**schema["properties"],
                                       "files": {**schema["properties"]["files"], "maxProperties": 5}}}
    view = mf._FilesView(strict)
    for name, digest in files.items():
        view.add(name, digest)
    assert view.files == files
