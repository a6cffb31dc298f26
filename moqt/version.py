"""MoQT versions and their ALPN tokens."""

from __future__ import annotations

__all__ = [
    "ALPN_DRAFT_14",
    "ALPN_DRAFT_16",
    "DRAFT_14",
    "DRAFT_16",
    "SUPPORTED_VERSIONS",
    "alpn_for",
]

DRAFT_14 = 0xFF00000E
DRAFT_16 = 0xFF000010

# Draft-16 negotiates the version by ALPN; draft-14 uses the generic "moq-00"
# ALPN and lists versions in CLIENT_SETUP.
ALPN_DRAFT_16 = "moqt-16"
ALPN_DRAFT_14 = "moq-00"

SUPPORTED_VERSIONS = (DRAFT_16, DRAFT_14)


def alpn_for(version: int) -> str:
    if version == DRAFT_16:
        return ALPN_DRAFT_16
    if version == DRAFT_14:
        return ALPN_DRAFT_14
    raise ValueError(f"unsupported MoQT version {version:#x}")
