"""Reference prices over time: the order price band, the mark, funding, and their clock.

`prices` (the order price band around the mark and index), `marks` (the mark price and its
basis window), `funding` (premium index, funding rate and payment) and `pricing` (index
prices and ticks arriving: premium samples, marks, funding settlements).
"""
