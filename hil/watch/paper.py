"""The accuracy the paper states per training epoch (Lin et al. 2022, Figs. 5 and 6a), as points
to draw beside a run's curve. Only points the text states are here: the paper gives its curves as
figures, not tables, so nothing in between is invented."""

from __future__ import annotations

# network name (layer sizes with the bias row) -> [(epoch, accuracy %, what the paper says)]
STATED_ACCURACY: dict[str, list[tuple[int, float, str]]] = {
    "65-10": [
        (1, 63.88, "after 1 training: 63.88 %"),
        (5, 92.35, "stable at about 92.35 % after 5 cycles"),
        (20, 92.35, "stable at about 92.35 %"),
    ],
    "65-20-10": [
        (2, 90.0, "exceeds 90 % after 2 cycles"),
        (20, 95.19, "finally about 95.19 %"),
    ],
}


def stated_accuracy(network: str) -> list[tuple[int, float, str]]:
    """The paper's stated points for a network, or none (other hidden sizes, other shapes)."""
    return STATED_ACCURACY.get(network, [])
