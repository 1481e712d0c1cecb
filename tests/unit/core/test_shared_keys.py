"""The canonical dict keys (`perpx.core.keys`): shared objects, equal values, a bounded table."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from perpx.core.enums import Side
from perpx.core.keys import position_key, side_key
from support.builders import btcusdt


def test_keys_of_a_symbol_are_one_object_each_and_equal_to_fresh_tuples() -> None:
    assert position_key("BTCUSDT", 1) is position_key("BTCUSDT", 1)
    assert position_key("BTCUSDT", 1) == ("BTCUSDT", 1)
    assert side_key("BTCUSDT", 2, Side.SELL) is side_key("BTCUSDT", 2, Side.SELL)
    assert side_key("BTCUSDT", 2, Side.SELL) == ("BTCUSDT", 2, Side.SELL)
    # An index outside 0..2 is still a correct key, only not a shared one.
    assert position_key("BTCUSDT", 7) == ("BTCUSDT", 7)
    assert side_key("BTCUSDT", -1, Side.BUY) == ("BTCUSDT", -1, Side.BUY)


def test_the_table_stops_growing_at_its_bound_and_keys_stay_equal() -> None:
    # In a fresh interpreter, so this process's table is left as it is.
    script = textwrap.dedent("""
        from perpx.core import keys
        from perpx.core.enums import Side
        for i in range(keys.MAX_SHARED_SYMBOLS + 500):
            keys.position_key(f"MADEUP{i}", 0)
        assert len(keys._KEYS) == keys.MAX_SHARED_SYMBOLS, len(keys._KEYS)
        late = f"MADEUP{keys.MAX_SHARED_SYMBOLS + 499}"
        assert keys.position_key(late, 2) == (late, 2)
        assert keys.side_key(late, 0, Side.BUY) == (late, 0, Side.BUY)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


def test_a_spec_holds_its_symbols_canonical_keys() -> None:
    spec = btcusdt()
    assert spec.keys.position(0) is position_key("BTCUSDT", 0)
    assert spec.keys.position(2) is position_key("BTCUSDT", 2)
    assert spec.keys.side(1, Side.BUY) is side_key("BTCUSDT", 1, Side.BUY)
