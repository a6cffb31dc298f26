"""On demand: resumable uploads, packaging to CMAF + HLS, and HTTPS delivery.

The contract with the control plane and the players is docs/vod.md. Modules:
``storage`` (where bytes live), ``uploads`` (the three upload protocol forms),
``packaging`` and ``jobs`` (ffmpeg ladder to CMAF, the bounded job queue),
``delivery`` (``/vod/<pb_id>/…`` with token checks).
"""
