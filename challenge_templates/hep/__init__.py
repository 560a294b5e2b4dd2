"""Signal strength intervals: pseudo-experiments of a Gaussian signal on a falling background with an energy-scale systematic (FAIR-Universe-like)."""

TITLE = "Signal strength intervals under a systematic uncertainty"
