"""Rankers: order the merged candidates of a placement's generators.

The pipeline gives every candidate the features `<generator>.rank` and `<generator>.score`
(NaN where that generator did not propose it) and `generator` (the index of the first
generator that proposed it, in the placement's order).
"""
