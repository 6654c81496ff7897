"""Built-in order policies; importing this package registers them."""

from gigafactory.policy.order import fifo, priority, sjf

__all__ = ["fifo", "priority", "sjf"]
