"""Federated learning with compressed updates, measured in bytes on the wire.

The codec layer (:mod:`.bits`, :mod:`.wire`, :mod:`.spec`, :mod:`.codecs`, :mod:`.compress`,
:mod:`.dp`) imports numpy only, so it runs on a device and inside a Flower client.

Example:
    >>> from edgeshrink.federated import Compressor, Layout, decode_update
    >>> layout = Layout(((10, 5), (10,)))
    >>> msg, sent = Compressor("topk:0.1+ef", layout).compress(np.ones(60, np.float32))
    >>> decode_update(msg, "topk:0.1+ef", layout).shape
    (60,)
"""

import numpy as np  # noqa: F401  (doc example)

from edgeshrink.federated.bits import WireError
from edgeshrink.federated.compress import DOWNLOAD, UPLOAD, Compressor, Layout, decode_update
from edgeshrink.federated.spec import CompressorSpec, parse_spec

__all__ = [
    "Compressor", "CompressorSpec", "Layout", "WireError", "decode_update", "parse_spec",
    "UPLOAD", "DOWNLOAD",
]
