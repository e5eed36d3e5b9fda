"""Interactive explorers for the teaching notebooks (ipywidgets + matplotlib).

Every explorer comes in two halves:

- a pure **view** function — numbers in, data and a matplotlib ``Figure`` out. It
  needs no browser, so tests call it and time it (``correlation_view``,
  ``copeaks_view``, ``heatmap_view``, ``rerank_view``, …);
- a **builder** ``*_explorer(...)`` that wires core ipywidgets (sliders,
  dropdowns, buttons, ``interactive_output``) to the view and returns the box to
  display.

Heavy work (training, features, heat maps, proposals) happens once, before an
explorer is built; a slider only re-runs the cheap last step. Sliders whose
update costs more than ~0.1 s use ``continuous_update=False`` (recompute on release).

Also here: small notebook helpers — :func:`fast_mode`, :func:`example_collection`
(real data, or a synthetic stand-in when the data is absent), :func:`fit_cached` and
:func:`cosegment_cached` (compute once, reuse across notebooks) and :func:`show`.

Measured on a 6-image Penn-Fudan collection (2-core CPU, PNG rendering included): every
update below half a second — correlation slice ~0.45 s, co-peaks ~0.5 s, heat-map peak
~0.5 s, re-ranking with mAPʳ ~0.4 s (``Result.rerank`` alone ~0.07 s).

ipywidgets is imported only by the builders, so the view functions work without it.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from .config import Config
from .correlation import co_peaks, correlation_tensor, normalize_features, saliency_guided
from .data import Collection, CollectionError
from .evaluate import saliency_auc

FAST_ENV = "COSEGKIT_FAST"  # COSEGKIT_FAST=1: every notebook finishes in about a minute on a CPU


# ======================================================================= notebook helpers
def fast_mode() -> bool:
    """True when the environment variable ``COSEGKIT_FAST`` is set to 1 (CI and quick checks)."""
    return os.environ.get(FAST_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def example_collection(name: str = "pennfudan", n_images: int = 6, seed: int = 0) -> Collection:
    """The first ``n_images`` images of a real data set, or a synthetic stand-in when it is absent.

    name: ``"pennfudan"`` (pedestrians) or ``"balloon"``; both are looked up under
    :func:`cosegkit.datasets.data_root`. When the data cannot be found the notebook
    still runs: a note is printed and :func:`cosegkit.datasets.synthetic_collection`
    (ringed red ellipses with exact ground truth) is returned instead.
    """
    from .datasets import load_balloon, load_pennfudan, synthetic_collection

    loaders = {"pennfudan": load_pennfudan, "balloon": load_balloon}
    if name not in loaders:
        raise ValueError(f"Unknown example collection {name!r}; choose one of {sorted(loaders)}.")
    try:
        return loaders[name](max_images=n_images)
    except (FileNotFoundError, CollectionError) as error:
        reason = str(error).splitlines()[0]
        print(
            f"Note: the {name} data set is not available ({reason})\n"
            f"      Using synthetic_collection({n_images}) instead: the same steps, on procedural images. "
            "Set COSEGKIT_DATA to the data folder to use the real photographs."
        )
        return synthetic_collection(n_images, seed=seed)


def fit_cached(collection: Collection, config: Config, folder: str | Path = "outputs/notebooks", **fit_kwargs):
    """:func:`cosegkit.train.fit` with a checkpoint named after the images and the config fields that change training.

    The first call trains and writes ``folder/fit_<version>_<fingerprint>_e<epochs>.pt`` after
    every epoch; a later call with the same images and settings (in this notebook or another)
    loads the trained weights instead of training again. Delete the folder to retrain from
    scratch. Returns a :class:`FitResult`.
    """
    from . import __version__
    from .train import collection_fingerprint, fit

    path = Path(folder) / f"fit_{__version__}_{collection_fingerprint(collection, config)}_e{config.epochs}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return fit(collection, config, checkpoint=path, resume=True, **fit_kwargs)


def show(fig: plt.Figure) -> None:
    """Display a figure in the notebook (or an Output widget) and close it, so it is drawn exactly once."""
    from IPython.display import display

    display(fig)
    plt.close(fig)


def _widgets():
    try:
        import ipywidgets
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The explorers need ipywidgets: pip install 'cosegkit[notebooks]' (or pip install ipywidgets)."
        ) from error
    return ipywidgets


def timed(view, *args, **kwargs) -> tuple[object, float]:
    """Run ``view(*args, **kwargs)``, close any figure it returns, and give ``(result, seconds)``."""
    start = time.perf_counter()
    result = view(*args, **kwargs)
    seconds = time.perf_counter() - start
    for item in result if isinstance(result, tuple) else (result,):
        if isinstance(item, plt.Figure):
            plt.close(item)
    return result, seconds


def _grid_extent(image: np.ndarray) -> tuple[float, float, float, float]:
    """imshow extent that stretches a low-resolution grid over the whole image."""
    return (0, image.shape[1], image.shape[0], 0)


def _cell_centre(image: np.ndarray, grid: tuple[int, int], row, col) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates (x, y) of the centre of grid cell (row, col): the network sees the image squashed square."""
    h, w = grid
    return (np.asarray(col) + 0.5) * image.shape[1] / w, (np.asarray(row) + 0.5) * image.shape[0] / h


# ======================================================================= 01 correlation
@torch.no_grad()
def network_maps(fitted, chunk: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised features f̂ and low-resolution co-saliency S̃ of every training image (on the CPU).

    fitted: a :class:`cosegkit.train.FitResult` (uses ``fitted.inputs``, ``(N, 3, S, S)``).
    Returns ``f_hat (N, C, h, w)`` with ‖f̂(p)‖ < 1 and ``s_low (N, h, w)`` in (0, 1).
    """
    net = fitted.net.eval()
    device = next(net.parameters()).device
    feats, sal = [], []
    for i in range(0, len(fitted.inputs), chunk):
        out = net(net.normalize(fitted.inputs[i : i + chunk].to(device)))
        feats.append(normalize_features(out.features).cpu())
        sal.append(out.saliency_low.cpu())
    return torch.cat(feats), torch.cat(sal)


@torch.no_grad()
def pair_tensors(f_hat: torch.Tensor, s_low: torch.Tensor, n: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The correlation tensor of images n and m and its saliency-guided version.

    f_hat: ``(N, C, h, w)``, s_low: ``(N, h, w)`` (from :func:`network_maps`).
    Returns ``T (h, w, h, w)`` with ``T[i, j, k, l] = ⟨f̂n(i, j), f̂m(k, l)⟩`` and
    ``Ts = S̃n(p) · S̃m(q) · T(p, q)``, same shape.
    """
    T = correlation_tensor(f_hat[n : n + 1], f_hat[m : m + 1])
    Ts = saliency_guided(T, s_low[n : n + 1], s_low[m : m + 1])
    return T[0], Ts[0]


def correlation_view(
    image_n: np.ndarray,
    image_m: np.ndarray,
    T: torch.Tensor,
    Ts: torch.Tensor,
    s_low_n: torch.Tensor,
    s_low_m: torch.Tensor,
    row: int,
    col: int,
) -> plt.Figure:
    """Four panels for one location p = (row, col) of image n:

    image n with p marked | T(p, ·) over image m | S̃m over image m | Tˢ(p, ·) over image m.

    T, Ts: ``(h, w, h, w)``; s_low_n, s_low_m: ``(h, w)``; images ``(H, W, 3) uint8``.
    T is drawn on a fixed [0, 1] scale (normalised non-negative features), Tˢ on
    [0, max Tˢ of the whole pair] so that moving p shows where the pair's strongest matches are.
    """
    h, w = T.shape[:2]
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"p = ({row}, {col}) is outside the {h}×{w} feature grid.")
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    x, y = _cell_centre(image_n, (h, w), row, col)
    axes[0].imshow(image_n)
    cell_w, cell_h = image_n.shape[1] / w, image_n.shape[0] / h
    axes[0].add_patch(plt.Rectangle((x - cell_w / 2, y - cell_h / 2), cell_w, cell_h, fill=False, ec="cyan", lw=2.5))
    axes[0].set_title(f"image n, location p = ({row}, {col})\nS̃n(p) = {float(s_low_n[row, col]):.3f}")
    panels = [
        (
            axes[1],
            T[row, col],
            f"T(p, ·): correlation with p\nmax {float(T[row, col].max()):.3f}",
            0.0,
            1.0,
            "viridis",
            "T(p, q)",
        ),
        (axes[2], s_low_m, "S̃m: co-saliency of image m", 0.0, float(max(s_low_m.max(), 1e-6)), "magma", "S̃m(q)"),
        (
            axes[3],
            Ts[row, col],
            f"Tˢ(p, ·) = S̃n(p)·S̃m(q)·T(p, q)\nmax {float(Ts[row, col].max()):.4f}",
            0.0,
            float(max(Ts.max(), 1e-12)),
            "viridis",
            "Tˢ(p, q)",
        ),
    ]
    for ax, values, title, vmin, vmax, cmap, label in panels:
        ax.imshow(image_m)
        im = ax.imshow(
            values.numpy(),
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            alpha=0.7,
            interpolation="nearest",
            extent=_grid_extent(image_m),
        )
        ax.set_title(title, fontsize=10)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label=label)
    best = np.unravel_index(int(torch.argmax(Ts[row, col])), (h, w))
    bx, by = _cell_centre(image_m, (h, w), *best)
    axes[3].plot(bx, by, "w*", ms=14, mec="k", label="best q")
    axes[3].legend(loc="lower right", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].set_xlabel("image m (q = every location)")
    fig.tight_layout()
    return fig


def correlation_explorer(images: list[np.ndarray], f_hat: torch.Tensor, s_low: torch.Tensor, n: int = 0, m: int = 1):
    """Dropdowns for images n and m, sliders for p = (row, col): redraws :func:`correlation_view`.

    T for a new pair is one matrix product on cached features, so every control answers at once.
    """
    widgets = _widgets()
    h, w = f_hat.shape[-2:]
    options = [(f"{i}", i) for i in range(len(images))]
    controls = dict(
        n=widgets.Dropdown(options=options, value=n, description="image n"),
        m=widgets.Dropdown(options=options, value=m, description="image m"),
        row=widgets.IntSlider(value=h // 2, min=0, max=h - 1, description="p row", continuous_update=False),
        col=widgets.IntSlider(value=w // 2, min=0, max=w - 1, description="p col", continuous_update=False),
    )

    def update(n, m, row, col):
        T, Ts = pair_tensors(f_hat, s_low, n, m)
        show(correlation_view(images[n], images[m], T, Ts, s_low[n], s_low[m], row, col))

    out = widgets.interactive_output(update, controls)
    return widgets.VBox(
        [widgets.HBox([controls["n"], controls["m"]]), widgets.HBox([controls["row"], controls["col"]]), out]
    )


# ======================================================================= 02 co-peaks
@torch.no_grad()
def copeak_list(
    Ts: torch.Tensor, window: int = 3, threshold: str | float | None = "median"
) -> tuple[np.ndarray, np.ndarray]:
    """The co-peaks of one pair as a list, strongest first.

    Ts: ``(h, w, h, w)``. Returns ``peaks (K, 4)`` int — rows ``(p_row, p_col, q_row, q_col)`` —
    and ``values (K,)`` = Tˢ at each co-peak. See :func:`cosegkit.correlation.co_peaks`.
    """
    mask = co_peaks(Ts[None], window=window, threshold=threshold)[0]
    peaks = mask.nonzero().numpy()
    values = Ts[mask].numpy()  # same (row-major) order as nonzero()
    order = np.argsort(-values, kind="stable")
    return peaks[order], values[order]


def copeaks_view(
    image_n: np.ndarray,
    image_m: np.ndarray,
    Ts: torch.Tensor,
    window: int = 3,
    threshold: str | float | None = "median",
    max_lines: int = 40,
):
    """Co-peaks of one pair drawn as lines joining the two images (:func:`cosegkit.viz.copeaks_figure`).

    Ts: ``(h, w, h, w)``. Returns ``(peaks (K, 4), values (K,), figure)``; the colour bar gives
    Tˢ at the co-peaks (lines from 0 to the strongest one drawn).
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from .viz import copeaks_figure

    peaks, values = copeak_list(Ts, window, threshold)
    fig = copeaks_figure(image_n, image_m, peaks, values, grid=tuple(Ts.shape[:2]), max_lines=max_lines)
    vmax = float(values.max()) if len(values) else 1.0
    fig.colorbar(
        ScalarMappable(Normalize(0, vmax), cmap="viridis"),
        ax=fig.axes,
        fraction=0.025,
        pad=0.02,
        label="Tˢ(p, q) at the co-peak",
    )
    fig.axes[0].set_title("image n (p)")
    fig.axes[1].set_title("image m (q)")
    fig.suptitle(
        f"window {window}⁴, threshold {threshold!r}: {len(peaks)} co-peaks among {Ts.numel():,} pairs (p, q); "
        f"the {min(max_lines, len(peaks))} strongest drawn\n"
        f"median Tˢ of the pair = {float(torch.quantile(Ts.flatten(), 0.5)):.2e}, "
        f"strongest co-peak = {vmax if len(values) else float('nan'):.2e}",
        fontsize=10,
    )
    return peaks, values, fig


def copeaks_explorer(images: list[np.ndarray], f_hat: torch.Tensor, s_low: torch.Tensor, n: int = 0, m: int = 1):
    """Dropdowns for the pair, the window size and the threshold; a slider for how many lines to draw."""
    widgets = _widgets()
    options = [(f"{i}", i) for i in range(len(images))]
    controls = dict(
        n=widgets.Dropdown(options=options, value=n, description="image n"),
        m=widgets.Dropdown(options=options, value=m, description="image m"),
        window=widgets.Dropdown(options=[1, 3, 5, 7], value=3, description="window"),
        threshold=widgets.Dropdown(
            options=[("median (code)", "median"), ("none (paper)", "none")], value="median", description="threshold"
        ),
        max_lines=widgets.IntSlider(value=40, min=5, max=200, step=5, description="lines", continuous_update=False),
    )

    def update(n, m, window, threshold, max_lines):
        _, Ts = pair_tensors(f_hat, s_low, n, m)
        show(copeaks_view(images[n], images[m], Ts, window, threshold, max_lines)[2])

    out = widgets.interactive_output(update, controls)
    rows = [
        widgets.HBox([controls["n"], controls["m"], controls["max_lines"]]),
        widgets.HBox([controls["window"], controls["threshold"]]),
    ]
    return widgets.VBox([*rows, out])


# ======================================================================= 03 training
def foreground_at(gt_masks: np.ndarray, size: int) -> np.ndarray:
    """Union of the instance masks ``(K, H, W)`` resized (nearest) to the network input ``(size, size)`` → bool."""
    union = gt_masks.any(axis=0) if len(gt_masks) else np.zeros(gt_masks.shape[1:], bool)
    rows = (np.arange(size) + 0.5) * union.shape[0] / size
    cols = (np.arange(size) + 0.5) * union.shape[1] / size
    return union[rows.astype(int)[:, None], cols.astype(int)[None, :]]


@dataclass
class LabRun:
    """One training run of the :class:`TrainingLab`."""

    settings: dict  # the Config fields that were changed
    history: list[dict]  # per-epoch mean losses (see cosegkit.train.fit), plus "auc" and "mean_S" when tracked
    saliency: np.ndarray | None  # (N, S, S) learned co-saliency at the input size
    auc: float  # mean ROC AUC of S against the ground-truth foreground (NaN without ground truth)
    prior_auc: float  # the same for the saliency prior the network was trained towards
    seconds: float

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items()) or "preset defaults"


@dataclass
class TrainingLab:
    """Train small co-saliency networks under different settings and compare them.

    Runs are cached in ``self.cache`` (a dict keyed by the settings), so asking again
    for settings already tried answers at once. The saliency priors (``(N, S, S)``)
    and the network inputs are computed once and shared by all runs.
    """

    collection: Collection
    config: Config
    cache: dict = field(default_factory=dict)
    priors: torch.Tensor | None = None

    def __post_init__(self):
        from .model import to_input
        from .train import compute_priors

        if self.priors is None:
            self.priors = compute_priors(self.collection, self.config)
        self.inputs = to_input(self.collection.images, self.config.image_size)
        size = self.config.image_size
        self.foreground = (
            [foreground_at(g, size) for g in self.collection.gt_masks] if self.collection.has_ground_truth else None
        )

    def mean_auc(self, maps: np.ndarray) -> float:
        """Mean :func:`saliency_auc` of maps ``(N, S, S)`` against the ground truth (NaN without it)."""
        if self.foreground is None:
            return float("nan")
        values = np.array([saliency_auc(s, f) for s, f in zip(maps, self.foreground)])
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    @torch.no_grad()
    def _saliency(self, net) -> np.ndarray:
        was_training = net.training
        net.eval()
        device = next(net.parameters()).device
        maps = torch.cat(
            [
                net(net.normalize(self.inputs[i : i + 8].to(device))).saliency.cpu()
                for i in range(0, len(self.inputs), 8)
            ]
        )
        net.train(was_training)
        return maps.numpy()

    def key(self, settings: dict, track: bool = False) -> str:
        """Cache key: the complete configuration the settings lead to (so ``alpha=4.0`` and the
        default α are the same run), plus whether it was tracked."""
        import json

        return json.dumps(self.config.replace(**settings).to_dict(), sort_keys=True, default=str) + f"|track={track}"

    def run(self, callback=None, track: bool = False, **settings) -> LabRun:
        """Train with ``settings`` (any :class:`Config` fields, e.g. ``alpha=4, lambda_copeak=0.5``)
        or return the cached run. ``callback(epoch, record, net)`` is called after every epoch.

        ``track=True`` also records, after every epoch, the mean AUC of S against the ground
        truth (``record["auc"]``) and the mean of S (``record["mean_S"]``): one extra forward pass per epoch.
        """
        from .train import fit

        key = self.key(settings, track)
        if key in self.cache:
            return self.cache[key]

        def on_epoch(epoch, record, net):
            if track:
                maps = self._saliency(net)
                record["auc"], record["mean_S"] = self.mean_auc(maps), float(maps.mean())
            if callback is not None:
                callback(epoch, record, net)

        config = self.config.replace(**settings, progress=False)
        start = time.perf_counter()
        fitted = fit(self.collection, config, priors=self.priors, callback=on_epoch)
        maps = self._saliency(fitted.net)
        run = LabRun(
            dict(settings),
            fitted.history,
            maps,
            self.mean_auc(maps),
            self.mean_auc(self.priors.numpy()),
            time.perf_counter() - start,
        )
        self.cache[key] = run
        return run

    def widget(self, epochs: tuple[int, int] = (1, 20)):
        """Sliders for α, λt, λa and the epochs, dropdowns for the head initialisation and the centring
        of the features in T, a Train button.

        The loss curves are redrawn after every epoch; every run so far stays on the plot."""
        from .train import FEATURE_CENTERINGS, HEAD_INITS

        widgets = _widgets()
        c = self.config
        style = {"description_width": "120px"}
        controls = dict(
            alpha=widgets.FloatSlider(value=c.alpha, min=0, max=16, step=0.5, description="α (affinity)", style=style),
            lambda_copeak=widgets.FloatSlider(
                value=c.lambda_copeak, min=0, max=5, step=0.1, description="λt (co-peak)", style=style
            ),
            lambda_affinity=widgets.FloatSlider(
                value=c.lambda_affinity, min=0, max=5, step=0.05, description="λa (affinity)", style=style
            ),
            head_init=widgets.Dropdown(
                options=list(HEAD_INITS), value=c.head_init, description="head init", style=style
            ),
            feature_centering=widgets.Dropdown(
                options=list(FEATURE_CENTERINGS), value=c.feature_centering, description="centre features", style=style
            ),
            epochs=widgets.IntSlider(value=c.epochs, min=epochs[0], max=epochs[1], description="epochs", style=style),
        )
        button = widgets.Button(description="Train", button_style="primary", icon="play")
        status = widgets.Label("Set the weights, then press Train (runs already done answer from the cache).")
        curves, maps = widgets.Output(), widgets.Output()
        runs: list[LabRun] = []

        def on_click(_=None):
            settings = {k: (round(v.value, 4) if isinstance(v.value, float) else v.value) for k, v in controls.items()}
            cached = self.key(settings) in self.cache
            status.value = "from the cache" if cached else "training …"
            live: list[dict] = []

            def callback(epoch, record, net):
                live.append(record)
                with curves:
                    curves.clear_output(wait=True)
                    changed = {k: v for k, v in settings.items() if getattr(self.config, k) != v}
                    show(
                        loss_curves_figure([*runs, LabRun(changed, list(live), None, float("nan"), float("nan"), 0.0)])
                    )

            run = self.run(callback=callback, **{k: v for k, v in settings.items() if getattr(self.config, k) != v})
            if not any(r is run for r in runs):
                runs.append(run)
            with curves:
                curves.clear_output(wait=True)
                show(loss_curves_figure(runs))
            with maps:
                maps.clear_output(wait=True)
                show(lab_saliency_figure(self.collection, self.priors.numpy(), run))
            status.value = (
                f"{'from the cache' if cached else f'trained in {run.seconds:.1f} s'}: "
                f"AUC of S = {run.auc:.3f} (prior {run.prior_auc:.3f})"
            )

        button.on_click(on_click)
        box = widgets.VBox(
            [
                widgets.HBox(
                    [
                        widgets.VBox([controls["alpha"], controls["lambda_copeak"], controls["lambda_affinity"]]),
                        widgets.VBox([controls["feature_centering"], controls["head_init"], controls["epochs"]]),
                    ]
                ),
                widgets.HBox([button, status]),
                curves,
                maps,
            ]
        )
        box.train = on_click  # run the handler from code (fast mode, tests): box.train()
        box.runs = runs
        return box


def loss_curves_figure(runs: list[LabRun]) -> plt.Figure:
    """Total, co-peak, affinity and saliency loss per epoch; one line per run (legend: its settings)."""
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    for run in runs:
        epochs = [r["epoch"] for r in run.history]
        for ax, key in zip(axes, ["total", "copeak", "affinity", "saliency"]):
            ax.plot(epochs, [r[key] for r in run.history], "o-", ms=3, label=run.label)
    for ax, key in zip(axes, ["total", "copeak", "affinity", "saliency"]):
        ax.set_title(f"{key} loss (sum over a batch)", fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss")
    if runs:
        fig.legend(
            *axes[0].get_legend_handles_labels(),
            loc="lower center",
            ncol=1,
            fontsize=8,
            bbox_to_anchor=(0.5, -0.02 - 0.06 * len(runs)),
        )
    fig.tight_layout()
    return fig


def lab_saliency_figure(
    collection: Collection, priors: np.ndarray, run: LabRun, max_images: int = 6, rescale: bool = False
) -> plt.Figure:
    """Rows: image, prior Ŝ, learned S of one run (:func:`cosegkit.viz.cosaliency_figure`), titled with the AUCs.

    priors: ``(N, S, S)``. ``rescale=True`` divides every S by its own maximum, so a map squashed
    towards 0 still shows *where* it is high (the AUC does not change)."""
    from .viz import cosaliency_figure

    size = run.saliency.shape[-1]
    images = [_resized(image, size) for image in collection.images]
    maps = run.saliency / np.maximum(run.saliency.max(axis=(1, 2), keepdims=True), 1e-12) if rescale else run.saliency
    fig = cosaliency_figure(images, priors, maps, max_images=max_images)
    note = " — each S rescaled to its own maximum" if rescale else ""
    fig.suptitle(
        f"{run.label}{note}\nmean AUC against the true objects: learned S {run.auc:.3f}, prior {run.prior_auc:.3f}",
        fontsize=10,
    )
    return fig


def _resized(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 → (size, size, 3) uint8, as the network sees it."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def tracking_figure(runs: list[LabRun]) -> plt.Figure:
    """For runs made with ``track=True``: AUC of S against the true objects, and the mean of S, per epoch.

    The dashed line at AUC 0.5 is chance; below it the map is *inverted* (background above objects)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for run in runs:
        epochs = [r["epoch"] for r in run.history]
        axes[0].plot(epochs, [r.get("auc", np.nan) for r in run.history], "o-", ms=4, label=run.label)
        axes[1].plot(epochs, [r.get("mean_S", np.nan) for r in run.history], "o-", ms=4, label=run.label)
    if runs:
        axes[0].axhline(runs[0].prior_auc, color="gray", lw=1, label="the prior Ŝ")
    axes[0].axhline(0.5, color="k", ls="--", lw=1, label="chance (0.5)")
    axes[0].set(title="ROC AUC of S against the true objects", xlabel="epoch", ylabel="AUC", ylim=(0, 1))
    axes[1].set(title="mean of S over all pixels", xlabel="epoch", ylabel="mean S", ylim=(0, None))
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ======================================================================= 04–06 the pipeline
def cosegment_cached(collection: Collection, config: Config, folder: str | Path = "outputs/notebooks"):
    """:func:`cosegkit.cosegment` computed once and stored: the second call with the same images
    and config (here or in another notebook) loads the :class:`cosegkit.pipeline.Result` from
    ``folder/result_<version>_<fingerprint>_e<epochs>.pt`` instead of training and computing
    heat maps and proposals again. Delete the folder to recompute.
    """
    from . import __version__, atomic
    from .pipeline import cosegment
    from .train import collection_fingerprint

    fields = [f.name for f in dataclasses.fields(config) if f.name not in ("device", "progress")]
    path = (
        Path(folder) / f"result_{__version__}_{collection_fingerprint(collection, config, fields)}_e{config.epochs}.pt"
    )
    if path.exists():
        result = torch.load(path, map_location=config.torch_device, weights_only=False)
        print(f"Loaded the result computed earlier from {path} (delete it to recompute).")
        return result
    result = cosegment(collection, config)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.torch_save(result, path)
    return result


def _peak_xy(r, peaks) -> tuple[np.ndarray, np.ndarray]:
    """Image coordinates of peaks ``(K, 2)`` on the network grid of one :class:`ImageResult`."""
    return _cell_centre(r.image, r.logits.shape, np.asarray(peaks)[:, 0], np.asarray(peaks)[:, 1])


# ---------------------------------------------------------------------- 04 heat maps
@torch.no_grad()
def _network_input(result, i: int) -> torch.Tensor:
    from .pipeline import cosaliency

    net = result.fit.net
    return cosaliency(net, result[i].image, result.config.input_size_at_inference, next(net.parameters()).device)[0]


def gradient_heatmaps(result, i: int) -> np.ndarray:
    """Plain-gradient heat maps of every peak of image ``i`` (:func:`cosegkit.prm.gradient_backprop`),
    at the proposals' working resolution like ``result[i].heatmaps``: ``(M, h, w)``, ≥ 0."""
    from .prm import heatmaps

    r = result[i]
    if len(r.peaks) == 0:
        return np.zeros_like(r.heatmaps)
    x = _network_input(result, i)
    maps = heatmaps(result.fit.net, x, torch.from_numpy(r.peaks), out_size=r.heatmaps.shape[1:], method="gradient")
    return maps.detach().cpu().numpy()


def best_proposal(result, i: int, heatmap: np.ndarray) -> tuple[int, float]:
    """The proposal the ranking function picks for one heat map ``(h, w)`` of image ``i``, and its score R
    (with the result's ranking options, as :func:`cosegkit.ranking.select_instances` ranks)."""
    from .ranking import proposal_scores

    r = result[i]
    scores = proposal_scores(r.proposals, heatmap[None], r.saliency_work, r.prior_work, result.config.ranking)[:, 0]
    best = int(np.argmax(scores))
    return best, float(scores[best])


def heatmap_view(result, i: int, peak: int, gradient_maps: np.ndarray | None = None) -> plt.Figure:
    """One peak of image ``i``: the co-saliency map with all peaks (this one starred), its z⁺ heat map,
    its plain-gradient heat map (if ``gradient_maps (M, h, w)`` is given), and the proposal the
    ranking function picks from the z⁺ heat map. Heat maps are drawn scaled to their own maximum."""
    r = result[i]
    if not 0 <= peak < len(r.peaks):
        raise ValueError(f"Image {i} has {len(r.peaks)} peaks; peak must be in 0 … {len(r.peaks) - 1}.")
    panels = 4 if gradient_maps is not None else 3
    fig, axes = plt.subplots(1, panels, figsize=(4.3 * panels, 4.2))
    xs, ys = _peak_xy(r, r.peaks)
    used = np.zeros(len(r.peaks), bool)
    used[r.used_peaks(result.config.ranking.peak_threshold)] = True
    im = axes[0].imshow(r.saliency, cmap="magma", vmin=0, vmax=1)
    axes[0].plot(xs[used], ys[used], "c+", ms=10, mew=2, label="peaks ≥ threshold")
    axes[0].plot(xs[~used], ys[~used], "+", color="gray", ms=8, label="peaks below")
    axes[0].plot(xs[peak], ys[peak], "*", color="lime", ms=18, mec="k", label=f"peak {peak}")
    axes[0].legend(loc="lower right", fontsize=7)
    axes[0].set_title(
        f"co-saliency S, {len(r.peaks)} peaks of Z\npeak {peak}: Z = {r.peak_values[peak]:.2f}", fontsize=10
    )
    fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.02, label="S")
    maps = [("z⁺ rule (peak back-propagation)", r.heatmaps[peak])]
    if gradient_maps is not None:
        maps.append(("plain gradient |∂Z(peak)/∂image|", gradient_maps[peak]))
    for ax, (title, heat) in zip(axes[1:], maps):
        ax.imshow(r.image)
        im = ax.imshow(
            heat / max(float(heat.max()), 1e-12), cmap="jet", alpha=0.55, vmin=0, vmax=1, extent=_grid_extent(r.image)
        )
        ax.plot(xs[peak], ys[peak], "w*", ms=14, mec="k")
        top = heat >= np.quantile(heat, 0.9)  # where the top 10 % of the heat lies
        ax.set_title(
            f"{title}\n{100 * float(heat[top].sum() / max(heat.sum(), 1e-12)):.0f} % of the heat "
            "in its top 10 % of pixels",
            fontsize=9,
        )
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="heat / max")
    best, score = best_proposal(result, i, r.heatmaps[peak])
    mask = r.proposals.masks([best], out_shape=r.shape)[0]
    from .viz import overlay

    axes[-1].imshow(overlay(r.image, mask[None]))
    axes[-1].plot(xs[peak], ys[peak], "w*", ms=14, mec="k")
    axes[-1].set_title(f"proposal picked for this peak\n(out of {r.proposals.n}), R = {score:.3f}", fontsize=10)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    return fig


def heatmap_explorer(result, gradient: bool = True, gradient_maps: dict[int, np.ndarray] | None = None):
    """Dropdowns for the image and the peak; each image's gradient maps are computed on first use and
    cached (``gradient_maps``: those already computed, image index → ``(M, h, w)``)."""
    widgets = _widgets()
    cache: dict[int, np.ndarray] = dict(gradient_maps or {})
    image = widgets.Dropdown(
        options=[(f"{k}: {r.name}", k) for k, r in enumerate(result.images)], value=0, description="image"
    )
    peak = widgets.Dropdown(
        options=list(range(len(result[0].peaks))), value=0 if len(result[0].peaks) else None, description="peak"
    )

    def on_image(change):
        peak.options = list(range(len(result[change["new"]].peaks)))

    image.observe(on_image, names="value")

    def update(i, k):
        if k is None or k >= len(result[i].peaks):
            return
        if gradient and i not in cache:
            cache[i] = gradient_heatmaps(result, i)
        show(heatmap_view(result, i, k, cache.get(i)))

    out = widgets.interactive_output(update, {"i": image, "k": peak})
    return widgets.VBox([widgets.HBox([image, peak]), out])


def with_heatmaps(result, heatmaps: list[np.ndarray]):
    """A copy of ``result`` whose heat maps are replaced (one ``(M, h, w)`` per image, same peaks) and
    ranked again — e.g. plain-gradient maps instead of z⁺, to compare the two by mAPʳ."""
    from dataclasses import replace

    from .pipeline import select_all

    if len(heatmaps) != len(result) or any(h.shape != r.heatmaps.shape for h, r in zip(heatmaps, result.images)):
        raise ValueError("Give one (M, h, w) array per image, shaped like result[i].heatmaps.")
    images = [replace(r, heatmaps=h) for r, h in zip(result.images, heatmaps)]
    select_all(images, result.config)
    return replace(result, images=images)


# ---------------------------------------------------------------------- 05 ranking
def rerank_view(
    result,
    i: int = 0,
    beta: float = 0.8,
    gamma: float = 1e-5,
    nms_iou: float = 0.4,
    peak_threshold: str | float = "median",
    evaluate: bool = True,
):
    """Re-run only the ranking step (:meth:`Result.rerank`) and draw image ``i``.

    Returns ``(new_result, metrics, figure)``: metrics is ``Result.evaluate()`` of the whole
    collection (``None`` without ground truth or with ``evaluate=False``). The figure shows
    S with the peaks in use, and the chosen instances with their scores.
    """
    from .viz import show_instances

    new = result.rerank(beta=beta, gamma=gamma, nms_iou=nms_iou, peak_threshold=peak_threshold)
    has_truth = new.collection is not None and new.collection.has_ground_truth
    metrics = new.evaluate() if evaluate and has_truth else None
    r = new[i]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    im = axes[0].imshow(r.saliency, cmap="magma", vmin=0, vmax=1)
    used = r.used_peaks(peak_threshold)
    if len(r.peaks):
        xs, ys = _peak_xy(r, r.peaks)
        unused = np.setdiff1d(np.arange(len(r.peaks)), used)
        axes[0].plot(xs[used], ys[used], "c+", ms=11, mew=2, label=f"{len(used)} peaks in use")
        axes[0].plot(xs[unused], ys[unused], "+", color="gray", ms=8, label=f"{len(unused)} below the threshold")
        axes[0].legend(loc="lower right", fontsize=8)
    fig.colorbar(im, ax=axes[0], fraction=0.046, pad=0.02, label="co-saliency S")
    axes[0].set_title(f"{r.name}: co-saliency S and the peaks of Z\npeak threshold {peak_threshold!r}", fontsize=10)
    axes[0].axis("off")
    show_instances(r, ax=axes[1], title=f"{len(r.masks)} instance(s): β={beta:g}, γ={gamma:.1e}, NMS IoU {nms_iou:g}")
    if metrics is not None:
        fig.suptitle("whole collection: " + ", ".join(f"{k} {v:.3f}" for k, v in metrics.items()), fontsize=10)
    fig.tight_layout()
    return new, metrics, fig


def ranking_explorer(result, i: int = 0):
    """Sliders for β, γ (log scale), the NMS IoU and the peak threshold; every change calls
    :func:`rerank_view` — the ranking only, no training, no new heat maps or proposals."""
    widgets = _widgets()
    c = result.config.ranking
    style = {"description_width": "110px"}
    values = np.concatenate([r.peak_values for r in result.images if len(r.peak_values)] or [np.zeros(1)])
    lo, hi = float(values.min()), float(values.max())
    controls = dict(
        i=widgets.Dropdown(
            options=[(f"{k}: {r.name}", k) for k, r in enumerate(result.images)],
            value=i,
            description="image",
            style=style,
        ),
        beta=widgets.FloatSlider(
            value=c.beta, min=0, max=3, step=0.05, description="β (instance)", continuous_update=False, style=style
        ),
        gamma=widgets.FloatLogSlider(
            value=c.gamma,
            base=10,
            min=-8,
            max=-2,
            step=0.25,
            description="γ (background)",
            readout_format=".1e",
            continuous_update=False,
            style=style,
        ),
        nms_iou=widgets.FloatSlider(
            value=c.nms_iou, min=0.05, max=1.0, step=0.05, description="NMS IoU", continuous_update=False, style=style
        ),
        median=widgets.Checkbox(value=c.peak_threshold == "median", description="peak threshold = median of Z"),
        level=widgets.FloatSlider(
            value=float(np.median(values)),
            min=lo,
            max=hi,
            step=(hi - lo) / 100 or 0.01,
            description="or fixed Z ≥",
            continuous_update=False,
            style=style,
        ),
    )
    controls["level"].disabled = controls["median"].value
    controls["median"].observe(lambda change: setattr(controls["level"], "disabled", change["new"]), names="value")

    def update(i, beta, gamma, nms_iou, median, level):
        threshold = "median" if median else float(level)
        show(rerank_view(result, i, beta, gamma, nms_iou, threshold)[2])

    out = widgets.interactive_output(update, controls)
    layout = widgets.VBox(
        [
            widgets.HBox([controls["i"], controls["median"]]),
            widgets.HBox([controls["beta"], controls["gamma"]]),
            widgets.HBox([controls["nms_iou"], controls["level"]]),
            out,
        ]
    )
    return layout


# ---------------------------------------------------------------------- 06 evaluation
def pr_figure(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], title: str = "") -> plt.Figure:
    """Precision–recall curves, one per label: ``{label: (precision, recall, ap)}``. The legend gives each AP;
    the dashed step is the interpolated precision whose area is the AP."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for k, (label, (precision, recall, ap)) in enumerate(curves.items()):
        color = f"C{k}"
        ax.plot(recall, precision, "o-", ms=3, color=color, alpha=0.6, label=f"{label} (AP {ap:.3f})")
        if len(precision):
            interpolated = np.maximum.accumulate(precision[::-1])[::-1]
            ax.step(
                np.concatenate([[0], recall]),
                np.concatenate([[interpolated[0]], interpolated]),
                where="pre",
                ls="--",
                color=color,
                lw=1,
            )
    ax.set(
        xlabel="recall (fraction of true instances found)",
        ylabel="precision (fraction of predictions correct)",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=title or "precision–recall",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig
