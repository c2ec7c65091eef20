"""Charts of the reports (matplotlib, Agg): slippage distribution, venue comparison,
intraday realized P&L. Rendered without dates or random ids in the file, so the same
journal gives the same bytes. Floats here are for drawing only."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from oms.reporting import tables  # noqa: E402
from oms.reporting.facts import Facts  # noqa: E402

plt.rcParams["svg.hashsalt"] = "oms-report"
_METADATA = {"svg": {"Date": None, "Creator": None}, "png": {"Software": None}}


def render(facts: Facts, name: str, fmt: str) -> bytes:
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        {"slippage": _slippage, "venues": _venues, "pnl": _pnl}[name](facts, ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, metadata=_METADATA[fmt])
        return buf.getvalue()
    finally:
        plt.close(fig)


def _slippage(facts: Facts, ax) -> None:
    values = [v for v in tables.tca_orders(facts).column("arrival_slippage_bps").to_pylist() if v is not None]
    ax.hist(values, bins=50, color="#4477aa")
    ax.set_title(f"Arrival slippage per order ({len(values)} orders with fills)")
    ax.set_xlabel("bps (positive: cost)")
    ax.set_ylabel("orders")


def _venues(facts: Facts, ax) -> None:
    t = tables.venues(facts).to_pydict()
    names = t["venue"]
    width = 0.2
    for k, h in enumerate(tables.MARKOUTS_S):
        ax.bar([i + k * width for i in range(len(names))], [v or 0.0 for v in t[f"markout_{h}s_bps"]], width,
               label=f"markout {h}s")
    ax.set_xticks([i + width for i in range(len(names))],
                  [f"{n}\nfill {r or 0:.0%}, rej {j:.0%}" for n, r, j in zip(names, t["fill_ratio"], t["reject_rate"])])
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_ylabel("bps (positive: in the fill's favour)")
    ax.set_title("Venues: markouts after fills")
    ax.legend()


def _pnl(facts: Facts, ax) -> None:
    curve = facts.pnl_curve
    hours = [(ts - facts.start) / 3.6e12 for ts, _ in curve]
    ax.step(hours, [v / 1e6 for _, v in curve], where="post", color="#228833")
    ax.set_title("Intraday realized P&L, all accounts (base currencies)")
    ax.set_xlabel("hours since 00:00 UTC")
    ax.set_ylabel("P&L")
    ax.axhline(0, color="black", linewidth=0.5)
