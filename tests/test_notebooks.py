"""The teaching notebooks and the explorers they use.

Notebooks: every ``notebooks/*.py`` (jupytext percent, the source) has an ``.ipynb`` twin with
the same cells, committed without outputs; all share one set-up cell. The notebooks themselves
are *run* by ``pytest --nbval-lax notebooks/`` (see notebooks/README.md).

Explorers (:mod:`cosegkit.widgets`): the pure view/update functions, on hand-made inputs with
known answers — no browser and no trained network needed, except two tiny trainings of the
random ``simple`` backbone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from cosegkit import widgets as W
from cosegkit.config import Config, preset
from cosegkit.correlation import co_peaks
from cosegkit.data import Collection
from cosegkit.evaluate import evaluate, map_r, precision_recall

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


# ====================================================================== notebook files
def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def test_the_seven_notebooks_exist():
    names = [p.stem for p in SOURCES]
    assert names == [
        "00_quickstart",
        "01_correlation_4d",
        "02_co_peaks",
        "03_losses",
        "04_peak_backprop",
        "05_ranking",
        "06_evaluation",
    ]
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == names, (
        "every notebook needs its .py source and vice versa"
    )


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_py_and_ipynb_are_in_sync(source):
    jupytext = pytest.importorskip("jupytext")
    from_py = jupytext.read(source)
    from_ipynb = jupytext.read(source.with_suffix(".ipynb"))
    assert _cells(from_py) == _cells(from_ipynb), (
        f"{source.name} and its .ipynb differ; regenerate with: "
        f"jupytext --to ipynb {source.relative_to(NOTEBOOKS.parent)}"
    )


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_has_no_outputs(source):
    raw = json.loads(source.with_suffix(".ipynb").read_text(encoding="utf-8"))
    for k, cell in enumerate(raw["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], (
                f"cell {k} of {source.stem}.ipynb has outputs; clear them before committing"
            )
            assert cell.get("execution_count") is None, f"cell {k} of {source.stem}.ipynb has an execution count"


def _first_code_cell(source: Path) -> str:
    jupytext = pytest.importorskip("jupytext")
    return next(c.source for c in jupytext.read(source).cells if c.cell_type == "code")


def test_every_notebook_starts_with_the_same_setup_cell():
    cells = {p.stem: _first_code_cell(p) for p in SOURCES}
    first = next(iter(cells.values()))
    for name, cell in cells.items():
        assert cell == first, f"{name}: the set-up cell differs from {SOURCES[0].stem}'s; keep them identical"
    assert '"google.colab" in sys.modules' in first
    urls = re.findall(r'^REPO_URL = "(.+?)"', first, flags=re.M)
    assert len(urls) == 1 and urls[0].startswith("https://"), "REPO_URL is defined once, as a constant"
    assert first.count("github.com") == 1, "the repository address appears only in REPO_URL"
    assert 'f"cosegkit[notebooks] @ git+{REPO_URL}"' in first
    assert "torch==" in first and "-c" in first, "torch is pinned to Colab's version so pip never reinstalls it"
    assert 'cosegkit.resolve_device("auto")' in first and "COSEGKIT_FAST" in first


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebooks_never_wait_for_a_person(source):
    text = source.read_text(encoding="utf-8")
    assert not re.search(r"(?<![\w.])input\(", text), "input() would block nbval"
    assert "device=str(DEVICE)" in text, "the notebook uses the device its set-up cell printed"


# ====================================================================== helpers
def test_fast_mode_reads_the_environment(monkeypatch):
    monkeypatch.setenv("COSEGKIT_FAST", "1")
    assert W.fast_mode()
    monkeypatch.setenv("COSEGKIT_FAST", "0")
    assert not W.fast_mode()
    monkeypatch.delenv("COSEGKIT_FAST")
    assert not W.fast_mode()


def test_example_collection_falls_back_to_synthetic(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COSEGKIT_DATA", str(tmp_path))  # an empty data folder
    collection = W.example_collection("pennfudan", n_images=3)
    assert len(collection) == 3 and collection.category == "ringed ellipse"
    assert "Note:" in capsys.readouterr().out
    with pytest.raises(ValueError, match="Unknown example collection"):
        W.example_collection("nope")


# ====================================================================== 01 correlation
def test_pair_tensors_are_inner_products_weighted_by_saliency():
    f_hat = torch.rand(3, 5, 2, 3)  # (N, C, h, w)
    s_low = torch.rand(3, 2, 3)
    T, Ts = W.pair_tensors(f_hat, s_low, 0, 2)
    assert T.shape == Ts.shape == (2, 3, 2, 3)
    assert torch.allclose(T[1, 2, 0, 1], (f_hat[0, :, 1, 2] * f_hat[2, :, 0, 1]).sum())
    assert torch.allclose(Ts, s_low[0][:, :, None, None] * s_low[2][None, None] * T)


def test_correlation_view_draws_the_slice_of_p():
    images = [np.zeros((40, 60, 3), np.uint8), np.zeros((50, 30, 3), np.uint8)]
    f_hat, s_low = torch.rand(2, 4, 3, 3), torch.rand(2, 3, 3)
    T, Ts = W.pair_tensors(f_hat, s_low, 0, 1)
    fig = W.correlation_view(images[0], images[1], T, Ts, s_low[0], s_low[1], row=2, col=1)
    heat = fig.axes[1].images[-1]  # T(p, ·) over image m
    assert np.allclose(heat.get_array(), T[2, 1].numpy())
    assert heat.get_extent() == [0, 30, 50, 0]  # stretched over image m
    assert np.allclose(fig.axes[3].images[-1].get_array(), Ts[2, 1].numpy())
    with pytest.raises(ValueError, match="outside"):
        W.correlation_view(images[0], images[1], T, Ts, s_low[0], s_low[1], row=3, col=0)


# ====================================================================== 02 co-peaks
def test_copeak_list_finds_two_spikes_strongest_first():
    Ts = torch.zeros(4, 4, 4, 4)
    Ts += 0.01 * torch.arange(256, dtype=torch.float32).view(4, 4, 4, 4) / 256  # a gentle slope, max at the far corner
    Ts[0, 0, 1, 1] = 0.5
    Ts[2, 1, 0, 3] = 0.9
    peaks, values = W.copeak_list(Ts, window=3, threshold="median")
    assert peaks[:2].tolist() == [[2, 1, 0, 3], [0, 0, 1, 1]]
    assert np.allclose(values[:2], [0.9, 0.5])
    assert np.all(np.diff(values) <= 0)
    mask = co_peaks(Ts[None])[0]
    assert len(peaks) == int(mask.sum()) and all(bool(mask[tuple(p)]) for p in peaks)


def test_copeaks_view_reports_the_count():
    Ts = torch.zeros(3, 3, 3, 3)
    Ts[1, 1, 1, 1] = 1.0
    image = np.zeros((30, 30, 3), np.uint8)
    peaks, values, fig = W.copeaks_view(image, image, Ts, window=3, threshold="median")
    # every entry of a 3⁴ tensor is in the centre's window, so the spike is the only maximum
    assert peaks.tolist() == [[1, 1, 1, 1]] and values.tolist() == [1.0]
    assert "1 co-peaks among 81 pairs" in fig.get_suptitle()


# ====================================================================== 03 training
def test_saliency_auc_hand_computed():
    labels = np.array([False, False, True, True])
    assert W.saliency_auc(np.array([0.1, 0.4, 0.35, 0.8]), labels) == pytest.approx(0.75)  # 3 of 4 pairs ordered
    assert W.saliency_auc(np.array([0.9, 0.8, 0.1, 0.2]), labels) == pytest.approx(0.0)  # inverted
    assert W.saliency_auc(np.full(4, 0.3), labels) == pytest.approx(0.5)  # ties count one half
    assert np.isnan(W.saliency_auc(np.ones(4), np.ones(4, bool)))


def test_foreground_at_resizes_the_union():
    masks = np.zeros((2, 4, 8), bool)
    masks[0, :2, :4] = True
    masks[1, 2:, 6:] = True
    expected = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]], bool)
    assert np.array_equal(W.foreground_at(masks, 4), expected)


def _simple_config(**changes) -> Config:
    settings = dict(backbone="simple", pretrained=False, image_size=64, epochs=2, trainable_blocks=None, device="cpu")
    return preset("tiny").replace(**{**settings, **changes})


def test_training_lab_caches_runs(monkeypatch):
    import cosegkit.train as train

    calls = []
    real_fit = train.fit
    monkeypatch.setattr(train, "fit", lambda *a, **k: calls.append(1) or real_fit(*a, **k))
    from cosegkit.datasets import synthetic_collection

    lab = W.TrainingLab(synthetic_collection(2, size=(64, 64)), _simple_config())
    first = lab.run()
    assert lab.run(alpha=lab.config.alpha) is first, "the preset's own value is the same run"
    assert len(calls) == 1
    tracked = lab.run(track=True, lambda_affinity=0.0)
    assert len(calls) == 2 and tracked.settings == {"lambda_affinity": 0.0}
    assert len(tracked.history) == 2 and all(0 <= h["auc"] <= 1 and 0 < h["mean_S"] < 1 for h in tracked.history)
    assert first.saliency.shape == (2, 64, 64) and 0 <= first.auc <= 1
    plt.close(W.loss_curves_figure([first, tracked]))
    plt.close(W.tracking_figure([tracked]))


def test_training_lab_button_handler():
    pytest.importorskip("ipywidgets")
    from cosegkit.datasets import synthetic_collection

    lab = W.TrainingLab(synthetic_collection(2, size=(64, 64)), _simple_config(epochs=1))
    box = lab.widget()
    box.train()  # what a click does
    assert len(box.runs) == 1 and len(lab.cache) == 1
    box.train()  # same settings again: from the cache, no second run
    assert len(box.runs) == 1 and len(lab.cache) == 1


def test_fit_cached_trains_once(tmp_path):
    from cosegkit.datasets import synthetic_collection

    collection, config = synthetic_collection(2, size=(64, 64)), _simple_config(epochs=1)
    epochs = []
    first = W.fit_cached(collection, config, folder=tmp_path, callback=lambda e, r, n: epochs.append(e))
    second = W.fit_cached(collection, config, folder=tmp_path, callback=lambda e, r, n: epochs.append(e))
    assert epochs == [0], "the second call loads the checkpoint instead of training"
    assert len(list(tmp_path.glob("fit_*.pt"))) == 1
    assert torch.equal(first.net.head.weight, second.net.head.weight)


# ====================================================================== 04–06 on a hand-made result
def _square_result(n_images: int = 2):
    """A Result built by hand: 32 × 32 images, each with one square object, a 4 × 4 logit grid,
    one peak on the object and one on the background, and 4 proposals (the square, a box around
    it, a background patch, the left half)."""
    from cosegkit.pipeline import ImageResult, Result, select_all
    from cosegkit.proposals import Proposals

    images, truth = [], []
    for n in range(n_images):
        top = 4 + 8 * n
        square = np.zeros((32, 32), bool)
        square[top : top + 12, 8:20] = True
        box = np.zeros((32, 32), bool)
        box[max(top - 4, 0) : top + 16, 4:24] = True
        patch = np.zeros((32, 32), bool)
        patch[26:31, 26:31] = True
        left = np.zeros((32, 32), bool)
        left[:, :16] = True
        logits = np.full((4, 4), -2.0, np.float32)
        logits[(top + 6) // 8, 1] = 2.0
        logits[3, 3] = -1.0
        heat_object = square.astype(np.float32)
        heat_background = patch.astype(np.float32)
        saliency = np.where(square, 0.9, 0.05).astype(np.float32)
        image = np.zeros((32, 32, 3), np.uint8)
        image[square] = 200
        images.append(
            ImageResult(
                name=f"square_{n}",
                image=image,
                logits=logits,
                saliency=saliency,
                saliency_work=saliency,
                prior_work=saliency,
                peaks=np.array([[(top + 6) // 8, 1], [3, 3]]),
                peak_values=np.array([2.0, -1.0], np.float32),
                heatmaps=np.stack([heat_object, heat_background]),
                proposals=Proposals.from_masks(np.stack([square, box, patch, left])),
            )
        )
        truth.append(square[None])
    config = preset("tiny")
    select_all(images, config)
    collection = Collection([r.image for r in images], names=[r.name for r in images], gt_masks=truth)
    return Result(images=images, config=config, collection=collection)


def test_rerank_view_passes_every_setting():
    result = _square_result()
    new, metrics, fig = W.rerank_view(result, 1, beta=0.5, gamma=1e-4, nms_iou=0.3, peak_threshold=0.0)
    ranking = new.config.ranking
    assert (ranking.beta, ranking.gamma, ranking.nms_iou, ranking.peak_threshold) == (0.5, 1e-4, 0.3, 0.0)
    assert metrics == new.evaluate() and metrics["mAP_r@0.5"] == 1.0
    assert all(len(r.masks) == 1 for r in new.images), "the background peak (Z = −1) is below the threshold 0"
    assert np.array_equal(new[1].masks[0], result.collection.gt_masks[1][0])
    nothing, metrics, _ = W.rerank_view(result, 0, peak_threshold=5.0)
    assert nothing.n_instances == 0 and metrics["mAP_r@0.25"] == 0.0
    assert result.config.ranking.peak_threshold == "median", "the original result is left as it was"


def test_best_proposal_follows_the_heat_map():
    result = _square_result()
    r = result[0]
    assert W.best_proposal(result, 0, r.heatmaps[0])[0] == 0  # heat on the square → the square
    assert W.best_proposal(result, 0, r.heatmaps[1])[0] == 2  # heat on the patch → the patch
    fig = W.heatmap_view(result, 0, 0, gradient_maps=r.heatmaps[::-1].copy())
    assert len(fig.axes) >= 4
    with pytest.raises(ValueError, match="peaks"):
        W.heatmap_view(result, 0, 5)


def test_with_heatmaps_changes_the_choice():
    result = _square_result()
    swapped = W.with_heatmaps(result, [r.heatmaps[::-1].copy() for r in result.images])  # peaks swap their heat maps

    def choice(r):  # peak → chosen proposal
        return dict(zip(r.instance_peaks.tolist(), r.proposal_indices.tolist()))

    assert choice(result[0]) == {0: 0, 1: 2} and choice(swapped[0]) == {0: 2, 1: 0}
    assert choice(result[0]) == {0: 0, 1: 2}, "the original result is unchanged"
    with pytest.raises(ValueError):
        W.with_heatmaps(result, [result[0].heatmaps])


def test_precision_recall_hand_computed():
    gt = np.zeros((2, 8, 8), bool)
    gt[0, :4, :4] = True
    gt[1, 4:, 4:] = True
    wrong = np.zeros((8, 8), bool)
    wrong[:4, 4:] = True
    predictions = [(np.stack([gt[0], wrong, gt[1]]), np.array([0.9, 0.8, 0.3]))]
    precision, recall, ap = precision_recall(predictions, [gt], iou=0.5)
    assert np.allclose(precision, [1.0, 0.5, 2 / 3]) and np.allclose(recall, [0.5, 0.5, 1.0])
    assert ap == pytest.approx(0.5 * 1.0 + 0.5 * 2 / 3)
    assert ap == pytest.approx(map_r(predictions, [gt])[0.5])
    plt.close(W.pr_figure({"x": (precision, recall, ap)}))


def test_precision_recall_matches_evaluate_on_the_square_result():
    result = _square_result(3).rerank(peak_threshold="median")
    for t in (0.25, 0.5):
        assert precision_recall(result.predictions(), result.collection.gt_masks, t)[2] == pytest.approx(
            evaluate(result.predictions(), result.collection.gt_masks)[f"mAP_r@{t}"]
        )


def test_cosegment_cached_computes_once(tmp_path, monkeypatch):
    import cosegkit.pipeline as pipeline

    calls = []
    monkeypatch.setattr(pipeline, "cosegment", lambda collection, config: calls.append(1) or {"n": len(collection)})
    from cosegkit.datasets import synthetic_collection

    collection = synthetic_collection(2, size=(32, 32))
    assert W.cosegment_cached(collection, preset("tiny", device="cpu"), folder=tmp_path) == {"n": 2}
    assert W.cosegment_cached(collection, preset("tiny", device="cpu"), folder=tmp_path) == {"n": 2}
    assert len(calls) == 1
    W.cosegment_cached(collection, preset("tiny", device="cpu", beta=0.5), folder=tmp_path)
    assert len(calls) == 2, "another config is another result"


def test_timed_closes_the_figures():
    before = len(plt.get_fignums())
    (_, fig), seconds = W.timed(lambda: (1, plt.figure()))
    assert seconds >= 0 and len(plt.get_fignums()) == before
