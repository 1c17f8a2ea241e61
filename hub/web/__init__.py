"""The web console and its API: aiohttp serving each audience's released picture."""
