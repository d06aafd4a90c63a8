"""logpath: reconstruct packet journeys from netfilter LOG lines."""

__version__ = "0.1.0"
