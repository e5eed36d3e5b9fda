"""Which transformer block's tokens should feed the head? AUC of the DDT map (the collection's first
principal direction of the features, untrained) and of a logistic head fitted to the prior, per block.

Usage::

    python benchmarks/vit_layers.py --split tune --blocks 6 8 10 11 12

Both maps need no training of the network, so the comparison isolates the features. The DDT map's sign is
chosen by agreement with the learned prior; the head is ``cosegkit.ddt.ddt_head`` (DDT direction scaled and
shifted to the prior). AUC is against the union of the ground-truth instances, per image, averaged.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from cosegkit.ddt import ddt_maps
from cosegkit.diagnostics import mean_auc
from cosegkit.model import to_input
from cosegkit.saliency import saliency_prior
from cosegkit.vit import IMAGENET_MEAN, IMAGENET_STD, dinov2_vits14_backbone

sys.path.insert(0, str(Path(__file__).parent))
from presets import collections  # noqa: E402


@torch.no_grad()
def layer_features(images, blocks: list[int], size: int = 448) -> dict[int, torch.Tensor]:
    """Patch features after each of ``blocks`` (final norm applied): {block: (N, 384, s, s)}."""
    net = dinov2_vits14_backbone(pretrained=True).eval()
    embed, body, grid = net[0], net[1:-1], net[-1]
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    out = {b: [] for b in blocks}
    for image in images:
        tokens = embed((to_input([image], size) - mean) / std)
        for index, block in enumerate(body, start=1):
            tokens = block(tokens)
            if index in out:
                out[index].append(grid(tokens))
    return {b: torch.cat(v) for b, v in out.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="tune", choices=["tune", "report", "all"])
    parser.add_argument("--blocks", nargs="+", type=int, default=[6, 8, 10, 11, 12])
    parser.add_argument("--collections", nargs="+", default=["Penn-Fudan", "balloon", "coco"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    out = Path(args.out or Path(__file__).parent / "results" / f"vit_layers_{args.split}.md")
    lines = [
        f"# DINOv2 ViT-S/14: which block feeds the head ({args.split} split)",
        "",
        "`python benchmarks/vit_layers.py " + " ".join(argv if argv is not None else sys.argv[1:]) + "`",
        "",
        "AUC against the union of the instances of the untrained DDT map per block (sign by the learned prior); "
        "the learned prior's own AUC for reference.",
        "",
        "| collection | images | learned prior | " + " | ".join(f"block {b}" for b in args.blocks) + " |",
        "|" + " --- |" * (3 + len(args.blocks)),
    ]
    for name in args.collections:
        for label, col in collections(name, args.split, None):
            priors = [saliency_prior(im, (448, 448), method="learned", power=1.0) for im in col.images]
            prior_auc = mean_auc(priors, col.gt_masks)
            feats = layer_features(col.images, args.blocks)
            cells = []
            for b in args.blocks:
                maps = ddt_maps(feats[b], torch.from_numpy(np.stack(priors)))  # (N, s, s)
                cells.append(mean_auc(maps, col.gt_masks))
            lines.append(f"| {label} | {len(col)} | {prior_auc:.3f} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
            print(lines[-1], flush=True)
            out.write_text("\n".join(lines) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
