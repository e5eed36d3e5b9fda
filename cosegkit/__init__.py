"""cosegkit — instance co-segmentation (DeepCO3) you can read, run and teach with.

>>> import cosegkit
>>> result = cosegkit.cosegment("my_images/", config=cosegkit.preset("lite"))   # doctest: +SKIP
>>> result.show(0); result.to_coco("instances.json")                           # doctest: +SKIP
"""

from .config import PRESETS, Config, preset, resolve_device

__version__ = "0.1.0"

__all__ = [
    "Config",
    "preset",
    "PRESETS",
    "resolve_device",
    "load_collection",
    "Collection",
    "fit",
    "cosegment",
    "Result",
]


def __getattr__(name):  # lazy imports keep `import cosegkit` fast
    if name in {"load_collection", "Collection"}:
        from . import data

        return getattr(data, name)
    if name == "fit":
        from .train import fit

        return fit
    if name in {"cosegment", "Result"}:
        from . import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'cosegkit' has no attribute {name!r}")
