"""Built-in placement policies; importing this package registers them."""

from gigafactory.policy.place import best_fit, first_fit, packing, random, topology

__all__ = ["best_fit", "first_fit", "packing", "random", "topology"]
