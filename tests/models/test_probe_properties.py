"""Properties of the pickle probe: every pickle CPython writes is one, at any protocol and
cut at any head size; arbitrary bytes never make it raise."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from mlsec.models.probe import looks_like_pickle
from mlsec.models.sniff import HEAD_SIZE

DATA = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.dictionaries(st.text(max_size=8), inner, max_size=6)
        | st.tuples(inner, inner)
    ),
    max_leaves=30,
)


@settings(max_examples=120, deadline=None)
@given(DATA, st.integers(min_value=0, max_value=pickle.HIGHEST_PROTOCOL))
def test_every_pickle_cpython_writes_is_recognised(value: object, protocol: int) -> None:
    data = pickle.dumps(value, protocol=protocol)
    head = data[:HEAD_SIZE]
    assert looks_like_pickle(head, len(data) < HEAD_SIZE, len(data), lambda n: data[:n])


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=HEAD_SIZE, max_size=3 * HEAD_SIZE), st.integers(0, 1))
def test_long_first_strings_are_read_past_the_head(text: str, protocol: int) -> None:
    data = pickle.dumps([text, {"k": 1}], protocol=protocol)
    assert looks_like_pickle(data[:HEAD_SIZE], False, len(data), lambda n: data[:n])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2 * HEAD_SIZE), st.booleans())
def test_arbitrary_bytes_never_raise(data: bytes, sized: bool) -> None:
    head = data[:HEAD_SIZE]
    result = looks_like_pickle(head, len(data) < HEAD_SIZE, len(data) if sized else None)
    assert isinstance(result, bool)
