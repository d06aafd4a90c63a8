"""The connections table's NAT column: written as json.dumps writes the translations."""

from __future__ import annotations

import json

import pytest

from logpath.records import Translation
from logpath.summaries import _nat_json

CASES = [
    (),
    (Translation("snat", "10.0.0.2:40000", "192.0.2.1:40000", "POSTROUTING", "gw", "reply-dst"),),
    (
        Translation("dnat", "[2001:db8::1]:443", "[fd00::2]:8443", "PREROUTING", None, "reply-src"),
        Translation("redirect", "192.0.2.7", "127.0.0.1", "OUTPUT", 'h"ost\\é', "dst-change"),
    ),
    # a field that is not text (a missing address, say) is written by json.dumps itself
    (Translation("snat", float("nan"), "192.0.2.1", "POSTROUTING", "gw", "cross-host"),),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("translations", CASES)
def test_nat_json_is_what_json_dumps_writes(translations: tuple[Translation, ...]) -> None:
    assert _nat_json(translations) == json.dumps([t.to_json() for t in translations])
