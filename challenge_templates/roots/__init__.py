"""Root systems: total root length and number of roots from simulated root-scan images (inference, regression)."""

TITLE = "Root length and root count from root-system images"
