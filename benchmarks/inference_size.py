"""Does a finer peak grid help? One trained network read at several inference sizes.

The network trains at ``image_size`` (448: a 14 × 14 grid). At inference it can read the
image larger (``Config.inference_size``): 576 gives an 18 × 18 grid, 704 a 22 × 22 one, so small
objects that share a cell at 448 can get a peak each. Training is untouched, so each row
trains once and is scored at every size:

    full        the preset (ℓs + ℓt + ℓa)
    saliency    λt = λa = 0: the network only imitates the prior

Columns as in ``ablation.py``: mAPʳ@0.25, mAPʳ@0.5, CorLocʳ, AUC of S against the union of the
instances, used peaks per image, ground-truth instances hit by a used peak, and the seconds of
training and of everything after it (co-saliency, heat maps, ranking; proposals are shared).

    python benchmarks/inference_size.py --collections balloon --rows full saliency --sizes 448 576 704
    python benchmarks/inference_size.py --collections Penn-Fudan --rows full --sizes 448 576
    python benchmarks/inference_size.py --max-images 6 --epochs 2 --sizes 448 576 --out /tmp/inference_size_smoke.md

The table is written after every measurement (default ``benchmarks/results/inference_size.md``).
"""

from __future__ import annotations

import platform
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from ablation import Shared, builtin_rows, infer  # noqa: E402
from quality import collection_parser, config_summary, load, preset_of, timed  # noqa: E402

from cosegkit import atomic  # noqa: E402
from cosegkit.diagnostics import peak_statistics, saliency_scores  # noqa: E402
from cosegkit.evaluate import evaluate  # noqa: E402
from cosegkit.train import fit  # noqa: E402

ROWS = ("full", "saliency")  # ablation.py's rows of these names: their labels and config changes
HEADER = (
    "| collection | row | seed | inference size (grid) | mAPʳ@0.25 | mAPʳ@0.5 | CorLocʳ | AUC of S "
    "| used peaks / image | GT hit by a peak | training s | inference s |"
)


def write(path: Path, lines: list[str], command: str, started: str, base, wall: float) -> None:
    text = [
        "# One trained network read at several inference sizes",
        "",
        f"Command: `{command}`",
        "",
        f"Date: {started}; wall time so far {wall / 60:.1f} min. Machine: {platform.machine()}, "
        f"torch threads {torch.get_num_threads()}, torch {torch.__version__}. Seconds are wall-clock on a machine "
        "that may be shared with other jobs: compare rows of one run.",
        "",
        f"Config: `{config_summary(base)}`; each row changes only what its label says, and each size only "
        "`inference_size` (training is the same run).",
        "",
        HEADER,
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *lines,
        "",
        f"Grid = inference size / {base.feature_stride} cells a side (stride-{base.feature_stride} features).",
        "**GT hit by a peak**: fraction of ground-truth instances holding a used peak's cell centre.",
        "**inference s**: co-saliency, heat maps and ranking for the whole collection.",
        "",
    ]
    atomic.write_text(path, "\n".join(text))


def main(argv=None):
    parser = collection_parser(__doc__, ["Penn-Fudan", "balloon"], split=False)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=int,
        default=[448, 576, 704],
        help="inference sizes (multiples of the feature stride, 32 in the presets)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=8, help="images per cosegment call (bounds heat-map memory)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "inference_size.md")
    args = parser.parse_args(argv)
    base, _ = preset_of(args, seed=args.seed)
    stride = base.feature_stride
    if any(size % stride for size in args.sizes):
        parser.error(f"--sizes must be multiples of {stride} (the feature stride); got {args.sizes}.")
    rows = builtin_rows(base)

    command = "python benchmarks/inference_size.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started, t0, lines = datetime.now().strftime("%Y-%m-%d %H:%M"), time.perf_counter(), []
    for name in args.collections:
        collection = load(name, args.max_images, args.data)
        shared, gt = Shared(collection), collection.gt_masks
        for row in args.rows:
            label, config = rows[row].label, base.replace(**rows[row].changes)
            fitted, t_train = timed(fit, collection, config, priors=shared.input_priors(config))
            for size in args.sizes:
                sized = config.replace(inference_size=size)
                (predictions, logits, saliency), t_infer = timed(
                    infer, collection, sized, fitted, shared.image_proposals(sized), args.chunk
                )
                scores = evaluate(predictions, gt)
                auc, _ = saliency_scores(saliency, gt)
                peaks = peak_statistics(logits, saliency, gt, sized.ranking.peak_threshold)
                grid = f"{size} ({size // stride} × {size // stride})"
                lines.append(
                    f"| {name} | {label} | {args.seed} | {grid} | {scores['mAP_r@0.25']:.3f} "
                    f"| {scores['mAP_r@0.5']:.3f} | {scores['CorLoc_r']:.3f} | {auc:.3f} | {peaks['used peaks']:.1f} "
                    f"| {peaks['hit']:.3f} | {t_train:.0f} | {t_infer:.0f} |"
                )
                print(lines[-1], flush=True)
                write(args.out, lines, command.strip(), started, base, time.perf_counter() - t0)
            del fitted
    print(f"(written {args.out})")


if __name__ == "__main__":
    main()
