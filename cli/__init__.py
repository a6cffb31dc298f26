"""The ``clutchcall`` command: one entry point for every role and tool."""
