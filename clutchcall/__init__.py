"""ClutchCall: the ``clutchcall.streams`` SDK lives here.

A library logs through the standard ``logging`` module under ``clutchcall`` and leaves
handlers and levels to the program: the NullHandler keeps Python's last-resort handler
from printing its warnings to stderr when the program configured no logging.
"""

import logging

logging.getLogger("clutchcall").addHandler(logging.NullHandler())
