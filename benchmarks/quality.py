"""How well does cosegkit segment instances, and why? The measured table of spec §7–§8.

For every collection (Penn-Fudan, balloon, a synthetic one) this trains the network
once, computes heat maps and proposals once, and then scores these rows:

    cosegkit <preset>              the whole method (the default a user gets)
    − co-saliency in ranking       rerank(use_cosaliency_in_ranking=False): R without S (paper Table 3):
                                   S ≡ 1 in the heat terms, no γ term, the score is R
    untrained network              the network before training (fit, epochs=0) with a random head
                                   (seeded): Z is a random projection of the pretrained features
    saliency loss only             (--ablate-losses) trained with λt = λa = 0: what the co-peak and
                                   affinity losses add to imitating the prior
    prior components               connected components of (prior > its mean), scored by saliency mass
    top-3 proposals by prior       the 3 proposals that best match the prior (soft IoU; or mean
                                   prior inside − outside), NMS at 0.4
    DDT co-localisation            the paper's unsupervised co-localisation baseline: components of the
                                   collection's first principal direction of backbone features (no training)
    oracle per peak                every instance a peak falls into gets its best proposal
                                   (an upper bound for the ranking, needs the ground truth)
    --variants ...                 extra ranking settings through rerank (choosing defaults)
    --proposals hierarchy sam both rows with other proposal sources (Config.proposals) for the same
                                   network, peaks and heat maps, and their oracle rows

Each cell reads  mAPʳ@0.25 / mAPʳ@0.5 / CorLocʳ / instances per image / seconds per image.
Seconds count a row's own work: the method row includes training, co-saliency, proposals,
heat maps and ranking; rerank rows only the ranking; the saliency-only row its training,
co-saliency, heat maps and ranking (it reuses the proposals); baselines the prior and
their selection.

A second table explains the numbers stage by stage: co-peaks per pair during training,
peaks per image, peaks on the background, ground-truth instances hit by a peak (a peak's
cell centre lies inside the instance), co-saliency inside/outside the instances,
proposal recall (mean best IoU, R@0.5), the size of the chosen masks and seconds per stage.

    python benchmarks/quality.py                          # everything (~35 min on 2 cores)
    python benchmarks/quality.py --max-images 6           # a quick look
    python benchmarks/quality.py --max-images 20 --variants          # + default ranking variants
    python benchmarks/quality.py --variants gamma=1e-6 "gamma_mode=area,gamma=1e-6"
    python benchmarks/quality.py --figures /tmp/quality_figures      # overlays of the first images
    python benchmarks/quality.py --max-images 20 --proposals hierarchy sam both   # MobileSAM at the peaks

Images: ``--split report`` (default) measures the report split, ``tune`` the tune split, ``all`` every
image (:mod:`cosegkit.datasets.protocol`: Penn-Fudan tunes on FudanPed and reports on PennPed; balloon
and each ``coco:<category>`` collection of ``coco_val_subset`` are halved by a hash of the file name).
Choose settings with ``--split tune``; quote ``--split report``. The table says which split it measured.

Data: ``$COSEGKIT_DATA`` (or ``--data``) holding ``PennFudanPed/``, ``balloon/`` and ``coco_val_subset/``.
The table is written to ``benchmarks/results/quality.md`` after every collection.
"""

from __future__ import annotations

import argparse
import ast
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from cosegkit import atomic
from cosegkit.baselines import oracle_per_peak, prior_components, top_proposals_by_saliency
from cosegkit.config import Config, preset
from cosegkit.datasets import data_root, load_balloon, load_coco, load_pennfudan, synthetic_collection
from cosegkit.ddt import collection_features, ddt_components, ddt_maps
from cosegkit.diagnostics import (
    mean_area_fraction,
    mean_auc,
    mean_inside_outside,
    peak_statistics,
    proposal_recall,
    randomise_head,
)
from cosegkit.evaluate import evaluate
from cosegkit.pipeline import Result, cosaliency, cosegment, select_all
from cosegkit.proposals import PROPOSAL_SOURCES, proposals_for
from cosegkit.saliency import prior_maps
from cosegkit.train import fit

TOP_K = 3  # fixed before looking at any number: Penn-Fudan has ~2.5 people per image, balloon ~4
DEFAULT_VARIANTS = [  # a variant equal to the preset's own setting is skipped
    "gamma_mode=pixels",
    "gamma_mode=area",
    "gamma=1e-6",
    "gamma=1e-5",
    "gamma=1e-4",
    "heatmap_power=1",
    "heatmap_power=2",
    "heatmap_power=3",
    "heatmap_norm=max",
    "ranking_saliency=cosaliency",
    "ranking_saliency=geometric_mean",
    "ranking_saliency_norm=none",
    "ranking_saliency_norm=max",
    "instance_score=ranking",
    "instance_score=ranking_x_peak",
    "nms_iou=0.3",
    "class_filter=True",
]
SYNTHETIC_IMAGES = 12


def load(name: str, max_images: int | None, data: str | None, split: str = "all"):
    """The named collection's ``split`` (:mod:`cosegkit.datasets.protocol`: ``"tune"``, ``"report"`` or ``"all"``),
    cut to ``max_images`` (first images by name). ``coco:<category>``: the images of ``coco_val_subset`` with ≥ 2
    instances of the category. The synthetic collection has no files: its tune images are seed 0, its report
    images seed 1 (``"all"``: seed 0, as before the split)."""
    protocol_split = None if split == "all" else split
    if name == "Penn-Fudan":
        return load_pennfudan(
            None if data is None else Path(data) / "PennFudanPed", max_images=max_images, protocol_split=protocol_split
        )
    if name == "balloon":
        return load_balloon(
            None if data is None else Path(data) / "balloon", max_images=max_images, protocol_split=protocol_split
        )
    if name.startswith("coco:"):
        root = data_root("coco_val_subset") if data is None else Path(data) / "coco_val_subset"
        return load_coco(
            root / "annotations.json",
            root / "images",
            category=name.split(":", 1)[1],
            min_instances=2,
            max_images=max_images,
            protocol_split=protocol_split,
        )
    n = SYNTHETIC_IMAGES if max_images is None else max(2, min(SYNTHETIC_IMAGES, max_images))
    return synthetic_collection(n_images=n, size=(192, 256), instances=(1, 3), seed=1 if split == "report" else 0)


COCO_CATEGORIES = ("person", "car", "bottle", "cup", "chair", "bowl")  # coco_val_subset's co-segmentation categories
COLLECTIONS = ("Penn-Fudan", "balloon", "synthetic", *(f"coco:{c}" for c in COCO_CATEGORIES))
DEFAULT_COLLECTIONS = ("Penn-Fudan", "balloon", "synthetic")
SPLITS = ("report", "tune", "all")
SPLIT_TEXT = {
    "report": "report split: Penn-Fudan's PennPed images; the report half of balloon and of each COCO collection "
    "(a hash of the file name, `cosegkit.datasets.protocol`); synthetic seed 1",
    "tune": "tune split: Penn-Fudan's FudanPed images; the tune half of balloon and of each COCO collection "
    "(a hash of the file name, `cosegkit.datasets.protocol`); synthetic seed 0",
    "all": "every image (tune and report splits together; settings chosen on these images are not a fair report)",
}


# ---------------------------------------------------------------- rows


@dataclass
class Row:
    """One cell of the table: a method on one collection."""

    metrics: dict  # evaluate(): mAP_r@0.25, mAP_r@0.5, CorLoc_r
    instances_per_image: float = 0.0
    seconds_per_image: float = 0.0

    def cell(self) -> str:
        m = self.metrics
        return (
            f"{m['mAP_r@0.25']:.3f} / {m['mAP_r@0.5']:.3f} / {m['CorLoc_r']:.3f} / "
            f"{self.instances_per_image:.1f} / {self.seconds_per_image:.2f}"
        )


def make_row(predictions: list, ground_truth: list, seconds: float) -> Row:
    """predictions: per image (masks (K, H, W), scores (K,)) at the original resolution."""
    n = len(ground_truth)
    return Row(evaluate(predictions, ground_truth), sum(len(s) for _, s in predictions) / n, seconds / n)


def timed(function, *args, **kwargs):
    t0 = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - t0


def parse_variant(text: str) -> dict:
    """``"gamma=1e-6,heatmap_norm=max"`` → ``{"gamma": 1e-06, "heatmap_norm": "max"}``."""
    changes = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"A variant is key=value[,key=value…]; got {item!r} in {text!r}.")
        try:
            changes[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            changes[key.strip()] = value.strip()  # a bare word such as area or max
    return changes


def other_sources(result: Result, config: Config, sources: list[str]) -> dict:
    """The method with other proposal sources, same network, peaks and heat maps (only proposals and ranking re-run).

    Returns ``{source: (result, seconds of proposals, seconds of ranking)}`` for every source but
    ``config.proposals``; ``"both"`` reuses the two parts (its seconds are theirs plus the union).
    """
    parts = {config.proposals: ([r.proposals for r in result.images], result.timings.get("proposals", 0.0))}

    def part(name):
        if name not in parts:
            parts[name] = timed(image_proposals, result.images, config.replace(proposals=name))
        return parts[name]

    out = {}
    for source in sources:
        if source == config.proposals:
            continue
        if source == "both":
            from cosegkit.sam import combine_proposals

            (hier, t_h), (sam, t_s) = part("hierarchy"), part("sam")
            props, t = timed(list, map(combine_proposals, hier, sam))
            t_prop = t_h + t_s + t
        else:
            props, t_prop = part(source)
        images = [replace(r, proposals=p, ranking_cache={}) for r, p in zip(result.images, props)]
        changed = config.replace(proposals=source)
        _, t_rank = timed(select_all, images, changed)
        out[source] = (replace(result, images=images, config=changed), t_prop, t_rank)
    return out


def image_proposals(images: list, config: Config) -> list:
    """``config.proposals`` for every ImageResult (its image, peaks and Z)."""
    return [proposals_for(r.image, config, r.peaks, r.logits) for r in images]


def oracle(result: Result, gt: list[np.ndarray], threshold) -> list:
    """``oracle_per_peak`` of every image of ``result``: its proposals, its used peaks (≥ ``threshold``)."""
    return [
        oracle_per_peak(r.proposals, r.peaks[r.used_peaks(threshold)], r.logits.shape, g, out_shape=r.shape)
        for r, g in zip(result.images, gt)
    ]


def recall_cells(result: Result, gt: list[np.ndarray]) -> tuple:
    """Proposals per image, ABO, R@0.5 and R@0.7 of ``result``'s proposals (``diagnostics.proposal_recall``)."""
    recall = proposal_recall([r.proposals for r in result.images], gt)
    return tuple(recall[k] for k in ("proposals", "ABO", "R@0.5", "R@0.7"))


def top_by_prior(proposals: list, priors: list[np.ndarray], score: str) -> list:
    """The TOP_K proposals of every image by ``score`` against its prior (the top-k baseline rows)."""
    return [
        top_proposals_by_saliency(props, p, k=TOP_K, nms_iou=0.4, out_shape=p.shape, score=score)
        for props, p in zip(proposals, priors)
    ]


# ---------------------------------------------------------------- diagnostics


def result_peak_statistics(result: Result, gt_masks: list[np.ndarray]) -> dict:
    c = result.config
    return peak_statistics(
        [r.logits for r in result.images],
        [r.saliency for r in result.images],
        gt_masks,
        c.ranking.peak_threshold,
    )


@dataclass
class Report:
    """Everything measured on one collection."""

    name: str
    n_images: int
    n_instances: int
    rows: dict = field(default_factory=dict)  # row label → Row
    diagnostics: dict = field(default_factory=dict)


# ---------------------------------------------------------------- one collection


def run_collection(
    name: str,
    collection,
    config: Config,
    label: str,
    variants: list[str],
    figures: Path | None = None,
    n_figures: int = 3,
    ablate_losses: bool = False,
    sources: list[str] | None = None,
) -> Report:
    """All rows and diagnostics for one collection with ground truth; ``label`` names the config."""
    gt = collection.gt_masks
    report = Report(name, len(collection), sum(len(g) for g in gt))
    d = report.diagnostics

    def add(label: str, row: Row) -> None:
        report.rows[label] = row
        print(f"  {label:38s} {row.cell()}", flush=True)

    print(f"{name}: {report.n_images} images, {report.n_instances} instances", flush=True)

    # the method: training once, then heat maps and proposals once
    fitted, t_train = timed(fit, collection, config)
    result = cosegment(collection, config, net=fitted)
    stages = {"training": t_train, **{k: v for k, v in result.timings.items() if k != "training"}}
    add(f"cosegkit `{label}`", make_row(result.predictions(), gt, sum(stages.values())))
    n = len(collection)
    d["proposals+ranking"] = {config.proposals: (stages.get("proposals", 0.0) + stages.get("ranking", 0.0)) / n}
    alternatives = other_sources(result, config, sources or [])
    for source, (alt, t_prop, t_rank) in alternatives.items():
        add(f"proposals={source} (same network, peaks, heat maps)", make_row(alt.predictions(), gt, t_prop + t_rank))
        d["proposals+ranking"][source] = (t_prop + t_rank) / n
    d["stages"] = stages
    d["copeaks"] = (
        (fitted.history[0]["copeaks_per_pair"], fitted.history[-1]["copeaks_per_pair"]) if fitted.history else None
    )
    d["trained"] = result_peak_statistics(result, gt)
    d["areas"] = (mean_area_fraction([r.masks for r in result.images]), mean_area_fraction(gt))

    # proposal recall and the oracle, from the heat maps' peaks
    d["recall by source"] = {config.proposals: recall_cells(result, gt)}
    d["proposals"], d["ABO"], d["R@0.5"], _ = d["recall by source"][config.proposals]

    # ranking variants: no new heat maps, only the last step
    no_cosal, t = timed(result.rerank, use_cosaliency_in_ranking=False)
    add("− co-saliency in ranking (rerank)", make_row(no_cosal.predictions(), gt, t))
    for text in variants:
        if config.replace(**parse_variant(text)) == config:
            continue  # the method row already is this setting
        changed, t = timed(result.rerank, **parse_variant(text))
        add(f"variant: {text} (rerank)", make_row(changed.predictions(), gt, t))

    best, t = timed(oracle, result, gt, config.ranking.peak_threshold)
    add("oracle: best proposal per peak", make_row(best, gt, t))
    for source, (alt, _, _) in alternatives.items():
        best, t = timed(oracle, alt, gt, config.ranking.peak_threshold)
        add(f"oracle: best proposal per peak ({source})", make_row(best, gt, t))
        d["recall by source"][source] = recall_cells(alt, gt)
    del alternatives

    if figures is not None:
        save_figures(result, figures / name.lower().replace(" ", "-"), n_figures)

    # untrained network: same proposals, new Z, peaks and heat maps
    proposals = [r.proposals for r in result.images]
    for r in result.images:
        r.heatmaps = None  # free memory: the trained result is not reranked any more
    untrained, t_init = timed(untrained_network, collection, config, fitted.priors)
    ddt, t = timed(ddt_predictions, untrained.net, collection, config, fitted.priors)
    add("baseline: DDT co-localisation (components)", make_row(ddt, gt, t))
    maps = network_maps(untrained.net, collection.images, config)
    d["untrained"] = peak_statistics([z for z, _ in maps], [s for _, s in maps], gt, config.ranking.peak_threshold)
    plain, t_plain = timed(cosegment, collection, config, net=untrained, proposals=proposals)
    add("untrained network (random head)", make_row(plain.predictions(), gt, t_init + t_plain))
    del plain
    del untrained, maps

    if ablate_losses:  # what the co-peak and affinity losses add to imitating the prior
        ablated = config.replace(lambda_copeak=0.0, lambda_affinity=0.0)
        net, t_fit = timed(fit, collection, ablated, priors=fitted.priors)
        only, t_run = timed(cosegment, collection, ablated, net=net, proposals=proposals)
        add("saliency loss only (λt = λa = 0)", make_row(only.predictions(), gt, t_fit + t_run))
        d["saliency only"] = result_peak_statistics(only, gt)
        del only, net

    # baselines on the unsupervised prior (at the original resolution)
    priors, t_prior = timed(prior_maps, collection, config)
    d["prior in/out"] = mean_inside_outside(priors, gt)
    d["prior AUC"] = mean_auc(priors, gt)
    components, t = timed(list, (prior_components(p, p.shape) for p in priors))
    add("baseline: prior components", make_row(components, gt, t_prior + t))
    for score_name, what in (("soft_iou", "soft IoU"), ("contrast", "contrast")):
        top, t = timed(top_by_prior, proposals, priors, score_name)
        add(f"baseline: top-{TOP_K} proposals by prior {what}", make_row(top, gt, t_prior + t))
    return report


def untrained_network(collection, config: Config, priors=None):
    """The network before training (``fit`` with ``epochs=0``) with a random head (:func:`randomise_head`,
    seeded with ``config.seed``). Returns a ``FitResult``."""
    untrained = fit(collection, config.replace(epochs=0), priors=priors)
    randomise_head(untrained.net, config.seed)
    return untrained


def network_maps(net, images: list, config: Config) -> list[tuple[np.ndarray, np.ndarray]]:
    """Z (hz, wz) and S (H, W) of every image, read at the size the method reads images at inference
    (``config.input_size_at_inference``), as ``cosegment`` does."""
    device = next(net.parameters()).device
    return [cosaliency(net, image, config.input_size_at_inference, device)[1:] for image in images]


def ddt_predictions(net, collection, config: Config, priors) -> list:
    """DDT (Wei et al. 2017) with the method's pretrained backbone: per image, the connected components
    of the positive indicator ⟨f − μ, v⟩ (v: the collection's first principal direction), sign set by the prior."""
    indicators = ddt_maps(collection_features(net, collection.images, config.image_size), priors)
    return [ddt_components(d, image.shape[:2]) for d, image in zip(indicators, collection.images)]


def save_figures(result: Result, folder: Path, n: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cosegkit.viz import heatmaps_figure, overlay_figure

    folder.mkdir(parents=True, exist_ok=True)
    for r in result.images[:n]:
        for kind, make in (("overlay", overlay_figure), ("heatmaps", heatmaps_figure)):
            fig = make(r)
            fig.savefig(folder / f"{Path(r.name).stem}_{kind}.png", dpi=80, bbox_inches="tight")
            plt.close(fig)


# ---------------------------------------------------------------- markdown


ROW_ORDER = [
    "cosegkit",
    "proposals=",
    "− co-saliency",
    "untrained",
    "saliency loss only",
    "baseline: prior",
    "baseline: top",
    "oracle",
    "variant",
]


def ordered_labels(reports: list[Report]) -> list[str]:
    """Row labels of all reports in ROW_ORDER (labels of one kind keep their order)."""

    def kind(label: str) -> int:
        return next((i for i, part in enumerate(ROW_ORDER) if part in label), len(ROW_ORDER))

    return sorted(dict.fromkeys(label for rep in reports for label in rep.rows), key=kind)


def results_table(reports: list[Report]) -> list[str]:
    lines = ["| row | " + " | ".join(r.name for r in reports) + " |", "| --- |" + " --- |" * len(reports)]
    for label in ordered_labels(reports):
        cells = [rep.rows[label].cell() if label in rep.rows else "–" for rep in reports]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def diagnostics_table(reports: list[Report]) -> list[str]:
    def per(rep, f):
        try:
            return f(rep.diagnostics, rep)
        except (KeyError, TypeError):
            return "–"

    quantities = [
        (
            "images / instances (per image)",
            lambda d, r: f"{r.n_images} / {r.n_instances} ({r.n_instances / r.n_images:.1f})",
        ),
        ("co-peaks per pair, epoch 1 → last", lambda d, r: "{:.0f} → {:.0f}".format(*d["copeaks"])),
        (
            "mean instance area (fraction of the image): method / ground truth",
            lambda d, r: "{:.3f} / {:.3f}".format(*d["areas"]),
        ),
        ("mean prior Ŝ in / out", lambda d, r: "{:.2f} / {:.2f}".format(*d["prior in/out"])),
        (
            "AUC against the union of the instances: S (trained) / prior Ŝ",
            lambda d, r: f"{d['trained']['AUC']:.3f} / {d['prior AUC']:.3f}",
        ),
        ("proposals per image / ABO / R@0.5", lambda d, r: f"{d['proposals']:.0f} / {d['ABO']:.2f} / {d['R@0.5']:.2f}"),
    ]
    sources = list(dict.fromkeys(k for rep in reports for k in rep.diagnostics.get("recall by source", {})))
    if len(sources) > 1:
        for source in sources:
            quantities += [
                (
                    f"proposals={source}: per image / ABO / R@0.5 / R@0.7",
                    lambda d, r, s=source: "{:.0f} / {:.2f} / {:.2f} / {:.2f}".format(*d["recall by source"][s]),
                ),
                (
                    f"proposals={source}: s/img proposals + ranking",
                    lambda d, r, s=source: f"{d['proposals+ranking'][s]:.2f}",
                ),
            ]
    networks = [k for k in ("trained", "untrained", "saliency only") if any(k in rep.diagnostics for rep in reports)]
    for net in networks:
        quantities += [
            (
                f"{net}: local maxima of Z / used peaks per image",
                lambda d, r, k=net: f"{d[k]['peaks']:.1f} / {d[k]['used peaks']:.1f}",
            ),
            (f"{net}: used peaks on the background", lambda d, r, k=net: f"{d[k]['background']:.2f}"),
            (f"{net}: instances hit by a used peak", lambda d, r, k=net: f"{d[k]['hit']:.2f}"),
            (
                f"{net}: mean S in / out of the instances",
                lambda d, r, k=net: f"{d[k]['S in']:.2f} / {d[k]['S out']:.2f}",
            ),
        ]
    stages = list(dict.fromkeys(k for rep in reports for k in rep.diagnostics.get("stages", {})))
    for stage in stages:
        quantities.append((f"s/img: {stage}", lambda d, r, s=stage: f"{d['stages'][s] / r.n_images:.2f}"))
    lines = ["| quantity | " + " | ".join(r.name for r in reports) + " |", "| --- |" + " --- |" * len(reports)]
    for label, f in quantities:
        lines.append(f"| {label} | " + " | ".join(per(rep, f) for rep in reports) + " |")
    return lines


def machine(config: Config) -> str:
    """The machine and versions, for a table's header."""
    return (
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch threads {torch.get_num_threads()}, "
        f"device {config.torch_device}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"numpy {np.__version__}"
    )


def config_summary(config: Config) -> str:
    def flat(c: Config) -> dict:  # ranking options by their own names, beside the other fields
        d = c.to_dict()
        return {**d, **d.pop("ranking")}

    base = flat(Config())
    changed = {k: v for k, v in flat(config).items() if base[k] != v and k != "progress"}
    return ", ".join(f"{k}={v}" for k, v in changed.items()) or "(the paper's defaults)"


@dataclass
class Run:
    """One run of a benchmark: its command line, which images it measures, when it started."""

    command: str
    split: str = "all"
    started: str = field(default_factory=lambda: datetime.now().strftime("%Y-%m-%d %H:%M"))
    t0: float = field(default_factory=time.perf_counter)

    @classmethod
    def of(cls, script: str, argv: list[str] | None, split: str = "all") -> Run:
        """The run of ``benchmarks/<script>`` with ``argv`` (None: ``sys.argv[1:]``), starting now."""
        return cls(f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:]), split)

    def header(self, title: str, config: Config, label: str) -> list[str]:
        """The lines a table starts with: title, command, date and wall time so far, machine, config, images."""
        return [
            f"# {title}",
            "",
            f"Command: `{self.command.strip()}`",
            "",
            f"Date: {self.started}; wall time so far {(time.perf_counter() - self.t0) / 60:.1f} min. "
            f"Machine: {machine(config)}.",
            "Times are wall-clock on a machine that may be shared with other jobs: compare rows of one run, not runs.",
            "",
            f"Config: `{label}` = the paper's defaults except {config_summary(config)}.",
            "",
            f"Images: the {SPLIT_TEXT[self.split]}.",
            "",
        ]


def write_markdown(path: Path, reports: list[Report], config: Config, label: str, run: Run) -> None:
    text = [
        *run.header("Instance co-segmentation quality", config, label),
        "Cells: mAPʳ@0.25 / mAPʳ@0.5 / CorLocʳ / instances per image / seconds per image (spec §8, at the original",
        "resolution; one category per collection). Seconds count a row's own work: the method row includes",
        "training; rows marked *rerank* reuse its heat maps and proposals and count only the ranking; the",
        "saliency-only row reuses the proposals; baselines count the prior and their selection.",
        "",
        *results_table(reports),
        "",
        "Rows:",
        "",
        "- **− co-saliency in ranking** (paper Table 3): the method's own peaks and heat maps, ranked by R without S:",
        "  S ≡ 1 in the heat terms, no background term, and the score is R (not weighted by S̃ at the peak). With",
        "  heat maps ≥ 0 and no penalty, the instance-aware term grows with the proposal, so large proposals win:",
        "  the gap to the method row is what co-saliency buys in the ranking.",
        "- **untrained network (random head)**: the same network before training (`fit` with `epochs=0`), its 1×1",
        "  head's weights drawn at random (PyTorch's default U(−1/√C, 1/√C), seeded with `Config.seed`; the bias as",
        "  the preset sets it): Z is a random projection of the pretrained features, read at the inference size, with",
        "  peaks, heat maps and instances. The floor training has to beat (a zero head gives a constant Z: no peak).",
        "- **saliency loss only** (`--ablate-losses`): trained with λt = λa = 0, i.e. to imitate the prior alone;",
        "  the gap to the method row is what the co-peak and affinity losses add.",
        "- **prior components** (`cosegkit.baselines.prior_components`): the unsupervised prior Ŝ at the original",
        "  resolution thresholded at its mean; 8-connected components ≥ 0.1 % of the image, scored by Σ Ŝ / image",
        "  area (mean Ŝ × area fraction).",
        f"- **top-{TOP_K} proposals by prior …** (`top_proposals_by_saliency`): the method's proposals scored against",
        "  Ŝ by *soft IoU* ⟨Ŝ, P⟩ / (|P| + ΣŜ − ⟨Ŝ, P⟩) or by *contrast* (mean Ŝ inside − mean Ŝ outside); greedy",
        f"  NMS at IoU 0.4; k = {TOP_K} fixed in advance. The contrast, like the mean Ŝ inside, prefers a small",
        "  proposal on an object's brightest part; the soft IoU pays for salient pixels left out.",
        "- **DDT co-localisation** (`cosegkit.ddt`, Wei et al. 2017; the paper's unsupervised co-localisation",
        "  baseline): the method's ImageNet backbone, untrained, on every image; all descriptors of the collection",
        "  projected on their first principal direction (sign: the side that agrees with Ŝ); the positive",
        "  indicator resized to the image, its connected components scored by their positive mass.",
        "- **oracle** (`oracle_per_peak`): every ground-truth instance holding a used peak's cell centre gets the",
        "  proposal with the best IoU against it, scored by that IoU; background peaks return nothing. An upper",
        "  bound for any ranking of these peaks and proposals.",
        "- **variant** rows: the method with one ranking setting changed through `Result.rerank`.",
        "- **proposals=…** rows (`--proposals`): the same network, peaks and heat maps with another proposal source",
        "  (`Config.proposals`: `hierarchy` watershed proposals, `sam` MobileSAM's 3 masks for a point at every peak",
        "  of Z, `both` their union); seconds are proposals + ranking only. *oracle (source)* is the oracle row",
        "  for that source.",
        "",
        "## Diagnostics",
        "",
        "Used peaks are the local maxima of Z at or above its median (the ones the ranking uses); a peak is on an",
        "instance when its grid cell's centre, mapped to the original image, is an instance pixel. Proposal",
        "recall is measured at the proposals' working resolution.",
        "",
        *diagnostics_table(reports),
        "",
    ]
    atomic.write_text(path, "\n".join(text))


# ---------------------------------------------------------------- main


def collection_parser(doc: str, collections, split: bool = True) -> argparse.ArgumentParser:
    """A parser with the arguments the benchmarks on collections share: ``--collections`` (default
    ``collections``), ``--split`` (unless ``split`` is False), ``--max-images``, ``--preset``, ``--epochs``
    and ``--data``."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collections", nargs="+", default=list(collections), choices=COLLECTIONS)
    if split:
        parser.add_argument(
            "--split",
            default="report",
            choices=SPLITS,
            help="which images: the report split (default; what tables quote), the tune split (where "
            "settings are chosen) or all (cosegkit.datasets.protocol)",
        )
    parser.add_argument(
        "--max-images",
        type=int,
        default=None,
        help=f"first N images of each real collection (synthetic: min(N, {SYNTHETIC_IMAGES})); default all",
    )
    parser.add_argument("--preset", default="lite", help="config preset (default: lite)")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (quick runs)")
    parser.add_argument(
        "--data", default=None, help="data root with PennFudanPed/, balloon/, coco_val_subset/ (default $COSEGKIT_DATA)"
    )
    return parser


def preset_of(args, **overrides) -> tuple[Config, str]:
    """The preset ``args.preset`` with ``--epochs`` and ``overrides``, progress off; and its label for tables."""
    epochs = {} if args.epochs is None else {"epochs": args.epochs}
    label = args.preset if args.epochs is None else f"{args.preset}, epochs={args.epochs}"
    return preset(args.preset, progress=False, **epochs, **overrides), label


def main(argv=None):
    parser = collection_parser(__doc__, DEFAULT_COLLECTIONS)
    parser.add_argument(
        "--variants",
        nargs="*",
        default=None,
        metavar="KEY=VALUE[,KEY=VALUE]",
        help=f"extra ranking settings as rerank rows; with no value: {DEFAULT_VARIANTS}",
    )
    parser.add_argument(
        "--proposals",
        nargs="+",
        default=[],
        choices=PROPOSAL_SOURCES,
        help="rows with these proposal sources for the same network and peaks (the preset's own source "
        "is the method row); sam needs MobileSAM's weights (python -m cosegkit weights)",
    )
    parser.add_argument(
        "--ablate-losses",
        action="store_true",
        help="add a row trained with the saliency loss only (λt = λa = 0); doubles the training time",
    )
    parser.add_argument("--figures", type=Path, default=None, help="save overlay and heat-map figures here")
    parser.add_argument("--n-figures", type=int, default=3, help="images per collection with figures")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "quality.md")
    args = parser.parse_args(argv)

    config, label = preset_of(args)
    variants = DEFAULT_VARIANTS if args.variants == [] else (args.variants or [])
    for text in variants:  # fail now, not after an hour of training
        config.replace(**parse_variant(text))

    benchmark = Run.of("quality.py", argv, args.split)
    reports = []
    for name in args.collections:
        try:
            collection = load(name, args.max_images, args.data, args.split)
        except FileNotFoundError as error:
            sys.exit(f"{error}\nSet COSEGKIT_DATA (or --data) or leave {name} out with --collections.")
        reports.append(
            run_collection(
                f"{name} ({args.split})",
                collection,
                config,
                label,
                variants,
                args.figures,
                args.n_figures,
                args.ablate_losses,
                args.proposals,
            )
        )
        write_markdown(args.out, reports, config, label, benchmark)
        print(f"  (written {args.out})", flush=True)


if __name__ == "__main__":
    main()
