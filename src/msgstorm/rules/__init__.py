"""Formulas every engine and the analysis share, each written once.

Place in the pipeline: at the bottom, beside ``draws`` and ``heap``: the modules here import
nothing of msgstorm (``socialised``, a compiled pass, only ``jit``, below them), so the
market reactor, the simulator, a live target, the analysis and the report may all use them
without loading one another. ``market`` holds the market's rules (PnL, equity, notional,
price impact, a liquidation's execution, the horizon); ``base_fee`` the EIP-1559 base-fee
rule; ``socialised`` a socialised loss's pass over the accounts, compiled, for the venue's
books and the analysis's replay alike. Each is imported from its own module; this package
re-exports nothing.
"""
