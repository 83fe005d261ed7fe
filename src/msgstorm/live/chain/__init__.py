"""A chain node as a live target: messages as transactions to an EVM node's pool.

Place in the pipeline: beside ``live/target.py`` (brokers). ``anvil.py`` finds and starts
the node (``ManagedServer``) with the scenario's chain settings, ``calldata.py`` lays
msgstorm's header into a transaction's input, ``rpc.py`` speaks JSON-RPC over HTTP and
WebSocket, ``target.py`` (``ChainTarget``) sends the traffic open loop, watches the
blocks and the pool, and writes the same history tables as the simulator, and ``market.py``
(``ChainMarket``) drives the market's reactors (the oracle, the keepers) from the node's
blocks.

A validator network is the other chain target: ``cometbft.py`` (``CometNetwork``) writes and
starts CometBFT validators on loopback, their peer-to-peer links through the fault proxy,
and ``comet_target.py`` (``CometTarget``) sends the traffic as ``kvstore`` transactions and
records each validator's commits; it shares the open-loop pacing and the messages' rows
(``record.py``) with ``ChainTarget``."""
