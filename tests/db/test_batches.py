"""Splitting long IN lists."""

from __future__ import annotations

import pytest

from dockyard.db.batches import batches


@pytest.mark.parametrize("count", [0, 1, 499, 500, 501, 1234])
def test_batches_keep_every_value_in_order_and_bounded(count: int) -> None:
    values = list(range(count))
    split = list(batches(iter(values)))
    assert [value for batch in split for value in batch] == values
    assert all(0 < len(batch) <= 500 for batch in split)
    assert len(split) == -(-count // 500)


def test_a_smaller_batch_size() -> None:
    assert list(batches("abcde", size=2)) == [["a", "b"], ["c", "d"], ["e"]]
