"""``portrait train`` and ``portrait evaluate``: the multi-task Portrait Interpretation baseline."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="train the baseline on a release",
        description="Train the multi-task baseline (feature space split, BNNeck per task) on a release's "
                    "train subset. Writes RUN/last.pt after every epoch and RUN/history.json. Several GPUs: "
                    "torchrun --nproc_per_node N -m portrait_builder train ...")
    p.add_argument("release", help="release folder (annotations.parquet + taxonomy.yaml + crops)")
    p.add_argument("--config", default="fss_br_uncer",
                   help="pipeline YAML, or a variant name from pipelines/ (single_task, sim_mtl, fss, fss_triplet, "
                        "fss_br, fss_br_uncer, pk, shuffle, r50, tiny); default: %(default)s")
    p.add_argument("--out", required=True, help="run folder for checkpoints")
    p.add_argument("--pretrained", help="local backbone weights (.pt/.pth state dict); never downloaded")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--epochs", type=int, help="override the config's number of epochs")
    p.add_argument("--batch-size", type=int, help="override the config's batch size")
    p.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    p.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "evaluate", help="evaluate a baseline checkpoint on a release",
        description="Print a Table-4-style row (percent): macro mAP and rank-1/5/10, micro mAP/rank-1, "
                    "macro F1 per attribute, ReID/App/Pos/Emo and PIQ. Re-id ignores gallery crops in "
                    "the query's pHash group.")
    e.add_argument("release", help="release folder")
    e.add_argument("--checkpoint", required=True, help="checkpoint written by portrait train (RUN/last.pt)")
    e.add_argument("--json", dest="json_out", help="also write the row (fractions) to this JSON file")
    e.add_argument("--device", help="torch device (default: cuda when present, else cpu)")
    e.set_defaults(func=cmd_evaluate)


def cmd_train(args) -> int:
    import os

    from portrait_builder.train import load_config, train

    config = load_config(args.config, epochs=args.epochs, batch_size=args.batch_size)
    result = train(args.release, config, args.out, pretrained=args.pretrained, resume=args.resume,
                   device=args.device)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 0
    if result.history:
        last = result.history[-1]
        print(f"trained {config.name} for {last['epoch']} epoch(s); last epoch loss {last.get('loss', float('nan')):.4f}")
    print(f"checkpoint: {result.checkpoint}")
    return 0


def cmd_evaluate(args) -> int:
    import json
    import math
    from pathlib import Path

    from portrait_builder.train import evaluate, format_row

    row = evaluate(args.release, args.checkpoint, device=args.device)
    print(format_row(row))
    if args.json_out:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        Path(args.json_out).write_text(json.dumps(clean, indent=1) + "\n", encoding="utf-8")
    return 0
