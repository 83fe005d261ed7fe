"""What a ``[crosschain]`` run shows: its headline rows and the report's section "Cross-chain".

Place in the pipeline: reports, from summary.json's ``crosschain`` alone, read as its typed
section (``analysis.summary_chain.Crosschain``; computed by ``analysis/crosschain.py``). The terminal summary and report.html show the same rows, made
here once: the crossing messages by fate, the delivered ones' latency from source intent to
destination commit and its split, who relayed them, and the source's halt when there was one.
"""

from __future__ import annotations

from msgstorm.analysis.summary_chain import Crosschain
from msgstorm.analysis.summary_model import Summary
from msgstorm.report.page import esc, table
from msgstorm.report.text import duration_ms, number

__all__ = ["STAGE_NAMES", "crosschain_rows", "crosschain_section"]

# The cross-chain split's stages as the rows name them (the collateral section's too).
STAGE_NAMES = {"source_finality": "source finality", "relay": "relay", "proof_check": "proof check",
                "destination": "destination"}


def crosschain_rows(crosschain: Crosschain) -> list[tuple[str, str]]:
    """(label, text) rows of summary.json's ``crosschain``, from its typed section."""
    fates = crosschain.fates
    latency = crosschain.latency_ms
    split = crosschain.split_ms
    rows = [
        ("cross-chain messages", f"{number(crosschain.messages)}: delivered {number(fates.delivered)}, "
                                 f"censored {number(fates.censored)}, never final {number(fates.never_final)}, "
                                 f"reverted on source {number(fates.reverted_on_source)}, undelivered "
                                 f"{number(fates.undelivered)}"),
        ("cross-chain latency p50 / p99 / max", " / ".join(duration_ms(latency[q]) for q in ("p50", "p99", "max"))),
        ("cross-chain split (mean)", ", ".join(f"{label} {duration_ms(split[stage].mean)}"
                                               for stage, label in STAGE_NAMES.items())),
        ("relayed by", ", ".join(f"{name} {number(count)}" for name, count in crosschain.by_relayer.items())
         or "none"),
    ]
    halt = crosschain.source_halt
    if halt:
        cause = f" ({', '.join(halt.faults)})" if halt.faults else ""
        rows.append(("source halt", f"no commit from {halt.from_s:.2f} s to {halt.to_s:.2f} s{cause}; "
                                    f"{number(halt.seen_inside)} crossing messages seen by relayers in it"))
    return rows


def crosschain_section(summary: Summary) -> list[tuple[str, str, str]]:
    """report.html's section "Cross-chain" (none without ``[crosschain]``): the headline rows,
    then each stage of the delivered messages' latency, p50 and mean."""
    crosschain = summary.crosschain
    if not crosschain:
        return []
    head = table(["metric", "value"], [[esc(label), esc(text)] for label, text in crosschain_rows(crosschain)],
                 attrs='id="crosschain-table"')
    stages = table(["stage", "p50", "mean"],
                   [[esc(label), f'<td class="num">{esc(duration_ms(values.p50))}</td>',
                     f'<td class="num">{esc(duration_ms(values.mean))}</td>']
                    for label, values in ((STAGE_NAMES[stage], crosschain.split_ms[stage]) for stage in STAGE_NAMES)],
                   attrs='id="crosschain-stages"')
    return [("crosschain", "Cross-chain", head + stages)]
