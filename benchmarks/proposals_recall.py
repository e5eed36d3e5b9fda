"""How good are the unsupervised proposals? Recall of ground-truth instances (spec §7, step 4).

For every ground-truth instance, the best proposal's IoU says whether *any* ranking
could find it: the proposals bound the achievable mAPʳ. For N Penn-Fudan and N balloon
images this prints, per generator variant:

    #proposals   mean number of proposals per image
    s/img        time of generate_proposals (from the original image, resizing included)
    band s/img   time of the first contour_sums call (builds the width-5 band cache)
    ABO          mean over instances of the best proposal IoU
    R@.5, R@.7   fraction of instances with a proposal of IoU ≥ 0.5 / 0.7

IoU is measured at the proposals' working resolution (ground truth resized by nearest
neighbour). The table is also written to ``benchmarks/results/proposals.md``.

    python benchmarks/proposals_recall.py                 # 30 images per dataset
    python benchmarks/proposals_recall.py --n 5 --variants default

**Per proposal source** (``--sources hierarchy sam both``, ``Config.proposals``): the prompted
masks exist only at peaks, so this trains the ``lite`` network on the N images of each
dataset (``--epochs`` for a quicker look), takes its peaks, and per source prints
#proposals, s/img, ABO, R@.5, R@.7 and the **oracle per peak** (every instance holding a
used peak gets the source's best proposal: mAPʳ@0.5 and the fraction of instances with
IoU ≥ 0.5 that way). A last row prompts MobileSAM at each ground-truth instance's most
interior pixel instead: the segmenter's recall when the point is right.

    python benchmarks/proposals_recall.py --n 20 --sources hierarchy sam both --out benchmarks/results/proposals_sam.md

Data: ``$COSEGKIT_DATA`` or ``../shared/data`` holding ``PennFudanPed/`` and ``balloon/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.draw import polygon

from cosegkit.baselines import best_proposal_iou
from cosegkit.diagnostics import best_proposal_ious
from cosegkit.proposals import generate_proposals

VARIANTS = {
    "ward tree": dict(hierarchies=("ward",), cuts=()),
    "ward tree + adjacent pairs/triples": dict(hierarchies=("ward",)),
    "default: ward + contrast trees + pairs/triples": dict(),
}


# ---------------------------------------------------------------- small local readers


def read_pennfudan(root: Path, n: int):
    """First ``n`` Penn-Fudan images (sorted): ``(name, image (H, W, 3) uint8, masks (G, H, W) bool)``."""
    folder = root / "PennFudanPed"
    for path in sorted((folder / "PNGImages").glob("*.png"))[:n]:
        image = np.asarray(Image.open(path).convert("RGB"))
        ids = np.asarray(Image.open(folder / "PedMasks" / f"{path.stem}_mask.png"))
        masks = np.stack([ids == k for k in np.unique(ids) if k > 0])
        yield path.name, image, masks


def read_balloon(root: Path, n: int):
    """First ``n`` balloon train images (sorted by file name), VIA polygons rasterised."""
    folder = root / "balloon" / "train"
    records = json.loads((folder / "via_region_data.json").read_text())
    for rec in sorted(records.values(), key=lambda r: r["filename"])[:n]:
        image = np.asarray(Image.open(folder / rec["filename"]).convert("RGB"))
        regions = rec["regions"].values() if isinstance(rec["regions"], dict) else rec["regions"]
        masks = []
        for region in regions:
            shape = region["shape_attributes"]
            m = np.zeros(image.shape[:2], dtype=bool)
            rr, cc = polygon(shape["all_points_y"], shape["all_points_x"], m.shape)
            m[rr, cc] = True
            masks.append(m)
        yield rec["filename"], image, np.stack(masks)


DATASETS = {"Penn-Fudan": read_pennfudan, "balloon": read_balloon}


# ---------------------------------------------------------------- evaluation


def run(variant: dict, items, max_side: int):
    counts, seconds, band_seconds, best = [], [], [], []
    for _, image, gt in items:
        t0 = time.perf_counter()
        props = generate_proposals(image, max_side=max_side, **variant)
        t1 = time.perf_counter()
        props.contour_sums(np.zeros((1, *props.shape)), width=5)
        t2 = time.perf_counter()
        counts.append(props.n)
        seconds.append(t1 - t0)
        band_seconds.append(t2 - t1)
        best.append(best_proposal_iou(props, gt)[0])
    best = np.concatenate(best)
    return dict(
        n=np.mean(counts),
        s=np.mean(seconds),
        band=np.mean(band_seconds),
        abo=best.mean(),
        r5=np.mean(best >= 0.5),
        r7=np.mean(best >= 0.7),
        instances=len(best),
    )


def source_rows(root: Path, n: int, sources: list[str], epochs: int | None) -> list[str]:
    """Recall and oracle per peak for each proposal source, with one trained network's peaks per dataset."""
    import scipy.ndimage as ndi

    from cosegkit.baselines import oracle_per_peak
    from cosegkit.config import preset
    from cosegkit.datasets import load_balloon, load_pennfudan
    from cosegkit.evaluate import evaluate
    from cosegkit.pipeline import cosegment
    from cosegkit.proposals import proposals_for
    from cosegkit.sam import combine_proposals, segmenter_for

    loaders = {
        "Penn-Fudan": lambda: load_pennfudan(root / "PennFudanPed", max_images=n),
        "balloon": lambda: load_balloon(root / "balloon", max_images=n),
    }
    config = preset("lite", progress=False, **({} if epochs is None else {"epochs": epochs}))
    cells: dict[str, list[str]] = {}
    segmenter_for(config)  # load MobileSAM once, outside the timings
    for dataset, load in loaders.items():
        collection = load()
        gt = collection.gt_masks
        result = cosegment(collection, config)  # trains once; its peaks prompt the segmenter
        parts: dict[str, tuple[list, float]] = {}
        for source in ["hierarchy", "sam", "both"]:
            if source not in sources and not (source != "both" and "both" in sources):
                continue
            t0 = time.perf_counter()
            if source == "both":
                props = [combine_proposals(a, b) for a, b in zip(parts["hierarchy"][0], parts["sam"][0])]
            else:
                props = [
                    proposals_for(r.image, config.replace(proposals=source), r.peaks, r.logits) for r in result.images
                ]
            seconds = time.perf_counter() - t0 + (parts["hierarchy"][1] + parts["sam"][1] if source == "both" else 0.0)
            parts[source] = (props, seconds)
            if source not in sources:
                continue
            best = best_proposal_ious(props, gt)
            oracle = [
                oracle_per_peak(
                    p, r.peaks[r.used_peaks(config.ranking.peak_threshold)], r.logits.shape, g, out_shape=r.shape
                )
                for p, r, g in zip(props, result.images, gt)
            ]
            found = sum(int((s >= 0.5).sum()) for _, s in oracle) / max(1, len(best))
            cells.setdefault(source, []).append(
                "{:.0f} / {:.2f} / {:.2f} / {:.2f} / {:.2f} / {:.3f} / {:.2f}".format(
                    np.mean([p.n for p in props]),
                    seconds / len(props),
                    best.mean(),
                    np.mean(best >= 0.5),
                    np.mean(best >= 0.7),
                    evaluate(oracle, gt)["mAP_r@0.5"],
                    found,
                )
            )
            print(f"{dataset} {source}: {cells[source][-1]}", flush=True)
        # the segmenter's own recall with a point at each instance's most interior pixel
        segmenter, best = segmenter_for(config), []
        for image, g in zip(collection.images, gt):
            embedding = segmenter.embed(image)
            points = np.array(
                [np.unravel_index(np.argmax(ndi.distance_transform_edt(m)), m.shape)[::-1] for m in g], np.float32
            )
            masks, _ = segmenter.predict(embedding, points[:, None], np.ones((len(g), 1)))  # (G, 3, H, W)
            inter = (masks & g[:, None]).sum(axis=(2, 3))
            union = (masks | g[:, None]).sum(axis=(2, 3))
            best.append((inter / np.maximum(union, 1)).max(axis=1))
        best = np.concatenate(best)
        cells.setdefault("sam at each instance's most interior pixel (needs the ground truth)", []).append(
            f"3 per instance / – / {best.mean():.2f} / {np.mean(best >= 0.5):.2f} / {np.mean(best >= 0.7):.2f} / – / –"
        )
    header = (
        "| source | "
        + " | ".join(f"{d}: #proposals / s/img / ABO / R@.5 / R@.7 / oracle mAPʳ@.5 / oracle found" for d in loaders)
        + " |"
    )
    return [
        header,
        "| --- |" + " --- |" * len(loaders),
        *(f"| {k} | " + " | ".join(v) + " |" for k, v in cells.items()),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30, help="images per dataset (first N, sorted by name)")
    parser.add_argument("--max-side", type=int, default=500, help="working resolution of the proposals")
    parser.add_argument("--data", default=os.environ.get("COSEGKIT_DATA", "../shared/data"), help="data root")
    parser.add_argument("--variants", nargs="+", default=["all"], help=f"'all' or some of: default, {list(VARIANTS)}")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "proposals.md"), help="markdown table")
    parser.add_argument(
        "--sources",
        nargs="+",
        default=None,
        choices=["hierarchy", "sam", "both"],
        help="instead of the generator variants: recall and oracle per peak per proposal source "
        "(trains the lite network on the N images of each dataset)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="with --sources: training epochs (default: lite's)")
    args = parser.parse_args(argv)

    root = Path(args.data)
    if not (root / "PennFudanPed").is_dir() or not (root / "balloon").is_dir():
        sys.exit(f"No PennFudanPed/ and balloon/ under {root.resolve()}; set COSEGKIT_DATA or pass --data.")
    names = (
        list(VARIANTS)
        if "all" in args.variants
        else [next(k for k in VARIANTS if k.startswith(v)) for v in args.variants]
    )
    if args.sources:
        command = "python benchmarks/proposals_recall.py " + " ".join(argv if argv is not None else sys.argv[1:])
        lines = source_rows(root, args.n, args.sources, args.epochs)
        report = [
            "# Proposal recall per source, with the trained network's peaks",
            "",
            f"Command: `{command.strip()}`",
            "",
            f"Data: the first {args.n} images of each dataset (by file name). Network: `lite`"
            + ("" if args.epochs is None else f" with epochs={args.epochs}")
            + ", trained on those images; its "
            "peaks prompt MobileSAM. ABO, R@t over all instances at the working resolution (≤ 500 px); "
            "oracle: every instance holding a used peak gets the source's best proposal (mAPʳ@0.5 of that, and "
            "the fraction of all instances found with IoU ≥ 0.5). s/img: proposals from the image "
            "(MobileSAM: encoder + decoder; both: the sum).",
            "",
            f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
            f"numpy {np.__version__}; wall-clock on a shared machine.",
            "",
            *lines,
            "",
        ]
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(report))
        print("\n".join(lines) + f"\n\nwritten to {out}")
        return
    data = {name: list(reader(root, args.n)) for name, reader in DATASETS.items()}

    header = (
        "| generator | " + " | ".join(f"{d}: #proposals / s/img / band s/img / ABO / R@.5 / R@.7" for d in data) + " |"
    )
    lines = [header, "| --- |" + " --- |" * len(data)]
    print(header, flush=True)
    for name in names:
        cells = []
        for items in data.values():
            r = run(VARIANTS[name], items, args.max_side)
            numbers = (r["n"], r["s"], r["band"], r["abo"], r["r5"], r["r7"])
            cells.append("{:.0f} / {:.2f} / {:.2f} / {:.2f} / {:.2f} / {:.2f}".format(*numbers))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)

    instances = ", ".join(
        f"{d}: {len(items)} images, {sum(len(g) for _, _, g in items)} instances" for d, items in data.items()
    )
    command = "python benchmarks/proposals_recall.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = [
        "# Proposal recall",
        "",
        f"Command: `{command.strip()}`",
        "",
        f"Data: {instances} (first N by file name). Longer side ≤ {args.max_side} px; IoU at the proposals' "
        "working resolution. ABO = mean best IoU over instances; R@t = fraction of instances with a "
        "proposal of IoU ≥ t. s/img: `generate_proposals` from the original image; band s/img: first "
        "`contour_sums(width=5)` call (builds the band cache used by the ranking).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}. Times are wall-clock on a machine that may be shared with other jobs: "
        "compare rows of one run rather than runs.",
        "",
        *lines,
        "",
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(report))
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
