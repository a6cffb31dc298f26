"""Upstream choice of the cluster topology (:meth:`mesh.topology.Topology.resolve`):
which origin hosts a namespace and which parent POP to go through, from a snapshot.

1. candidate origins for the namespace are the routed origin
   (``clutchcall:route:<ns>``) plus any live origin whose node record lists the
   namespace under ``hosts``; one in our own region wins, then the routed one,
   then the least loaded;
2. if the chosen origin is in another region and this POP has ``parent_regions``,
   a live POP of the first such region that has one becomes the parent
   (edge -> regional -> origin);
3. loops are impossible: a request carries its hop path (node ids it passed);
   a node never picks a node already on the path (itself included, which is
   reported as ``RouteLoop``) nor a parent in a region the path already visited,
   and once the path is ``max_hops`` long only an origin may be chosen;
4. a draining node (``draining`` in its record) is never a parent, and an origin that
   drains is used only when no other origin hosts the namespace.
   The path travels as ``?hops=a,b`` on the upstream connection path
   (``mesh.topology.with_hop_path`` / ``hop_path_from``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from types import MappingProxyType

from mesh._topology_types import NodeInfo, NodeRole, NoRoute, Route

__all__ = ["choose_origin", "choose_parent"]


def choose_origin(
    nodes: Mapping[str, NodeInfo],
    routes: Mapping[str, Route],
    me: NodeInfo,
    namespace: str,
    path: tuple[str, ...],
    avoid: Collection[str],
    *,
    bus_up: bool,
) -> NodeInfo:
    """The origin for ``namespace``: own region first, then the routed one, then the
    least loaded; an avoided or draining one only if there is no other."""
    candidates: dict[str, NodeInfo] = {
        n.node_id: n for n in nodes.values() if n.role is NodeRole.ORIGIN and namespace in n.hosts
    }
    routed = routes.get(namespace)
    if routed is not None and routed.origin not in candidates:
        known = nodes.get(routed.origin)
        # A route without a live node record is trusted only while the bus is down
        # (we cannot tell a dead origin from a registry we cannot read).
        if known is not None or not bus_up:
            candidates[routed.origin] = NodeInfo(
                routed.origin,
                NodeRole.ORIGIN,
                routed.region,
                routed.quic,
                load=known.load if known is not None else MappingProxyType({}),
                draining=known is not None and known.draining,
            )
    usable = [n for n in candidates.values() if n.node_id not in path]
    if not usable:
        raise NoRoute(f"no live origin hosts {namespace!r}")
    routed_id = routed.origin if routed is not None else ""
    return min(
        usable,
        key=lambda n: (
            n.node_id in avoid,
            n.draining,
            n.region != me.region,
            n.node_id != routed_id,
            sum(n.load.values()),
            n.node_id,
        ),
    )


def choose_parent(
    nodes: Mapping[str, NodeInfo],
    me: NodeInfo,
    parent_regions: Sequence[str],
    path: tuple[str, ...],
    avoid: Collection[str],
) -> NodeInfo | None:
    """The least loaded POP that is not draining of the first parent region the request
    has not visited."""
    # Never go back to a region the request already passed through.
    visited = {nodes[n].region for n in path if n in nodes}
    visited.add(me.region)
    for region in parent_regions:
        if region in visited:
            continue
        pops = [
            n
            for n in nodes.values()
            if n.role is NodeRole.POP
            and n.region == region
            and n.node_id not in path
            and n.node_id not in avoid
            and not n.draining
        ]
        if pops:
            return min(pops, key=lambda n: (sum(n.load.values()), n.node_id))
    return None
