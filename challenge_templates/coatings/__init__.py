"""Thermal barrier coatings: predict cycles to failure from process and microstructure (results)."""

TITLE = "Thermal barrier coating lifetime prediction"
