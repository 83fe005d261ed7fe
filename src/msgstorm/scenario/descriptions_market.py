"""What each ``[market]`` field means, where its model does not say it itself: part of
``scenario/descriptions.py``'s ``DESCRIPTIONS``, keyed ``"ModelName.field"``.
"""

from __future__ import annotations

__all__ = ["MARKET_DESCRIPTIONS"]

MARKET_DESCRIPTIONS: dict[str, str] = {
    "MarketSpec.resolution": "the price paths' step: the oracle and the analysis look at the true price this often",
    "MarketSpec.instruments": "[`[[market.instruments]]`](#marketinstruments)",
    "MarketSpec.oracle": "[`[market.oracle]`](#marketoracle)",
    "MarketSpec.accounts": "[`[[market.accounts]]`](#marketaccounts)",
    "MarketSpec.keepers": "[`[[market.keepers]]`](#marketkeepers); none: nobody liquidates, and the run "
                          "shows what that costs",
    "MarketSpec.maintenance_margin": "an account may be liquidated when its equity is below this share of its "
                                     "notional",
    "MarketSpec.liquidation_penalty": "share of the notional a liquidation takes from the account",
    "MarketSpec.slippage_bps": "a liquidation's slippage: this many basis points for each `depth` of notional "
                               "it closes (on the linear book; [`[market.liquidity]`](#marketliquidity) curves "
                               "it and thins it under stress)",
    "MarketSpec.depth": "the notional that moves the price `slippage_bps`",
    "MarketSpec.currency": "what prices and money are counted in (`\"DAI\"`, `\"USD\"`): the report writes it beside "
                           "bad debt, open interest, the venue's losses and an auction's deficit, and an instrument's "
                           "`name` beside its units; none: amounts without a unit",
    "InstrumentSpec.name": "the instrument's name (the `key` of its oracle messages is its index)",
    "InstrumentSpec.price": "its price at the start",
    "InstrumentSpec.drift": "drift of the geometric Brownian motion, with its time unit: `\"5%/y\"`, `\"0.1/d\"`",
    "InstrumentSpec.volatility": "volatility, per square root of its time unit: `\"80%/y\"`",
    "InstrumentSpec.shocks": "crashes: `{at, fall, over}`, the price falls by `fall` over `over` from `at`",
    "InstrumentSpec.jumps": "compound Poisson jumps: `{rate = \"2/h\", mean = \"-5%\", stddev = \"3%\"}` "
                            "(normal log sizes)",
    "InstrumentSpec.replay": "a CSV or Parquet file of `t` (seconds from the start) and `price`: replaces the "
                             "model (the price at each step is the last row's at or before it)",
    "ShockSpec.at": "when the fall starts",
    "ShockSpec.fall": "how far the price falls (below 100%)",
    "ShockSpec.over": "over how long (log-linearly; 0: a gap)",
    "JumpsSpec.rate": "jumps per unit of time: `\"2/h\"`",
    "JumpsSpec.mean": "mean log size of a jump (`\"-5%\"`: mostly down)",
    "JumpsSpec.stddev": "standard deviation of a jump's log size",
    "OracleSpec.name": "the oracle's agent name in the history",
    "OracleSpec.node": "the node it publishes through (default: the network's first)",
    "OracleSpec.heartbeat": "it publishes at least this often ...",
    "OracleSpec.deviation": "... and whenever the price moved this much since its last update",
    "OracleSpec.size": "size of a `price` message",
    "OracleSpec.fee": "fee of a `price` message",
    "AccountsSpec.count": "accounts in this group",
    "AccountsSpec.instrument": "their instrument (default: the first)",
    "AccountsSpec.leverage_median": "leverage (notional / collateral at entry) is lognormal with this median ...",
    "AccountsSpec.leverage_sigma": "... this sigma ...",
    "AccountsSpec.leverage_cap": "... and at most this; the highest leverage drawn (this, or `leverage_median` when "
                                 "`leverage_sigma` is 0) must be below 1 / `maintenance_margin` (an account there "
                                 "would open on or past its liquidation line; the default, 50, needs a "
                                 "`maintenance_margin` above 2%), and this at least `leverage_median`",
    "AccountsSpec.leverage_floor": "... and at least this (a leverage drawn below it is raised to it; none: no "
                                   "floor); at most `leverage_median`. Below 1 a position is smaller than its "
                                   "collateral (a perpetual venue allows it); a lending market's vault borrows, so a "
                                   "book of vaults takes a floor above 1",
    "AccountsSpec.collateral": "each account's collateral",
    "AccountsSpec.long_share": "share of long positions (the rest are short)",
    "AccountsSpec.file": "or load the group from a CSV or Parquet file: `side` (long/short or 1/-1), `size`, "
                         "`entry`, `collateral`",
    "MarketSpec.frontrunners": "front-runners that race the orders they see: [`[[market.frontrunners]]`]"
                               "(#marketfrontrunners)",
    "MarketSpec.orders": "the limit orders behind the `order` messages, cleared by a batch auction: "
                         "[`[market.orders]`](#marketorders)",
    "MarketSpec.probes": "probe books riding along the run, bad debt at a grid of leverages from one run "
                         "(`msgstorm safe-leverage` sets it): [`[market.probes]`](#marketprobes)",
    "MarketSpec.liquidation": "the venue's liquidation mechanism and books (insurance fund, deleveraging, "
                              "socialised loss): [`[market.liquidation]`](#marketliquidation); without it, "
                              "positions are liquidated whole and the penalty goes to the keeper",
    "MarketSpec.funding": "funding paid between longs and shorts at an interval, settled on the index (the "
                          "on-chain oracle price): [`[market.funding]`](#marketfunding); without it, none",
    "FundingSpec.interval": "how often funding is paid (the first at one interval, none past `run.duration`)",
    "FundingSpec.rate": "`fixed` (`fixed_rate` of notional an interval) or `premium` (`fixed_rate` plus the "
                        "book's premium: the open-interest imbalance's price impact under `slippage_bps` and "
                        "`depth`, bounded by `clamp`) ([formulas](model.md#funding))",
    "FundingSpec.fixed_rate": "share of notional paid an interval (positive: longs pay shorts); with `premium`, "
                              "added to the premium",
    "FundingSpec.clamp": "`premium`: the bound on an interval's rate, either way",
    "MarketSpec.mark": "liquidations judged on a mark price (the index plus the book's bounded premium), "
                       "settled on the index: [`[market.mark]`](#marketmark); without it, judged on the index",
    "MarkSpec.premium_cap": "the bound on the mark's premium over the index, either way "
                            "([formula](model.md#mark-price))",
    "MarketSpec.liquidity": "the book's depth as a curve (linear, square-root or a power law), thinning as the "
                            "price's realised volatility rises: [`[market.liquidity]`](#marketliquidity); without "
                            "it, the linear, calm book",
    "LiquiditySpec.curve": "a close of notional x moves the price `slippage_bps` x (x / `depth`)^e: e = 1 "
                           "(`linear`), 0.5 (`sqrt`) or `exponent` (`power`) ([formulas](model.md#liquidity))",
    "LiquiditySpec.exponent": "`power`: the curve's exponent e",
    "LiquiditySpec.window": "the span over which the on-chain price's realised volatility is measured",
    "LiquiditySpec.sensitivity": "how fast the depth falls with the realised volatility sigma (per square root "
                                 "of a second): `depth` / (1 + this x sigma); 0: it never thins",
    "LiquidationSpec.mechanism": "`whole` (the position closed whole), `partial` (just enough closed to restore "
                                 "`restore_to`'s margin), `close_factor` (a call repays at most `close_factor` of "
                                 "the debt, repeated while the health factor is below 1), `dutch_auction` "
                                 "(Maker's clip: keepers take a decaying auction) or `english_auction` (Maker's "
                                 "flip: keepers' bids raise the quote paid, then lower the units taken) "
                                 "([formulas](model.md#liquidation-mechanisms))",
    "LiquidationSpec.restore_to": "`partial`: the margin a call restores, `maintenance` (`maintenance_margin`) "
                                  "or `initial` (`initial_margin`)",
    "LiquidationSpec.initial_margin": "`partial` with `restore_to = \"initial\"`: the margin restored (above "
                                      "`maintenance_margin`)",
    "LiquidationSpec.close_factor": "`close_factor`: the share of the debt one call repays at most",
    "LiquidationSpec.keeper_share": "share of a call's penalty (`liquidation_penalty`) paid to its keeper; the "
                                    "rest feeds the insurance fund",
    "LiquidationSpec.insurance_fund": "the insurance fund's balance at the start; it covers a bankrupt "
                                      "account's shortfall",
    "LiquidationSpec.on_empty": "what covers a shortfall the fund cannot: `none` (bad debt), `adl` (profitable "
                                "counterparties closed at the bankrupt position's price, highest profit x "
                                "leverage first) or `socialise` (the accounts in profit pay pro rata to profit)",
    "LiquidationSpec.buffer": "`dutch_auction`: an auction starts at the on-chain price x this (a short's: / this)",
    "LiquidationSpec.decay": "`dutch_auction`: how its price decays with its age: `linear` (to 0 at `tau`), "
                             "`stair_step` (x `cut` at each whole `step`) or `exponential` (x `cut` per `step`, "
                             "continuously)",
    "LiquidationSpec.tau": "`dutch_auction`, `linear`: the age at which the price reaches 0; `english_auction`: "
                           "the auction's longest life (Maker's flip `tau`; restarted if no bid stands then)",
    "LiquidationSpec.step": "`dutch_auction`, `stair_step` and `exponential`: the interval of one `cut`",
    "LiquidationSpec.cut": "`dutch_auction`: the multiplier of one `step`",
    "LiquidationSpec.cusp": "`dutch_auction`: an auction whose multiplier fell below this resets at the next take",
    "LiquidationSpec.tail": "`dutch_auction`: an auction older than this resets at the next take",
    "LiquidationSpec.take_at": "`dutch_auction`: keepers take once the price is at most the on-chain price at the "
                               "start x this for a long (at least it / this for a short)",
    "LiquidationSpec.published": "figures published for the day a run replays, printed beside its own: "
                                 "[`[market.liquidation.published]`](#marketliquidationpublished)",
    "PublishedSpec.zero_bid_share": "the share of the day's auctions that closed at a zero bid",
    "PublishedSpec.zero_bid_units": "the units of collateral sold at a zero bid",
    "PublishedSpec.zero_bid_lots": "the number of auctions (lots) won at a zero bid",
    "PublishedSpec.top_zero_bidder_share": "of the units sold at a zero bid, the share the keeper "
                                           "that won most of them took",
    "PublishedSpec.returned_share": "the share of the auctioned collateral given back to its owners",
    "PublishedSpec.zero_bid_value": "the value (in the market's currency, at each close) of the collateral "
                                    "sold at a zero bid",
    "PublishedSpec.returned_share_won": "the share of the collateral given back to its owners in the auctions "
                                        "won at a bid above zero",
    "PublishedSpec.sources": "a figure's own source, by figure name (default: `source`)",
    "PublishedSpec.bands": "by figure name, the band `[low, high]` the run's value must fall in to agree",
    "PublishedSpec.fitted": "the figures the scenario's unknowns were fitted to: shown, never counted as "
                            "agreement",
    "PublishedSpec.checked": "the figures the run predicts (disjoint from `fitted`)",
    "PublishedSpec.deficit": "the venue's deficit: the debt the auctions left uncovered",
    "PublishedSpec.source": "where the figures were published",
    "LiquidationSpec.ttl": "`english_auction`: a standing bid wins when no other beats it within this (Maker's "
                           "flip `ttl`)",
    "LiquidationSpec.beg": "`english_auction`: a bid beats the standing one by at least this: a quote x (1 + "
                           "this), or the tab; a lot / (1 + this) (Maker's flip `beg`)",
    "LiquidationSpec.lump": "`english_auction`: per collateral (an instrument's name), the most "
                            "units a bite takes into one auction, with their share of the vault's "
                            "debt; the vault stays bitable while past its line (Maker's cat "
                            "`lump`; unset: the whole vault in one auction)",
    "ProbeSpec.leverages": "the grid: each account again at each of these leverages (increasing, each below "
                           "1 / `maintenance_margin`)",
    "ProbeSpec.traffic_share": "share of the probes' liquidations sent as messages of their own (they load the "
                               "network); the rest send nothing and commit with the first block holding a message the queue "
                               "policy ranks after them ([how](model.md#probe-books))",
    "AuctionOrdersSpec.instrument": "the instrument every order is on (default: the first)",
    "AuctionOrdersSpec.buy_share": "share of buys (the rest are sells)",
    "AuctionOrdersSpec.limit_offset_bps": "mean of a limit price's distance from the true price when the order "
                                          "is sent, in basis points towards the order's side (positive: buys "
                                          "above, sells below; more orders cross)",
    "AuctionOrdersSpec.limit_spread_bps": "standard deviation of that distance (normal), in basis points",
    "AuctionOrdersSpec.quantity": "each order's quantity (units of the instrument)",
    "FrontRunnerSpec.name": "the front-runner's agent name",
    "FrontRunnerSpec.node": "where its orders enter the network (default: the sequencer's node)",
    "FrontRunnerSpec.watch": "where it watches the validated messages for victims (default: `node`)",
    "FrontRunnerSpec.kind": "the victims' message kind",
    "FrontRunnerSpec.min_size": "a victim's message is at least this large",
    "FrontRunnerSpec.notional_per_byte": "a message's notional per byte of its size (the order flow's sizes "
                                         "stand for its orders' sizes)",
    "FrontRunnerSpec.share": "its order's notional as a share of the victim's",
    "FrontRunnerSpec.fee_multiple": "its order's fee: the victim's × this",
    "FrontRunnerSpec.reaction": "from seeing a victim at `watch` to sending from `node`",
    "FrontRunnerSpec.size": "size of its order message",
    "FrontRunnerSpec.sandwich": "also send the opposite order (the back-run) when the victim's reaches `node`; "
                                "won only with the victim's order between the two",
    "FrontRunnerSpec.back_fee_multiple": "the back-run's fee: the victim's × this (below 1: after it under fee "
                                         "priority)",
    "KeeperSpec.name": "the keepers' agent name (each keeper is `<name>-<i>` in the `triggers` table)",
    "KeeperSpec.count": "keepers in this group, spread over the nodes of `node` or `region` (default: all)",
    "KeeperSpec.region": "their region",
    "KeeperSpec.nonce_order": "each keeper's transactions mined in nonce order: one stuck in the "
                              "pool (priced below the base fee) holds back its later ones until it "
                              "is mined (not re-priced)",
    "KeeperSpec.node": "or their node",
    "KeeperSpec.reaction": "from a price reaching a keeper's node to its liquidation message",
    "KeeperSpec.fee": "fee of a liquidation message (fixed)",
    "KeeperSpec.fee_aware": "pay `fee_multiple` × the base fee when sending instead (`eip1559`)",
    "KeeperSpec.fee_multiple": "the multiple of the base fee a fee-aware keeper pays",
    "KeeperSpec.fee_cap": "the most a fee-aware keeper pays",
    "KeeperSpec.cap_raised": "steps of its ceiling during the run, each from `at` on: "
                             "[`[[market.keepers.cap_raised]]`](#marketkeeperscap_raised)",
    "CapRaise.at": "from this run time (increasing, one step each)",
    "CapRaise.cap": "the keeper's ceiling from then on (replaces `fee_cap`)",
    "KeeperSpec.size": "size of a `liquidation` message",
    "KeeperSpec.discount": "`english_auction`: it bids at most the market's price when it bids x (1 - this) a "
                           "unit (100%: it bids zero)",
    "KeeperSpec.gas_budget": "each keeper's budget for the fees of its messages, paid when sent; it sends "
                             "nothing it cannot pay (none: without limit) ([budgets](model.md#keepers-budgets))",
    "KeeperSpec.capital": "each keeper's capital for `english_auction` bids: a bid locks its quote, freed when "
                          "outbid, spent when it wins; it does not bid beyond it (none: without limit)",
    "MarketSpec.topups": "traders who add collateral near their line: [`[market.topups]`](#markettopups)",
    "TopUpSpec.name": "their agent name in the history",
    "TopUpSpec.probability": "share of the accounts that top up (drawn once for each)",
    "TopUpSpec.near": "they top up when a price puts them within this share of their liquidation price",
    "TopUpSpec.reaction": "from that price reaching `node` to the top-up message",
    "TopUpSpec.to_leverage": "enough collateral to bring the leverage at the on-chain price back to this",
    "TopUpSpec.node": "the node they watch prices at and send through (default: the network's first)",
    "TopUpSpec.size": "size of a top-up message (kind `order`)",
    "TopUpSpec.fee": "fee of a top-up message",
    "KeeperSpec.race": "every keeper of the group goes for every account it sees past its line (a race: the "
                       "later liquidations are no-ops); false: the group splits the accounts among its keepers "
                       "(account number modulo `count`)",
}
