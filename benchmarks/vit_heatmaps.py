"""Heat maps for the ViT backbone: which rule turns a peak into the map the ranking reads?

Usage::

    python benchmarks/vit_heatmaps.py --collection Penn-Fudan --split tune --max-images 40

Trains the ``dino`` preset once on the collection, then replaces every image's heat maps by each rule
(same network, peaks, proposals and S) and ranks again:

- ``rollout``: attention rollout from the peak's token (:func:`cosegkit.vit.attention_rollout`);
- ``blob s``: a Gaussian of ``s`` cells around the peak (where, not what: the floor);
- ``affinity s``: max(0, cos) of the centred features with the peak's, times a Gaussian of ``s`` cells;
- ``walk t p``: :func:`cosegkit.vit.feature_walk` with ``t`` steps and sharpness ``p``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from cosegkit import preset
from cosegkit.model import to_input
from cosegkit.pipeline import cosegment
from cosegkit.vit import attention_rollout, feature_walk
from cosegkit.widgets import with_heatmaps

sys.path.insert(0, str(Path(__file__).parent))
from presets import collections  # noqa: E402

RULES = ["rollout", "blob:2", "affinity:6", "walk:8:1", "walk:32:2", "walk:64:2", "walk:32:4"]


def gaussian(peaks: np.ndarray, n: int, sigma: float) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(n).float(), torch.arange(n).float(), indexing="ij")
    return torch.stack([torch.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * sigma**2)) for r, c in peaks])


def rule_maps(rule: str, backbone, x: torch.Tensor, features: torch.Tensor, peaks: np.ndarray) -> torch.Tensor:
    """(M, s, s) maps on the feature grid for one image."""
    n = features.shape[-1]
    if not len(peaks):
        return torch.zeros(0, n, n)
    kind, *numbers = rule.split(":")
    p = torch.as_tensor(peaks, dtype=torch.long)
    if kind == "rollout":
        return attention_rollout(backbone, x, p)
    if kind == "blob":
        return gaussian(peaks, n, float(numbers[0]))
    if kind == "affinity":
        f = features - features.mean(dim=(1, 2), keepdim=True)
        f = f / f.norm(dim=0, keepdim=True).clamp_min(1e-6)
        similar = torch.einsum("chw,mc->mhw", f, f[:, p[:, 0], p[:, 1]].T).clamp(min=0)
        return similar * gaussian(peaks, n, float(numbers[0]))
    if kind == "walk":
        return feature_walk(features, p, steps=int(numbers[0]), sharpness=float(numbers[1]))
    raise SystemExit(f"unknown rule {rule!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", default="Penn-Fudan")
    parser.add_argument("--split", default="tune", choices=["tune", "report", "all"])
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--rules", nargs="+", default=RULES)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    out = Path(args.out or Path(__file__).parent / "results" / f"vit_heatmaps_{args.split}.md")
    lines = (
        out.read_text().splitlines()
        if out.exists()
        else [
            "# Heat maps for the ViT backbone (same trained network, peaks, proposals and S)",
            "",
            "| collection | split | images | rule | mAPʳ@0.25 | mAPʳ@0.5 | CorLocʳ | command |",
            "|" + " --- |" * 8,
        ]
    )
    command = "python benchmarks/vit_heatmaps.py " + " ".join(argv if argv is not None else sys.argv[1:])
    label, collection = collections(args.collection, args.split, args.max_images)[0]
    config = preset("dino", progress=False)
    result = cosegment(collection, config)
    net = result.fit.net
    inputs, features = [], []  # the backbone runs once per image, not once per rule
    with torch.no_grad():
        for r in result.images:
            inputs.append(net.normalize(to_input([r.image], config.input_size_at_inference)))
            features.append(net.backbone(inputs[-1])[0])
    for rule in args.rules:
        t0 = time.perf_counter()
        maps = []
        for r, x, f in zip(result.images, inputs, features):
            with torch.no_grad():
                grid = rule_maps(rule, net.backbone, x, f, r.peaks)
            up = F.interpolate(grid[:, None], size=r.heatmaps.shape[1:], mode="bilinear", align_corners=False)[:, 0]
            maps.append(up.clamp(min=0).numpy().astype(np.float32))
        scores = with_heatmaps(result, maps).evaluate()
        lines.append(
            f"| {label} | {args.split} | {len(collection)} | {rule} | {scores['mAP_r@0.25']:.3f} | "
            f"{scores['mAP_r@0.5']:.3f} | {scores['CorLoc_r']:.3f} | `{command}` |"
        )
        print(lines[-1], f"({time.perf_counter() - t0:.0f} s)", flush=True)
        out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
