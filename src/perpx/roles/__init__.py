"""The parts of a venue that run in processes of their own (issue #15): `perpx serve --role`.

`projector`: the history tables folded from the event bus. `gateway`: the API's venue in a
gateway process (commands to the writer, reads from a journal follower); `supervisor`: the
gateway and projector processes `perpx serve --gateways N --projectors N` runs. Each role
depends only downward (the bus, the store, the read side, the core) and never on the API,
the service or the writer (`tests/unit/contract/test_layers.py`).
"""
