"""Built-in backfill policies; importing this package registers them."""

from gigafactory.policy.backfill import easy, none

__all__ = ["easy", "none"]
