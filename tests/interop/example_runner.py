"""Run one of aiomoqt's examples unchanged, recording what it receives.

    python tests/interop/example_runner.py sub_example RECORD.json URL [example flags...]

The example's own ``main`` runs; only its statistics hook (sub_example) and the
sessions' fetch-object hook (join_example) are wrapped so that every received
(group, object) is written to RECORD.json at exit, which lets the test check
that nothing was lost.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
from pathlib import Path

import aiomoqt

EXAMPLES = Path(aiomoqt.__file__).parent / "examples"


def main() -> None:
    name, record_path, *argv = sys.argv[1:]
    # "join_example:6" runs the example for at most 6 s (join_example waits for the
    # session to close and never stops on its own). "join_example:6:namespace" also has
    # its SUBSCRIBE_NAMESPACE ask for NAMESPACE messages only (draft-16 Subscribe
    # Options 0x01, as aiomoqt's interop client does) instead of its default PUBLISH.
    name, _, rest = name.partition(":")
    limit, _, options = rest.partition(":")
    source = EXAMPLES / f"{name}.py"
    namespace: dict[str, object] = {"__name__": "aiomoqt_example", "__file__": str(source)}
    exec(compile(source.read_text(), str(source), "exec"), namespace)
    received: list[tuple[int, int]] = []
    # Objects of FETCH streams (join_example): recorded through aiomoqt's own
    # session-wide on_fetch_object hook, installed on every session it creates.
    import aiomoqt.protocol as protocol

    mixin = protocol._MOQTSessionMixin
    original_init = mixin.__init__

    def init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original_init(self, *args, **kwargs)
        self.on_fetch_object = lambda msg, *_: received.append(
            (int(msg.group_id), int(msg.object_id))
        )

    mixin.__init__ = init  # type: ignore[method-assign]
    if options == "namespace":
        subscribe_namespace = mixin.subscribe_namespace

        async def namespace_only(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            kwargs.setdefault("subscribe_options", 0x01)
            return await subscribe_namespace(self, *args, **kwargs)

        mixin.subscribe_namespace = namespace_only  # type: ignore[method-assign]
    elif options:
        raise SystemExit(f"unknown example option {options!r}")
    stats_cls = namespace.get("SimpleStats")
    if stats_cls is not None:
        original = stats_cls.on_object  # type: ignore[attr-defined]

        def on_object(self, msg, size, recv_us, group_id=None, subgroup_id=None):  # type: ignore[no-untyped-def]
            received.append(
                (int(group_id if group_id is not None else msg.group_id), int(msg.object_id))
            )
            return original(self, msg, size, recv_us, group_id, subgroup_id)

        stats_cls.on_object = on_object  # type: ignore[attr-defined]
    sys.argv = [str(source), *argv]
    args = namespace["parse_args"]()  # type: ignore[operator]
    namespace["args"] = args
    run = namespace["main"]
    params = inspect.signature(run).parameters  # type: ignore[arg-type]
    mapping = {"track_name": "trackname"}
    kwargs = {
        p: getattr(args, mapping.get(p, p)) for p in params if hasattr(args, mapping.get(p, p))
    }

    async def bounded() -> None:
        try:
            async with asyncio.timeout(float(limit) if limit else None):
                await run(**kwargs)  # type: ignore[operator]
        except TimeoutError:
            pass

    try:
        asyncio.run(bounded())
    finally:
        Path(record_path).write_text(json.dumps(received))


if __name__ == "__main__":
    main()
