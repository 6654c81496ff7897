"""The dashboard, served by the API: see :mod:`.pages`."""
