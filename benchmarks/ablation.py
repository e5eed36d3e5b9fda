"""Which parts of DeepCO3 matter? Loss terms, co-peak loss form and head initialisation, over seeds.

On every collection (Penn-Fudan and balloon; the images of ``--split``: report by default, see
``cosegkit.datasets.protocol``, ``tune`` to choose settings, ``all`` for every image) each row below trains the network
``len(--seeds)`` times (``Config.seed`` changes the training order and anything random) and
runs the whole pipeline with it; a cell is the mean ± std over the seeds:

    ℓs only                 λt = λa = 0: the network only imitates the saliency prior
    ℓs + ℓt                 λa = 0: plus the co-peak loss (the paper's Figure 4 analogue)
    ℓs + ℓt + ℓa            the preset as it is
    co-peak loss            the other form: code −log σ(mean Tˢ) ↔ paper −log(mean Tˢ)
    head init               the other initialisation: zero (paper) ↔ bias at logit(mean prior)
    untrained               epochs=0 with a random head: the pretrained features projected on a
                            direction drawn with the seed (PyTorch's default initialisation)
    head init DDT           the head starts as DDT (``head_init="ddt"``): the collection's first
                            principal direction of features, fitted to the prior
    DDT head, untrained     that head without training: DDT's co-localisation map is S (run once)
    prior only              no network: the unsupervised prior is S, its connected components
                            (``cosegkit.baselines.prior_components``) are the instances (run once)
    --extra key=value,...   any other set of config overrides, one row each

Columns: mAPʳ@0.25, mAPʳ@0.5, CorLocʳ (spec §8); the ROC AUC of the co-saliency map S and the IoU
of (S > mean S), both against the union of the ground-truth instances; used peaks per image; the
fraction of ground-truth instances hit by a used peak; the seconds ``fit`` took.

    python benchmarks/ablation.py                                    # everything (many hours on 2 cores)
    python benchmarks/ablation.py --max-images 6 --seeds 0 --epochs 2 --out /tmp/ablation_smoke.md
    python benchmarks/ablation.py --rows full head-init --extra "lr_head=3e-4" "feature_stride=16"

The saliency priors and the proposals are computed once per collection and shared by every row
and seed (neither depends on the network). Data: ``$COSEGKIT_DATA`` (or ``--data``) holding
``PennFudanPed/`` and ``balloon/``. The table is written to ``benchmarks/results/ablation.md``
after every row.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from quality import (  # noqa: E402
    Run,
    collection_parser,
    load,
    parse_variant,
    preset_of,
    timed,
)

from cosegkit import atomic  # noqa: E402
from cosegkit.baselines import prior_components  # noqa: E402
from cosegkit.config import Config  # noqa: E402
from cosegkit.diagnostics import AUC_STRIDE, peak_statistics, randomise_head, saliency_scores  # noqa: E402
from cosegkit.evaluate import evaluate  # noqa: E402
from cosegkit.pipeline import cosegment  # noqa: E402
from cosegkit.proposals import proposals_for  # noqa: E402
from cosegkit.ranking import class_filter  # noqa: E402
from cosegkit.saliency import prior_maps  # noqa: E402
from cosegkit.train import compute_priors, fit  # noqa: E402

FORMS = {"code": "code form −log σ(mean Tˢ)", "paper": "paper form −log(mean Tˢ)"}
INITS = {"zero": "zero (paper)", "prior_mean": "bias at logit(mean prior)", "ddt": "DDT (first principal direction)"}
COLUMNS = [  # (key, header, digits, leading zero)
    ("mAP_r@0.25", "mAPʳ@0.25", 3, False),
    ("mAP_r@0.5", "mAPʳ@0.5", 3, False),
    ("CorLoc_r", "CorLocʳ", 3, False),
    ("auc", "AUC of S", 3, False),
    ("iou", "IoU of S > mean", 3, False),
    ("peaks", "used peaks / image", 1, True),
    ("hit", "GT hit by a peak", 3, False),
    ("train_s", "training s", 1, True),
]


# ---------------------------------------------------------------- rows


@dataclass(frozen=True)
class Ablation:
    """One row: a name for ``--rows``, a label for the table, the config overrides (None: prior only);
    ``random_head``: the head's weights are drawn with the seed after ``fit`` (``diagnostics.randomise_head``)."""

    name: str
    label: str
    changes: dict | None
    random_head: bool = False


def builtin_rows(base: Config) -> dict[str, Ablation]:
    """The rows of the issue, by name. Toggles name what they change *to* from the ``base`` preset."""
    other_form = "paper" if base.copeak_form == "code" else "code"
    other_init = "zero" if base.head_init == "prior_mean" else "prior_mean"
    rows = [
        Ablation("saliency", "ℓs only (λt = λa = 0)", {"lambda_copeak": 0.0, "lambda_affinity": 0.0}),
        Ablation("saliency+copeak", "ℓs + ℓt (λa = 0)", {"lambda_affinity": 0.0}),
        Ablation("full", "ℓs + ℓt + ℓa (the preset)", {}),
        Ablation("copeak-form", f"co-peak loss: {FORMS[other_form]}", {"copeak_form": other_form}),
        Ablation("head-init", f"head init: {INITS[other_init]}", {"head_init": other_init}),
        Ablation("untrained", "untrained, random head (epochs=0)", {"epochs": 0}, random_head=True),
        Ablation("head-init-ddt", "head init: DDT (first principal direction)", {"head_init": "ddt"}),
        Ablation("ddt", "DDT head, untrained (head_init=ddt, epochs=0)", {"head_init": "ddt", "epochs": 0}),
        Ablation("prior", "prior only (no network)", None),
    ]
    return {row.name: row for row in rows}


def select_rows(base: Config, names: list[str] | None, extras: list[str]) -> list[Ablation]:
    """The built-in rows named in ``names`` (None: all) followed by one row per ``--extra`` text.

    Raises ``SystemExit`` with what to do for an unknown name, an unknown config field or ``seed``."""
    known = builtin_rows(base)
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise SystemExit(f"Unknown row(s) {unknown}; choose from {list(known)} or add your own with --extra key=value.")
    rows = [known[n] for n in (names if names is not None else known)]
    for text in extras:
        changes = parse_variant(text)
        if "seed" in changes:
            raise SystemExit(f"--extra {text!r} sets the seed; use --seeds for that.")
        try:
            base.replace(**changes)
        except TypeError as error:
            raise SystemExit(f"--extra {text!r}: {error}") from None
        rows.append(Ablation(f"extra:{text}", f"extra: {text}", changes))
    return rows


# ---------------------------------------------------------------- pure measures


def format_number(value: float, digits: int = 3, leading_zero: bool = False) -> str:
    """``0.123`` → ``".123"`` (without the leading zero when ``leading_zero`` is False)."""
    text = f"{value:.{digits}f}"
    if not leading_zero and digits > 0:
        if text.startswith("0."):
            return text[1:]
        if text.startswith("-0."):
            return "-" + text[2:]
    return text


def mean_std(values: list[float], digits: int = 3, leading_zero: bool = False) -> str:
    """Mean ± std (ddof=0) of the finite values: ``".123 ± .004"``; one value alone; ``"–"`` when none."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "–"
    mean = format_number(float(np.mean(finite)), digits, leading_zero)
    if len(finite) == 1:
        return mean
    return f"{mean} ± {format_number(float(np.std(finite)), digits, leading_zero)}"


# ---------------------------------------------------------------- one row


@dataclass
class Shared:
    """What every row of a collection reuses: priors (input size), proposals, full-size priors."""

    collection: object
    priors: dict = field(default_factory=dict)  # (prior settings, image_size) → (N, S, S) tensor
    proposals: dict = field(default_factory=dict)  # proposal settings → list of N Proposals
    full_priors: dict = field(default_factory=dict)  # prior settings → N maps (H, W)

    def input_priors(self, config: Config) -> torch.Tensor:
        key = (config.prior, config.prior_power, config.prior_work_size, config.image_size)
        if key not in self.priors:
            self.priors[key], t = timed(compute_priors, self.collection, config)
            print(f"    priors at {config.image_size} px: {t:.1f} s", flush=True)
        return self.priors[key]

    def image_proposals(self, config: Config) -> list:
        key = config.proposal_max_side
        if key not in self.proposals:
            watershed = config.replace(proposals="hierarchy")  # every row and seed shares them: no peaks needed
            self.proposals[key], t = timed(list, (proposals_for(image, watershed) for image in self.collection.images))
            print(f"    proposals: {t:.1f} s", flush=True)
        return self.proposals[key]

    def original_size_priors(self, config: Config) -> list[np.ndarray]:
        key = (config.prior, config.prior_power, config.prior_work_size)
        if key not in self.full_priors:
            self.full_priors[key] = prior_maps(self.collection, config)
        return self.full_priors[key]


def infer(collection, config: Config, fitted, proposals: list, chunk: int) -> tuple[list, list, list]:
    """``cosegment`` with a trained network, ``chunk`` images at a time so that only one chunk's heat maps
    are held. Returns per image (masks (K, H, W), scores (K,)), Z (hz, wz) and S (H, W).

    The class filter, when on, is applied afterwards to the whole collection's scores, as ``cosegment``
    would."""
    predictions, logits, saliency = [], [], []
    n_chunks = math.ceil(len(collection) / chunk)
    for part in np.array_split(np.arange(len(collection)), n_chunks):
        chunk_fit = replace(fitted, priors=fitted.priors[torch.from_numpy(part)])  # the chunk's own priors (ranking Ŝ)
        result = cosegment(
            collection.subset(part),
            config.replace(class_filter=False),
            net=chunk_fit,
            proposals=[proposals[i] for i in part],
        )
        for r in result.images:
            predictions.append((r.masks, r.scores))
            logits.append(r.logits)
            saliency.append(r.saliency)
        del result
    if config.ranking.class_filter:
        keeps = class_filter([s for _, s in predictions], config.ranking.class_percentile)
        predictions = [(m[k], s[k]) for (m, s), k in zip(predictions, keeps)]
    return predictions, logits, saliency


def measure_network(shared: Shared, config: Config, chunk: int, random_head: bool = False) -> dict:
    """Train with ``config``, run the pipeline, and measure every column (plus ``infer_s``).
    ``random_head``: draw the head's weights with ``config.seed`` after training (the untrained row)."""
    collection = shared.collection
    gt = collection.gt_masks
    fitted, t_train = timed(fit, collection, config, priors=shared.input_priors(config))
    if random_head:
        randomise_head(fitted.net, config.seed)
    proposals = shared.image_proposals(config)
    (predictions, logits, saliency), t_infer = timed(infer, collection, config, fitted, proposals, chunk)
    del fitted
    auc, iou = saliency_scores(saliency, gt)
    peaks = peak_statistics(logits, saliency, gt, config.ranking.peak_threshold)
    return {
        **evaluate(predictions, gt),
        "auc": auc,
        "iou": iou,
        "peaks": peaks["used peaks"],
        "hit": peaks["hit"],
        "train_s": t_train,
        "infer_s": t_infer,
    }


def measure_prior(shared: Shared, config: Config) -> dict:
    """The prior as S and its connected components as instances; no network, no training."""
    gt = shared.collection.gt_masks
    priors = shared.original_size_priors(config)
    components, t = timed(list, (prior_components(p, p.shape) for p in priors))
    auc, iou = saliency_scores(priors, gt)
    return {
        **evaluate(components, gt),
        "auc": auc,
        "iou": iou,
        "peaks": float("nan"),
        "hit": float("nan"),
        "train_s": float("nan"),
        "infer_s": t,
    }


def row_seeds(row: Ablation, base: Config, seeds: list[int]) -> list[int]:
    """Seeds a row runs with: all of them when it trains or draws a random head, the first alone when nothing is
    random."""
    if row.random_head:
        return seeds
    if row.changes is None or base.replace(**row.changes).epochs == 0:
        return seeds[:1]
    return seeds


# ---------------------------------------------------------------- markdown


@dataclass
class Table:
    """Measured runs of one collection: row label → list of per-seed dicts."""

    name: str
    n_images: int
    n_instances: int
    runs: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        head = "| row | runs | " + " | ".join(header for _, header, _, _ in COLUMNS) + " |"
        out = [
            f"### {self.name}: {self.n_images} images, {self.n_instances} instances",
            "",
            head,
            "| --- | ---: |" + " ---: |" * len(COLUMNS),
        ]
        for label, runs in self.runs.items():
            cells = [mean_std([r[key] for r in runs], digits, zero) for key, _, digits, zero in COLUMNS]
            out.append(f"| {label} | {len(runs)} | " + " | ".join(cells) + " |")
        return out


def write_markdown(path: Path, tables: list[Table], base: Config, label: str, seeds: list[int], run: Run) -> None:
    text = [
        *run.header("Ablations: loss terms, co-peak loss form, head initialisation", base, label),
        f"Every row changes only what its label says. Seeds {', '.join(map(str, seeds))}; a cell is the mean ± std",
        "(ddof=0) over the row's runs.",
        "",
    ]
    for table in tables:
        text += [*table.lines(), ""]
    text += [
        "How to read it:",
        "",
        "- **mAPʳ@0.25, mAPʳ@0.5, CorLocʳ** (spec §8): instances at the original resolution, one category.",
        "- **AUC of S**: ROC AUC of the co-saliency map S against the union of the ground-truth instances,",
        f"  per image (on a grid of every {AUC_STRIDE}nd row and column), averaged; images whose union is empty or",
        "  whole are skipped. 0.5 is chance. **IoU of S > mean**: IoU of S thresholded at its mean with that union.",
        "  They judge stage 1 alone (what training made of S), free of peaks, proposals and ranking.",
        "- **used peaks / image**: local maxima of Z at or above its median (what the ranking uses);",
        "  **GT hit by a peak**: fraction of ground-truth instances holding a used peak's cell centre.",
        "- **training s**: seconds of `fit` for the whole collection (priors given, computed once).",
        "- **ℓs only → ℓs + ℓt → ℓs + ℓt + ℓa**: what the co-peak loss and then the affinity loss add to",
        "  imitating the prior (the paper's Figure 4).",
        "- **co-peak loss / head init** rows: the preset with that one setting switched.",
        "- **untrained, random head**: `fit` with `epochs=0` — ImageNet backbone, the 1×1 head's weights drawn with",
        "  the seed (PyTorch's default U(−1/√C, 1/√C); the bias as the preset sets it): Z is a random projection of",
        "  the pretrained features, with peaks and instances. The floor training has to beat; runs once per seed.",
        "- **head init: DDT**: the head starts as DDT (Wei et al. 2017), the collection's first principal",
        "  direction of the features it reads, scaled to fit the prior (`cosegkit.ddt.ddt_head`); then trained.",
        "  **DDT head, untrained**: that head with `epochs=0`, i.e. DDT's co-localisation map used as S by the",
        "  whole pipeline. It learns nothing, so it runs once; a trained row below it has not beaten DDT.",
        "- **prior only**: no network. S is the unsupervised prior Ŝ at the original resolution and the",
        "  instances are its connected components above the mean (`cosegkit.baselines.prior_components`,",
        "  scored by saliency mass). Deterministic, runs once. A trained row below it in AUC has learnt less",
        "  than the prior it imitates.",
        "- **extra** rows: the preset with the overrides of `--extra` applied.",
        "",
    ]
    atomic.write_text(path, "\n".join(text))


# ---------------------------------------------------------------- main


def main(argv=None):
    parser = collection_parser(__doc__, ["Penn-Fudan", "balloon"])
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="Config.seed of each run (default 0 1 2)"
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        default=None,
        metavar="NAME",
        help="built-in rows to run (default all): " + " ".join(builtin_rows(Config())),
    )
    parser.add_argument(
        "--extra",
        nargs="+",
        default=[],
        action="extend",
        metavar="KEY=VALUE[,KEY=VALUE]",
        help="one more row per text with these config overrides (repeatable)",
    )
    parser.add_argument("--chunk", type=int, default=8, help="images per cosegment call (bounds heat-map memory)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "ablation.md")
    args = parser.parse_args(argv)
    if args.chunk < 4:
        parser.error("--chunk must be at least 4 (every cosegment call needs ≥ 2 images).")

    base, label = preset_of(args)
    rows = select_rows(base, args.rows, args.extra)  # fails now, not after hours of training

    benchmark = Run.of("ablation.py", argv, args.split)
    tables: list[Table] = []
    for name in args.collections:
        try:
            collection = load(name, args.max_images, args.data, args.split)
        except FileNotFoundError as error:
            sys.exit(f"{error}\nSet COSEGKIT_DATA (or --data) or leave {name} out with --collections.")
        table = Table(f"{name} ({args.split})", len(collection), sum(len(g) for g in collection.gt_masks))
        tables.append(table)
        shared = Shared(collection)
        print(f"{name}: {table.n_images} images, {table.n_instances} instances", flush=True)
        for row in rows:
            if row.changes and row.name != "full" and base.replace(**row.changes) == base:
                print(f"  {row.label}: the preset already is this setting, skipped", flush=True)
                continue
            runs = []
            for seed in row_seeds(row, base, args.seeds):
                config = base.replace(seed=seed, **(row.changes or {}))
                run = (
                    measure_prior(shared, config)
                    if row.changes is None
                    else measure_network(shared, config, args.chunk, row.random_head)
                )
                runs.append(run)
                cells = ", ".join(f"{header} {mean_std([run[key]], d, z)}" for key, header, d, z in COLUMNS)
                per_image = {k: run[k] / table.n_images for k in ("train_s", "infer_s")}
                print(
                    f"  {row.label} [seed {seed}]: {cells}; s/img: training "
                    f"{mean_std([per_image['train_s']], 2, True)}, the rest {per_image['infer_s']:.2f}",
                    flush=True,
                )
            table.runs[row.label] = runs
            summary = " | ".join(mean_std([r[k] for r in runs], d, z) for k, _, d, z in COLUMNS)
            print(f"  = {row.label}: {summary}", flush=True)
            write_markdown(args.out, tables, base, label, args.seeds, benchmark)
        print(f"  (written {args.out})", flush=True)


if __name__ == "__main__":
    main()
