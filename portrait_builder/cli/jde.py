"""JDE commands: ``train-detector`` (train or fine-tune on MOT-format data) and ``export-mot`` (a project's
tracked boxes as JDE training data)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-detector",
        help="train or fine-tune a JDE detector on MOT-format data (JDE's images/ + labels_with_ids/ layout)",
        description=(
            "Train a JDE network with the published loss (uncertainty-weighted box, confidence and identity terms; "
            "anchors foreground at IoU > 0.5, background < 0.4). DATA is a list file of image paths or a directory "
            "in JDE's layout. Writes RUN/last.pt ({'epoch', 'model', 'optimizer'}) after every epoch; use it with "
            "`portrait ingest ... --detector jde --weights RUN/last.pt`."
        ),
    )
    p.add_argument("data", metavar="DATA", help="list file (*.train) or directory with images/ and labels_with_ids/")
    p.add_argument("--size", default="1088x608", help="1088x608 | 864x480 | 576x320 (published Darknet-53) or tiny-WxH (default 1088x608)")
    p.add_argument("--arch", default=None, help="alias of --size for the light variant, e.g. tiny-576x320")
    p.add_argument("--out", required=True, metavar="RUN", help="output directory for checkpoints")
    p.add_argument("--epochs", type=int, default=30, help="epochs (published: 30)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.01, help="base learning rate (published SGD: 0.01)")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="sgd (published) or adam")
    p.add_argument("--warmup", type=int, default=1000, help="burn-in iterations (published: 1000)")
    p.add_argument("--embedding-dim", type=int, default=None, help="embedding size (default 512; 128 for tiny-*)")
    p.add_argument("--weights", metavar="INIT", help="initial weights to fine-tune from (classifier ignored)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--resume", action="store_true", help="continue from RUN/last.pt")
    p.add_argument("--workers", type=int, default=0, help="data-loading worker processes")
    p.add_argument("--no-flip", action="store_true", help="disable the random horizontal flip")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (1 is fastest on a busy shared machine)")
    p.set_defaults(func=cmd_train_detector)

    p = sub.add_parser(
        "export-mot",
        help="write a project's tracked boxes as JDE/MOT training data",
        description=(
            "Export crops (boxes) and tracks (as identities) in JDE's layout: OUT/images/<video>/NNNNNN.jpg decoded "
            "from the source video, OUT/labels_with_ids/<video>/NNNNNN.txt and OUT/<name>.train. Only frames with "
            "crops are exported. Resumable."
        ),
    )
    p.add_argument("project", metavar="PROJECT")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--name", default="portrait", help="list file name (OUT/NAME.train)")
    p.add_argument("--video", type=int, action="append", dest="video_ids", help="only this video id (repeatable)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_export_mot)


def cmd_train_detector(args) -> int:
    from portrait_builder.detect.jde.model import resolve_arch
    from portrait_builder.detect.jde.train import TrainConfig, train
    from portrait_builder.errors import UserError

    size = args.arch or args.size
    resolve_arch(size)  # a bad name fails before any data is read
    if args.epochs < 1 or args.batch_size < 1 or args.lr <= 0:
        raise UserError("--epochs and --batch-size must be >= 1 and --lr > 0")
    cfg = TrainConfig(
        size=size, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        warmup_iters=args.warmup, embedding_dim=args.embedding_dim, device=args.device, workers=args.workers,
        flip=not args.no_flip,
    )
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    path = train(args.data, args.out, cfg, init_weights=args.weights, resume=args.resume)
    print(f"wrote {path} (size {size}); detect with: --detector jde --weights {path}")
    return 0


def cmd_export_mot(args) -> int:
    from portrait_builder.release.jde_export import export_mot

    summary = export_mot(args.project, args.out, name=args.name, video_ids=args.video_ids)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"exported {summary['boxes']} boxes of {summary['identities']} identities on {summary['frames']} frames "
              f"from {summary['videos']} videos; list file {summary['list']}")
    return 0
