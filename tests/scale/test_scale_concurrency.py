"""Many writers on one store: 8 processes x 500 labels, on SQLite and on PostgreSQL.

Every label is its own transaction (one annotator click). Nothing may be lost, no error may reach
the writer (busy stores are retried), and the current label of each (crop, attribute) must be the
newest one in the history whichever writer committed last. On PostgreSQL each process connects as
its own annotator's login, so the row-level security policies are in the path of every write.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import uuid

import pytest
from sqlalchemy import func, select

from portrait_builder.store import Crop, CurrentLabel, Label, Track, Video

WORKERS, PER_WORKER, CROPS = 8, 500, 60
ATTRIBUTES = [("age", ["child", "teenager", "young_adult", "middle_aged", "elderly"]),
              ("height", ["short", "average", "tall"]),
              ("expression", ["neutral", "happiness", "fear"])]

WRITER = textwrap.dedent(
    """
    import sys
    from portrait_builder.store import Project, add_label
    root, worker, n, crop_ids = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), list(map(int, sys.argv[4].split(",")))
    annotator_id = int(sys.argv[5])
    attributes = {attributes!r}
    project = Project.open(root)
    name, values = attributes[worker % len(attributes)]  # each annotator labels one attribute
    for i in range(n):
        crop = crop_ids[(i * 7 + worker) % len(crop_ids)]  # writers of one attribute overlap on the same crops
        value = values[(i * 3 + worker) % len(values)]
        project.run_write(lambda s: add_label(s, project.taxonomy, crop, name, value, annotator_id=annotator_id))
    print("ok", project.login.name if project.login else "-")
    """
).format(attributes=ATTRIBUTES)


@contextlib.contextmanager
def annotator_logins(project, people):
    """Annotators ``[(name, role, attribute)]``; on PostgreSQL each with its own login (dropped afterwards).
    Yields ``{name: (annotator id, environment for that person's process)}``."""
    from portrait_builder.annotation import add_annotator

    pg = not project.is_sqlite
    tag = uuid.uuid4().hex[:8]
    out, logins = {}, []
    try:
        for name, role, attribute in people:
            login = f"pb_conc_{tag}_{name}" if pg else None
            info = add_annotator(project, name, role, attribute, db_login=login, password=f"pw-{tag}-{name}" if pg else None)
            env = dict(os.environ)
            if login:
                logins.append(login)
                env["PORTRAIT_DB_USER"] = login  # the process connects as that person, as on their machine
            out[name] = (info.id, env)
        yield out
    finally:
        if logins:
            from sqlalchemy import text

            with project.engine.begin() as conn:  # the annotator rows go with the test database
                conn.execute(text("UPDATE annotators SET db_login = NULL"))
                for login in logins:
                    conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{login}"')


def one_track_movie(project, title: str, n_crops: int) -> list[int]:
    """A movie ``title`` of one track with ``n_crops`` crops (rows only, no files); returns the crop ids."""
    with project.write() as s:
        video = Video(path=f"/{title}.mp4", fingerprint=title.rjust(64, "0"), title=title)
        s.add(video)
        s.flush()
        track = Track(video_id=video.id, tracker_id=1, first_frame=0, last_frame=n_crops)
        s.add(track)
        s.flush()
        crops = [Crop(video_id=video.id, track_id=track.id, frame_index=i, x1=0, y1=0, x2=10, y2=20,
                      path=f"{title}{i}.jpg") for i in range(n_crops)]
        s.add_all(crops)
        s.flush()
        return [c.id for c in crops]


@pytest.mark.slow
def test_eight_processes_write_500_labels_each(project):
    crop_ids = ",".join(map(str, one_track_movie(project, "m", CROPS)))
    people = [(f"w{w}", "annotator", ATTRIBUTES[w % len(ATTRIBUTES)][0]) for w in range(WORKERS)]
    with annotator_logins(project, people) as who:
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(project.root), str(w), str(PER_WORKER), crop_ids,
                                   str(who[f"w{w}"][0])], env=who[f"w{w}"][1],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(WORKERS)]
        results = [p.communicate(timeout=600) for p in procs]
        logins = [out.split()[-1] for out, _ in results]
        assert logins == [who[f"w{w}"][1].get("PORTRAIT_DB_USER", "-") for w in range(WORKERS)]  # each its own login
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0 and out.split()[0] == "ok", err[-2000:]
        assert "Traceback" not in err
    with project.session() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == WORKERS * PER_WORKER
        newest = dict(
            ((crop_id, attr), label_id)
            for crop_id, attr, label_id in s.execute(
                select(Label.crop_id, Label.attribute, func.max(Label.id)).group_by(Label.crop_id, Label.attribute)
            )
        )
        current = {(c.crop_id, c.attribute): c for c in s.scalars(select(CurrentLabel))}
        assert set(current) == set(newest)
        for key, label_id in newest.items():
            assert current[key].label_id == label_id
            assert current[key].value == s.get(Label, label_id).value
    json.dumps(project.status())  # status still reads a consistent store


ANNOTATOR = textwrap.dedent(
    """
    import json, sys
    from portrait_builder.annotation import AnnotationService
    from portrait_builder.store import Project
    root, name = sys.argv[1], sys.argv[2]
    project = Project.open(root)
    seen = []
    with AnnotationService(project, name, batch=4) as svc:
        while (item := svc.next_item()) is not None:
            seen.append(item.id)
            svc.set_label(item.id, "age", "elderly")
    print(json.dumps(seen))
    """
)


@pytest.mark.slow
def test_eight_annotators_leasing_one_queue_never_share_a_crop(project):
    """8 annotator processes drain one attribute queue: every crop is served to exactly one of them."""
    n_crops = 240
    one_track_movie(project, "q", n_crops)
    names = [f"ann{w}" for w in range(WORKERS)]
    served = []
    with annotator_logins(project, [(name, "annotator", "age") for name in names]) as who:
        procs = [subprocess.Popen([sys.executable, "-c", ANNOTATOR, str(project.root), name], env=who[name][1],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in names]
        for p in procs:
            out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err[-2000:]
            served.append(json.loads(out))
    all_served = [c for s in served for c in s]
    assert len(all_served) == len(set(all_served)) == n_crops  # no crop served twice, none left over
    assert sum(1 for s in served if s) >= 2  # the queue really was shared
    with project.session() as s:
        assert s.scalar(select(func.count()).select_from(Label)) == n_crops
        assert s.scalar(select(func.count()).select_from(CurrentLabel).where(CurrentLabel.value == "elderly")) == n_crops
