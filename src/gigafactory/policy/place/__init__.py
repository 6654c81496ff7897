"""Built-in placement policies; importing this package registers them."""

from gigafactory.policy.place import (
    best_fit,
    dot_product,
    fgd,
    fgd_best_fit,
    fgd_joint,
    fgd_multiples,
    fgd_outlook,
    fgd_scarcity,
    first_fit,
    gpu_clustering,
    gpu_packing,
    packing,
    random,
    topology,
)

__all__ = [
    "best_fit",
    "dot_product",
    "fgd",
    "fgd_best_fit",
    "fgd_joint",
    "fgd_multiples",
    "fgd_outlook",
    "fgd_scarcity",
    "first_fit",
    "gpu_clustering",
    "gpu_packing",
    "packing",
    "random",
    "topology",
]
