"""Challenge templates: the data, baseline and README of each kind of challenge."""
