"""Dataset commands: ``hash`` (pHash every crop), ``groups`` (near-duplicate groups), ``split``
(identity-disjoint train/query/gallery) and ``stats`` (long-tail statistics and plots)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "hash", help="store a 64-bit pHash per crop (imagehash-identical, batched)",
        description="Compute the perceptual hash of every crop that has none. Resumable: each batch is committed.",
    )
    p.add_argument("project")
    p.add_argument("--batch", type=int, default=2048, help="crops per committed batch (default 2048)")
    p.add_argument("--workers", type=int, default=None, help="worker processes for 1,024 crops or more (default: the CPUs this process may use)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_hash)

    from portrait_builder.defaults import PHASH_THRESHOLD as DEFAULT_THRESHOLD

    p = sub.add_parser(
        "groups", help="group near-duplicate crops by pHash Hamming distance",
        description="Connected components of crops whose pHashes differ in at most T bits; each crop's "
        "group id is the smallest crop id of its group.",
    )
    p.add_argument("project")
    p.add_argument("--threshold", "-t", type=int, default=DEFAULT_THRESHOLD,
                   help=f"maximum Hamming distance in bits (default {DEFAULT_THRESHOLD}; see docs/dataset.md)")
    p.add_argument("--within-video", action="store_true", help="only group crops of the same video")
    p.set_defaults(func=cmd_groups)

    from portrait_builder.defaults import SPLIT_BY as BY
    from portrait_builder.defaults import SPLIT_QUERIES_PER_IDENTITY as DEFAULT_QUERIES_PER_IDENTITY
    from portrait_builder.defaults import SPLIT_TEST_FRACTION as DEFAULT_TEST_FRACTION

    p = sub.add_parser(
        "split", help="identity-disjoint train / query / gallery split",
        description="Split crops into train, query and gallery (Table 2 of the paper) and store it under a name.",
    )
    p.add_argument("project")
    p.add_argument("--seed", type=int, required=True, help="random seed (the split is deterministic for a seed)")
    p.add_argument("--by", choices=BY, default="identity", help="draw test identities, or whole movies")
    p.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION,
                   help=f"fraction of identities (or movies' identities) in test (default {DEFAULT_TEST_FRACTION:.3f}, the paper's 426/1066)")
    p.add_argument("--queries-per-identity", type=int, default=DEFAULT_QUERIES_PER_IDENTITY,
                   help=f"at most this many queries per test identity, one per pHash group (default {DEFAULT_QUERIES_PER_IDENTITY})")
    p.add_argument("--unidentified-gallery-fraction", type=float, default=None,
                   help="share of crops without identity put in the gallery when splitting by identity (default: the test fraction)")
    p.add_argument("--name", default="default", help="split name (default 'default'); replaces a split of that name")
    p.set_defaults(func=cmd_split)

    p = sub.add_parser(
        "stats", help="LTS, Gini and imbalance per subset and attribute; bar charts",
        description="Print a Table-3-like table of long-tail statistics and write stats.json, stats.md and PNG charts.",
    )
    p.add_argument("project")
    p.add_argument("--k", type=float, default=0.2, help="LTS fraction k in (0, 1) (default 0.2)")
    p.add_argument("--split", default="default", help="which stored split defines the subsets (default 'default')")
    p.add_argument("--out", default=None, help="output folder (default PROJECT/stats)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.set_defaults(func=cmd_stats)


def cmd_hash(args) -> int:
    from portrait_builder.dedup import hash_project
    from portrait_builder.store import Project

    project = Project.open(args.project)
    report = hash_project(project, progress=not args.no_progress, batch=args.batch, workers=args.workers)
    rate = report.hashed / report.seconds if report.seconds > 0 else 0.0
    print(f"hashed {report.hashed} crop(s) in {report.seconds:.1f} s ({rate:.0f}/s); "
          f"{report.already} already had a pHash; {report.missing_files} missing or unreadable")
    return 0


def cmd_groups(args) -> int:
    import time

    from portrait_builder.dedup import group_project
    from portrait_builder.store import Project

    project = Project.open(args.project)
    t0 = time.perf_counter()
    r = group_project(project, threshold=args.threshold, within_video=args.within_video)
    print(f"{r.n_groups} group(s) over {r.n_crops - r.unhashed} hashed crop(s) at threshold {r.threshold}"
          f"{' within each video' if r.within_video else ''}: {r.n_multi} with more than one crop, "
          f"largest {r.largest}; {time.perf_counter() - t0:.1f} s")
    if r.unhashed:
        print(f"{r.unhashed} crop(s) without pHash have no group (run `portrait hash {args.project}`)")
    return 0


def cmd_split(args) -> int:
    from portrait_builder.split import SplitConfig, format_summary, split_project
    from portrait_builder.store import Project

    project = Project.open(args.project)
    config = SplitConfig(
        seed=args.seed, by=args.by, test_fraction=args.test_fraction,
        queries_per_identity=args.queries_per_identity,
        unidentified_gallery_fraction=args.test_fraction if args.unidentified_gallery_fraction is None
        else args.unidentified_gallery_fraction,
    )
    result = split_project(project, config, name=args.name)
    print(f"split {result['name']!r} (seed {args.seed}, by {args.by})")
    print(format_summary(result["summary"]))
    return 0


def cmd_stats(args) -> int:
    from pathlib import Path

    from portrait_builder.errors import UserError
    from portrait_builder.stats import dataset_stats, format_table, project_frame, write_stats
    from portrait_builder.store import Project

    if not 0 < args.k < 1:
        raise UserError(f"--k must be between 0 and 1, got {args.k}")
    project = Project.open(args.project)
    df = project_frame(project, split=args.split)
    if len(df) and df["subset"].isna().all():
        print(f"note: no split named {args.split!r}; only the 'all' rows are filled (run `portrait split`)")
    stats = dataset_stats(df, project.taxonomy, k=args.k)
    stats["split"] = args.split
    out = Path(args.out) if args.out else project.root / "stats"
    written = write_stats(stats, out)
    print(format_table(stats, markdown=args.markdown))
    print(f"wrote {len(written)} file(s) to {out}")
    return 0
