"""The rollup behind the run's chain (``[rollup]``): batcher, L1 and the three commit levels.

Place in the pipeline: inside the simulator, after the L2 run. The run's sequencer and
blocks are the rollup's L2; once they have written the ``messages`` table, ``stage``
reads its committed messages back, ``batcher`` groups their L2 blocks into batches,
``l1`` lands each batch in an L1 block under the calldata and blob fee rules
(``rules/base_fee.py``, ``rules/blob_fee.py``) and finalises it, and ``stage`` writes the
``commits``, ``batches`` and ``l1_blocks`` tables. Nothing here feeds back into the L2
run, so it is a pure function of the history: the tests run it on hand-built messages.
"""
