"""The market layer: what delay costs (prices, the oracle, accounts and margin, liquidations).

Place in the pipeline: beside ``traffic`` and ``faults``. ``prices`` draws the true price
paths, ``oracle`` the oracle's schedule over the market's horizon, ``accounts`` the
positions and their margin (equity, lines, price impact, execution: each formula once, in
``rules/market.py``); ``reactor`` plugs them into the simulator as a reactive agent
(``traffic/reactor.py``). The analysis reads what they write to the history
(``analysis/market.py``), and uses the same formulas from ``rules/``, never this package.
"""
