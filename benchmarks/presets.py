"""Presets and variants on the tune or report split of each real collection: mAPʳ, CorLocʳ, AUC of S and of the prior.

Usage::

    python benchmarks/presets.py --split tune --presets dino --variants "" "copeak_form=paper"
    python benchmarks/presets.py --split report --presets dino lite --collections Penn-Fudan balloon coco

Each (preset, variant) is trained afresh on each collection's split (one seed) and scored against the
ground truth; the table goes to stdout and to ``--out`` (Markdown, with the command). Collections:
``Penn-Fudan``, ``balloon`` and ``coco`` (the six categories of ``coco_val_subset``, each the images
with ≥ 2 instances of it, other objects present; the ``coco`` row averages the categories, as mAPʳ does).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from cosegkit import preset
from cosegkit.datasets import data_root, load_balloon, load_coco, load_pennfudan
from cosegkit.diagnostics import mean_auc
from cosegkit.evaluate import evaluate
from cosegkit.pipeline import cosegment

sys.path.insert(0, str(Path(__file__).parent))
from quality import COCO_CATEGORIES, parse_variant  # noqa: E402


def collections(name: str, split: str, max_images: int | None):
    """[(label, Collection)] for a collection name and split (``cosegkit.datasets.protocol``: tune, report or all)."""
    part = None if split == "all" else split
    if name == "Penn-Fudan":
        found = [("Penn-Fudan", load_pennfudan(data_root("PennFudanPed"), protocol_split=part))]
    elif name == "balloon":
        found = [("balloon", load_balloon(data_root("balloon"), protocol_split=part))]
    elif name == "coco":
        root = data_root("coco_val_subset")
        found = [
            (
                f"coco/{c}",
                load_coco(root / "annotations.json", root / "images", category=c, min_instances=2, protocol_split=part),
            )
            for c in COCO_CATEGORIES
        ]
    else:
        raise SystemExit(f"unknown collection {name!r}")
    if max_images:
        found = [(label, col.subset(range(min(max_images, len(col))))) for label, col in found]
    return found


def run(label, collection, preset_name, variant, seed):
    config = preset(preset_name, progress=False, seed=seed, **parse_variant(variant))
    t0 = time.perf_counter()
    result = cosegment(collection, config)
    seconds = time.perf_counter() - t0
    scores = evaluate(result.predictions(), collection.gt_masks)
    auc_s = mean_auc([r.saliency for r in result.images], collection.gt_masks)
    auc_p = mean_auc(result.fit.priors.numpy(), collection.gt_masks)
    copeak = [h["copeak"] for h in result.fit.history]
    return {
        **scores,
        "auc_s": auc_s,
        "auc_prior": auc_p,
        "seconds": seconds,
        "n": len(collection),
        "copeak": (copeak[0], copeak[-1]) if copeak else (np.nan, np.nan),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="report", choices=["tune", "report", "all"])
    parser.add_argument("--presets", nargs="+", default=["dino"])
    parser.add_argument(
        "--variants", nargs="+", default=[""], help='Config overrides, "key=value,key=value" ("" = none)'
    )
    parser.add_argument("--collections", nargs="+", default=["Penn-Fudan", "balloon", "coco"])
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="Markdown file (default benchmarks/results/presets_<split>.md)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    out = Path(args.out or Path(__file__).parent / "results" / f"presets_{args.split}.md")
    command = "python benchmarks/presets.py " + " ".join(
        f'"{a}"' if (" " in a or a == "" or "," in a) else a for a in (argv if argv is not None else sys.argv[1:])
    )
    header = [
        "preset",
        "variant",
        "collection",
        "images",
        "mAPʳ@0.25",
        "mAPʳ@0.5",
        "CorLocʳ",
        "AUC S",
        "AUC prior",
        "co-peak loss e1 → last",
        "s/image",
    ]
    lines = [
        f"# Presets on the {args.split} split",
        "",
        f"`{command}`",
        "",
        f"Started {datetime.now():%Y-%m-%d %H:%M}, seed {args.seed}, {torch.get_num_threads()} torch threads. "
        "`coco` averages its six categories (mAPʳ is a mean over categories).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + " --- |" * len(header),
    ]
    for preset_name in args.presets:
        for variant in args.variants:
            rows = []
            for name in args.collections:
                for label, col in collections(name, args.split, args.max_images):
                    row = run(label, col, preset_name, variant, args.seed)
                    rows.append((label, row))
                    lines.append(table_line(preset_name, variant, label, row))
                    print(lines[-1], flush=True)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text("\n".join(lines) + "\n")  # after every row: an interrupted run keeps its rows
                coco = [r for label, r in rows if label.startswith("coco/")]
                if name == "coco" and coco:
                    mean = {k: float(np.mean([r[k] for r in coco])) for k in coco[0] if k != "copeak"}
                    mean["copeak"] = tuple(np.mean([r["copeak"] for r in coco], axis=0))
                    mean["n"] = sum(r["n"] for r in coco)
                    mean["seconds"] = sum(r["seconds"] for r in coco)
                    lines.append(table_line(preset_name, variant, "**coco (mean of 6)**", mean))
                    print(lines[-1], flush=True)
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(lines) + "\n")
    print(f"written to {out}")


def table_line(preset_name, variant, label, r):
    return (
        f"| {preset_name} | {variant or '—'} | {label} | {r['n']} | {r['mAP_r@0.25']:.3f} | {r['mAP_r@0.5']:.3f} | "
        f"{r['CorLoc_r']:.3f} | {r['auc_s']:.3f} | {r['auc_prior']:.3f} | "
        f"{r['copeak'][0]:.3f} → {r['copeak'][1]:.3f} | {r['seconds'] / r['n']:.2f} |"
    )


if __name__ == "__main__":
    main()
