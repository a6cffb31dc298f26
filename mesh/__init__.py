"""What every node shares: relay core, topology, auth, settings, metrics."""
