"""Bacterial microcolony instance segmentation: synthetic data, baseline, README."""
