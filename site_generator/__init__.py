"""The static leaderboard site, built from the results ledger.

``build_site(results, out)`` gathers every record, renders each page from one
context and writes the site into ``out``; the same ledger builds the same bytes.
"""

from site_generator.build import SiteReport, build_site

__all__ = ["SiteReport", "build_site"]
