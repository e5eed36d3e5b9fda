"""How much memory one image's record holds, and what a large collection needs.

Usage::

    python benchmarks/memory.py --preset dino --collection Penn-Fudan --images 24
    python benchmarks/memory.py --preset lite --collection balloon --images 24 --split all

Runs ``cosegment`` on the first ``--images`` images of a collection's split and measures, per image, the
bytes its record (:class:`cosegkit.pipeline.ImageResult`) holds by part (:func:`cosegkit.diagnostics.record_bytes`),
the local maxima of Z against the peaks that got heat maps (the record keeps heat maps only for the peaks at
or above the threshold; before that, it kept one per local maximum: that column says what those would take),
and the process's peak resident memory. The projection to 500 images is the peak memory of this run plus
the records of 500 − N more images at the measured mean: training and the models are paid once.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from cosegkit import preset
from cosegkit.diagnostics import record_bytes
from cosegkit.pipeline import cosegment
from cosegkit.prm import find_peaks

sys.path.insert(0, str(Path(__file__).parent))
from presets import collections  # noqa: E402

MB = 2**20


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="dino")
    parser.add_argument("--collection", default="Penn-Fudan", choices=["Penn-Fudan", "balloon", "synthetic"])
    parser.add_argument("--split", default="tune", choices=["tune", "report", "all"])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--project", type=int, default=500, help="collection size to project the memory to")
    parser.add_argument("--out", default=None, help="Markdown file (default benchmarks/results/memory_<preset>.md)")
    args = parser.parse_args(argv)
    out = Path(args.out or Path(__file__).parent / "results" / f"memory_{args.preset}.md")
    command = "python benchmarks/memory.py " + " ".join(argv if argv is not None else sys.argv[1:])

    if args.collection == "synthetic":
        from cosegkit.datasets import synthetic_collection

        label, collection = "synthetic", synthetic_collection(n_images=args.images, seed=0)
    else:
        label, collection = collections(args.collection, args.split, args.images)[0]
    config = preset(args.preset, progress=False)
    before = peak_rss_mb()
    t0 = time.perf_counter()
    result = cosegment(collection, config)
    seconds = time.perf_counter() - t0
    peak = peak_rss_mb()

    parts = [record_bytes(r) for r in result.images]
    maxima = [len(find_peaks(torch.from_numpy(r.logits), window=3, threshold=None)) for r in result.images]
    every_local_max = [m * r.heatmaps[0].nbytes if len(r.heatmaps) else 0 for m, r in zip(maxima, result.images)]
    mean = {k: float(np.mean([p[k] for p in parts])) for k in parts[0]}
    n = len(result)
    projected = peak + (args.project - n) * mean["total"] / MB

    lines = [
        f"# Memory of a record, `{args.preset}` on {label} ({args.split} split, first {n} images)",
        "",
        f"`{command}`",
        "",
        f"{datetime.now():%Y-%m-%d %H:%M}, {torch.get_num_threads()} torch threads, device {config.torch_device}; "
        f"cosegment {seconds:.0f} s.",
        "",
        "| per image (mean over the images) | MiB |",
        "| --- | --- |",
        *(f"| {k} | {v / MB:.2f} |" for k, v in mean.items()),
        f"| largest record | {max(p['total'] for p in parts) / MB:.2f} |",
        "",
        "| peaks per image | |",
        "| --- | --- |",
        f"| local maxima of Z | {np.mean(maxima):.1f} |",
        f"| peaks with a heat map (at or above the threshold) | {np.mean([len(r.peaks) for r in result.images]):.1f} |",
        f"| heat maps of every local maximum would take, MiB | {np.mean(every_local_max) / MB:.2f} |",
        "",
        "| process | MiB |",
        "| --- | --- |",
        f"| peak resident memory before cosegment | {before:.0f} |",
        f"| peak resident memory after {n} images | {peak:.0f} |",
        f"| projected for {args.project} images (peak + {args.project - n} more records) | {projected:.0f} |",
    ]
    print("\n".join(lines))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
