"""Leaf instance segmentation of top-view rosette plants (CVPPP style), trained by the organizers from your weights."""

TITLE = "Leaf instance segmentation of rosette plants"
