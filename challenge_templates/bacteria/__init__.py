"""Bacterial microcolony instance segmentation: synthetic data, baseline, README."""

TITLE = "Bacterial microcolony instance segmentation"
