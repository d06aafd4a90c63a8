"""The connections table's NAT column: written as json.dumps writes the translations."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from logpath.nat import translation_table
from logpath.records import Translation
from logpath.summaries import nat_texts

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


def written(nat: dict[str, tuple[Translation, ...]], ids: list[str]) -> list[str]:
    return nat_texts(translation_table(nat), np.asarray(ids, dtype=object)).to_pylist()


def test_nat_texts_are_what_json_dumps_writes() -> None:
    ids = [f"flow{i}" for i in range(len(CASES))] + ["none"]
    nat = {flow: case for flow, case in zip(ids, CASES, strict=False) if case}
    assert written(nat, ids) == [json.dumps([t.to_json() for t in nat.get(f, ())]) for f in ids]


texts = st.text(max_size=6)
translations = st.builds(
    Translation,
    st.sampled_from(["snat", "dnat", "redirect"]),
    texts,
    st.one_of(texts, st.just(float("nan"))),
    st.sampled_from(["PREROUTING", "POSTROUTING", "OUTPUT"]),
    st.one_of(st.none(), texts),
    texts,
)


@given(st.dictionaries(st.sampled_from("abcdef"), st.lists(translations, max_size=3).map(tuple)))
def test_nat_texts_of_any_translations_are_what_json_dumps_writes(
    nat: dict[str, tuple[Translation, ...]],
) -> None:
    ids = list("fedcbaz")  # not in the table's order; "z" has none
    expected = [json.dumps([t.to_json() for t in nat.get(f, ())]) for f in ids]
    assert written({f: ts for f, ts in nat.items() if ts}, ids) == expected


def test_nat_texts_leave_out_translations_of_no_listed_flow() -> None:
    """A translation of a flow not among the ids is nobody's: not written on another flow."""
    nat = {"b": CASES[2], "gone": CASES[1]}  # "gone" last: not on the last id either
    assert written(nat, ["a", "b"]) == ["[]", json.dumps([t.to_json() for t in CASES[2]])]
