"""Readers for real traces. Each takes paths (the data stays outside the repository) and builds the project's
own :class:`~gigafactory.core.topology.Topology` and :class:`~gigafactory.twin.workload.Workload` types."""
