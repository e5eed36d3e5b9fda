"""Stage 1 — co-peak search: optimise the co-saliency network on the collection itself.

One epoch shuffles the N images and visits them in batches of ``batch_size`` (6);
a short last batch is filled with randomly repeated images, never opposite
themselves. Inside a batch of six the pairs are (1, 4), (2, 5), (3, 6). For every batch:

    loss = Σ_pairs [λt · co-peak loss + λa · affinity loss] + Σ_images saliency loss

The losses are :func:`cosegkit.losses.training_losses`. The optimiser is Adam with classic (coupled)
L2 weight decay; biases learn ``BIAS_LR_MULT`` (2) times faster; batch-norm scale and shift learn at
the plain rate, undecayed. With ``Config.trainable_blocks = k`` only the last k backbone blocks and the
head are trained and the frozen front is computed once.

Checkpoints are written atomically after every epoch; ``fit(..., resume=True)``
continues an interrupted run and ends exactly where an uninterrupted run ends.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import atomic
from .config import TRAINING_FIELDS, Config
from .correlation import FEATURE_CENTERINGS
from .data import Collection
from .ddt import ddt_head
from .losses import loss_options, training_losses
from .model import CoSaliencyNet, to_input

# Adam as in the paper's code (spec §5): default betas, biases learn twice as fast, L2 weight decay on weights.
ADAM_BETAS = (0.9, 0.999)
BIAS_LR_MULT = 2.0
WEIGHT_DECAY = 5e-4


class TrainingDivergedError(RuntimeError):
    """A loss became NaN or infinite."""


@dataclass
class FitResult:
    """What training returns: the trained network and what it saw."""

    net: CoSaliencyNet  # trained network, eval mode
    config: Config
    history: list[dict] = field(default_factory=list)  # one dict per epoch: mean losses
    priors: torch.Tensor | None = None  # (N, S, S) saliency prior at the network input size
    inputs: torch.Tensor | None = None  # (N, 3, S, S) images in [0, 1] at the network input size


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def batch_plan(n_images: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of batches: a shuffled order cut into ``batch_size`` pieces; a short last
    batch is filled with randomly chosen images (repeats). Returns a list of index arrays (batch_size,).

    No image is ever paired with itself (:func:`cosegkit.losses.pair_indices`: position k against k + B/2), whose
    correlation would be trivial (Tᵢᵢ's diagonal ≈ 1): a filler that lands opposite an image is drawn
    uniformly from the other N − 1 images; any other filler from all N. With N ≥ 2 that always works.

    >>> [b.tolist() for b in batch_plan(4, 6, np.random.default_rng(0))]  # doctest: +SKIP
    [[2, 3, 0, 1, 3, 1]]
    """
    order = rng.permutation(n_images)
    batches = [order[i : i + batch_size] for i in range(0, n_images, batch_size)]
    if len(batches[-1]) < batch_size:
        last = batches[-1].tolist()
        half = batch_size // 2
        for j in range(len(last), batch_size):
            if half <= j < 2 * half:  # opposite position j − half, already filled: anything but that image
                pick = int(rng.integers(n_images - 1))
                last.append(pick + (pick >= last[j - half]))
            else:  # its partner (if any) comes later and will avoid it
                last.append(int(rng.integers(n_images)))
        batches[-1] = np.asarray(last, dtype=order.dtype)
    return batches


def batch_losses(
    net: CoSaliencyNet, front: torch.Tensor, priors: torch.Tensor, config: Config
) -> dict[str, torch.Tensor]:
    """All losses of one batch: the network's outputs fed to :func:`cosegkit.losses.training_losses`.

    front (B, C', h', w'): output of the frozen front (the images themselves when nothing is frozen);
    priors (B, S, S). Returns the scalar ``total`` and its three parts, each already summed over pairs/images.
    """
    features = net.tail(front, config.trainable_blocks)
    out = net.heads(features, out_size=priors.shape[-2:])
    return training_losses(features, out.saliency_low, out.saliency, priors, **loss_options(config))


def make_optimizer(net: CoSaliencyNet, config: Config) -> torch.optim.Adam:
    """Adam with five groups: backbone weights, biases and batch-norm parameters (lr, lr·bias_mult, lr) and head
    weights and biases (lr_head, lr_head·bias_mult). Weight decay (coupled L2) on weights only.

    Batch-norm scale and shift are neither weights nor biases of a convolution: they get the plain learning rate
    (not the bias multiplier, a MatConvNet habit for convolution biases) and no weight decay (decaying a scale
    towards 0 would shrink the layer's output, not regularise it), as most codebases do.
    """
    lr_head = config.lr_head if config.lr_head is not None else config.lr
    norm_params = {
        id(p) for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for p in m.parameters()
    }
    groups = {"backbone_w": [], "backbone_b": [], "backbone_norm": [], "head_w": [], "head_b": []}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        part = "head" if name.startswith("head.") else "backbone"
        kind = "norm" if id(p) in norm_params else "b" if p.ndim == 1 else "w"
        groups[f"{part}_{kind}"].append(p)
    settings = {
        "backbone_w": (config.lr, WEIGHT_DECAY),
        "backbone_b": (config.lr * BIAS_LR_MULT, 0.0),
        "backbone_norm": (config.lr, 0.0),
        "head_w": (lr_head, WEIGHT_DECAY),
        "head_b": (lr_head * BIAS_LR_MULT, 0.0),
    }
    param_groups = [
        {"params": params, "lr": settings[k][0], "weight_decay": settings[k][1], "name": k}
        for k, params in groups.items()
        if params
    ]
    return torch.optim.Adam(param_groups, betas=ADAM_BETAS)


def collection_fingerprint(collection: Collection, config: Config, fields=TRAINING_FIELDS) -> str:
    """A hash of the images and of the config ``fields`` (default: :data:`cosegkit.config.TRAINING_FIELDS`,
    every field that changes training, so a checkpoint resumes after any inference option changed)."""
    h = hashlib.sha256()
    for name, image in zip(collection.names, collection.images):
        h.update(name.encode())
        h.update(str(image.shape).encode())
        h.update(hashlib.sha256(np.ascontiguousarray(image[::7, ::7])).digest())
    values = {k: getattr(config, k) for k in fields}
    h.update(json.dumps(values, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def compute_priors(collection: Collection, config: Config, user_maps=None) -> torch.Tensor:
    """Saliency prior Ŝ for every image at the network input size: (N, S, S) in [0, 1]."""
    from .saliency import prior_maps

    maps = prior_maps(collection, config, user_maps=user_maps, out_size=(config.image_size, config.image_size))
    priors = torch.stack([torch.as_tensor(np.asarray(m), dtype=torch.float32) for m in maps]).clamp(0, 1)
    if not torch.isfinite(priors).all():
        raise ValueError("A saliency prior map contains NaN or infinite values; check the maps you passed.")
    return priors


@torch.no_grad()
def compute_front(
    net: CoSaliencyNet, inputs: torch.Tensor, config: Config, device: torch.device, chunk: int = 8
) -> torch.Tensor:
    """Output of the frozen front for every image, computed once: (N, C', h', w') on the CPU."""
    if config.trainable_blocks is None:
        return net.normalize(inputs)
    net.eval()
    parts = [
        net.front(net.normalize(inputs[i : i + chunk].to(device)), config.trainable_blocks).cpu()
        for i in range(0, len(inputs), chunk)
    ]
    return torch.cat(parts)


HEAD_INITS = ("zero", "prior_mean", "ddt")


@torch.no_grad()
def init_head_ddt(
    net: CoSaliencyNet, front: torch.Tensor, priors: torch.Tensor, config: Config, chunk: int = 8
) -> None:
    """Start the head as DDT (:func:`cosegkit.ddt.ddt_head`): the collection's first principal direction
    of the features F it reads, scaled and shifted to match the priors. front (N, C', h', w'), priors (N, S, S)."""
    device = next(net.parameters()).device
    features = torch.cat(
        [net.tail(front[i : i + chunk].to(device), config.trainable_blocks).cpu() for i in range(0, len(front), chunk)]
    )
    weight, bias = ddt_head(features, priors.cpu())
    net.head.weight.copy_(weight.reshape(net.head.weight.shape).to(net.head.weight))
    net.head.bias.fill_(bias)


def fit(
    collection: Collection,
    config: Config | None = None,
    *,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    priors: torch.Tensor | None = None,
    user_maps=None,
    callback=None,
) -> FitResult:
    """Train the co-saliency network on ``collection`` (stage 1 of DeepCO3).

    Args:
        collection: at least 2 images of one category.
        config: a :class:`Config` (default: ``preset()``, the default preset).
        checkpoint: file written atomically after every epoch (None: no checkpoint).
        resume: continue from ``checkpoint`` if it exists and belongs to the same images and the same values of
            every field that changes training (:data:`cosegkit.config.TRAINING_FIELDS`; inference options and
            ``epochs`` may differ).
        priors: (N, S, S) saliency priors at the input size (computed when None).
        user_maps: the user's own saliency maps (see :func:`cosegkit.saliency.prior_maps`).
        callback: called as ``callback(epoch, record, net)`` after every epoch (e.g. live plots).

    Returns:
        :class:`FitResult` with the trained network in eval mode and the loss history.
    """
    from .config import preset

    config = config or preset()
    if len(collection) < 2:
        raise ValueError("Instance co-segmentation needs at least 2 images of the same category.")
    device = config.torch_device
    seed_everything(config.seed)
    rng = np.random.default_rng(config.seed)

    inputs = to_input(collection.images, config.image_size)
    if priors is None:
        priors = compute_priors(collection, config, user_maps)
    if config.head_init not in HEAD_INITS:
        raise ValueError(f"head_init must be one of {HEAD_INITS}, got {config.head_init!r}")
    if config.feature_centering not in FEATURE_CENTERINGS:  # fail before any work, not at the first batch
        raise ValueError(f"feature_centering must be one of {FEATURE_CENTERINGS}, got {config.feature_centering!r}")
    net = CoSaliencyNet.from_config(config).to(device)
    if config.head_init == "prior_mean":
        net.init_head_bias(float(priors.mean()))
    net.set_trainable(config.trainable_blocks)
    optimizer = make_optimizer(net, config)
    history: list[dict] = []
    start_epoch = 0

    fingerprint = collection_fingerprint(collection, config)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    saved = None  # (checkpoint, epochs it holds) once this run has loaded or written one
    if resume and checkpoint is not None and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=False)
        if state.get("fingerprint") != fingerprint:
            raise ValueError(
                f"The checkpoint {checkpoint} belongs to other images or another configuration; "
                "delete it or pass resume=False to start afresh."
            )
        net.load_state_dict(state["trainable"], strict=False)
        optimizer.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        history = state["history"]
        start_epoch = state["epoch"] + 1
        saved = (checkpoint, start_epoch)

    front = compute_front(net, inputs, config, device)
    if config.head_init == "ddt" and start_epoch == 0:
        init_head_ddt(net, front, priors, config)
    net.train()
    epochs = range(start_epoch, config.epochs)
    bar = tqdm(
        epochs,
        desc="co-peak search",
        unit="epoch",
        disable=not config.progress,
        initial=start_epoch,
        total=config.epochs,
    )
    for epoch in bar:
        sums = {"total": 0.0, "copeak": 0.0, "affinity": 0.0, "saliency": 0.0, "copeaks_per_pair": 0.0}
        batches = batch_plan(len(collection), config.batch_size, rng)
        for batch in batches:
            index = torch.from_numpy(batch)
            losses = batch_losses(net, front[index].to(device), priors[index].to(device), config)
            if not torch.isfinite(losses["total"]):
                parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in losses.items())
                raise TrainingDivergedError(_diverged(epoch, f"a loss is not finite ({parts})", saved))
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            grads = [(name, p.grad) for name, p in net.named_parameters() if p.grad is not None]
            if not torch.stack([torch.isfinite(g).all() for _, g in grads]).all():  # one device sync per step
                # checked before the step, so the network and the checkpoint keep their last finite values
                bad = [name for name, g in grads if not torch.isfinite(g).all()]
                names = ", ".join(bad[:3]) + (", …" if len(bad) > 3 else "")
                raise TrainingDivergedError(_diverged(epoch, f"the gradient of {names} is not finite", saved))
            optimizer.step()
            for k in sums:
                sums[k] += float(losses[k].detach()) / len(batches)
        record = {"epoch": epoch + 1, **sums}
        history.append(record)
        bar.set_postfix(
            copeak=f"{sums['copeak']:.3f}", affinity=f"{sums['affinity']:.3f}", saliency=f"{sums['saliency']:.4f}"
        )
        if checkpoint is not None:
            trainable = {k: v.detach().cpu() for k, v in net.state_dict().items() if _is_trained(net, k)}
            atomic.torch_save(
                {
                    "epoch": epoch,
                    "trainable": trainable,
                    "optimizer": optimizer.state_dict(),
                    "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                    "fingerprint": fingerprint,
                    "config": config.to_dict(),
                },
                checkpoint,
            )
            saved = (checkpoint, epoch + 1)
        if callback is not None:
            callback(epoch, record, net)
    net.eval()
    return FitResult(net=net, config=config, history=history, priors=priors, inputs=inputs)


def _diverged(epoch: int, what: str, saved: tuple[Path, int] | None) -> str:
    """The message of a ``TrainingDivergedError``: where, what, what to do, and the checkpoint that is kept.

    ``saved``: (checkpoint path, number of epochs it holds) of this run, or None."""
    message = (
        f"Training diverged at epoch {epoch + 1}: {what}. Lower the learning rates (Config.lr, Config.lr_head) "
        "or check the saliency priors for NaN."
    )
    if saved is not None:
        message += f" The last good checkpoint (after epoch {saved[1]}) is kept at {saved[0]}."
    return message


def _is_trained(net: CoSaliencyNet, key: str) -> bool:
    """State-dict entries that training changes: trainable parameters (of trainable blocks) and the head."""
    params = dict(net.named_parameters())
    if key in params:
        return params[key].requires_grad
    return False


def load_checkpoint_into(net: CoSaliencyNet, checkpoint: str | Path) -> dict:
    """Load the trained parameters of a checkpoint into ``net``; returns the checkpoint dict."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    net.load_state_dict(state["trainable"], strict=False)
    return state
