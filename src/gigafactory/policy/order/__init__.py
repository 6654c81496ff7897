"""Built-in order policies; importing this package registers them."""

from gigafactory.policy.order import fair_share, fifo, las, priority, sjf

__all__ = ["fair_share", "fifo", "las", "priority", "sjf"]
