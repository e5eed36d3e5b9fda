"""Fixed tune / report splits of the real collections: settings are chosen on one half, quoted on the other.

- Penn-Fudan: tune on the Fudan images (``FudanPed*``), report on the Penn images (``PennPed*``) — two campuses.
- Every other collection (balloon, each ``coco_val_subset`` category, your own): its images sorted by
  name, alternately tune (1st, 3rd, …) and report (2nd, 4th, …).

The rule reads only the names, so a split is the same on every machine and for every run.
"""

from __future__ import annotations

from ..data import Collection

SPLITS = ("tune", "report", "all")


def split_indices(names: list[str], collection: str, split: str) -> list[int]:
    """Indices (in the given order) of the images of ``split`` ("tune", "report" or "all") of a collection.

    >>> split_indices(["b", "a", "c", "d"], "balloon", "tune"), split_indices(["b", "a", "c", "d"], "balloon", "report")
    ([1, 2], [0, 3])
    >>> split_indices(["FudanPed00001", "PennPed00001"], "Penn-Fudan", "report")
    [1]
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
    if split == "all":
        return list(range(len(names)))
    if collection == "Penn-Fudan":
        prefix = "FudanPed" if split == "tune" else "PennPed"
        return [i for i, name in enumerate(names) if name.startswith(prefix)]
    order = sorted(range(len(names)), key=lambda i: names[i])
    chosen = set(order[0::2] if split == "tune" else order[1::2])
    return [i for i in range(len(names)) if i in chosen]


def split_collection(collection: Collection, name: str, split: str) -> Collection:
    """The ``split`` of a collection called ``name`` (see :func:`split_indices`)."""
    return collection.subset(split_indices(list(collection.names), name, split))
