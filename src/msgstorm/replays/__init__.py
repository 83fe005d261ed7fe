"""Replays of published records: a preset scenario, the figures its record published, which
of them the preset was fitted to and which it predicts, and an "against the record" table.

``cometbft_qa``: CometBFT's 200-node QA testnet of v0.38 (``examples/cometbft-qa.toml``).
"""
