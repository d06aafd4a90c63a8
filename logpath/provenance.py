"""What a store's assembled tables were built from, to tell whether they are still current.

Its own module, apart from ``logpath.assembly``, because every question checks it before reading
the stored tables, and a question that reads a few rows should not import the assembly's
pandas to do so.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

# The version of what ``logpath.assembly`` computes: bump it when that changes, and stores
# assembled before are assembled again.
# 2: connections by their first hop's time, packets numbered in their order; 3: SEQ/ACK, which a
# LOG rule prints only when asked, no longer split a packet (packets.PRINTED_IF_ASKED); 4: fates
# and verdicts from the ruleset; 5: a packet passing a hook again on one host is another packet;
# 6: "seen" is "unknown", a packet logged at PREROUTING only is judged on both routes (lost);
# 7: nft monitor trace and xtables-monitor --trace visits, their trace columns in the trace;
# 8: flow ids from the connection's first kernel time stamp, not the file it was read from;
# 9: packets join only hosts that packets with an IP ID link (Clocks.links), and a tuple is one
# connection per host; 10: a connection of ICMP errors alone oriented by its quote, an echo's
# and an ARP packet's direction by its type, ARP keyed by its addresses, one spelling of a
# protocol, without a ruleset an unanswered packet's fate unknown where its logs end, and a TCP
# connection begun before the capture oriented by its ports
VERSION = 10


@dataclass(frozen=True)
class Provenance:
    """What the assembled tables were built from: when it changes, they are built again."""

    version: int
    """The assembly's VERSION."""
    parts: list[str]
    """The hop parts (the manifest's ``parts``) assembled."""
    ruleset: str
    """SHA-256 of the ruleset kept at ingest ("" without one)."""
    conventions: str
    """SHA-256 of the prefix conventions in force (logpath's and the user's prefixes.toml)."""

    @classmethod
    def now(cls, store_parts: list[str], ruleset: dict[str, Any] | str | None) -> Provenance:
        """What an assembly of these parts under this ruleset would depend on today."""
        kept = ruleset if isinstance(ruleset, str) else json.dumps(ruleset, sort_keys=True)
        return cls(
            version=VERSION,
            parts=list(store_parts),
            ruleset=_digest(kept) if ruleset else "",
            conventions=conventions_digest(),
        )

    def matches(self, assembly: dict[str, Any] | None) -> bool:
        """Whether the manifest's ``assembly`` was built from the same things."""
        if not assembly:
            return False
        return {k: assembly.get(k) for k in asdict(self)} == asdict(self)


def conventions_digest() -> str:
    """SHA-256 of the prefix conventions ``logpath.hooks.resolve_hooks`` reads by default."""
    builtin = resources.files("logpath.grammars").joinpath("prefixes.toml").read_bytes()
    user = user_prefixes_file()
    try:
        own = user.read_bytes() if user.is_file() else b""
    except OSError:
        own = b""  # resolve_hooks says what is wrong with it
    return _digest(builtin.hex() + "|" + own.hex())


def user_prefixes_file() -> Path:
    """``$XDG_CONFIG_HOME/logpath/prefixes.toml`` (``~/.config/logpath/prefixes.toml``)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("logpath")) / "prefixes.toml"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
