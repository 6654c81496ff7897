"""Built-in route policies (which site of a network gets a job); importing this package registers them."""

from gigafactory.policy.route import earliest_start, energy, least_loaded, random_site, residency

__all__ = ["earliest_start", "energy", "least_loaded", "random_site", "residency"]
