"""The benchmarks' big-store generator (benchmarks/bigstore.py) at small size: its store obeys the store's rules.

It bypasses add_label for speed, so each label row is checked here with add_label's own validation
(``validate_value``), and labels/current_labels against the rule add_label keeps: the current label of a
(crop, attribute) is its newest history row. Status counts are checked against the history.
"""

from __future__ import annotations

import importlib
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from portrait_builder.store import Crop, CurrentLabel, Identity, Label
from portrait_builder.store.labels import validate_value

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bigstore():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        yield importlib.import_module("bigstore")
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.fixture
def store(bigstore, tmp_path, db_url):
    spec = bigstore.BigStoreSpec(crops=2000, labels=8000, videos=5, track_len=25, identities_per_video=4,
                                 distinct_images=40, images="rendered")
    project, info = bigstore.build(tmp_path / "big", spec, db_url=db_url, progress=False)
    yield project, info
    project.close()


def test_bigstore_invariants(store):
    project, info = store
    tax = project.taxonomy
    with project.session() as s:
        crops = s.execute(select(Crop.id, Crop.video_id, Crop.path, Crop.phash, Crop.phash_group)).all()
        labels = s.execute(select(Label.id, Label.crop_id, Label.attribute, Label.value, Label.annotator_id)
                           .order_by(Label.id)).all()
        current = s.execute(select(CurrentLabel.crop_id, CurrentLabel.attribute, CurrentLabel.value,
                                   CurrentLabel.label_id, CurrentLabel.annotator_id)).all()
        idents = {i.id: i for i in s.scalars(select(Identity))}
        # every history row passes add_label's validation (value in the taxonomy, identity of the crop's movie)
        for row in labels:
            assert validate_value(s, tax, row.crop_id, row.attribute, row.value) == row.value

    assert len(crops) == info.crops == 2000
    assert len(labels) == info.labels == 8000
    assert len(current) == info.current_labels
    assert len(labels) > len(current)  # some (crop, attribute) have superseded labels: real history

    # current = newest history row of each (crop, attribute), and nothing else
    newest = {}
    for row in labels:  # ordered by id: the last one seen wins
        newest[(row.crop_id, row.attribute)] = row
    assert {(c.crop_id, c.attribute) for c in current} == set(newest)
    for c in current:
        n = newest[(c.crop_id, c.attribute)]
        assert (c.label_id, c.value, c.annotator_id) == (n.id, n.value, n.annotator_id)

    # identities: exemplar of its own movie carrying the identity; gender of a crop = its identity's gender
    video_of = {c.id: c.video_id for c in crops}
    cur = {(c.crop_id, c.attribute): c.value for c in current}
    assert len(idents) == 5 * 4
    for i in idents.values():
        assert video_of[i.exemplar_crop_id] == i.video_id
        assert cur[(i.exemplar_crop_id, "identity")] == str(i.id)
        assert i.gender in tax.attribute("gender").value_names
    for (crop_id, attr), value in cur.items():
        if attr == "identity" and value.isdigit():
            assert cur[(crop_id, "gender")] == idents[int(value)].gender
    # every attribute gets labels; a multi-label attribute holds combined values too
    assert set(a for _, a in cur) == set(tax.names)
    assert any("|" in v for (_, a), v in cur.items() if a == "expression")

    # status counts = labelled crops per attribute from the history
    status = project.status()
    expected = Counter(a for (_, a), n in newest.items() if n.value is not None)
    assert status["crops"] == 2000 and status["identities"] == 20 and status["videos"] == 5
    for name in tax.names:
        assert status["attributes"][name]["labelled"] == expected[name]
        assert status["attributes"][name]["unlabelled"] == 2000 - expected[name]

    # pHash groups at threshold 0: same hash <=> same group; files are real 256x128 JPEGs
    by_hash = {}
    for c in crops:
        assert by_hash.setdefault(c.phash, c.phash_group) == c.phash_group
    assert len(set(by_hash.values())) == len(by_hash)
    for c in crops[::97]:
        with Image.open(project.crop_root / c.path) as im:
            assert im.format == "JPEG" and im.size == (128, 256)
    assert all((project.crop_root / c.path).is_file() for c in crops)

    # the store stays writable the ordinary way (on PostgreSQL the id sequences must be past the rows)
    from portrait_builder.annotation import add_annotator
    from portrait_builder.store.labels import add_label

    who = add_annotator(project, "after_generation", "annotator", "age")
    rec = project.run_write(lambda s: add_label(s, tax, crops[0].id, "age", "elderly", annotator_id=who.id))
    assert rec.id == info.labels + 1
    assert project.status()["attributes"]["age"]["labelled"] == expected["age"] + (cur.get((crops[0].id, "age")) is None)


def test_bigstore_rejects_too_few_labels(bigstore, tmp_path):
    spec = bigstore.BigStoreSpec(crops=500, labels=10, videos=2, identities_per_video=2, distinct_images=10,
                                 images="rendered", files=False)
    with pytest.raises(ValueError, match="fewer than"):
        bigstore.build(tmp_path / "small", spec, progress=False)
