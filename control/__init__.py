"""The control plane: HTTP API for orgs, live inputs, stream keys, playback tokens.

Run it with ``clutchcall control --http HOST:PORT``; build the ASGI app with
:func:`control.app.create_app`. Storage is in :mod:`control.store`.
"""

__all__: list[str] = []
