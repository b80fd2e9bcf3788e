"""edgeshrink: prune, quantize, or both, measured on the artifact that ships."""

__version__ = "0.1.0"
