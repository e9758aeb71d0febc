"""The one list of colours every chart and plot uses, so a class or a run keeps its colour
from page to page and in the exported report.

The Okabe-Ito palette: colour-blind-safe, and distinct in greyscale print.
"""

from __future__ import annotations

PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#F0E442")
