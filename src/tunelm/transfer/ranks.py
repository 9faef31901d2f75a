"""How far the rank order of the same configs moved between two models: per-config moves,
Spearman's rho and Kendall's tau."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RankShift:
    """Per config: its rank in the proxy order, on the target, and the move (positive: up)."""

    rows: list[dict]
    spearman_rho: float | None  # None with fewer than two configs
    kendall_tau: float | None


def rank_shift(proxy_order: list, target_order: list) -> RankShift:
    """Compare two orders of the same configs (best first), e.g. proxy trial numbers.

    >>> rank_shift([7, 3, 5], [3, 7, 5]).rows[0]
    {'id': 7, 'proxy_rank': 1, 'target_rank': 2, 'move': -1}
    """
    if len(set(proxy_order)) != len(proxy_order) or set(proxy_order) != set(target_order) \
            or len(target_order) != len(proxy_order):
        raise ValueError(f"the two orders must hold the same configs once each, got "
                         f"{list(proxy_order)} and {list(target_order)}")
    where = {c: i + 1 for i, c in enumerate(target_order)}
    rows = [{"id": c, "proxy_rank": i + 1, "target_rank": where[c], "move": i + 1 - where[c]}
            for i, c in enumerate(proxy_order)]
    n = len(rows)
    if n < 2:
        return RankShift(rows, None, None)
    rho = 1 - 6 * sum(r["move"] ** 2 for r in rows) / (n * (n * n - 1))
    pairs = [(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
    concordant = sum((a["target_rank"] < b["target_rank"]) for a, b in pairs)
    tau = (2 * concordant - len(pairs)) / len(pairs)
    return RankShift(rows, rho, tau)
