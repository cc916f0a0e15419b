"""What database-enforced roles cost an annotator's click on PostgreSQL (revision 0003).

Two annotators of one attribute label the same kind of queue through the same service code
(``next_item`` + ``set_label``: a claim with row locks, a lease insert, a label insert, the current
label through ``portrait_set_current``, the lease delete):

* baseline: the store's owner acting for an annotator (row-level security bypassed);
* team: the annotator's own login (every statement goes through the group role's privileges and the
  row-level security policies).

Clicks alternate in blocks between the two so load on a shared machine hits both alike. Prints
median and p95 ms per click and the ratio team / baseline.

    python benchmarks/team_rls.py --admin-url postgresql://postgres@127.0.0.1:54329/postgres [--clicks 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
from sqlalchemy.engine import make_url

from portrait_builder.annotation import AnnotationService, add_annotator
from portrait_builder.store import Project
from portrait_builder.store.security import group_role_names
from portrait_builder.testing.annotation_sample import populate_sample

BLOCK = 20


def _admin(url: str):
    return psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
                           autocommit=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--admin-url", default=os.environ.get("PORTRAIT_TEST_PG_URL"),
                    help="a superuser URL of the server (default: PORTRAIT_TEST_PG_URL)")
    ap.add_argument("--clicks", type=int, default=300, help="clicks per side (default 300)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not args.admin_url:
        ap.error("give --admin-url or set PORTRAIT_TEST_PG_URL")
    tag = uuid.uuid4().hex[:8]
    database, owner, login = f"pb_bench_rls_{tag}", f"pb_bench_owner_{tag}", f"pb_bench_ann_{tag}"
    roles = [login, owner, *group_role_names(database).values()]
    with _admin(args.admin_url) as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN CREATEROLE')
        conn.execute(f'CREATE DATABASE "{database}" OWNER "{owner}"')
    url = make_url(args.admin_url).set(username=owner, database=database).render_as_string(hide_password=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            project = Project.init(Path(tmp) / "p", db_url=url)
            # rendered crops: 2 * clicks + slack, so neither side runs out of unlabelled crops
            tracks = max(2, (2 * args.clicks + 4 * BLOCK) // 10 + 1)  # 5 crops per rendered track, 2 videos
            populate_sample(project, [], max_tracks=tracks, rendered_videos=2)
            add_annotator(project, "owner_side", "annotator", "age")
            add_annotator(project, "login_side", "annotator", "age", db_login=login, password=f"pw-{tag}-x")
            project.close()
            baseline_project = Project.open(Path(tmp) / "p")
            os.environ["PORTRAIT_DB_USER"] = login
            team_project = Project.open(Path(tmp) / "p")
            del os.environ["PORTRAIT_DB_USER"]
            assert team_project.login.name == login and not team_project.login.privileged
            sides = {"baseline": AnnotationService(baseline_project, "owner_side"),
                     "team": AnnotationService(team_project, None)}
            times: dict[str, list[float]] = {k: [] for k in sides}
            for svc in sides.values():  # warm-up: first claim, caches, connections
                svc.set_label(svc.next_item().id, "age", "elderly")
            while min(len(v) for v in times.values()) < args.clicks:
                for name, svc in sides.items():
                    for _ in range(BLOCK):
                        t0 = time.perf_counter()
                        item = svc.next_item()
                        svc.set_label(item.id, "age", "young_adult")
                        times[name].append(time.perf_counter() - t0)
            for svc in sides.values():
                svc.close()
            baseline_project.close()
            team_project.close()
    finally:
        with _admin(args.admin_url) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))
            conn.execute(f'DROP DATABASE IF EXISTS "{database}"')
            for role in roles:
                conn.execute(f'DROP ROLE IF EXISTS "{role}"')
    stats = {k: {"median_ms": 1000 * float(np.median(v[:args.clicks])), "p95_ms": 1000 * float(np.percentile(v[:args.clicks], 95))}
             for k, v in times.items()}
    result = {
        "clicks": args.clicks,
        **{f"{k}_{m}": round(val, 2) for k, s in stats.items() for m, val in s.items()},
        "ratio_median": round(stats["team"]["median_ms"] / stats["baseline"]["median_ms"], 3),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.clicks} clicks per side on {result['machine']}")
        print(f"{'':<10} {'median ms':>10} {'p95 ms':>8}")
        for k, s in stats.items():
            print(f"{k:<10} {s['median_ms']:>10.2f} {s['p95_ms']:>8.2f}")
        print(f"team / baseline (median): {result['ratio_median']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
