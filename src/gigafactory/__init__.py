"""gigafactory: the open operating layer for AI gigafactories.

One pure, deterministic scheduling engine (``gigafactory.engine.Engine``) driven by two clocks: the digital
twin (``gigafactory.twin``) on a virtual clock and the live control plane on the wall clock.
"""

__version__ = "0.1.0"

from gigafactory import _native

_native.install()  # before any compiled module can be imported: use the compiled engine only if it is current
