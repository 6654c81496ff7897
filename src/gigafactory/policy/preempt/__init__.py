"""Built-in preemption policies; importing this package registers them."""

from gigafactory.policy.preempt import by_priority, no_preempt, reclaim

__all__ = ["by_priority", "no_preempt", "reclaim"]
